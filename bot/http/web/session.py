"""The dashboard's login: a session cookie that names the API key an operator logged in
with and when, never the key itself, and the check that keeps other sites' forms out.

The cookie is ``<key id>.<issued at, Unix seconds>.<mac>``, the mac an HMAC-SHA256 under
a key derived from the installation secret that already signs visitor cookies
(:mod:`funnels.ladder.visitors`; kept in the database, so every process and restart
agrees). Deriving a key of its own means a visitor cookie can never pass for a session
nor the reverse, and no new setting is needed. A session lasts :data:`SESSION_MAX_AGE`;
each page still asks whether its key is active, so a revoked key ends its sessions at
once.

Forms that change something (log in, log out, the language) are POSTs checked against
cross-site requests twice: the cookies are ``SameSite=Lax`` (a browser sends none with
another site's POST), and the request's ``Origin`` (else its ``Referer``) must be this
site.
"""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

SESSION_COOKIE = "fbd_session"
SESSION_MAX_AGE = timedelta(hours=12)
"""A working day and some: long enough not to interrupt, short enough that a cookie
left on a shared machine does not outlive the day."""
CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future an issue time may be (another process's clock) and still pass."""
_CONTEXT = b"funnelbot dashboard session v1"
_MAC_BYTES = 16
_LONGEST = 80


@dataclass(frozen=True, slots=True)
class Session:
    """Who is logged in: the API key's id, and when they logged in."""

    key_id: int
    issued_at: datetime


def session_key(installation_key: bytes) -> bytes:
    """The sessions' own key, derived from the installation's visitor-cookie key."""
    return hmac.digest(installation_key, _CONTEXT, "sha256")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class SessionSeal:
    """Signs sessions into cookie values and opens them again."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the session key must have at least 16 bytes")
        self._key = key

    def _mac(self, payload: str) -> str:
        return _b64(hmac.digest(self._key, payload.encode("ascii"), "sha256")[:_MAC_BYTES])

    def seal(self, session: Session) -> str:
        payload = f"{session.key_id}.{int(session.issued_at.timestamp())}"
        return f"{payload}.{self._mac(payload)}"

    def open(self, cookie: str | None, now: datetime) -> Session | None:
        """The session in a cookie this installation signed and that has not expired;
        None for anything else (tampered, malformed, too old, from the future)."""
        if not cookie or len(cookie) > _LONGEST or not cookie.isascii():
            return None
        payload, dot, mac = cookie.rpartition(".")
        key_id, dot2, issued = payload.partition(".")
        if not (dot and dot2 and key_id.isdigit() and issued.isdigit()):
            return None
        if len(key_id) > 18 or len(issued) > 12:
            return None
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        issued_at = datetime.fromtimestamp(int(issued), UTC)
        if issued_at > now + CLOCK_SKEW or now - issued_at > SESSION_MAX_AGE:
            return None
        return Session(int(key_id), issued_at)


def _netloc(url: str | None) -> str | None:
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return parts.netloc.lower() if parts.scheme in ("http", "https") and parts.netloc else None


def from_this_site(
    origin: str | None, referer: str | None, host: str | None, public_url: str | None
) -> bool:
    """Whether a form was posted from a page of this site: its ``Origin`` (or, without
    one, its ``Referer``) names the host the request was sent to, or the public address.

    Hosts are compared without the scheme: behind a proxy that ends TLS the app sees
    ``http`` while the browser says ``https``. A request that names neither is refused:
    every browser sends ``Origin`` with a form's POST."""
    sender = _netloc(origin) if origin and origin != "null" else _netloc(referer)
    if sender is None:
        return False
    allowed = {h for h in (host and host.lower(), _netloc(public_url)) if h}
    return sender in allowed
