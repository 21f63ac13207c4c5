"""Typed training configuration, loadable from YAML or JSON.

Every section is a dataclass; `TrainingConfig.from_file` reads a YAML / JSON file (YAML is a superset
of JSON), refuses unknown keys and wrongly typed values with the dotted name of the field, and
`with_overrides(["optimizer.lr=3e-4", ...])` applies command-line overrides the same way.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .augmentation import TrainingAugmentation

MODEL_PRESETS = ("tiny", "base")
MIXED_PRECISION = ("no", "fp16", "bf16")
MASKING_MODES = ("none", "fixed", "variable")
LR_SCALING_RULES = ("sqrt", "linear", "none")
DECAY_SCHEDULES = ("cosine", "linear", "constant")
OPTIMIZERS = ("adamw", "sgd")
VALIDATION_SOURCES = ("none", "holdout", "roles", "train")
TEACHERS = ("dlib_resnet_v1",)


class ConfigError(ValueError):
    """A configuration file or override that cannot be used, with the offending field named."""


@dataclass
class DataConfig:
    """Where the training images come from and how their keypoints are found.

    Exactly one source: `dataset_path` (a `datasets.Dataset.save_to_disk` folder) or `loader` (the name
    of a loader function in `sapiensid_hf.data`, called as `loader(root, **loader_kwargs)`).
    Rows need `pid` and an `image` (PIL image, path, or {"bytes", "path"}) or `path` column; `role`
    selects the training rows when present.
    """

    dataset_path: str | None = None
    loader: str | None = None
    root: str | None = None
    loader_kwargs: dict[str, Any] = field(default_factory=dict)
    split: str | None = None  # key of a DatasetDict source
    train_roles: list[str] = field(default_factory=lambda: ["train"])
    keypoint_cache: str | None = None  # folder; built with the processor's detector when missing
    image_cache: str | None = None  # folder: the photos pre-resized to the model's square (uint8), made once; null = decode every time
    detector_batch_size: int = 16
    detector_workers: int | None = None  # processes that detect while the cache is built; None = one per core (max 8)
    num_workers: int = 0
    identity_balanced: bool = False
    images_per_identity: int = 4


@dataclass
class ModelConfig:
    preset: str = "base"  # "tiny" (SapiensIDConfig.tiny()) or "base" (the official defaults)
    overrides: dict[str, Any] = field(default_factory=dict)  # any SapiensIDConfig field
    pretrained: str | None = None  # start from a save_pretrained folder instead of a fresh model
    gradient_checkpointing: bool = False


@dataclass
class HeadConfig:
    """AdaFace margin head (published defaults) and partial-FC class sampling."""

    margin: float = 0.4
    h: float = 0.333
    scale: float = 64.0
    t_alpha: float = 0.01
    sample_rate: float = 1.0  # fraction of class centres in each step's softmax (partial FC); 1 = all
    lr_multiplier: float = 1.0
    margin_warmup_steps: int = 0  # the margin ramps linearly from 0 to `margin` over these steps; 0 = full from the start
    triplet_weight: float = 0.0  # weight of a batch-hard triplet term added to AdaFace (training/triplet.py); 0 = off
    triplet_margin: float = 0.3  # its margin, in distance between unit embeddings (0..2)


@dataclass
class OptimizerConfig:
    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    momentum: float = 0.9  # sgd only
    # torch's fused kernel: one pass over all parameters instead of a dozen per tensor (AdamW's update 19 -> 3 ms
    # a step for sapiensid-small on 2 CPU cores); the same update up to float rounding (~5e-7 after 25 steps).
    fused: bool = False


@dataclass
class ScheduleConfig:
    max_steps: int = 1000
    warmup_steps: int = 0
    decay: str = "cosine"
    min_lr_ratio: float = 0.0
    # Training seconds (resumed segments included) after which the run ends as if finished: checkpoint and
    # final model at that step, the record saying so. For a machine lent for a fixed time; the learning-rate
    # schedule still follows max_steps, so size max_steps to end inside it.
    max_time_s: float | None = None


@dataclass
class MaskingConfig:
    """Masked recognition training; see docs/training.md for the exact rule.

    mode "none": every token (mask ratio 0); "fixed": `mask_ratio` every step; "variable": the kept-token
    count is drawn per optimizer step from an exponential distribution on
    [min_kept_fraction, max_kept_fraction] * T with mean `mean_kept_fraction` * T, the per-process batch
    size becomes batch_size * n_ref / n_kept (n_ref = kept count at `reference_mask_ratio`), and the
    learning rate is scaled by (batch / batch_size) ** p with p from `lr_scaling`.
    """

    mode: str = "variable"
    mask_ratio: float | None = None  # fixed mode; None = the model config's mask_ratio
    min_kept_fraction: float = 0.1
    max_kept_fraction: float = 1.0
    mean_kept_fraction: float | None = None  # None = 1 - reference_mask_ratio
    reference_mask_ratio: float | None = None  # None = the model config's mask_ratio
    lr_scaling: str = "sqrt"
    min_batch_size: int = 2
    max_batch_size: int | None = None  # None = 4 * batch_size


@dataclass
class DistillConfig:
    """Distillation of a face-recognition teacher into the model's face path (training/distillation.py).

    `teacher` null turns it off. The teacher's embedding of every training photo is computed once into
    `teacher_cache`; photos where it finds no face get no teacher term. Unlabelled face photos
    (`unlabelled_manifest`: a CSV / Parquet with a `path` column, no identities) add `unlabelled_batch_size`
    photos to every step, with their keypoints in `unlabelled_keypoint_cache` and their teacher targets in
    `unlabelled_teacher_cache`. Two terms, each on every photo with a target: `cosine_weight` x (1 - cosine
    of the projected embedding and the teacher's), and `relation_weight` x (1 - the correlation of the
    photos' pair similarities under the model and under the teacher: the model's own embeddings, so the
    geometry of the space the tools score in is taught directly).
    """

    teacher: str | None = None  # "dlib_resnet_v1" (pip install "sapiensid-hf[distill]") or null = off
    teacher_cache: str | None = None  # folder: the teacher's targets for the training dataset's rows
    teacher_workers: int | None = None  # processes computing a teacher cache; None = one per core (max 8)
    unlabelled_manifest: str | None = None
    unlabelled_keypoint_cache: str | None = None
    unlabelled_teacher_cache: str | None = None
    unlabelled_image_cache: str | None = None  # as data.image_cache, for the unlabelled photos
    unlabelled_batch_size: int = 32  # per process and step
    cosine_weight: float = 1.0
    relation_weight: float = 1.0


# The augmentation section is the augmentation itself: its fields are the settings.
AugmentationConfig = TrainingAugmentation


@dataclass
class ValidationConfig:
    """Periodic rank-1 / mAP with sapiensid_hf.evaluation.

    source "holdout": `holdout_identities` identities are taken out of training, each one's first image
    is a query and the rest its gallery; "roles": rows with `query_role` / `gallery_role`; "train":
    leave-one-out over at most `max_images` training images (how well the model fits).
    """

    source: str = "none"
    every_steps: int = 0  # 0 = only at the end
    at_start: bool = False  # also before the first step (the untrained baseline)
    holdout_identities: int = 0
    query_role: str = "query"
    gallery_role: str = "gallery"
    protocol: str = "ignore_camera"
    max_images: int = 2000
    batch_size: int = 32


@dataclass
class LoggingConfig:
    output_dir: str = "outputs/sapiensid"
    log_every_steps: int = 10
    save_every_steps: int = 500  # 0 = no intermediate checkpoints
    keep_last_checkpoints: int = 3
    tensorboard: bool = True
    progress_bar: bool = True


@dataclass
class TrainingConfig:
    seed: int = 0
    batch_size: int = 32  # per process, at the reference kept-token count
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"
    max_grad_norm: float | None = 5.0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        config = _build(cls, values, "")
        config.validate()
        return config

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TrainingConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {path} is not valid YAML / JSON: {error}") from error
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level, got {type(values).__name__}")
        try:
            return cls.from_dict(values)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None

    def with_overrides(self, overrides: list[str]) -> TrainingConfig:
        """A copy with `section.field=value` overrides applied (values parsed as YAML)."""
        values = self.to_dict()
        for override in overrides:
            name, separator, raw = override.partition("=")
            if not separator or not name.strip():
                raise ConfigError(f"override {override!r} must look like section.field=value")
            target = values
            *parents, leaf = name.strip().split(".")
            for parent in parents:
                if not isinstance(target.get(parent), dict):
                    raise ConfigError(f"override {override!r}: {parent!r} is not a config section")
                target = target[parent]
            target[leaf] = yaml.safe_load(raw)
        return TrainingConfig.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")

    def validate(self) -> None:
        _choice("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        _choice("model.preset", self.model.preset, MODEL_PRESETS)
        _choice("masking.mode", self.masking.mode, MASKING_MODES)
        _choice("masking.lr_scaling", self.masking.lr_scaling, LR_SCALING_RULES)
        _choice("schedule.decay", self.schedule.decay, DECAY_SCHEDULES)
        _choice("optimizer.name", self.optimizer.name, OPTIMIZERS)
        _choice("validation.source", self.validation.source, VALIDATION_SOURCES)
        _positive("batch_size", self.batch_size)
        _positive("gradient_accumulation_steps", self.gradient_accumulation_steps)
        _positive("schedule.max_steps", self.schedule.max_steps)
        if self.schedule.max_time_s is not None and not self.schedule.max_time_s > 0:
            raise ConfigError(f"schedule.max_time_s must be > 0 seconds (or null = no limit), got {self.schedule.max_time_s}")
        _positive("data.detector_batch_size", self.data.detector_batch_size)
        if self.data.detector_workers is not None and self.data.detector_workers < 0:
            raise ConfigError(f"data.detector_workers must be 0 or more (or null = auto), got {self.data.detector_workers}")
        _positive("data.images_per_identity", self.data.images_per_identity)
        _positive("validation.batch_size", self.validation.batch_size)
        _positive("logging.log_every_steps", self.logging.log_every_steps)
        if self.batch_size < 2:
            raise ConfigError("batch_size must be at least 2 (the embedding head has BatchNorm layers)")
        if (self.data.dataset_path is None) == (self.data.loader is None):
            raise ConfigError("set exactly one of data.dataset_path (a saved datasets folder) and data.loader")
        if self.data.loader is not None and self.data.root is None:
            raise ConfigError(f"data.loader {self.data.loader!r} needs data.root (the dataset folder)")
        if self.head.margin_warmup_steps < 0:
            raise ConfigError(f"head.margin_warmup_steps must be >= 0, got {self.head.margin_warmup_steps}")
        if self.head.triplet_weight < 0 or self.head.triplet_margin < 0:
            raise ConfigError(
                f"head.triplet_weight and head.triplet_margin must be >= 0, got {self.head.triplet_weight}, {self.head.triplet_margin}"
            )
        if not 0 < self.head.sample_rate <= 1:
            raise ConfigError(f"head.sample_rate must be in (0, 1], got {self.head.sample_rate}")
        if not isinstance(self.optimizer.fused, bool):
            raise ConfigError(f"optimizer.fused must be true or false, got {self.optimizer.fused!r}")
        if len(self.optimizer.betas) != 2:
            raise ConfigError(f"optimizer.betas must hold two numbers, got {self.optimizer.betas}")
        masking = self.masking
        if masking.mask_ratio is not None and not 0 <= masking.mask_ratio < 1:
            raise ConfigError(f"masking.mask_ratio must be in [0, 1), got {masking.mask_ratio}")
        if not 0 < masking.min_kept_fraction <= masking.max_kept_fraction <= 1:
            raise ConfigError(
                "masking needs 0 < min_kept_fraction <= max_kept_fraction <= 1, got "
                f"{masking.min_kept_fraction} and {masking.max_kept_fraction}"
            )
        if masking.min_batch_size < 2:
            raise ConfigError("masking.min_batch_size must be at least 2 (BatchNorm in the embedding head)")
        if self.validation.source == "holdout" and self.validation.holdout_identities < 1:
            raise ConfigError("validation.source 'holdout' needs validation.holdout_identities >= 1")
        if self.logging.save_every_steps < 0 or self.validation.every_steps < 0:
            raise ConfigError("logging.save_every_steps and validation.every_steps must be >= 0")
        self._validate_distill()
        self._validate_augmentation()

    def _validate_augmentation(self) -> None:
        augmentation = self.augmentation
        for name in ("flip_prob", "grayscale_prob", "reframe_prob", "reframe_flat_prob", "random_erasing_prob"):
            if not 0.0 <= getattr(augmentation, name) <= 1.0:
                raise ConfigError(f"augmentation.{name} must lie in [0, 1], got {getattr(augmentation, name)}")
        if not 0.0 < augmentation.random_erasing_min_area <= augmentation.random_erasing_max_area < 1.0:
            raise ConfigError(
                "augmentation needs 0 < random_erasing_min_area <= random_erasing_max_area < 1, got "
                f"{augmentation.random_erasing_min_area} and {augmentation.random_erasing_max_area}"
            )
        if not 0.0 < augmentation.random_erasing_min_aspect <= 1.0:
            raise ConfigError(f"augmentation.random_erasing_min_aspect must lie in (0, 1], got {augmentation.random_erasing_min_aspect}")
        if not 0.0 <= augmentation.reframe_scale < 1.0:
            raise ConfigError(f"augmentation.reframe_scale must lie in [0, 1), got {augmentation.reframe_scale}")
        if not 0.0 <= augmentation.reframe_shift < 0.5:
            raise ConfigError(f"augmentation.reframe_shift must lie in [0, 0.5), got {augmentation.reframe_shift}")

    def _validate_distill(self) -> None:
        distill = self.distill
        if distill.teacher is None:
            return
        _choice("distill.teacher", distill.teacher, TEACHERS)
        if distill.teacher_cache is None:
            raise ConfigError("distill.teacher needs distill.teacher_cache (a folder for the teacher's targets)")
        if distill.unlabelled_manifest is not None and None in (
            distill.unlabelled_keypoint_cache, distill.unlabelled_teacher_cache
        ):
            raise ConfigError(
                "distill.unlabelled_manifest needs distill.unlabelled_keypoint_cache and distill.unlabelled_teacher_cache"
            )
        _positive("distill.unlabelled_batch_size", distill.unlabelled_batch_size)
        if distill.unlabelled_batch_size < 2:
            raise ConfigError("distill.unlabelled_batch_size must be at least 2 (BatchNorm in the embedding head)")
        if distill.cosine_weight < 0 or distill.relation_weight < 0:
            raise ConfigError(
                f"distill.cosine_weight and distill.relation_weight must be >= 0, got {distill.cosine_weight}, {distill.relation_weight}"
            )
        if distill.teacher_workers is not None and distill.teacher_workers < 0:
            raise ConfigError(f"distill.teacher_workers must be 0 or more (or null = auto), got {distill.teacher_workers}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value}")


def _build(cls: type, values: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "the config"
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {item.name: item for item in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(prefix + key for key in unknown)}; {where} accepts {', '.join(fields)}")
    arguments = {}
    for name, value in values.items():
        arguments[name] = _coerce(value, hints[name], prefix + name)
    return cls(**arguments)


def _coerce(value: Any, hint: Any, name: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, name + ".")
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (option for option in options if option is not type(None)):
            try:
                return _coerce(value, option, name)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if errors else f"{name} cannot be None")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{name} must be a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_coerce(entry, item, f"{name}[{index}]") for index, entry in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if hint is float:
        # YAML 1.1 reads "1e-3" (no dot) as a string; accept it as the number it spells.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name} must be a string, got {value!r}")
    raise ConfigError(f"{name}: unsupported field type {hint!r}")


__all__ = [
    "AugmentationConfig",
    "ConfigError",
    "DataConfig",
    "DistillConfig",
    "HeadConfig",
    "LoggingConfig",
    "MaskingConfig",
    "ModelConfig",
    "OptimizerConfig",
    "ScheduleConfig",
    "TrainingConfig",
    "ValidationConfig",
]
