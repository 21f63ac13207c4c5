"""Shared builders for the training tests (no tests here).

The identity dataset is made of augmented crops of the real photos in ../shared/data/people, one
identity per photo. It exercises the training machinery only: augmentation of a handful of photos
is not training data, and nothing here is used to pick thresholds.
"""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
from PIL import Image, ImageEnhance

from sapiensid_hf.data.common import BASE_COLUMNS
from sapiensid_hf.training import KeypointCache, dataset_fingerprint

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO_ROOT / "examples" / "configs" / "tiny_cpu.yaml"
MISSING = -1.0


def upper_body_keypoints(rng: np.random.Generator) -> np.ndarray:
    """A plausible upper-body layout (face + shoulders + elbows), jittered a little."""
    points = np.full((19, 2), MISSING, dtype=np.float32)
    points[:9] = [
        [0.50, 0.30], [0.44, 0.24], [0.56, 0.24], [0.46, 0.37], [0.54, 0.37],  # nose, eyes, mouth corners
        [0.62, 0.27], [0.38, 0.27],  # ears: left = larger x
        [0.70, 0.60], [0.30, 0.60],  # shoulders
    ]  # fmt: skip
    points[9:11] = [[0.78, 0.92], [0.22, 0.92]]  # elbows
    shown = points[:, 0] != MISSING
    points[shown] += rng.uniform(-0.02, 0.02, size=(int(shown.sum()), 2)).astype(np.float32)
    return points


def random_crop(photo: Image.Image, rng: np.random.Generator, side: int) -> Image.Image:
    """A random crop of 50-90 % of the photo's shorter side, resized, with a small colour change."""
    width, height = photo.size
    crop = int(min(width, height) * rng.uniform(0.5, 0.9))
    left = int(rng.integers(0, width - crop + 1))
    top = int(rng.integers(0, height - crop + 1))
    image = photo.crop((left, top, left + crop, top + crop)).resize((side, side), Image.Resampling.BILINEAR)
    image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.85, 1.15)))
    return ImageEnhance.Contrast(image).enhance(float(rng.uniform(0.85, 1.15)))


def build_people_dataset(
    people_dir: Path, folder: Path, crops_per_identity: int = 6, side: int = 80, seed: int = 0, keypoint_column: bool = False
) -> tuple[Path, Path]:
    """Save crops + a `datasets` folder (image, path, pid, camid, clothes_id, role) + a keypoint cache.

    Returns (dataset folder, keypoint cache folder).
    """
    rng = np.random.default_rng(seed)
    image_dir = folder / "images"
    rows, keypoints = [], []
    photos = sorted(people_dir.glob("*.jpg"))
    for pid, photo_path in enumerate(photos):
        with Image.open(photo_path) as opened:
            photo = opened.convert("RGB")
            photo.thumbnail((512, 512))
        for index in range(crops_per_identity):
            path = image_dir / f"{pid:02d}" / f"{index:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            random_crop(photo, rng, side).save(path)
            rows.append({"image": str(path), "path": f"{pid:02d}/{index:02d}.png", "pid": pid, "camid": index % 2,
                         "clothes_id": -1, "role": "train"})  # fmt: skip
            keypoints.append(upper_body_keypoints(rng))
    features = datasets.Features(BASE_COLUMNS)
    columns = {name: [row[name] for row in rows] for name in features}
    if keypoint_column:
        features["keypoints"] = datasets.Sequence(datasets.Sequence(datasets.Value("float32"), length=2), length=19)
        columns["keypoints"] = [points.tolist() for points in keypoints]
    dataset_dir = folder / "dataset"
    datasets.Dataset.from_dict(columns, features=features).save_to_disk(str(dataset_dir))
    cache_dir = folder / "keypoints"
    KeypointCache.from_keypoints(np.stack(keypoints), dataset_fingerprint(columns["path"])).save(cache_dir)
    return dataset_dir, cache_dir


def reset_accelerate() -> None:
    """Forget the process-wide Accelerate state so the next in-process run starts clean."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
