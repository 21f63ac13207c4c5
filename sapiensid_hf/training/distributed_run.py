"""`python -m torch.distributed.run` that ends quietly when it is told to stop.

On SIGTERM / SIGINT torchrun terminates its workers and then re-raises the signal as a SignalException
with a traceback. The workers already print where the run stopped (examples/train.py), so here the
exception becomes the conventional exit status 128 + signal number and nothing else.

A real stop brings more than one signal (Ctrl-C reaches every process of the group, the launcher forwards
its own). torchrun's handler raises on each of them, so a second one landing while torchrun logs the
first or shuts its workers down breaks out of that code with a traceback ("--- Logging error ---") or
cuts the shutdown short. Only the first signal is raised here; later ones are dropped while the
shutdown it started runs to its end (torchrun's own timeout bounds it, then SIGKILL).

The workers can also hear of the stop before torchrun does (a stop sent to every process, torchrun slow to
get its share): each says where the run stopped and exits 130, or dies of a later signal once its
interpreter is shutting down, and torchrun reports its children as failed with a traceback. When every
failed worker ended that way, that report is a stop too: the same quiet exit status, no traceback.

The first signal can also land in code that cannot unwind cleanly: torchrun's timing wrapper
(`elastic.metrics.prof`) reads `start` in a `finally`, so a signal between its `try:` and `start = ...`
turns the SignalException into an UnboundLocalError (the workers are still shut down). An exception whose
chain holds the stop this handler raised is that stop, and ends the same quiet way.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

from torch.distributed.elastic.multiprocessing import api as elastic_process_api
from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import main as torchrun_main

# How a stopped worker ends: examples/train.py's exit status after a stop, or death by a late stop signal.
STOPPED_EXIT_CODES = (128 + signal.SIGINT, 128 + signal.SIGTERM, -signal.SIGINT, -signal.SIGTERM)


class _FirstStopSignalOnly:
    """A replacement for torchrun's signal handler that raises SignalException for the first signal only."""

    def __init__(self) -> None:
        self.received: list[signal.Signals] = []

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        stop = signal.Signals(signum)
        self.received.append(stop)
        if len(self.received) == 1:
            raise SignalException(f"torchrun got signal: {stop.name}", sigval=stop)


def _stop_behind(error: BaseException) -> SignalException | None:
    """The SignalException that `error` was raised while handling, if any (its `__context__` chain)."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        if isinstance(link, SignalException):
            return link
        seen.add(id(link))
        link = link.__context__
    return None


def main(argv: list[str] | None = None) -> int:
    # torchrun registers the handler by its module-level name when it starts the workers.
    elastic_process_api._terminate_process_handler = _FirstStopSignalOnly()
    try:
        torchrun_main(argv)
    except SignalException as stopped:
        return 128 + int(stopped.sigval)
    except ChildFailedError as failed:
        exit_codes = [failure.exitcode for failure in failed.failures.values()]
        if not exit_codes or not all(code in STOPPED_EXIT_CODES for code in exit_codes):
            raise
        terminated = any(code in (128 + signal.SIGTERM, -signal.SIGTERM) for code in exit_codes)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    except Exception as error:
        stopped = _stop_behind(error)
        if stopped is None:
            raise
        return 128 + int(stopped.sigval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
