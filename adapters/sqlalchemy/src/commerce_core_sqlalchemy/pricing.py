"""The standard pricing's rules (shipping options, tax rates, vouchers) in the order
database, beside the orders that use them (tables of the order store's migrations)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commerce_core.money import Money
from commerce_core.pricing import (
    RuleSet,
    ShippingOption,
    TaxRate,
    Voucher,
    VoucherKind,
)
from commerce_core_sqlalchemy._base import (
    UnitOfWork,
    create_store_engine,
    dumps,
    insert_missing,
    loads,
)
from commerce_core_sqlalchemy.migrations import ensure_schema
from commerce_core_sqlalchemy.orders import shipping_options, tax_rates, vouchers

__all__ = ["SqlAlchemyPricingRules"]

def _option(row: Any) -> ShippingOption:
    return ShippingOption(
        code=row.code, name=row.name, price=Money(row.amount, row.currency),
        countries=None if row.countries is None else loads(row.countries), active=row.active)


def _voucher(row: Any) -> Voucher:
    return Voucher(
        code=row.code, name=row.name, kind=VoucherKind(row.kind), percent_bp=row.percent_bp,
        amount=None if row.amount is None else Money(row.amount, row.currency),
        min_subtotal=(None if row.min_subtotal is None
                      else Money(row.min_subtotal, row.min_subtotal_currency)),
        usage_limit=row.usage_limit, once_per_customer=row.once_per_customer,
        active=row.active)


class SqlAlchemyPricingRules:
    """`PricingRules` in the order database (any SQLAlchemy engine the order store takes;
    ``create_schema`` migrates it as the order store does)."""

    def __init__(self, engine: Engine, *, create_schema: bool = True) -> None:
        self.engine = engine
        if create_schema:
            ensure_schema(engine, "orders")

    @classmethod
    def from_url(cls, url: str) -> SqlAlchemyPricingRules:
        return cls(create_store_engine(url))

    def close(self) -> None:
        self.engine.dispose()

    def for_order(self, *, country: str, shipping_option: str | None,
                  voucher_code: str | None) -> RuleSet:
        with UnitOfWork(self.engine) as uow:
            options = [_option(row) for row in uow.execute(
                sa.select(shipping_options).where(shipping_options.c.active)
                .order_by(shipping_options.c.code))]
            chosen = next((o for o in options if o.code == shipping_option), None)
            if shipping_option is not None and chosen is None:  # inactive, or unknown
                row = uow.execute(sa.select(shipping_options).where(
                    shipping_options.c.code == shipping_option)).first()
                chosen = None if row is None else _option(row)
            rate = uow.execute(sa.select(tax_rates).where(
                tax_rates.c.country == country)).first()
            voucher = None
            if voucher_code is not None:
                row = uow.execute(sa.select(vouchers).where(
                    vouchers.c.code == voucher_code)).first()
                voucher = None if row is None else _voucher(row)
        return RuleSet(options=tuple(o for o in options if o.serves(country)), chosen=chosen,
                       tax_rate=None if rate is None else TaxRate(country=rate.country,
                                                                  rate_bp=rate.rate_bp),
                       voucher=voucher)

    def _put(self, table: sa.Table, key: str, values: dict[str, Any]) -> bool:
        with UnitOfWork(self.engine) as uow:
            created = uow.execute(insert_missing(uow.dialect, table), values).rowcount == 1
            if not created:
                uow.execute(sa.update(table).where(table.c[key] == values[key])
                            .values(**values))
            uow.commit()
        return created

    def put_shipping_option(self, option: ShippingOption) -> bool:
        return self._put(shipping_options, "code", {
            "code": option.code, "name": option.name, "amount": option.price.amount,
            "currency": option.price.currency,
            "countries": None if option.countries is None else dumps(sorted(option.countries)),
            "active": option.active})

    def shipping_options(self, *, country: str | None = None,
                         active_only: bool = False) -> Sequence[ShippingOption]:
        query = sa.select(shipping_options).order_by(shipping_options.c.code)
        if active_only:
            query = query.where(shipping_options.c.active)
        with UnitOfWork(self.engine) as uow:
            options = [_option(row) for row in uow.execute(query)]
        return [o for o in options if country is None or o.serves(country)]

    def put_tax_rate(self, rate: TaxRate) -> bool:
        return self._put(tax_rates, "country", {"country": rate.country,
                                                "rate_bp": rate.rate_bp})

    def tax_rates(self) -> Sequence[TaxRate]:
        with UnitOfWork(self.engine) as uow:
            return [TaxRate(country=row.country, rate_bp=row.rate_bp) for row in uow.execute(
                sa.select(tax_rates).order_by(tax_rates.c.country))]

    def put_voucher(self, voucher: Voucher) -> bool:
        return self._put(vouchers, "code", {
            "code": voucher.code, "name": voucher.name, "kind": voucher.kind.value,
            "percent_bp": voucher.percent_bp,
            "amount": None if voucher.amount is None else voucher.amount.amount,
            "currency": None if voucher.amount is None else voucher.amount.currency,
            "min_subtotal": None if voucher.min_subtotal is None else voucher.min_subtotal.amount,
            "min_subtotal_currency": (None if voucher.min_subtotal is None
                                      else voucher.min_subtotal.currency),
            "usage_limit": voucher.usage_limit, "once_per_customer": voucher.once_per_customer,
            "active": voucher.active})

    def voucher(self, code: str) -> Voucher | None:
        with UnitOfWork(self.engine) as uow:
            row = uow.execute(sa.select(vouchers).where(vouchers.c.code == code.upper())).first()
        return None if row is None else _voucher(row)

    def vouchers(self) -> Sequence[Voucher]:
        with UnitOfWork(self.engine) as uow:
            return [_voucher(row) for row in uow.execute(
                sa.select(vouchers).order_by(vouchers.c.code))]
