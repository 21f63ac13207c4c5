"""scripts/training_pack.py: a recipe's caches packed for a lent GPU machine come back as the caches the
trainer checks (fingerprints and rules exact, keypoints exact, image squares within WebP's loss), and the
photos that did not travel are empty files."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from sapiensid_hf.training import TrainingConfig

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("training_pack", REPO / "scripts" / "training_pack.py")
training_pack = importlib.util.module_from_spec(spec)
spec.loader.exec_module(training_pack)


def fake_caches(folder: Path, rows: int, seed: int) -> dict[str, Path]:
    """Keypoint, image and teacher cache folders as the recipe's caches lay them out."""
    rng = np.random.default_rng(seed)
    meta = {"fingerprint": {"num_rows": rows, "paths_sha256": f"{seed:064d}"}, "rules": {"version": 1}}
    folders = {kind: folder / kind for kind in ("keypoints", "images", "teacher")}
    for path in folders.values():
        path.mkdir(parents=True)
        (path / "meta.json").write_text(json.dumps(meta))
    np.save(folders["keypoints"] / "keypoints.npy", rng.random((rows, 19, 2), dtype=np.float32))
    # Smooth squares (a gradient and a white margin), as photos resampled to the model's side are.
    ramp = np.linspace(0, 255, 24, dtype=np.float32)
    squares = np.stack([np.clip(ramp[None, :, None] * [1.0, 0.5, 0.2] + 20 * index, 0, 255) for index in range(rows)])
    squares = np.repeat(squares, 24, axis=1).astype(np.uint8)
    squares[:, :, :4] = 255
    np.save(folders["images"] / "pixels.npy", squares)
    np.save(folders["images"] / "sizes.npy", np.full((rows, 2), 24, np.int32))
    targets = rng.normal(size=(rows, 128)).astype(np.float32)
    np.save(folders["teacher"] / "embeddings.npy", targets / np.linalg.norm(targets, axis=1, keepdims=True))
    np.save(folders["teacher"] / "found.npy", np.arange(rows) % 2 == 0)
    return folders


def write_manifest(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_packed_caches_unpack_to_what_the_trainer_checks_and_the_photos_stay_behind(tmp_path):
    labelled = [{"path": f"lfw/p{i}.jpg", "identity": f"id{i // 2}", "camera": "0", "source": "lfw", "split": split}
                for i, split in enumerate(["train", "val", "train", "train"])]  # fmt: skip
    write_manifest(tmp_path / "identities.csv", labelled)
    write_manifest(tmp_path / "faces.csv", [{"path": f"faces/{i}.jpg", "source": "ffhq"} for i in range(5)])
    identities, faces = fake_caches(tmp_path / "identities", 3, seed=1), fake_caches(tmp_path / "faces", 5, seed=2)
    config = TrainingConfig.from_file(str(REPO / "examples" / "configs" / "small_distill.yaml")).with_overrides([
        f"data.root={tmp_path / 'identities.csv'}", f"data.keypoint_cache={identities['keypoints']}",
        f"data.image_cache={identities['images']}", f"distill.teacher_cache={identities['teacher']}",
        f"distill.unlabelled_manifest={tmp_path / 'faces.csv'}", f"distill.unlabelled_keypoint_cache={faces['keypoints']}",
        f"distill.unlabelled_image_cache={faces['images']}", f"distill.unlabelled_teacher_cache={faces['teacher']}",
    ])  # fmt: skip
    record = training_pack.pack(config, tmp_path / "pack")
    assert {name: info["rows"] for name, info in record["sets"].items()} == {"identities": 3, "faces": 5}

    overrides = training_pack.unpack(tmp_path / "pack", tmp_path / "there")
    there = dict(item.split("=", 1) for item in overrides)
    unpacked = TrainingConfig.from_file(str(REPO / "examples" / "configs" / "small_distill.yaml")).with_overrides(overrides)
    assert unpacked.data.image_cache == there["data.image_cache"]
    with open(there["data.root"], newline="", encoding="utf-8") as handle:
        listed = [row["path"] for row in csv.DictReader(handle)]
    assert listed == ["lfw/p0.jpg", "lfw/p2.jpg", "lfw/p3.jpg"]  # the training rows, in order
    photo = Path(there["data.root"]).parent / "lfw" / "p0.jpg"
    assert photo.is_file() and photo.stat().st_size == 0  # the photos did not travel
    for (_, _, cache_keys), original in zip(training_pack.SETS, (identities, faces), strict=True):
        keypoints, images, teacher = (Path(there[key]) for key in cache_keys)
        for folder, source in zip((keypoints, images, teacher), original.values(), strict=True):
            assert (folder / "meta.json").read_text() == (source / "meta.json").read_text()
        np.testing.assert_array_equal(np.load(keypoints / "keypoints.npy"), np.load(original["keypoints"] / "keypoints.npy"))
        np.testing.assert_array_equal(np.load(images / "sizes.npy"), np.load(original["images"] / "sizes.npy"))
        error = np.abs(np.load(images / "pixels.npy").astype(int) - np.load(original["images"] / "pixels.npy").astype(int))
        assert error.mean() < 3 and error.max() < 40  # WebP at quality 80
        np.testing.assert_allclose(np.load(teacher / "embeddings.npy"), np.load(original["teacher"] / "embeddings.npy"), atol=1e-3)
        np.testing.assert_array_equal(np.load(teacher / "found.npy"), np.load(original["teacher"] / "found.npy"))

    damaged = tmp_path / "pack" / "faces_teacher.npz"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    with pytest.raises(SystemExit, match="faces_teacher.npz: damaged"):
        training_pack.unpack(tmp_path / "pack", tmp_path / "again")
