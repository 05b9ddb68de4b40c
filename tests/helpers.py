"""Test doubles and builders shared by the test modules (kept out of conftest, which holds
fixtures only)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from commerce_core import Platform, RetryPolicy
from commerce_core.inventory import InventoryStore
from commerce_core.testing import ManualClock, SandboxPaymentGateway
from tests.conftest import make_stores


@contextmanager
def platform_on(
    backend: str, folder: Path, clock: ManualClock, gateway: SandboxPaymentGateway, *,
    inventory: Callable[[InventoryStore], InventoryStore] | None = None,
    reservation_ttl: timedelta = timedelta(minutes=15),
) -> Iterator[Platform]:
    """A platform on fresh stores of ``backend`` with this clock and provider; ``inventory``
    may wrap the inventory store (to interleave another writer with its units of work)."""
    orders, stock = make_stores(backend, folder)
    with Platform.from_adapters(
        order_store=orders, inventory_store=inventory(stock) if inventory else stock,
        payment_gateway=gateway, clock=clock, retry=RetryPolicy.immediate(),
        reservation_ttl=reservation_ttl,
    ) as platform:
        yield platform


class _Reservations:
    """A reservation repository whose ``get`` runs ``meanwhile`` once, right after reading:
    another writer getting in between this unit of work's read and its write. A hold that
    writes without reading (``mark_held``, where the store has it) runs it right before
    its write: the same race, with nothing read."""

    def __init__(self, inner: Any, race: Race) -> None:
        self._inner = inner
        self._race = race

    def get(self, reservation_id: str) -> Any:
        found = self._inner.get(reservation_id)
        self._race.fire(reservation_id)
        return found

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._inner, name)
        if name != "mark_held":
            return found

        def mark_held(reservation_id: str) -> bool:
            self._race.fire(reservation_id)
            return bool(found(reservation_id))

        return mark_held


class _UnitOfWork:
    def __init__(self, inner: Any, race: Race) -> None:
        self._inner = inner
        self._race = race

    def __enter__(self) -> _UnitOfWork:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.__exit__(*exc)

    @property
    def reservations(self) -> _Reservations:
        return _Reservations(self._inner.reservations, self._race)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Race:
    """Arms a race on an inventory store: the next time a unit of work of ``when`` (a
    predicate on the reservation id) reads that reservation, ``meanwhile`` runs once, in
    full, before the reading unit of work goes on to write."""

    def __init__(self) -> None:
        self.meanwhile: Callable[[], object] | None = None
        self.ran = 0

    def arm(self, meanwhile: Callable[[], object]) -> None:
        self.meanwhile = meanwhile

    def fire(self, _: str) -> None:
        meanwhile, self.meanwhile = self.meanwhile, None  # once, and not from within itself
        if meanwhile is not None:
            meanwhile()
            self.ran += 1

    def wrap(self, store: InventoryStore) -> InventoryStore:
        race = self

        class Store:
            def unit_of_work(self) -> Any:
                return _UnitOfWork(store.unit_of_work(), race)

            def close(self) -> None:
                store.close()

        return Store()


def until(condition: Callable[[], bool], seconds: float = 10) -> bool:
    """Whether ``condition()`` came true within ``seconds`` (asked every 20 ms): for what
    another thread does (a relay, a sweep)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def kill_own_connection(server: str, uow: Any, url: str) -> None:
    """Have the server end the unit of work's connection, as a failover or restart would."""
    own = "SELECT pg_backend_pid()" if server == "postgresql" else "SELECT CONNECTION_ID()"
    session = int(uow.execute(sa.text(own)).scalar_one())
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(
            f"SELECT pg_terminate_backend({session})" if server == "postgresql"
            else f"KILL {session}"))
    admin.dispose()
