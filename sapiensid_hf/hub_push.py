"""Upload a model folder to the Hugging Face Hub: the model's files only, never checkpoints or logs.

`sapiensid push MODEL_DIR REPO_ID` and `examples/train.py --push_to_hub REPO_ID` call `push_model_folder`.
What goes: the weights (one file or shards with their index), config.json, preprocessor_config.json,
training_config.json, the flat code files that `trust_remote_code` loads, and README.md (the model card;
written from the folder's records when the folder has none, or when development results are given).
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .trained_card import render_trained_card, write_trained_card

# `from .module import ...` in a flat code file (at any indentation: some imports are local).
_RELATIVE_IMPORT = re.compile(r"^\s*from \.(\w+) import", re.MULTILINE)

MODEL_FILE_PATTERNS = (
    "config.json",
    "preprocessor_config.json",
    "training_config.json",
    "model.safetensors",
    "model-*-of-*.safetensors",
    "model.safetensors.index.json",
    "*.py",
    "README.md",
)


class PushError(ValueError):
    """The folder cannot be pushed as a model (named, with the reason)."""


@dataclass
class PushPlan:
    folder: Path
    repo_id: str
    files: list[str]  # relative names, sorted
    card: str  # "kept", "written" (or "would be written" in a dry run)


def model_files(folder: str | Path) -> list[str]:
    """The model's files in `folder` (top level only: checkpoints/, logs/ and other runs' outputs stay)."""
    root = Path(folder)
    return sorted(
        path.name for path in root.iterdir()
        if path.is_file() and any(fnmatch.fnmatch(path.name, pattern) for pattern in MODEL_FILE_PATTERNS)
    )  # fmt: skip


def _check_model_folder(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise PushError(f"{folder}: not a folder")
    config_path = folder / "config.json"
    if (folder / "final_model" / "config.json").is_file() and (folder / "checkpoints").is_dir():
        raise PushError(f"{folder}: a training run's output folder; push its model folder, {folder / 'final_model'}")
    if not config_path.is_file():
        raise PushError(f"{folder}: no config.json, so not a saved model folder (push the folder save_pretrained wrote)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise PushError(f"{config_path}: not valid JSON ({error})") from None
    if config.get("model_type") != "sapiensid":
        raise PushError(f"{config_path}: model_type is {config.get('model_type')!r}, not 'sapiensid'")
    if not (folder / "model.safetensors").is_file() and not (folder / "model.safetensors.index.json").is_file():
        raise PushError(f"{folder}: no model.safetensors (or sharded index): there are no weights to push")
    for code in ("configuration_sapiensid.py", "modeling_sapiensid.py"):
        if not (folder / code).is_file():
            raise PushError(f"{folder}: {code} is missing, so trust_remote_code could not load the model from the Hub")
    missing = missing_code_files(folder)
    if missing:
        raise PushError(
            f"{folder}: {'; '.join(missing)}, so trust_remote_code could not load it from the Hub; save the folder "
            "again with save_pretrained (or copy the files from modeling/ and processing/)"
        )
    return config


def missing_code_files(folder: Path) -> list[str]:
    """"a.py needs b.py" for each relative import of the folder's flat code files that the folder lacks."""
    missing = []
    for code in sorted(folder.glob("*.py")):
        for module in sorted(set(_RELATIVE_IMPORT.findall(code.read_text(encoding="utf-8")))):
            if not (folder / f"{module}.py").is_file():
                missing.append(f"{code.name} needs {module}.py")
    return missing


def push_model_folder(
    folder: str | Path,
    repo_id: str,
    dry_run: bool = False,
    results: dict[str, Any] | None = None,
    private: bool = False,
    commit_message: str = "Upload SapiensID model",
    token: str | None = None,
) -> PushPlan:
    """Upload the model files of `folder` to `repo_id` (a model repository, created if missing). With
    `dry_run`, only say what would go. `results` (public-dev results.json) writes the card's checks and
    `model-index`; a folder without README.md gets its card written from its records."""
    folder = Path(folder)
    config = _check_model_folder(folder)
    has_card = (folder / "README.md").is_file()
    card = "kept" if has_card and results is None else "written"
    if card == "written" and not config.get("training"):
        if not has_card:
            raise PushError(f"{folder}: no README.md and no `training` record to write a card from; add a card first")
        raise PushError(f"{folder}: the config has no `training` record, so development results cannot be written into its card")
    files = model_files(folder)
    if dry_run:
        if card == "written":
            render_trained_card(config, folder.resolve().name, results=results, repo_id=repo_id)  # it must render
            files = sorted(set(files) | {"README.md"})
        return PushPlan(folder, repo_id, files, "would be written" if card == "written" else card)
    if card == "written":
        write_trained_card(folder, results=results, repo_id=repo_id)
        files = model_files(folder)
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id, repo_type="model", folder_path=str(folder), allow_patterns=files, commit_message=commit_message
    )
    return PushPlan(folder, repo_id, files, card)


__all__ = ["MODEL_FILE_PATTERNS", "PushError", "PushPlan", "model_files", "push_model_folder"]
