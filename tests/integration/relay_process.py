"""An outbox relay in a process of its own, for the tests that kill it (not a test module).

    python -m tests.integration.relay_process --orders URL --broker URL --exchange NAME \
        --owner NAME [--lease S] [--batch N] [--pause S] [--until-empty]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from datetime import timedelta

from commerce_core.events import DomainEvent, OutboxRelay
from commerce_core_rabbitmq import RabbitMQPublisher
from commerce_core_sqlalchemy import SqlAlchemyOrderStore


class _Slow:
    def __init__(self, inner: RabbitMQPublisher, pause: float) -> None:
        self.inner = inner
        self.pause = pause

    def publish(self, events: Sequence[DomainEvent]) -> None:
        time.sleep(self.pause)
        self.inner.publish(events)

    def close(self) -> None:
        self.inner.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--exchange", required=True)
    parser.add_argument("--owner", required=True)
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds each batch waits before it goes to the broker (a slow "
                             "broker: where a kill lands most of the time)")
    parser.add_argument("--until-empty", action="store_true")
    args = parser.parse_args()
    store = SqlAlchemyOrderStore.from_url(args.orders)
    relay = OutboxRelay(store, _Slow(RabbitMQPublisher(args.broker, exchange=args.exchange),
                                     args.pause),
                        name="orders", owner=args.owner, batch_size=args.batch,
                        lease=timedelta(seconds=args.lease))
    with relay:
        while True:
            published = relay.run_once()
            if args.until_empty and not published:
                with store.unit_of_work() as uow:
                    if not uow.outbox.pending(limit=1):
                        return
            if not published:
                time.sleep(0.05)


if __name__ == "__main__":
    main()
