"""The readable side of a run: the targets, a Markdown table and the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The issue's targets, by the stable key of latest.json they apply to.
TARGETS: dict[str, tuple[str, float]] = {
    "inprocess_vs_floor_postgres": (">=", 0.6),
    "inprocess_vs_floor_sqlite": (">=", 0.33),
    "http_c16_vs_inprocess": (">=", 0.5),
    "http_c16_p99_ms": ("<=", 100.0),
    "http_c16_errors": ("<=", 0),
    "hot_sku_vs_uncontended": (">=", 0.5),
    "hot_sku_oversold": ("<=", 0),
    "gateway_overhead_fraction": ("<=", 0.10),
    "order_read_p99_ms_1m": ("<=", 5.0),
    "order_list_p99_ms_1m": ("<=", 5.0),
    # a page an admin waits for: within the seed's 100 ms gateway-to-service objective
    "admin_orders_page_p99_ms_1m": ("<=", 100.0),
}


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _rate(name: str, backend: str, f: dict[str, Any]) -> str:
    return _row([name, backend, f.get("clients", 1), f["orders_per_s"], f["p50_ms"],
                 f["p99_ms"], f.get("errors", 0)])


def table(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"`make bench{' QUICK=1' if r['quick'] else ''}`, {r['started_at']}, {r['seconds']} s.",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_mib']} MiB, {m['os']}, "
        f"Python {m['python']}, PostgreSQL {m['postgresql']}, SQLite {m['sqlite']}.",
        "",
        "### Targets", "",
        _row(["figure", "value", "target", "met"]), _row(["---"] * 4),
    ]
    lines += [_row([key, t["value"], t["target"], "yes" if t["met"] else "**no**"])
              for key, t in r["targets"].items()]
    lines += ["", "### Place order", "",
              _row(["system", "database", "clients", "orders/s", "p50 ms", "p99 ms", "errors"]),
              _row(["---"] * 7)]
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    for backend, label in names.items():
        lines.append(_rate("floor (raw driver)", label, r["floor"][backend]))
        if "replay" in r:
            lines.append(_rate("the library's statements, raw driver", label,
                               r["replay"][backend]))
        for mode, figures in r["inprocess"][backend].items():
            what = ("library, one client" if mode == "single"
                    else f"library, {mode.replace('_', ' ')}")
            lines.append(_rate(what, label, figures))
    for workers, runs in r["http"].items():
        for concurrency, figures in runs.items():
            lines.append(_rate(f"HTTP, {workers.replace('_', ' ')}, {concurrency}",
                               "PostgreSQL", figures))
    for name, figures in r["contention"].items():
        what = ("hot SKU sells out" if name == "sellout"
                else f"hot SKU, {figures['clients']} buyers")
        lines.append(_rate(f"HTTP 2 workers, {what}", "PostgreSQL", figures))
    lines += ["", f"Over HTTP: `commerce-server --workers N` with `COMMERCE_THREADS="
              f"{r.get('server_threads', '?')}`, the load from a separate process."]
    lines += ["", "### Hot SKU (PostgreSQL, 2 workers)", "",
              _row(["run", "answers", "confirmed units", "on hand", "reserved", "oversold"]),
              _row(["---"] * 6)]
    for name, f in r["contention"].items():
        lines.append(_row([name, f["statuses"], f["confirmed_units"], f["on_hand"],
                           f["reserved"], f["oversold_units"]]))
    g = r["gateway"]
    lines += ["", "### Gateway cost (in process, PostgreSQL, median of "
              f"{g['requests_each']} requests each)", "",
              _row(["whole gateway ms", "bare handler ms", "overhead ms", "fraction"]),
              _row(["---"] * 4),
              _row([g["full_median_ms"], g["bare_median_ms"], g["overhead_ms"],
                    g["gateway_overhead_fraction"]])]
    s, c = r["scale"], r["scale"]["catalogue"]
    lines += ["", f"### Scale (PostgreSQL, {s['orders_in_store']:,} orders in the store)", "",
              _row(["query", "p50 ms", "p99 ms", "samples"]), _row(["---"] * 4)]
    for name in ("order_read", "order_list_customer_page", "order_list_all_page"):
        f = s[name]
        lines.append(_row([name.replace("_", " "), f["p50_ms"], f["p99_ms"], f["samples"]]))
    for name, label in (("admin_orders_page", "admin console: orders list page (HTML)"),
                        ("admin_dashboard", "admin console: dashboard (HTML)")):
        f = s["console"][name]
        lines.append(_row([label, f["p50_ms"], f["p99_ms"], f["samples"]]))
    a = c["availability_20_skus"]
    lines.append(_row([f"availability of 20 SKUs among {c['products']:,}", a["p50_ms"],
                       a["p99_ms"], a["samples"]]))
    lines += ["", f"Bulk import of {c['products']:,} products: {c['import_seconds']} s "
              f"({c['import_products_per_s']:,} products/s).", ""]
    return "\n".join(lines)


def plot(r: dict[str, Any], path: Path) -> None:
    """Throughput and p99 against concurrency, one line per way of placing orders."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for backend, label in (("postgresql", "PostgreSQL"), ("sqlite", "SQLite")):
        runs = r["inprocess"][backend]
        series[f"in process, {label} (threads)"] = sorted(
            (f.get("clients", 1), f) for mode, f in runs.items()
            if mode == "single" or mode.startswith("threads"))
        series[f"in process, {label} (processes)"] = sorted(
            (f.get("clients", 1), f) for mode, f in runs.items()
            if mode == "single" or mode.startswith("processes"))
    for workers, runs in r["http"].items():
        series[f"HTTP, {workers.replace('_', ' ')}, PostgreSQL"] = sorted(
            (f["clients"], f) for f in runs.values())
    series["HTTP, 2 workers, one hot SKU"] = sorted(
        (f["clients"], f) for name, f in r["contention"].items() if name != "sellout")
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5.6))
    for name, points in series.items():
        xs = [x for x, _ in points]
        left.plot(xs, [f["orders_per_s"] for _, f in points], marker="o", label=name)
        right.plot(xs, [f["p99_ms"] for _, f in points], marker="o", label=name)
    for backend, label, marker in (("postgresql", "PostgreSQL", "s"), ("sqlite", "SQLite", "D")):
        floor = r["floor"][backend]
        left.scatter([1], [floor["orders_per_s"]], marker=marker, color="black", zorder=3,
                     label=f"floor, {label} (raw driver, one client)")
        right.scatter([1], [floor["p99_ms"]], marker=marker, color="black", zorder=3)
    for axis, title, unit in ((left, "Throughput", "orders/s"), (right, "p99 latency", "ms")):
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
    right.axhline(100, color="grey", linestyle="--", linewidth=1)
    handles, labels = left.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    m = r["machine"]
    figure.suptitle(f"commerce-core place_order, {r['started_at'][:10]}: {m['cpus']} CPUs, "
                    f"PostgreSQL {m['postgresql'].split()[0]}, SQLite {m['sqlite']}",
                    fontsize=10)
    figure.tight_layout(rect=(0, 0.16, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)
