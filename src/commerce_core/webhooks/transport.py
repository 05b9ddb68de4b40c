"""Sending a delivery over HTTP with the standard library."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from commerce_core.webhooks.ports import DeliveryFailed

__all__ = ["UrllibTransport"]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is the endpoint's answer (not a 2xx: tried again later), never followed:
    a receiver cannot send a signed event, or the platform's requests, elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class UrllibTransport:
    """`WebhookTransport` on `urllib.request`: ``timeout`` seconds for the whole exchange,
    at most ``max_answer`` bytes of an answer read (its body is not kept), no proxies from
    the environment unless ``use_proxies``."""

    def __init__(self, *, timeout: float = 10.0, max_answer: int = 65_536,
                 use_proxies: bool = False) -> None:
        self.timeout = timeout
        self.max_answer = max_answer
        handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
        if not use_proxies:
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        if not url.startswith(("http://", "https://")):
            raise DeliveryFailed(f"not an http or https URL: {url[:100]!r}")
        headers = {"Content-Type": "application/json",
                   "User-Agent": "commerce-core-webhooks", **headers}
        # http(s) only, checked above
        request = urllib.request.Request(url, data=body, method="POST",  # noqa: S310
                                         headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                answer.read(self.max_answer)
                return int(answer.status)
        except urllib.error.HTTPError as exc:  # a 3xx, 4xx or 5xx: an answer all the same
            exc.close()
            return int(exc.code)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # refused, timed out, reset, TLS or DNS failure, a garbled answer
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:500]) from exc
