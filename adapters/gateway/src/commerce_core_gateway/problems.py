"""RFC 9457 problem responses, and the mapping of every library error onto one."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.responses import Response

from commerce_core import (
    CommerceError,
    ConcurrencyConflict,
    Conflict,
    DuplicateParcel,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidInput,
    InvalidNotification,
    InvalidSignature,
    NotFound,
    PaymentDeclined,
    PaymentError,
    PaymentUnavailable,
    PricingUnavailable,
    ReturnExceedsShipped,
    ShipmentExceedsOrder,
    StoreError,
    TooManyReturns,
    VoucherNotApplicable,
)

__all__ = ["MAX_ERRORS", "ProblemResponse", "clip", "problem", "problem_for"]

log = logging.getLogger("commerce_core.gateway")

PROBLEM_JSON = "application/problem+json"


class ProblemResponse(Response):
    media_type = PROBLEM_JSON


def problem(
    status: int, kind: str, title: str, detail: str, *, headers: dict[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    """A problem response; ``kind`` becomes the stable ``type`` ``/problems/<kind>``. UTF-8
    as it is (``ensure_ascii=False``): an escaped emoji would take 12 bytes for 4."""
    body: dict[str, Any] = {"type": f"/problems/{kind}", "title": title, "status": status,
                            "detail": clip(detail, MAX_DETAIL)}
    body.update({key: value for key, value in extra.items() if value is not None})
    # a lone surrogate (sent as "\ud83d" in JSON) cannot be UTF-8: it goes back escaped
    text = json.dumps(body, ensure_ascii=False).encode("utf-8", "backslashreplace")
    return ProblemResponse(text, status_code=status, headers=headers)


#: The most characters of anything a client sent that a problem echoes back (a field's
#: name, a path): what is echoed stays small, however much was sent (OWASP API4).
MAX_ECHO = 100
MAX_DETAIL = 300


def clip(text: str, most: int = MAX_ECHO) -> str:
    """``text``, cut to ``most`` characters with an ellipsis if it was longer."""
    return text if len(text) <= most else f"{text[:most - 1]}…"


# (error class, status, title); the first class the error is an instance of wins
_MAPPING: list[tuple[type[CommerceError], int, str]] = [
    (IdempotencyKeyReused, 422, "Idempotency key reused"),
    (IdempotencyKeyInUse, 409, "Idempotency key in use"),
    (InvalidNotification, 400, "Invalid notification"),
    (VoucherNotApplicable, 422, "Voucher not applicable"),
    (InvalidInput, 422, "Invalid request"),
    (InvalidSignature, 400, "Invalid signature"),
    (NotFound, 404, "Not found"),
    (InsufficientStock, 409, "Insufficient stock"),
    (ConcurrencyConflict, 409, "Changed concurrently"),
    (ShipmentExceedsOrder, 409, "Shipment exceeds order"),
    (DuplicateParcel, 409, "Duplicate parcel"),
    (ReturnExceedsShipped, 409, "Return exceeds what was shipped"),
    (TooManyReturns, 409, "Too many returns"),
    (Conflict, 409, "Conflict"),
    (PaymentDeclined, 402, "Payment declined"),
    (PaymentUnavailable, 503, "Payment provider unavailable"),
    (PaymentError, 402, "Payment failed"),
    (PricingUnavailable, 503, "Pricing unavailable"),
    (StoreError, 503, "Store unavailable"),
]

RETRY_AFTER_SECONDS = "5"

#: The most field errors a problem lists; the rest are counted (``errors_omitted``), so an
#: invalid body of 64 KiB gets an answer of a few KiB (OWASP API4: no error amplification).
MAX_ERRORS = 50

#: What a 5xx problem says: the specifics (a database's or a provider's own words, hosts and
#: ports) go to the server's log, with the request id the problem carries (OWASP API8).
_SERVER_SIDE = {
    "payment-unavailable": "the payment provider did not answer in time; try again later",
    "store-busy": "the shop is busy; try again shortly",
    "pricing-unavailable": "the order could not be priced just now; try again shortly",
}


def problem_for(error: CommerceError) -> ProblemResponse:
    """The problem response for a library error."""
    status, title = 500, "Internal error"
    for kind, code, name in _MAPPING:
        if isinstance(error, kind):
            status, title = code, name
            break
    extra: dict[str, Any] = {"order_id": error.order_id}
    detail = str(error)
    if isinstance(error, InvalidInput):
        extra["errors"] = [{"path": clip(e.path), "message": clip(e.message, MAX_DETAIL)}
                           for e in error.errors[:MAX_ERRORS]]
        if len(error.errors) > MAX_ERRORS:
            extra["errors_omitted"] = len(error.errors) - MAX_ERRORS
        # the errors are in ``errors``: the detail names the first and counts the rest
        detail = error.message if not error.errors else (
            f"{error.message}: {_first(error)}"
            + (f" (and {len(error.errors) - 1} more)" if len(error.errors) > 1 else ""))
    if status >= 500:
        log.warning("%s answered %s: %s", type(error).__name__, status, error)
        detail = _SERVER_SIDE.get(error.code, "something went wrong on our side; try again "
                                  "later")
    if isinstance(error, VoucherNotApplicable):
        extra["reason"] = error.reason
    if isinstance(error, InsufficientStock):
        extra["shortages"] = [
            {"sku": s.sku, "requested": s.requested, "available": s.available}
            for s in error.shortages
        ]
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else None
    return problem(status, error.code, title, detail, headers=headers, **extra)


def _first(error: InvalidInput) -> str:
    first = error.errors[0]
    return f"{clip(first.path)}: {clip(first.message)}" if first.path else clip(first.message)
