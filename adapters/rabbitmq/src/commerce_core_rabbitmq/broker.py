"""The publisher and the consumer, on pika's blocking connection (the relay is synchronous)."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from commerce_core.events import DomainEvent, EventHandler, EventPublishFailed
from commerce_core.telemetry import clean_carrier

__all__ = ["DEFAULT_EXCHANGE", "RabbitMQConsumer", "RabbitMQPublisher", "split_exchange",
           "unrouted"]

log = logging.getLogger("commerce_core_rabbitmq")

#: The durable topic exchange events are published to, routed by event type.
DEFAULT_EXCHANGE = "commerce.events"

_BROKER_ERRORS = (pika.exceptions.AMQPError, OSError)

#: AMQP's reply code when a redeclaration does not match what the broker has.
_PRECONDITION_FAILED = 406


def split_exchange(url: str) -> tuple[str, str]:
    """The broker URL without our ``exchange`` query parameter (pika does not know it), and
    the exchange it names (`DEFAULT_EXCHANGE` if none)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    exchange = next((v for k, v in query if k == "exchange" and v), DEFAULT_EXCHANGE)
    rest = urlencode([(k, v) for k, v in query if k != "exchange"])
    return urlunsplit(parts._replace(query=rest)), exchange


def unrouted(exchange: str) -> str:
    """The name of the exchange's parking place for events no queue was bound for yet: its
    alternate exchange (fanout) and the durable queue bound to it."""
    return f"{exchange}.unrouted"


class _Connection:
    """A blocking connection and channel, opened on first use and again after a failure.

    The topic exchange is declared with an alternate exchange: an event that no queue is
    bound for (no consumer deployed yet, a new event type) is parked in a durable queue,
    where it can be replayed (`RabbitMQPublisher.replay_unrouted`), instead of dropped.
    An exchange made earlier without one keeps its arguments (RabbitMQ cannot change them):
    there every publish is ``mandatory``, and an unroutable event is refused, so the relay
    keeps it pending."""

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
            self._channel = self._declare(self._connection.channel())
            if self.confirm:  # every basic_publish then waits for the broker's ack
                self._channel.confirm_delivery()
        return self._channel

    def _declare(self, channel: BlockingChannel) -> BlockingChannel:
        parking = unrouted(self.exchange)
        channel.exchange_declare(parking, exchange_type="fanout", durable=True)
        channel.queue_declare(parking, durable=True)
        channel.queue_bind(parking, parking)
        try:
            channel.exchange_declare(self.exchange, exchange_type="topic", durable=True,
                                     arguments={"alternate-exchange": parking})
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != _PRECONDITION_FAILED or self._connection is None:
                raise
            log.warning("exchange %s exists without an alternate exchange; events no queue "
                        "is bound for stay pending in the outbox until one is", self.exchange)
            channel = self._connection.channel()
            channel.exchange_declare(self.exchange, passive=True)
        return channel

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
        """``amqp://user:password@host:5672/vhost``, optionally ``?exchange=name`` (default
        ``commerce.events``); the entry point for ``amqp(s)://``."""
        broker, exchange = split_exchange(url)
        return cls(broker, exchange=exchange)

    def publish(self, events: Sequence[DomainEvent]) -> None:
        try:
            channel = self._connection.channel()
            for event in events:
                # mandatory: an event the broker cannot route anywhere (not even to the
                # parking queue) comes back as UnroutableError, and stays pending
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
                                 "sequence": event.sequence,
                                 # W3C trace context: the consumer continues the trace
                                 **clean_carrier(event.trace)},
                    ),
                    mandatory=True,
                )
        except pika.exceptions.UnroutableError as exc:
            raise EventPublishFailed(
                f"RabbitMQ could route {len(exc.messages)} event(s) to no queue: bind one, "
                f"or give {self.exchange} an alternate exchange") from exc
        except _BROKER_ERRORS as exc:
            self._connection.close()
            raise EventPublishFailed(f"RabbitMQ did not take the events: {exc!r}") from exc

    def replay_unrouted(self, *, limit: int = 100_000) -> int:
        """Publish the events parked because no queue was bound for them again (after a
        consumer bound its queue, say); returns how many. Those still routed nowhere are
        parked again."""
        parking = unrouted(self.exchange)
        moved = 0
        try:
            channel = self._connection.channel()
            waiting = channel.queue_declare(parking, durable=True,
                                            passive=True).method.message_count
            for _ in range(min(waiting, limit)):
                method, properties, body = channel.basic_get(parking)
                if method is None:
                    break
                channel.basic_publish(self.exchange, routing_key=method.routing_key,
                                      body=body, properties=properties, mandatory=True)
                channel.basic_ack(method.delivery_tag)
                moved += 1
        except _BROKER_ERRORS as exc:
            self._connection.close()
            raise EventPublishFailed(f"RabbitMQ did not take the events: {exc!r}") from exc
        return moved

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
            for method, properties, body in channel.consume(self.queue,
                                                            inactivity_timeout=poll):
                if stop is not None and stop.is_set():
                    break
                if method is None:
                    idle += poll
                    if idle_timeout is not None and idle >= idle_timeout:
                        break
                    continue
                idle = 0.0
                try:
                    handler(DomainEvent.from_dict(
                        json.loads(body), trace=properties.headers))
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
