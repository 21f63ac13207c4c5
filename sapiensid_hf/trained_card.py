"""The model card (README.md) of a model folder that `examples/train.py` trained.

Everything in it comes from the folder's config (its `training` and `calibration` records) and, when
given, the folder's own development checks (`sapiensid evaluate --benchmark public-dev` results.json):
the figures and the Hub's `model-index` are never typed by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .atomic_files import write_text_atomically
from .evaluation.public_dev import dev_markdown
from .model_card import (
    CITATION,
    TEACHERS,
    TRAINING_DATASETS,
    embedding_rule_section,
    front_matter,
    thresholds_section,
)

RESEARCH_ONLY_LICENCE = "research-only-training-data"

USAGE = """```python
from transformers import pipeline

extractor = pipeline("image-feature-extraction", model="{repo}", trust_remote_code=True)
a, b = extractor(["a.jpg", "b.jpg"], pool=True)          # L2-normalised identity embeddings
print(sum(x * y for x, y in zip(a[0], b[0])))            # cosine similarity
```

A photo in which the keypoint detector finds nobody is refused with a `ValueError`: with no keypoints,
every such photo would get the same embedding."""


def training_datasets(record: dict[str, Any]) -> list[str]:
    """The `datasets` card field from a training record: the named sets of the shared data folders, else
    the data source as recorded."""
    sources = [str(record.get("data", "")), str(record.get("unlabelled_photos") or "")]
    names = []
    for source in filter(None, sources):
        folder = next((name for name in TRAINING_DATASETS if f"/{name}/" in source.replace("\\", "/")), None)
        names += TRAINING_DATASETS[folder] if folder else [source]
    return names


def render_trained_card(
    config: dict[str, Any], name: str, results: dict[str, Any] | None = None, label: str | None = None,
    repo_id: str | None = None,
) -> str:  # fmt: skip
    """README.md for a trained folder whose config.json is `config`; `results` adds the development checks."""
    record = config.get("training")
    if not record:
        raise ValueError(f"{name}: its config has no `training` record, so it is not a trained model folder")
    teacher = record.get("teacher")
    datasets = training_datasets(record)
    steps = f"{record['steps']:,} of {record.get('max_steps', record['steps']):,}" if "steps" in record else None
    if steps and "stopped_by" in record:  # the learning rate had not decayed to its end
        steps += f" (ended by {record['stopped_by']})"
    rows = [
        ("steps", steps),
        ("batch", f"{record.get('batch_size')} images, {record.get('masking')} masking"),
        ("seed", record.get("seed")),
        ("labelled photos", record.get("data")),
        ("unlabelled photos", record.get("unlabelled_photos")),
        ("teacher", f"{TEACHERS[teacher]['name']}: {TEACHERS[teacher]['use']}" if teacher in TEACHERS else teacher),
        ("hardware", f"{record.get('machine')}, {record.get('num_processes', 1)} process(es), torch {record.get('torch')}"),
        ("wall time", f"{record['wall_time_s'] / 3600:.2f} h" if record.get("wall_time_s") else None),
    ]
    table = "\n".join(f"| {key} | {value} |" for key, value in rows if value is not None)
    checks = (
        "## Development checks\n\n`sapiensid evaluate --benchmark public-dev` on this folder:\n\n" + dev_markdown(results)
        if results is not None
        else "## Development checks\n\nNot run yet: `sapiensid evaluate --benchmark public-dev --model THIS_FOLDER`, "
        "then `sapiensid push THIS_FOLDER REPO --results OUTPUT/results.json` writes them here and in the card's "
        "`model-index`.\n"
    )
    return (
        front_matter(RESEARCH_ONLY_LICENCE, datasets=datasets, teacher=teacher, results=results, label=label, model_name=name)
        + f"""
# {name}

A SapiensID model (Kim et al., CVPR 2025, arXiv 2504.04708) trained with `sapiensid-hf`'s
`examples/train.py`: one model for face close-ups, upper-body shots and full-body pictures.
{config.get('num_hidden_layers')} layers of width {config.get('hidden_size')}, {config.get('image_size')}-px
input, {config.get('output_dim')}-d embedding. Not the paper's model.

## Usage

{USAGE.format(repo=repo_id or name)}

## Training

| | |
| --- | --- |
{table}

## Training data terms

Datasets: {", ".join(datasets) or "as recorded above"}. The public face and pedestrian sets the project
trains on are distributed for research use only, so **these weights are for research use only** unless
the data you trained on says otherwise.

{checks}
{thresholds_section(config)}
{embedding_rule_section(config)}
## Biometric caveats

Embeddings of faces and bodies are biometric data: check the law where you deploy, never identify or track
people without their informed consent, and calibrate any match threshold on data from your own setting.
Accuracy may differ across demographic groups; it was not measured here.

## Citation

```bibtex
{CITATION}
```
"""
    )


def write_trained_card(model_dir: str | Path, results: dict[str, Any] | None = None, repo_id: str | None = None) -> Path:
    """Write README.md into a trained model folder; returns its path."""
    import json

    folder = Path(model_dir)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    path = folder / "README.md"
    text = render_trained_card(config, folder.resolve().name, results=results, repo_id=repo_id)
    return write_text_atomically(path, text)


__all__ = ["render_trained_card", "training_datasets", "write_trained_card"]
