"""Watching a training run started by a test: its newest checkpoint, and waits that fail without blocking."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def newest_checkpoint_step(output_dir: Path) -> int:
    """The step of the newest complete checkpoint, 0 before the first. Older ones are rotated away
    (`keep_last_checkpoints`), so a test compares steps instead of waiting for one named directory."""
    steps = [int(marker.parent.name.removeprefix("step_")) for marker in (output_dir / "checkpoints").glob("step_*/COMPLETE")]
    return max(steps, default=0)


def wait_until(condition: Callable[[], bool], run: subprocess.Popen, seconds: float, what: str) -> None:
    """Poll `condition` while `run` is alive. On timeout or an early exit the run's process group is
    killed first, so reading its output for the failure message cannot wait for the run to finish."""
    deadline = time.monotonic() + seconds
    while not condition():
        if run.poll() is not None or time.monotonic() > deadline:
            if run.poll() is None:
                _kill_group(run)
            try:
                _, stderr = run.communicate(timeout=60)
            except subprocess.TimeoutExpired:  # a grandchild outside the group still holds the pipe
                stderr = "(its output could not be read)"
            raise AssertionError(f"{what}: not reached (exit code {run.returncode})\n{stderr[-3000:]}")
        time.sleep(0.2)


def _kill_group(run: subprocess.Popen) -> None:
    """The run's own process group when it has one (start_new_session), else the run alone: never the
    test's group."""
    try:
        group = os.getpgid(run.pid)
    except ProcessLookupError:
        return
    if group != os.getpgid(0):
        os.killpg(group, signal.SIGKILL)
    else:
        run.kill()
