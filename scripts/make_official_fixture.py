"""Build the official-parity test fixture (tests/fixtures/official_tiny) from the official SapiensID code.

The official weights cannot be downloaded here, so parity is proven on a reduced official network
with seeded random weights: this script imports the official model code from a local checkout at
run time (it contains none of it), assembles the network the way the official ``SapiensModel``
does but with small sizes, randomises every parameter, runs each fixture image alone, and saves
the state dict, the inputs and the embeddings. docs/conversion.md gives the exact recipe.

It needs a throwaway environment with the official code's own dependencies (torch, timm,
omegaconf, easydict, pandas, safetensors, pillow), NOT this package's venv:

    /work/venv-official/bin/python scripts/make_official_fixture.py --official-repo /work/official

The input stays at 384 x 384 with 32-pixel patches: the official ``make_dynamic_patch_v2``
resamples every ROI to a hardcoded 384 x 384 crop, so the official network fails at any other input
size. The fixture shrinks width, depth, heads and the head / KP-RPE sizes instead. ``--full-size``
builds the released architecture (1.6 GB) for a manual check of the converter at real dimensions.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "official_tiny"
DEFAULT_PEOPLE = REPO_ROOT.parent / "shared" / "data" / "people"
OFFICIAL_SRC = Path("tasks") / "sapiensID" / "src"
OFFICIAL_MODEL_DIR = OFFICIAL_SRC / "models" / "sapiens_id"
OFFICIAL_ALIGNER = OFFICIAL_SRC / "aligners" / "keypoint_predictor" / "__init__.py"

# The reduced network. input_size and patch size are the official ones (see the module docstring);
# kprpe_keypoint_dim / kprpe_mlp_dim replace the official hardcoded 32 / 512 of the KP-RPE MLP.
TINY_DIMS = {
    "input_size": 384,
    "dynamic_patch_base_size": 32,
    "emb_dim": 32,
    "depth": 2,
    "num_heads": 4,
    "mlp_ratio": 3,
    "output_dim": 64,
    "kprpe_keypoint_dim": 8,
    "kprpe_mlp_dim": 32,
}
# The released architecture (base.yaml, SapiensModel's 24 layers / 16 heads, the KP-RPE MLP's 32 / 512):
# --full-size builds it to check the converter at real dimensions (1.6 GB, not a committed fixture).
FULL_DIMS = {
    "input_size": 384,
    "dynamic_patch_base_size": 32,
    "emb_dim": 512,
    "depth": 24,
    "num_heads": 16,
    "mlp_ratio": 3,
    "output_dim": 4096,
    "kprpe_keypoint_dim": 32,
    "kprpe_mlp_dim": 512,
}

# Official 22-point layout: YOLO/COCO 17 body points, then the 5-point face detector's points.
OFFICIAL22 = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle", "face_eye_1", "face_eye_2", "face_nose", "face_mouth_1",
    "face_mouth_2",
)  # fmt: skip


@dataclass(frozen=True)
class Case:
    """One fixture image: a crop of a real photo (pixel coordinates) or a synthetic image."""

    name: str
    what: str
    photo: str | None = None
    crop: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 in the photo
    points: dict[str, tuple[float, float]] | None = None  # photo pixel coordinates; absent = missing
    synthetic_size: tuple[int, int] | None = None  # (width, height) of a synthetic image
    synthetic_missing_prob: float = 0.0


# Keypoints placed by hand on the photos. "left" is the point with the larger image x (the official
# aligner's left/right fix-up); the face detector's eye_1 / mouth_1 is the one with the smaller x.
CASES = (
    Case(
        name="full_body",
        what="full body with face, all 22 points (street_bus.jpg, man in the beige coat)",
        photo="street_bus.jpg",
        crop=(21, 380, 264, 907),
        points={
            "nose": (112, 447), "left_eye": (122, 432), "right_eye": (100, 432), "left_ear": (132, 440),
            "right_ear": (88, 440), "left_shoulder": (160, 500), "right_shoulder": (65, 500),
            "left_elbow": (170, 575), "right_elbow": (55, 600), "left_wrist": (150, 575),
            "right_wrist": (100, 580), "left_hip": (150, 690), "right_hip": (70, 690),
            "left_knee": (150, 790), "right_knee": (75, 790), "left_ankle": (170, 870),
            "right_ankle": (60, 870), "face_eye_1": (100, 432), "face_eye_2": (122, 432),
            "face_nose": (112, 447), "face_mouth_1": (104, 461), "face_mouth_2": (120, 461),
        },
    ),
    Case(
        name="face_only",
        what="face crop: face and ear points, no shoulders, so no upper-body box (face_a_2.jpg)",
        photo="face_a_2.jpg",
        crop=(510, 120, 1050, 750),
        points={
            "nose": (769, 500), "left_eye": (849, 392), "right_eye": (674, 392), "left_ear": (985, 500),
            "right_ear": (599, 500), "face_eye_1": (674, 392), "face_eye_2": (849, 392),
            "face_nose": (769, 500), "face_mouth_1": (706, 582), "face_mouth_2": (849, 576),
        },
    ),
    Case(
        name="body_no_face",
        what="upper body whose face points were not found: ears, shoulders, arms only (two_men.jpg, right man)",
        photo="two_men.jpg",
        crop=(725, 25, 1175, 720),
        points={
            "left_ear": (1066, 157), "right_ear": (920, 164), "left_shoulder": (1094, 290),
            "right_shoulder": (829, 276), "left_elbow": (1100, 470), "right_elbow": (790, 470),
            "right_wrist": (1030, 440),
        },
    ),
    Case(
        name="all_missing",
        what="no keypoint at all: only the full-image level (face_a_3.jpg, wide, padded vertically)",
        photo="face_a_3.jpg",
        crop=(0, 0, 2500, 1728),
        points={},
    ),
    Case(
        name="box_outside",
        what="face in the top-left corner: the padded face and body boxes reach past the image (two_men.jpg, left man)",
        photo="two_men.jpg",
        crop=(560, 290, 960, 720),
        points={
            "nose": (655, 342), "left_eye": (650, 315), "right_eye": (623, 315),
            "left_shoulder": (699, 429), "face_eye_1": (623, 315), "face_eye_2": (650, 315),
            "face_nose": (655, 342), "face_mouth_1": (612, 402), "face_mouth_2": (628, 396),
        },
    ),
    Case(
        name="synthetic_wide",
        what="synthetic smooth-noise image 400 x 240 (white bands above and below), 22 random points",
        synthetic_size=(400, 240),
    ),
    Case(
        name="synthetic_tall_sparse",
        what="synthetic smooth-noise image 200 x 400, random points with 40 % missing",
        synthetic_size=(200, 400),
        synthetic_missing_prob=0.4,
    ),
)


# --------------------------------------------------------------------------- official code import


def _placeholder_class(qualname: str) -> type:
    """A class whose attributes are further placeholders; instantiating it fails loudly."""

    class _Meta(type):
        def __getattr__(cls, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return _placeholder_class(f"{qualname}.{name}")

    def _refuse(self, *args, **kwargs):
        raise RuntimeError(f"{qualname} is an import stub: the fixture run must not need it")

    return _Meta(qualname, (), {"__init__": _refuse})


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _placeholder_class(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves stub modules for packages that are only imported, never used, by the network code."""

    def __init__(self, roots: set[str]):
        self.roots = roots

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _StubModule(spec.name)

    def exec_module(self, module):
        module.__version__ = "0.0.0"


def install_import_stubs() -> list[str]:
    """Stub the official code's transform / visualisation imports that are not installed.

    torchvision is imported by timm (data transforms) and by the official ``sapiens_id/__init__``
    (test transforms); cv2 and matplotlib by the official debug visualisation. The network's forward
    pass uses none of them, and a CPU torchvision matching torch 2.13 is not on the package index.
    """
    missing = {name for name in ("torchvision", "cv2", "matplotlib") if importlib.util.find_spec(name) is None}
    if missing:
        sys.meta_path.insert(0, _StubFinder(missing))
    return sorted(missing)


def import_official(official_repo: Path) -> types.SimpleNamespace:
    """Import the official network pieces from a checkout of mk-minchul/sapiensid."""
    if not (official_repo / OFFICIAL_MODEL_DIR).is_dir():
        raise SystemExit(f"--official-repo {official_repo}: no {OFFICIAL_MODEL_DIR} there; pass the checkout root")
    # Appended, not prepended: the official root holds a copy.py that would shadow the standard library.
    sys.path.append(str(official_repo))
    sys.path.append(str(official_repo / OFFICIAL_SRC))
    stubs = install_import_stubs()
    from models.sapiens_id.backbones.vit_face.vit import VisionTransformer
    from models.sapiens_id.heads import make_head
    from models.sapiens_id.kp_preproc import make_kp_preprocessor
    from models.sapiens_id.mrm import MaskedRecognitionModel
    from models.sapiens_id.patching import make_patch_embed
    from models.sapiens_id.preproc_backbone import (
        posemb_sincos_2d,
        preproc_cls_token,
        preproc_patch_emb,
        preproc_pos_emb,
    )
    from models.sapiens_id.rpe import make_rpe
    from models.sapiens_id.rpe.rpe_options import NonlinearMappingNetwork

    return types.SimpleNamespace(
        VisionTransformer=VisionTransformer,
        make_head=make_head,
        make_kp_preprocessor=make_kp_preprocessor,
        MaskedRecognitionModel=MaskedRecognitionModel,
        make_patch_embed=make_patch_embed,
        preproc_cls_token=preproc_cls_token,
        preproc_patch_emb=preproc_patch_emb,
        preproc_pos_emb=preproc_pos_emb,
        posemb_sincos_2d=posemb_sincos_2d,
        make_rpe=make_rpe,
        NonlinearMappingNetwork=NonlinearMappingNetwork,
        get_foreground_mask_by_whitespace=load_function(
            official_repo / OFFICIAL_ALIGNER, "get_foreground_mask_by_whitespace"
        ),
        stubs=stubs,
    )


def load_function(path: Path, name: str):
    """Load one top-level function from a source file without executing the rest of the file.

    The official aligner module imports YOLO, OpenPose and face-detector weights at import time;
    the whitespace foreground mask needs only torch.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == name]
    if len(nodes) != 1:
        raise SystemExit(f"{path}: expected one function {name!r}, found {len(nodes)}")
    namespace = {"torch": torch}
    exec(compile(ast.Module(body=nodes, type_ignores=[]), str(path), "exec"), namespace)
    return namespace[name]


def official_sources_digest(official_repo: Path) -> str:
    """sha256 over the official model sources and the aligner file, to detect a different checkout."""
    digest = hashlib.sha256()
    files = sorted((official_repo / OFFICIAL_MODEL_DIR).rglob("*.py")) + sorted(
        (official_repo / OFFICIAL_MODEL_DIR).rglob("*.yaml")
    )
    for path in [*files, official_repo / OFFICIAL_ALIGNER]:
        digest.update(str(path.relative_to(official_repo)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def official_commit(official_repo: Path, given: str | None) -> str:
    if given:
        return given
    try:
        out = subprocess.run(
            ["git", "-C", str(official_repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (pass --official-commit)"


# --------------------------------------------------------------------------- the reduced network


def official_config(official_repo: Path, dims: dict, level_embed: bool):
    """The official base.yaml with the reduced sizes, resolved like the official hydra config."""
    from omegaconf import OmegaConf

    base = OmegaConf.load(official_repo / OFFICIAL_MODEL_DIR / "configs" / "base.yaml")
    config = OmegaConf.create({"models": base, "dataset": {"root_dirs": ""}})
    models = config.models
    models.input_size = [dims["input_size"], dims["input_size"]]
    models.output_dim = dims["output_dim"]
    models.backbone.emb_dim = dims["emb_dim"]
    models.backbone.dynamic_patch_base_size = dims["dynamic_patch_base_size"]
    # base.yaml misspells this key, so the released model has no level embedding; the fixture
    # records both variants.
    models.patch_embed_config.level_emb = level_embed
    OmegaConf.resolve(config)
    return config.models


class OfficialNetwork(torch.nn.Module):
    """Holds the MaskedRecognitionModel as ``net``, so state-dict keys read ``net.*`` like SapiensModel's."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images, foreground_masks, keypoints22):
        return self.net(images, foreground_masks, keypoints22)


def build_official_network(official: types.SimpleNamespace, config, dims: dict) -> OfficialNetwork:
    """Assemble the network as SapiensModel.__init__ does, with the reduced depth and heads."""
    size = config.input_size[0]
    patches_per_side = size // config.backbone.dynamic_patch_base_size
    # Same arguments as the official make_backbone, except depth and heads (hardcoded 24 / 16 there).
    backbone = official.VisionTransformer(
        img_size=size,
        patch_size=patches_per_side,
        num_patches=patches_per_side**2,
        embed_dim=config.backbone.emb_dim,
        depth=dims["depth"],
        mlp_ratio=dims["mlp_ratio"],
        num_heads=dims["num_heads"],
        drop_path_rate=0.1,
        norm_layer="ln",
        mask_ratio=config.mask_ratio,
    )
    backbone = official.preproc_patch_emb(backbone, config.backbone.emb_dim, config.backbone.dynamic_patch_base_size)
    backbone = official.preproc_cls_token(backbone, config.backbone.emb_dim)
    backbone = official.preproc_pos_emb(
        backbone, config.backbone.pos_embed_type, config.backbone.dynamic_patch_base_size, config.input_size
    )
    rpe_module = official.make_rpe(config.rpe_config, dims["depth"], dims["num_heads"], config.backbone.emb_dim)
    # The official factory hardcodes the KP-RPE MLP at 32 / 512; the same class, with the chosen sizes.
    rpe_module.keypoint_linear = official.NonlinearMappingNetwork(
        input_dim=config.rpe_config.kp_dim,
        n_kps=config.rpe_config.num_keypoints,
        c1=dims["kprpe_keypoint_dim"],
        c2=rpe_module.num_buckets * dims["num_heads"] * dims["depth"],
        use_mlp=True,
        inner_mlp_dim=dims["kprpe_mlp_dim"],
    )
    net = official.MaskedRecognitionModel(
        backbone=backbone,
        kp_prprocessor=official.make_kp_preprocessor(config),
        patch_embed=official.make_patch_embed(config.patch_embed_config),
        head=official.make_head(config.head),
        rpe_module=rpe_module,
        config=config,
    )
    return OfficialNetwork(net).eval()


@torch.no_grad()
def randomise_parameters(model: torch.nn.Module, seed: int) -> None:
    """Give every parameter and BatchNorm statistic a seeded, non-trivial value.

    Zero-initialised tensors (the KP-RPE output layer, the head's learned mask, the level embedding)
    would hide mapping mistakes, so nothing keeps its initial value except the fixed sin-cos table.
    """
    generator = torch.Generator().manual_seed(seed)

    def normal(shape, std=1.0, mean=0.0):
        return torch.randn(shape, generator=generator) * std + mean

    for name, tensor in sorted(model.state_dict(keep_vars=True).items()):
        leaf = name.rsplit(".", 1)[-1]
        if name.endswith("backbone.pos_embed") or leaf == "num_batches_tracked":
            continue
        if leaf == "running_mean":
            value = normal(tensor.shape, 0.1)
        elif leaf == "running_var":
            value = 0.5 + torch.rand(tensor.shape, generator=generator)
        elif leaf in ("cls_token", "mask_token", "query_pos_emb", "level_embed"):
            value = normal(tensor.shape, 0.5)
        elif leaf == "learned_mask":
            value = normal(tensor.shape, 1.0)
        elif leaf.startswith("lambda_"):
            value = normal(tensor.shape, 0.1)
        elif tensor.ndim >= 2:
            fan_in = tensor[0].numel()
            value = normal(tensor.shape, fan_in**-0.5)
        elif leaf == "weight":
            value = normal(tensor.shape, 0.1, 1.0)
        elif leaf == "bias":
            value = normal(tensor.shape, 0.1)
        else:
            raise SystemExit(f"randomise_parameters: no rule for {name} {tuple(tensor.shape)}")
        tensor.copy_(value)


# --------------------------------------------------------------------------- inputs


def square_pad_resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """The official test transform on a (3, H, W) [0, 1] tensor: SquarePad(fill=1), then Resize.

    The official code calls transforms.Resize(antialias=None) on a tensor, which torchvision of its
    time resolved to plain bilinear without antialiasing.
    """
    _, height, width = image.shape
    side = max(height, width)
    pad_w, pad_h = side - width, side - height
    padded = F.pad(image, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=1.0)
    resized = F.interpolate(padded[None], size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return resized[0]


def padded_keypoints(points: dict[str, tuple[float, float]], width: int, height: int) -> np.ndarray:
    """Crop-pixel keypoints -> official 22 x 2, normalised to the padded square, -1 where missing."""
    side = max(width, height)
    left, top = (side - width) // 2, (side - height) // 2
    keypoints = np.full((len(OFFICIAL22), 2), -1.0, dtype=np.float32)
    for name, (x, y) in points.items():
        keypoints[OFFICIAL22.index(name)] = ((x + left) / side, (y + top) / side)
    return keypoints


def photo_case(case: Case, people_dir: Path) -> tuple[torch.Tensor, dict[str, tuple[float, float]], int, int]:
    photo = ImageOps.exif_transpose(Image.open(people_dir / case.photo)).convert("RGB")
    x0, y0, x1, y1 = case.crop
    pixels = torch.from_numpy(np.asarray(photo.crop(case.crop), dtype=np.float32) / 255.0).permute(2, 0, 1)
    points = {name: (x - x0, y - y0) for name, (x, y) in case.points.items()}
    return pixels, points, x1 - x0, y1 - y0


def synthetic_case(case: Case, generator: torch.Generator) -> tuple[torch.Tensor, dict, int, int]:
    """Smooth random colours (compress well as PNG), kept off pure white so the content is not padding."""
    width, height = case.synthetic_size
    coarse = torch.randn(1, 3, max(height // 40, 2), max(width // 40, 2), generator=generator)
    smooth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0]
    pixels = 0.05 + 0.85 * torch.sigmoid(1.5 * smooth)
    coords = torch.rand(len(OFFICIAL22), 2, generator=generator) * torch.tensor([width, height])
    keep = torch.rand(len(OFFICIAL22), generator=generator) >= case.synthetic_missing_prob
    points = {name: tuple(coords[i].tolist()) for i, name in enumerate(OFFICIAL22) if keep[i]}
    return pixels, points, width, height


def make_inputs(people_dir: Path, seed: int, size: int):
    """uint8 (N, size, size, 3) images and official 22-point keypoints (N, 22, 2) for CASES."""
    generator = torch.Generator().manual_seed(seed + 1)
    images, keypoints = [], []
    for case in CASES:
        if case.photo is not None:
            pixels, points, width, height = photo_case(case, people_dir)
        else:
            pixels, points, width, height = synthetic_case(case, generator)
        resized = square_pad_resize(pixels, size)
        # The fixture image is the uint8 rounding of the transform, so anyone reading the PNG gets
        # exactly the pixels the official network saw.
        images.append((resized.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())
        keypoints.append(padded_keypoints(points, width, height))
    return np.stack(images), np.stack(keypoints)


def normalise(images_uint8: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> (N, 3, H, W) pixel values, mean = std = 0.5 (official rgb_mean / rgb_std)."""
    pixels = torch.from_numpy(images_uint8).permute(0, 3, 1, 2).float() / 255.0
    return (pixels - 0.5) / 0.5


# --------------------------------------------------------------------------- run and save


@torch.no_grad()
def embed_each_alone(model: OfficialNetwork, pixel_values, foreground_masks, keypoints22, seed: int) -> np.ndarray:
    """Batch of one per image: in a batch the official model lets one image's padding tokens leak into another."""
    rows = []
    for i in range(pixel_values.shape[0]):
        # The official token sort breaks ties with torch.rand noise; seed it for a repeatable order.
        torch.manual_seed(seed)
        rows.append(model(pixel_values[i : i + 1], foreground_masks[i : i + 1], keypoints22[i : i + 1]))
    return torch.cat(rows).numpy()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official-repo", type=Path, required=True, help="checkout of mk-minchul/sapiensid")
    parser.add_argument("--official-commit", help="commit of that checkout, recorded in config.json (default: git rev-parse)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"fixture folder (default {DEFAULT_OUT})")
    parser.add_argument("--people", type=Path, default=DEFAULT_PEOPLE, help="folder of the shared real photos")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights, synthetic images and token order")
    parser.add_argument(
        "--full-size",
        action="store_true",
        help="build the released architecture instead (24 layers, width 512, 4096-d; 1.6 GB): a manual check of the "
        "converter at real dimensions. Needs an explicit --out outside tests/.",
    )
    args = parser.parse_args(argv)
    if args.full_size and args.out == DEFAULT_OUT:
        parser.error("--full-size writes 1.6 GB: give an --out outside the repository")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    official_repo = args.official_repo.resolve()
    official = import_official(official_repo)
    torch.manual_seed(args.seed)
    dims = FULL_DIMS if args.full_size else TINY_DIMS

    with_level = build_official_network(official, official_config(official_repo, dims, level_embed=True), dims)
    randomise_parameters(with_level, args.seed)
    state_dict = {name: tensor.detach().clone().contiguous() for name, tensor in with_level.state_dict().items()}
    # The released configuration: the same weights without the level embedding.
    without_level = build_official_network(official, official_config(official_repo, dims, level_embed=False), dims)
    without_level.load_state_dict(
        {k: v for k, v in state_dict.items() if not k.endswith("patch_embed.level_embed")}, strict=True
    )

    size, grid = dims["input_size"], dims["input_size"] // dims["dynamic_patch_base_size"]
    table = official.posemb_sincos_2d(grid, grid, dims["emb_dim"])
    if not torch.equal(state_dict["net.backbone.pos_embed"][0, 1:], table):
        raise SystemExit("the official pos_embed is not the sin-cos table: the fixture would be misleading")

    images, keypoints22 = make_inputs(args.people, args.seed, size)
    pixel_values = normalise(images)
    foreground_masks = official.get_foreground_mask_by_whitespace(pixel_values * 0.5 + 0.5)
    keypoints = torch.from_numpy(keypoints22)
    embeddings = embed_each_alone(without_level, pixel_values, foreground_masks, keypoints, args.seed)
    embeddings_level = embed_each_alone(with_level, pixel_values, foreground_masks, keypoints, args.seed)

    out = args.out
    (out / "images").mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    save_file(state_dict, str(out / "official_state_dict.safetensors"), metadata={"format": "pt"})
    for case, image in zip(CASES, images, strict=True):
        Image.fromarray(image).save(out / "images" / f"{case.name}.png", optimize=True)
    np.savez_compressed(
        out / "inputs.npz", keypoints22=keypoints22, foreground_masks=foreground_masks.numpy().astype(bool)
    )
    np.savez_compressed(out / "outputs.npz", embeddings=embeddings, embeddings_level_embed=embeddings_level)
    config = {
        "official_repository": "mk-minchul/sapiensid",
        "official_commit": official_commit(official_repo, args.official_commit),
        "official_sources_sha256": official_sources_digest(official_repo),
        "torch_version": torch.__version__,
        "import_stubs": official.stubs,
        "seed": args.seed,
        "dims": dims,
        "num_buckets": with_level.net.rpe_module.num_buckets,
        "head": {key: value for key, value in official_config(official_repo, dims, True).head.items() if key != "dataset_root_dirs"},
        "cases": [{"name": case.name, "what": case.what, "image": f"images/{case.name}.png"} for case in CASES],
        "files": {
            "official_state_dict.safetensors": "state dict of the official network with level_embed (keys net.*)",
            "images/<case>.png": "the padded, resized 384 x 384 input; pixel_values = (png / 255 - 0.5) / 0.5",
            "inputs.npz": "keypoints22 (N, 22, 2) official layout, -1 = missing; foreground_masks (N, 384, 384) bool",
            "outputs.npz": "embeddings: released config (state dict without level_embed); "
            "embeddings_level_embed: with level_embed; each image run alone",
        },
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    total = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    print(f"wrote {out} ({total / 1e6:.2f} MB), {len(CASES)} cases, stubs for {official.stubs or 'nothing'}")
    for case, row, row_level in zip(CASES, embeddings, embeddings_level, strict=True):
        print(f"  {case.name:24s} |e| = {np.linalg.norm(row):8.4f}   with level embed {np.linalg.norm(row_level):8.4f}")


if __name__ == "__main__":
    main()
