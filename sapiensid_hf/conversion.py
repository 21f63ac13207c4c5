"""Convert an official SapiensID checkpoint (mk-minchul/sapiensid) into a hub-ready SapiensIDModel folder.

The authors distribute the state dict of their ``SapiensModel`` (``model.pt``: keys ``net.*``).
Every tensor is mapped by an explicit rule, every shape is checked against this model, and the
conversion is refused, with the full list, when any key is left over or missing. The model
configuration is read from the tensor shapes wherever they determine it.

    sapiensid convert-official checkpoints/sapiensid_wb4m/model.pt --out sapiensid-wb4m
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from .modeling import SapiensIDConfig, SapiensIDModel
from .modeling.keypoint_rpe import num_buckets
from .modeling.retina_patch import sincos_2d_position_table
from .official_model_yaml import (
    MODEL_YAML,
    OfficialYamlError,
    apply_official_model_yaml,
    official_kprpe_ratio,
    read_official_model_yaml,
)

logger = logging.getLogger(__name__)

# The official SapiensModel hardcodes 16 heads (face_vit_base); the qkv shapes cannot tell.
OFFICIAL_NUM_HEADS = 16
POSITION_TABLE_TOLERANCE = 1e-5
DEFAULT_KPRPE_RATIO = 1.9  # the official value; model.yaml's rpe_config.ratio overrides it
STATE_DICT_CONTAINERS = ("state_dict", "model_state_dict", "model")

# Official name (without the "net." prefix) -> name in SapiensIDModel. Tensors copied unchanged.
KEY_RULES: tuple[tuple[str, str], ...] = (
    (r"backbone\.blocks\.(\d+)\.norm([12])\.(weight|bias)", r"layers.\1.norm\2.\3"),
    (r"backbone\.blocks\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)", r"layers.\1.attention.\2.\3"),
    (r"backbone\.blocks\.(\d+)\.mlp\.(fc[12])\.(weight|bias)", r"layers.\1.mlp.\2.\3"),
    (r"backbone\.norm\.(weight|bias)", r"layernorm.\1"),
    (r"mask_token", "embeddings.mask_token"),
    (r"patch_embed\.patch_embed\.(weight|bias)", r"embeddings.patch_projection.\1"),
    (r"patch_embed\.level_embed", "embeddings.level_embed"),
    (r"rpe_module\.keypoint_linear\.linear1\.(weight|bias)", r"keypoint_rpe.keypoint_projection.\1"),
    (r"rpe_module\.keypoint_linear\.fc\.0\.(weight|bias)", r"keypoint_rpe.fc1.\1"),
    (r"rpe_module\.keypoint_linear\.fc\.2\.(weight|bias)", r"keypoint_rpe.fc2.\1"),
    (r"head\.query_pos_emb", "head.query_embed"),
    (r"head\.attn\.(q_proj|k_proj|v_proj|out_proj)\.weight", r"head.attention.\1.weight"),
    (r"head\.attn\.(lambda_[qk][12])", r"head.attention.\1"),
    (r"head\.flatten_feature\.0\.weight", "head.fc1.weight"),
    (r"head\.flatten_feature\.2\.weight", "head.fc2.weight"),
    (r"head\.flatten_feature\.1\.(weight|bias|running_mean|running_var|num_batches_tracked)", r"head.bn1.\1"),
    (r"head\.flatten_feature\.3\.(weight|bias|running_mean|running_var|num_batches_tracked)", r"head.bn2.\1"),
)
# Handled by code, not by a rename: the fixed position table is verified (its CLS row folds into the
# CLS token) and the head's per-dataset gates keep the row the official inference uses.
POS_EMBED, CLS_TOKEN, LEARNED_MASK = "backbone.pos_embed", "backbone.cls_token", "head.learned_mask"


class OfficialCheckpointError(ValueError):
    """The checkpoint is not an official SapiensID state dict this converter can map exactly."""


# --------------------------------------------------------------------------- loading


def load_official_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an official checkpoint file (or a folder holding ``model.pth`` / ``model.pt``) as a flat state dict.

    Accepts ``.safetensors`` and torch pickles (loaded with ``weights_only=True``), wrapped the
    ways the official ``BaseModel.load_state_dict_from_path`` unwraps them: under ``state_dict``,
    ``model_state_dict`` or ``model``, with ``module.`` (DataParallel) and ``net.`` prefixes or without.
    """
    path = Path(path)
    if path.is_dir():
        # model.pth is the layout of the official eval.py (beside model.yaml).
        candidates = [path / "model.pth", path / "model.pt", path / "model.safetensors"]
        found = [candidate for candidate in candidates if candidate.is_file()]
        if not found:
            raise FileNotFoundError(f"checkpoint folder {path} has no model.pth, model.pt or model.safetensors")
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        loaded = load_file(str(path))
    else:
        if path.stat().st_size == 0:
            raise OfficialCheckpointError(f"checkpoint {path} is empty (0 bytes)")
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise OfficialCheckpointError(_unreadable_checkpoint_reason(path, error)) from error
    return canonical_official_keys(unwrap_state_dict(loaded, str(path)))


def _unreadable_checkpoint_reason(path: Path, error: Exception) -> str:
    """Why torch.load(weights_only=True) failed, in words that never suggest unpickling code.

    torch's own message for a pickle holding objects advises weights_only=False; that runs arbitrary
    code from the file, so it is not repeated here.
    """
    text = str(error)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (
            f"checkpoint {path} holds Python objects besides tensors (it holds {found.group(1)}); this converter never "
            "unpickles code. Save just its state dict (torch.save(model.state_dict(), path)) where you trust the file, "
            "and convert that."
        )
    detail = re.search(r"WeightsUnpickler error: \s*(\S[^\n]*)", text)
    reason = detail.group(1) if detail else type(error).__name__
    return f"checkpoint {path} is not a torch or safetensors checkpoint (torch.load could not read it: {reason})"


def unwrap_state_dict(loaded: object, source: str) -> dict[str, torch.Tensor]:
    """Descend into the usual checkpoint containers until a name -> tensor mapping remains."""
    while isinstance(loaded, Mapping) and not all(isinstance(value, torch.Tensor) for value in loaded.values()):
        container = next((key for key in STATE_DICT_CONTAINERS if isinstance(loaded.get(key), Mapping)), None)
        if container is None:
            others = sorted(str(key) for key, value in loaded.items() if not isinstance(value, torch.Tensor))
            raise OfficialCheckpointError(
                f"{source}: not a state dict; entries that are not tensors: {others[:10]} "
                f"(looked for containers {list(STATE_DICT_CONTAINERS)})"
            )
        loaded = loaded[container]
    if not isinstance(loaded, Mapping) or not loaded:
        raise OfficialCheckpointError(f"{source}: expected a non-empty state dict, got {type(loaded).__name__}")
    return dict(loaded)


def canonical_official_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official names relative to MaskedRecognitionModel: no ``module.`` wrappers, no ``net.`` prefix."""
    canonical = {}
    for key, tensor in state_dict.items():
        name = key.replace(".module.", ".")
        while name.startswith(("module.", "net.")):
            name = name.split(".", 1)[1]
        if name in canonical:
            raise OfficialCheckpointError(f"two checkpoint keys map to the official name {name!r} (one is {key!r})")
        canonical[name] = tensor
    return canonical


# --------------------------------------------------------------------------- configuration


def _count_blocks(state_dict: Mapping[str, torch.Tensor]) -> int:
    indices = {int(match.group(1)) for key in state_dict if (match := re.match(r"backbone\.blocks\.(\d+)\.", key))}
    if indices != set(range(len(indices))):
        raise OfficialCheckpointError(f"transformer blocks are not numbered 0..n-1: {sorted(indices)}")
    return len(indices)


def _require(state_dict: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state_dict:
        raise OfficialCheckpointError(f"official key {key!r} (net.{key}) is missing: not an official SapiensID checkpoint")
    return state_dict[key]


def _exact_root(value: int, name: str) -> int:
    root = math.isqrt(value)
    if root * root != value:
        raise OfficialCheckpointError(f"{name} = {value} is not a square")
    return root


def infer_official_config(
    state_dict: Mapping[str, torch.Tensor],
    num_attention_heads: int | None = None,
    kprpe_ratio: float = 1.9,
    head_depth: int = 1,
) -> SapiensIDConfig:
    """SapiensIDConfig of an official state dict (canonical keys), read from its tensor shapes.

    Width, depth, patch size, input size, MLP width, KP-RPE sizes, head sizes and the optional parts
    come from shapes. The attention head count comes from the KP-RPE output layer (buckets x heads x
    layers); without KP-RPE it cannot be read and defaults to the official 16. `kprpe_ratio` and the
    head's `head_depth` (which only sets a constant) are not in the weights: the official values are
    the defaults.
    """
    cls_token = _require(state_dict, CLS_TOKEN)
    hidden_size = cls_token.shape[-1]
    patch_in = _require(state_dict, "patch_embed.patch_embed.weight").shape[1]
    patch_size = _exact_root(patch_in // 3, "patch_embed in_features / 3")
    grid_size = _exact_root(_require(state_dict, POS_EMBED).shape[1] - 1, "pos_embed length - 1")
    depth = _count_blocks(state_dict)
    if depth == 0:
        raise OfficialCheckpointError("no backbone.blocks.N.* tensors: not an official SapiensID checkpoint")
    use_kprpe = "rpe_module.keypoint_linear.fc.2.weight" in state_dict
    heads = _infer_num_heads(state_dict, depth, use_kprpe, num_attention_heads, kprpe_ratio)

    query_embed = _require(state_dict, "head.query_pos_emb")
    head_fc1 = _require(state_dict, "head.flatten_feature.0.weight")
    num_keypoints = 19
    if query_embed.shape[1] % num_keypoints:
        raise OfficialCheckpointError(f"head.query_pos_emb has {query_embed.shape[1]} queries, not a multiple of 19")
    kprpe_sizes = {}
    if use_kprpe:
        kprpe_sizes = {
            "kprpe_keypoint_dim": state_dict["rpe_module.keypoint_linear.linear1.weight"].shape[0],
            "kprpe_mlp_dim": state_dict["rpe_module.keypoint_linear.fc.0.weight"].shape[0],
            "kprpe_ratio": kprpe_ratio,
        }
    return SapiensIDConfig(
        image_size=grid_size * patch_size,
        patch_size=patch_size,
        hidden_size=hidden_size,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        intermediate_size=_require(state_dict, "backbone.blocks.0.mlp.fc1.weight").shape[0],
        qkv_bias="backbone.blocks.0.attn.qkv.bias" in state_dict,
        use_level_embed="patch_embed.level_embed" in state_dict,
        use_mask_token="mask_token" in state_dict,
        use_kprpe=use_kprpe,
        head_queries_per_keypoint=query_embed.shape[1] // num_keypoints,
        head_num_heads=hidden_size // (2 * _require(state_dict, "head.attn.lambda_q1").shape[0]),
        head_depth=head_depth,
        output_dim=head_fc1.shape[0],
        **kprpe_sizes,
    )


def _infer_num_heads(state_dict, depth: int, use_kprpe: bool, requested: int | None, kprpe_ratio: float) -> int:
    if not use_kprpe:
        return requested or OFFICIAL_NUM_HEADS
    outputs = state_dict["rpe_module.keypoint_linear.fc.2.weight"].shape[0]
    buckets = num_buckets(kprpe_ratio)
    heads, remainder = divmod(outputs, buckets * depth)
    if remainder:
        raise OfficialCheckpointError(
            f"KP-RPE output size {outputs} is not buckets ({buckets}, ratio {kprpe_ratio}) x heads x layers ({depth})"
        )
    if requested is not None and requested != heads:
        raise OfficialCheckpointError(f"--num-heads {requested} contradicts the KP-RPE output layer, which has {heads} heads")
    return heads


# --------------------------------------------------------------------------- mapping


def rename_official_key(name: str) -> str | None:
    """SapiensIDModel name of an official (canonical) tensor name, or None when no rule covers it."""
    for pattern, replacement in KEY_RULES:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, replacement, name)
    return None


def expected_shapes(config: SapiensIDConfig) -> dict[str, torch.Size]:
    """Shapes of every SapiensIDModel state-dict entry, without allocating the weights."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = SapiensIDModel(config)
    return {name: tensor.shape for name, tensor in model.state_dict().items()}


def convert_official_state_dict(
    state_dict: Mapping[str, torch.Tensor], config: SapiensIDConfig
) -> dict[str, torch.Tensor]:
    """Map an official state dict (any of the accepted key prefixes) onto SapiensIDModel(config).

    Raises OfficialCheckpointError listing every unmapped key, missing key and shape mismatch.
    """
    official = canonical_official_keys(state_dict)
    converted: dict[str, torch.Tensor] = {}
    unmapped = []
    for name, tensor in official.items():
        if name in (POS_EMBED, CLS_TOKEN, LEARNED_MASK):
            continue
        target = rename_official_key(name)
        if target is None:
            unmapped.append(name)
        else:
            converted[target] = tensor
    if CLS_TOKEN in official and POS_EMBED in official:
        position_table = _checked_position_table(official[POS_EMBED], config)
        # The official model adds the table's CLS row to the CLS token; fold it in (it is zero when trained
        # as released, but folding keeps the sum exact either way).
        converted["embeddings.cls_token"] = official[CLS_TOKEN] + position_table[:, :1]
    if LEARNED_MASK in official:
        # One gate row per training dataset; official inference always uses row 0.
        converted["head.part_gate"] = official[LEARNED_MASK][:1]

    expected = expected_shapes(config)
    missing = sorted(set(expected) - set(converted))
    if POS_EMBED not in official:
        missing.insert(0, f"(official) net.{POS_EMBED}")
    extra = sorted(set(converted) - set(expected))
    wrong = sorted(
        f"{name}: checkpoint {tuple(converted[name].shape)} vs model {tuple(expected[name])}"
        for name in set(converted) & set(expected)
        if converted[name].shape != expected[name]
    )
    problems = []
    if unmapped:
        problems.append("unmapped official keys (no rule): " + ", ".join(f"net.{name}" for name in sorted(unmapped)))
    if extra:
        problems.append("keys this model configuration has no place for: " + ", ".join(extra))
    if missing:
        problems.append("missing keys: " + ", ".join(missing))
    if wrong:
        problems.append("shape mismatches: " + "; ".join(wrong))
    if problems:
        raise OfficialCheckpointError("refusing to convert the official checkpoint:\n  - " + "\n  - ".join(problems))
    # Float32 whatever the checkpoint stored: a float16 / bfloat16 file must not make the model compute in half
    # precision on a CPU.
    return {name: (tensor.float() if tensor.is_floating_point() else tensor).contiguous() for name, tensor in converted.items()}


def _checked_position_table(pos_embed: torch.Tensor, config: SapiensIDConfig) -> torch.Tensor:
    """The official position table must equal this model's fixed sin-cos table (the model does not store it)."""
    expected_shape = (1, config.tokens_per_level + 1, config.hidden_size)
    if tuple(pos_embed.shape) != expected_shape:
        raise OfficialCheckpointError(f"net.{POS_EMBED} has shape {tuple(pos_embed.shape)}, expected {expected_shape}")
    table = sincos_2d_position_table(config.grid_size, config.hidden_size)
    difference = (pos_embed[0, 1:].float() - table).abs().max().item()
    # A half-precision checkpoint stores the table rounded: allow that rounding (values lie in [-1, 1]).
    tolerance = max(POSITION_TABLE_TOLERANCE, torch.finfo(pos_embed.dtype).eps) if pos_embed.is_floating_point() else POSITION_TABLE_TOLERANCE
    if difference > tolerance:
        raise OfficialCheckpointError(
            f"net.{POS_EMBED} differs from the fixed 2-D sin-cos table by up to {difference:.3g}: the checkpoint was "
            "trained with a learned position table (pos_embed_type 'learned'), which this model does not support"
        )
    return pos_embed


# --------------------------------------------------------------------------- writing


def load_converted_model(state_dict: Mapping[str, torch.Tensor], config: SapiensIDConfig) -> SapiensIDModel:
    """SapiensIDModel holding the converted tensors (no throwaway random initialisation of the weights)."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = SapiensIDModel(config)
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model.eval()


def save_image_processor(config: SapiensIDConfig, out_dir: Path) -> bool:
    """Write the matching image processor config (and its code) beside the model, when processing/ has one."""
    if importlib.util.find_spec(f"{__package__}.processing.image_processing_sapiensid") is None:
        return False
    from .processing.image_processing_sapiensid import SapiensIDImageProcessor

    # Flip, as the official evaluators and every tool embed (`embedding_flip=False` in a call gives the single
    # pass); a small person cut from a wider photo first, as the tools do (`frame_small_people=False` not).
    SapiensIDImageProcessor.from_model_config(config, embedding_flip=True, frame_small_people=True).save_pretrained(out_dir)
    return True


def convert_official_checkpoint(
    ckpt_path: str | Path,
    out_dir: str | Path,
    push_to_hub: str | None = None,
    num_attention_heads: int | None = None,
    kprpe_ratio: float = DEFAULT_KPRPE_RATIO,
    private: bool = False,
    overwrite: bool = False,
) -> SapiensIDModel:
    """Convert an official checkpoint into a folder that ``AutoModel.from_pretrained`` loads.

    A ``model.yaml`` beside the weights (the official eval.py layout) is read: its input normalisation,
    padding, token and augmentation settings are applied, and a field that contradicts the weights or that
    this model does not implement is refused by name (sapiensid_hf.official_model_yaml).

    The folder holds config.json, model.safetensors, the flat model code (trust_remote_code), the
    image processor config when available, and a model card. With `push_to_hub` (a repo id) the
    folder's files written by this call (nothing else in it) are uploaded with huggingface_hub. `out_dir`
    must not be the checkpoint's own folder, and must be empty or new unless `overwrite`. Returns the
    converted model (eval mode).
    """
    from .model_card import render_model_card

    ckpt_path, out_dir = Path(ckpt_path), Path(out_dir)
    source_dir = ckpt_path if ckpt_path.is_dir() else ckpt_path.parent
    if out_dir.resolve() == source_dir.resolve():
        raise OfficialCheckpointError(f"--out {out_dir} is the checkpoint's own folder: choose another output folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise OfficialCheckpointError(
            f"--out {out_dir} is not empty ({len(list(out_dir.iterdir()))} entries); choose a new folder, or pass "
            "--overwrite to write the converted files into it"
        )
    official = load_official_state_dict(ckpt_path)
    settings_path = source_dir / MODEL_YAML
    try:
        settings = read_official_model_yaml(settings_path) if settings_path.is_file() else {}
    except OfficialYamlError as error:
        raise OfficialCheckpointError(str(error)) from error
    yaml_ratio = official_kprpe_ratio(settings)
    if yaml_ratio is not None and kprpe_ratio != yaml_ratio and kprpe_ratio != DEFAULT_KPRPE_RATIO:
        raise OfficialCheckpointError(f"--kprpe-ratio {kprpe_ratio} contradicts {settings_path}: rpe_config.ratio = {yaml_ratio}")
    ratio = yaml_ratio if yaml_ratio is not None else kprpe_ratio
    config = infer_official_config(official, num_attention_heads=num_attention_heads, kprpe_ratio=ratio)
    if settings:
        try:
            applied = apply_official_model_yaml(config, settings, str(settings_path))
            config = SapiensIDConfig(**config.to_dict())  # re-checks the applied values
        except (OfficialYamlError, ValueError) as error:
            raise OfficialCheckpointError(str(error)) from error
        logger.info("applied from %s: %s", settings_path, ", ".join(applied))
    model = load_converted_model(convert_official_state_dict(official, config), config)
    # The record that makes the tools treat the folder as trained weights (see inference.is_trained).
    model.config.training = {"converted_from": "official SapiensID checkpoint", "checkpoint": ckpt_path.name}
    out_dir.mkdir(parents=True, exist_ok=True)
    before = {path: path.stat().st_mtime_ns for path in out_dir.rglob("*") if path.is_file()}
    model.save_pretrained(out_dir)
    has_processor = save_image_processor(config, out_dir)
    card = render_model_card(
        config,
        source=ckpt_path.name,
        repo_id=push_to_hub,
        heads_inferred=config.use_kprpe,
        has_processor=has_processor,
    )
    (out_dir / "README.md").write_text(card)
    if push_to_hub:
        from huggingface_hub import HfApi

        # Only what this conversion wrote: a file the user keeps in the folder is never published.
        written = sorted(
            path.relative_to(out_dir).as_posix()
            for path in out_dir.rglob("*")
            if path.is_file() and before.get(path) != path.stat().st_mtime_ns and "__pycache__" not in path.parts
        )
        api = HfApi()
        api.create_repo(push_to_hub, private=private, exist_ok=True)
        api.upload_folder(
            folder_path=str(out_dir), repo_id=push_to_hub, allow_patterns=written,
            commit_message="Convert official SapiensID weights",
        )  # fmt: skip
    return model


def main(argv: list[str] | None = None) -> int:
    """`sapiensid convert-official CKPT --out DIR [--push-to-hub REPO]`."""
    parser = argparse.ArgumentParser(
        prog="sapiensid convert-official",
        description="Convert the authors' SapiensID checkpoint (model.pt of mk-minchul/sapiensid) into a "
        "Hugging Face folder: config.json, model.safetensors, the model code, the processor config and a "
        "model card. Every tensor is mapped and shape-checked; unknown or missing tensors stop the conversion.",
        epilog="example: sapiensid convert-official checkpoints/sapiensid_wb4m/model.pt --out sapiensid-wb4m",
    )
    parser.add_argument(
        "checkpoint", type=Path,
        help="official model.pth / model.pt / .safetensors, or the folder holding it (and model.yaml, as eval.py reads)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--push-to-hub", metavar="REPO", help="also upload the folder to this hub repo (needs a login)")
    parser.add_argument("--private", action="store_true", help="create the hub repo as private")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --out folder")
    parser.add_argument(
        "--num-heads",
        type=int,
        help=f"attention heads; read from the KP-RPE layer when present, else {OFFICIAL_NUM_HEADS} (the official value)",
    )
    parser.add_argument(
        "--kprpe-ratio", type=float, default=DEFAULT_KPRPE_RATIO,
        help="KP-RPE bucket ratio of the checkpoint (official 1.9; model.yaml's rpe_config.ratio when present)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        model = convert_official_checkpoint(
            args.checkpoint, args.out, push_to_hub=args.push_to_hub, num_attention_heads=args.num_heads,
            kprpe_ratio=args.kprpe_ratio, private=args.private, overwrite=args.overwrite,
        )
    except (OfficialCheckpointError, FileNotFoundError) as error:
        parser.exit(1, f"sapiensid convert-official: error: {error}\n")  # a bad input, not a bad command line
    config = model.config
    print(
        f"converted {args.checkpoint} -> {args.out}: width {config.hidden_size}, {config.num_hidden_layers} layers, "
        f"{config.num_attention_heads} heads, input {config.image_size}, embedding {config.output_dim}"
    )
    if args.push_to_hub:
        print(f"uploaded to https://huggingface.co/{args.push_to_hub}")
    return 0


__all__ = [
    "OfficialCheckpointError",
    "convert_official_checkpoint",
    "convert_official_state_dict",
    "infer_official_config",
    "load_official_state_dict",
    "main",
]
