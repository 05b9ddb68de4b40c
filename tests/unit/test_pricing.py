"""Orders priced beyond their lines: the standard pricing's rules and rounding, quotes,
vouchers taken and given back with their orders, contact and metadata; on every backend."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from commerce_core import (
    Address,
    AdjustmentKind,
    ConcurrencyConflict,
    InvalidInput,
    Money,
    NotFound,
    OrderItem,
    OrderStatus,
    PaymentDeclined,
    PlaceOrder,
    Platform,
    PricingError,
    PricingUnavailable,
    QuoteOrder,
    RetryPolicy,
    ShippingOption,
    StandardPricing,
    TaxRate,
    TooManyOpenOrders,
    Voucher,
    VoucherKind,
    VoucherNotApplicable,
)
from commerce_core.checkout import CheckoutLimits
from commerce_core.orders import Adjustment, SagaStep
from commerce_core.pricing import (
    InMemoryPricingRules,
    LinesOnly,
    Pricing,
    PricingRequest,
    PricingRules,
    round_half_even,
)
from commerce_core.testing import ManualClock, SandboxPaymentGateway, check_invariants
from commerce_core_sqlalchemy import SqlAlchemyOrderStore, SqlAlchemyPricingRules
from tests.conftest import ADDRESS, make_stores, seed

EUR = "EUR"


def eur(amount: int) -> Money:
    return Money(amount, EUR)


def rules_for(backend: str, order_store: object) -> PricingRules:
    if backend == "memory":
        return InMemoryPricingRules()
    assert isinstance(order_store, SqlAlchemyOrderStore)
    return SqlAlchemyPricingRules(order_store.engine, create_schema=False)


@pytest.fixture
def pricing_and_platform(
    backend: str, tmp_path: Path, clock: ManualClock, gateway: SandboxPaymentGateway
) -> Iterator[tuple[StandardPricing, Platform]]:
    order_store, inventory_store = make_stores(backend, tmp_path)
    pricing = StandardPricing(rules_for(backend, order_store))
    with Platform.from_adapters(
        order_store=order_store, inventory_store=inventory_store, payment_gateway=gateway,
        clock=clock, retry=RetryPolicy.immediate(), pricing=pricing,
    ) as platform:
        seed(platform)
        yield pricing, platform


@pytest.fixture
def pricing(pricing_and_platform: tuple[StandardPricing, Platform]) -> StandardPricing:
    return pricing_and_platform[0]


@pytest.fixture
def shop(pricing_and_platform: tuple[StandardPricing, Platform]) -> Platform:
    """Seeded (MUG 12.50, POT 39.00, TEA 8.00), with standard shipping to DE and AT, express
    to DE, 19 % VAT in DE, and two vouchers."""
    pricing, platform = pricing_and_platform
    pricing.put_shipping_option(ShippingOption(code="standard", name="Standard",
                                               price=eur(495), countries=["DE", "AT"]))
    pricing.put_shipping_option(ShippingOption(code="express", name="Express", price=eur(995),
                                               countries=["DE"]))
    pricing.put_tax_rate(TaxRate(country="DE", rate_bp=1900))
    pricing.put_voucher(Voucher(code="WELCOME10", kind=VoucherKind.PERCENT, percent_bp=1000,
                                name="10 % off"))
    pricing.put_voucher(Voucher(code="FIVER", kind=VoucherKind.FIXED, amount=eur(500),
                                min_subtotal=eur(2000)))
    return platform


def place(*lines: tuple[str, int], customer: str = "alice", token: str = "tok_visa",
          address: Address = ADDRESS, **fields: object) -> PlaceOrder:
    fields.setdefault("shipping_option", "standard")
    return PlaceOrder(customer_id=customer, lines=[OrderItem(s, q) for s, q in lines],
                      payment_token=token, shipping_address=address, **fields)  # type: ignore[arg-type]


def quote_of(command: PlaceOrder) -> QuoteOrder:
    fields = attrs.asdict(command, recurse=False)
    del fields["payment_token"]
    return QuoteOrder(**fields)


def uses(platform: Platform, code: str) -> int:
    with platform.order_store.unit_of_work() as uow:
        return uow.redemptions.used(code)


# -- the rules, one at a time --------------------------------------------------------------

@pytest.mark.parametrize(("numerator", "denominator", "expected"), [
    (0, 7, 0), (5, 2, 2), (7, 2, 4), (1, 2, 0), (3, 2, 2), (14, 10, 1), (16, 10, 2),
    (15, 10, 2), (25, 10, 2), (77767, 100, 778), (10**16 + 5, 10, 10**15),
])
def test_rounding_is_half_to_even_and_exact(numerator: int, denominator: int,
                                            expected: int) -> None:
    assert round_half_even(numerator, denominator) == expected


def _request(*amounts: int, country: str = "DE", **fields: object) -> PricingRequest:
    from commerce_core.orders import OrderLine  # noqa: PLC0415 - only the pure-rule tests

    return PricingRequest(
        customer_id="alice",
        lines=tuple(OrderLine(f"SKU-{n}", "x", 1, eur(a)) for n, a in enumerate(amounts)),
        destination=attrs.evolve(ADDRESS, country=country), **fields)  # type: ignore[arg-type]


def _standard(*, inclusive: bool = False, rate: int | None = 1900) -> StandardPricing:
    pricing = StandardPricing(InMemoryPricingRules(), prices_include_tax=inclusive)
    if rate is not None:
        pricing.put_tax_rate(TaxRate(country="DE", rate_bp=rate))
    return pricing


@pytest.mark.parametrize(("base", "rate", "tax"), [
    (4093, 1900, 778),   # 777.67
    (25, 1000, 2),       # 2.5: to the even 2
    (35, 1000, 4),       # 3.5: to the even 4
    (0, 1900, 0),
    (1, 700, 0),         # 0.07
    (10**12, 10000, 10**12),
])
def test_an_exclusive_tax_is_the_rounded_share_of_the_base_and_is_added(
    base: int, rate: int, tax: int
) -> None:
    priced = _standard(rate=rate).price(_request(base))
    assert [(t.country, t.rate_bp, t.inclusive, t.amount) for t in priced.taxes] == [
        ("DE", rate, False, eur(tax))]


@pytest.mark.parametrize(("base", "rate", "tax"), [
    (1190, 1900, 190),   # 1190 - 1000
    (5, 10000, 3),       # 5 - round(2.5) = 5 - 2
    (7, 10000, 3),       # 7 - round(3.5) = 7 - 4
    (1, 1900, 0),        # 1 - round(0.84)
    (100, 0, 0),
])
def test_an_inclusive_tax_is_the_part_of_the_base_that_is_tax(
    base: int, rate: int, tax: int
) -> None:
    priced = _standard(inclusive=True, rate=rate).price(_request(base))
    assert [(t.inclusive, t.amount) for t in priced.taxes] == [(True, eur(tax))]


def test_no_rate_for_the_destination_means_no_tax_entry() -> None:
    assert _standard().price(_request(1000, country="FR")).taxes == ()
    assert _standard(rate=None).price(_request(1000)).taxes == ()


@pytest.mark.parametrize(("subtotal", "percent", "discount"), [
    (25, 1000, 2), (35, 1000, 4), (3998, 1000, 400), (1, 5000, 0), (3, 5000, 2),
    (999, 10000, 999),
])
def test_a_percent_voucher_takes_the_rounded_share_of_the_subtotal(
    subtotal: int, percent: int, discount: int
) -> None:
    pricing = _standard(rate=None)
    pricing.put_voucher(Voucher(code="P", kind=VoucherKind.PERCENT, percent_bp=percent))
    priced = pricing.price(_request(subtotal, voucher_code="p"))
    assert [(a.kind, a.code, a.amount) for a in priced.adjustments] == [
        (AdjustmentKind.DISCOUNT, "P", eur(discount))]
    assert priced.voucher is not None and priced.voucher.code == "P"


def test_a_fixed_voucher_above_the_subtotal_takes_the_subtotal_and_never_the_shipping(
) -> None:
    pricing = _standard()
    pricing.put_shipping_option(ShippingOption(code="std", name="Std", price=eur(495)))
    pricing.put_voucher(Voucher(code="BIG", kind=VoucherKind.FIXED, amount=eur(10_000)))
    request = _request(1200, 300, shipping_option="std", voucher_code="BIG")
    priced = pricing.price(request)
    assert [(a.kind, a.amount.amount) for a in priced.adjustments] == [
        (AdjustmentKind.SHIPPING, 495), (AdjustmentKind.DISCOUNT, 1500)]
    # the base is the shipping alone: 495 * 19 % = 94.05
    assert [t.amount.amount for t in priced.taxes] == [94]


def test_a_voucher_below_its_minimum_subtotal_or_in_another_currency_does_not_apply() -> None:
    pricing = _standard()
    pricing.put_voucher(Voucher(code="MIN", kind=VoucherKind.FIXED, amount=eur(500),
                                min_subtotal=eur(2000)))
    pricing.put_voucher(Voucher(code="USD", kind=VoucherKind.FIXED,
                                amount=Money(500, "USD")))
    pricing.put_voucher(Voucher(code="OFF", kind=VoucherKind.PERCENT, percent_bp=100,
                                active=False))
    assert pricing.price(_request(2000, voucher_code="MIN")).voucher is not None
    for code, amount, reason in [("MIN", 1999, "min-subtotal"), ("USD", 5000, "currency"),
                                 ("OFF", 5000, "inactive"), ("NONE", 5000, "unknown")]:
        with pytest.raises(VoucherNotApplicable) as refused:
            pricing.price(_request(amount, voucher_code=code))
        assert refused.value.reason == reason
        assert refused.value.errors[0].path == "voucher_code"


@pytest.mark.parametrize(("option", "country", "message"), [
    (None, "DE", "required for DE: one of de-only, everywhere"),
    ("nope", "DE", "unknown shipping option 'nope'"),
    ("retired", "DE", "shipping option 'retired' is not available"),
    ("de-only", "AT", "shipping option 'de-only' does not ship to AT"),
    ("dollars", "DE", "shipping option 'dollars' is priced in USD, the order is in EUR"),
])
def test_a_shipping_option_that_does_not_fit_is_refused_on_its_field(
    option: str | None, country: str, message: str
) -> None:
    pricing = _standard()
    pricing.put_shipping_option(ShippingOption(code="de-only", name="DE", price=eur(495),
                                               countries=["DE"]))
    pricing.put_shipping_option(ShippingOption(code="everywhere", name="World",
                                               price=eur(1995)))
    pricing.put_shipping_option(ShippingOption(code="retired", name="Old", price=eur(1),
                                               active=False))
    pricing.put_shipping_option(ShippingOption(code="dollars", name="USD",
                                               price=Money(100, "USD"), countries=["US"]))
    if option == "dollars":
        pricing.put_shipping_option(ShippingOption(code="dollars", name="USD",
                                                   price=Money(100, "USD")))
    with pytest.raises(InvalidInput) as refused:
        pricing.price(_request(1000, country=country, shipping_option=option))
    assert [(e.path, e.message) for e in refused.value.errors] == [("shipping_option",
                                                                     message)]


def test_no_option_is_needed_where_none_ships() -> None:
    pricing = _standard()
    pricing.put_shipping_option(ShippingOption(code="de-only", name="DE", price=eur(495),
                                               countries=["DE"]))
    assert pricing.price(_request(1000, country="FR")).adjustments == ()


@pytest.mark.parametrize(("thing", "path"), [
    (ShippingOption(code="bad code", name="x", price=eur(1)), "code"),
    (ShippingOption(code="x", name="\u202e", price=eur(1)), "name"),
    (ShippingOption(code="x", name="x", price=eur(1), countries=[]), "countries"),
    (ShippingOption(code="x", name="x", price=eur(1), countries=["de"]), "countries"),
    (TaxRate(country="DEU", rate_bp=1900), "country"),
    (TaxRate(country="DE", rate_bp=10_001), "rate_bp"),
    (TaxRate(country="DE", rate_bp=-1), "rate_bp"),
    (Voucher(code="V", kind=VoucherKind.PERCENT), "percent_bp"),
    (Voucher(code="V", kind=VoucherKind.PERCENT, percent_bp=0), "percent_bp"),
    (Voucher(code="V", kind=VoucherKind.PERCENT, percent_bp=10, amount=eur(1)), "amount"),
    (Voucher(code="V", kind=VoucherKind.FIXED), "amount"),
    (Voucher(code="V", kind=VoucherKind.FIXED, amount=eur(0)), "amount"),
    (Voucher(code="V", kind=VoucherKind.FIXED, amount=eur(1), percent_bp=5), "percent_bp"),
    (Voucher(code="V", kind=VoucherKind.FIXED, amount=eur(1),
             min_subtotal=Money(1, "USD")), "min_subtotal"),
    (Voucher(code="V", kind=VoucherKind.FIXED, amount=eur(1), usage_limit=0), "usage_limit"),
    (Voucher(code="V", kind="bogus"), "kind"),  # type: ignore[arg-type]
])
def test_configuration_that_makes_no_sense_is_refused_and_not_stored(
    thing: ShippingOption | TaxRate | Voucher, path: str
) -> None:
    rules = InMemoryPricingRules()
    pricing = StandardPricing(rules)
    put = {ShippingOption: pricing.put_shipping_option, TaxRate: pricing.put_tax_rate,
           Voucher: pricing.put_voucher}[type(thing)]
    with pytest.raises(InvalidInput) as refused:
        put(thing)  # type: ignore[operator]
    assert path in [e.path for e in refused.value.errors]
    assert not rules.shipping_options() and not rules.tax_rates() and not rules.vouchers()


# -- priced orders, on every backend ---------------------------------------------------------

def test_a_priced_order_charges_shipping_discount_and_tax_and_authorizes_its_total(
    shop: Platform, gateway: SandboxPaymentGateway
) -> None:
    placed = shop.checkout.place_order(
        place(("MUG", 2), ("POT", 1), voucher_code="welcome10", email="ada@example.com",
              metadata={"gift_note": "Happy birthday!\nAda", "cart_id": "c-42"}),
        idempotency_key="k1")
    # subtotal 2 x 12.50 + 39.00 = 64.00; shipping 4.95; 10 % off 6.40; VAT 19 % of 62.55
    assert placed.subtotal == eur(6400)
    assert [(a.kind, a.code, a.label, a.signed) for a in placed.adjustments] == [
        (AdjustmentKind.SHIPPING, "standard", "Standard", 495),
        (AdjustmentKind.DISCOUNT, "WELCOME10", "10 % off", -640)]
    assert [(t.country, t.rate_bp, t.inclusive, t.amount) for t in placed.taxes] == [
        ("DE", 1900, False, eur(1188))]  # 1188.45
    assert placed.total == eur(6400 + 495 - 640 + 1188)
    assert placed.voucher_code == "WELCOME10" and placed.email == "ada@example.com"
    assert placed.metadata == {"gift_note": "Happy birthday!\nAda", "cart_id": "c-42"}
    payment = shop.orders.payment(placed)
    assert payment is not None and payment.authorized == placed.total
    assert [a.amount for a in gateway.authorizations()] == [placed.total]
    assert shop.orders.get(placed.id) == placed
    assert uses(shop, "WELCOME10") == 1
    check_invariants(shop.order_store, shop.inventory_store, gateway)


def test_prices_that_include_tax_show_the_tax_and_do_not_add_it(
    pricing_and_platform: tuple[StandardPricing, Platform],
) -> None:
    pricing, platform = pricing_and_platform
    inclusive = StandardPricing(pricing.rules, prices_include_tax=True)
    platform.checkout.pricing = inclusive
    inclusive.put_tax_rate(TaxRate(country="DE", rate_bp=1900))
    placed = platform.checkout.place_order(place(("POT", 1), shipping_option=None),
                                           idempotency_key="k1")
    assert placed.total == placed.subtotal == eur(3900)
    assert [(t.inclusive, t.amount) for t in placed.taxes] == [(True, eur(623))]  # 3900-3277


def test_a_quote_prices_exactly_as_placing_and_reserves_and_redeems_nothing(
    shop: Platform, pricing: StandardPricing
) -> None:
    pricing.put_voucher(Voucher(code="ONE", kind=VoucherKind.FIXED, amount=eur(700),
                                usage_limit=1))
    command = place(("MUG", 3), ("TEA", 2), shipping_option="express", voucher_code="ONE")
    before = shop.inventory.availability(["MUG", "TEA"])
    quoted = shop.checkout.quote(quote_of(command))
    again = shop.checkout.quote(quote_of(command))
    assert shop.inventory.availability(["MUG", "TEA"]) == before
    assert uses(shop, "ONE") == 0 and again == quoted
    placed = shop.checkout.place_order(command, idempotency_key="k1")
    assert (quoted.lines, quoted.adjustments, quoted.taxes, quoted.subtotal, quoted.total) == (
        placed.lines, placed.adjustments, placed.taxes, placed.subtotal, placed.total)
    assert quoted.voucher_code == placed.voucher_code == "ONE"
    with pytest.raises(VoucherNotApplicable) as used_up:  # now the only use is taken
        shop.checkout.quote(quote_of(command))
    assert used_up.value.reason == "used-up"


def test_a_replay_never_redeems_twice_and_answers_as_before_when_the_voucher_is_gone(
    shop: Platform, pricing: StandardPricing
) -> None:
    pricing.put_voucher(Voucher(code="TWO", kind=VoucherKind.PERCENT, percent_bp=500,
                                usage_limit=2))
    command = place(("MUG", 1), voucher_code="TWO")
    first = shop.checkout.place_order(command, idempotency_key="k1")
    assert shop.checkout.place_order(command, idempotency_key="k1") == first
    assert uses(shop, "TWO") == 1
    pricing.put_voucher(Voucher(code="TWO", kind=VoucherKind.PERCENT, percent_bp=500,
                                usage_limit=2, active=False))
    assert shop.checkout.place_order(command, idempotency_key="k1") == first
    with pytest.raises(VoucherNotApplicable):
        shop.checkout.place_order(command, idempotency_key="k2")
    assert uses(shop, "TWO") == 1


def test_a_usage_limit_holds_and_failed_or_cancelled_orders_give_their_use_back(
    shop: Platform, pricing: StandardPricing, gateway: SandboxPaymentGateway
) -> None:
    pricing.put_voucher(Voucher(code="DUO", kind=VoucherKind.FIXED, amount=eur(100),
                                usage_limit=2))
    one = shop.checkout.place_order(place(("TEA", 1), voucher_code="DUO", customer="a"),
                                    idempotency_key="k")
    with pytest.raises(PaymentDeclined) as declined:
        shop.checkout.place_order(place(("TEA", 1), voucher_code="DUO", customer="b",
                                        token="tok_declined"), idempotency_key="k")
    failed = shop.orders.get(str(declined.value.order_id))
    assert failed.status is OrderStatus.FAILED and failed.voucher_code == "DUO"
    two = shop.checkout.place_order(place(("TEA", 1), voucher_code="DUO", customer="c"),
                                    idempotency_key="k")
    assert uses(shop, "DUO") == 2
    with pytest.raises(VoucherNotApplicable) as used_up:
        shop.checkout.place_order(place(("TEA", 1), voucher_code="DUO", customer="d"),
                                  idempotency_key="k")
    assert used_up.value.reason == "used-up"
    assert used_up.value.order_id is None  # refused before any order was written
    shop.checkout.cancel(one.id)
    assert uses(shop, "DUO") == 1
    shop.checkout.place_order(place(("TEA", 1), voucher_code="DUO", customer="d"),
                              idempotency_key="k")
    shop.checkout.ship(two.id, carrier="DHL", tracking_number="T1")
    shop.checkout.refund(two.id, reason="returned")  # a refund keeps the use: it was used
    assert uses(shop, "DUO") == 2
    check_invariants(shop.order_store, shop.inventory_store, gateway,
                     voucher_limits={"DUO": 2})


def test_a_once_per_customer_voucher_is_refused_the_second_time(
    shop: Platform, pricing: StandardPricing
) -> None:
    pricing.put_voucher(Voucher(code="HELLO", kind=VoucherKind.PERCENT, percent_bp=1500,
                                once_per_customer=True))
    first = shop.checkout.place_order(place(("MUG", 1), voucher_code="HELLO"),
                                      idempotency_key="k1")
    for attempt in (lambda: shop.checkout.quote(quote_of(place(("MUG", 1),
                                                                voucher_code="hello"))),
                    lambda: shop.checkout.place_order(place(("MUG", 1), voucher_code="hello"),
                                                      idempotency_key="k2")):
        with pytest.raises(VoucherNotApplicable) as refused:
            attempt()
        assert refused.value.reason == "already-used"
    shop.checkout.place_order(place(("MUG", 1), voucher_code="HELLO", customer="bob"),
                              idempotency_key="k1")
    shop.checkout.cancel(first.id)
    shop.checkout.place_order(place(("MUG", 1), voucher_code="HELLO"), idempotency_key="k3")


def test_refunds_stay_true_to_what_was_captured_whatever_the_adjustments(
    shop: Platform, gateway: SandboxPaymentGateway
) -> None:
    placed = shop.checkout.place_order(place(("POT", 1), voucher_code="FIVER"),
                                       idempotency_key="k1")
    total = placed.total.amount  # 3900 + 495 - 500 + 19 % of 3895 (740.05)
    assert total == 3900 + 495 - 500 + 740
    shop.checkout.ship(placed.id, carrier="DHL", tracking_number="T1")
    shop.checkout.refund(placed.id, amount=eur(495), reason="late delivery")
    refunded = shop.checkout.refund(placed.id, reason="returned")
    payment = shop.orders.payment(refunded)
    assert payment is not None and refunded.status is OrderStatus.REFUNDED
    assert payment.captured.amount == payment.refunded.amount == total
    check_invariants(shop.order_store, shop.inventory_store, gateway)


def test_the_default_pricing_is_the_lines_alone(platform: Platform) -> None:
    seed(platform)
    assert isinstance(platform.checkout.pricing, LinesOnly)
    placed = platform.checkout.place_order(place(("MUG", 2), shipping_option=None),
                                           idempotency_key="k1")
    assert placed.adjustments == () and placed.taxes == ()
    assert placed.total == placed.subtotal == eur(2500)


def test_a_command_fingerprint_without_pricing_fields_is_what_it_was() -> None:
    # a key recorded by 0.1 must still replay: the digest of its four fields, unchanged
    command = place(("MUG", 2), shipping_option=None)
    old = {"customer_id": "alice", "lines": [{"sku": "MUG", "quantity": 2}],
           "payment_token": "tok_visa", "shipping_address": attrs.asdict(ADDRESS)}
    digest = hashlib.sha256(json.dumps(old, sort_keys=True,
                                       separators=(",", ":")).encode()).hexdigest()
    assert command.fingerprint() == digest
    assert place(("MUG", 2)).fingerprint() != digest
    assert place(("MUG", 2), metadata={"a": "1"}).fingerprint() != place(
        ("MUG", 2), metadata={"a": "2"}).fingerprint()


# -- what a pricing adapter may get wrong -----------------------------------------------------

class _Answer:
    def __init__(self, answer: Pricing | Exception) -> None:
        self.answer = answer

    def price(self, request: PricingRequest) -> Pricing:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.mark.parametrize("answer", [
    Pricing(adjustments=(Adjustment(AdjustmentKind.SHIPPING, "s", "S", Money(1, "USD")),)),
    Pricing(adjustments=(Adjustment(AdjustmentKind.DISCOUNT, "d", "D", eur(1251)),)),
    Pricing(adjustments=(Adjustment(AdjustmentKind.DISCOUNT, "d", "D", eur(1)),),
            voucher=__import__("commerce_core.pricing", fromlist=["VoucherUse"])
            .VoucherUse(code="X")),
])
def test_a_pricing_answer_the_checkout_cannot_take_is_refused_with_nothing_written(
    platform: Platform, answer: Pricing
) -> None:
    seed(platform)
    platform.checkout.pricing = _Answer(answer)
    for attempt in (lambda: platform.checkout.quote(quote_of(place(("MUG", 1)))),
                    lambda: platform.checkout.place_order(place(("MUG", 1)),
                                                          idempotency_key="k1")):
        with pytest.raises(PricingError):
            attempt()
    assert platform.orders.list().items == []
    assert platform.inventory.availability(["MUG"]) == {"MUG": 10}


def test_a_pricing_that_cannot_answer_now_writes_nothing(platform: Platform) -> None:
    seed(platform)
    platform.checkout.pricing = _Answer(PricingUnavailable("the tax service timed out"))
    with pytest.raises(PricingUnavailable):
        platform.checkout.place_order(place(("MUG", 1)), idempotency_key="k1")
    assert platform.orders.list().items == []
    platform.checkout.pricing = LinesOnly()
    assert platform.checkout.place_order(place(("MUG", 1)), idempotency_key="k1").total == eur(
        1250)


def test_a_total_beyond_the_largest_amount_is_invalid_input(platform: Platform) -> None:
    seed(platform)
    platform.inventory.upsert_product("GOLD", name="Gold", price=Money(10**12, EUR))
    platform.checkout.pricing = _Answer(Pricing(adjustments=(
        Adjustment(AdjustmentKind.FEE, "handling", "Handling", eur(1)),)))
    with pytest.raises(InvalidInput) as refused:
        platform.checkout.place_order(place(("GOLD", 1)), idempotency_key="k1")
    assert refused.value.errors[0].path == "lines"
    platform.checkout.pricing = LinesOnly()
    for attempt in (lambda: platform.checkout.place_order(place(("GOLD", 2)),
                                                          idempotency_key="k2"),
                    lambda: platform.checkout.quote(quote_of(place(("GOLD", 2))))):
        with pytest.raises(InvalidInput) as refused:  # the lines alone are too much
            attempt()
        assert [e.path for e in refused.value.errors] == ["lines"]
    assert platform.orders.list().items == []


def test_an_order_of_nothing_to_pay_is_refused_by_quotes_and_placing_alike(
    shop: Platform, pricing: StandardPricing
) -> None:
    pricing.put_shipping_option(ShippingOption(code="pickup", name="Pick-up",
                                               price=eur(0), countries=["DE"]))
    pricing.put_voucher(Voucher(code="ALL", kind=VoucherKind.PERCENT, percent_bp=10_000,
                                usage_limit=5))
    pricing.put_voucher(Voucher(code="BIG", kind=VoucherKind.FIXED, amount=eur(5000)))
    for code in ("ALL", "BIG"):
        command = place(("MUG", 2), shipping_option="pickup", voucher_code=code)
        for attempt in (lambda c=command: shop.checkout.quote(quote_of(c)),
                        lambda c=command: shop.checkout.place_order(c, idempotency_key="k")):
            with pytest.raises(VoucherNotApplicable) as refused:
                attempt()
            assert refused.value.reason == "covers-total"
    # with shipping left to pay, the same voucher applies: shipping is never discounted
    kept = shop.checkout.place_order(place(("MUG", 2), voucher_code="ALL"), idempotency_key="s")
    assert kept.subtotal == eur(2500) and kept.total == eur(495 + 94)
    payment = shop.orders.payment(kept)
    assert payment is not None and payment.amount == kept.total
    shop.inventory.upsert_product("FREE", name="Sample", price=eur(0))
    shop.inventory.adjust_stock("FREE", "BER", delta=5, reason="receipt")
    free = place(("FREE", 1), shipping_option="pickup")
    for tries in (lambda: shop.checkout.quote(quote_of(free)),
                  lambda: shop.checkout.place_order(free, idempotency_key="f")):
        with pytest.raises(InvalidInput) as nothing:
            tries()
        assert not isinstance(nothing.value, VoucherNotApplicable)
        assert [e.path for e in nothing.value.errors] == ["lines"]
    assert [o.id for o in shop.orders.list().items] == [kept.id]
    assert uses(shop, "ALL") == 1
    assert shop.inventory.availability(["FREE"])["FREE"] == 5


def test_a_quote_keeps_to_the_shops_checkout_limits_as_placing_does(
    shop: Platform
) -> None:
    shop.checkout.limits = CheckoutLimits(max_units_per_sku=2, max_open_orders=1)
    for attempt in (lambda: shop.checkout.quote(quote_of(place(("MUG", 3)))),
                    lambda: shop.checkout.place_order(place(("MUG", 3)), idempotency_key="a")):
        with pytest.raises(InvalidInput) as refused:
            attempt()
        assert refused.value.errors[0].path == "lines[0].quantity"
    shop.checkout.place_order(place(("MUG", 2)), idempotency_key="b")
    for attempt in (lambda: shop.checkout.quote(quote_of(place(("MUG", 1)))),
                    lambda: shop.checkout.place_order(place(("MUG", 1)), idempotency_key="c")):
        with pytest.raises(TooManyOpenOrders):
            attempt()


# -- contact and metadata ---------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "path"), [
    ({"email": "not-an-address"}, "email"),
    ({"email": "ada@localhost"}, "email"),
    ({"email": "a" * 65 + "@example.com"}, "email"),
    ({"email": "ada@example.com\n"}, "email"),
    ({"metadata": {f"k{n}": "v" for n in range(21)}}, "metadata"),
    ({"metadata": {"Gift": "x"}}, "metadata"),
    ({"metadata": {"k" * 41: "x"}}, "metadata"),
    ({"metadata": {"note": "x" * 501}}, "metadata.note"),
    ({"metadata": {"note": "\u202egpj.exe"}}, "metadata.note"),
    ({"metadata": {"note": "a\x00b"}}, "metadata.note"),
    ({"metadata": {"note": "a\rb"}}, "metadata.note"),
    ({"metadata": {"note": 7}}, "metadata.note"),
    ({"metadata": ["note"]}, "metadata"),
    ({"shipping_option": "bad code"}, "shipping_option"),
    ({"voucher_code": "x" * 65}, "voucher_code"),
])
def test_bad_contact_metadata_or_codes_are_refused_with_nothing_written(
    shop: Platform, fields: dict[str, Any], path: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        shop.checkout.place_order(place(("MUG", 1), **fields), idempotency_key="k1")
    assert path in [e.path for e in refused.value.errors]
    with pytest.raises(InvalidInput):
        shop.checkout.quote(quote_of(place(("MUG", 1), **fields)))
    assert shop.orders.list().items == []


def test_metadata_at_its_limits_is_kept_whole(shop: Platform) -> None:
    metadata = {f"key.{n:02d}-x_{'y' * 30}": "é" * 500 for n in range(20)}
    metadata["key.00-x_" + "y" * 30] = "Happy birthday,\r\nAda\n\tfrom Bob" + "é" * 460
    placed = shop.checkout.place_order(place(("MUG", 1), metadata=metadata, email="A.B+c@x.io"),
                                       idempotency_key="k1")
    assert shop.orders.get(placed.id).metadata == metadata


def test_an_admin_changes_metadata_by_merging_and_the_change_is_an_event(
    shop: Platform
) -> None:
    placed = shop.checkout.place_order(
        place(("MUG", 1), email="ada@example.com", metadata={"cart_id": "c-1", "gift": "yes"}),
        idempotency_key="k1")
    changed = shop.orders.update_metadata(placed.id, {"gift": None, "crm_id": "42",
                                                      "absent": None})
    assert changed.metadata == {"cart_id": "c-1", "crm_id": "42"}
    assert shop.orders.get(placed.id) == changed and changed.version == placed.version + 1
    assert shop.orders.update_metadata(placed.id, {"crm_id": "42"}) == changed  # no change
    with shop.order_store.unit_of_work() as uow:
        events = [e for e in uow.outbox.pending(limit=100) if e.aggregate_id == placed.id]
    confirmed = next(e for e in events if e.type == "order.confirmed")
    assert confirmed.payload["email"] == "ada@example.com"
    assert confirmed.payload["metadata"] == {"cart_id": "c-1", "gift": "yes"}
    assert confirmed.payload["total"] == {"amount": placed.total.amount, "currency": EUR}
    assert confirmed.payload["adjustments"][0]["code"] == "standard"
    [metadata_event] = [e for e in events if e.type == "order.metadata_changed"]
    assert metadata_event.payload["metadata"] == changed.metadata
    assert metadata_event.payload["changed"] == ["absent", "crm_id", "gift"]


def test_metadata_changes_that_break_the_limits_or_find_a_busy_order_change_nothing(
    shop: Platform
) -> None:
    placed = shop.checkout.place_order(place(("MUG", 1), metadata={
        f"k{n}": "v" for n in range(19)}), idempotency_key="k1")
    for changes, path in [({"a": "1", "b": "2"}, "metadata"), ({"BAD": "x"}, "metadata"),
                          ({"k1": "x" * 501}, "metadata.k1"), ({"k1": 5}, "metadata.k1")]:
        with pytest.raises(InvalidInput) as refused:
            shop.orders.update_metadata(placed.id, changes)  # type: ignore[arg-type]
        assert refused.value.errors[0].path == path
    with pytest.raises(NotFound):
        shop.orders.update_metadata("ord_missing", {"a": "1"})
    with shop.order_store.unit_of_work() as uow:  # a shipment in progress
        uow.orders.update(shop.orders.get(placed.id).step(SagaStep.SHIPPING, placed.updated_at))
        uow.commit()
    with pytest.raises(ConcurrencyConflict):
        shop.orders.update_metadata(placed.id, {"a": "1"})
    assert len(shop.orders.get(placed.id).metadata) == 19


# -- the adapter guide's example: a shop with a tax service of its own -----------------------

def _example() -> Any:
    path = Path(__file__).resolve().parents[2] / "examples" / "tax_service_pricing.py"
    spec = importlib.util.spec_from_file_location("tax_service_pricing", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _TaxService:
    """The shop's tax service, as the guide's example calls it: 7 % on anything in DE
    (books), or no answer at all."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, int]] = []
        self.down = False

    def rate_for(self, *, country: str, postal_code: str, amount: int,
                 currency: str) -> tuple[int, int]:
        if self.down:
            raise TimeoutError("no answer in 2 s")
        self.asked.append((country, postal_code, amount))
        return (700, round_half_even(amount * 700, 10_000)) if country == "DE" else (0, 0)


def test_the_guides_tax_service_pricing_works_as_the_guide_says(platform: Platform) -> None:
    seed(platform)
    standard = StandardPricing(InMemoryPricingRules())
    standard.put_shipping_option(ShippingOption(code="standard", name="Standard",
                                                price=eur(495)))
    standard.put_voucher(Voucher(code="FIVE", kind=VoucherKind.FIXED, amount=eur(500)))
    service = _TaxService()
    platform.checkout.pricing = _example().TaxServicePricing(standard, service)
    placed = platform.checkout.place_order(place(("POT", 1), voucher_code="five"),
                                           idempotency_key="k1")
    # 39.00 + 4.95 - 5.00 = 38.95, 7 % of it by the service: 2.73
    assert service.asked == [("DE", "10115", 3895)]
    assert [(t.rate_bp, t.amount) for t in placed.taxes] == [(700, eur(273))]
    assert placed.total == eur(3895 + 273)
    abroad = platform.checkout.place_order(
        place(("MUG", 1), address=attrs.evolve(ADDRESS, country="FR")), idempotency_key="k2")
    assert abroad.taxes == () and abroad.total == eur(1250 + 495)
    service.down = True
    with pytest.raises(PricingUnavailable):
        platform.checkout.place_order(place(("MUG", 1)), idempotency_key="k3")
    assert len(platform.orders.list().items) == 2
