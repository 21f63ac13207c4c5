"""Does averaging the embeddings of a photo cut a little tighter help the development checks?

    python benchmarks/bench_cut_averaging.py [--model DIR] [--write docs/benchmarks.md]

The shipped model is sensitive to framing (docs/benchmarks.md, "Framing"). This measures the embedding
rule of centre cuts (sapiensid_hf/cut_views.py): every photo of the CUHK03-val and LFW fold-7
development sets embedded as it is (the baseline), and as the mean of itself and its cuts about the
centre to smaller shares of its width and height, through the embedding loop of `embed` and `evaluate`
(the detector on each cut, the photo's keypoints mapped into the cut where it finds nobody or somebody
else), flip on. One more row takes the photo's keypoints mapped into every cut (no detection on the
cuts: a third of the detector's work). Scored with the public-dev protocols (`sapiensid evaluate
--benchmark public-dev`, without the standing-person prior), all in one run, the photos' own keypoints
detected once. The model folder's own rule is ignored here: each row sets its own. Development people
only; nothing is fitted.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np
import torch
from markdown_report import difference_table, publish_section

from sapiensid_hf.cut_views import PHOTO_AS_IT_IS
from sapiensid_hf.data.common import UndecodedImages
from sapiensid_hf.embedding_views import embed_images
from sapiensid_hf.evaluation import public_dev
from sapiensid_hf.inference import load_pipeline
from sapiensid_hf.modeling.cut_averaging import fold_in_cuts
from sapiensid_hf.parallel_processing import default_num_workers
from sapiensid_hf.processing.image_decoding import load_rgb
from sapiensid_hf.processing.photo_cuts import centre_cut_box, keypoints_in_cut

SECTION = "## Averaging tighter cuts of a photo"
REPO = Path(__file__).resolve().parents[1]
RULES = ((1.0,), (1.0, 0.95), (1.0, 0.95, 0.9), (1.0, 0.9, 0.8))
MAPPED_RULE = (1.0, 0.95, 0.9)  # also scored with the photo's keypoints mapped into each cut


def figures(dev: public_dev.DevSet, embeddings: np.ndarray) -> dict[str, float]:
    scored = public_dev.score_dev_set(dev, embeddings)
    if dev.name == "cuhk03_val":
        return {
            "CUHK03-val rank-1": float(np.mean([part["rank1"] for part in scored.values()])),
            "CUHK03-val mAP": float(np.mean([part["mAP"] for part in scored.values()])),
        }
    return {"LFW accuracy": scored["pairs"]["accuracy"], "LFW TAR@FAR 1e-2": scored["pairs"]["tar@far=0.01"]}


def embed(pipeline, photos: list[np.ndarray], rule: tuple[float, ...], keypoints: np.ndarray | None = None) -> list:
    """The photos' batches under `rule`, through the project's embedding loop (`keypoints`: the photos' own,
    detected once), with flip and the worker processes the tools use."""
    workers = default_num_workers()
    return list(embed_images(pipeline.model, pipeline.processor, photos, 32, pipeline.device, True, workers, keypoints=keypoints, cut_scales=rule))


def mapped_cuts(pipeline, photos: list[np.ndarray], keypoints: np.ndarray, as_is: list) -> np.ndarray:
    """`MAPPED_RULE` with the photo's keypoints mapped into every cut (no detection on the cuts)."""
    cut_embeddings, cut_keypoints = [], []
    for scale in MAPPED_RULE[1:]:
        boxes = [centre_cut_box(*photo.shape[:2], scale) for photo in photos]
        cuts = [np.ascontiguousarray(photo[top:bottom, left:right]) for photo, (left, top, right, bottom) in zip(photos, boxes, strict=True)]
        inside = np.stack([keypoints_in_cut(points, *photo.shape[:2], box) for points, photo, box in zip(keypoints, photos, boxes, strict=True)])
        cut_embeddings.append(torch.cat([batch.embeddings for batch in embed(pipeline, cuts, PHOTO_AS_IT_IS, inside)]))
        cut_keypoints.append(torch.from_numpy(inside))
    photo = torch.cat([batch.embeddings for batch in as_is])
    folded = fold_in_cuts(photo, torch.stack(cut_embeddings, dim=1), torch.stack(cut_keypoints, dim=1))
    return torch.nn.functional.normalize(folded, dim=-1).numpy()  # the sum of unit embeddings, made unit again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "pretrained" / "sapiensid-small"), help="model folder")
    parser.add_argument("--identities", type=Path, default=REPO.parent / "shared" / "data" / "identities")
    parser.add_argument("--write", type=Path, default=None, help="markdown file whose section to replace")
    args = parser.parse_args()

    pipeline = load_pipeline(args.model)
    pipeline.model.float()  # the shipped float16 weights, scored in float32 as `sapiensid evaluate` does on CPU
    labels = {rule: " + ".join(f"{scale:g}" for scale in rule) for rule in RULES}
    baseline = labels[PHOTO_AS_IT_IS] + " (the photo as it is)"
    labels[PHOTO_AS_IT_IS] = baseline
    mapped_label = labels[MAPPED_RULE] + ", the photo's keypoints mapped into the cuts"
    results: dict[str, dict[str, float]] = {label: {} for label in [*labels.values(), mapped_label]}
    found_per_set = []
    for name, dev in public_dev.load_dev_sets(args.identities, ("cuhk03_val", "lfw_fold7")).items():
        undecoded = UndecodedImages(dev.dataset)
        photos = [load_rgb(undecoded[row], f"{name} row {row}") for row in range(len(dev.dataset))]
        as_is = embed(pipeline, photos, PHOTO_AS_IT_IS)
        keypoints = np.concatenate([batch.features["keypoints"].numpy() for batch in as_is])
        found = sum(int(batch.features["person_found"].sum()) for batch in as_is)
        found_per_set.append(f"{name} {found} of {len(photos)}")
        for rule in RULES:
            embedded = as_is if rule == PHOTO_AS_IT_IS else embed(pipeline, photos, rule, keypoints)
            results[labels[rule]].update(figures(dev, np.concatenate([batch.embeddings.numpy() for batch in embedded])))
        results[mapped_label].update(figures(dev, mapped_cuts(pipeline, photos, keypoints, as_is)))

    lines = [
        SECTION, "",
        f"`python benchmarks/bench_cut_averaging.py` with {Path(args.model).name} ({platform.machine()}, "
        f"{torch.get_num_threads()} torch threads): each development photo and its cuts about the centre (shares of "
        "its width and height), the detector on each cut (the photo's keypoints mapped into the cut where it finds "
        "nobody or somebody else), each view embedded with flip, the unit embeddings summed and normalised "
        "(cut_views.py, what `embed` and `evaluate` do for a folder with the rule); the last row maps the photo's "
        "keypoints into every cut instead. Public-dev protocols without the standing-person prior, in %; the "
        "difference to the photo as it is in brackets.",
        "",
        *difference_table("photo + cuts (shares of its width and height)", results, baseline),
        "", f"People found on the whole photo: {'; '.join(found_per_set)}.",
    ]  # fmt: skip
    publish_section(lines, SECTION, args.write)


if __name__ == "__main__":
    main()
