"""The official `eval.py` folder layout: `model.pth` beside `model.yaml` (an OmegaConf dump of the model
config, e.g. tasks/sapiensID/src/models/sapiens_id/configs/base.yaml). The weights fix the shapes; the
YAML holds what the shapes cannot tell: input normalisation, colour space, padding, the token rules and
the training-time augmentation. Every field that changes behaviour is applied or refused by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .modeling import SapiensIDConfig

MODEL_YAML = "model.yaml"
_REFERENCE = re.compile(r"^\$\{(?:models\.)?([\w.]+)\}$")

# kp_preprocessor field -> SapiensIDConfig field (training-time keypoint / box augmentation).
KEYPOINT_AUGMENTATION = {
    "drop_idv_ldmk_prob": "keypoint_drop_prob",
    "drop_part_ldmk_prob": "part_drop_prob",
    "bbox_aug_shift_range": "box_shift_range",
    "bbox_aug_scale_range": "box_scale_range",
    "bbox_drop_prob": "box_drop_prob",
}


class OfficialYamlError(ValueError):
    """A model.yaml field this model cannot honour, named with its value."""


def read_official_model_yaml(path: str | Path) -> dict[str, Any]:
    """The YAML as a dict, with `${models.a.b}` references to other fields of the file resolved."""
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise OfficialYamlError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(loaded, dict):
        raise OfficialYamlError(f"{path}: expected a mapping of model settings, got {type(loaded).__name__}")
    return _resolve(loaded, loaded)


def _resolve(node: Any, root: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        return {key: _resolve(value, root) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(value, root) for value in node]
    if isinstance(node, str) and (match := _REFERENCE.match(node)):
        target: Any = root
        for part in match.group(1).split("."):
            if not isinstance(target, Mapping) or part not in target:
                return node  # points outside the model config (e.g. ${dataset.root_dirs}): not a model setting
            target = target[part]
        return _resolve(target, root)
    return node


def official_kprpe_ratio(settings: Mapping[str, Any]) -> float | None:
    """`rpe_config.ratio`, needed before the head count can be read from the KP-RPE layer."""
    ratio = (settings.get("rpe_config") or {}).get("ratio")
    return None if ratio is None else float(ratio)


def apply_official_model_yaml(config: SapiensIDConfig, settings: Mapping[str, Any], source: str = MODEL_YAML) -> list[str]:
    """Apply `settings` to `config` in place; the fields applied. Refuses (OfficialYamlError) any field that
    contradicts the weights or that this model does not implement."""
    applied: list[str] = []

    def refuse(field: str, value: Any, why: str) -> None:
        raise OfficialYamlError(f"{source}: {field} = {value!r} {why}")

    def expect(field: str, value: Any, wanted: Any, why: str) -> None:
        if value is not None and value != wanted:
            refuse(field, value, f"{why} ({wanted!r})")

    def apply(field: str, value: Any, attribute: str, convert=lambda v: v) -> None:
        if value is not None:
            setattr(config, attribute, convert(value))
            applied.append(field)

    color_space = settings.get("color_space")
    if color_space is not None and str(color_space).upper() != "RGB":
        refuse("color_space", color_space, "is not supported: the processor feeds RGB pixels")
    for field, attribute in (("rgb_mean", "image_mean"), ("rgb_std", "image_std")):
        value = settings.get(field)
        if value is not None and (not isinstance(value, list) or len(value) != 3):
            refuse(field, value, "must list 3 numbers (R, G, B)")
        apply(field, value, attribute, lambda v: [float(x) for x in v])
    size = settings.get("input_size")
    if size is not None:
        if not isinstance(size, list) or len(size) != 2 or size[0] != size[1]:
            refuse("input_size", size, "must be square [S, S]")
        expect("input_size", size[0], config.image_size, "does not match the checkpoint's position table and patches")
    apply("square_pad", settings.get("square_pad"), "square_pad", bool)
    apply("mask_ratio", settings.get("mask_ratio"), "mask_ratio", float)
    expect("output_dim", settings.get("output_dim"), config.output_dim, "does not match the head's weights")

    backbone = settings.get("backbone") or {}
    expect("backbone.pos_embed_type", backbone.get("pos_embed_type"), "sincos_2d", "is not supported: this model uses")
    expect("backbone.dynamic_patch_base_size", backbone.get("dynamic_patch_base_size"), config.patch_size,
           "does not match the patch embedding weights")  # fmt: skip
    expect("backbone.emb_dim", backbone.get("emb_dim"), config.hidden_size, "does not match the weights' width")
    expect("backbone.use_mask_token", backbone.get("use_mask_token"), config.use_mask_token,
           "does not match the weights (mask token present)")  # fmt: skip

    patches = settings.get("patch_embed_config") or {}
    apply("patch_embed_config.use_fg_mask", patches.get("use_fg_mask"), "use_foreground_mask", bool)
    method = patches.get("subset_method")
    if method is not None and method != "random" and not str(method).startswith("face_first_"):
        refuse("patch_embed_config.subset_method", method, "is not supported ('random' or 'face_first_<p>')")
    apply("patch_embed_config.subset_method", method, "token_subset_method", str)

    rpe = settings.get("rpe_config") or {}
    expect("rpe_config.num_keypoints", rpe.get("num_keypoints"), 19, "is not supported: the kp19 layout has")
    apply("rpe_config.ratio", rpe.get("ratio"), "kprpe_ratio", float)

    head = settings.get("head") or {}
    expect("head.type", head.get("type"), "semantic_attention_head", "is not supported: this model's head is")
    expect("head.n_multiply_per_query", head.get("n_multiply_per_query"), config.head_queries_per_keypoint,
           "does not match the head's query table")  # fmt: skip
    expect("head.num_heads", head.get("num_heads"), config.head_num_heads, "does not match the head's weights")
    apply("head.depth", head.get("depth"), "head_depth", int)

    keypoints = settings.get("kp_preprocessor") or {}
    expect("kp_preprocessor.name", keypoints.get("name"), "kp19", "is not supported: the keypoint layout is")
    for field, attribute in KEYPOINT_AUGMENTATION.items():
        apply(f"kp_preprocessor.{field}", keypoints.get(field), attribute, float)
    return applied


__all__ = [
    "MODEL_YAML",
    "OfficialYamlError",
    "apply_official_model_yaml",
    "official_kprpe_ratio",
    "read_official_model_yaml",
]
