"""`sapiensid evaluate`: hand the arguments to the evaluation runner (sapiensid_hf.evaluation.runner)."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from .common import CommandError

RUNNER = "sapiensid_hf.evaluation.runner"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        runner = importlib.import_module(RUNNER)
    except ModuleNotFoundError as error:
        if error.name != RUNNER:
            raise CommandError(f"the evaluation needs {error.name!r}, which is not installed") from error
        raise CommandError(f"this installation has no evaluation runner ({RUNNER})") from error
    return runner.main(list(argv) if argv is not None else None)
