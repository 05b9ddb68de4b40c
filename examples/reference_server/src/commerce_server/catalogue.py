"""``commerce-server import-products FILE.csv``: a catalogue file into the inventory store, in
bulk, with a progress bar."""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path

from tqdm import tqdm

from commerce_core import FieldError, InvalidInput, Money, Platform
from commerce_core.inventory import ImportReport, Product

__all__ = ["import_csv", "read_products"]

COLUMNS = ("sku", "name", "price", "currency")
_TRUE, _FALSE = {"true", "yes", "1", ""}, {"false", "no", "0"}


def read_products(path: Path) -> list[Product]:
    """Products from a CSV file with a header row: ``sku,name,price,currency[,active]``.
    ``price`` is in the currency's major unit (``12.50`` EUR); ``active`` is true unless it
    says ``false``/``no``/``0``. Every bad row is reported at once, by line and column."""
    errors: list[FieldError] = []
    products: list[Product] = []
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInput("invalid catalogue file", [
                FieldError("header", f"missing column(s): {', '.join(missing)}")])
        for row in reader:
            where = f"line {reader.line_num}"
            currency = (row["currency"] or "").strip()
            try:
                exponent = Money(0, currency).exponent
            except InvalidInput:
                errors.append(FieldError(f"{where}.currency", "must be an ISO 4217 code"))
                continue
            try:
                minor = Decimal((row["price"] or "").strip()) * 10**exponent
                price = Money(int(minor), currency)
                if minor != price.amount:
                    raise ValueError
            except (InvalidOperation, ValueError, OverflowError, InvalidInput):
                errors.append(FieldError(f"{where}.price", f"must be an amount in {currency} "
                                         f"with at most {exponent} decimal places"))
                continue
            active = (row.get("active") or "").strip().lower()
            if active not in _TRUE | _FALSE:
                errors.append(FieldError(f"{where}.active", "must be true or false"))
                continue
            products.append(Product((row["sku"] or "").strip(), (row["name"] or "").strip(),
                                    price, active in _TRUE))
    if errors:
        raise InvalidInput("invalid catalogue file", errors)
    return products


def import_csv(platform: Platform, path: Path, *, batch_size: int = 1000,
               progress: bool = True) -> tuple[ImportReport, float]:
    """Read, check and import the file; returns the report and the seconds the import took.
    Nothing is written if any row is bad (`InvalidInput` names them all)."""
    products = read_products(path)
    started = time.perf_counter()
    with tqdm(total=len(products), unit=" products", disable=not progress,
              file=sys.stderr, mininterval=0.5) as bar:
        def advance(count: int) -> None:
            bar.update(count)

        report = platform.inventory.import_products(products, batch_size=batch_size,
                                                    on_progress=advance)
    return report, time.perf_counter() - started


def print_errors(errors: Sequence[FieldError], *, limit: int = 20) -> None:
    for error in errors[:limit]:
        print(f"  {error.path}: {error.message}", file=sys.stderr)
    if len(errors) > limit:
        print(f"  ... and {len(errors) - limit} more", file=sys.stderr)
