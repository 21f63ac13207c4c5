"""`sapiensid search --all-people`: rank people, not photos (people_search.py), name the photo and the box."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import sys
from pathlib import Path

from ..inference import UNTRAINED_WARNING, NoPersonFoundError, weights_fingerprint
from ..people_search import PeopleGallery, PeopleSearchResult, search_people
from ..search_evidence import evidence_notes, match_cell, withheld_note
from .common import CommandError, banner, collect_images, follow_recorded_flip, model_label
from .embed import embed_people_in_photos
from .people_files import box_text, embedded_otherwise_note, read_people_parquet
from .ranking_image import RankedRow, render_ranking
from .ranking_text import EVIDENCE_COLUMNS, evidence_csv_cells

TABLE_COLUMNS = ("query", "query_person", "rank", "score", "gallery_image", "person", "box")


def run_people_search(args: argparse.Namespace, queries: list[Path], pipeline) -> int:
    gallery = _load_people_gallery(args, pipeline)
    results: list[PeopleSearchResult] = []
    for query in queries:
        try:
            results += search_people(
                pipeline, [query], gallery, query_person=args.query_person, top_k=args.top_k, flip=args.flip,
                max_people=args.max_people, min_person_size=args.min_person_size,
            )  # fmt: skip
        except NoPersonFoundError as error:
            print(f"{error}; not searched", file=sys.stderr)
        except ValueError as error:
            raise CommandError(str(error)) from error
    if not results:
        raise CommandError("no person found in any query image: there is nobody to search for")
    made_with = pipeline.embedding_rule(args.flip)
    note = pipeline.trained and withheld_note(pipeline.calibration, made_with, gallery.embedded_with)
    if note:
        print(note, file=sys.stderr)
    for result in results:
        which = "the most prominent" if args.query_person == 0 else f"--query-person {args.query_person}"
        print(f"{result.query}: searching for person {args.query_person} of {result.people_in_query} ({which})", file=sys.stderr)
    warning = "" if pipeline.trained else "UNTRAINED MODEL (random weights): these scores carry no identity information"
    table = _markdown(results, warning)
    print(table, end="")
    if args.output_dir is not None:
        output_dir = Path(args.output_dir).expanduser()
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "ranking.md").write_text(table, encoding="utf-8")
        _write_csv(output_dir / "ranking.csv", results, warning)
        render_ranking([_ranked_row(result) for result in results], warning).save(output_dir / "ranking.png")
        for name in ("ranking.md", "ranking.csv", "ranking.png"):
            print(f"wrote {output_dir / name}")
    if not pipeline.trained:
        banner(UNTRAINED_WARNING)
    return 0


def _load_people_gallery(args: argparse.Namespace, pipeline) -> PeopleGallery:
    source = Path(args.gallery).expanduser()
    if source.is_file():
        saved = read_people_parquet(source)
        fingerprint = weights_fingerprint(pipeline.model)
        if saved.fingerprint != fingerprint:
            raise CommandError(
                f"gallery {source} was embedded by another model or embedding rule ({saved.model}, weights {saved.fingerprint}); "
                f"this is {model_label(args.model, pipeline)} (weights {fingerprint}): embed the gallery with the same --model and --no-cuts setting"
            )
        follow_recorded_flip(args, saved.flip)
        if saved.flip is not None and saved.flip != args.flip:
            print(f"note: {source} was embedded {'with' if saved.flip else 'without'} --flip, the queries "
                  f"{'with' if args.flip else 'without'} it", file=sys.stderr)  # fmt: skip
        note = embedded_otherwise_note(str(source), saved.frame_scales, saved.framing, "embed the gallery again")
        if note:
            print(note, file=sys.stderr)
        # The fingerprint matched: the model folder's centre cuts made it; its flip is what the file says.
        made_with = None if saved.flip is None else pipeline.embedding_rule(saved.flip)
        gallery = dataclasses.replace(saved.gallery, embedded_with=made_with)
    else:
        photos = collect_images([source], recursive=args.recursive, what="gallery")
        follow_recorded_flip(args, None)
        found, kept, _ = embed_people_in_photos(
            pipeline, photos, args.max_people, args.min_person_size, args.flip, args.batch_size, args.skip_unreadable
        )
        for path, people in zip(kept, found.images, strict=True):
            if not people.people:
                print(f"{path}: {people.summary()}; nobody from it in the gallery", file=sys.stderr)
        gallery = PeopleGallery.from_people(kept, found)
    if not len(gallery):
        raise CommandError(f"gallery {source}: no person was found in any of its photos, nothing to search")
    return gallery


def _markdown(results: list[PeopleSearchResult], warning: str) -> str:
    lines = [f"**{warning}**", ""] if warning else []
    rated = any(result.evidence is not None for result in results)
    if rated:
        lines += ["| query | query person | rank | score | false-match rate | gallery image | person | box |",
                  "| --- | ---: | ---: | ---: | ---: | --- | ---: | --- |"]  # fmt: skip
    else:
        lines += ["| query | query person | rank | score | gallery image | person | box |",
                  "| --- | ---: | ---: | ---: | --- | ---: | --- |"]  # fmt: skip
    for result in results:
        for rank, match in enumerate(result.matches, start=1):
            rate = f" {match_cell(result.evidence, rank)} |" if rated else ""
            lines.append(
                f"| {result.query} | {result.query_person.person_index} | {rank} | {match.score:.4f} |{rate} "
                f"{match.person.path} | {match.person.person_index} | {box_text(match.person.box)} |"
            )
    notes = evidence_notes([result.query for result in results], [result.evidence for result in results])
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def _write_csv(path: Path, results: list[PeopleSearchResult], warning: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(TABLE_COLUMNS + EVIDENCE_COLUMNS + (("warning",) if warning else ()))
        for result in results:
            for rank, match in enumerate(result.matches, start=1):
                writer.writerow(
                    [result.query, result.query_person.person_index, rank, f"{match.score:.6f}", match.person.path,
                     match.person.person_index, " ".join(f"{value:.1f}" for value in match.person.box)]
                    + evidence_csv_cells(result.evidence, rank) + ([warning] if warning else [])
                )  # fmt: skip


def _ranked_row(result: PeopleSearchResult) -> RankedRow:
    return RankedRow(
        os.fspath(result.query),
        [(match.person.path, match.score) for match in result.matches],
        query_box=result.query_person.person.box,
        match_boxes=[match.person.box for match in result.matches],
        match_rates=result.evidence and result.evidence.percents(),
    )


__all__ = ["run_people_search"]
