"""Masked recognition training: how many retina tokens each step keeps, and the batch / LR that go with it.

The paper (arXiv 2504.04708, MRM) trains with a *variable* masking ratio so the model meets every token
length it will see at test time, from a few face tokens to all T retina tokens, and spends most steps on
short, cheap sequences. Here the kept-token count n of an optimizer step is drawn from an exponential
distribution truncated to [n_min, n_max] (continuous draw, rounded):

    p(x) ∝ exp(-λ (x - n_min)),  n_min <= x <= n_max,  λ solved so that E[x] = mean_kept_fraction · T

(λ > 0 when the mean lies below the middle of the range, the usual case: short sequences are frequent,
long ones rare but present). With the defaults (T tokens, fractions 0.1 / 1.0 / 0.34) the mean equals
the fixed-ratio model's kept count at mask ratio 0.66.

Batch size and learning rate follow n (the exact rule, documented in docs/training.md):

    batch(n) = clamp(round(batch_size · n_ref / n), min_batch_size, max_batch_size)
    lr(n)    = lr_schedule(step) · (batch(n) / batch_size) ** p,   p = 1 (linear), 0.5 (sqrt), 0 (none)

n_ref = int(T · (1 - reference_mask_ratio)). The first line keeps tokens per step (≈ compute and
activation memory) constant; the second keeps the size of an update per example seen constant when
the batch grows or shrinks (linear rule for SGD, square-root rule for Adam-type optimisers). Every
process and every micro-batch of a step use the same n, so the gradient all-reduce still averages
equal-sized batches.

Each step's draw depends only on (seed, step), so a resumed run replays the same schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Independent random streams derived from the run seed.
MASKING_STREAM = 3
LR_EXPONENTS = {"linear": 1.0, "sqrt": 0.5, "none": 0.0}


@dataclass(frozen=True)
class StepMasking:
    """What one optimizer step uses."""

    kept_tokens: int  # n: retina tokens the encoder sees per image (T = all)
    mask_ratio: float  # the value passed to the model's forward (0.0 = keep every visible token)
    batch_size: int  # images per process per micro-batch
    lr_factor: float  # multiplies the scheduled learning rate


def num_kept_tokens(num_tokens: int, mask_ratio: float) -> int:
    """Kept-token count of a fixed mask ratio (the model's rule: int(T · (1 - ratio)), at least 1)."""
    return max(1, int(num_tokens * (1 - mask_ratio)))


def mask_ratio_for(kept_tokens: int, num_tokens: int) -> float:
    """The mask ratio that makes the model keep exactly `kept_tokens` (0.0 when it keeps them all).

    The model keeps int(T · (1 - ratio)) tokens; aiming half a token above n makes the float rounding
    land on n.
    """
    if kept_tokens >= num_tokens:
        return 0.0
    return 1.0 - (kept_tokens + 0.5) / num_tokens


def truncated_exponential_mean(rate: float, length: float) -> float:
    """Mean of p(x) ∝ exp(-rate · x) on [0, length]."""
    if abs(rate * length) < 1e-8:
        return length / 2
    if rate * length > 700:
        return 1 / rate
    if rate * length < -700:
        return length + 1 / rate
    return 1 / rate - length / math.expm1(rate * length)


def solve_exponential_rate(mean: float, length: float) -> float:
    """Rate whose truncated exponential on [0, length] has the given mean (bisection; mean is monotone)."""
    if not 0 < mean < length:
        raise ValueError(f"the mean ({mean}) must lie strictly inside the range [0, {length}]")
    low, high = -1.0, 1.0
    while truncated_exponential_mean(low, length) < mean:
        low *= 2
    while truncated_exponential_mean(high, length) > mean:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if truncated_exponential_mean(middle, length) > mean:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def sample_truncated_exponential(uniform: np.ndarray | float, rate: float, length: float) -> np.ndarray:
    """Inverse CDF of p(x) ∝ exp(-rate · x) on [0, length] at `uniform` in [0, 1)."""
    uniform = np.asarray(uniform, dtype=np.float64)
    if abs(rate * length) < 1e-8:
        return uniform * length
    # x = -log(1 - u (1 - exp(-rate L))) / rate, written with log1p / expm1 for accuracy.
    return -np.log1p(uniform * np.expm1(-rate * length)) / rate


class MaskingSchedule:
    """Per-step kept-token count, mask ratio, batch size and LR factor; a pure function of (seed, step).

    Args:
        num_tokens: T, retina tokens per image (3 levels x grid**2).
        batch_size: per-process batch at the reference kept-token count.
        mode: "none" (ratio 0), "fixed" (`mask_ratio`), or "variable" (exponential draw, batch / LR rule).
        mask_ratio: the fixed mode's ratio.
        reference_mask_ratio: defines n_ref for the batch rule and the default mean.
        min_kept_fraction, max_kept_fraction, mean_kept_fraction: the variable draw's range and mean as
            fractions of T (mean None = 1 - reference_mask_ratio).
        lr_scaling: "sqrt", "linear" or "none".
        min_batch_size, max_batch_size: clamp of the batch rule (max None = 4 x batch_size).
        seed: run seed.
    """

    def __init__(
        self,
        num_tokens: int,
        batch_size: int,
        mode: str = "variable",
        mask_ratio: float = 0.66,
        reference_mask_ratio: float = 0.66,
        min_kept_fraction: float = 0.1,
        max_kept_fraction: float = 1.0,
        mean_kept_fraction: float | None = None,
        lr_scaling: str = "sqrt",
        min_batch_size: int = 2,
        max_batch_size: int | None = None,
        seed: int = 0,
    ):
        if mode not in ("none", "fixed", "variable"):
            raise ValueError(f"masking mode must be 'none', 'fixed' or 'variable', got {mode!r}")
        if lr_scaling not in LR_EXPONENTS:
            raise ValueError(f"lr_scaling must be one of {', '.join(LR_EXPONENTS)}, got {lr_scaling!r}")
        self.num_tokens = num_tokens
        self.batch_size = batch_size
        self.mode = mode
        self.mask_ratio = mask_ratio
        self.seed = seed
        self.lr_exponent = LR_EXPONENTS[lr_scaling]
        self.min_batch_size = min_batch_size
        self.max_batch_size = max_batch_size if max_batch_size is not None else 4 * batch_size
        if self.max_batch_size < min_batch_size:
            raise ValueError(f"max_batch_size ({self.max_batch_size}) is below min_batch_size ({min_batch_size})")
        self.reference_kept = num_kept_tokens(num_tokens, reference_mask_ratio)
        self.min_kept = min(num_tokens, max(1, math.ceil(min_kept_fraction * num_tokens)))
        self.max_kept = max(self.min_kept, min(num_tokens, math.floor(max_kept_fraction * num_tokens)))
        mean_fraction = 1 - reference_mask_ratio if mean_kept_fraction is None else mean_kept_fraction
        self.mean_kept = mean_fraction * num_tokens
        self.rate = 0.0
        if mode == "variable" and self.max_kept > self.min_kept:
            if not self.min_kept < self.mean_kept < self.max_kept:
                raise ValueError(
                    f"the mean kept-token count {self.mean_kept:.1f} must lie strictly between the minimum "
                    f"{self.min_kept} and maximum {self.max_kept} (of T = {num_tokens} tokens); adjust "
                    "masking.mean_kept_fraction / min_kept_fraction / max_kept_fraction"
                )
            self.rate = solve_exponential_rate(self.mean_kept - self.min_kept, self.max_kept - self.min_kept)

    def at(self, step: int) -> StepMasking:
        if self.mode == "none":
            return StepMasking(self.num_tokens, 0.0, self.batch_size, 1.0)
        if self.mode == "fixed":
            kept = self.num_tokens if self.mask_ratio == 0 else num_kept_tokens(self.num_tokens, self.mask_ratio)
            return StepMasking(kept, mask_ratio_for(kept, self.num_tokens), self.batch_size, 1.0)
        kept = self.draw_kept_tokens(step)
        batch = self.batch_size_for(kept)
        factor = (batch / self.batch_size) ** self.lr_exponent
        return StepMasking(kept, mask_ratio_for(kept, self.num_tokens), batch, factor)

    def draw_kept_tokens(self, step: int) -> int:
        uniform = np.random.default_rng([self.seed, MASKING_STREAM, step]).random()
        offset = float(sample_truncated_exponential(uniform, self.rate, self.max_kept - self.min_kept))
        return int(min(self.max_kept, max(self.min_kept, round(self.min_kept + offset))))

    def batch_size_for(self, kept_tokens: int) -> int:
        batch = round(self.batch_size * self.reference_kept / kept_tokens)
        return int(min(self.max_batch_size, max(self.min_batch_size, batch)))

    @property
    def largest_batch_size(self) -> int:
        """The biggest per-process batch any step can ask for."""
        if self.mode != "variable":
            return self.batch_size
        return self.batch_size_for(self.min_kept)


__all__ = [
    "MaskingSchedule",
    "StepMasking",
    "mask_ratio_for",
    "num_kept_tokens",
    "sample_truncated_exponential",
    "solve_exponential_rate",
    "truncated_exponential_mean",
]
