"""How a function's time grows with its input, measured so that a loaded machine cannot fail it.

``grows_linearly`` times ``work(make(n))`` and ``work(make(FACTOR * n))`` (best of several
runs each) and checks the ratio: about ``FACTOR`` for linear work, ``FACTOR**2`` for
quadratic. Noise only ever makes a linear function look worse, so a verdict is tried a few
times and one clean measurement is enough; a quadratic function never gets one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
FACTOR = 4
LIMIT = 2 * FACTOR  # half way (on a log scale) between linear and quadratic growth


def best_time(work: Callable[[T], object], arg: T, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work(arg)
        best = min(best, time.perf_counter() - started)
    return best


def growth(work: Callable[[T], object], make: Callable[[int], T], n: int) -> float:
    """Time for ``FACTOR * n`` over time for ``n`` (best of several runs each)."""
    small, large = make(n), make(FACTOR * n)
    work(small)  # warm caches and imports
    return best_time(work, large) / max(best_time(work, small), 1e-7)


def grows_linearly(work: Callable[[T], object], make: Callable[[int], T], n: int) -> bool:
    ratios = []
    for _ in range(3):
        ratios.append(growth(work, make, n))
        if ratios[-1] < LIMIT:
            return True
    print(f"time ratios for {FACTOR}x the input: {ratios}")
    return False
