"""The publisher and the consumer, on pika's blocking connection (the relay is synchronous)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from commerce_core.events import DomainEvent, EventHandler, EventPublishFailed

__all__ = ["DEFAULT_EXCHANGE", "RabbitMQConsumer", "RabbitMQPublisher"]

#: The durable topic exchange events are published to, routed by event type.
DEFAULT_EXCHANGE = "commerce.events"

_BROKER_ERRORS = (pika.exceptions.AMQPError, OSError)


class _Connection:
    """A blocking connection and channel, opened on first use and again after a failure."""

    def __init__(self, url: str, exchange: str, *, confirm: bool = False) -> None:
        self.parameters = pika.URLParameters(url)
        self.exchange = exchange
        self.confirm = confirm
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def channel(self) -> BlockingChannel:
        if self._channel is None or self._channel.is_closed:
            self.close()
            self._connection = pika.BlockingConnection(self.parameters)
            self._channel = self._connection.channel()
            self._channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
            if self.confirm:  # every basic_publish then waits for the broker's ack
                self._channel.confirm_delivery()
        return self._channel

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(*_BROKER_ERRORS):  # already broken: nothing to close
                connection.close()


class RabbitMQPublisher:
    """An `EventPublisher` that sends each event as a persistent message with publisher
    confirms: `publish` returns once the broker has every message, and raises
    `EventPublishFailed` (the relay keeps the events and tries again) otherwise."""

    def __init__(self, url: str, *, exchange: str = DEFAULT_EXCHANGE) -> None:
        self._connection = _Connection(url, exchange, confirm=True)
        self.exchange = exchange

    @classmethod
    def from_url(cls, url: str) -> RabbitMQPublisher:
        """``amqp://user:password@host:5672/vhost``; the entry point for ``amqp(s)://``."""
        return cls(url)

    def publish(self, events: Sequence[DomainEvent]) -> None:
        try:
            channel = self._connection.channel()
            for event in events:
                channel.basic_publish(
                    self.exchange, routing_key=event.type,
                    body=json.dumps(event.to_dict(), separators=(",", ":")).encode(),
                    properties=pika.BasicProperties(
                        message_id=event.id, type=event.type,
                        content_type="application/json",
                        delivery_mode=pika.DeliveryMode.Persistent,
                        timestamp=int(event.occurred_at.timestamp()),
                        headers={"aggregate_type": event.aggregate_type,
                                 "aggregate_id": event.aggregate_id,
                                 "sequence": event.sequence},
                    ),
                )
        except _BROKER_ERRORS as exc:
            self._connection.close()
            raise EventPublishFailed(f"RabbitMQ did not take the events: {exc!r}") from exc

    def close(self) -> None:
        self._connection.close()


class RabbitMQConsumer:
    """Reads events from a durable queue bound to the exchange by routing patterns
    (``order.*``, ``stock.low``, ``#`` for everything), acknowledging each only after the
    handler returned. A handler that raises gets the message back later (it is requeued):
    delivery is at least once, so wrap handlers in
    `commerce_core.events.deduplicated` or make them idempotent."""

    def __init__(
        self, url: str, *, queue: str, bindings: Sequence[str] = ("#",),
        exchange: str = DEFAULT_EXCHANGE, prefetch: int = 100,
    ) -> None:
        self.queue = queue
        self._connection = _Connection(url, exchange)
        self._bindings = tuple(bindings)
        self._prefetch = prefetch
        self._declare()

    def _declare(self) -> BlockingChannel:
        channel = self._connection.channel()
        channel.queue_declare(self.queue, durable=True)
        for pattern in self._bindings:
            channel.queue_bind(self.queue, self._connection.exchange, routing_key=pattern)
        channel.basic_qos(prefetch_count=self._prefetch)
        return channel

    def consume(
        self, handler: EventHandler, *, stop: threading.Event | None = None,
        idle_timeout: float | None = None, poll: float = 0.2,
    ) -> int:
        """Hand events to ``handler`` until ``stop`` is set or no message came for
        ``idle_timeout`` seconds; returns how many were handled."""
        channel = self._declare()
        handled = 0
        idle = 0.0
        try:
            for method, _, body in channel.consume(self.queue, inactivity_timeout=poll):
                if stop is not None and stop.is_set():
                    break
                if method is None:
                    idle += poll
                    if idle_timeout is not None and idle >= idle_timeout:
                        break
                    continue
                idle = 0.0
                try:
                    handler(DomainEvent.from_dict(json.loads(body)))
                except Exception:
                    channel.basic_nack(method.delivery_tag, requeue=True)
                    raise
                channel.basic_ack(method.delivery_tag)
                handled += 1
        finally:
            if not channel.is_closed:
                channel.cancel()
        return handled

    def delete_queue(self) -> None:
        self._connection.channel().queue_delete(self.queue)

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
