"""Does averaging the embeddings of a photo cut a little tighter help the development checks?

    python benchmarks/bench_cut_averaging.py [--model DIR] [--write docs/benchmarks.md]

The shipped model is sensitive to framing (docs/benchmarks.md, "Framing"); `embed_people` already embeds
each person as the mean of three cuts. This asks the same of a single photo: every photo of the CUHK03-val
and LFW fold-7 development sets is embedded as it is (the baseline) and cut about its centre to 95 % and
90 % of its width and height, each cut through `SapiensIDPipeline.embed` (the detector runs on the cut,
flip test-time augmentation), and the sum of the cuts' embeddings is L2-normalised. Scored with the
public-dev protocols (`sapiensid evaluate --benchmark public-dev`), all in one run. A cut in which the
detector finds nobody adds nothing to the sum (a photo with nobody in any cut keeps a zero row, which
scores as a miss). Development people only; nothing is fitted.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np
import torch
from markdown_report import difference_table, publish_section

from sapiensid_hf.data.common import UndecodedImages
from sapiensid_hf.evaluation import public_dev
from sapiensid_hf.inference import load_pipeline
from sapiensid_hf.processing.image_decoding import load_rgb

SECTION = "## Averaging tighter cuts of a photo"
REPO = Path(__file__).resolve().parents[1]
SCALES = (1.0, 0.95, 0.9)
AVERAGES = ((1.0,), (0.95,), (0.9,), (1.0, 0.95), (1.0, 0.95, 0.9))


def centre_cut(photo: np.ndarray, scale: float) -> np.ndarray:
    """The photo cut about its centre to `scale` of its width and height."""
    height, width = photo.shape[:2]
    cut_height, cut_width = round(height * scale), round(width * scale)
    top, left = (height - cut_height) // 2, (width - cut_width) // 2
    return np.ascontiguousarray(photo[top : top + cut_height, left : left + cut_width])


def figures(dev: public_dev.DevSet, embeddings: np.ndarray) -> dict[str, float]:
    scored = public_dev.score_dev_set(dev, embeddings)
    if dev.name == "cuhk03_val":
        return {
            "CUHK03-val rank-1": float(np.mean([part["rank1"] for part in scored.values()])),
            "CUHK03-val mAP": float(np.mean([part["mAP"] for part in scored.values()])),
        }
    return {"LFW accuracy": scored["pairs"]["accuracy"], "LFW TAR@FAR 1e-2": scored["pairs"]["tar@far=0.01"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "pretrained" / "sapiensid-small"), help="model folder")
    parser.add_argument("--identities", type=Path, default=REPO.parent / "shared" / "data" / "identities")
    parser.add_argument("--write", type=Path, default=None, help="markdown file whose section to replace")
    args = parser.parse_args()

    pipeline = load_pipeline(args.model)
    pipeline.model.float()  # the shipped float16 weights, scored in float32 as `sapiensid evaluate` does on CPU
    labels = {average: " + ".join(f"{scale:g}" for scale in average) for average in AVERAGES}
    baseline = labels[(1.0,)] + " (the photo as it is)"
    labels[(1.0,)] = baseline
    results: dict[str, dict[str, float]] = {label: {} for label in labels.values()}
    found_per_set = []
    for name, dev in public_dev.load_dev_sets(args.identities, ("cuhk03_val", "lfw_fold7")).items():
        undecoded = UndecodedImages(dev.dataset)
        photos = [load_rgb(undecoded[row], f"{name} row {row}") for row in range(len(dev.dataset))]
        per_scale, found = {}, []
        for scale in SCALES:
            embedded = pipeline.embed([centre_cut(photo, scale) for photo in photos], flip=True, batch_size=32)
            per_scale[scale] = np.where(embedded.person_found[:, None], embedded.embeddings, 0.0)
            found.append(f"{scale:g}: {int(embedded.person_found.sum())} of {len(photos)}")
        found_per_set.append(f"{name} {', '.join(found)}")
        for average in AVERAGES:
            summed = sum(per_scale[scale] for scale in average)
            unit = summed / np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-12)
            results[labels[average]].update(figures(dev, unit))

    lines = [
        SECTION, "",
        f"`python benchmarks/bench_cut_averaging.py` with {Path(args.model).name} ({platform.machine()}, "
        f"{torch.get_num_threads()} torch threads): each development photo cut about its centre, each cut embedded "
        "by `SapiensIDPipeline.embed` (detector on the cut, flip), the cuts' embeddings summed and normalised; "
        "public-dev protocols, in %; the difference to the photo as it is (scale 1.0) in brackets.",
        "",
        *difference_table("cuts (share of the photo's width and height)", results, baseline),
        "", f"People found per cut: {'; '.join(found_per_set)}.",
    ]  # fmt: skip
    publish_section(lines, SECTION, args.write)


if __name__ == "__main__":
    main()
