"""A training process acts on the first stop signal only: later ones are recorded, never raised."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from process_tree import children_of, parent_of, send
from run_watch import newest_checkpoint_step, wait_until
from training_builders import REPO_ROOT, TINY_CONFIG, build_people_dataset

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


def test_the_torchrun_launcher_raises_for_the_first_stop_signal_only(restore_handlers, monkeypatch):
    """A second signal while torchrun logs the first or stops its workers must not break out of that code
    (it printed "--- Logging error ---" with a traceback and cut the workers' shutdown short)."""
    from torch.distributed.elastic.multiprocessing import api as elastic_process_api
    from torch.distributed.elastic.multiprocessing.api import SignalException

    from sapiensid_hf.training import distributed_run

    def install_like_torchrun(argv):
        for number in (signal.SIGTERM, signal.SIGINT):  # torchrun looks the handler up by its module-level name
            signal.signal(number, elastic_process_api._terminate_process_handler)
        with pytest.raises(SignalException) as first:
            signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)  # dropped: the shutdown the first one started goes on
        signal.raise_signal(signal.SIGTERM)
        raise first.value

    monkeypatch.setattr(elastic_process_api, "_terminate_process_handler", elastic_process_api._terminate_process_handler)
    monkeypatch.setattr(distributed_run, "torchrun_main", install_like_torchrun)
    assert distributed_run.main([]) == 128 + signal.SIGTERM
    handler = elastic_process_api._terminate_process_handler
    assert handler.received == [signal.SIGTERM, signal.SIGINT, signal.SIGTERM]


def test_a_stop_that_lands_before_torchruns_timer_started_still_ends_quietly(restore_handlers, monkeypatch):
    """torchrun's timing wrapper reads `start` in its `finally`; the first signal landing on `start =
    time.time()` turns the SignalException into an UnboundLocalError (a CI run printed that traceback). It is
    the same stop; an UnboundLocalError with no stop behind it still raises."""
    from torch.distributed.elastic import metrics
    from torch.distributed.elastic.metrics import api as metrics_api

    from sapiensid_hf.training import distributed_run

    clock = metrics_api.time

    class SignalOnFirstClockRead:
        def __init__(self) -> None:
            self.reads = 0

        def time(self) -> float:
            self.reads += 1
            if self.reads == 1:  # the signal arrives exactly as the wrapper reads its start time
                signal.raise_signal(signal.SIGTERM)
            return clock.time()

    @metrics.prof(group="agent")
    def monitor_workers() -> None:
        return None

    def torchrun_timing_its_monitor(argv):
        from torch.distributed.elastic.multiprocessing import api as elastic_process_api

        signal.signal(signal.SIGTERM, elastic_process_api._terminate_process_handler)
        monitor_workers()

    monkeypatch.setattr(metrics_api, "time", SignalOnFirstClockRead())
    monkeypatch.setattr(distributed_run, "torchrun_main", torchrun_timing_its_monitor)
    with pytest.raises(UnboundLocalError):  # what torchrun itself does with that signal
        signal.signal(signal.SIGTERM, distributed_run._FirstStopSignalOnly())
        monitor_workers()
    monkeypatch.setattr(metrics_api, "time", SignalOnFirstClockRead())
    assert distributed_run.main([]) == 128 + signal.SIGTERM

    def unrelated_failure(argv):
        try:
            raise ValueError("not a stop")
        finally:
            raise UnboundLocalError("a real bug")

    monkeypatch.setattr(distributed_run, "torchrun_main", unrelated_failure)
    with pytest.raises(UnboundLocalError):
        distributed_run.main([])


@pytest.mark.parametrize(
    ("exit_codes", "expected"),
    [((130, -signal.SIGTERM), 128 + signal.SIGTERM), ((130, 130), 130), ((-signal.SIGINT,), 130), ((130, 1), None)],
)
def test_workers_stopped_before_torchrun_heard_of_it_end_quietly(monkeypatch, exit_codes, expected):
    """Workers that were stopped (exit 130, or killed by a late stop signal during shutdown) before torchrun got
    its own signal: torchrun reports failed children; that is the same stop, not a crash to print. A worker
    that failed otherwise (exit 1) still raises torchrun's report."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    from sapiensid_hf.training import distributed_run

    def workers_ended(argv):
        failures = {rank: ProcessFailure(rank, 1000 + rank, code, "") for rank, code in enumerate(exit_codes)}
        raise ChildFailedError("examples/train.py", failures)

    monkeypatch.setattr(distributed_run, "torchrun_main", workers_ended)
    if expected is None:
        with pytest.raises(ChildFailedError):
            distributed_run.main([])
    else:
        assert distributed_run.main([]) == expected


def test_a_worker_drops_only_the_handover_its_stopped_reader_abandoned(restore_handlers, monkeypatch, capsys):
    """The training process stopped mid-fetch of a batch's shared memory: the worker's sharing thread sees
    the connection reset. That one traceback is dropped; any other error still prints."""
    from multiprocessing import resource_sharer

    from sapiensid_hf.training.stop_signals import ignore_stop_signals

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    ignore_stop_signals()

    def report(code: str, filename: str) -> str:
        try:
            exec(compile(code, filename, "exec"))
        except BaseException:
            sys.excepthook(*sys.exc_info())
        return capsys.readouterr().err

    assert report("raise ConnectionResetError(104, 'reset')", resource_sharer.__file__) == ""
    assert "ConnectionResetError" in report("raise ConnectionResetError(104, 'reset')", "elsewhere.py")
    assert "ValueError" in report("raise ValueError('a real bug')", resource_sharer.__file__)


def test_data_workers_leave_a_stop_to_the_training_process(people_dir, tmp_path):
    """`kill` of a job / a scheduler signals every process of the group, data workers included. A worker
    ignores it (the training process stops it), so a stop signal reaching a worker first can never end
    the run with "DataLoader worker ... killed by signal" instead of its one line: here the worker is
    signalled alone and training goes on; then the whole group is stopped."""
    dataset_dir, cache_dir = build_people_dataset(people_dir, tmp_path / "data")
    output_dir = tmp_path / "run"
    command = [
        sys.executable, str(REPO_ROOT / "examples" / "train.py"), "--config", str(TINY_CONFIG),
        "--set", f"data.dataset_path={dataset_dir}", "--set", f"data.keypoint_cache={cache_dir}",
        "--output_dir", str(output_dir), "--set", "model.overrides={image_size: 64}", "--set", "batch_size=4",
        "--set", "data.num_workers=1", "--set", "schedule.max_steps=100000", "--set", "logging.save_every_steps=2",
        "--set", "validation.source=none",
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
                           cwd=tmp_path, start_new_session=True)  # fmt: skip

    try:
        wait_until(lambda: newest_checkpoint_step(output_dir) >= 2, run, 180, "a first checkpoint")
        [worker] = children_of(run.pid, "train.py")  # the DataLoader worker
        send(worker, signal.SIGTERM)
        send(worker, signal.SIGINT)
        reached = newest_checkpoint_step(output_dir)
        wait_until(lambda: newest_checkpoint_step(output_dir) > reached, run, 180, "training past the signals")
        assert run.poll() is None and parent_of(worker) == run.pid  # the same worker, alive
        os.killpg(run.pid, signal.SIGTERM)  # now the training process and its worker alike
        _, stderr = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 130
    assert "Traceback" not in stderr and "killed by signal" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("interrupted at step")]
    assert len(lines) == 1 and "resume with --resume_from_checkpoint latest" in lines[0], stderr[-3000:]
