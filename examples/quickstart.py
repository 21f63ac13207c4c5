"""SapiensID quickstart: the whole pipeline on real photos, from files to a similarity matrix.

    python examples/quickstart.py --output quickstart_out                          # the shipped sapiensid-small
    python examples/quickstart.py --output quickstart_out --model sapiensid-base   # a converted folder / hub id

For every photo it finds the 19 keypoints, builds the face / upper-body ROIs the model reads finer
patches from, and computes an identity embedding; then it compares every photo with every other.

Writes into --output:
  similarity.csv / similarity.png   cosine similarity of every pair (table and heat map)
  overlays/<photo>.png              keypoints, ROI patch grids and the chosen person on each photo
  detections.json                   keypoints and ROI boxes per photo (normalised to the padded square)
  embeddings.npy + embeddings.paths.txt
  summary.md                        what ran, with which model, the similarity table and the pair check

With no --model and no $SAPIENSID_MODEL it uses the shipped sapiensid-small (pretrained/, trained by
this project on public photos). On the photos of ../shared/data/people it also checks the pairs their
README lists: does every same-person pair score above every different-person pair? (Reported as it is:
these 8 photos are a smoke test, never a tuning target.) `--model untrained` runs a random tiny model,
and every output then says its scores carry no identity information.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = REPO_ROOT.parent / "shared" / "data" / "people"
OVERLAY_SIDE = 512
UNTRAINED_TITLE = "UNTRAINED MODEL (random weights): these scores are meaningless"
# The identity pairs of ../shared/data/people (its README): A appears three times, B once.
SAME_PERSON_PAIRS = (("face_a_1.jpg", "face_a_2.jpg"), ("face_a_1.jpg", "face_a_3.jpg"), ("face_a_2.jpg", "face_a_3.jpg"))
DIFFERENT_PERSON_PAIRS = (("face_b_1.jpg", "face_a_1.jpg"), ("face_b_1.jpg", "face_a_2.jpg"), ("face_b_1.jpg", "face_a_3.jpg"))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", "-o", required=True, type=Path, help="folder for the results (created)")
    parser.add_argument(
        "--model",
        default=None,
        help="SapiensID folder or hub id (default: $SAPIENSID_MODEL, else the shipped sapiensid-small; "
        "'untrained' = a random tiny model)",
    )
    parser.add_argument(
        "--images",
        nargs="+",
        default=[DEFAULT_IMAGES],
        help=f"photos and/or folders (default: {DEFAULT_IMAGES})",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    return parser.parse_args(argv)


def similarity_table(names: Sequence[str], similarity: np.ndarray) -> str:
    """The matrix as a fixed-width text table, rows and columns in the same order."""
    width = max(8, max(len(name) for name in names))
    header = " " * (width + 3) + " ".join(f"{index:>6d}" for index in range(len(names)))
    lines = [header]
    for index, (name, row) in enumerate(zip(names, similarity, strict=True)):
        lines.append(f"{name:<{width}}{index:>2d} " + " ".join(f"{value:6.3f}" for value in row))
    return "\n".join(lines)


def pair_check(names: Sequence[str], similarity: np.ndarray, rate_of: Callable | None = None) -> dict | None:
    """Whether every same-person pair of the people README scores above every different-person pair;
    None when the photos are not those. `rate_of(a, b, score)`: how often different people reach a pair's
    score (a FalseMatchRate, or None), kept per pair under `false_match_rates`."""
    index = {name: position for position, name in enumerate(names)}
    needed = {name for pair in SAME_PERSON_PAIRS + DIFFERENT_PERSON_PAIRS for name in pair}
    if not needed <= set(index):
        return None

    def score(pair: tuple[str, str]) -> float:
        return float(similarity[index[pair[0]], index[pair[1]]])

    same = {f"{a} / {b}": score((a, b)) for a, b in SAME_PERSON_PAIRS}
    different = {f"{a} / {b}": score((a, b)) for a, b in DIFFERENT_PERSON_PAIRS}
    ordered = sum(s > d for s in same.values() for d in different.values())
    rates = {}
    for a, b in SAME_PERSON_PAIRS + DIFFERENT_PERSON_PAIRS:
        rate = rate_of(a, b, score((a, b))) if rate_of is not None else None
        if rate is not None:
            rates[f"{a} / {b}"] = {**rate.to_json(), "percent": rate.percent()}
    return {
        "same_person": same,
        "different_person": different,
        "ordered_pairs": ordered,
        "total_pairs": len(same) * len(different),
        "all_ordered": ordered == len(same) * len(different),
        "false_match_rates": rates,
    }


def pair_rates(pipeline, result, names: Sequence[str]) -> Callable:
    """rate_of(a, b, score) for `pair_check`: from the model folder's FAR curves, faces when both photos show
    a face (docs/cli.md, "How strong the evidence is")."""
    from sapiensid_hf.evaluation.calibration import score_false_match_rate

    made_with = pipeline.embedding_rule(True)  # pipeline.embed's default: flip
    index = {name: position for position, name in enumerate(names)}

    def rate_of(a: str, b: str, score: float):
        both_faces = bool(result.face_found[index[a]] and result.face_found[index[b]])
        return score_false_match_rate(pipeline.calibration, both_faces, score, embedded_with=made_with)

    return rate_of


def _with_rate(name: str, value: float, check: dict) -> str:
    rate = check.get("false_match_rates", {}).get(name)
    line = f"  {name:<28} {value:6.3f}"
    if rate is None:
        return line
    return f"{line}   {rate['percent']} of different-person {rate['kind']} pairs score this high"


def pair_check_text(check: dict) -> str:
    lines = ["same person (README pairs):"]
    lines += [_with_rate(name, value, check) for name, value in check["same_person"].items()]
    lines.append("different people:")
    lines += [_with_rate(name, value, check) for name, value in check["different_person"].items()]
    verdict = "yes" if check["all_ordered"] else "NO"
    lines.append(
        f"every same-person pair above every different-person pair: {verdict} "
        f"({check['ordered_pairs']} of {check['total_pairs']} comparisons in the right order)"
    )
    if check.get("false_match_rates"):
        lines.append("(shares of the model's development pairs of different people: docs/cli.md, \"How strong the evidence is\")")
    return "\n".join(lines)


def display_names(paths: Sequence[Path]) -> list[str]:
    """One distinct label per photo: the file name, with its folder where two photos share a name."""
    counts: dict[str, int] = {}
    for path in paths:
        counts[path.name] = counts.get(path.name, 0) + 1
    names = [path.name if counts[path.name] == 1 else f"{path.parent.name}/{path.name}" for path in paths]
    seen: dict[str, int] = {}
    unique = []
    for name in names:  # the same folder name too: number them
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if names.count(name) == 1 else f"{name}#{seen[name]}")
    return unique


def save_similarity_csv(path: Path, names: Sequence[str], similarity: np.ndarray) -> None:
    """A plain table (header row, then one row per photo) that csv readers and pandas read as is; the
    untrained-model warning lives in detections.json and summary.md."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", *names])
        for name, row in zip(names, similarity, strict=True):
            writer.writerow([name, *(f"{value:.6f}" for value in row)])


def save_heat_map(path: Path, names: Sequence[str], similarity: np.ndarray, trained: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = 1.0 + 0.7 * len(names)
    figure, axes = plt.subplots(figsize=(size + 2, size))
    image = axes.imshow(similarity, vmin=-1, vmax=1, cmap="RdYlGn")
    axes.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    axes.set_yticks(range(len(names)), names, fontsize=8)
    for row in range(len(names)):
        for column in range(len(names)):
            axes.text(column, row, f"{similarity[row, column]:.2f}", ha="center", va="center", fontsize=7)
    figure.colorbar(image, ax=axes, label="cosine similarity")
    if trained:
        axes.set_title("SapiensID cosine similarity")
    else:
        axes.set_title(UNTRAINED_TITLE, color="red", fontweight="bold", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def save_overlay(path: Path, image_path: Path, result, index: int, grid_size: int) -> None:
    from PIL import Image

    from sapiensid_hf.processing.image_decoding import load_rgb
    from sapiensid_hf.processing.square_resampling import detector_square
    from sapiensid_hf.processing.visualization_sapiensid import draw_retina

    square = Image.fromarray(detector_square(load_rgb(os.fspath(image_path), image_path.name), OVERLAY_SIDE))
    overlay = draw_retina(
        square,
        result.keypoints[index],
        result.roi_boxes[index],
        grid_size,
        result.person_box[index],
        scale=1.0,
        label_points=False,
    )
    overlay.save(path)


def describe_detection(result, index: int) -> dict:
    keypoints = result.keypoints[index]
    visible = int((keypoints != -1).all(axis=-1).sum())
    face_box, body_box = result.roi_boxes[index]
    return {
        "person_found": bool(result.person_found[index]),
        "face_found": bool(result.face_found[index]),
        "num_people": int(result.num_people[index]),
        "cut_from_photo": bool(result.framed[index]),  # the person fills little of the photo: embedded from a cut
        "visible_keypoints": visible,
        "keypoints": np.round(keypoints, 4).tolist(),
        "face_box": np.round(face_box, 4).tolist() if (face_box != -1).all() else None,
        "upper_body_box": np.round(body_box, 4).tolist() if (body_box != -1).all() else None,
    }


def run(args: argparse.Namespace) -> int:
    from sapiensid_hf.commands.common import banner, collect_images
    from sapiensid_hf.inference import UNTRAINED_WARNING, load_pipeline

    started = time.perf_counter()
    paths = collect_images(args.images, what="photo")
    pipeline = load_pipeline(args.model, device=args.device)
    model_name = pipeline.description
    if not pipeline.trained:
        banner(UNTRAINED_WARNING, stream=sys.stdout)
    config = pipeline.model.config
    print(f"model: {model_name} ({sum(p.numel() for p in pipeline.model.parameters()):,} parameters)")
    print(f"photos: {len(paths)} from {', '.join(sorted({os.fspath(path.parent) for path in paths}))}")

    # 1. Keypoints, ROIs and embeddings: one call does all three.
    result = pipeline.embed([os.fspath(path) for path in paths])
    names = display_names(paths)
    warning = "" if pipeline.trained else UNTRAINED_WARNING

    print("\nwhat the detector found (ROIs: face / upper body; the full image is always read):")
    detections = {}
    for index, name in enumerate(names):
        found = detections[name] = describe_detection(result, index)
        parts = [
            f"{found['visible_keypoints']:2d}/19 keypoints",
            "face ROI" if found["face_box"] else "no face ROI",
            "upper-body ROI" if found["upper_body_box"] else "no upper-body ROI",
        ]
        if not found["person_found"]:
            parts.append("NOBODY FOUND: whole picture only")
        elif found["num_people"] > 1:
            parts.append(f"{found['num_people']} people, most prominent used")
        if found["cut_from_photo"]:
            parts.append("the person fills little of the photo: embedded from a cut of them")
        print(f"  {name:<26} " + ", ".join(parts))

    # 2. Similarity: the embeddings are L2-normalised, so a dot product is the cosine similarity.
    similarity = result.embeddings @ result.embeddings.T
    table = similarity_table(names, similarity)
    print(f"\ncosine similarity ({result.embeddings.shape[1]}-d embeddings):\n{table}")
    check = pair_check(names, similarity, pair_rates(pipeline, result, names))
    if check is not None:
        print("\n" + pair_check_text(check))

    # 3. Save everything.
    output = args.output
    (output / "overlays").mkdir(parents=True, exist_ok=True)
    save_similarity_csv(output / "similarity.csv", names, similarity)
    save_heat_map(output / "similarity.png", names, similarity, pipeline.trained)
    for index, path in enumerate(paths):
        save_overlay(
            output / "overlays" / f"{Path(names[index].replace('/', '__')).stem}.png",
            path,
            result,
            index,
            config.image_size // config.patch_size,
        )
    np.save(output / "embeddings.npy", result.embeddings)
    (output / "embeddings.paths.txt").write_text(
        "".join(f"{os.fspath(p)}\n" for p in paths), encoding="utf-8"
    )
    (output / "detections.json").write_text(
        json.dumps(
            {
                "model": model_name,
                "trained": pipeline.trained,
                "warning": warning or None,
                "pair_check": check,
                "images": detections,
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    summary = "# SapiensID quickstart\n\n" + (f"**{warning}**\n\n" if warning else "")
    summary += f"model: {model_name}\n\ncosine similarity:\n\n```\n{table}\n```\n"
    if check is not None:
        summary += f"\n```\n{pair_check_text(check)}\n```\n"
    (output / "summary.md").write_text(summary, encoding="utf-8")
    print(
        f"\nwrote {output}/: similarity.csv, similarity.png, overlays/ ({len(paths)}), detections.json, embeddings.npy, summary.md"
    )
    print(
        "overlays: dots = keypoints, grey grid = full-image patches, blue = upper-body ROI, red = face ROI, "
        "yellow box = the person used"
    )
    print(f"done in {time.perf_counter() - started:.1f} s")
    if not pipeline.trained:
        banner(UNTRAINED_WARNING, stream=sys.stdout)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        from sapiensid_hf.commands.common import is_user_error

        if not is_user_error(error):
            raise
        print(f"quickstart: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
