"""SQLAlchemy 2 stores for commerce-core: the order database and the inventory database,
and the standard pricing's rules and the outbound webhooks (kept in the order database)."""

from commerce_core_sqlalchemy._base import create_store_engine
from commerce_core_sqlalchemy.inventory import SqlAlchemyInventoryStore
from commerce_core_sqlalchemy.orders import SqlAlchemyOrderStore
from commerce_core_sqlalchemy.pricing import SqlAlchemyPricingRules
from commerce_core_sqlalchemy.webhooks import SqlAlchemyWebhookStore

__all__ = ["SqlAlchemyInventoryStore", "SqlAlchemyOrderStore", "SqlAlchemyPricingRules",
           "SqlAlchemyWebhookStore", "create_store_engine"]
