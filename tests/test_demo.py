"""`make demo` keeps working: the walk-through runs, tells its story and ends consistent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


def test_the_demo_runs_twice_and_tells_the_same_story(tmp_path: Path) -> None:
    runs = [subprocess.run([sys.executable, str(DEMO), str(tmp_path / "demo")],
                           capture_output=True, text=True, timeout=120, check=False)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
        out = run.stdout
        assert "insufficient-stock" in out and "payment-declined" in out
        assert "payment-unavailable" in out
        assert "same order, charged once, voucher used once: True" in out
        # priced: a quote, shipping, a voucher, VAT; the quote is what was then charged
        quoted = out[out.index("quoted before she pays"):].splitlines()[1].strip()
        assert quoted == ("lines 64.00 EUR, shipping express +9.95 EUR, discount WELCOME10 "
                          "-6.40 EUR, VAT 19 % +12.83 EUR = 80.38 EUR")
        assert f"      {quoted}" in out[out.index("Customers check out:"):]
        assert "was used by this customer already" in out
        assert "shipped, payment captured" in out and "cancelled, stock released" in out
        assert "partially_refunded" in out
        # a big order reserved in both warehouses leaves in two parcels, one from each
        x = "\N{MULTIPLICATION SIGN}"
        assert (f"reserved: 4 {x} MUG-01 in AMS, 2 {x} MUG-01 in BER, 2 {x} TEA-01 in AMS"
                in out)
        assert "order partially_shipped, 114.18 EUR captured at the first parcel" in out
        assert f"order shipped; 2 parcels: 2 {x} MUG-01; 4 {x} MUG-01, 2 {x} TEA-01" in out
        # two of them come back into Amsterdam's stock, refunded their share, VAT included
        assert "received; MUG-01 on hand in AMS 0 → 2 (ledger: +2, reason return" in out
        assert "refund: refunded, 29.75 EUR" in out and "payment 29.75 EUR refunded" in out
        # the ERP's webhooks: signed, verified by the receiver, in order per order
        assert ("The ERP received 8 signed webhooks, each verified: order.shipped, "
                "order.partially_shipped, order.refunded, order.shipped, return.requested, "
                "return.received, order.refunded, return.refunded") in out
        assert "Every invariant holds" in out
    # it starts from empty databases each time: the final stock is the same both times
    stock = [run.stdout[run.stdout.index("Final stock:"):] for run in runs]
    assert stock[0] == stock[1]
    assert "MUG-01   BER               2         0          2" in stock[0]
    assert "MUG-01   AMS               2         0          2" in stock[0]
