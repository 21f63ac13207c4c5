"""`sapiensid compare` on photos with several people: the best-matching pair, which people, all pairs."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..inference import UNTRAINED_WARNING
from ..people_compare import PeopleComparison
from ..people_embedding import PersonEmbedding
from .common import banner
from .people_files import box_text


def print_people_comparison(
    args: argparse.Namespace, first: Path, second: Path, comparison: PeopleComparison, trained: bool
) -> int:
    """Print the people comparison (text, or JSON with `--json`) and return the exit status."""
    verdict = "SAME PERSON" if comparison.same else "DIFFERENT PEOPLE"
    a, b = comparison.pair
    if args.json:
        print(json.dumps(_as_json(first, second, comparison, verdict, trained), indent=2))
    else:
        for label, path, people in (("A", first, comparison.people_a), ("B", second, comparison.people_b)):
            print(f"image {label}: {path} ({len(people)} {'person' if len(people) == 1 else 'people'})")
        print(f"best-matching pair: person {a} of A and person {b} of B (0 = a photo's most prominent person)")
        print(f"  A person {a}: {_describe(comparison.people_a[a])}")
        print(f"  B person {b}: {_describe(comparison.people_b[b])}")
        print(f"cosine similarity: {comparison.score:.4f}")
        if comparison.false_match_rate is not None:
            print(f"  {comparison.false_match_rate.describe()}")
        print(f"threshold: {comparison.threshold.describe()}")
        suffix = "   <-- MEANINGLESS: untrained weights" if not trained else ""
        print(f"verdict at threshold {comparison.threshold.value:.3f}: {verdict}{suffix}")
        if args.all_pairs:
            print("all pairs (rows: people of A, columns: people of B):")
            print("      " + "".join(f"B{column:<7}" for column in range(len(comparison.people_b))))
            for row, scores in enumerate(comparison.scores):
                print(f"  A{row:<3}" + "".join(f"{score:<8.4f}" for score in scores))
    if not trained:
        banner(UNTRAINED_WARNING)
    return 0


def _describe(person: PersonEmbedding) -> str:
    seen = "face and body" if person.person.face_found and person.person.body_found else (
        "face only" if person.person.face_found else "body only, no face"
    )
    return f"box {box_text(person.person.box)}, {seen}"


def _as_json(first: Path, second: Path, comparison: PeopleComparison, verdict: str, trained: bool) -> dict:
    def people(rows: list[PersonEmbedding]) -> list[dict]:
        return [
            {"person": row.person_index, "box": [round(value, 1) for value in row.person.box],
             "face_found": row.person.face_found, "body_found": row.person.body_found}
            for row in rows
        ]  # fmt: skip

    return {
        "image_a": os.fspath(first),
        "image_b": os.fspath(second),
        "people_a": people(comparison.people_a),
        "people_b": people(comparison.people_b),
        "pair": list(comparison.pair),
        "score": comparison.score,
        "scores": [[round(float(value), 6) for value in row] for row in comparison.scores],
        "threshold": comparison.threshold.value,
        "threshold_kind": comparison.threshold.kind,
        "threshold_origin": comparison.threshold.origin,
        "pairs_judged": comparison.pairs_judged,
        "score_false_match_rate": None if comparison.false_match_rate is None else comparison.false_match_rate.to_json(),
        "same_person": comparison.same,
        "verdict": verdict,
        "trained": trained,
    }


__all__ = ["print_people_comparison"]
