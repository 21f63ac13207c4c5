"""The Gradio Space (sapiensid_hf/space) served on 127.0.0.1 for the Space tests."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sapiensid_hf.space import build_demo, launch_demo

# Raised inside gradio's queue by pandas 3; nothing the Space tests control.
GRADIO_QUEUE_WARNING_FILTERS = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served(pipeline) -> Iterator[str]:
    """The Space page for `pipeline`, launched without blocking on a free local port: yields its URL and
    closes the server afterwards."""
    demo = build_demo(pipeline)
    port = free_port()
    launch_demo(demo, host="127.0.0.1", port=port, block=False)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
