"""Pack a recipe's training caches small enough to travel to a lent GPU machine, and unpack them there.

A lent machine (the `device` tool) sees the repository and at most 64 MiB in all, not ../shared/data. The
recipe reads its photos only through its caches (keypoints, the 96-px image squares, the teacher's
targets), so those travel instead of the photos:

    python scripts/training_pack.py pack --config examples/configs/small_distill.yaml --output outputs/training_pack
    # there, with outputs/training_pack carried along:
    python scripts/training_pack.py unpack outputs/training_pack --root outputs/training_data
    accelerate launch examples/train.py --config examples/configs/small_distill.yaml $(cat outputs/training_data/overrides.txt)

What changes on the way: each 96-px square is stored as WebP (lossy, `--quality`, default 80: about 1.4 KB
a square against 27 KB raw), and the teacher's targets as float16 (they are unit vectors; relative error
~5e-4). Keypoints, image sizes, manifests and every cache's record travel exactly, so the unpacked caches
carry the fingerprints and rules the trainer checks. The photos themselves do not travel: each listed photo
is an empty file there, so anything that would read a photo (a cache made again) fails at once, naming it.
The first run of the recipe here makes the caches (`examples/train.py`).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from sapiensid_hf.training import TrainingConfig

PACK_VERSION = 1
CACHE_KINDS = ("keypoints", "images", "teacher")
# (name in the pack, the config's manifest key, its cache keys in CACHE_KINDS order)
SETS = (
    ("identities", "data.root", ("data.keypoint_cache", "data.image_cache", "distill.teacher_cache")),
    ("faces", "distill.unlabelled_manifest",
     ("distill.unlabelled_keypoint_cache", "distill.unlabelled_image_cache", "distill.unlabelled_teacher_cache")),
)  # fmt: skip


def _setting(config: TrainingConfig, key: str) -> str | None:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def _manifest_rows(manifest: Path, splits: list[str] | None) -> tuple[list[str], list[dict[str, str]]]:
    with manifest.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = [row for row in reader if splits is None or row.get("split") in splits]
        return list(reader.fieldnames or []), rows


def _folder_files(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Every file of a cache folder as raw bytes, keyed "file:NAME" (`_write_folder` writes them back)."""
    return {f"file:{path.name}": np.frombuffer(path.read_bytes(), np.uint8)
            for path in sorted(folder.iterdir()) if path.is_file() and path.name not in skip}  # fmt: skip


def _pack_images(folder: Path, quality: int) -> dict[str, np.ndarray]:
    pixels = np.load(folder / "pixels.npy", mmap_mode="r")
    encoded, offsets = [], [0]
    for square in pixels:
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(square)).save(buffer, "WEBP", quality=quality)
        encoded.append(buffer.getvalue())
        offsets.append(offsets[-1] + len(encoded[-1]))
    return {"webp": np.frombuffer(b"".join(encoded), np.uint8), "offsets": np.asarray(offsets, np.int64),
            "side": np.asarray(pixels.shape[1]), **_folder_files(folder, skip=("pixels.npy",))}  # fmt: skip


def _pack_teacher(folder: Path) -> dict[str, np.ndarray]:
    embeddings = np.load(folder / "embeddings.npy")
    return {"embeddings_float16": embeddings.astype(np.float16), **_folder_files(folder, skip=("embeddings.npy",))}


def pack(config: str | TrainingConfig, output: Path, quality: int = 80) -> dict:
    """Pack the caches and manifests `config` (a recipe file or a loaded config) trains from into `output`."""
    config_path = config if isinstance(config, str) else "(a loaded config)"
    config = TrainingConfig.from_file(config) if isinstance(config, str) else config
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    record = {"version": PACK_VERSION, "config": config_path, "webp_quality": quality, "sets": {}}
    for name, manifest_key, cache_keys in SETS:
        manifest = _setting(config, manifest_key)
        caches = {kind: _setting(config, key) for kind, key in zip(CACHE_KINDS, cache_keys, strict=True)}
        if manifest is None:
            continue
        missing = [f"{kind} ({folder})" for kind, folder in caches.items() if folder is None or not (Path(folder) / "meta.json").is_file()]
        if missing:
            raise SystemExit(f"{name}: no complete cache for {', '.join(missing)}: run the recipe once here first (examples/train.py)")
        splits = config.data.loader_kwargs.get("splits") if name == "identities" else None
        columns, rows = _manifest_rows(Path(manifest), splits)
        with (output / f"{name}_manifest.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        np.savez_compressed(output / f"{name}_keypoints.npz", **_folder_files(Path(caches["keypoints"])))
        np.savez(output / f"{name}_images.npz", **_pack_images(Path(caches["images"]), quality))
        np.savez_compressed(output / f"{name}_teacher.npz", **_pack_teacher(Path(caches["teacher"])))
        record["sets"][name] = {"rows": len(rows), "manifest_key": manifest_key, "cache_keys": list(cache_keys)}
    record["sha256"] = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(output.iterdir())}
    (output / "pack.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def _write_folder(arrays: np.lib.npyio.NpzFile, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # meta.json last: as when a cache is built here, its presence marks a complete cache.
    for key in sorted((key for key in arrays.files if key.startswith("file:")), key=lambda key: key == "file:meta.json"):
        (folder / key.removeprefix("file:")).write_bytes(arrays[key].tobytes())


def unpack(pack_dir: Path, root: Path) -> list[str]:
    """Caches and manifests under `root` from a pack; returns the `--set` overrides that point the recipe at them."""
    record = json.loads((pack_dir / "pack.json").read_text(encoding="utf-8"))
    for name, digest in record["sha256"].items():
        if hashlib.sha256((pack_dir / name).read_bytes()).hexdigest() != digest:
            raise SystemExit(f"{pack_dir / name}: damaged on the way (sha256 differs from pack.json)")
    overrides = []
    for name, info in record["sets"].items():
        manifest = root / name / "manifest.csv"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pack_dir / f"{name}_manifest.csv", manifest)
        with manifest.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                placeholder = manifest.parent / row["path"]
                placeholder.parent.mkdir(parents=True, exist_ok=True)
                placeholder.touch()  # empty: the photos did not travel
        folders = {kind: root / kind / name for kind in CACHE_KINDS}
        with np.load(pack_dir / f"{name}_keypoints.npz") as arrays:
            _write_folder(arrays, folders["keypoints"])
        with np.load(pack_dir / f"{name}_images.npz") as arrays:
            webp, offsets, side = arrays["webp"], arrays["offsets"], int(arrays["side"])
            folders["images"].mkdir(parents=True, exist_ok=True)
            shape = (len(offsets) - 1, side, side, 3)
            pixels = np.lib.format.open_memmap(folders["images"] / "pixels.npy", mode="w+", dtype=np.uint8, shape=shape)
            for row in range(len(offsets) - 1):
                pixels[row] = np.asarray(Image.open(io.BytesIO(webp[offsets[row] : offsets[row + 1]].tobytes())).convert("RGB"))
            pixels.flush()
            del pixels
            _write_folder(arrays, folders["images"])
        with np.load(pack_dir / f"{name}_teacher.npz") as arrays:
            _write_folder(arrays, folders["teacher"])
            np.save(folders["teacher"] / "embeddings.npy", arrays["embeddings_float16"].astype(np.float32))
        overrides.append(f"{info['manifest_key']}={manifest}")
        overrides += [f"{key}={folder}" for key, folder in zip(info["cache_keys"], folders.values(), strict=True)]
    (root / "overrides.txt").write_text(" ".join(f"--set {item}" for item in overrides) + "\n", encoding="utf-8")
    return overrides


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("pack", help="the recipe's caches into one folder")
    packing.add_argument("--config", required=True)
    packing.add_argument("--output", type=Path, default=Path("outputs/training_pack"))
    packing.add_argument("--quality", type=int, default=80, help="WebP quality of the image squares (default: 80)")
    unpacking = commands.add_parser("unpack", help="a pack into caches and manifests the recipe reads")
    unpacking.add_argument("pack", type=Path)
    unpacking.add_argument("--root", type=Path, default=Path("outputs/training_data"))
    args = parser.parse_args()
    if args.command == "pack":
        record = pack(args.config, args.output, args.quality)
        size = sum(path.stat().st_size for path in args.output.iterdir()) / 2**20
        contents = ", ".join(f"{name}: {info['rows']} rows" for name, info in record["sets"].items())
        tracked = subprocess.run(["git", "ls-files", "-z"], capture_output=True, check=True).stdout.split(b"\0")
        repository = sum(Path(name.decode()).stat().st_size for name in tracked if name and Path(name.decode()).is_file()) / 2**20
        print(f"packed {contents} into {args.output}: {size:.1f} MiB; with the repository's tracked files "
              f"{size + repository:.1f} MiB of the 64 MiB a lent machine takes (lower --quality if over)")
    else:
        overrides = unpack(args.pack, args.root)
        print("train with:", " ".join(f"--set {item}" for item in overrides))
    return 0


if __name__ == "__main__":
    sys.exit(main())
