"""`sapiensid cluster PHOTOS --output-dir people/`: group a collection's photos (or people) into identities.

Writes `clusters.json` (the assignment), one folder of links per cluster (`person_000/`, largest first)
plus `seen_once/`, and one contact sheet per cluster (`person_000.jpg`, the matched person boxed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from PIL import Image

from ..clustering import cluster_embeddings, recorded_clustering_threshold
from ..evaluation.calibration import threshold_false_match_rates
from ..parallel_processing import resolve_num_workers
from .common import CommandError, collect_images, embed_images, model_label, open_pipeline, person_crops_of
from .embed import embed_people_in_photos
from .ranking_image import THUMB, thumbnail

# A verification threshold is far too low for grouping: at a false-accept rate of 1e-2 per pair, each photo
# of a collection of 1,000 has ~10 false neighbours and everything joins one cluster (measured:
# docs/benchmarks.md, "Clustering the development people"). A model folder records its own threshold
# (`benchmarks/bench_clustering.py --record`); this one serves folders without a record: the best
# threshold of Chinese whispers for the project's models so far was 0.6 or 0.7 (docs/collections.md).
DEFAULT_CLUSTER_THRESHOLD = 0.6
SHEET_COLUMNS = 8
SHEET_MAX = 48  # thumbnails on one contact sheet


def run(args: argparse.Namespace) -> int:
    output = Path(args.output_dir).expanduser()
    if output.exists() and any(output.iterdir()):
        raise CommandError(f"output folder {output} is not empty: choose a new one (cluster writes links and sheets there)")
    photos = collect_images(args.inputs, recursive=args.recursive)
    pipeline = open_pipeline(args.model, device=args.device, person_crops=person_crops_of(args), no_cuts=args.no_cuts)
    if args.all_people:
        found, kept, _ = embed_people_in_photos(pipeline, photos, 20, 48, args.flip, 8, args.skip_unreadable)
        members = [(os.fspath(kept[row.image_index]), row.person_index, row.person.box, row.person.face_found) for row in found.rows]
        embeddings = found.embeddings
    else:
        embedded = embed_images(pipeline, photos, skip_unreadable=args.skip_unreadable, flip=args.flip,
                                num_workers=resolve_num_workers(args.num_workers))  # fmt: skip
        result, keep = embedded.result, embedded.result.person_found.astype(bool)
        for path in (path for path, found in zip(embedded.paths, keep, strict=True) if not found):
            print(f"{path}: no person found; left out", file=sys.stderr)
        members = [(os.fspath(path), -1, None, bool(face)) for path, face, found
                   in zip(embedded.paths, result.face_found, keep, strict=True) if found]  # fmt: skip
        embeddings = result.embeddings[keep]
    if len(members) == 0:
        raise CommandError("no person found in any photo: nothing to cluster")
    threshold, origin = _threshold(args.threshold, pipeline)
    # How strict the threshold is, from the folder's FAR curves (empty without them or for another embedding rule).
    passing = threshold_false_match_rates(pipeline.calibration, threshold, pipeline.embedding_rule(args.flip))
    clustering = cluster_embeddings(embeddings, threshold, args.method)
    output.mkdir(parents=True, exist_ok=True)
    record = {
        "model": model_label(args.model, pipeline), "method": args.method, "threshold": threshold,
        "threshold_origin": origin, "rows": "people" if args.all_people else "photos",
        "threshold_false_match_rates": {kind: rate.to_json() for kind, rate in passing.items()},
        "clusters": [[_member(members[i]) for i in cluster] for cluster in clustering.clusters],
        "seen_once": [_member(members[i]) for i in clustering.singletons],
    }  # fmt: skip
    (output / "clusters.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    groups = [(f"person_{number:03d}", cluster) for number, cluster in enumerate(clustering.clusters)]
    groups.append(("seen_once", clustering.singletons))
    for name, rows in groups:
        if not len(rows):
            continue
        folder = output / name
        folder.mkdir()
        for position, row in enumerate(rows):
            path = Path(members[row][0]).resolve()
            suffix = f"_p{members[row][1]}" if members[row][1] >= 0 else ""
            (folder / f"{position:04d}_{path.stem}{suffix}{path.suffix}").symlink_to(path)
        _contact_sheet([members[row] for row in rows]).save(output / f"{name}.jpg", quality=90)
    print(f"threshold: {threshold:.3f} ({origin}); method: {args.method}")
    if passing:
        print(
            "  on the model's development pairs, "
            + " and ".join(f"{rate.percent()} of different-person {kind} pairs" for kind, rate in passing.items())
            + " reach it: a higher threshold merges fewer different people and leaves more photos of one person apart"
        )
    print(f"{len(clustering.clusters)} people seen more than once, {len(clustering.singletons)} seen once, "
          f"from {len(members)} {'people' if args.all_people else 'photos'}")  # fmt: skip
    print(f"wrote {output / 'clusters.json'} and a folder + contact sheet per cluster in {output}")
    return 0


def _threshold(given: float | None, pipeline) -> tuple[float, str]:
    if given is not None:
        return float(given), "given with --threshold"
    recorded = recorded_clustering_threshold(pipeline.model.config)
    if recorded is not None:
        return recorded[0], f"recorded in the model folder: {recorded[1]}"
    return DEFAULT_CLUSTER_THRESHOLD, (
        "the default for a model folder that records none; measure this model's with "
        "benchmarks/bench_clustering.py --record, or pass --threshold"
    )


def _member(member) -> dict:
    path, person, box, face = member
    entry = {"path": path, "face_found": bool(face)}
    if person >= 0:
        entry.update(person_index=int(person), box=[round(float(v), 1) for v in box])
    return entry


def _contact_sheet(members) -> Image.Image:
    shown = members[:SHEET_MAX]
    columns = min(SHEET_COLUMNS, len(shown))
    rows = -(-len(shown) // columns)
    sheet = Image.new("RGB", (columns * (THUMB + 4) + 4, rows * (THUMB + 4) + 4), (255, 255, 255))
    for index, (path, _, box, _) in enumerate(shown):
        tile = thumbnail(path, tuple(box) if box is not None else None)
        sheet.paste(tile, (4 + (index % columns) * (THUMB + 4), 4 + (index // columns) * (THUMB + 4)))
    return sheet


__all__ = ["run"]
