"""`sapiensid compare`: two images -> cosine similarity and a same / different verdict at a threshold."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..inference import UNTRAINED_WARNING, NoPersonFoundError
from ..people_compare import PeopleComparison
from ..processing.image_decoding import describe_input
from .common import NO_PERSON, CommandError, banner, open_pipeline
from .compare_people import print_people_comparison


def _image_file(raw: str, label: str) -> Path:
    path = Path(raw).expanduser()
    if path.is_dir():
        raise CommandError(f"{describe_input(path, label)} is a folder; compare takes two image files (see `sapiensid search`)")
    if not path.is_file():
        raise CommandError(f"{describe_input(path, label)}: no such file")
    return path


def _describe(person_found: bool, face_found: bool, num_people: int, framed: bool = False) -> str:
    if not person_found:
        return NO_PERSON
    parts = ["face found" if face_found else "no face (body only)"]
    if num_people > 1:
        parts.append(f"{num_people} people, the most prominent one used")
    if framed:
        parts.append("the person fills little of the photo: cut from it first")
    return ", ".join(parts)


def run(args: argparse.Namespace) -> int:
    first, second = _image_file(args.image_a, "A"), _image_file(args.image_b, "B")
    pipeline = open_pipeline(args.model, device=args.device, no_cuts=args.no_cuts)
    try:
        verification = pipeline.compare(
            os.fspath(first), os.fspath(second), threshold=args.threshold, flip=args.flip, every_pair=args.all_pairs
        )
    except NoPersonFoundError as error:  # only with --all-pairs: a photo with nobody has no pairs to show
        raise CommandError(str(error)) from error
    if isinstance(verification, PeopleComparison):
        return print_people_comparison(args, first, second, verification, pipeline.trained)
    result, score, same, threshold = verification.result, verification.score, verification.same, verification.threshold
    # Without a person in both pictures there is nothing to compare: the score and the verdict are withheld.
    nobody = [label for label, found in zip("AB", result.person_found, strict=True) if not found]
    verdict = (
        f"unknown: no person found in {' and '.join(nobody)}" if nobody else ("SAME PERSON" if same else "DIFFERENT PEOPLE")
    )

    if args.json:
        print(
            json.dumps(
                {
                    "image_a": os.fspath(first),
                    "image_b": os.fspath(second),
                    "score": score,
                    "threshold": threshold.value,
                    "threshold_kind": threshold.kind,
                    "threshold_origin": threshold.origin,
                    "same_person": same,
                    # How often different people reach the score on the model's development pairs.
                    "score_false_match_rate": None if verification.false_match_rate is None else verification.false_match_rate.to_json(),
                    "verdict": verdict,
                    "trained": pipeline.trained,
                    "person_found": [bool(value) for value in result.person_found],
                    "face_found": [bool(value) for value in result.face_found],
                    "cut_from_photo": [bool(value) for value in result.framed],
                },
                indent=2,
            )
        )
    else:
        for label, path, index in (("A", first, 0), ("B", second, 1)):
            details = _describe(
                bool(result.person_found[index]),
                bool(result.face_found[index]),
                int(result.num_people[index]),
                bool(result.framed[index]),
            )
            print(f"image {label}: {path} ({details})")
        print("cosine similarity: " + ("none" if score is None else f"{score:.4f}"))
        if verification.false_match_rate is not None:
            print(f"  {verification.false_match_rate.describe()}")
        print(f"threshold: {threshold.describe()}")
        suffix = "   <-- MEANINGLESS: untrained weights" if not pipeline.trained and score is not None else ""
        print(f"verdict at threshold {threshold.value:.3f}: {verdict}{suffix}")
    if not pipeline.trained:
        banner(UNTRAINED_WARNING)
    return 0
