"""A training process acts on the first stop signal only: later ones are recorded, never raised."""

from __future__ import annotations

import signal

import pytest

from sapiensid_hf.training.stop_signals import STOP_SIGNALS, StopSignals


@pytest.fixture
def restore_handlers():
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    yield
    for number, handler in previous.items():
        signal.signal(number, handler)


def test_the_first_stop_signal_interrupts_and_the_later_ones_are_only_recorded(restore_handlers):
    stops = StopSignals().install()
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGTERM)
    signal.raise_signal(signal.SIGTERM)  # e.g. torchrun's own SIGTERM to a worker that is already stopping
    signal.raise_signal(signal.SIGINT)  # and the terminal's Ctrl-C
    assert stops.received == [signal.SIGTERM, signal.SIGTERM, signal.SIGINT]


def test_after_the_run_ended_no_signal_raises(restore_handlers):
    stops = StopSignals().install()
    stops.run_ended()  # interpreter shutdown: atexit callbacks run from here on
    signal.raise_signal(signal.SIGINT)
    signal.raise_signal(signal.SIGTERM)
    assert stops.received == [signal.SIGINT, signal.SIGTERM]

