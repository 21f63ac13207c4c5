"""Make `accelerate launch --cpu --num_processes N` really start N processes.

Accelerate starts several CPU processes only through `mpirun` (`--mpirun_hostfile`); without it,
`accelerate launch --cpu --num_processes 2 script.py` quietly runs ONE process
(huggingface/accelerate#2741). The only trace it leaves is MASTER_ADDR / MASTER_PORT, which it sets
when more than one process was asked for, and no WORLD_SIZE / LOCAL_RANK / MPI rank.

`relaunch_cpu_processes` recognises that situation, reads N from the `accelerate launch` command
line of the parent process, and re-runs the script under `torch.distributed.run` with N processes on
the same rendezvous; Accelerate then sees LOCAL_RANK plus ACCELERATE_USE_CPU and sets up MULTI_CPU
with the gloo backend. When N cannot be found it says so and the run goes on as one process.
Launchers that already start several processes (`torchrun`, `accelerate launch --multi_gpu`,
`mpirun`) are left alone.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

RANK_VARIABLES = ("WORLD_SIZE", "LOCAL_RANK", "RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def started_by_accelerate_cpu_launcher(environ: dict[str, str] | None = None) -> bool:
    """True in the single process `accelerate launch --cpu --num_processes N>1` starts without mpirun."""
    environ = os.environ if environ is None else environ
    uses_cpu = environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    return uses_cpu and "MASTER_PORT" in environ and not any(name in environ for name in RANK_VARIABLES)


def requested_processes(launcher_argv: Sequence[str]) -> int | None:
    """`--num_processes N` (or `--num_processes=N`) from an `accelerate launch` command line."""
    for index, argument in enumerate(launcher_argv):
        if argument in ("--num_processes", "--num-processes") and index + 1 < len(launcher_argv):
            value = launcher_argv[index + 1]
        elif argument.startswith(("--num_processes=", "--num-processes=")):
            value = argument.split("=", 1)[1]
        else:
            continue
        return int(value) if value.isdigit() else None
    return None


def parent_command_line() -> list[str]:
    """The parent process's argv (Linux /proc); empty where it cannot be read."""
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def relaunch_cpu_processes(script: str, arguments: Sequence[str]) -> int | None:
    """Re-run `script arguments` with N gloo processes if accelerate's CPU launcher dropped them.

    Returns the exit code of the relaunched run, or None when the caller should just carry on.
    """
    if not started_by_accelerate_cpu_launcher():
        return None
    count = requested_processes(parent_command_line())
    if count is None:
        logger.warning(
            "accelerate launch --cpu started a single process although more were requested (accelerate needs "
            "mpirun for several CPU processes); running on 1 process. Use `torchrun --nproc_per_node N` instead."
        )
        return None
    if count <= 1:
        return None
    command = [
        sys.executable, "-m", "sapiensid_hf.training.distributed_run", "--nproc_per_node", str(count),
        "--master_addr", os.environ.get("MASTER_ADDR", "127.0.0.1"), "--master_port", os.environ["MASTER_PORT"],
        script, *arguments,
    ]  # fmt: skip
    logger.info("accelerate launch --cpu started one process; starting %d gloo processes with torch.distributed.run", count)
    # `accelerate launch` itself dies of a SIGTERM without passing it on: this process hears of it this way.
    _die_with_parent()
    return run_forwarding_signals(command)


FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:
    """Get SIGTERM when the parent process dies, however it dies (Linux; elsewhere nothing happens)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def run_forwarding_signals(command: Sequence[str]) -> int:
    """Run `command` in its own session, pass the first SIGINT / SIGTERM on to it, return its exit code.

    Own session: a terminal's Ctrl-C reaches the child once, through us, not twice. Only the first stop
    signal is passed on: a Ctrl-C is often followed by the SIGTERM of `accelerate launch` dying, and the
    child is already stopping (it kills what does not stop). The child also dies with us
    (PR_SET_PDEATHSIG), so a killed launcher never leaves workers training on.
    """
    child = subprocess.Popen(list(command), env=dict(os.environ), start_new_session=True, preexec_fn=_die_with_parent)
    previous = {number: signal.getsignal(number) for number in FORWARDED_SIGNALS}
    forwarded: list[int] = []

    def forward(number: int, _frame) -> None:
        if not forwarded and child.poll() is None:
            child.send_signal(number)
        forwarded.append(number)

    for number in FORWARDED_SIGNALS:
        signal.signal(number, forward)
    try:
        return child.wait()
    finally:
        if not forwarded:  # once stopping, later signals stay recorded only (none raised during shutdown)
            for number, handler in previous.items():
                signal.signal(number, handler)


__all__ = ["relaunch_cpu_processes", "requested_processes", "run_forwarding_signals", "started_by_accelerate_cpu_launcher"]
