"""A face-recognition teacher for distillation: dlib's ResNet face descriptor (128-d).

At training time only, the teacher's embedding of a face photo is a target for the model's face path
(`training/distillation.py`); the model never needs the teacher to run. The teacher is an optional
extra, `pip install "sapiensid-hf[distill]"`:

- runtime: `dlib-bin` (dlib's prebuilt wheel; Boost Software Licence);
- weights: the `face-recognition-models` package (MIT) ships dlib's model files; the ResNet face
  descriptor and the 5-point shape predictor are released by dlib's author into the public domain
  (CC0). The files are located inside the installed package without importing it (its `__init__`
  needs `pkg_resources`, which current setuptools no longer has) and sha256-checked before use.

The teacher reads a whole photo: dlib's HOG face detector (upsampled once, so faces from ~40 px are
found), the face nearest the photo's centre among the large ones, the 5 landmarks, then the 128-d
descriptor of the aligned 150 x 150 chip. A photo where it finds no face gets no teacher target.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

DISTILL_EXTRA = 'pip install "sapiensid-hf[distill]"   (dlib-bin + face-recognition-models)'
WEIGHTS_PACKAGE = "face_recognition_models"
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
FILE_SHA256 = {
    DESCRIPTOR_FILE: "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    LANDMARKS_FILE: "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
}
TEACHER_NAME = "dlib_resnet_v1"
TEACHER_DIM = 128
# Faces smaller than this fraction of the largest face's area are not the photo's subject.
LARGE_FACE_FRACTION = 0.5


class FaceTeacherNotAvailableError(RuntimeError):
    """The optional teacher (dlib + its model files) is not installed, or its files are not the expected ones."""


@dataclass
class TeacherFace:
    """The teacher's reading of one photo: the raw 128-d descriptor and the face box (xyxy, fractions of the
    photo's width and height)."""

    embedding: np.ndarray
    box: np.ndarray


def teacher_file(name: str) -> Path:
    """A teacher model file inside the installed `face-recognition-models`, sha256-checked."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FaceTeacherNotAvailableError(f"the face teacher's weights are not installed: {DISTILL_EXTRA}")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise FaceTeacherNotAvailableError(f"{path} is missing from the installed {WEIGHTS_PACKAGE}: reinstall it ({DISTILL_EXTRA})")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != FILE_SHA256[name]:
        raise FaceTeacherNotAvailableError(f"{path} has sha256 {digest}, expected {FILE_SHA256[name]}: not the published file")
    return path


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError as error:
        raise FaceTeacherNotAvailableError(f"the face teacher needs dlib: {DISTILL_EXTRA}") from error
    return dlib


class DlibFaceTeacher:
    """`embed(rgb)` -> `TeacherFace` or None (no face). Models load on first use (and again in a new process)."""

    name = TEACHER_NAME
    dim = TEACHER_DIM

    def __init__(self, upsample: int = 1):
        self.upsample = upsample

    @property
    def rules(self) -> dict[str, Any]:
        """What decides the teacher's targets: a cache made under other rules is not reused."""
        return {
            "teacher": self.name,
            "files_sha256": dict(FILE_SHA256),
            "detector": f"dlib HOG frontal face detector, upsample {self.upsample}",
            "face_choice": f"nearest the centre among faces >= {LARGE_FACE_FRACTION} of the largest's area",
            "mirror": "the mirrored photo takes the photo's own target (dlib descriptors of a face and its "
            "mirror: cosine 0.99 on LFW train, docs/training.md)",
        }

    @cached_property
    def _models(self) -> tuple[Any, Any, Any]:
        dlib = _import_dlib()
        return (
            dlib.get_frontal_face_detector(),
            dlib.shape_predictor(str(teacher_file(LANDMARKS_FILE))),
            dlib.face_recognition_model_v1(str(teacher_file(DESCRIPTOR_FILE))),
        )

    def check_available(self) -> None:
        """Raise `FaceTeacherNotAvailableError` now rather than at the first photo."""
        self._models  # noqa: B018 - loading is the check

    def embed(self, rgb: np.ndarray) -> TeacherFace | None:
        """The descriptor of the photo's main face, or None when no face is found. `rgb`: (H, W, 3) uint8."""
        detector, landmarks, descriptor = self._models
        image = np.ascontiguousarray(rgb, dtype=np.uint8)
        faces = list(detector(image, self.upsample))
        if not faces:
            return None
        face = _main_face(faces, image.shape[1], image.shape[0])
        embedding = np.asarray(descriptor.compute_face_descriptor(image, landmarks(image, face)), dtype=np.float32)
        height, width = image.shape[:2]
        box = np.array([face.left() / width, face.top() / height, face.right() / width, face.bottom() / height])
        return TeacherFace(embedding=embedding, box=np.clip(box, 0.0, 1.0).astype(np.float32))

    def __getstate__(self) -> dict[str, Any]:  # dlib objects do not pickle: a worker loads its own
        return {"upsample": self.upsample}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.upsample = state["upsample"]


def _main_face(faces: list[Any], width: int, height: int) -> Any:
    areas = np.array([face.width() * face.height() for face in faces], dtype=np.float64)
    large = [face for face, area in zip(faces, areas, strict=True) if area >= LARGE_FACE_FRACTION * areas.max()]

    def distance_to_centre(face: Any) -> float:
        centre = face.center()
        return float(np.hypot(centre.x / width - 0.5, centre.y / height - 0.5))

    return min(large, key=distance_to_centre)


__all__ = [
    "DISTILL_EXTRA",
    "DlibFaceTeacher",
    "FaceTeacherNotAvailableError",
    "TEACHER_DIM",
    "TeacherFace",
    "teacher_file",
]
