"""`sapiensid index build | add | remove | info`: a persistent index of a photo collection (photo_index/)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from accelerate import PartialState

from ..parallel_processing import resolve_num_workers
from ..photo_index import BuildReport, PhotoIndex, add_to_index, build_index, remove_from_index
from ..photo_index.process_split import is_writer
from .common import CommandError, collect_images, model_label, open_pipeline
from .people_files import describe_cuts, describe_framing


def run(args: argparse.Namespace) -> int:
    if args.backend == "milvus":
        return _run_milvus(args)
    folder = Path(args.index).expanduser()
    if args.index_command == "info":
        return _info(folder)
    if args.index_command == "remove":
        if not args.photos and not args.missing:
            raise CommandError("index remove: name the photos to remove, or --missing for the files that are gone")
        return _report(remove_from_index(folder, [Path(p).expanduser() for p in args.photos], missing=args.missing))
    photos = collect_images(args.photos, recursive=args.recursive)
    pipeline = open_pipeline(args.model, device=args.device, no_cuts=args.no_cuts)
    # Under `accelerate launch` every process embeds a slice (photo_index/process_split.py): cores are shared.
    workers = resolve_num_workers(args.num_workers, PartialState().num_processes)
    if args.index_command == "build":
        report = build_index(
            pipeline, photos, folder, all_people=args.all_people, flip=args.flip, index_type=args.index_type,
            num_workers=workers, model_label=model_label(args.model, pipeline),
        )  # fmt: skip
    else:
        report = add_to_index(pipeline, folder, photos, num_workers=workers)
    return _report(report) if is_writer() else 0  # one report per launch


def _run_milvus(args: argparse.Namespace) -> int:
    """The same actions on a Milvus collection (photo_index/milvus_backend.py): --output / FOLDER is its URI."""
    from ..photo_index.milvus_backend import MilvusPhotoIndex

    if PartialState().num_processes > 1:
        raise CommandError(
            "--backend milvus embeds in one process; under `accelerate launch` build a faiss index (the default "
            "backend), or run the Milvus command without a launch"
        )
    index = MilvusPhotoIndex(args.index, args.collection)
    if args.index_command == "info":
        manifest, stored = index.manifest, index.stored()
        print(f"Milvus {args.index}, collection {args.collection}")
        print(f"  model: {manifest.model} (weights {manifest.weights_fingerprint})")
        print(f"  rows: {len(stored)} ({'people' if manifest.per_person else 'photos'}), "
              f"{sum(bool(row['person_found']) for row in stored)} with a person; {manifest.dimension}-d")  # fmt: skip
        return 0
    if args.index_command == "remove":
        if args.missing:
            raise CommandError("--missing works with the faiss index only; name the photos to remove")
        return _report(index.remove([Path(p).expanduser() for p in args.photos]))
    photos = collect_images(args.photos, recursive=args.recursive)
    pipeline = open_pipeline(args.model, device=args.device, no_cuts=args.no_cuts)
    if args.index_command == "build":
        return _report(index.build(pipeline, photos, all_people=args.all_people, flip=args.flip,
                                   model_label=model_label(args.model, pipeline)))  # fmt: skip
    return _report(index.add(pipeline, photos))


def _report(report: BuildReport) -> int:
    for photo, reason in report.skipped:
        print(f"skipped {photo}: {reason}", file=sys.stderr)
    if report.added:
        print(f"embedded {len(report.added)} photo(s)" + (f", {len(report.replaced)} of them changed since the last add" if report.replaced else ""))
    if report.unchanged:
        print(f"{report.unchanged} photo(s) already indexed and unchanged")
    if report.removed:
        print(f"removed {len(report.removed)} photo(s)")
    if report.missing:
        print(f"{len(report.missing)} indexed photo(s) no longer exist, e.g. {report.missing[0]}; "
              f"`sapiensid index remove {report.folder} --missing` removes them", file=sys.stderr)  # fmt: skip
    print(f"index {report.folder}: {report.rows} rows, {report.searchable} with a person")
    if report.skipped:
        print(f"skipped {len(report.skipped)} unreadable photo(s) (listed above)")
    return 0


def _info(folder: Path) -> int:
    index = PhotoIndex.open(folder)
    manifest = index.manifest
    photos = len(set(index.rows.paths))
    print(f"index {folder}")
    print(f"  model: {manifest.model} (weights {manifest.weights_fingerprint})")
    print(f"  rows: {manifest.rows} ({'people' if manifest.per_person else 'photos'}) from {photos} photo(s), "
          f"{int(index.rows.person_found.sum())} with a person")  # fmt: skip
    print(f"  embedding: {manifest.dimension}-d, flip {'on' if manifest.flip else 'off'}; faiss index: {manifest.index_type}")
    if manifest.per_person:
        print(f"  people embedded from {describe_cuts(manifest.person_frame_scales)}, {describe_framing(manifest.person_framing)}")
    elif manifest.small_person_share is None:
        print("  built before people who fill little of their photo were cut from it (2026-12-04)")
    else:
        print(f"  a person whose frame covers less than {manifest.small_person_share:g} of the photo cut from it first")
    return 0
