"""`sapiensid search`: query image(s) against a gallery -> ranked table (markdown / CSV) and a ranking PNG."""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import numpy as np

from ..inference import UNTRAINED_WARNING
from .common import (
    CommandError,
    EmbeddedImages,
    banner,
    collect_images,
    embed_images,
    not_found_notes,
    open_pipeline,
)
from .embedding_files import FORMATS, read_embeddings
from .ranking_image import RankedRow, render_ranking

SHORT_UNTRAINED_WARNING = "UNTRAINED MODEL (random weights): these scores carry no identity information"
TABLE_COLUMNS = ("query", "rank", "score", "gallery_image")


def rank_gallery(
    query_embeddings: np.ndarray, gallery_embeddings: np.ndarray, top_k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(Q, k) gallery indices, best first, and their cosine similarities; ties keep gallery order."""
    scores = query_embeddings @ gallery_embeddings.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    return order, np.take_along_axis(scores, order, axis=1)


def _load_gallery(args: argparse.Namespace, pipeline) -> tuple[list[str], np.ndarray]:
    gallery = Path(args.gallery).expanduser()
    if gallery.is_file() and gallery.suffix.lower() in FORMATS:
        names, embeddings = read_embeddings(gallery)
        return names, embeddings
    paths = collect_images([gallery], recursive=args.recursive, what="gallery")
    embedded = _embed_and_report(args, pipeline, paths, "gallery")
    return [os.fspath(path) for path in embedded.paths], embedded.result.embeddings


def _embed_and_report(
    args: argparse.Namespace, pipeline, paths: list[Path], description: str
) -> EmbeddedImages:
    """Embed `paths` with the command's batch / skip options; say on stderr where nobody was found."""
    embedded = embed_images(
        pipeline,
        paths,
        batch_size=args.batch_size,
        skip_unreadable=args.skip_unreadable,
        description=description,
    )
    for note in not_found_notes(embedded.paths, embedded.result):
        print(note, file=sys.stderr)
    return embedded


def _markdown(rows: list[RankedRow], warning: str) -> str:
    lines = [f"**{warning}**", ""] if warning else []
    lines += ["| query | rank | score | gallery image |", "| --- | ---: | ---: | --- |"]
    for row in rows:
        for rank, (match, score) in enumerate(row.matches, start=1):
            lines.append(f"| {row.query} | {rank} | {score:.4f} | {match} |")
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, rows: list[RankedRow], warning: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(TABLE_COLUMNS + (("warning",) if warning else ()))
        for row in rows:
            for rank, (match, score) in enumerate(row.matches, start=1):
                writer.writerow([row.query, rank, f"{score:.6f}", match] + ([warning] if warning else []))


def run(args: argparse.Namespace) -> int:
    if args.top_k < 1:
        raise CommandError(f"--top-k must be at least 1, got {args.top_k}")
    queries = collect_images(args.queries, recursive=args.recursive, what="query")
    gallery_arg = Path(args.gallery).expanduser()
    if not gallery_arg.exists():
        raise CommandError(f"gallery {gallery_arg}: no such folder or embedding file")
    pipeline = open_pipeline(args.model, device=args.device)

    gallery_names, gallery_embeddings = _load_gallery(args, pipeline)
    embedded = _embed_and_report(args, pipeline, queries, "queries")
    query_embeddings = embedded.result.embeddings
    if gallery_embeddings.shape[1] != query_embeddings.shape[1]:
        raise CommandError(
            f"gallery {gallery_arg} holds {gallery_embeddings.shape[1]}-d embeddings but this model gives "
            f"{query_embeddings.shape[1]}-d ones: embed the gallery with the same --model"
        )

    order, scores = rank_gallery(query_embeddings, gallery_embeddings, min(args.top_k, len(gallery_names)))
    rows = [
        RankedRow(
            os.fspath(query), [(gallery_names[j], float(s)) for j, s in zip(order[i], scores[i], strict=True)]
        )
        for i, query in enumerate(embedded.paths)
    ]
    warning = "" if pipeline.trained else SHORT_UNTRAINED_WARNING
    table = _markdown(rows, warning)
    print(table, end="")
    if args.output_dir is not None:
        output_dir = Path(args.output_dir).expanduser()
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "ranking.md").write_text(table, encoding="utf-8")
        _write_csv(output_dir / "ranking.csv", rows, warning)
        render_ranking(rows, warning).save(output_dir / "ranking.png")
        for name in ("ranking.md", "ranking.csv", "ranking.png"):
            print(f"wrote {output_dir / name}")
    if not pipeline.trained:
        banner(UNTRAINED_WARNING)
    return 0
