"""`commerce_core.kit`'s batch mixins are what the in-memory stores use for their batch
methods, so every run of the inventory and order suites on the in-memory stores
(`tests/conformance/test_ports.py`, `tests/unit/test_conformance_catches_broken_adapters.py`)
checks them: all-or-none ``add_many``, ``get_many`` leaving out what is missing,
``update_many`` refused as a whole."""

from __future__ import annotations

from commerce_core.kit import PaymentBatchDefaults, ProductBatchDefaults, StockBatchDefaults
from commerce_core.testing.conformance import InventoryStoreConformance
from commerce_core.testing.memory import InMemoryInventoryStore, _Payments, _Products, _Stock


def test_the_in_memory_stores_batch_methods_are_the_mixins() -> None:
    assert _Products.add_many is ProductBatchDefaults.add_many
    assert _Products.get_many is ProductBatchDefaults.get_many
    assert _Stock.update_many is StockBatchDefaults.update_many
    assert _Payments.get_many is PaymentBatchDefaults.get_many


def test_add_many_adds_none_when_one_sku_is_taken() -> None:
    suite = InventoryStoreConformance()
    suite.test_products_added_in_bulk_are_all_or_none_even_if_the_caller_commits(
        InMemoryInventoryStore())
    suite.test_stock_levels_update_together_or_not_at_all(InMemoryInventoryStore())
