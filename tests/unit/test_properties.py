"""Property tests: a state machine drives stock and priced orders (shipping, vouchers, VAT)
at random and checks, after every step, that stock is never negative or over-reserved, the
ledger sums to on_hand, every confirmed order has an authorized payment for exactly its
total, no authorization outlives its order, every total is its subtotal, adjustments and
exclusive taxes, and no voucher is used beyond its limit."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from datetime import timedelta

import hypothesis.strategies as st
from hypothesis import HealthCheck, event, given, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from commerce_core import (
    AdjustmentKind,
    CommerceError,
    InvalidInput,
    InvalidTransition,
    Money,
    OrderItem,
    OrderStatus,
    PlaceOrder,
    Platform,
    QuoteOrder,
    RefundExceedsCaptured,
    RetryPolicy,
    Return,
    ReturnLine,
    ReturnStatus,
    ShipmentLine,
    ShippingOption,
    StandardPricing,
    StockConflict,
    TaxRate,
    Voucher,
    VoucherKind,
    VoucherNotApplicable,
)
from commerce_core.checkout.returns import return_share
from commerce_core.inventory import InventoryStore, allocate
from commerce_core.inventory.model import LineRequest, StockLevel
from commerce_core.orders import OrderStore
from commerce_core.orders.shares import shares_of, units_share
from commerce_core.pricing import InMemoryPricingRules, PricingRules, round_half_even
from commerce_core.testing import (
    InMemoryInventoryStore,
    InMemoryOrderStore,
    ManualClock,
    SandboxPaymentGateway,
    check_invariants,
)
from commerce_core_sqlalchemy import (
    SqlAlchemyInventoryStore,
    SqlAlchemyOrderStore,
    SqlAlchemyPricingRules,
)
from tests.conftest import ADDRESS, seed

SKUS = ["MUG", "POT", "TEA"]
TOKENS = ["tok_visa", "tok_visa", "tok_visa", "tok_declined", "tok_insufficient_funds",
          "tok_timeout", "tok_flaky", "tok_nonsense"]


#: Vouchers the shop offers, and one nobody does (the limits are checked after every step).
VOUCHERS = [None, None, "FEW", "ONCE", "BIG", "nope"]
LIMITS: dict[str, int | None] = {"FEW": 2, "ONCE": None, "BIG": 3}
SHIPPING = 495
VAT_BP = 1900


class CrashHere(BaseException):
    pass


def order(*lines: tuple[str, int], token: str = "tok_visa", customer: str = "alice",
          voucher: str | None = None) -> PlaceOrder:
    """An order to Germany, shipped standard, with a voucher or none."""
    return PlaceOrder(customer_id=customer, lines=[OrderItem(s, q) for s, q in lines],
                      payment_token=token, shipping_address=ADDRESS, shipping_option="std",
                      voucher_code=voucher)


def configure(pricing: StandardPricing) -> None:
    pricing.put_shipping_option(ShippingOption(code="std", name="Standard",
                                               price=Money(SHIPPING, "EUR"), countries=["DE"]))
    pricing.put_tax_rate(TaxRate(country="DE", rate_bp=VAT_BP))
    pricing.put_voucher(Voucher(code="FEW", kind=VoucherKind.PERCENT, percent_bp=1250,
                                usage_limit=LIMITS["FEW"]))
    pricing.put_voucher(Voucher(code="ONCE", kind=VoucherKind.FIXED, amount=Money(300, "EUR"),
                                once_per_customer=True))
    pricing.put_voucher(Voucher(code="BIG", kind=VoucherKind.FIXED,
                                amount=Money(100_000, "EUR"), usage_limit=LIMITS["BIG"]))


class Shop(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.gateway = SandboxPaymentGateway()
        self.clock = ManualClock()
        self.crash_at: str | None = None
        self.orders_store, self.inventory_store = self._stores()
        self.pricing = StandardPricing(self._rules())
        configure(self.pricing)
        self.platform = self._platform()
        seed(self.platform, {"MUG": 5, "POT": 2, "TEA": 8})
        self.keys = 0

    def _stores(self) -> tuple[OrderStore, InventoryStore]:
        return InMemoryOrderStore(), InMemoryInventoryStore()

    def _rules(self) -> PricingRules:
        return InMemoryPricingRules()

    def _platform(self) -> Platform:
        def hook(step: str, _: object) -> None:
            if step == self.crash_at:
                self.crash_at = None
                raise CrashHere(step)

        return Platform.from_adapters(
            order_store=self.orders_store, inventory_store=self.inventory_store,
            payment_gateway=self.gateway, clock=self.clock, retry=RetryPolicy.immediate(),
            on_step=hook, pricing=self.pricing,
        )

    def _ids(self, *statuses: OrderStatus) -> list[str]:
        """Orders in these statuses, oldest first. Sorted by the manual clock, not by id: ids
        carry random bits, and Hypothesis needs every replay to offer the same choices."""
        found = [o for o in self.platform.orders.list(limit=100).items if o.status in statuses]
        return [o.id for o in sorted(found, key=lambda o: o.created_at)]

    @rule(lines=st.dictionaries(st.sampled_from(SKUS), st.integers(1, 4), min_size=1,
                                max_size=3),
          token=st.sampled_from(TOKENS), customer=st.sampled_from(["alice", "bob"]),
          voucher=st.sampled_from(VOUCHERS), quote_first=st.booleans())
    def place(self, lines: dict[str, int], token: str, customer: str, voucher: str | None,
              quote_first: bool) -> None:
        self.keys += 1
        command = order(*lines.items(), token=token, customer=customer, voucher=voucher)
        quoted: object = None
        if quote_first:  # a quote prices as placing does, and changes nothing
            before = (self.platform.inventory.availability(SKUS), self._uses())
            try:
                quoted = self.platform.checkout.quote(QuoteOrder(
                    customer_id=customer, lines=command.lines,
                    shipping_address=command.shipping_address, shipping_option="std",
                    voucher_code=voucher))
            except VoucherNotApplicable as exc:
                quoted = exc.reason
            assert (self.platform.inventory.availability(SKUS), self._uses()) == before
        refused: str | None = None
        try:
            placed = self.platform.checkout.place_order(command,
                                                        idempotency_key=f"k{self.keys}")
        except VoucherNotApplicable as exc:
            event(f"voucher refused: {exc.reason}")
            refused = exc.reason
        except CommerceError as exc:
            event(f"checkout failed: {exc.code}")
            if exc.order_id is not None:
                placed = self.platform.orders.get(exc.order_id)
                assert quoted is None or placed.total == quoted.total  # type: ignore[attr-defined]
            return
        if refused is not None:
            assert quoted is None or quoted == refused
            return
        event("checkout confirmed" + (" with a voucher" if placed.voucher_code else ""))
        assert placed.status is OrderStatus.CONFIRMED
        if quoted is not None:
            assert not isinstance(quoted, str), f"quoted {quoted}, then placed"
            assert (quoted.adjustments, quoted.taxes, quoted.total) == (  # type: ignore[attr-defined]
                placed.adjustments, placed.taxes, placed.total)

    def _uses(self) -> dict[str, int]:
        return self.platform.orders.voucher_uses(list(LIMITS))

    @rule(lines=st.dictionaries(st.sampled_from(SKUS), st.integers(1, 3), min_size=1,
                                max_size=2),
          point=st.sampled_from(["started", "stock_reserved", "payment_authorized",
                                 "stock_held", "compensating"]),
          token=st.sampled_from(["tok_visa", "tok_declined"]),
          voucher=st.sampled_from(VOUCHERS))
    def crash_then_recover(self, lines: dict[str, int], point: str, token: str,
                           voucher: str | None) -> None:
        self.keys += 1
        self.crash_at = point
        with contextlib.suppress(CrashHere, CommerceError):
            self.platform.checkout.place_order(order(*lines.items(), token=token,
                                                     voucher=voucher),
                                               idempotency_key=f"k{self.keys}")
        self.crash_at = None
        self.platform = self._platform()  # a restarted process
        self.platform.checkout.recover(grace=timedelta(0))

    @precondition(lambda self: bool(self._ids(OrderStatus.CONFIRMED,
                                              OrderStatus.PARTIALLY_SHIPPED)))
    @rule(data=st.data())
    def ship(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from(self._ids(OrderStatus.CONFIRMED,
                                                       OrderStatus.PARTIALLY_SHIPPED)))
        event("shipped all that was left")
        self.keys += 1
        assert self.platform.checkout.ship(order_id, carrier="DHL",
                                           tracking_number=f"P{self.keys}"
                                           ).status is OrderStatus.SHIPPED

    @precondition(lambda self: bool(self._ids(OrderStatus.CONFIRMED,
                                              OrderStatus.PARTIALLY_SHIPPED)))
    @rule(data=st.data(), point=st.sampled_from([None, "shipping", "payment_captured",
                                                 "stock_committed", "shipped"]))
    def ship_a_parcel(self, data: st.DataObject, point: str | None) -> None:
        order_id = data.draw(st.sampled_from(self._ids(OrderStatus.CONFIRMED,
                                                       OrderStatus.PARTIALLY_SHIPPED)))
        before = self.platform.orders.get(order_id)
        left = before.left_to_ship
        sku = data.draw(st.sampled_from(sorted(left)))
        units = data.draw(st.integers(1, left[sku]))
        self.crash_at = point
        self.keys += 1  # a tracking number of its own: a number names one parcel
        try:
            self.platform.checkout.ship(order_id, carrier="DHL",
                                        tracking_number=f"P{self.keys}",
                                        lines=[ShipmentLine(sku, units)])
        except CrashHere:
            event(f"crashed shipping a parcel at {point}")
            self.platform = self._platform()  # a restarted process
            self.platform.checkout.recover(grace=timedelta(0))
        self.crash_at = None
        after = self.platform.orders.get(order_id)
        assert after.left_to_ship.get(sku, 0) == left[sku] - units
        assert len(after.shipments) == len(before.shipments) + 1
        everything = sum(left.values()) == units
        assert after.status is (OrderStatus.SHIPPED if everything
                                else OrderStatus.PARTIALLY_SHIPPED)
        event("shipped a parcel" + (", the last" if everything else ""))

    @precondition(lambda self: bool(self._ids(OrderStatus.PARTIALLY_SHIPPED)))
    @rule(data=st.data())
    def cancel_the_rest(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from(self._ids(OrderStatus.PARTIALLY_SHIPPED)))
        before = self.platform.orders.get(order_id)
        paid = self.platform.orders.payment(before)
        assert paid is not None
        shares = shares_of(before)
        returned = before.refunded_returned()
        share = sum(units_share(shares.lines[i], line.quantity,
                                line.cancelled_quantity + returned.get(line.sku, 0), line.left)
                    for i, line in enumerate(before.lines))
        done = self.platform.checkout.cancel(order_id)
        event("cancelled the rest")
        payment = self.platform.orders.payment(done)
        assert payment is not None and not done.left_to_ship
        assert done.status is (OrderStatus.REFUNDED if payment.refundable.amount == 0
                               else OrderStatus.SHIPPED)
        assert payment.refunded.amount - paid.refunded.amount == min(
            share, paid.refundable.amount)

    @precondition(lambda self: bool(self._ids(OrderStatus.CONFIRMED)))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from(self._ids(OrderStatus.CONFIRMED)))
        event("cancelled an order")
        assert self.platform.checkout.cancel(order_id).status is OrderStatus.CANCELLED

    @precondition(lambda self: bool(self._ids(OrderStatus.SHIPPED)))
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from(self._ids(OrderStatus.SHIPPED)))
        self.platform.checkout.deliver(order_id)

    @precondition(lambda self: bool(self._ids(OrderStatus.SHIPPED, OrderStatus.DELIVERED,
                                              OrderStatus.PARTIALLY_SHIPPED)))
    @rule(data=st.data(), cents=st.one_of(st.integers(1, 3000), st.integers(3001, 20000)))
    def refund(self, data: st.DataObject, cents: int) -> None:
        order_id = data.draw(st.sampled_from(self._ids(
            OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.PARTIALLY_SHIPPED)))
        payment = self.platform.orders.payment(self.platform.orders.get(order_id))
        assert payment is not None
        try:
            self.platform.checkout.refund(order_id, amount=Money(cents, "EUR"), reason="r")
        except RefundExceedsCaptured:
            assert cents > payment.refundable.amount
        else:
            event("refunded")
            assert cents <= payment.refundable.amount

    def _returns(self, *statuses: ReturnStatus) -> list[Return]:
        """Returns in these statuses, of the orders oldest first (each order's in turn)."""
        found = sorted(self.platform.orders.list(limit=100).items, key=lambda o: o.created_at)
        return [r for o in found for r in o.returns if r.status in statuses]

    def _with_returnable(self) -> list[str]:
        return [order_id for order_id in self._ids(
            OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED, OrderStatus.DELIVERED,
            OrderStatus.REFUNDED) if self.platform.orders.get(order_id).returnable]

    def _crashing(self, point: str | None, command: object, *args: object,
                  **kwargs: object) -> None:
        """Run ``command`` crashing at ``point``; after a crash, a restarted process
        recovers."""
        self.crash_at = point
        try:
            command(*args, **kwargs)  # type: ignore[operator]
        except CrashHere:
            event(f"crashed at {point}")
            self.platform = self._platform()
            self.platform.checkout.recover(grace=timedelta(0))
        self.crash_at = None

    @precondition(lambda self: bool(self._with_returnable()))
    @rule(data=st.data())
    def request_a_return(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from(self._with_returnable()))
        before = self.platform.orders.get(order_id)
        returnable = before.returnable
        sku = data.draw(st.sampled_from(sorted(returnable)))
        units = data.draw(st.integers(1, returnable[sku]))
        too_many = data.draw(st.booleans())
        if too_many:  # one more than may come back: refused, nothing changed
            with contextlib.suppress(CommerceError):
                self.platform.checkout.request_return(
                    order_id, lines=[ReturnLine(sku, returnable[sku] + 1)], reason="r")
                raise AssertionError("more returned than shipped")
            assert self.platform.orders.get(order_id) == before
        made = self.platform.checkout.request_return(
            order_id, lines=[ReturnLine(sku, units)], reason="r",
            customer_id=before.customer_id)
        event("requested a return")
        after = self.platform.orders.get(order_id)
        assert after.find_return(made.id) == made and made.status is ReturnStatus.REQUESTED
        assert after.returned_units.get(sku, 0) == before.returned_units.get(sku, 0) + units

    @precondition(lambda self: bool(self._returns(ReturnStatus.REQUESTED)))
    @rule(data=st.data(), restock=st.booleans(), warehouse=st.sampled_from(["BER", "AMS"]),
          point=st.sampled_from([None, "receiving_return", "return_restocked",
                                 "return_received"]))
    def receive_a_return(self, data: st.DataObject, restock: bool, warehouse: str,
                         point: str | None) -> None:
        found = data.draw(st.sampled_from(self._returns(ReturnStatus.REQUESTED)))
        on_hand = {sku: self.platform.inventory.stock(sku).on_hand for sku in found.units}
        self._crashing(point if restock or point != "return_restocked" else None,
                       self.platform.checkout.receive_return, found.id,
                       warehouse=warehouse, restock=restock)
        event("received a return" + (" into stock" if restock else ", written off"))
        after = self.platform.orders.get_return(found.id)
        assert (after.status, after.warehouse, after.restock) == (
            ReturnStatus.RECEIVED, warehouse, restock)
        for sku, units in found.units.items():
            assert self.platform.inventory.stock(sku).on_hand == on_hand[sku] + (
                units if restock else 0)

    @precondition(lambda self: bool(self._returns(ReturnStatus.RECEIVED)))
    @rule(data=st.data(), include_shipping=st.booleans(),
          point=st.sampled_from([None, "refunding_return", "return_refunded"]))
    def refund_a_return(self, data: st.DataObject, include_shipping: bool,
                        point: str | None) -> None:
        found = data.draw(st.sampled_from(self._returns(ReturnStatus.RECEIVED)))
        order = self.platform.orders.get(found.order_id)
        paid = self.platform.orders.payment(order)
        assert paid is not None
        share, _ = return_share(order, found, include_shipping=include_shipping)
        expected = min(share, paid.refundable.amount)
        self._crashing(point, self.platform.checkout.refund_return, found.id,
                       include_shipping=include_shipping)
        event("refunded a return")
        after = self.platform.orders.get_return(found.id)
        assert after.status is ReturnStatus.REFUNDED and after.refund == Money(expected, "EUR")
        payment = self.platform.orders.payment(order)
        assert payment is not None
        assert payment.refunded.amount - paid.refunded.amount == expected

    @precondition(lambda self: bool(self._returns(ReturnStatus.REQUESTED,
                                                  ReturnStatus.RECEIVED)))
    @rule(data=st.data())
    def reject_a_return(self, data: st.DataObject) -> None:
        found = data.draw(st.sampled_from(self._returns(ReturnStatus.REQUESTED,
                                                        ReturnStatus.RECEIVED)))
        before = self.platform.orders.get(found.order_id)
        self.platform.checkout.reject_return(found.id, reason="no")
        event("rejected a return")
        after = self.platform.orders.get(found.order_id)
        assert after.find_return(found.id).status is ReturnStatus.REJECTED  # type: ignore[union-attr]
        # a return received stays returned; one that never came back frees its units
        freed = {} if found.received_at is not None else found.units
        for sku, units in before.returned_units.items():
            assert after.returned_units.get(sku, 0) == units - freed.get(sku, 0)

    @rule(sku=st.sampled_from(SKUS), warehouse=st.sampled_from(["BER", "AMS"]),
          delta=st.integers(-6, 6).filter(bool))
    def adjust(self, sku: str, warehouse: str, delta: int) -> None:
        before = self.platform.inventory.stock(sku)
        try:
            self.platform.inventory.adjust_stock(sku, warehouse, delta=delta, reason="count")
        except StockConflict:
            assert self.platform.inventory.stock(sku) == before  # nothing changed

    @rule(minutes=st.integers(1, 30))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(timedelta(minutes=minutes))
        self.platform.inventory.expire_reservations()

    @rule(data=st.data())
    def invalid_transitions_change_nothing(self, data: st.DataObject) -> None:
        ids = self._ids(OrderStatus.FAILED, OrderStatus.CANCELLED, OrderStatus.REFUNDED)
        if not ids:
            return
        order_id = data.draw(st.sampled_from(ids))
        before = self.platform.orders.get(order_id)
        for command in (self.platform.checkout.cancel, self.platform.checkout.deliver):
            try:
                command(order_id)
            except InvalidTransition:
                pass
            else:
                raise AssertionError("a final order moved")
        assert self.platform.orders.get(order_id) == before

    @invariant()
    def every_invariant_holds(self) -> None:
        check_invariants(self.orders_store, self.inventory_store, self.gateway,
                         voucher_limits=LIMITS)

    @invariant()
    def every_total_is_its_subtotal_adjustments_and_exclusive_taxes(self) -> None:
        for placed in self.platform.orders.list(limit=100).items:
            signed = {a.kind: a.signed for a in placed.adjustments}
            assert signed[AdjustmentKind.SHIPPING] == SHIPPING
            discount = -signed.get(AdjustmentKind.DISCOUNT, 0)
            assert 0 <= discount <= placed.subtotal.amount  # shipping is never discounted
            assert (discount > 0) == (placed.voucher_code is not None)
            base = placed.subtotal.amount + SHIPPING - discount
            [tax] = placed.taxes
            assert not tax.inclusive and tax.amount.amount == round_half_even(
                base * VAT_BP, 10_000)
            assert placed.total.amount == base + tax.amount.amount


Shop.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestShop = Shop.TestCase


class SqliteShop(Shop):
    """The same machine on the SQLAlchemy stores over two SQLite files (the pricing rules in
    the order database)."""

    def _stores(self) -> tuple[OrderStore, InventoryStore]:
        self.folder = tempfile.mkdtemp(prefix="shop-")
        return (SqlAlchemyOrderStore.from_url(f"sqlite:///{self.folder}/orders.db"),
                SqlAlchemyInventoryStore.from_url(f"sqlite:///{self.folder}/inventory.db"))

    def _rules(self) -> PricingRules:
        assert isinstance(self.orders_store, SqlAlchemyOrderStore)
        return SqlAlchemyPricingRules(self.orders_store.engine, create_schema=False)

    def teardown(self) -> None:
        self.orders_store.close()
        self.inventory_store.close()
        shutil.rmtree(self.folder, ignore_errors=True)


SqliteShop.TestCase.settings = settings(
    max_examples=15, stateful_step_count=20, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSqliteShop = SqliteShop.TestCase


levels_strategy = st.lists(
    st.tuples(st.sampled_from(SKUS), st.sampled_from(["A", "B", "C"]), st.integers(0, 10),
              st.integers(0, 10)),
    unique_by=lambda t: (t[0], t[1]), max_size=9,
)


@settings(max_examples=200)
@given(levels_strategy,
       st.dictionaries(st.sampled_from(SKUS), st.integers(1, 25), min_size=1))
def test_allocation_takes_exactly_what_was_asked_and_never_more_than_is_there(
    levels: list[tuple[str, str, int, int]], wanted: dict[str, int]
) -> None:
    stock = [StockLevel(s, w, on_hand=a + r, reserved=r) for s, w, a, r in levels]
    by_sku: dict[str, list[StockLevel]] = {}
    for level in stock:
        by_sku.setdefault(level.sku, []).append(level)
    lines = [LineRequest(s, q) for s, q in wanted.items()]
    totals = {s: sum(lv.available for lv in by_sku.get(s, [])) for s in wanted}
    try:
        allocation = allocate(lines, by_sku)
    except CommerceError as exc:
        short = {s.sku for s in exc.shortages}  # type: ignore[attr-defined]
        assert short == {s for s, q in wanted.items() if q > totals[s]}
        return
    assert all(q <= totals[s] for s, q in wanted.items())
    for sku, quantity in wanted.items():
        assert sum(p.quantity for p in allocation if p.sku == sku) == quantity
    available = {(lv.sku, lv.warehouse): lv.available for lv in stock}
    for part in allocation:
        assert 0 < part.quantity <= available[part.sku, part.warehouse]


def test_money_refuses_bad_input() -> None:
    for bad in [(-1, "EUR"), (10**12 + 1, "EUR"), (1.5, "EUR"), (1, "eur"), (1, "EURO"),
                (True, "EUR")]:
        try:
            Money(*bad)  # type: ignore[arg-type]
        except InvalidInput:
            continue
        raise AssertionError(f"Money{bad} was accepted")
