"""The model card (README.md) written beside converted official SapiensID weights."""

from __future__ import annotations

from typing import Any

import numpy as np
from huggingface_hub import EvalResult, ModelCardData

from .modeling import SapiensIDConfig

CITATION = """@inproceedings{kim2025sapiensid,
  title     = {SapiensID: Foundation for Human Recognition},
  author    = {Kim, Minchul and Ye, Dingqiang and Su, Yiyang and Liu, Feng and Liu, Xiaoming},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2025},
  note      = {arXiv:2504.04708}
}"""

TAGS = ["sapiensid", "person-re-identification", "face-recognition", "biometrics", "custom_code"]
# What the `datasets` field names for each data source a training record can hold.
TRAINING_DATASETS = {
    "identities": ["CUHK03 (labeled)", "Con-ReID", "LFW (deep-funneled)"],
    "faces": ["UTKFace", "Caltech Web Faces", "FFHQ"],
}
OFFICIAL_DATASETS = ["WebBody (authors' web-image person dataset)"]
# Teachers a training record can name: what the card says of each, never typed by hand per card.
TEACHERS = {
    "dlib_resnet_v1": {
        "name": "dlib ResNet face descriptor v1 (dlib_face_recognition_resnet_model_v1.dat)",
        "package": "face-recognition-models (weights released as CC0 by dlib's author) with dlib-bin (Boost)",
        "use": "distillation target of the face path at training time only; not needed to run the model",
    }
}
# public-dev check -> (card task name, dataset name, split): the model-index rows.
DEV_RESULT_ROWS = {
    "cuhk03_val": ("Person re-identification", "CUHK03 labeled, development people (both camera directions)", "val"),
    "conreid": ("Person re-identification", "Con-ReID, development people (query -> gallery)", "val"),
    "lfw_fold7": ("Face verification", "LFW deep-funneled, fold 7 pairs", "fold7"),
}


def front_matter(
    license_name: str,
    datasets: list[str] | None = None,
    teacher: str | None = None,
    results: dict[str, Any] | None = None,
    label: str | None = None,
    model_name: str | None = None,
) -> str:
    """The hub card's YAML header, written by huggingface_hub's `ModelCardData` (so the Hub reads it):
    licence terms, `datasets`, the distillation teacher (`teachers`, this project's provenance field), and,
    with `sapiensid evaluate --benchmark public-dev` results, `model-index` rows of the model `label`."""
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag="image-feature-extraction",
        license="other",
        license_name=license_name,
        tags=TAGS,
        datasets=datasets or None,
        model_name=model_name if results is not None else None,
        eval_results=model_index_results(results, label) if results is not None else None,
    )
    if teacher is not None:
        if teacher not in TEACHERS:
            raise ValueError(f"unknown teacher {teacher!r}: the card knows {sorted(TEACHERS)}")
        data.teachers = [dict(TEACHERS[teacher], id=teacher)]
    return f"---\n{data.to_yaml()}\n---\n"


def model_index_results(results: dict[str, Any], label: str | None = None) -> list[EvalResult]:
    """The Hub's `model-index` rows from a public-dev results.json: rank-1 and mAP of the body sets,
    accuracy and TAR at FAR 1e-2 of the face pairs, in percent, for the model `label` (default: the
    first model that is not the untrained baseline)."""
    models = results.get("models", {})
    if label is None:
        label = next((name for name in models if not name.startswith("untrained")), None)
    if label not in models:
        raise ValueError(f"no results for model {label!r} in these results (models: {sorted(models)})")
    rows = []
    for check, metrics in models[label].items():
        if check not in DEV_RESULT_ROWS:
            continue
        task_name, dataset_name, split = DEV_RESULT_ROWS[check]
        if check == "lfw_fold7":
            pairs = metrics["pairs"]
            values = [("accuracy", "Accuracy", pairs["accuracy"]), ("tar@far=0.01", "TAR at FAR 1e-2", pairs["tar@far=0.01"])]
        else:
            directions = list(metrics.values())
            values = [
                ("rank-1", "Rank-1", float(np.mean([d["rank1"] for d in directions]))),
                ("mAP", "mAP", float(np.mean([d["mAP"] for d in directions]))),
            ]
        for metric_type, metric_name, value in values:
            rows.append(
                EvalResult(
                    task_type="image-feature-extraction", task_name=task_name,
                    dataset_type=check, dataset_name=dataset_name, dataset_split=split,
                    metric_type=metric_type, metric_name=metric_name, metric_value=round(100 * float(value), 2),
                )
            )  # fmt: skip
    if not rows:
        raise ValueError(f"the results of {label!r} hold none of the development checks {sorted(DEV_RESULT_ROWS)}")
    return rows

USAGE_WITH_PROCESSOR = """```python
from PIL import Image
from transformers import AutoImageProcessor, AutoModel

model = AutoModel.from_pretrained("{repo}", trust_remote_code=True).eval()
processor = AutoImageProcessor.from_pretrained("{repo}", trust_remote_code=True)
inputs = processor(images=[Image.open("a.jpg"), Image.open("b.jpg")], return_tensors="pt")
embeddings = model(**inputs).embeddings                      # (2, {output_dim}), not normalised
embeddings = embeddings / embeddings.norm(dim=-1, keepdim=True)
print(float(embeddings[0] @ embeddings[1]))                  # cosine similarity
```"""

USAGE_WITHOUT_PROCESSOR = """```python
import torch
from transformers import AutoModel

model = AutoModel.from_pretrained("{repo}", trust_remote_code=True).eval()
# pixel_values: (B, 3, {size}, {size}) square-padded with white, resized, normalised with mean = std = 0.5
# keypoints:    (B, 19, 2) normalised x, y of the 19 points in KEYPOINT_NAMES order
#               (configuration_sapiensid.py), -1 = missing
with torch.no_grad():
    embeddings = model(pixel_values=pixel_values, keypoints=keypoints).embeddings   # (B, {output_dim})
```"""


def render_model_card(
    config: SapiensIDConfig,
    source: str,
    repo_id: str | None = None,
    heads_inferred: bool = True,
    has_processor: bool = False,
) -> str:
    """README.md for a folder converted from the official checkpoint file named `source`."""
    repo = repo_id or "path/to/converted-folder"
    usage = USAGE_WITH_PROCESSOR if has_processor else USAGE_WITHOUT_PROCESSOR
    heads_note = (
        "read from the KP-RPE output layer"
        if heads_inferred
        else "not recorded in the weights; the official value 16 was assumed"
    )
    return (
        front_matter("sapiensid-weights-no-licence-granted", datasets=OFFICIAL_DATASETS)
        + f"""
# SapiensID (converted official weights)

SapiensID (Kim et al., "SapiensID: Foundation for Human Recognition", CVPR 2025,
[arXiv:2504.04708](https://arxiv.org/abs/2504.04708)) recognises people from any picture of them —
a tight face crop, an upper-body shot or a full body far away — with one model and no face alignment.
It samples finer patches on the face and upper body (Retina Patch), runs a ViT with keypoint relative
position encoding, and pools features at body keypoints (Semantic Attention Head) into a
{config.output_dim}-d identity embedding. Compare embeddings with cosine similarity.

These weights are the authors' released checkpoint (`{source}`, from the official repository
[mk-minchul/sapiensid](https://github.com/mk-minchul/sapiensid)), converted tensor by tensor into the
`sapiensid-hf` implementation.

## Usage

{usage.format(repo=repo, output_dim=config.output_dim, size=config.image_size)}

The model needs 19 body and face keypoints per image (`-1` where a point is not visible). The image
processor finds them with MediaPipe BlazePose / BlazeFace (files extracted by `sapiensid download-detector`
from the `mediapipe` wheel), or takes yours via `processor(images, keypoints=...)`. The authors used
YOLOv8-pose and a DFA face detector instead, so end-to-end accuracy here can differ from the paper's.
Images without any keypoint all get the same embedding (the head reads features only at keypoints), so
`model(**inputs)` refuses them (the processor's `person_found` goes with the inputs): leave them out.

## Model details

| | |
| --- | --- |
| input | {config.image_size} x {config.image_size}, square-padded (white), mean = std = 0.5 |
| retina patches | {config.patch_size} px, {config.grid_size} x {config.grid_size} per level (full image, upper body, face) |
| encoder | ViT, width {config.hidden_size}, {config.num_hidden_layers} layers, {config.num_attention_heads} heads ({heads_note}), MLP {config.intermediate_size}, ReLU6 |
| keypoint RPE | {"on" if config.use_kprpe else "off"} |
| level embedding | {"on" if config.use_level_embed else "off (as in the released configuration)"} |
| embedding | {config.output_dim}-d, not normalised |

## Conversion and parity

`sapiensid convert-official {source} --out DIR` maps every tensor of the official state dict by an
explicit rule, checks every shape, verifies that the official fixed sin-cos position table equals the
one this implementation computes, and refuses to convert if any tensor is left over or missing. The
`sapiensid-hf` test suite runs the official model code (reduced size, seeded random weights) and this
implementation on the same pixels and keypoints: the embeddings agree to 1e-4 (max absolute difference).

## Licence

- **Implementation** (`sapiensid-hf`, the code files in this folder): MIT. It is a re-implementation
  written from the paper and the official code; no official code is copied.
- **Official code and weights**: the official repository (mk-minchul/sapiensid, commit 6731490) ships no
  licence file and the released checkpoint comes with no stated licence, so the authors have granted no
  licence for them. Treat these weights as research-only, and ask the authors before redistributing them
  or using them commercially. The models were trained on WebBody, a dataset of web images of people that
  the authors distribute as URL lists; the people in those images did not consent to this use.

## Intended use

Research on human recognition: person re-identification, cloth-changing re-identification and face
recognition benchmarks on data you are entitled to use, and studies of the model's behaviour.

## Limits of biometric use

- Embeddings of a person's face or body are biometric data. Many jurisdictions restrict collecting,
  storing and matching them (for example the EU GDPR treats biometric data for identification as a
  special category, the EU AI Act prohibits or classes as high-risk several remote biometric
  identification uses, and laws such as Illinois' BIPA require consent). Check the law where you deploy.
- Do not use it to identify, track or profile people without their informed consent, for covert
  surveillance, or for decisions with legal or similarly significant effects without human review.
- Accuracy depends on image quality, resolution, pose, occlusion, clothing changes and the keypoint
  detector, and may differ across demographic groups; no fairness evaluation of these weights is
  included here. Calibrate any match threshold on data from your own setting, and report error rates
  per group before relying on it.

## Citation

```bibtex
{CITATION}
```
"""
    )


def thresholds_section(config: dict) -> str:
    """The card's "Verification thresholds" section from a config's `calibration` record (`sapiensid
    calibrate`), or a line saying the folder has none."""
    record = config.get("calibration")
    if not record:
        return (
            "## Verification thresholds\n\nNot calibrated: `sapiensid compare` falls back to an untuned 0.30 and "
            "says so. Run `sapiensid calibrate` on this folder to record its thresholds.\n"
        )
    rows = [
        f"| {label} | {entry['pairs_from']} | {entry['pairs']:,} ({entry['same_pairs']:,}) | {entry['best_accuracy']:.4f} "
        f"| {100 * entry['accuracy_at_best']:.1f} % ({entry['accuracy']}) | {entry['far_1e-2']:.4f} | {100 * entry['tar_at_far_1e-2']:.1f} % |"
        for label, entry in (("faces", record["face"]), ("bodies", record["body"]))
    ]
    return (
        "## Verification thresholds\n\n"
        "Recorded in `config.json` (`calibration`) by `sapiensid calibrate`; `sapiensid compare`, the Space and "
        "`SapiensIDPipeline.verify` use the best-accuracy threshold of faces when both pictures show a face, of "
        "bodies otherwise, and print which; they embed with flip test-time augmentation by default, as the "
        "thresholds were chosen. Chosen on development pairs only; for your own use, choose one on "
        "labelled pairs of your data.\n\n"
        "| pictures | pairs from | pairs (same person) | best-accuracy threshold | accuracy there | threshold at FAR 1e-2 | TAR there |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n\n" + _far_pairs_line(record)
        + _best_of_pairs_paragraph(record)
        + f"Source: {record.get('source', 'unrecorded')}.\n"
    )


def _far_pairs_line(record: dict) -> str:
    """Which different-person pairs a FAR 1e-2 threshold was chosen on, where not the table's own pairs."""
    why = {
        "face": "1 % of the protocol's pairs would be a handful",
        "body": "a gallery mixes photos of one camera with others, and different people of one camera score higher",
    }
    lines = [
        f"The {label}' threshold at FAR 1e-2 and FAR curve are measured on {record[kind]['far_from']} ({why[kind]}); "
        "the threshold's TAR on the same-person pairs of the table.\n\n"
        for label, kind in (("faces", "face"), ("bodies", "body"))
        if "far_from" in record[kind]
    ]
    return "".join(lines)


def _best_of_pairs_paragraph(record: dict) -> str:
    """What the record's FAR curves are for, with the thresholds they give for two photos of 2, 3, 4 people."""
    from .evaluation.calibration import choose_threshold

    if not all("far_curve" in record[kind] for kind in ("face", "body")):
        return ""
    raised = " and ".join(
        f"{label} " + " / ".join(
            f"{choose_threshold(record, kind == 'face', 'this folder', pairs=pairs).value:.3f}" for pairs in (4, 9, 16)
        )
        for label, kind in (("faces", "face"), ("bodies", "body"))
    )  # fmt: skip
    curves = " and on ".join(
        f"{record[kind]['far_curve']['pairs_from']} ({record[kind]['far_curve']['different_pairs']:,})" for kind in ("face", "body")
    )
    return (
        "When two photos of several people are compared, the verdict is on the best of all their pairs, which "
        "different people reach far more often than one pair does; the threshold is then raised so that the "
        "best of N different-person pairs passes as often as one pair passes the threshold above: "
        f"{raised} for the best of 4 / 9 / 16 pairs (two photos of 2 / 3 / 4 people), read from the "
        f"false-accept rates recorded (`far_curve`) on {curves} (docs/cli.md, \"Which threshold\").\n\n"
    )


def embedding_rule_section(config: dict) -> str:
    """The card's "How photos are embedded" section from a config's `embedding_cuts` record (cut_views.py),
    or nothing for a folder that embeds the photo as it is."""
    record = config.get("embedding_cuts")
    if not record:
        return ""
    cuts = ", ".join(f"{scale:g}" for scale in record["scales"][1:])
    return (
        "## How photos are embedded\n\n"
        f"`config.json` records an embedding rule (`embedding_cuts`): a photo's embedding is the mean of the unit "
        f"embeddings of the photo and of its cuts about the centre to {cuts} of its width and height (the detector "
        "runs on each cut; where it finds nobody there, or somebody else, the photo's keypoints mapped into the cut "
        "are used). `SapiensIDPipeline`, every `sapiensid` command, the Space and `sapiensid evaluate` follow it, "
        "and the figures and thresholds of this card were measured with it and with flip test-time augmentation "
        "(`--flip`). `AutoModel` with `AutoImageProcessor` and the `image-feature-extraction` pipeline give the "
        "same embeddings: `preprocessor_config.json` records the same scales and flip, the processor returns the "
        "cuts and the mirrors' keypoints (`cut_pixel_values`, `cut_pixel_mask`, `cut_keypoints`, "
        "`mirrored_keypoints`, `cut_mirrored_keypoints`) and the model adds the views up. `--no-cuts` on the "
        "command line, `pipeline.model.config.embedding_cuts = None` or `processor(images, embedding_cuts=None, "
        "embedding_flip=False)` embeds the photo as it is (docs/evaluation.md, \"The embedding rule "
        "of a model folder\"). The package's tools and the folder's processor (`frame_small_people: true` in "
        "`preprocessor_config.json`) also cut a person who fills little of the photo (their frame under half of "
        "it) before embedding them, as the training photos were framed, and search a photo in which the detector's "
        "first look finds nobody for people as `detect_people` does (its tiles, silhouettes, faces); a person cut "
        "to their frame is kept only where the detector sees somebody there, and a face found alone counts from "
        "face score 0.75 (flowers, animals and prints fool a look at the whole photo); a person showing a face "
        "and no legs is kept only where OpenCV's YuNet face detector finds a face about their head (its file comes "
        "with `sapiensid download-detector`); a find of fewer than 3 keypoints is nobody; `framed` says which rows "
        "(docs/people.md, \"One person in a wider photo\"; `processor(images, frame_small_people=False)` "
        "embeds the picture whole)."
        f"\n\nSource: {record.get('source', 'unrecorded')}.\n"
    )


__all__ = ["CITATION", "embedding_rule_section", "front_matter", "model_index_results", "render_model_card", "thresholds_section"]
