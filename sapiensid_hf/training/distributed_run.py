"""`python -m torch.distributed.run` that ends quietly when it is told to stop.

On SIGTERM / SIGINT torchrun terminates its workers and then re-raises the signal as a SignalException
with a traceback. The workers already print where the run stopped (examples/train.py), so here the
exception becomes the conventional exit status 128 + signal number and nothing else.
"""

from __future__ import annotations

import sys

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.run import main as torchrun_main


def main(argv: list[str] | None = None) -> int:
    try:
        torchrun_main(argv)
    except SignalException as stopped:
        return 128 + int(stopped.sigval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
