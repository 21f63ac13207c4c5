"""Where a training step of the shipped recipe spends its time: reading samples (decode + resample, or the
pre-resized image cache), augmentation, and the model's step; and the images/s that follow.

    python benchmarks/bench_training_data.py --config examples/configs/small_distill.yaml [--samples 256] [--steps 12] [--write docs/benchmarks.md]

Needs the recipe's keypoint and image caches (the first `examples/train.py` run makes them). Every figure is
measured in this one run, on the recipe's own rows, in one thread (a DataLoader worker has one):

- sample read: per photo, the processor path (decode the file, pad, resample to the model's square) and
  the image-cache path (`training/image_cache.py`), over the same random rows, in alternating rounds;
- augmentation: per photo (flip, colour jitter), the same for both;
- model step: forward with the step's masking, AdaFace (+ triplet, + the distillation terms when the
  recipe distils), backward, AdamW, for the recipe's first `--steps` steps (their batch sizes and kept
  tokens), with the model on the cores left to it.

Training overlaps data and model (`data.num_workers` worker processes prepare the next batch while the
model steps), so a step takes about max(data time / workers, model time) when the cores allow. The table
gives both and the images/s each bound allows, as ratios against the processor path in the same run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from markdown_report import update_section  # noqa: E402

from sapiensid_hf.training import TrainingConfig  # noqa: E402
from sapiensid_hf.training.dataset import MODEL_INPUTS, SampleReader, join_unlabelled  # noqa: E402
from sapiensid_hf.training.face_teacher import TEACHER_DIM  # noqa: E402
from sapiensid_hf.training.recognition_model import SapiensIDForRecognitionTraining, build_backbone  # noqa: E402
from sapiensid_hf.training.trainer import Trainer  # noqa: E402

SECTION = "## Training data path"


def time_reads(reader, rows: np.ndarray) -> float:
    start = time.perf_counter()
    for row in rows:
        reader.read(int(row))
    return (time.perf_counter() - start) / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="examples/configs/small_distill.yaml")
    parser.add_argument("--samples", type=int, default=256, help="photos read per path and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12, help="model steps (the recipe's first ones; the first 2 warm up, untimed)")
    parser.add_argument("--write", type=Path, default=None, help="markdown file whose section to replace")
    args = parser.parse_args()
    if args.steps < 3:
        parser.error(f"--steps: at least 3 (the first 2 warm up and are not timed), got {args.steps}")

    config = TrainingConfig.from_file(args.config)
    if config.data.image_cache is None:
        raise SystemExit(f"{args.config} names no data.image_cache: nothing to compare the processor path with")
    model_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a DataLoader worker reads with one thread
    trainer = Trainer(config.with_overrides(["logging.tensorboard=false", "logging.output_dir=/tmp/bench_training_data"]))
    backbone = build_backbone(config.model)
    trainer._prepare_data(backbone.config)
    cached = trainer.reader
    decoded = SampleReader(cached.view, cached.keypoints, cached.processor)
    rows = np.random.default_rng(0).choice(trainer.train_rows.rows, args.samples, replace=False)
    rounds = {"processor": [], "cache": []}
    for _ in range(args.rounds):
        rounds["processor"].append(time_reads(decoded, rows))
        rounds["cache"].append(time_reads(cached, rows))
    read = {name: statistics.median(values) for name, values in rounds.items()}
    pixels, mask, points = cached.read(int(rows[0]))
    start = time.perf_counter()
    for index in range(args.samples):
        config.augmentation(pixels, mask, points, np.random.default_rng(index))
    augment = (time.perf_counter() - start) / args.samples

    torch.set_num_threads(model_threads)
    stream = trainer._build_stream(backbone.config)
    model = SapiensIDForRecognitionTraining.with_adaface(
        backbone, config.head, trainer.train_rows.num_classes, distill=config.distill, teacher_dim=TEACHER_DIM
    ).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.optimizer.lr)
    batches = iter(trainer._data_loader(stream, 0))
    unlabelled = iter(trainer._unlabelled_loader(0)) if trainer.unlabelled is not None else None
    step_times, images = [], []
    for step in range(args.steps):
        batch = next(batches)
        if unlabelled is not None:
            batch = join_unlabelled(batch, next(unlabelled))
        plan = trainer.schedule.at(step)
        start = time.perf_counter()
        output = model(**{name: batch[name] for name in MODEL_INPUTS if name in batch}, mask_ratio=plan.mask_ratio)
        output["loss"].mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= 2:  # the first steps warm the allocator up
            step_times.append(time.perf_counter() - start)
            images.append(len(batch["labels"]))
    per_image_model = sum(step_times) / sum(images)
    data = {name: value + augment for name, value in read.items()}
    workers = max(1, config.data.num_workers)
    base = max(data["processor"] / workers, per_image_model)
    lines = [
        SECTION,
        "",
        f"`python benchmarks/bench_training_data.py --config {args.config} --samples {args.samples} --rounds {args.rounds} "
        f"--steps {args.steps}` on {platform.machine()}, {torch.get_num_threads()} model threads, torch {torch.__version__}; "
        f"{len(rows)} random training photos of the recipe, median of {args.rounds} alternating rounds; model steps "
        f"2-{args.steps - 1} of the recipe's schedule ({sum(images)} images, labelled and unlabelled). "
        f"{workers} data worker(s) overlap the model, so a step is bound by the slower of the two.",
        "",
        "| data path | read (ms / photo) | + augmentation (ms) | data-bound images / s | model-bound images / s | "
        "step-bound images / s | x processor path |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, label in (("processor", "decode + resample (processor)"), ("cache", "pre-resized uint8 cache")):
        bound = max(data[name] / workers, per_image_model)
        lines.append(
            f"| {label} | {1000 * read[name]:.2f} | {1000 * augment:.2f} | {workers / data[name]:.1f} | "
            f"{1 / per_image_model:.1f} | {1 / bound:.1f} | {base / bound:.2f}x |"
        )
    lines.append("")
    lines.append(
        "The model-bound column is the same for both (the model does not see where its pixels came from); "
        "timings come from a shared machine: compare the ratios within one run."
    )
    report = "\n".join(lines) + "\n"
    print(report)
    if args.write is not None:
        update_section(args.write, SECTION, report)


if __name__ == "__main__":
    main()
