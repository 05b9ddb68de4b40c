"""Webhook endpoints and deliveries in memory (tests, the demo, ``memory://`` stores)."""

from __future__ import annotations

import random
import threading
from collections.abc import Collection, Sequence
from datetime import datetime

import attrs

from commerce_core.webhooks.model import Delivery, DeliveryStatus, WebhookEndpoint

__all__ = ["InMemoryWebhookStore"]


class InMemoryWebhookStore:
    """`WebhookStore` in this process's memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._endpoints: dict[str, WebhookEndpoint] = {}
        self._deliveries: dict[str, Delivery] = {}  # by id, in queue order
        self._keys: set[tuple[str, str]] = set()
        self._leases: dict[str, tuple[str, datetime]] = {}
        self._position = 0

    def put_endpoint(self, endpoint: WebhookEndpoint) -> bool:
        with self._lock:
            old = self._endpoints.get(endpoint.id)
            if old is not None:
                endpoint = attrs.evolve(endpoint, created_at=old.created_at)
            self._endpoints[endpoint.id] = endpoint
            return old is None

    def get_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        with self._lock:
            return self._endpoints.get(endpoint_id)

    def endpoints(self) -> Sequence[WebhookEndpoint]:
        with self._lock:
            return sorted(self._endpoints.values(), key=lambda e: e.id)

    def enqueue(self, deliveries: Sequence[Delivery]) -> int:
        new = 0
        with self._lock:
            for delivery in deliveries:
                key = (delivery.endpoint_id, delivery.event_id)
                if key in self._keys:
                    continue
                self._keys.add(key)
                self._position += 1
                self._deliveries[delivery.id] = attrs.evolve(delivery, position=self._position)
                new += 1
        return new

    def claim_due(self, *, now: datetime, owner: str, until: datetime, limit: int,
                  per_endpoint: int, endpoint_id: str | None = None) -> Sequence[Delivery]:
        claimed: list[Delivery] = []
        with self._lock:
            heads: set[tuple[str, str]] = set()
            due: dict[str, list[Delivery]] = {}
            for delivery in self._deliveries.values():
                if delivery.status is not DeliveryStatus.PENDING or (
                        endpoint_id is not None and delivery.endpoint_id != endpoint_id):
                    continue
                queue = (delivery.endpoint_id, delivery.aggregate)
                if queue in heads:
                    continue  # an earlier one of its aggregate is pending
                heads.add(queue)
                endpoint = self._endpoints.get(delivery.endpoint_id)
                lease = self._leases.get(delivery.id)
                if (endpoint is None or not endpoint.active or delivery.next_attempt_at > now
                        or (lease is not None and lease[1] > now)):
                    continue
                found = due.setdefault(delivery.endpoint_id, [])
                if len(found) < per_endpoint:
                    found.append(delivery)
            order = list(due)
            random.shuffle(order)  # fairness, not secrecy
            for key in order:
                for delivery in due[key][:limit - len(claimed)]:
                    self._leases[delivery.id] = (owner, until)
                    claimed.append(delivery)
        return claimed

    def finish(self, delivery: Delivery, *, owner: str) -> bool:
        with self._lock:
            lease = self._leases.get(delivery.id)
            if lease is None or lease[0] != owner or delivery.id not in self._deliveries:
                return False
            del self._leases[delivery.id]
            position = self._deliveries[delivery.id].position
            self._deliveries[delivery.id] = attrs.evolve(delivery, position=position)
            return True

    def release(self, delivery_ids: Collection[str], *, owner: str) -> None:
        with self._lock:
            for delivery_id in delivery_ids:
                lease = self._leases.get(delivery_id)
                if lease is not None and lease[0] == owner:
                    del self._leases[delivery_id]

    def deliveries(self, endpoint_id: str, *, before: int | None,
                   limit: int) -> Sequence[Delivery]:
        with self._lock:
            found = [d for d in reversed(self._deliveries.values())
                     if d.endpoint_id == endpoint_id and (before is None or d.position < before)]
        return found[:limit]

    def get_delivery(self, delivery_id: str) -> Delivery | None:
        with self._lock:
            return self._deliveries.get(delivery_id)

    def replay(self, endpoint_id: str, *, delivery_ids: Collection[str] | None,
               now: datetime) -> int:
        replayed = 0
        with self._lock:
            for delivery in list(self._deliveries.values()):
                if (delivery.endpoint_id == endpoint_id
                        and delivery.status is DeliveryStatus.FAILED
                        and (delivery_ids is None or delivery.id in delivery_ids)):
                    self._deliveries[delivery.id] = attrs.evolve(
                        delivery, status=DeliveryStatus.PENDING, attempts=0,
                        next_attempt_at=now)
                    replayed += 1
        return replayed

    def purge(self, *, delivered_before: datetime, limit: int) -> int:
        with self._lock:
            old = [d for d in self._deliveries.values()
                   if d.status is DeliveryStatus.DELIVERED and d.delivered_at is not None
                   and d.delivered_at < delivered_before][:limit]
            for delivery in old:
                del self._deliveries[delivery.id]
                self._keys.discard((delivery.endpoint_id, delivery.event_id))
        return len(old)
