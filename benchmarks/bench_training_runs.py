"""Training images/s of the real trainer, recipe v2 against recipe v3, with and without the image cache, in one run.

    python benchmarks/bench_training_runs.py [--steps 40] [--warmup 8] [--write docs/benchmarks.md]

Each variant is `sapiensid_hf.training.train` itself (DataLoader worker, masking plan, AdaFace, triplet,
the distillation terms for v3, AdamW), started from scratch with the same seed for `--steps` steps in a
temporary output folder (no checkpoints, no validation). A step's time is the interval between the starts
of consecutive steps, so it holds the wait for data as well as the model's step; the first `--warmup`
steps (the worker starting, allocator growth) are not counted. Images are the labelled photos of the step
plus, for v3, its unlabelled faces. Needs the recipes' caches (keypoints, images, teacher: the first
`examples/train.py` run of each recipe makes them). Ratios are against recipe v2 as it shipped (no cache),
measured in the same run.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from markdown_report import update_section  # noqa: E402

from sapiensid_hf.training import TrainingConfig, train  # noqa: E402
from sapiensid_hf.training.trainer import Trainer  # noqa: E402

SECTION = "## Training runs: images per second"
V2 = "examples/configs/small_public.yaml"
V3 = "examples/configs/small_distill.yaml"
IMAGE_CACHE = "outputs/images/identities_train_96"
VARIANTS = (
    ("recipe v2 (shipped before: photos decoded every step)", V2, ["data.image_cache=null"]),
    ("recipe v2 + image cache", V2, [f"data.image_cache={IMAGE_CACHE}"]),
    ("recipe v3 without the image caches", V3, ["data.image_cache=null", "distill.unlabelled_image_cache=null"]),
    ("recipe v3 (shipped: image caches)", V3, []),
)


def timed_run(config_path: str, overrides: list[str], steps: int, warmup: int) -> dict[str, float]:
    """Images/s and s/step of `steps` real trainer steps, the first `warmup` not counted."""
    starts: list[float] = []
    images: list[int] = []
    original = Trainer._train_step

    def recording_step(self, step, batches):
        starts.append(time.perf_counter())
        metrics = original(self, step, batches)
        unlabelled = self.config.distill.unlabelled_batch_size if self.config.distill.teacher else 0
        images.append(int(metrics["batch_size"]) + unlabelled)
        return metrics

    with tempfile.TemporaryDirectory() as output:
        config = TrainingConfig.from_file(config_path).with_overrides(
            [*overrides, f"schedule.max_steps={steps + 1}", f"logging.output_dir={output}", "logging.save_every_steps=0",
             "logging.progress_bar=false", "validation.source=none"]
        )  # fmt: skip
        Trainer._train_step = recording_step
        try:
            train(config)
        finally:
            Trainer._train_step = original
    # Step i's time is starts[i + 1] - starts[i]; the last step only marks where step `steps` ended.
    seconds = starts[steps] - starts[warmup]
    counted = sum(images[warmup:steps])
    return {"images_per_s": counted / seconds, "s_per_step": seconds / (steps - warmup), "images": counted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="steps per variant, warm-up included")
    parser.add_argument("--warmup", type=int, default=8, help="first steps not counted")
    parser.add_argument("--write", type=Path, default=None, help="markdown file whose section to replace")
    args = parser.parse_args()
    if args.steps <= args.warmup:
        parser.error("--steps must be larger than --warmup")
    results = {}
    for name, config_path, overrides in VARIANTS:
        results[name] = timed_run(config_path, overrides, args.steps, args.warmup)
        print(f"{name}: {results[name]['images_per_s']:.1f} images/s, {results[name]['s_per_step']:.2f} s/step", flush=True)
    baseline = results[VARIANTS[0][0]]["images_per_s"]
    rows = [
        f"| {name} | {r['s_per_step']:.2f} | {r['images']} | {r['images_per_s']:.1f} | {r['images_per_s'] / baseline:.2f}x |"
        for name, r in results.items()
    ]
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    best = max(results, key=lambda name: results[name]["images_per_s"])
    text = (
        f"{SECTION}\n\n"
        f"`python benchmarks/bench_training_runs.py --steps {args.steps} --warmup {args.warmup}` ({machine}; "
        f"steps {args.warmup}-{args.steps - 1} of each run from scratch, seed 0, one process with its data worker):\n\n"
        "| variant | s / step | images counted | images / s | vs recipe v2 |\n| --- | --- | --- | --- | --- |\n"
        + "\n".join(rows) + "\n\n"
        f"Fastest: {best}, {results[best]['images_per_s'] / baseline:.2f}x recipe v2's images/s. With the photos "
        "cached at the model's square, the data worker no longer takes a core from the model; the step is then "
        "the model's own forward, backward and AdamW (see \"Training data path\" above for the per-photo costs).\n"
    )
    print(text)
    if args.write is not None:
        update_section(args.write, SECTION, text)
        print(f"wrote {args.write} ({SECTION})")


if __name__ == "__main__":
    main()
