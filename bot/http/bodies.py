"""Request bodies read with a limit: past it the request is refused (413) without the
rest being read, whatever the ``Content-Length`` header says or does not say."""

from __future__ import annotations

from fastapi import Request


class TooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or :class:`TooLarge` past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if (
        declared is not None
        and declared.isascii()
        and declared.isdigit()
        and (len(declared) > 18 or int(declared) > limit)
    ):
        raise TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge
    return bytes(body)
