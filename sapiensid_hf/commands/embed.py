"""`sapiensid embed`: images or folders -> L2-normalised embeddings in an .npy (+ .paths.txt) or .parquet file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..parallel_processing import resolve_num_workers
from .common import (
    collect_images,
    embed_images,
    model_label,
    not_found_notes,
    open_pipeline,
    untrained_note,
)
from .embedding_files import check_output_path, weights_fingerprint, write_embeddings


def run(args: argparse.Namespace) -> int:
    output = Path(args.output).expanduser()
    check_output_path(output)
    paths = collect_images(args.inputs, recursive=args.recursive)
    pipeline = open_pipeline(args.model, device=args.device)
    embedded = embed_images(
        pipeline, paths, batch_size=args.batch_size, skip_unreadable=args.skip_unreadable, flip=args.flip,
        num_workers=resolve_num_workers(args.num_workers),
    )
    label = model_label(args.model, pipeline)
    written = write_embeddings(
        output, embedded.paths, embedded.result, model=label, trained=pipeline.trained,
        fingerprint=weights_fingerprint(pipeline.model), flip=args.flip,
    )  # fmt: skip

    for note in not_found_notes(embedded.paths, embedded.result, "search leaves it out"):
        print(note, file=sys.stderr)
    count, dim = embedded.result.embeddings.shape
    print(f"embedded {count} image(s) -> {dim}-d L2-normalised embeddings")
    for path in written:
        print(f"wrote {path}")
    if embedded.skipped:
        print(f"skipped {len(embedded.skipped)} unreadable image(s) (listed above)")
    if not pipeline.trained:
        print(untrained_note(pipeline), file=sys.stderr)
    return 0
