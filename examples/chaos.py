"""The fault-injection run: hundreds of orders through the reference server with the Stripe
adapter against the local Stripe stand-in, while the provider fails (5xx, connection resets,
lost responses after the work, latency, duplicate and out-of-order webhooks, refused refunds,
refunds made by hand in its dashboard, holds that lapse within seconds, so that captures are
lost and repeated around their deadlines), reservations expire under checkouts slower than
their lifetime, recovery sweeps run every half second, and the server is killed with SIGKILL
and restarted at random moments. Afterwards, after `recover()`, the stores and the provider's
books are compared.

    python examples/chaos.py --seed 1 --orders 300 --db sqlite
    (or: make chaos SEED=1 ORDERS=300 DB=sqlite; DB is sqlite, postgresql or mariadb)

Orders are priced: standard shipping, 19 % VAT, and a third of them name a voucher (one
limited to a few uses, one once per customer).

The last line printed is one JSON object: ``db``, ``orders``, ``confirmed``, ``failed``,
``cancelled``, ``with_voucher``, then the thirteen that must be 0 (``oversold_units``,
``unresolved_orders``, ``authorizations_without_order``, ``confirmed_without_authorization``,
``double_charges``, ``amount_mismatches``, ``ledger_mismatches``, ``recovery_errors``,
``total_mismatches``: a payment not for its order's total, ``voucher_overuse``: uses beyond a
limit, ``voucher_miscounts``: uses that are not the orders keeping the voucher,
``fulfilment_mismatches``: orders whose parcels are not their lines' shipped units, or whose
stock held is not what they have left to ship, ``return_mismatches``: more returned than
shipped, a return half-way, a restocked return not booked exactly once under reason
``return``, returns refunded more than the payment gave back); the exit status is 1 if any
of those is not.

A sixth of what the admins ship goes in parts: a first parcel of one unit, then the rest
in a second parcel, or the rest cancelled. A third of the orders shipped whole have a unit
sent back: the return is received (restocked or written off), then refunded (the shipping
too, now and then; asked again under a new key when the provider refuses) or rejected.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from commerce_core import Order, OrderStatus, Platform
from commerce_core.inventory import Reservation
from commerce_core.orders import SagaStep
from commerce_core.testing import fulfilment_problems, return_problems
from commerce_core_stripe import StripeBooks

HERE = Path(__file__).resolve().parent
SECRET = "whsec_chaos"
ADMIN = "chaos-admin-key-for-the-run"
SKUS = {"MUG-01": 1250, "POT-01": 3900, "TEA-01": 800, "CUP-01": 650}
MUST_BE_ZERO = ("oversold_units", "unresolved_orders", "authorizations_without_order",
                "confirmed_without_authorization", "double_charges", "amount_mismatches",
                "ledger_mismatches", "recovery_errors", "total_mismatches", "voucher_overuse",
                "voucher_miscounts", "fulfilment_mismatches", "return_mismatches")
#: The vouchers the buyers try, and their usage limits (``None``: none, once per customer).
VOUCHERS: dict[str, int | None] = {"CHAOS5": 10, "ONCE10": None}
#: Where the two stores go for each ``--db``: two databases of their own per run.
SERVERS = {"postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/{db}",
           "mariadb": "mysql+pymysql://root@127.0.0.1:3306/{db}"}
#: A share of the holds lapse by themselves this many seconds after they are made (Stripe's
#: last 7 days): so that shipments, lost captures and recovery sweeps meet their deadlines.
SHORT_HOLDS = {"short_holds": 0.4, "hold_seconds": 2.0, "hold_seconds_max": 8.0}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not come up")


class Server:
    """commerce-server in a process that can be killed and started again on its port."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        self.env = env
        self.log = (folder / "server.log").open("ab")
        self.process: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()
        self.kills = 0

    def start(self) -> None:
        server = str(Path(sys.executable).with_name("commerce-server"))
        self.process = subprocess.Popen(  # noqa: S603 - our own server, beside this Python
            [server, "--port", str(self.port)], cwd=self.folder, env=self.env,
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_until_up(f"{self.url}/healthz", self.process, "commerce-server")

    def kill_and_restart(self) -> None:
        """SIGKILL: no shutdown, no clean-up; sagas in flight stop wherever they are."""
        with self.lock:
            if self.process is not None:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait()
                self.kills += 1
            self.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def call(http: httpx.Client, method: str, path: str, *, attempts: int = 40,
         **kwargs: Any) -> httpx.Response | None:
    """A client that keeps trying through restarts and 503s (same idempotency key)."""
    for attempt in range(attempts):
        try:
            response = http.request(method, path, **kwargs)
        except httpx.TransportError:
            time.sleep(min(0.05 * 2 ** attempt, 1.0))
            continue
        if response.status_code == 503 or (
                response.status_code == 409
                and response.json().get("type", "").endswith("idempotency-key-in-use")):
            time.sleep(min(0.05 * 2 ** attempt, 1.0))
            continue
        return response
    return None


class Load:
    """Buyers placing the planned orders, an admin shipping, cancelling and refunding what
    they confirm, and a killer restarting the server underneath them all."""

    def __init__(self, server: Server, args: argparse.Namespace, keys: list[str],
                 stripe_base: str) -> None:
        rng = random.Random(args.seed)
        self.server = server
        self.args = args
        self.stripe_base = stripe_base
        self.todo = iter([
            (n, rng.choice(keys), rng.sample(sorted(SKUS), rng.randint(1, 2)),
             "pm_card_chargeDeclined" if rng.random() < 0.1 else "pm_card_visa",
             rng.choice(sorted(VOUCHERS)) if rng.random() < 0.33 else None)
            for n in range(args.orders)])
        self.lock = threading.Lock()
        self.outcomes: Counter[str] = Counter()
        self.confirmed: list[str] = []
        self.done = threading.Event()

    def count(self, what: str, response: httpx.Response | None) -> None:
        with self.lock:
            self.outcomes[f"{what} {'gave up' if response is None else response.status_code}"
                          ] += 1

    def buyer(self, worker: int) -> None:
        rng = random.Random(self.args.seed * 100 + worker)
        with httpx.Client(base_url=self.server.url, timeout=10) as http:
            while True:
                with self.lock:
                    item = next(self.todo, None)
                if item is None:
                    return
                n, key, skus, token, voucher = item
                body = {"lines": [{"sku": s, "quantity": rng.randint(1, 3)} for s in skus],
                        "payment": {"token": token}, "shipping_address": {
                            "name": "Chaos", "line1": "1 Main St", "city": "Berlin",
                            "postal_code": "10115", "country": "DE"},
                        "shipping_option": "standard", "voucher_code": voucher,
                        "email": "chaos@example.com", "metadata": {"run": str(n)}}
                response = call(http, "POST", "/v1/orders", json=body, headers={
                    "Authorization": f"Bearer {key}", "Idempotency-Key": f"chaos-{n}"})
                self.count("place", response)
                if response is not None and response.status_code == 201:
                    with self.lock:
                        self.confirmed.append(response.json()["id"])

    def admin(self, worker: int) -> None:
        rng = random.Random(self.args.seed * 10 + 7 + worker)
        with httpx.Client(base_url=self.server.url, timeout=10) as http:
            while not self.done.is_set() or self.confirmed:
                with self.lock:
                    order_id = self.confirmed.pop(0) if self.confirmed else None
                if order_id is None:
                    time.sleep(0.05)
                    continue
                roll = rng.random()
                if roll >= 0.6:
                    continue  # stays confirmed (until its hold lapses, within seconds)
                time.sleep(rng.uniform(0, 1.0))  # the warehouse takes its time
                if 0.2 <= roll < 0.35:
                    self.ship_in_parts(http, rng, order_id)
                    continue
                action = "cancel" if roll < 0.2 else "ship"
                body = {"carrier": "DHL", "tracking_number": order_id} if action == "ship" \
                    else None
                response = call(http, "POST", f"/v1/orders/{order_id}/{action}", json=body,
                                headers=self.headers(f"{action}-{order_id}"), attempts=10)
                self.count(action, response)
                if action == "ship" and response is not None and response.status_code == 200:
                    self.refunds(http, rng, order_id, response.json())
                    if rng.random() < 0.33:
                        self.send_back(http, rng, order_id, response.json())

    def ship_in_parts(self, http: httpx.Client, rng: random.Random, order_id: str) -> None:
        """One unit of the first line in a first parcel, then the rest in a second, or the
        rest cancelled (its share refunded); each under a key of its own."""
        found = call(http, "GET", f"/v1/orders/{order_id}", headers=self.headers("-"),
                     attempts=10)
        if found is None or found.status_code != 200:
            return
        first = found.json()["lines"][0]
        parcel = {"carrier": "DHL", "tracking_number": f"{order_id}-1",
                  "lines": [{"sku": first["sku"], "quantity": 1}]}
        response = call(http, "POST", f"/v1/orders/{order_id}/ship", json=parcel,
                        headers=self.headers(f"parcel-{order_id}"), attempts=10)
        self.count("ship a parcel", response)
        if response is None or response.status_code != 200:
            return
        if response.json()["status"] != "partially_shipped":
            return  # the order was one unit: shipped
        time.sleep(rng.uniform(0, 0.5))
        if rng.random() < 0.5:
            self.count("ship the rest", call(
                http, "POST", f"/v1/orders/{order_id}/ship", attempts=10,
                headers=self.headers(f"rest-{order_id}"),
                json={"carrier": "UPS", "tracking_number": f"{order_id}-2"}))
        else:
            self.count("cancel the rest", call(
                http, "POST", f"/v1/orders/{order_id}/cancel", attempts=10,
                headers=self.headers(f"cancel-rest-{order_id}")))

    def send_back(self, http: httpx.Client, rng: random.Random, order_id: str,
                  order: dict[str, Any]) -> None:
        """A unit of the first line comes back: received into stock or written off, then
        refunded (the shipping too, now and then) or rejected."""
        line = order["lines"][0]
        asked = call(http, "POST", f"/v1/orders/{order_id}/returns", attempts=10,
                     headers=self.headers(f"return-{order_id}"),
                     json={"lines": [{"sku": line["sku"], "quantity": 1}],
                           "reason": "does not fit"})
        self.count("request a return", asked)
        if asked is None or asked.status_code != 201:
            return
        return_id = asked.json()["id"]
        received = call(http, "POST", f"/v1/returns/{return_id}/receive", attempts=10,
                        headers=self.headers(f"receive-{return_id}"),
                        json={"warehouse": "BER", "restock": rng.random() < 0.7})
        self.count("receive a return", received)
        if received is None or received.status_code != 200:
            return
        if rng.random() < 0.2:
            self.count("reject a return", call(
                http, "POST", f"/v1/returns/{return_id}/reject", attempts=10,
                headers=self.headers(f"reject-{return_id}"), json={"reason": "worn"}))
            return
        shipping = rng.random() < 0.3
        for attempt in range(3):
            answer = call(http, "POST", f"/v1/returns/{return_id}/refund", attempts=10,
                          headers=self.headers(f"refund-{return_id}-{attempt}"),
                          json={"include_shipping": shipping})
            self.count("refund a return", answer)
            if answer is None or answer.status_code != 402:
                break

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN}", "Idempotency-Key": key}

    def refunds(self, http: httpx.Client, rng: random.Random, order_id: str,
                order: dict[str, Any]) -> None:
        """Part of half the shipments refunded; a fifth first refunded by hand in the
        provider's dashboard, then "the rest" asked of the library, which the provider may
        refuse (it learns the dashboard refund from that, or from the webhook), and asked
        again under a new key."""
        roll = rng.random()
        if roll < 0.3:
            self.count("refund", call(
                http, "POST", f"/v1/orders/{order_id}/refund", attempts=10,
                headers=self.headers(f"refund-{order_id}"),
                json={"amount": {"amount": 100, "currency": "EUR"}, "reason": "goodwill"}))
        elif roll < 0.5:
            intent = self.intent_of(order_id)
            if intent is not None:
                made = httpx.post(f"{self.stripe_base}/_control/dashboard_refund:{intent}",
                                  json={"amount": 150}, timeout=10)
                self.count("dashboard refund", made)
            for attempt in range(3):
                answer = call(http, "POST", f"/v1/orders/{order_id}/refund", attempts=10,
                              headers=self.headers(f"rest-{order_id}-{attempt}"),
                              json={"reason": "returned"})
                self.count("refund the rest", answer)
                if answer is None or answer.status_code != 402:
                    break

    def intent_of(self, order_id: str) -> str | None:
        """The PaymentIntent of an order, as someone in the dashboard would find it."""
        for _ in range(10):  # the provider's faults hit the dashboard's searches too
            try:
                found = httpx.get(
                    f"{self.stripe_base}/v1/payment_intents/search", timeout=10,
                    headers={"Authorization": "Bearer sk_test_chaos"},
                    params={"query": f"metadata['commerce_reference']:'{order_id}'"})
            except httpx.TransportError:
                continue
            if found.status_code == 200:
                data = found.json().get("data")
                return str(data[0]["id"]) if data else None
        return None

    def killer(self) -> None:
        rng = random.Random(self.args.seed + 13)
        every = self.args.kill_every
        while not self.done.wait(rng.uniform(every * 0.5, every * 1.5)):
            self.server.kill_and_restart()

    def run(self) -> Counter[str]:
        buyers = [threading.Thread(target=self.buyer, args=(w,))
                  for w in range(self.args.buyers)]
        helpers = [threading.Thread(target=self.admin, args=(n,)) for n in range(2)]
        helpers.append(threading.Thread(target=self.killer))
        for thread in (*buyers, *helpers):
            thread.start()
        for thread in buyers:
            thread.join()
        self.done.set()
        for thread in helpers:
            thread.join()
        return self.outcomes


def figures(platform: Platform, books: StripeBooks, *, db: str,
            recovery_errors: int) -> dict[str, Any]:
    """The books of both sides, compared."""
    orders = list(platform.orders.scan())
    by_id = {o.id: o for o in orders}
    payments = platform.orders.payments(orders)
    counts = Counter(o.status for o in orders)
    records = [r for r in books.authorizations() if r.status != "declined"]
    per_order: dict[str, list[Any]] = defaultdict(list)
    for record in records:
        per_order[record.reference].append(record)

    orphaned = sum(1 for r in records if (r.status in ("authorized", "captured") and (
        r.reference not in by_id or (r.status == "authorized"
                                     and by_id[r.reference].status is not OrderStatus.CONFIRMED))))
    unauthorized = sum(1 for o in orders if o.status is OrderStatus.CONFIRMED and not any(
        r.status == "authorized" and r.captured == 0 for r in per_order[o.id]))
    doubled = sum(1 for rs in per_order.values()
                  if len(rs) > 1 or sum(1 for r in rs if r.captured) > 1)
    mismatched = totals = 0
    for order in orders:
        payment = payments.get(order.id)
        totals += int(payment is None or payment.amount != order.total)
        provider_net = sum(r.captured - r.refunded for r in per_order[order.id])
        store_net = (payment.captured.amount - payment.refunded.amount) if payment else 0
        if provider_net != store_net:
            mismatched += 1
    uses = platform.orders.voucher_uses(sorted(VOUCHERS))
    holders = Counter(o.voucher_code for o in orders
                      if o.voucher_code is not None and not o.gives_back_voucher)
    overuse = sum(max(0, uses[code] - limit) for code, limit in VOUCHERS.items()
                  if limit is not None)
    overuse += sum(max(0, n - 1) for n in Counter(
        o.customer_id for o in orders
        if o.voucher_code == "ONCE10" and not o.gives_back_voucher).values())
    oversold = ledger = 0
    with platform.inventory_store.unit_of_work() as uow:
        sums = uow.movements.sums()
        live = uow.reservations.live()
        levels = uow.stock.levels(sorted(SKUS))
    fulfilment = sum(1 for order in orders if _unfulfilled(order, live))
    returned = len(return_problems(platform.inventory_store, by_id, payments))
    held: Counter[tuple[str, str]] = Counter()
    for reservation in live:
        for line in reservation.outstanding:  # less what shipped in parts
            held[line.sku, line.warehouse] += line.quantity
    for level in levels:
        oversold += max(0, level.reserved - level.on_hand) + max(0, -level.on_hand)
        key = (level.sku, level.warehouse)
        ledger += int(sums.get(key, 0) != level.on_hand) + int(held[key] != level.reserved)
    return {
        "db": db,
        "orders": len(orders),
        "confirmed": counts[OrderStatus.CONFIRMED] + counts[OrderStatus.PARTIALLY_SHIPPED]
        + counts[OrderStatus.SHIPPED]
        + counts[OrderStatus.DELIVERED] + counts[OrderStatus.REFUNDED],
        "failed": counts[OrderStatus.FAILED],
        "cancelled": counts[OrderStatus.CANCELLED],
        "with_voucher": sum(holders.values()),
        "oversold_units": oversold,
        "unresolved_orders": sum(1 for o in orders if o.saga_step is not SagaStep.DONE),
        "authorizations_without_order": orphaned,
        "confirmed_without_authorization": unauthorized,
        "double_charges": doubled,
        "amount_mismatches": mismatched,
        "ledger_mismatches": ledger,
        "recovery_errors": recovery_errors,
        "total_mismatches": totals,
        "voucher_overuse": overuse,
        "voucher_miscounts": sum(int(uses[code] != holders[code]) for code in VOUCHERS),
        "fulfilment_mismatches": fulfilment,
        "return_mismatches": returned,
    }


def _unfulfilled(order: Order, live: Sequence[Reservation]) -> bool:
    """The order's parcels are not its lines' shipped units, or it holds in stock other than
    what it has left to ship, or its status says otherwise (`fulfilment_problems`)."""
    held = next((r for r in live if r.reference == order.id), None)
    return bool(fulfilment_problems(order, held))


def databases(db: str, seed: int, folder: Path) -> tuple[str, str, list[str]]:
    """The two stores' URLs: SQLite files in the folder, or two new databases on the
    server (returned too, to be dropped afterwards)."""
    if db == "sqlite":
        return (f"sqlite:///{folder}/orders.db", f"sqlite:///{folder}/inventory.db", [])
    import sqlalchemy as sa  # noqa: PLC0415 - only for the server databases

    names = [f"chaos_{seed}_{os.getpid()}_{store}" for store in ("orders", "inventory")]
    admin = sa.create_engine(SERVERS[db].format(db="postgres" if db == "postgresql" else ""),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in names:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return SERVERS[db].format(db=names[0]), SERVERS[db].format(db=names[1]), names


def drop(db: str, names: list[str]) -> None:
    if not names:
        return
    import sqlalchemy as sa  # noqa: PLC0415

    admin = sa.create_engine(SERVERS[db].format(db="postgres" if db == "postgresql" else ""),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in names:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}"
                                       + (" WITH (FORCE)" if db == "postgresql" else ""))
    admin.dispose()


def settle(server: Server, stripe_base: str, *, timeout: float = 60) -> None:
    """Let the provider's last events land while the server still runs: every short hold
    has lapsed (all of them, not only those due within a second: one that lapsed while the
    books were read would show a confirmed order without its hold, its webhook still in
    flight), and every webhook is delivered (a refund made in the dashboard while its order
    was mid-step is answered "later", and sent again)."""
    deadline = time.monotonic() + timeout
    short = SHORT_HOLDS["hold_seconds_max"] + 2  # the others last seven days
    while time.monotonic() < deadline:
        state = httpx.get(f"{stripe_base}/_control/state", timeout=30).json()
        due = [i for i in state["payment_intents"] if i["status"] == "requires_capture"
               and (i["latest_charge"] or {}).get("payment_method_details", {})
               .get("card", {}).get("capture_before", 0) <= time.time() + short]
        if not due and not state["undelivered_webhooks"]:
            time.sleep(1.0)  # the last deliveries in flight
            return
        if server.process is not None and server.process.poll() is not None:
            server.start()  # the killer may have left it down
        time.sleep(0.25)


def stock_up(server: Server, orders: int) -> None:
    """The catalogue, its stock, and the shop's pricing: shipping, VAT, two vouchers."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        http.put("/v1/shipping-options/standard", headers=admin, json={
            "name": "Standard", "price": {"amount": 495, "currency": "EUR"},
            "countries": ["DE"]}).raise_for_status()
        http.put("/v1/tax-rates/DE", headers=admin, json={"rate_bp": 1900}).raise_for_status()
        http.put("/v1/vouchers/CHAOS5", headers=admin, json={
            "kind": "fixed", "amount": {"amount": 500, "currency": "EUR"},
            "usage_limit": VOUCHERS["CHAOS5"]}).raise_for_status()
        http.put("/v1/vouchers/ONCE10", headers=admin, json={
            "kind": "percent", "percent_bp": 1000, "once_per_customer": True,
        }).raise_for_status()
        http.put("/v1/warehouses/BER", json={"name": "Berlin"}, headers=admin)
        for sku, cents in SKUS.items():
            http.put(f"/v1/products/{sku}", headers=admin, json={
                "name": sku, "price": {"amount": cents, "currency": "EUR"}})
            http.post(f"/v1/inventory/{sku}/adjustments",
                      headers={**admin, "Idempotency-Key": f"stock-{sku}"}, json={
                          "warehouse": "BER", "delta": max(10, orders),
                          "reason": "chaos stock"})


def recovered(orders_url: str, inventory_url: str, payments_url: str, stripe_base: str,
              db: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Recovery with the provider healthy, then the figures (and the provider's state)."""
    with Platform.from_urls(orders=orders_url, inventory=inventory_url,
                            payments=payments_url) as platform:
        for _ in range(3):
            report = platform.checkout.recover(grace=timedelta(0), limit=100_000)
            if not report.unfinished and not report.failed:
                break
        for failure in report.failed:
            print(f"# recovery could not finish {failure}", file=sys.stderr)
        state = httpx.get(f"{stripe_base}/_control/state", timeout=30).json()
        return figures(platform, StripeBooks(state["payment_intents"]), db=db,
                       recovery_errors=len(report.failed)), state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--buyers", type=int, default=8)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "mariadb"], default="sqlite",
                        help="where both stores go (default: SQLite files)")
    parser.add_argument("--kill-every", type=float, default=1.0,
                        help="seconds between SIGKILLs of the server, on average")
    parser.add_argument("--folder", help="where the stores go (a new temporary folder)")
    args = parser.parse_args()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="commerce-chaos-"))
    folder.mkdir(parents=True, exist_ok=True)
    orders_url, inventory_url, created = databases(args.db, args.seed, folder)

    stripe_port = free_port()
    provider = subprocess.Popen(  # noqa: S603 - this interpreter, a module of ours
        [sys.executable, "-m", "commerce_core_stripe.provider", "--port", str(stripe_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stripe_base = f"http://127.0.0.1:{stripe_port}"
    wait_until_up(f"{stripe_base}/_control/state", provider, "the local Stripe")
    keys = [f"chaos-customer-{n:04d}-key-of-the-run" for n in range(args.buyers)]
    env = {**os.environ,
           "COMMERCE_ORDERS_URL": orders_url,
           "COMMERCE_INVENTORY_URL": inventory_url,
           "COMMERCE_PAYMENTS_URL": f"stripe+http://sk_test_chaos@127.0.0.1:{stripe_port}"
                                    "?timeout=2",
           "COMMERCE_WEBHOOK_SECRETS": SECRET,
           "COMMERCE_API_KEYS": ",".join([f"{ADMIN}=admin"]
                                         + [f"{k}=customer:{k}" for k in keys]),
           "COMMERCE_RATE_LIMIT": "100000/second",
           "COMMERCE_CHECKOUT_RATE_LIMIT": "100000/second",
           # reservations outlived by slow checkouts, swept every half second, while
           # recovery takes over what was left alone for 5 s
           "COMMERCE_RESERVATION_TTL": "2",
           "COMMERCE_RECOVERY_INTERVAL": "0.5",
           "COMMERCE_RECOVERY_GRACE": "5"}
    server = Server(folder, env)
    try:
        server.start()
        stock_up(server, args.orders)
        httpx.post(f"{stripe_base}/_control/webhooks", timeout=10, json={
            "url": f"{server.url}/v1/webhooks/payments/stripe", "secret": SECRET})
        httpx.post(f"{stripe_base}/_control/faults", timeout=10, json={
            "seed": args.seed, "server_errors": 0.05, "resets": 0.03, "lost_responses": 0.05,
            "slow_responses": 0.02, "slow_seconds": 2.5,  # past the adapter's 2 s timeout
            "latency": 0.005, "duplicate_webhooks": 0.2, "reorder_webhooks": 0.2,
            "refund_declines": 0.1, **SHORT_HOLDS})
        started = time.monotonic()
        outcomes = Load(server, args, keys, stripe_base).run()
        elapsed = time.monotonic() - started
        # the provider heals; its last lapses and webhooks land on a running server
        httpx.post(f"{stripe_base}/_control/faults", timeout=10, json={})
        settle(server, stripe_base)
    finally:
        server.stop()
    # the server is down: recover as `commerce-server recover` would, after every deadline
    try:
        result, state = recovered(orders_url, inventory_url, env["COMMERCE_PAYMENTS_URL"],
                                  stripe_base, args.db)
    finally:
        provider.terminate()
        provider.wait()
        drop(args.db, created)
    print(f"# {args.orders} orders on {args.db} in {elapsed:.1f} s, {server.kills} SIGKILLs "
          f"of the server, client outcomes {dict(sorted(outcomes.items()))}, provider calls "
          f"{state['calls']}, provider events {state['events']} (undelivered "
          f"{state['undelivered_webhooks']}), refunds {len(state['refunds'])}, stores in "
          f"{folder if args.db == 'sqlite' else args.db}", file=sys.stderr)
    print(json.dumps(result))
    return 1 if any(result[key] for key in MUST_BE_ZERO) else 0


if __name__ == "__main__":
    sys.exit(main())
