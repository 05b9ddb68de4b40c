"""The transaction shape every store port shares: a context manager with ``commit()``."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

__all__ = ["UnitOfWork"]


class UnitOfWork(Protocol):
    """One transaction on one store; rolled back on exit unless `commit()` was called.

    A unit of work never spans two stores: the order and inventory databases share none.
    """

    def __enter__(self) -> Self: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def commit(self) -> None: ...
