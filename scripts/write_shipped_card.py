"""Write pretrained/sapiensid-small/README.md (the model card) from the model folder and its dev results.

    .venv/bin/python scripts/write_shipped_card.py --model pretrained/sapiensid-small \
        --results outputs/public_dev_small/results.json --fp32-results outputs/public_dev_small_fp32/results.json

Every figure in the card comes from those files (the config's `training` record, the development checks
of `sapiensid evaluate --benchmark public-dev`), so the card cannot drift from the weights it describes.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from sapiensid_hf.evaluation.public_dev import UNTRAINED, dev_markdown, headline
from sapiensid_hf.model_card import embedding_rule_section, front_matter, thresholds_section
from sapiensid_hf.trained_card import training_datasets


def recipe_line(run: dict) -> str:
    """The recipe, as the run's resolved config.json says it ran."""
    head, optimizer, schedule, masking = run["head"], run["optimizer"], run["schedule"], run["masking"]
    margin = f"AdaFace (m {head['margin']}, h {head['h']}, s {head['scale']}"
    if head.get("margin_warmup_steps"):
        margin += f", m ramped from 0 over the first {head['margin_warmup_steps']} steps"
    margin += ")"
    if head.get("triplet_weight"):
        margin += f" + {head['triplet_weight']} x batch-hard triplet (margin {head['triplet_margin']})"
    return (
        f"{margin}, {optimizer['name']} lr {optimizer['lr']:g}, weight decay {optimizer['weight_decay']}, "
        f"{schedule['decay']} schedule over {schedule['max_steps']} steps ({schedule['warmup_steps']} warm-up), "
        f"{masking['mode']} masking (kept fraction in [{masking['min_kept_fraction']}, {masking['max_kept_fraction']}]), "
        f"batch {run['batch_size']} at the reference kept-token count, identity-balanced sampling "
        f"({run['data']['images_per_identity']} images per person per epoch), flip{reframing(run)} and colour jitter"
    )


def reframing(run: dict) -> str:
    augmentation = run.get("augmentation", {})
    if not augmentation.get("reframe_prob"):
        return ""
    return (
        f", reframing (a {augmentation['reframe_prob']:g} share of the photos rescaled by up to "
        f"{augmentation['reframe_scale']:g} and shifted by up to {augmentation['reframe_shift']:g})"
    )


REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "examples" / "configs" / "small_distill.yaml"  # --recipe: the config file the run started from


def averaged_steps(record: dict) -> list[int]:
    """The steps of the models the weights are the mean of ("step 10000" or a checkpoint "step_00010000")."""
    return [int(re.sub(r"\D", "", source)) for source in record.get("weights_averaged_from", [])]


def continuation_command(recipe: Path, record: dict, last_step: int) -> str:
    """The resume lines when the run went on past the recipe's schedule (warm restarts), else nothing: one per
    stop, the stops being the averaged models' steps when the weights are a mean, else the run's last step."""
    import yaml

    planned = yaml.safe_load(recipe.read_text())["schedule"]["max_steps"]
    stops = sorted(set(averaged_steps(record)))
    stops = [stop for stop in stops or [last_step] if stop > planned]
    lines = []
    for stop in stops:
        lines.append(
            f"# then, from the last checkpoint, on to {stop} steps (a warm restart of the cosine schedule):\n"
            f"python examples/train.py --config {recipe.relative_to(REPO)} --resume_from_checkpoint latest "
            f"--set schedule.max_steps={stop}\n"
        )
    return "".join(lines)


def first_stage_commands(run: dict, recipe: Path, record: dict) -> str:
    """The CPU run's resume and averaging lines: of the first stage's record when the weights were continued."""
    first = stages(record)[0]
    last_step = run["schedule"]["max_steps"] if first is record else first["steps"]
    return continuation_command(recipe, first, last_step) + averaging_lines(first)


def averaging_lines(record: dict) -> str:
    """How the shipped weights were averaged from the run's models, when they were (docs/training.md)."""
    sources = record.get("weights_averaged_from")
    if not sources:
        return ""
    folders = " ".join(f"STEP_{step}_MODEL" for step in averaged_steps(record))
    return (
        f"# the shipped weights: the mean of the run's models at {' and '.join(sources)} (each exported from its checkpoint)\n"
        f"python scripts/average_model_weights.py {folders} --output averaged_model\n"
    )


def averaged_note(record: dict) -> str:
    sources = record.get("weights_averaged_from")
    return f" (its weights are the mean of the run's at {' and '.join(sources)})" if sources else ""


def earlier_stage(record: dict) -> dict | None:
    """The training of the weights this run started from, when the shipped folder recorded it
    (`initialised_from`: {"model", "training", "command"}; a plain path records no more than its name)."""
    start = record.get("initialised_from")
    return start if isinstance(start, dict) and "training" in start else None


def stages(record: dict) -> list[dict]:
    """The training records of every stage, the first (from scratch) first: each continued the one before."""
    chain = [record]
    while (earlier := earlier_stage(chain[0])) is not None:
        chain.insert(0, earlier["training"])
    return chain


def stage_steps(record: dict) -> str:
    """A continued stage's steps; a checkpoint taken before its schedule ended says so."""
    steps, planned = record["steps"], record.get("max_steps", record["steps"])
    cut = f" (its checkpoint at step {steps:,} of a {planned:,}-step schedule)" if steps < planned else ""
    return f"{steps:,} more on a GPU ({record.get('machine')}){cut}"


def steps_line(record: dict) -> str:
    first, *later = stages(record)
    line = f"saw {first['steps']} steps of {first['batch_size']} images (at the reference kept-token count) on a\nCPU{averaged_note(first)}"
    if not later:
        return line
    return line + "".join(f", then {stage_steps(stage)}" for stage in later) + ", each stage continuing the weights before it"


def continued_lines(record: dict) -> str:
    """The command of each stage that continued earlier weights (a lent GPU machine's run)."""
    return "".join(
        f"# then, continuing those weights ({stage['initialised_from']['model']}):\n{stage['initialised_from']['command']}\n"
        for stage in stages(record)[1:]
    )


def stage_hardware(record: dict) -> str:
    hours = record.get("wall_time_s", 0) / 3600
    return f"{record.get('machine', 'CPU')}, {record.get('num_processes', 1)} process; training wall time {hours:.2f} h"


def hardware_line(record: dict) -> str:
    return ";\nthen ".join(stage_hardware(stage) for stage in stages(record))


ABLATION_POINTER = (
    "The same recipe without the teacher (recipe v2, the model shipped before) and the ablation at equal steps:\n"
    "docs/training.md, 'Recipe v3'.\n"
)


def teacher_paragraphs(record: dict, run: dict) -> str:
    """What the model learned from besides its labelled photos: the unlabelled faces and the teacher."""
    if not record.get("teacher"):
        return ""
    distill = run["distill"]
    return f"""
Besides them, **10,998 unlabelled face photos** of `../shared/data/faces` (UTKFace: non-commercial research
only; Caltech 10k Web Faces: research use; FFHQ: CC BY-NC-SA 4.0), with no identity labels, served only
the distillation terms.

**Face teacher** (training time only; the model never needs it): dlib's ResNet face descriptor
(`dlib_face_recognition_resnet_model_v1.dat` and the 5-point shape predictor, released by dlib's author
into the public domain (CC0), from the `face-recognition-models` package; dlib itself from `dlib-bin`,
Boost Software Licence; `pip install "sapiensid-hf[distill]"`). Its descriptor of each photo (and its
mirror) where its face detector finds a face is a target for the model's face path: cosine to the
teacher through a projection (weight {distill['cosine_weight']}) and relational distillation of the
batch's similarity matrix (weight {distill['relation_weight']}), beside AdaFace and the triplet term{stage_note(record)}.
"""


def stage_note(record: dict) -> str:
    return " (the weights and settings of the last stage; the recipe's before it)" if earlier_stage(record) else ""


def peer_section(peer: dict | None, results: dict, label: str) -> str:
    """The ReID peer trained on the same body photos (../shared/peers/osnet), beside this model."""
    if not peer:
        return ""
    figures = headline(results, label)
    figures["conreid_map"] = results["models"][label]["conreid"]["query_to_gallery"]["mAP"]
    rows = [
        ("CUHK03-val rank-1, cam 0 -> 1 / cam 1 -> 0 (mean)", "cuhk03_val"),
        ("Con-ReID query -> gallery rank-1 / mAP", "conreid"),
    ]
    ours = {
        "cuhk03_val": f"{100 * figures.get('cuhk03_val_rank1', float('nan')):.1f} %",
        "conreid": f"{100 * figures.get('conreid_rank1', float('nan')):.1f} / {100 * figures.get('conreid_map', float('nan')):.1f}",
    }
    table = "\n".join(f"| {name} | {ours[key]} | {peer[key]} |" for name, key in rows)
    return f"""
## Beside a re-identification network trained on the same photos

{peer['description']}

| check | sapiensid-small | {peer['name']} |
| --- | --- | --- |
{table}
"""


def card(
    config: dict, run: dict, results: dict, fp32: dict | None, label: str, size_mb: float, recipe: Path,
    peer: dict | None = None,
) -> str:  # fmt: skip
    record = config["training"]
    figures = headline(results, label)
    untrained = headline(results, UNTRAINED) if UNTRAINED in results["models"] else {}
    fp32_line = ""
    if fp32 is not None:
        reference = headline(fp32, next(iter(fp32["models"])))
        moves = ", ".join(
            f"{key} {100 * reference[key]:.1f} -> {100 * figures[key]:.1f}" for key in figures if key in reference
        )
        fp32_line = f"The weights are stored in float16 (loaded as float32); against the float32 weights: {moves}.\n"
    header = front_matter(
        "research-only-training-data", datasets=training_datasets(record), teacher=record.get("teacher"),
        results=results, label=label, model_name="sapiensid-small",
    )  # fmt: skip
    return header + f"""
# sapiensid-small

A small SapiensID (Kim et al., CVPR 2025, arXiv 2504.04708) trained by the sapiensid-hf project on
~15k labelled public photos{" and 11k unlabelled face photos, with a face teacher" if record.get("teacher") else ""}, so that
the project's tools recognise people out of the box. **It is not the
paper's model**: the authors trained a 24-layer, 384-px model on millions of images; this one has
{config['num_hidden_layers']} layers of width {config['hidden_size']}, reads {config['image_size']}-px
inputs and {steps_line(record)}.

## Architecture

The full SapiensID architecture: Retina Patch (3 levels: full image, upper body, face; each resampled
to {config['image_size']} px and cut into {config['patch_size']}-px patches, so face and body get finer
patches), the Masked Recognition Model (trained with the variable masking ratio: one mask token with a
log-count attention bias stands for the dropped tokens), keypoint relative position encoding, and the
Semantic Attention Head ({config['head_queries_per_keypoint']} query per keypoint) with a
{config['output_dim']}-d embedding. Weights: {size_mb:.1f} MB.
{fp32_line}
```python
import torch
from transformers import AutoImageProcessor, AutoModel

model = AutoModel.from_pretrained("pretrained/sapiensid-small", trust_remote_code=True).eval()
processor = AutoImageProcessor.from_pretrained("pretrained/sapiensid-small", trust_remote_code=True)
inputs = processor(["a.jpg", "b.jpg"], return_tensors="pt")     # the detector on each photo and its centre cuts
with torch.no_grad():
    embeddings = model(**inputs).pooler_output                 # L2-normalised; a photo with nobody is refused
print(float(embeddings[0] @ embeddings[1]))                    # cosine similarity
```

The processor's keypoint rules are version {config.get('keypoint_rules_version', 2)} (BlazePose +
person-crop fallback + BlazeFace), the rules the model was trained with: keep them.

## Training data (research use only)

The training splits of `../shared/data/identities` (see its README): CUHK03 "labeled" pedestrian boxes
(743 people, 7,239 boxes), Con-ReID construction-site workers (71 people, 2,371 boxes) and LFW
deep-funneled news photos of public figures (978 people with 2+ photos, 4,982 photos), 14,592 photos of
1,792 people, identity-balanced (4 images of each person per epoch). CUHK03 and LFW are distributed for
research use only, so **these weights are for research use only**; CUHK03's authors ask that the
students' privacy be respected. No photo of the development sets below was trained on.
{teacher_paragraphs(record, run)}
## How it was trained

```bash
sapiensid download-detector
python examples/train.py --config {recipe.relative_to(REPO)}     # seed {stages(record)[0]['seed']}
{first_stage_commands(run, recipe, record)}{continued_lines(record)}```

{"The last stage" if earlier_stage(record) else recipe.relative_to(REPO)}: {recipe_line(run)}.
Hardware: {hardware_line(record)} (the keypoint cache took ~11 min more{", the teacher's cache ~1 h" if record.get("teacher") else ""}).

## Development checks

`sapiensid evaluate --benchmark public-dev --dataset-root ../shared/data/identities --model
pretrained/sapiensid-small` (flip test-time augmentation; keypoints from the processor; the CUHK03-val and
Con-ReID crops in which the detector finds nobody get the standing-person prior, docs/evaluation.md), beside
the randomly initialised model of the same shape:

{dev_markdown(results)}
Headline: CUHK03-val rank-1 {100 * figures.get('cuhk03_val_rank1', float('nan')):.1f} % (mean of both
camera directions; untrained {100 * untrained.get('cuhk03_val_rank1', float('nan')):.1f} %), LFW fold-7
accuracy {100 * figures.get('lfw_fold7_accuracy', float('nan')):.1f} % (untrained
{100 * untrained.get('lfw_fold7_accuracy', float('nan')):.1f} %), Con-ReID rank-1
{100 * figures.get('conreid_rank1', float('nan')):.1f} %.
{ABLATION_POINTER if record.get("teacher") else ""}{peer_section(peer, results, label)}
{thresholds_section(config)}
{embedding_rule_section(config)}
## Limits

- A small model trained on ~15k photos: far below the paper's model, and far below any production
  face or body recogniser. Expect errors, above all across clothing changes, poses and image
  qualities unlike CUHK03 / Con-ReID / LFW.
- The development sets are small (100 CUHK03 people, 61 Con-ReID people, 600 LFW pairs); the figures
  carry a few points of sampling noise.
- A photo in which the detector finds no person has no keypoints, and the Semantic Attention Head
  pools features at keypoints: such photos all get the same embedding. The tools withhold the verdict
  (`compare`), leave them out (`search`) and mark them (`person_found = false`). For a gallery known to
  hold crops of one person each (re-identification data), the processor's `standing_person_prior=True`
  gives such a crop the keypoints of a standing person filling it; never for arbitrary photos.

## Biometric caveats

Recognising people affects their privacy and rights. Do not use this model to identify people without
their consent, for surveillance, or for any decision about a person. LFW photographs public figures in
the news and CUHK03 / Con-ReID people who were filmed for research: the model inherits their
demographic and situational biases, which were not measured.

## Citation

```bibtex
@inproceedings{{kim2025sapiensid,
  title     = {{SapiensID: Foundation for Human Recognition}},
  author    = {{Kim, Minchul and Ye, Dingqiang and Su, Yiyang and Liu, Feng and Liu, Xiaoming}},
  booktitle = {{Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)}},
  year      = {{2025}}
}}
```
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--results", required=True, type=Path, help="public-dev results.json of the shipped weights")
    parser.add_argument("--fp32-results", type=Path, default=None, help="the same for the float32 weights")
    parser.add_argument("--recipe", type=Path, default=RECIPE, help=f"the config the run started from (default: {RECIPE.relative_to(REPO)})")
    parser.add_argument(
        "--run-config", type=Path, default=None, help="the run's resolved config (default: <model>/training_config.json)"
    )
    parser.add_argument(
        "--peer", type=Path, default=None,
        help="JSON of the ReID peer's figures: name, description, cuhk03_val and conreid (display strings)",
    )  # fmt: skip
    args = parser.parse_args()
    peer = json.loads(args.peer.read_text()) if args.peer else None
    config = json.loads((args.model / "config.json").read_text())
    results = json.loads(args.results.read_text())
    fp32 = json.loads(args.fp32_results.read_text()) if args.fp32_results else None
    label = next(label for label in results["models"] if label != UNTRAINED)
    size = (args.model / "model.safetensors").stat().st_size / 1e6
    run = json.loads((args.run_config or args.model / "training_config.json").read_text())
    (args.model / "README.md").write_text(card(config, run, results, fp32, label, size, args.recipe.resolve(), peer), encoding="utf-8")
    print(f"wrote {args.model / 'README.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
