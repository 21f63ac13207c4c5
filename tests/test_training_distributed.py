"""`accelerate launch --num_processes 2 --cpu examples/train.py` (gloo) completes a short run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from process_tree import parent_of, processes_mentioning, send
from run_watch import newest_checkpoint_step, wait_until
from training_builders import REPO_ROOT, TINY_CONFIG, build_people_dataset


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def two_process_command(dataset_dir, cache_dir, output_dir, *settings: str) -> list[str]:
    """`accelerate launch --num_processes 2 --cpu examples/train.py` on the tiny config, plus `--set` settings."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--cpu", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
        str(REPO_ROOT / "examples" / "train.py"), "--config", str(TINY_CONFIG),
        "--set", f"data.dataset_path={dataset_dir}", "--set", f"data.keypoint_cache={cache_dir}",
        "--output_dir", str(output_dir), "--set", "model.overrides={image_size: 64}", "--set", "batch_size=4",
    ]  # fmt: skip
    for setting in settings:
        command += ["--set", setting]
    return command


def test_two_cpu_processes_train_checkpoint_and_save(people_dir, tmp_path):
    dataset_dir, cache_dir = build_people_dataset(people_dir, tmp_path / "data")
    output_dir = tmp_path / "run"
    command = two_process_command(
        dataset_dir, cache_dir, output_dir, "schedule.max_steps=4", "logging.save_every_steps=2", "validation.max_images=24"
    )
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=240, cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-6000:]
    assert "trained 4 steps" in completed.stdout

    checkpoint = output_dir / "checkpoints" / "step_00000004"
    assert (checkpoint / "COMPLETE").is_file()
    assert {path.name for path in checkpoint.glob("random_states_*.pkl")} == {"random_states_0.pkl", "random_states_1.pkl"}
    assert not list(checkpoint.glob("custom_checkpoint_*.pkl"))  # progress is JSON: nothing to unpickle
    progress = json.loads((checkpoint / "trainer_progress.json").read_text())
    assert progress["num_processes"] == 2 and progress["step"] == 4
    assert progress["samples_seen"] > 0
    assert (output_dir / "final_model" / "model.safetensors").is_file()
    validation = [json.loads(line) for line in (output_dir / "validation.jsonl").read_text().splitlines()]
    assert validation[-1]["step"] == 4 and 0.0 <= validation[-1]["rank1"] <= 1.0


def test_sigterm_stops_every_process_with_one_line_saying_where_to_resume(people_dir, tmp_path):
    """The user's SIGTERM to `accelerate launch`, then on purpose the extra stop signals a real stop brings
    (the launcher's child hears of its parent's death, torchrun signals workers that are already exiting):
    one line, no traceback, nothing left running."""
    dataset_dir, cache_dir = build_people_dataset(people_dir, tmp_path / "data")
    output_dir = tmp_path / "sigterm-run"
    command = two_process_command(
        dataset_dir, cache_dir, output_dir, "schedule.max_steps=100000", "logging.save_every_steps=2",
        "logging.log_every_steps=1", "validation.source=none",
    )  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
                                cwd=tmp_path, start_new_session=True)  # fmt: skip
    try:
        wait_until(lambda: newest_checkpoint_step(output_dir) > 0, launcher, 180, "a first checkpoint")
        running = [pid for pid in processes_mentioning(str(output_dir)) if pid != launcher.pid]
        relauncher = [pid for pid in running if parent_of(pid) == launcher.pid]
        torchrun = [pid for pid in running if parent_of(pid) in relauncher]
        workers = [pid for pid in running if parent_of(pid) in torchrun]
        assert len(relauncher) == 1 and len(torchrun) == 1 and len(workers) == 2, running
        launcher.send_signal(signal.SIGTERM)
        # The extra signals come after the launcher has begun to stop, as in a real stop. (Sent at the same
        # instant, they can make the workers' line reach accelerate 1.16's stderr copier in the chunk its
        # SIGTERM handler interrupts, and accelerate drops that chunk.)
        time.sleep(0.5)
        for pid in relauncher:  # a second signal to the launcher side (Ctrl-C reaches it as well)
            send(pid, signal.SIGINT)
        for pid in workers:  # the workers get two signals of their own besides torchrun's
            send(pid, signal.SIGTERM)
            send(pid, signal.SIGINT)
        _, stderr = launcher.communicate(timeout=90)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    deadline = time.monotonic() + 45
    while processes_mentioning(str(output_dir)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not processes_mentioning(str(output_dir))  # no worker, no torch.distributed.run left training
    assert launcher.returncode != 0 and not (output_dir / "final_model").exists()
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("interrupted at step")]
    assert len(lines) == 1 and "resume with --resume_from_checkpoint latest" in lines[0], stderr[-3000:]
