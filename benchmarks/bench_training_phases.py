"""Where a training step's time goes in the real trainer: data, forward, backward, clipping, optimizer.

    python benchmarks/bench_training_phases.py [--steps 40] [--warmup 8] [--write docs/benchmarks.md]

Recipe v3 (examples/configs/small_distill.yaml, its caches on) runs from scratch with seed 0 for `--steps`
steps in each variant, with the data read in the training process (`data.num_workers=0`), so that the data's
time is its own rather than hidden in a worker that shares the cores. Each phase is timed around the
trainer's own call: the next batch of both loaders (labelled photos and unlabelled faces), the model's forward
pass with its losses, `accelerator.backward`, the gradient clipping and the optimizer step; "other" is the
rest of the step (learning rate, logging). The first `--warmup` steps are not counted. Needs the recipe's
caches (the first `examples/train.py` run of the recipe makes them).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import accelerate
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from markdown_report import publish_section  # noqa: E402
from training_builders import reset_accelerate  # noqa: E402

from sapiensid_hf.training import TrainingConfig, train  # noqa: E402
from sapiensid_hf.training.recognition_model import SapiensIDForRecognitionTraining  # noqa: E402
from sapiensid_hf.training.trainer import Trainer  # noqa: E402

SECTION = "## Training step: where the time goes"
RECIPE = "examples/configs/small_distill.yaml"
VARIANTS = (
    ("float32", []),
    ("bfloat16 (mixed_precision=bf16)", ["mixed_precision=bf16"]),
    ("bfloat16, fused AdamW (+ optimizer.fused=true)", ["mixed_precision=bf16", "optimizer.fused=true"]),
)
PHASES = ("data", "forward", "backward", "clip", "optimizer")
TIMED = (
    (Trainer, "_next_batch", "data"),
    (SapiensIDForRecognitionTraining, "forward", "forward"),
    (accelerate.Accelerator, "backward", "backward"),
    (accelerate.Accelerator, "clip_grad_norm_", "clip"),
    (torch.optim.AdamW, "step", "optimizer"),
    (Trainer, "_train_step", "step"),
)


@contextmanager
def phase_timers(totals: dict[str, float], warmup: int):
    """Wrap each timed call; from step `warmup` on, its time adds to its phase's total."""
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in TIMED]
    counting = [False]

    def timed(original, phase):
        def call(*args, **kwargs):
            if phase == "step":  # Trainer._train_step(self, step, batches): the steps before `warmup` do not count
                counting[0] = args[1] >= warmup
            start = time.perf_counter()
            result = original(*args, **kwargs)
            if counting[0]:
                totals[phase] += time.perf_counter() - start
            return result

        return call

    try:
        for (owner, name, phase), (_, _, original) in zip(TIMED, originals, strict=True):
            setattr(owner, name, timed(original, phase))
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def timed_run(overrides: list[str], steps: int, warmup: int) -> dict[str, float]:
    """Milliseconds per counted step in each phase."""
    totals: dict[str, float] = defaultdict(float)
    with tempfile.TemporaryDirectory() as output:
        config = TrainingConfig.from_file(RECIPE).with_overrides(
            [*overrides, "data.num_workers=0", f"schedule.max_steps={steps}", f"logging.output_dir={output}",
             "logging.save_every_steps=0", "logging.progress_bar=false", "validation.source=none"]
        )  # fmt: skip
        reset_accelerate()  # each variant sets its own precision in Accelerate's process-wide state
        with phase_timers(totals, warmup):
            train(config)
    per_step = {phase: 1000 * totals[phase] / (steps - warmup) for phase in (*PHASES, "step")}
    per_step["other"] = per_step["step"] - sum(per_step[phase] for phase in PHASES)
    return per_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="steps per variant, warm-up included")
    parser.add_argument("--warmup", type=int, default=8, help="first steps not counted")
    parser.add_argument("--write", type=Path, default=None, help="markdown file whose section to replace")
    args = parser.parse_args()
    if args.steps <= args.warmup:
        parser.error("--steps must be larger than --warmup")
    results = {}
    for name, overrides in VARIANTS:
        results[name] = timed_run(overrides, args.steps, args.warmup)
        print(f"{name}: " + ", ".join(f"{phase} {ms:.1f}" for phase, ms in results[name].items()) + " ms", flush=True)
    baseline = results[VARIANTS[0][0]]["step"]
    columns = (*PHASES, "other", "step")
    rows = [
        f"| {name} | " + " | ".join(f"{r[phase]:.0f}" for phase in columns) + f" | {baseline / r['step']:.2f}x |"
        for name, r in results.items()
    ]
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    text = (
        f"{SECTION}\n\n"
        f"`python benchmarks/bench_training_phases.py --steps {args.steps} --warmup {args.warmup}` ({machine}; recipe v3, "
        f"steps {args.warmup}-{args.steps - 1} of each run from scratch, seed 0, the data read in the training process). "
        "Milliseconds per step:\n\n"
        "| variant | data | forward | backward | clipping | optimizer | other | step | steps / s vs float32 |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n\n"
        "Data: both loaders' next batch (read from the image caches, flip, jitter, tensors, collation). Forward: "
        "the model with AdaFace, the triplet and the distillation terms. Timings come from a shared machine: compare "
        "the rows of one run.\n"
    )
    publish_section([text], SECTION, args.write)


if __name__ == "__main__":
    main()
