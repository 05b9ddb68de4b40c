"""``commerce-server``: serve the gateway, migrate the stores, run a recovery sweep, import a
catalogue, or look after the outbound webhooks' dead letters."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from commerce_core import CommerceError, InvalidInput, Money, Platform
from commerce_core.calm import Realisation, check, describe
from commerce_core.events import publisher_from_url
from commerce_core_gateway.security import RateLimiter
from commerce_core_otel import tracer_provider_from_env
from commerce_server import architecture
from commerce_server.asgi import build_platform
from commerce_server.catalogue import import_csv, print_errors
from commerce_server.config import MIN_KEY_LENGTH, Settings, demo_keys
from commerce_server.logs import JsonFormatter
from commerce_server.serving import serve

__all__ = ["main"]

DEMO_SANDBOX = "sandbox:///var/sandbox.db"

DEMO_CATALOGUE = [
    ("MUG-01", "Stoneware mug", 1250, {"BER": 40, "AMS": 20}),
    ("POT-01", "Cast-iron teapot", 3900, {"BER": 5}),
    ("TEA-01", "Sencha, 100 g", 800, {"AMS": 200}),
    ("CUP-01", "Espresso cup", 650, {"BER": 2}),
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="commerce-server",
        description="The commerce-core reference server. Configured by COMMERCE_* variables.")
    parser.add_argument("command", nargs="?",
                        choices=["serve", "migrate", "recover", "import-products", "webhooks",
                                 "calm"],
                        default="serve", help="serve (default), migrate the stores, run one "
                        "recovery sweep, import a catalogue file, 'webhooks list' / "
                        "'webhooks replay ENDPOINT' (send its failed deliveries again), or "
                        "calm (print the configured deployment as a CALM 1.1 architecture)")
    parser.add_argument("file", nargs="?", type=Path,
                        help="import-products: a CSV file with the columns "
                        "sku,name,price,currency[,active] (price in major units: 12.50); "
                        "webhooks: list or replay")
    parser.add_argument("rest", nargs="*", help="webhooks replay: the endpoint's id")
    parser.add_argument("--delivery", action="append", default=None, metavar="ID",
                        help="webhooks replay: only this failed delivery (repeatable)")
    parser.add_argument("--batch-size", type=int, default=1000,
                        help="import-products: products written per transaction")
    parser.add_argument("--host", default=None, help="the address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="the port (8000)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (1)")
    parser.add_argument("--architecture", type=Path, metavar="FILE",
                        help="run from this CALM 1.1 architecture: the stores' databases, the "
                        "gateway's interface, its rate limit (and rate-limit storage, broker, "
                        "workers if it names them) come from it, passwords from the "
                        "environment (COMMERCE_ORDERS_DB_USER/_PASSWORD, ...); an "
                        "architecture the server cannot realise is refused")
    parser.add_argument("--check", type=Path, metavar="FILE",
                        help="calm: compare the deployment with this intended CALM "
                        "architecture; exit 1 when it does not realise it")
    parser.add_argument("--strict", action="store_true",
                        help="calm --check: objectives not met (warnings) fail it too")
    parser.add_argument("--demo", action="store_true",
                        help="create and seed the stores, make demo keys if none are set")
    return parser


def seed_demo(platform: Platform) -> None:
    """Warehouses, products and stock, once: stock is only added where a SKU has none."""
    platform.inventory.upsert_warehouse("BER", name="Berlin")
    platform.inventory.upsert_warehouse("AMS", name="Amsterdam")
    for sku, name, cents, stock in DEMO_CATALOGUE:
        platform.inventory.upsert_product(sku, name=name, price=Money(cents, "EUR"))
        if platform.inventory.stock(sku).on_hand == 0:
            for warehouse, units in stock.items():
                platform.inventory.adjust_stock(sku, warehouse, delta=units,
                                                reason="demo stock")


def _print_demo(settings: Settings, host: str, port: int, *, generated: bool) -> None:
    """The demo's address, and its keys if the server made them: keys the operator gave
    (``COMMERCE_API_KEYS``) are theirs, and are never printed. With JSON logs, each line is
    a JSON object too."""
    base = f"http://{host}:{port}"
    lines = [f"commerce-server demo on {base}  (API document: {base}/openapi.json)",
             f"  admin console: {base}/admin/  (sign in with the admin key)"]
    if generated:
        for key, principal in settings.api_keys.items():
            who = principal.role.value + (f" {principal.customer_id}" if principal.customer_id
                                          else "")
            lines.append(f"  {who:<16} Authorization: Bearer {key}")
    else:
        lines.append("  with the API keys of COMMERCE_API_KEYS")
    lines.append(f"  try: curl -s {base}/v1/products")
    for line in lines:
        if settings.log_format == "json":
            record = logging.LogRecord("commerce_server", logging.INFO, "", 0, line.strip(),
                                       None, None)
            print(JsonFormatter().format(record))
        else:
            print(line)
    sys.stdout.flush()


def _describe(args: argparse.Namespace, settings: Settings,
              realisation: Realisation | None) -> dict[str, Any]:
    """The configured deployment as a CALM 1.1 document (nothing is opened)."""
    listen = realisation.gateway if realisation is not None else None
    host = listen.public_host if listen is not None and listen.port == args.port else args.host
    return describe(architecture.deployment(settings, host=host, port=args.port,
                                            workers=args.workers))


def _calm(args: argparse.Namespace, settings: Settings, realisation: Realisation | None,
          ) -> int:
    """``calm``: the configured deployment as a CALM 1.1 architecture, on standard output;
    ``calm --check FILE [--strict]``: the deployment compared with an intended architecture
    (exit 1 when it does not realise it, or with ``--strict`` misses an objective)."""
    deployed = _describe(args, settings, realisation)
    if args.check is None:
        print(json.dumps(deployed, indent=2))
        return 0
    report = check(args.intended, deployed)
    print(report.render(strict=args.strict))
    return 1 if report.failed(strict=args.strict) else 0


def _listen(args: argparse.Namespace, realisation: Realisation | None) -> str | None:
    """Where to listen and how many workers: the command line's, else the architecture's,
    else 127.0.0.1:8000 and one; what is wrong when the two say different things."""
    listen = realisation.gateway if realisation is not None else None
    named = {"host": listen.host if listen else None, "port": listen.port if listen else None,
             "workers": realisation.workers if realisation else None}
    for option, default in (("host", "127.0.0.1"), ("port", 8000), ("workers", 1)):
        given, wanted = getattr(args, option), named[option]
        if given is not None and wanted is not None and given != wanted:
            return (f"--{option} {given} and the architecture's {wanted} disagree: leave "
                    "one out")
        setattr(args, option, given if given is not None else
                wanted if wanted is not None else default)
    if not 1 <= args.port <= 65535:
        return f"--port must be from 1 to 65535, not {args.port}"
    if not 1 <= args.workers <= 64:
        return f"--workers must be from 1 to 64, not {args.workers}"
    args.host = args.host.strip("[]")  # --host [::1] is ::1
    return None


def _realised(args: argparse.Namespace, settings: Settings, document: dict[str, Any],
              realisation: Realisation) -> int | None:
    """Whether the configuration taken from an architecture realises it: refused (2) when
    its structure is not (a node the server has no part for, both stores in one database,
    ...) or its gateway is HTTPS without a certificate; its objectives not met, warnings."""
    listen = realisation.gateway
    if (args.command == "serve" and listen is not None and listen.protocol == "HTTPS"
            and not settings.tls_certfile):
        print(f"commerce-server: cannot run from {args.architecture}: its gateway interface "
              "is HTTPS; set COMMERCE_TLS_CERTFILE and COMMERCE_TLS_KEYFILE (PEM files), or "
              "make the interface HTTP behind a proxy that terminates TLS", file=sys.stderr)
        return 2
    report = check(document, _describe(args, settings, realisation))
    if report.errors:
        print(f"commerce-server: cannot run from {args.architecture}: the server would not "
              "realise it\n" + report.render(), file=sys.stderr)
        return 2
    if args.command != "calm":
        for finding in report.warnings:
            _warn(settings, f"{args.architecture}: {finding}")
    return None


def _run_command(args: argparse.Namespace, settings: Settings) -> int | None:
    """Every command but serving; ``None`` when the server is to start next."""
    if args.command == "webhooks":
        return _webhooks(args, settings)
    extra = [*([] if args.file is None or args.command == "import-products"
                else [str(args.file)]), *args.rest]
    wrong = ("import-products needs a file" if args.command == "import-products"
             and args.file is None else f"unexpected arguments: {' '.join(extra)}"
             if extra else None)
    if wrong is not None:
        print(f"commerce-server: {wrong}", file=sys.stderr)
        return 2
    # opening the stores migrates them to the newest revision (Alembic, under a lock),
    # once, here, before any worker starts
    with build_platform(settings) as platform:
        if args.command == "import-products":
            report, seconds = import_csv(platform, args.file, batch_size=args.batch_size)
            print(f"imported {args.file}: {report.created} created, {report.updated} "
                  f"updated, {report.unchanged} unchanged in {seconds:.1f} s")
            return 0
        if args.command == "migrate":
            print("stores are at the current schema")
            return 0
        grace = timedelta(seconds=settings.recovery_grace)
        if args.command == "recover":  # a server may be running: keep the grace period
            print(platform.checkout.recover(grace=grace))
            return 0
        # with the grace too: in a rolling restart, or beside another host, other workers
        # are running checkouts that are not this process's to finish
        swept = platform.checkout.recover(grace=grace)
        if swept.failed:
            print(f"commerce-server: recovery could not finish {len(swept.failed)} "
                  f"order(s): {swept.failed}", file=sys.stderr)
        if args.demo:
            seed_demo(platform)
    return None


def _webhooks(args: argparse.Namespace, settings: Settings) -> int:
    """``webhooks list``: each endpoint (id, active or paused, URL, events); ``webhooks replay
    ENDPOINT [--delivery ID ...]``: its failed deliveries queued again (a running server
    sends them within a second)."""
    action = None if args.file is None else str(args.file)
    if action not in ("list", "replay") or (action == "replay") != (len(args.rest) == 1) \
            or (action == "list" and args.rest):
        print("commerce-server: use 'webhooks list' or 'webhooks replay ENDPOINT "
              "[--delivery ID ...]'", file=sys.stderr)
        return 2
    with build_platform(settings) as platform:
        webhooks = platform.webhooks
        if webhooks is None:  # pragma: no cover - every store of the server keeps them
            print("commerce-server: this order store keeps no webhook endpoints",
                  file=sys.stderr)
            return 2
        if action == "list":
            for endpoint in webhooks.endpoints():
                state = "active" if endpoint.active else "paused"
                print(f"{endpoint.id}  {state}  {endpoint.url}  {','.join(endpoint.events)}")
            return 0
        try:
            replayed = webhooks.replay(args.rest[0], args.delivery)
        except CommerceError as exc:
            print(f"commerce-server: {exc}", file=sys.stderr)
            return 2
        print(f"{replayed} failed deliveries of {args.rest[0]} queued again")
        return 0


def _warn(settings: Settings, text: str, *, level: str = "warning") -> None:
    """A start-up warning, in the log's format (a JSON line with ``COMMERCE_LOG_FORMAT=json``)."""
    if settings.log_format == "json":
        record = logging.LogRecord("commerce_server", getattr(logging, level.upper()), "", 0,
                                   text, None, None)
        print(JsonFormatter().format(record), file=sys.stderr)
    else:
        print(f"commerce-server: {'note' if level == 'info' else level}: {text}",
              file=sys.stderr)


def _check(args: argparse.Namespace, settings: Settings) -> int | None:
    """What is wrong or worth a warning in the configuration, before anything starts; the
    exit status when it cannot start."""
    weak = settings.weak_keys()
    if weak and not args.demo:
        print(f"commerce-server: the API keys of {', '.join(weak)} are shorter than "
              f"{MIN_KEY_LENGTH} characters, too short to resist guessing; make them "
              "longer (e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))')",
              file=sys.stderr)
        return 2
    if not settings.api_keys:
        _warn(settings, "COMMERCE_API_KEYS is empty, so every route that needs a key will "
              "answer 401")
    if args.workers > 1 and settings.payments_url == "sandbox://":
        _warn(settings, "with several workers, sandbox:// gives each its own provider in "
              f"memory; use {DEMO_SANDBOX} to share one")
    if args.workers > 1 and settings.rate_limits_url.startswith("memory://"):
        _warn(settings, "with several workers, memory:// rate limits are each worker's "
              "own: the limits, failed admin sign-ins and admin sign-outs are not shared "
              "(a signed-out console session still works on another worker); set "
              "COMMERCE_RATE_LIMITS_URL=redis://...")
    publisher_from_url(settings.events_url).close()  # a wrong URL fails here, not later
    if settings.events_url.startswith("memory://") and not args.demo:
        _warn(settings, "COMMERCE_EVENTS_URL is memory://: the outbox's events go to "
              "outbound webhooks only (PUT /v1/webhook-endpoints/{id}); set amqp://... to "
              "deliver them to a broker too", level="info")
    RateLimiter(settings.rate_limits_url).close()  # so does the rate limits' storage
    try:  # and so does a tracing set-up (OTEL_TRACES_EXPORTER) it does not know
        tracing = tracer_provider_from_env()
    except ValueError as error:
        print(f"commerce-server: {error}", file=sys.stderr)
        return 2
    if tracing is not None:
        tracing.shutdown()
    settings.webhooks()  # and so does a webhook set-up the payment adapter cannot serve
    return None


def _configure(args: argparse.Namespace) -> tuple[Settings, Realisation | None] | int:
    """The settings (from the architecture, if given, and the environment), checked; the
    exit status when the server cannot go on."""
    misused = next((f"--{name} is for the calm command" for name, given in
                    (("check", args.check), ("strict", args.strict))
                    if given and args.command != "calm"), None)
    if misused is None and args.strict and args.check is None:
        misused = "--strict needs --check FILE"
    document, realisation, named = None, None, dict[str, str]()
    if misused is None and args.check is not None:  # refused before anything is said
        args.intended = architecture.load(args.check)
    if misused is None and args.architecture is not None:
        document = architecture.load(args.architecture)
        realisation, named = architecture.apply(document, os.environ)
    misused = misused or _listen(args, realisation)
    if misused is not None:
        print(f"commerce-server: {misused}", file=sys.stderr)
        return 2
    settings = Settings.from_env({**os.environ, **named})
    refused = _check(args, settings)
    if refused is None and document is not None and realisation is not None:
        refused = _realised(args, settings, document, realisation)
    if refused is not None:
        return refused
    if args.command == "serve":  # where every worker reads its settings (taken back after)
        args.restore = {name: os.environ.get(name) for name in named}
        os.environ.update(named)
    return settings, realisation


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    generated = args.demo and not os.environ.get("COMMERCE_API_KEYS")
    try:
        if generated:
            os.environ["COMMERCE_API_KEYS"] = demo_keys()  # inherited by the workers
        if args.demo and not os.environ.get("COMMERCE_PAYMENTS_URL"):
            # the demo's provider keeps its records in a file, as a real one would, so that
            # every worker and every restart sees the same authorizations
            os.environ["COMMERCE_PAYMENTS_URL"] = DEMO_SANDBOX
        configured = _configure(args)
        if isinstance(configured, int):
            return configured
        settings, realisation = configured
        if args.command == "calm":
            return _calm(args, settings, realisation)
        done = _run_command(args, settings)
        if done is not None:
            return done
        if args.demo:
            _print_demo(settings, args.host, args.port, generated=generated)
    except CommerceError as error:
        shown = error.message if isinstance(error, InvalidInput) and error.errors else error
        print(f"commerce-server: {shown}", file=sys.stderr)
        if isinstance(error, InvalidInput):
            print_errors(error.errors)
        return 2
    except OSError as error:  # the catalogue file cannot be read
        print(f"commerce-server: {error}", file=sys.stderr)
        return 2
    return _serve(args, settings)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    """Serve; then the environment as it was before an architecture's URLs went in."""
    try:
        return serve(host=args.host, port=args.port, workers=args.workers,
                     max_connections=settings.max_connections,
                     log_format=settings.log_format, tls=(settings.tls_certfile,
                                                          settings.tls_keyfile))
    finally:
        for name, value in getattr(args, "restore", {}).items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


if __name__ == "__main__":
    sys.exit(main())
