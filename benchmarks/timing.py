"""Best-of-rounds timing shared by the benchmarks."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


def best_of_interleaved_rounds(
    steps: dict, repeats: int, synchronize: Callable[[], None] = lambda: None
) -> dict[str, float]:
    """Best seconds of each step over `repeats` rounds that run every step once, in turn (after one
    untimed warm-up each).

    Interleaving keeps a slow minute of a shared machine from landing on one step only, so the ratios
    between the steps are steadier than timing each in its own block. `synchronize` waits for queued
    device work (CUDA) before a clock is read.
    """
    for step in steps.values():
        step()
    synchronize()
    best = dict.fromkeys(steps, math.inf)
    for _ in range(repeats):
        for name, step in steps.items():
            synchronize()
            start = time.perf_counter()
            step()
            synchronize()
            best[name] = min(best[name], time.perf_counter() - start)
    return best
