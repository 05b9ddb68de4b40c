"""RabbitMQ for commerce-core's domain events: a publisher for the outbox relay, a consumer."""

from commerce_core_rabbitmq.broker import (
    DEFAULT_EXCHANGE,
    RabbitMQConsumer,
    RabbitMQPublisher,
    unrouted,
)

__all__ = ["DEFAULT_EXCHANGE", "RabbitMQConsumer", "RabbitMQPublisher", "unrouted"]
