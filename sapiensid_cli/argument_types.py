"""argparse types for the command-line options: a bad value exits with status 2 before any work.

Kept free of heavy imports (torch is imported only to check a device other than "cpu"), so `--help`
and argument errors stay fast.
"""

from __future__ import annotations

import argparse
import math


def _whole_number(text: str, least: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (batch sizes, top-k, ranks)."""
    return _whole_number(text, 1, "at least 1")


def non_negative_int(text: str) -> int:
    """An integer >= 0 (an index)."""
    return _whole_number(text, 0, "0 or more")


def worker_count(text: str) -> int | None:
    """A number of worker processes (0 = none, in this process) or "auto" (None: one per core, at most 8)."""
    if text == "auto":
        return None
    return _whole_number(text, 0, "0 or more, or auto")


def cosine_threshold(text: str) -> float:
    """A finite cosine similarity in [-1, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a cosine similarity between -1 and 1, got {text}")
    return value


def available_devices() -> list[str]:
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def torch_device(text: str) -> str:
    """A torch device that exists on this machine ("cpu", "cuda", "cuda:1", "mps")."""
    if text == "cpu":
        return text
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a torch device; devices here: {', '.join(available_devices())}"
        ) from None
    here = available_devices()
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise argparse.ArgumentTypeError(
                f"{text!r}: this torch build or machine has no CUDA device; devices here: {', '.join(here)}"
            )
        if device.index is not None and device.index >= count:
            raise argparse.ArgumentTypeError(f"{text!r}: there are {count} CUDA device(s); devices here: {', '.join(here)}")
    elif device.type != "cpu" and device.type not in {name.split(":")[0] for name in here}:
        raise argparse.ArgumentTypeError(f"{text!r} is not available here; devices here: {', '.join(here)}")
    return text


__all__ = [
    "available_devices",
    "cosine_threshold",
    "positive_int",
    "torch_device",
    "worker_count",
]
