"""RabbitMQ for commerce-core's domain events: a publisher for the outbox relay, a consumer."""

from commerce_core_rabbitmq.broker import RabbitMQConsumer, RabbitMQPublisher

__all__ = ["RabbitMQConsumer", "RabbitMQPublisher"]
