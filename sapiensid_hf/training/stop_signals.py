"""Stop a training process once, quietly, however many stop signals reach it.

A stop reaches a training process more than once in ordinary use: a terminal's Ctrl-C goes to the whole
process group, `accelerate launch` dies and its child hears of it again through PR_SET_PDEATHSIG, and
`torch.distributed.run` sends its workers a SIGTERM of its own while they are already on their way out.
Python's default SIGINT handler (and a handler that simply raises) raises `KeyboardInterrupt` for each of
them, and one that arrives during interpreter shutdown is raised inside an atexit callback (torch's
library teardown, dynamo's compile-time dump), which prints "Exception ignored in atexit callback" with
a traceback after the run's own one-line message.

`StopSignals` turns the first SIGINT / SIGTERM into `KeyboardInterrupt` (the run saves nothing more and
says where to resume) and only records the later ones; once the run has ended (`run_ended`), no signal
raises anything any more.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from multiprocessing import resource_sharer
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Install with `install()`; `received` lists every stop signal that arrived, in order."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._raise_on_first = True

    def install(self) -> StopSignals:
        for number in STOP_SIGNALS:
            signal.signal(number, self._handle)
        return self

    def run_ended(self) -> None:
        """From now on (the run finished or was stopped, the interpreter is about to shut down) a stop
        signal is recorded and nothing else."""
        self._raise_on_first = False

    def _handle(self, number: int, _frame: FrameType | None) -> None:
        self.received.append(number)
        if len(self.received) == 1 and self._raise_on_first:
            raise KeyboardInterrupt


def ignore_stop_signals(worker_id: int = 0) -> None:
    """DataLoader `worker_init_fn`: a data worker ignores SIGINT / SIGTERM. A stop sent to the whole process
    group (Ctrl-C, `kill` of a job, a scheduler) is the training process's to act on: it stops its workers
    itself. A worker killed by the signal first would make the DataLoader raise "worker killed by signal"
    over the run's own one-line message. (A worker whose parent dies still exits: torch's watchdog.)

    The stop is a `KeyboardInterrupt` in the training process, which may come while it fetches a batch's
    shared memory from this worker (multiprocessing's resource sharer): the worker's sharing thread then
    sees the connection reset and would print a traceback after the run's message. That one error is
    dropped; the batch had no reader any more (a live reader that failed raises its own error)."""
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    sys.excepthook = _without_abandoned_handovers(sys.excepthook)


def _without_abandoned_handovers(previous: Callable[..., Any]) -> Callable[..., Any]:
    def excepthook(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        if issubclass(kind, ConnectionError | EOFError) and _raised_in(trace, resource_sharer.__file__):
            return
        previous(kind, error, trace)

    return excepthook


def _raised_in(trace: TracebackType | None, filename: str) -> bool:
    """Whether a frame of the traceback runs code of `filename`."""
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == filename:
            return True
        trace = trace.tb_next
    return False


__all__ = ["STOP_SIGNALS", "StopSignals", "ignore_stop_signals"]
