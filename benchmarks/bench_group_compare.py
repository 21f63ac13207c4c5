"""Comparing two group photos: how often different people are called the same, at the one-pair threshold
and at the threshold raised for the best of all pairs (`compare` on photos of several people).

    python benchmarks/bench_group_compare.py [--model DIR] [--trials 2000] [--seed 0] [--write docs/benchmarks.md]

Two "group photos" are drawn from the development people (embeddings as `sapiensid evaluate --benchmark
public-dev` makes them, dev_embeddings.py): photo A holds k people, photo B k people. Either nobody is in
both (k + k different people: any SAME verdict is a false match), or one person is, from another photo
(CUHK03: A from camera 0, B from camera 1). The verdict is compare's: the best-scoring pair of the k x k,
SAME when it reaches the threshold; a shared person is found when the verdict is SAME and the best pair is
that person. k = 1 is one pair, the case the calibrated threshold was chosen for. The ratio column is the
false-SAME rate against the one-pair rate at the one-pair threshold (k = 1) of the same set. LFW fold 7 and
CUHK03-val are the sets the thresholds and FAR curves were measured on; Con-ReID is not.
"""

from __future__ import annotations

import numpy as np
from dev_embeddings import development_arguments, development_embeddings
from markdown_report import publish_section

from sapiensid_hf.evaluation.calibration import choose_threshold
from sapiensid_hf.inference import load_pipeline

SECTION = "## Comparing two group photos"
GROUP_SIZES = (1, 2, 3, 4)


def photo_of(rng: np.random.Generator, members: np.ndarray, cameras: np.ndarray, camera: int | None) -> int:
    """A photo of one person, from `camera` when the person has one there."""
    preferred = members[cameras[members] == camera] if camera is not None else members
    return int(rng.choice(preferred if len(preferred) else members))


def draw_groups(
    rng: np.random.Generator, people: dict[str, np.ndarray], cameras: np.ndarray, size: int, shared: bool,
    cross_camera: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of photo A and photo B (`people`: label -> rows): `size` different people each; with `shared`,
    the first person of A is also the first of B, from another photo of them."""
    twice = [label for label, members in people.items() if len(members) >= 2]
    camera_a, camera_b = (0, 1) if cross_camera else (None, None)
    chosen = []
    if shared:
        chosen.append(twice[rng.integers(len(twice))])
    others = [label for label in people if label not in chosen]
    chosen += [others[index] for index in rng.choice(len(others), size=2 * size - len(chosen), replace=False)]
    first = [photo_of(rng, people[label], cameras, camera_a) for label in chosen[:size]]
    if shared:
        members = people[chosen[0]]
        again = members[members != first[0]]
        second = [photo_of(rng, again, cameras, camera_b)] + [
            photo_of(rng, people[label], cameras, camera_b) for label in chosen[size : 2 * size - 1]
        ]
    else:
        second = [photo_of(rng, people[label], cameras, camera_b) for label in chosen[size:]]
    return np.asarray(first), np.asarray(second)


def verdicts(embeddings: np.ndarray, labels: np.ndarray, cameras: np.ndarray, size: int, shared: bool,
             trials: int, seed: int, cross_camera: bool) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per trial: the best pair's score, and whether the best pair is the shared person."""
    rng = np.random.default_rng(seed)
    people = {label: np.flatnonzero(labels == label) for label in np.unique(labels)}
    best, right_pair = np.empty(trials), np.zeros(trials, bool)
    for trial in range(trials):
        first, second = draw_groups(rng, people, cameras, size, shared, cross_camera)
        scores = embeddings[first] @ embeddings[second].T
        row, column = np.unravel_index(int(np.argmax(scores)), scores.shape)
        best[trial] = scores[row, column]
        right_pair[trial] = shared and row == 0 and column == 0
    return best, right_pair


def main() -> None:
    args = development_arguments(__doc__.split("\n")[0], "--trials", "pairs of group photos per set, size and case")
    pipeline = load_pipeline(args.model)
    if not pipeline.calibration:
        raise SystemExit(f"{pipeline.description} records no calibrated thresholds: run `sapiensid calibrate` first")
    data = development_embeddings(pipeline, cache=args.cache, keypoint_cache=args.keypoint_cache)
    lines = [
        SECTION, "",
        f"`python benchmarks/bench_group_compare.py --trials {args.trials} --seed {args.seed}` with "
        f"{pipeline.description}; {args.trials} pairs of group photos per row and case, drawn from the "
        "development people (module docstring). False SAME: nobody is in both photos, yet the best pair "
        "reaches the threshold. Found: one person is in both, and the best pair is that person at or above "
        "the threshold. Ratio: false SAME against one pair (k = 1) at the one-pair threshold.",
        "",
        "| set | people a photo (pairs judged) | threshold | false SAME | found | false SAME vs one pair |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]  # fmt: skip
    for name, (embeddings, labels, cameras) in data.items():
        faces = name == "lfw_fold7"
        cross_camera = name == "cuhk03_val"
        baseline = None
        for size in GROUP_SIZES:
            seed = args.seed + 1000 * size
            different, _ = verdicts(embeddings, labels, cameras, size, False, args.trials, seed, cross_camera)
            shared, right_pair = verdicts(embeddings, labels, cameras, size, True, args.trials, seed + 1, cross_camera)
            rules = [("one-pair", 1)] + ([("raised", size * size)] if size > 1 else [])
            for rule, pairs in rules:
                chosen = choose_threshold(pipeline.calibration, faces, pipeline.description, pairs=pairs)
                false_same = float((different >= chosen.value).mean())
                found = float(((shared >= chosen.value) & right_pair).mean())
                baseline = false_same if baseline is None else baseline
                ratio = f"{false_same / baseline:.2f}x" if baseline else "n/a"
                lines.append(
                    f"| {name} ({'faces' if faces else 'bodies'}) | {size} ({size * size}) | {rule} {chosen.value:.3f} "
                    f"| {false_same:.3f} | {found:.3f} | {ratio} |"
                )
    lines += ["", "Thresholds from the model's calibration record (`sapiensid calibrate`), as compare chooses them."]
    publish_section(lines, SECTION, args.write)


if __name__ == "__main__":
    main()
