"""SQLAlchemy 2 stores for commerce-core: the order database and the inventory database."""

from commerce_core_sqlalchemy._base import create_store_engine
from commerce_core_sqlalchemy.inventory import SqlAlchemyInventoryStore
from commerce_core_sqlalchemy.orders import SqlAlchemyOrderStore

__all__ = ["SqlAlchemyInventoryStore", "SqlAlchemyOrderStore", "create_store_engine"]
