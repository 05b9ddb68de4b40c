"""The console's session: a signed cookie (no server-side state) naming who signed in,
with the session's CSRF token, when it was issued and when it was last used."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import attrs
from itsdangerous import BadSignature, URLSafeTimedSerializer

__all__ = ["Session", "Sessions"]

#: ``who`` of a session signed in through the host's own authentication
HOST = "host"


@attrs.frozen
class Session:
    """``who``: ``None`` (not signed in: the session only carries the CSRF token of the
    sign-in form), ``"host"`` (the host's authentication says who, on every request), or
    ``"key:<tag>"`` (signed in with the admin API key whose tag it is)."""

    id: str
    csrf: str
    who: str | None
    issued: int

    @classmethod
    def new(cls, who: str | None = None) -> Session:
        return cls(secrets.token_urlsafe(16), secrets.token_urlsafe(32), who, int(time.time()))

    def csrf_ok(self, sent: str | None) -> bool:
        """Whether a form carried this session's token (compared in constant time)."""
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


class Sessions:
    """Signing and reading session cookies. A session lasts ``idle`` seconds from its last
    request (each request signs it again) and ``lifetime`` seconds at most from sign-in.
    The console looks a session's key tag (`tag`) up in its keys on every request, so a key
    that is no longer an admin's ends its sessions."""

    def __init__(self, secret: str, *, idle: float, lifetime: float) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="commerce-core-admin-session")
        self._secret = secret.encode()
        self.idle = idle
        self.lifetime = lifetime

    def tag(self, key: str) -> str:
        """What a session keeps of the key it was signed in with: not the key, nor its
        plain digest (a cookie is readable where it is stored)."""
        return hmac.new(self._secret, hashlib.sha256(key.encode("utf-8", "surrogatepass"))
                        .digest(), hashlib.sha256).hexdigest()[:32]

    def dump(self, session: Session) -> str:
        return self._serializer.dumps([session.id, session.csrf, session.who, session.issued])

    def load(self, cookie: str | None) -> Session | None:
        """The session of a cookie, or ``None`` for none, a forged, expired or over-age one."""
        if not cookie or len(cookie) > 4096:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=max(1, int(self.idle)))
        except (BadSignature, ValueError, TypeError):
            return None
        if not (isinstance(data, list) and len(data) == 4
                and all(isinstance(v, str) for v in data[:2])
                and (data[2] is None or isinstance(data[2], str))
                and isinstance(data[3], int)):
            return None
        session = Session(*data)
        if session.issued + self.lifetime < time.time():
            return None
        return session
