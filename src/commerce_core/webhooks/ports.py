"""The ports of outbound webhooks: where endpoints and deliveries are kept, and how a
delivery is sent."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from commerce_core.webhooks.model import Delivery, WebhookEndpoint

__all__ = ["DeliveryFailed", "WebhookStore", "WebhookTransport"]


class WebhookStore(Protocol):
    """Endpoints and their delivery queues (kept in the order database by the stores of
    this repository). Each method is a transaction of its own. Checked by
    `commerce_core.testing.conformance.WebhookStoreConformance`."""

    def put_endpoint(self, endpoint: WebhookEndpoint) -> bool:
        """Create or replace the endpoint of that id (its ``created_at`` kept); true if
        created."""
    def get_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None: ...
    def endpoints(self) -> Sequence[WebhookEndpoint]:
        """Every endpoint, by id."""
    def enqueue(self, deliveries: Sequence[Delivery]) -> int:
        """Queue the deliveries (given in the order of their events) that are not queued yet
        (one per endpoint and event: an event given again is skipped); how many were new."""
    def claim_due(self, *, now: datetime, owner: str, until: datetime, limit: int,
                  per_endpoint: int, endpoint_id: str | None = None) -> Sequence[Delivery]:
        """Lease to ``owner`` until ``until`` the pending deliveries of active endpoints
        (of ``endpoint_id`` alone if given) due by ``now`` that are first in their queue (no
        earlier pending delivery of the same endpoint and aggregate) and not leased to
        anyone (or the lease lapsed): at most ``per_endpoint`` of each endpoint, in its
        queue's order, and at most ``limit`` in all, the endpoints taken in an order that
        changes from call to call (none starves behind another's backlog). A delivery is
        claimed only as it was read: one attempted meanwhile by another process (its
        ``attempts`` or its ``next_attempt_at`` changed) is left alone."""
    def finish(self, delivery: Delivery, *, owner: str) -> bool:
        """Record an attempt's outcome (status, attempts, times, response, error) and end the
        lease; false (nothing written) if the lease is no longer ``owner``'s."""
    def release(self, delivery_ids: Collection[str], *, owner: str) -> None:
        """End ``owner``'s leases of these deliveries, nothing else changed."""
    def deliveries(self, endpoint_id: str, *, before: int | None,
                   limit: int) -> Sequence[Delivery]:
        """The endpoint's deliveries, newest first, with a position below ``before``."""
    def get_delivery(self, delivery_id: str) -> Delivery | None: ...
    def replay(self, endpoint_id: str, *, delivery_ids: Collection[str] | None,
               now: datetime) -> int:
        """Queue the endpoint's failed deliveries again (all, or those of these ids):
        pending, no attempts, due ``now``; how many."""
    def purge(self, *, delivered_before: datetime, limit: int) -> int:
        """Delete up to ``limit`` deliveries delivered before that time; how many."""


class DeliveryFailed(Exception):
    """No answer from the endpoint (refused, timed out, a TLS or DNS failure)."""


class WebhookTransport(Protocol):
    """Sends one request; `commerce_core.webhooks.HttpTransport` by default."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST ``body`` and return the answer's status (a redirect is a status like any
        other, never followed), or raise `DeliveryFailed` when no answer came."""
