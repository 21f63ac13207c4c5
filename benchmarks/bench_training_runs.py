"""Training images/s of the real trainer, recipe v2 against recipe v3, with and without the image cache, in one run.

    python benchmarks/bench_training_runs.py [--steps 40] [--warmup 8] [--rounds 2] [--page-cache warm|cold]
                                             [--write docs/benchmarks.md]

Each variant is `sapiensid_hf.training.train` itself (DataLoader worker, masking plan, AdaFace, triplet,
the distillation terms for v3, AdamW), started from scratch with the same seed for `--steps` steps in a
temporary output folder (no checkpoints, no validation). A step's time is the interval between the starts
of consecutive steps, so it holds the wait for data as well as the model's step; the first `--warmup`
steps (the worker starting, allocator growth) are not counted. Each variant runs once per round, the rounds
in alternating order (first to last, then last to first), and its fastest round is reported: the machine's
speed drifts by about 10 % over minutes, which one pass in one order would charge to whichever variant ran
in a slow moment. Images are the labelled photos of the step
plus, for v3, its unlabelled faces. Needs the recipes' caches (keypoints, images, teacher: the first
`examples/train.py` run of each recipe makes them). Ratios are against recipe v2 as it shipped (no cache),
measured in the same run. The bfloat16 variants are recipe v3 under torch's CPU autocast
(`mixed_precision=bf16`): its matrix products run in bfloat16 where the CPU has the instructions
(AVX512-BF16 or AMX; elsewhere the trainer warns that they are emulated and slower).

Where the photos come from decides recipe v2's figure: `--page-cache warm` (default) reads every photo and
cache file once before the runs, as a real run has after its first epoch (4,000 steps of 64 photos read the
14,592 training photos 17 times; they fit in memory); `--page-cache cold` empties the OS page cache before
each variant (root on Linux: /proc/sys/vm/drop_caches), as the first epoch of a run finds the disk.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from markdown_report import publish_section  # noqa: E402
from training_builders import reset_accelerate  # noqa: E402

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
    ("recipe v3 in bfloat16 (mixed_precision=bf16)", V3, ["mixed_precision=bf16"]),
    ("recipe v3 in bfloat16, data read in the training process (+ data.num_workers=0)", V3,
     ["mixed_precision=bf16", "data.num_workers=0"]),
    ("recipe v3 in bfloat16, data in the process, fused AdamW (+ optimizer.fused=true)", V3,
     ["mixed_precision=bf16", "data.num_workers=0", "optimizer.fused=true"]),
)


def timed_run(config_path: str, overrides: list[str], steps: int, warmup: int) -> dict[str, float]:
    """Images/s and s/step of `steps` real trainer steps, the first `warmup` not counted."""
    starts: list[float] = []
    images: list[int] = []
    precision: list[str] = []
    original = Trainer._train_step

    def recording_step(self, step, batches):
        starts.append(time.perf_counter())
        metrics = original(self, step, batches)
        unlabelled = self.config.distill.unlabelled_batch_size if self.config.distill.teacher else 0
        images.append(int(metrics["batch_size"]) + unlabelled)
        precision.append(self.accelerator.mixed_precision)  # what the run actually computed in
        return metrics

    with tempfile.TemporaryDirectory() as output:
        config = TrainingConfig.from_file(config_path).with_overrides(
            [*overrides, f"schedule.max_steps={steps + 1}", f"logging.output_dir={output}", "logging.save_every_steps=0",
             "logging.progress_bar=false", "validation.source=none"]
        )  # fmt: skip
        Trainer._train_step = recording_step
        reset_accelerate()  # each variant sets its own precision in Accelerate's process-wide state
        try:
            train(config)
        finally:
            Trainer._train_step = original
    # Step i's time is starts[i + 1] - starts[i]; the last step only marks where step `steps` ended.
    seconds = starts[steps] - starts[warmup]
    counted = sum(images[warmup:steps])
    return {"images_per_s": counted / seconds, "s_per_step": seconds / (steps - warmup), "images": counted,
            "precision": "bfloat16 autocast" if precision[-1] == "bf16" else "float32"}


def files_read(config_path: str) -> list[Path]:
    """Every photo a recipe's manifests list and every file of the caches it names."""
    config = TrainingConfig.from_file(config_path)
    files = []
    for manifest in (config.data.root, config.distill.unlabelled_manifest):
        if manifest:
            with open(manifest, newline="", encoding="utf-8") as handle:
                files += [Path(manifest).parent / row["path"] for row in csv.DictReader(handle)]
    caches = (config.data.keypoint_cache, config.data.image_cache, config.distill.teacher_cache,
              config.distill.unlabelled_keypoint_cache, config.distill.unlabelled_image_cache, config.distill.unlabelled_teacher_cache)  # fmt: skip
    for folder in filter(None, caches):
        files += [path for path in Path(folder).rglob("*") if path.is_file()]
    return files


def warm_page_cache(files: list[Path]) -> None:
    for path in files:
        with open(path, "rb") as handle:
            while handle.read(1 << 20):
                pass


def drop_page_cache() -> None:
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("1\n")
    except OSError as error:
        raise SystemExit(f"--page-cache cold empties the OS page cache: it needs root on Linux ({error})") from error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="steps per variant, warm-up included")
    parser.add_argument("--warmup", type=int, default=8, help="first steps not counted")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each variant, in alternating order; the fastest counts")
    parser.add_argument("--page-cache", choices=("warm", "cold"), default="warm",
                        help="warm: every photo and cache file read once first; cold: the OS page cache emptied before each variant")  # fmt: skip
    parser.add_argument("--write", type=Path, default=None, help="markdown file whose section to replace")
    args = parser.parse_args()
    if args.steps <= args.warmup:
        parser.error("--steps must be larger than --warmup")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.page_cache == "warm":
        warm_page_cache(sorted(set(files_read(V2) + files_read(V3))))
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in VARIANTS}
    for round_index in range(args.rounds):
        for name, config_path, overrides in VARIANTS if round_index % 2 == 0 else reversed(VARIANTS):
            if args.page_cache == "cold":
                drop_page_cache()
            run = timed_run(config_path, overrides, args.steps, args.warmup)
            rounds[name].append(run)
            print(f"round {round_index + 1}, {name}: {run['images_per_s']:.1f} images/s, {run['s_per_step']:.2f} s/step", flush=True)
    results = {name: max(runs, key=lambda run: run["images_per_s"]) for name, runs in rounds.items()}
    baseline = results[VARIANTS[0][0]]["images_per_s"]
    rows = [
        f"| {name} | {r['precision']} | {r['s_per_step']:.2f} | {r['images']} | {r['images_per_s']:.1f} | {r['images_per_s'] / baseline:.2f}x |"
        for name, r in results.items()
    ]
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    best = max(results, key=lambda name: results[name]["images_per_s"])
    baseline_name = VARIANTS[0][0]
    per_round = ", ".join(
        f"{fastest['images_per_s'] / base['images_per_s']:.2f}x"
        for fastest, base in zip(rounds[best], rounds[baseline_name], strict=True)
    )
    section = SECTION if args.page_cache == "warm" else f"{SECTION}, cold page cache"
    condition = {
        "warm": "every photo and cache file read once before the runs, as after a run's first epoch",
        "cold": "the OS page cache emptied before each variant, as a run's first epoch finds the disk",
    }[args.page_cache]
    text = (
        f"{section}\n\n"
        f"`python benchmarks/bench_training_runs.py --steps {args.steps} --warmup {args.warmup} --rounds {args.rounds} "
        f"--page-cache {args.page_cache}` ({machine}; steps {args.warmup}-{args.steps - 1} of each run from scratch, seed 0, "
        f"one process with a data worker for each of its loaders unless the variant says otherwise; {condition}; the "
        f"fastest of {args.rounds} round(s) in alternating order):\n\n"
        "| variant | computed in | s / step | images counted | images / s | vs recipe v2 |\n| --- | --- | --- | --- | --- | --- |\n"
        + "\n".join(rows) + "\n\n"
        f"Fastest: {best}, {results[best]['images_per_s'] / baseline:.2f}x recipe v2's images/s (round by round, against "
        f"recipe v2 of the same round: {per_round}). With the photos "
        "cached at the model's square, the step is the model's own forward, backward and AdamW; bfloat16 shortens "
        "its matrix products, the fused AdamW its update (one kernel for all parameters), and the data workers, which "
        "prepare the next batches while the model steps, then cost about what they save: on 2 cores they take the "
        "model's threads' cores (see \"Training data path\" above for the per-photo costs). Every variant runs "
        "today's code, recipe v2 included, so what the code gained since recipe v2 shipped counts for both sides.\n"
    )
    publish_section([text], section, args.write)


if __name__ == "__main__":
    main()
