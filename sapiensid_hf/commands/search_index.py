"""`sapiensid search QUERY --index FOLDER`: rank the rows of a photo index (photo_index/) for each query."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..inference import UNTRAINED_WARNING
from ..photo_index import PhotoIndex
from ..search_evidence import evidence_notes, match_cell, search_evidence, withheld_note
from ..small_person_framing import SMALL_PERSON_SHARE
from .common import CommandError, banner, follow_recorded_flip
from .embedding_files import small_person_words
from .people_files import box_text, embedded_otherwise_note
from .ranking_image import RankedRow, render_ranking


def run_index_search(args: argparse.Namespace, queries: list[Path], pipeline) -> int:
    if args.backend == "milvus":
        from ..photo_index.milvus_backend import MilvusPhotoIndex

        index = MilvusPhotoIndex(args.index, args.collection)
    else:
        index = PhotoIndex.open(Path(args.index).expanduser())
    index.check_model(pipeline)
    follow_recorded_flip(args, index.manifest.flip)
    if index.manifest.flip != args.flip:
        print(f"note: the index was embedded {'with' if index.manifest.flip else 'without'} --flip and the queries "
              f"{'with' if args.flip else 'without'} it", file=sys.stderr)  # fmt: skip
    per_person = index.manifest.per_person
    note = per_person and embedded_otherwise_note(
        "the index", index.manifest.person_frame_scales, index.manifest.person_framing, "build the index again"
    )
    if note:
        print(note, file=sys.stderr)
    if not per_person and index.manifest.small_person_share != SMALL_PERSON_SHARE:
        print(f"note: the index was built {small_person_words(index.manifest.small_person_share)}; build the index "
              "again for the best ranking", file=sys.stderr)  # fmt: skip
    searched, vectors, boxes, faces = [], [], [], []
    if per_person or args.all_people:
        found = pipeline.embed_people(queries, flip=args.flip)
        for number, query in enumerate(queries):
            people = found.people_of(number)
            if len(people) <= args.query_person:
                print(f"{query}: {'no person found' if not people else f'no person {args.query_person}'}; not searched", file=sys.stderr)
                continue
            searched.append(query)
            vectors.append(people[args.query_person].embedding)
            boxes.append(people[args.query_person].person.box)
            faces.append(people[args.query_person].person.face_found)
    else:
        result = pipeline.embed([os.fspath(query) for query in queries], flip=args.flip)
        for number, query in enumerate(queries):
            if not result.person_found[number]:
                print(f"{query}: no person found; not searched", file=sys.stderr)
                continue
            searched.append(query)
            vectors.append(result.embeddings[number])
            boxes.append(None)
            faces.append(bool(result.face_found[number]))
    if not searched:
        raise CommandError("no person found in any query image: there is nothing to search with")
    import numpy as np

    settings = {} if args.backend == "milvus" else {"nprobe": args.nprobe, "ef_search": args.ef_search}
    hits = index.search(np.stack(vectors), args.top_k, **settings)
    # The index's fingerprint matched: the model folder's centre cuts made it; its flip is the manifest's.
    made_with = pipeline.embedding_rule(args.flip)
    index_rule = pipeline.embedding_rule(index.manifest.flip)
    entries, face_entries = index.searchable_counts()
    evidences = [
        search_evidence(pipeline.calibration, made_with, face, [hit.score for hit in query_hits],
                        [hit.face_found for hit in query_hits], entries, face_entries, index_rule)  # fmt: skip
        for face, query_hits in zip(faces, hits, strict=True)
    ]
    note = pipeline.trained and withheld_note(pipeline.calibration, made_with, index_rule)
    if note:
        print(note, file=sys.stderr)
    rated = any(evidence is not None for evidence in evidences)
    warning = "" if pipeline.trained else "UNTRAINED MODEL (random weights): these scores carry no identity information"
    lines = [f"**{warning}**", ""] if warning else []
    # A photo index has one row a photo: no person number or box to show.
    columns = ["query", "rank", "score"] + (["false-match rate"] if rated else []) + ["photo"]
    aligns = ["---", "---:", "---:"] + (["---:"] if rated else []) + ["---"]
    if per_person:
        columns, aligns = columns + ["person", "box"], aligns + ["---:", "---"]
    lines += ["| " + " | ".join(columns) + " |", "| " + " | ".join(aligns) + " |"]
    for query, query_hits, evidence in zip(searched, hits, evidences, strict=True):
        for rank, hit in enumerate(query_hits, start=1):
            rate = f" {match_cell(evidence, rank)} |" if rated else ""
            row = f"| {query} | {rank} | {hit.score:.4f} |{rate} {hit.path} |"
            if per_person:
                row += f" {hit.person_index} | {'' if hit.box is None else box_text(hit.box)} |"
            lines.append(row)
    notes = evidence_notes([os.fspath(query) for query in searched], evidences)
    lines += [""] + notes if notes else []
    table = "\n".join(lines) + "\n"
    print(table, end="")
    if args.output_dir is not None:
        output_dir = Path(args.output_dir).expanduser()
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "ranking.md").write_text(table, encoding="utf-8")
        rows = [
            RankedRow(os.fspath(query), [(hit.path, hit.score) for hit in query_hits], query_box=box,
                      match_boxes=[hit.box for hit in query_hits], match_rates=evidence and evidence.percents())  # fmt: skip
            for query, query_hits, box, evidence in zip(searched, hits, boxes, evidences, strict=True)
        ]
        render_ranking(rows, warning).save(output_dir / "ranking.png")
        for name in ("ranking.md", "ranking.png"):
            print(f"wrote {output_dir / name}")
    if not pipeline.trained:
        banner(UNTRAINED_WARNING)
    return 0
