"""The Gradio Space (spaces_app/app.py) served on 127.0.0.1 for the Space tests."""

import importlib.util
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest

APP_PATH = Path(__file__).resolve().parents[1] / "spaces_app" / "app.py"

# Raised inside gradio's queue by pandas 3; nothing the Space tests control.
GRADIO_QUEUE_WARNING_FILTERS = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


def load_app_module(module_name: str) -> ModuleType:
    """spaces_app/app.py is a script folder, not a package: load it from its path as `module_name`."""
    spec = importlib.util.spec_from_file_location(module_name, APP_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served(app_module: ModuleType, pipeline) -> Iterator[str]:
    """The Space page for `pipeline`, launched without blocking on a free local port: yields its URL and
    closes the server afterwards."""
    demo = app_module.build_demo(pipeline)
    port = free_port()
    app_module.launch_demo(demo, host="127.0.0.1", port=port, block=False)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
