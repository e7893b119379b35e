"""One error shape for the HTTP API: RFC 9457 problem details."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi.responses import JSONResponse

MEDIA_TYPE = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: object,
) -> JSONResponse:
    """``{"type": "about:blank", "title", "status", "detail", …extra}``."""
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra},
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=dict(headers) if headers else None,
    )
