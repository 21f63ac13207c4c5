"""Is the chance `search` gives for a best score honest? Searches of development galleries without the person.

    python benchmarks/bench_search_evidence.py [--model DIR] [--searches 2000] [--seed 0] [--write docs/benchmarks.md]

Under each ranking `search` says how often a gallery of the same entries without the person searched for
gives a best score as high (search_evidence.py: the best of the entries' different-person pairs, read off
the model's FAR curves). Read as a p-value, that chance is honest when, over searches whose person is
truly absent, it falls at or below a level a in a share a of them (or less: a cautious figure). Here a
query photo is drawn from a development set (embeddings as `sapiensid evaluate --benchmark public-dev`
makes them, dev_embeddings.py) and a gallery of N photos of other people of the same set; the share of
searches whose chance is at or below 1 %, 5 %, 10 % and 50 % is printed against that level. A second
draw puts one other photo of the query's person into the gallery: how often the best match is that
person, and how often it is with a chance at or below 5 % (strong evidence the tool would show).

LFW fold 7 (faces: the face curve) and CUHK03-val (bodies) are the sets the curves were measured on;
Con-ReID (bodies) is not, so its row is the out-of-sample check.
"""

from __future__ import annotations

import numpy as np
from dev_embeddings import calibrated_development_embeddings, development_arguments
from markdown_report import publish_section

from sapiensid_hf.search_evidence import search_evidence

SECTION = "## How honest a search's best-score chance is"
LEVELS = (0.01, 0.05, 0.10, 0.50)
STRONG = 0.05
GALLERY_SIZES = (10, 100, 400)


def best_score_chances(
    embeddings: np.ndarray, labels: np.ndarray, gallery_size: int, searches: int, seed: int, calibration: dict,
    faces: bool, present: bool,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per search: the chance the tool gives for the best score, and whether the best match is the query's
    person (only possible when `present`: one other photo of them is in the gallery)."""
    rng = np.random.default_rng(seed)
    rule = calibration.get("embedded_with")
    with_another = [row for row in range(len(labels)) if (labels == labels[row]).sum() >= 2]
    chances, right = np.empty(searches), np.zeros(searches, bool)
    for search in range(searches):
        query = int(rng.choice(with_another)) if present else int(rng.integers(len(labels)))
        strangers = np.flatnonzero(labels != labels[query])
        gallery = rng.choice(strangers, size=gallery_size - int(present), replace=False)
        if present:
            again = np.flatnonzero((labels == labels[query]) & (np.arange(len(labels)) != query))
            gallery = np.concatenate([[int(rng.choice(again))], gallery])
        scores = embeddings[gallery] @ embeddings[query]
        best = int(np.argmax(scores))
        evidence = search_evidence(calibration, rule, faces, [float(scores[best])], [faces], gallery_size, gallery_size, rule)
        chances[search] = evidence.best_score_chance.rate
        right[search] = present and best == 0
    return chances, right


def main() -> None:
    args = development_arguments(__doc__.split("\n")[0], "--searches", "searches per set, gallery size and case")
    pipeline, data = calibrated_development_embeddings(args)
    calibration = pipeline.calibration
    levels = " / ".join(f"{100 * level:g} %" for level in LEVELS)
    lines = [
        SECTION, "",
        f"`python benchmarks/bench_search_evidence.py --searches {args.searches} --seed {args.seed}` with "
        f"{pipeline.description} (module docstring). Person absent: the share of {args.searches} searches "
        f"whose best-score chance is at or below {levels}, and in brackets that share against the level "
        "(1.00x: honest; below: cautious; above: the figure promises too much). Person present (one other photo "
        f"of them in the gallery): how often the best match is them, and is them with a chance at or below {100 * STRONG:g} %.",
        "",
        f"| set | gallery | person absent: chance at or below {levels} | person present: found first | found first, chance <= {100 * STRONG:g} % |",
        "| --- | ---: | --- | ---: | ---: |",
    ]  # fmt: skip
    for name, (embeddings, labels, _) in data.items():
        faces = name == "lfw_fold7"
        for size in GALLERY_SIZES:
            if size >= len(labels):
                continue
            seed = args.seed + 1000 * size
            absent, _ = best_score_chances(embeddings, labels, size, args.searches, seed, calibration, faces, False)
            present, right = best_score_chances(embeddings, labels, size, args.searches, seed + 1, calibration, faces, True)
            shares = " / ".join(f"{(absent <= level).mean():.3f} ({(absent <= level).mean() / level:.2f}x)" for level in LEVELS)
            strong = float((right & (present <= STRONG)).mean())
            lines.append(f"| {name} ({'faces' if faces else 'bodies'}) | {size} | {shares} | {right.mean():.3f} | {strong:.3f} |")
    lines += [
        "",
        f"Curves from the model's calibration record ({calibration['face']['far_curve']['pairs_from']}; "
        f"{calibration['body']['far_curve']['pairs_from']}); Con-ReID is the subset of its first 40 query people, at most 12 photos each.",
    ]
    publish_section(lines, SECTION, args.write)


if __name__ == "__main__":
    main()
