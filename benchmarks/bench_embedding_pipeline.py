"""End-to-end embedding throughput (`sapiensid embed`'s path) against its two parts, in one run.

    python benchmarks/bench_embedding_pipeline.py [--num-images 240] [--model FOLDER] [--no-write]

On real photos from ../shared/data/identities (every k-th file of manifest.csv: CUHK03 and Con-ReID
pedestrian boxes, LFW faces), images/s of:

- (a) the processor alone (decode + keypoint detector + ROIs) in worker processes on all cores;
- (b) the model alone on the processed batches, in this process with all threads;
- the whole embedding (`commands.common.embed_images`, what `sapiensid embed` runs) with the default
  `--num-workers auto`, and with `--num-workers 0` (everything in one process, the old behaviour);
- for a model folder with an embedding rule of centre cuts (sapiensid_hf/cut_views.py, the shipped
  model's), the whole embedding under that rule too, with flip (every command's default) and without
  (`--no-flip`): what the cuts and flip cost against the photo as it is.
  (a), (b) and the other rows embed the photo as it is, without flip.

The goal is whole >= 0.8 x min(a, b). The model is the shipped one when present, else `--model`, else
an untrained model of the training recipe's shape (same speed as trained weights).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import time
from pathlib import Path

import torch
from markdown_report import publish_section

from sapiensid_hf.commands.common import embed_images
from sapiensid_hf.cut_views import PHOTO_AS_IT_IS, rule_description
from sapiensid_hf.embedding_views import embed_batch
from sapiensid_hf.inference import SapiensIDPipeline, default_model_source, load_pipeline, untrained_model
from sapiensid_hf.modeling import SapiensIDConfig
from sapiensid_hf.parallel_processing import default_num_workers, process_images
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor

ROOT = Path(__file__).resolve().parents[1]
IDENTITIES = ROOT.parent / "shared" / "data" / "identities"
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## End-to-end embedding"
RECIPE_SHAPE = dict(image_size=96, hidden_size=192, num_hidden_layers=4, num_attention_heads=6, intermediate_size=768)


def sample_paths(count: int) -> list[Path]:
    with open(IDENTITIES / "manifest.csv", newline="") as handle:
        rows = sorted(row["path"] for row in csv.DictReader(handle))
    step = max(1, len(rows) // count)
    return [IDENTITIES / path for path in rows[::step][:count]]


def open_model(model: str | None) -> tuple[SapiensIDPipeline, str]:
    source = model or default_model_source()
    if source is not None:
        return load_pipeline(source), source
    config = SapiensIDConfig(**RECIPE_SHAPE)
    processor = SapiensIDImageProcessor.from_model_config(config)
    return SapiensIDPipeline(untrained_model(config), processor, trained=False), "untrained, recipe shape"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-images", type=int, default=240)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", default=None)
    parser.add_argument("--no-write", action="store_true", help="print only, do not touch docs/benchmarks.md")
    args = parser.parse_args()

    paths = sample_paths(args.num_images)
    names = [os.fspath(path) for path in paths]
    pipeline, label = open_model(args.model)
    workers = default_num_workers()
    pipeline.embed(names[:2])  # load the detector and warm the model once, outside every timing
    rule, cuts = getattr(pipeline.model.config, "embedding_cuts", None), pipeline.embedding_cuts
    rule_rates = {}
    if cuts != PHOTO_AS_IT_IS:
        for flip in (True, False):
            start = time.perf_counter()
            embedded = embed_images(pipeline, paths, batch_size=args.batch_size, num_workers=workers, flip=flip)
            rule_rates[flip] = len(embedded.paths) / (time.perf_counter() - start)
    pipeline.model.config.embedding_cuts = None  # every other row: the photo as it is

    start = time.perf_counter()
    batches = [batch for batch in process_images(pipeline.processor, names, args.batch_size, workers)]
    processor_rate = len(paths) / (time.perf_counter() - start)

    start = time.perf_counter()
    for batch in batches:
        embed_batch(pipeline.model, batch.features, pipeline.device, flip=False)
    model_rate = len(paths) / (time.perf_counter() - start)

    rates = {}
    for count in (workers, 0):
        start = time.perf_counter()
        embedded = embed_images(pipeline, paths, batch_size=args.batch_size, num_workers=count, flip=False)
        rates[count] = len(embedded.paths) / (time.perf_counter() - start)
    bound = min(processor_rate, model_rate)
    pipeline.model.config.embedding_cuts = rule
    rule_rows = [
        f"| whole `embed_images`, `--num-workers auto`, the folder's rule: {rule_description(cuts)}, "
        f"{'flip (every command' + chr(39) + 's default)' if flip else '--no-flip'} | {rate:.1f} | {rate / bound:.2f} |"
        for flip, rate in rule_rates.items()
    ]
    rule_line = "" if not rule_rates else (
        f" The folder's default (its centre cuts, flip) runs at **{rule_rates[True] / rates[workers]:.2f}x** the photo as "
        f"it is without flip; flip under the rule: **{rule_rates[True] / rule_rates[False]:.2f}x** the photos per second of `--no-flip`."
    )

    lines = [
        SECTION,
        "",
        f"`python benchmarks/bench_embedding_pipeline.py --num-images {args.num_images}` — {len(paths)} real photos "
        "(every k-th file of ../shared/data/identities/manifest.csv: pedestrian boxes and LFW faces), batch "
        f"{args.batch_size}, model: {label} ({pipeline.model.config.image_size} px; rows without the folder's rule "
        f"embed the photo as it is, without flip). {workers} worker processes = the cores this process may use; the model runs in the main "
        f"process on {torch.get_num_threads()} threads. All in one run:",
        "",
        "| what runs | images / s | x min(a, b) |",
        "| --- | --- | --- |",
        f"| (a) processor alone (decode + detector + ROIs), {workers} workers | {processor_rate:.1f} | "
        f"{processor_rate / bound:.2f} |",
        f"| (b) model alone, on (a)'s batches | {model_rate:.1f} | {model_rate / bound:.2f} |",
        f"| whole `embed_images`, `--num-workers auto` ({workers}) | {rates[workers]:.1f} | "
        f"**{rates[workers] / bound:.2f}** |",
        f"| whole `embed_images`, `--num-workers 0` (one process) | {rates[0]:.1f} | {rates[0] / bound:.2f} |",
        *rule_rows,
        "",
        f"Workers vs one process: **{rates[workers] / rates[0]:.2f}x**.{rule_line} Machine: "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}; other "
        "jobs may share the cores, so compare the ratios, not the seconds.",
    ]
    publish_section(lines, SECTION, None if args.no_write else DOC)


if __name__ == "__main__":
    main()
