"""`sapiensid embed`: images or folders -> L2-normalised embeddings in an .npy (+ .paths.txt) or .parquet file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..inference import weights_fingerprint
from ..parallel_processing import resolve_num_workers
from ..people_embedding import PeopleEmbeddings
from ..processing.image_decoding import SapiensIDInputError
from .common import (
    SKIP_UNREADABLE_HINT,
    CommandError,
    collect_images,
    embed_images,
    model_label,
    not_found_notes,
    open_pipeline,
    person_crops_of,
    untrained_note,
)
from .embedding_files import check_output_path, write_embeddings
from .people_files import write_people_parquet


def run(args: argparse.Namespace) -> int:
    output = Path(args.output).expanduser()
    check_output_path(output)
    paths = collect_images(args.inputs, recursive=args.recursive)
    pipeline = open_pipeline(args.model, device=args.device, person_crops=person_crops_of(args), no_cuts=args.no_cuts)
    if args.all_people:
        return _run_all_people(args, output, paths, pipeline)
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
    framed = int(embedded.result.framed.sum())
    if framed:
        print(f"{framed} of them: the person fills little of the photo and was cut from it first (docs/people.md)")
    for path in written:
        print(f"wrote {path}")
    if embedded.skipped:
        print(f"skipped {len(embedded.skipped)} unreadable image(s) (listed above)")
    if not pipeline.trained:
        print(untrained_note(pipeline), file=sys.stderr)
    return 0


def _run_all_people(args: argparse.Namespace, output: Path, paths: list[Path], pipeline) -> int:
    """`--all-people`: every person of every photo, one parquet row each (people_files.py)."""
    if output.suffix.lower() != ".parquet":
        raise CommandError(f"output {output}: --all-people writes one row per person with its box: give FILE.parquet")
    people, kept, skipped = embed_people_in_photos(
        pipeline, paths, max_people=args.max_people, min_person_size=args.min_person_size, flip=args.flip,
        batch_size=args.batch_size, skip_unreadable=args.skip_unreadable,
    )  # fmt: skip
    write_people_parquet(
        output, kept, people, model=model_label(args.model, pipeline), trained=pipeline.trained,
        fingerprint=weights_fingerprint(pipeline.model), flip=args.flip,
    )  # fmt: skip
    for path, found in zip(kept, people.images, strict=True):
        print(f"{path}: {found.summary()}", file=sys.stderr)
    count = len(people.rows)
    print(f"embedded {count} {'person' if count == 1 else 'people'} in {len(kept)} photo(s)")
    print(f"wrote {output}")
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s) (listed above)")
    if not pipeline.trained:
        print(untrained_note(pipeline), file=sys.stderr)
    return 0


def embed_people_in_photos(
    pipeline, paths: list[Path], max_people: int, min_person_size: float, flip: bool, batch_size: int,
    skip_unreadable: bool,
) -> tuple[PeopleEmbeddings, list[Path], list[tuple[Path, str]]]:  # fmt: skip
    """`pipeline.embed_people` photo by photo, leaving out (and listing) unreadable ones when asked."""
    from tqdm.auto import tqdm

    people, kept, skipped = PeopleEmbeddings(), [], []
    for path in tqdm(paths, desc="finding people", unit="img", disable=None, file=sys.stderr):
        try:
            found = pipeline.embed_people([path], max_people, min_person_size, flip, batch_size)
        except SapiensIDInputError as error:
            if not skip_unreadable:
                raise SapiensIDInputError(f"{error}{SKIP_UNREADABLE_HINT}") from error
            skipped.append((path, str(error)))
            print(f"skipped {path}: {error}", file=sys.stderr)
            continue
        for row in found.rows:
            row.image_index = len(kept)
            people.rows.append(row)
        people.images.extend(found.images)
        people.embedded_with = found.embedded_with  # one pipeline and flip: the same rule for every photo
        kept.append(path)
    if not kept:
        raise CommandError("none of the images could be read")
    return people, kept, skipped
