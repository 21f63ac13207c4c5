"""`sapiensid demo`: run the Gradio Space (spaces_app/app.py) locally."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from .common import CommandError

# The Space lives beside the package in the repository, not inside it (it is deployed on its own).
SPACE_APP = Path(__file__).resolve().parents[2] / "spaces_app" / "app.py"
MODULE_NAME = "sapiensid_space_app"


def load_space_app(path: Path = SPACE_APP) -> ModuleType:
    """Import spaces_app/app.py as a module (it is a script folder, not an installed package)."""
    if MODULE_NAME in sys.modules:
        return sys.modules[MODULE_NAME]
    if not path.is_file():
        raise CommandError(
            f"the demo app is not part of this installation (looked for {path}); run `sapiensid demo` from a "
            "clone of the repository installed with `pip install -e .`, or `python spaces_app/app.py` there"
        )
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as error:
        del sys.modules[MODULE_NAME]
        raise CommandError(f"the demo needs {error.name!r}, which is not installed ({error})") from error
    return module


def main(argv: Sequence[str] | None = None) -> int:
    return load_space_app().main(list(argv) if argv is not None else None)
