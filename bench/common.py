"""Helpers for the benchmarks: timing, medians, side-by-side tables, results."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).parent / "results"


def timeit(fn: Callable[[], object], runs: int = 5, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def table(title: str, rows: list[tuple[str, float, float, str]]) -> None:
    """rows: (what, dockyard seconds, reference seconds, reference name)."""
    print(f"\n{title}")
    print(f"{'work':44} {'dockyard':>10} {'reference':>10} {'ratio':>7}  reference")
    for what, ours, ref, name in rows:
        ratio = (ref / ours) if ours and ref else float("nan")
        refs = f"{ref:10.4f}" if ref else f"{'n/a':>10}"
        print(f"{what:44} {ours:10.4f} {refs} {ratio:6.2f}x  {name}")


def save(name: str, data: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    data["when"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    data["host"] = os.uname().nodename
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2))
