"""bench/results.json: one entry per figure, merged across benchmark modules."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("results.json")


def record(entries: list[dict]) -> None:
    """Merge entries ({name, value, unit, peer, peer_value, ratio}) by name into results.json.
    ``ratio`` is always value / peer_value, both measured in the same run: for times lower is
    better, for rates (certs/s) higher is better."""
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    names = {e["name"] for e in entries}
    data = [e for e in data if e["name"] not in names] + entries
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")


def table(rows: list[tuple], headers: tuple) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def median_ms(fn, runs: int) -> float:
    """The median wall time of ``fn()`` over ``runs`` calls, in milliseconds."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000
