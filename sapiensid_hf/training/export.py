"""What a trained model folder records about its training, and turning a checkpoint into a model folder.

A folder counts as *trained* only when its config carries a `training` record (written here by the
trainer, or by the official-checkpoint converter): being a folder says nothing about its weights.
The record holds what a model card needs: the steps, the seed, the data source, the processes and
the wall time.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .config import TrainingConfig
from .progress import PROGRESS_FILE
from .recognition_model import build_backbone

BACKBONE_PREFIX = "backbone."


def training_record(
    config: TrainingConfig,
    steps: int,
    num_processes: int | None = None,
    wall_time_s: float | None = None,
    stopped_by_time_limit: bool = False,
) -> dict[str, Any]:
    """The `training` entry of a trained model's config.json."""
    data = config.data
    record: dict[str, Any] = {
        "trainer": "sapiensid_hf.training",
        "steps": int(steps),
        "max_steps": int(config.schedule.max_steps),
        "seed": int(config.seed),
        "data": data.dataset_path or f"{data.loader}:{data.root}",
        "loader_kwargs": dict(data.loader_kwargs),
        "batch_size": int(config.batch_size),
        "masking": config.masking.mode,
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs" + (
            f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
        ),
    }
    if config.distill.teacher is not None:  # what the model learned from besides its labelled photos
        record["teacher"] = config.distill.teacher
        record["unlabelled_photos"] = config.distill.unlabelled_manifest
    if config.model.pretrained is not None:  # a run that continued other weights: their training is part of this
        record["initialised_from"] = str(config.model.pretrained)
    if num_processes is not None:
        record["num_processes"] = int(num_processes)
    if wall_time_s is not None:
        record["wall_time_s"] = round(float(wall_time_s), 1)
    if stopped_by_time_limit:  # steps < max_steps: the learning rate had not decayed to its end
        record["stopped_by"] = f"schedule.max_time_s = {config.schedule.max_time_s:g} s"
    return record


def save_float16_weights(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """`source`'s model.safetensors written to `target` with its floating-point tensors in float16 (the
    shipped folder's size; a folder's config keeps float32 as the dtype it computes in)."""
    state = load_file(str(source))
    half = {name: tensor.half() if tensor.is_floating_point() else tensor for name, tensor in state.items()}
    save_file(half, str(target), metadata={"format": "pt"})


def export_checkpoint(checkpoint_dir: str | os.PathLike, output_dir: str | os.PathLike) -> Path:
    """A `save_pretrained` model folder (model + processor) from a trainer checkpoint.

    The run's `config.json` (beside `checkpoints/`) rebuilds the model; the checkpoint's
    `model.safetensors` gives the backbone weights (the AdaFace head is training-only and dropped). Like a
    finished run's `final_model/`, the folder gets the run's config as `training_config.json`, and its
    record the processes and training time the checkpoint's progress file holds.
    """
    from ..processing.image_processing_sapiensid import SapiensIDImageProcessor

    checkpoint = Path(checkpoint_dir)
    weights = checkpoint / "model.safetensors"
    run_config = checkpoint.parent.parent / "config.json"
    for needed in (weights, run_config):
        if not needed.is_file():
            raise FileNotFoundError(f"{checkpoint}: not a trainer checkpoint ({needed} is missing)")
    config = TrainingConfig.from_file(run_config)
    backbone = build_backbone(config.model)
    state = load_file(str(weights))
    backbone_state = {key[len(BACKBONE_PREFIX) :]: value for key, value in state.items() if key.startswith(BACKBONE_PREFIX)}
    missing, unexpected = backbone.load_state_dict(backbone_state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{weights} does not match the run's model: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    complete = checkpoint / "COMPLETE"
    step = json.loads(complete.read_text(encoding="utf-8"))["step"] if complete.is_file() else None
    progress_file = checkpoint / PROGRESS_FILE
    progress = json.loads(progress_file.read_text(encoding="utf-8")) if progress_file.is_file() else {}
    record = training_record(config, step or 0, progress.get("num_processes"), progress.get("wall_time_s"))
    backbone.config.training = {**record, "checkpoint": checkpoint.name}
    output = Path(output_dir)
    backbone.save_pretrained(output)
    config.save(output / "training_config.json")
    SapiensIDImageProcessor.from_model_config(backbone.config, embedding_flip=True, frame_small_people=True).save_pretrained(output)  # as the tools embed
    return output


def average_model_folders(folders: list[str | os.PathLike], output_dir: str | os.PathLike) -> Path:
    """A model folder whose weights are the mean of `folders`' weights (checkpoints of one run).

    Averaging the weights of checkpoints along one run (here the ends of two cosine cycles) lands nearer
    the middle of the basin they share than either end: no training, often a better model (Izmailov et
    al., 2018, "Averaging weights leads to wider optima"). The folders must hold the same architecture;
    the config, processor and code files are the last folder's, and its `training` record gains
    `weights_averaged_from`: each source's checkpoint or step.
    """
    from ..modeling import SapiensIDModel
    from ..processing.image_processing_sapiensid import SapiensIDImageProcessor

    if len(folders) < 2:
        raise ValueError(f"give two or more model folders to average, got {len(folders)}")
    sources = [Path(folder) for folder in folders]
    configs = []
    for source in sources:
        if not (source / "config.json").is_file() or not (source / "model.safetensors").is_file():
            raise FileNotFoundError(f"{source}: not a saved model folder (needs config.json and model.safetensors)")
        configs.append(json.loads((source / "config.json").read_text(encoding="utf-8")))
    architecture = {key: value for key, value in configs[-1].items() if key not in ("training", "calibration", "transformers_version")}
    total: dict[str, torch.Tensor] = {}
    for source, config in zip(sources, configs, strict=True):
        differs = sorted(key for key in architecture if config.get(key) != architecture[key])
        if differs:
            raise ValueError(f"{source}: another architecture than {sources[-1]} ({', '.join(differs[:5])} differ)")
        state = load_file(str(source / "model.safetensors"))
        if total and state.keys() != total.keys():
            raise ValueError(f"{source}: its weights do not have the tensors of {sources[0]}")
        for name, tensor in state.items():
            total[name] = total.get(name, 0) + tensor.float()
    model = SapiensIDModel.from_pretrained(sources[-1])
    dtypes = {name: tensor.dtype for name, tensor in model.state_dict().items()}
    model.load_state_dict({name: (tensor / len(sources)).to(dtypes[name]) for name, tensor in total.items()}, strict=True)
    records = [config.get("training") or {} for config in configs]
    record = dict(records[-1])
    record["weights_averaged_from"] = [source.get("checkpoint") or f"step {source.get('steps', '?')}" for source in records]
    model.config.training = record
    output = Path(output_dir)
    model.save_pretrained(output)
    SapiensIDImageProcessor.from_pretrained(sources[-1]).save_pretrained(output)
    return output


__all__ = ["average_model_folders", "export_checkpoint", "training_record"]
