"""Model folders that ship with sapiensid-hf (installed as `sapiensid_hf.pretrained`).

`sapiensid-small/` is the default model of the CLI, the pipeline, the quickstart and the Space: a small
SapiensID trained by this project on public photos (its README.md is the model card). It travels
inside the wheel, so a plain `pip install` has it too.
"""

from pathlib import Path

DEFAULT_MODEL_NAME = "sapiensid-small"


def shipped_model_dir(name: str = DEFAULT_MODEL_NAME) -> Path | None:
    """The folder of a shipped model, or None when this installation lacks it."""
    folder = Path(__file__).resolve().parent / name
    return folder if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file() else None


__all__ = ["DEFAULT_MODEL_NAME", "shipped_model_dir"]
