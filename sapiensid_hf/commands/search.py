"""`sapiensid search`: query image(s) against a gallery -> ranked table (markdown / CSV) and a ranking PNG."""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import numpy as np

from ..inference import UNTRAINED_WARNING, weights_fingerprint
from ..parallel_processing import resolve_num_workers
from ..photo_search import PhotoGallery, rank_photos
from ..search_evidence import SearchEvidence, evidence_notes, match_cell, withheld_note
from .common import (
    CommandError,
    EmbeddedImages,
    banner,
    collect_images,
    embed_images,
    follow_recorded_flip,
    model_label,
    not_found_notes,
    open_pipeline,
    person_crops_of,
)
from .embedding_files import FORMATS, read_embeddings, small_person_note
from .ranking_image import RankedRow, render_ranking
from .ranking_text import EVIDENCE_COLUMNS, evidence_csv_cells
from .search_index import run_index_search
from .search_people import run_people_search

SHORT_UNTRAINED_WARNING = "UNTRAINED MODEL (random weights): these scores carry no identity information"
TABLE_COLUMNS = ("query", "rank", "score", "gallery_image")


def _load_gallery(args: argparse.Namespace, pipeline) -> PhotoGallery:
    gallery = Path(args.gallery).expanduser()
    if gallery.is_file() and gallery.suffix.lower() in FORMATS:
        saved = read_embeddings(gallery)
        fingerprint = weights_fingerprint(pipeline.model)
        if saved.fingerprint is None:
            print(
                f"WARNING: {gallery} does not record which model embedded it (written by an older version); "
                "if it was another model, these rankings are meaningless",
                file=sys.stderr,
            )
        elif saved.fingerprint != fingerprint:
            raise CommandError(
                f"gallery {gallery} was embedded by another model or embedding rule ({saved.model}, weights {saved.fingerprint}); "
                f"this is {model_label(args.model, pipeline)} (weights {fingerprint}): embed the gallery with the same --model and --no-cuts setting"
            )
        follow_recorded_flip(args, saved.flip)
        if saved.flip is not None and saved.flip != args.flip:
            print(
                f"note: {gallery} was embedded {'with' if saved.flip else 'without'} --flip and the queries are "
                f"embedded {'with' if args.flip else 'without'} it; use the same setting for comparable scores",
                file=sys.stderr,
            )
        note = small_person_note(gallery, saved)
        if note:
            print(note, file=sys.stderr)
        keep = np.ones(len(saved.names), dtype=bool) if saved.person_found is None else saved.person_found
        if not keep.any():
            raise CommandError(f"gallery {gallery}: no person was found in any of its images, nothing to search")
        names = [name for name, kept in zip(saved.names, keep, strict=True) if kept]
        faces = None if saved.face_found is None else saved.face_found[keep]
        # The fingerprint matched: the model folder's centre cuts made it; its flip is what the file says.
        made_with = None if saved.flip is None else pipeline.embedding_rule(saved.flip)
        return PhotoGallery(names, saved.embeddings[keep], faces, made_with)
    paths = collect_images([gallery], recursive=args.recursive, what="gallery")
    follow_recorded_flip(args, None)
    embedded = _embed_and_report(args, pipeline, paths, "gallery", "left out of the gallery")
    found = embedded.result.person_found.astype(bool)
    if not found.any():
        raise CommandError(f"gallery {gallery}: no person found in any of its {len(found)} images, nothing to search")
    made_with = pipeline.embedding_rule(args.flip)
    return PhotoGallery.from_result([os.fspath(path) for path in embedded.paths], embedded.result, made_with)


def _embed_and_report(
    args: argparse.Namespace, pipeline, paths: list[Path], description: str, consequence: str
) -> EmbeddedImages:
    """Embed `paths` with the command's batch / skip options; say on stderr where nobody was found."""
    embedded = embed_images(
        pipeline,
        paths,
        batch_size=args.batch_size,
        skip_unreadable=args.skip_unreadable,
        description=description,
        flip=args.flip,
        num_workers=resolve_num_workers(args.num_workers),
    )
    for note in not_found_notes(embedded.paths, embedded.result, consequence):
        print(note, file=sys.stderr)
    return embedded


def _markdown(rows: list[RankedRow], evidences: list[SearchEvidence | None], warning: str) -> str:
    lines = [f"**{warning}**", ""] if warning else []
    rated = any(evidence is not None for evidence in evidences)
    lines += (
        ["| query | rank | score | false-match rate | gallery image |", "| --- | ---: | ---: | ---: | --- |"]
        if rated
        else ["| query | rank | score | gallery image |", "| --- | ---: | ---: | --- |"]
    )
    for row, evidence in zip(rows, evidences, strict=True):
        for rank, (match, score) in enumerate(row.matches, start=1):
            rate = f" {match_cell(evidence, rank)} |" if rated else ""
            lines.append(f"| {row.query} | {rank} | {score:.4f} |{rate} {match} |")
    notes = evidence_notes([row.query for row in rows], evidences)
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def _write_csv(path: Path, rows: list[RankedRow], evidences: list[SearchEvidence | None], warning: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(TABLE_COLUMNS + EVIDENCE_COLUMNS + (("warning",) if warning else ()))
        for row, evidence in zip(rows, evidences, strict=True):
            for rank, (match, score) in enumerate(row.matches, start=1):
                writer.writerow(
                    [row.query, rank, f"{score:.6f}", match] + evidence_csv_cells(evidence, rank) + ([warning] if warning else [])
                )


def run(args: argparse.Namespace) -> int:
    queries = collect_images(args.queries, recursive=args.recursive, what="query")
    if (args.gallery is None) == (args.index is None):
        raise CommandError("search needs either --gallery (photos or an embedding file) or --index (a photo index)")
    if args.index is not None:
        pipeline = open_pipeline(args.model, device=args.device, person_crops=person_crops_of(args), no_cuts=args.no_cuts)
        return run_index_search(args, queries, pipeline)
    gallery_arg = Path(args.gallery).expanduser()
    if not gallery_arg.exists():
        raise CommandError(f"gallery {gallery_arg}: no such folder or embedding file")
    pipeline = open_pipeline(args.model, device=args.device, person_crops=person_crops_of(args), no_cuts=args.no_cuts)
    if args.all_people:
        return run_people_search(args, queries, pipeline)
    if args.query_person:
        raise CommandError("--query-person picks one of the people of a query photo: it needs --all-people")

    gallery = _load_gallery(args, pipeline)
    embedded = _embed_and_report(args, pipeline, queries, "queries", "not searched")
    searchable = embedded.result.person_found.astype(bool)
    if not searchable.any():
        raise CommandError("no person found in any query image: there is nothing to search with")
    query_embeddings = embedded.result.embeddings[searchable]
    query_faces = embedded.result.face_found.astype(bool)[searchable]
    query_paths = [path for path, keep in zip(embedded.paths, searchable, strict=True) if keep]
    if gallery.embeddings.shape[1] != query_embeddings.shape[1]:
        raise CommandError(
            f"gallery {gallery_arg} holds {gallery.embeddings.shape[1]}-d embeddings but this model gives "
            f"{query_embeddings.shape[1]}-d ones: embed the gallery with the same --model"
        )

    made_with = pipeline.embedding_rule(args.flip)
    results = rank_photos(
        [os.fspath(path) for path in query_paths], query_embeddings, query_faces, gallery, args.top_k, pipeline.calibration, made_with
    )
    evidences = [result.evidence for result in results]
    rows = [
        RankedRow(result.query, [(match.name, match.score) for match in result.matches],
                  match_rates=result.evidence and result.evidence.percents())  # fmt: skip
        for result in results
    ]
    note = pipeline.trained and withheld_note(pipeline.calibration, made_with, gallery.embedded_with)
    if note:
        print(note, file=sys.stderr)
    warning = "" if pipeline.trained else SHORT_UNTRAINED_WARNING
    table = _markdown(rows, evidences, warning)
    print(table, end="")
    if args.output_dir is not None:
        output_dir = Path(args.output_dir).expanduser()
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "ranking.md").write_text(table, encoding="utf-8")
        _write_csv(output_dir / "ranking.csv", rows, evidences, warning)
        render_ranking(rows, warning).save(output_dir / "ranking.png")
        for name in ("ranking.md", "ranking.csv", "ranking.png"):
            print(f"wrote {output_dir / name}")
    if not pipeline.trained:
        banner(UNTRAINED_WARNING)
    return 0
