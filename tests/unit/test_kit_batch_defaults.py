"""`commerce_core.kit`'s batch mixins: a store whose repositories have only the single
methods gets ``get_many``, ``add_many`` and ``update_many`` from them, and still passes every
check of the inventory and order suites (the in-memory store, its batch methods replaced by
the mixins'), including all-or-none ``add_many`` and ``update_many``."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from commerce_core.kit import PaymentBatchDefaults, ProductBatchDefaults, StockBatchDefaults
from commerce_core.testing.conformance import InventoryStoreConformance, OrderStoreConformance
from commerce_core.testing.memory import (
    InMemoryInventoryStore,
    InMemoryOrderStore,
    _InventoryUnitOfWork,
    _OrderUnitOfWork,
    _Payments,
    _Products,
    _Stock,
)


class Products(ProductBatchDefaults, _Products):
    pass


class Stock(StockBatchDefaults, _Stock):
    pass


class Payments(PaymentBatchDefaults, _Payments):
    pass


def test_the_mixins_supply_the_batch_methods() -> None:
    assert Products.add_many is ProductBatchDefaults.add_many
    assert Products.get_many is ProductBatchDefaults.get_many
    assert Stock.update_many is StockBatchDefaults.update_many
    assert Payments.get_many is PaymentBatchDefaults.get_many


class KitInventoryStore(InMemoryInventoryStore):
    def unit_of_work(self) -> _InventoryUnitOfWork:
        uow = super().unit_of_work()
        uow.products = Products(uow.products.tx)
        uow.stock = Stock(uow.stock.tx)
        return uow


class KitOrderStore(InMemoryOrderStore):
    def unit_of_work(self) -> _OrderUnitOfWork:
        uow = super().unit_of_work()
        uow.payments = Payments(uow.payments.tx)
        return uow


def _checks(suite: type[Any]) -> list[str]:
    return [name for name, fn in inspect.getmembers(suite, inspect.isfunction)
            if name.startswith("test_")]


@pytest.mark.parametrize("check", _checks(InventoryStoreConformance))
def test_an_inventory_store_with_the_mixins_passes_the_suite(check: str) -> None:
    getattr(InventoryStoreConformance(), check)(KitInventoryStore())


@pytest.mark.parametrize("check", _checks(OrderStoreConformance))
def test_an_order_store_with_the_mixins_passes_the_suite(check: str) -> None:
    getattr(OrderStoreConformance(), check)(KitOrderStore())
