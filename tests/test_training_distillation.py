"""Distillation of the face teacher: the teacher on real photos, its cache (rules recorded, stale and foreign
caches, photos without a face), the missing-extra message, the loss terms, and a seeded training run."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys

import numpy as np
import pytest
import torch

from sapiensid_hf.processing.image_decoding import load_rgb
from sapiensid_hf.training import face_teacher
from sapiensid_hf.training.distillation import TeacherProjection, cosine_distillation, relation_distillation
from sapiensid_hf.training.face_teacher import DlibFaceTeacher, FaceTeacherNotAvailableError
from sapiensid_hf.training.teacher_cache import TeacherCache, TeacherCacheMismatchError, build_teacher_cache

TEACHER_INSTALLED = importlib.util.find_spec("dlib") is not None and importlib.util.find_spec("face_recognition_models") is not None
needs_teacher = pytest.mark.skipif(not TEACHER_INSTALLED, reason='the distill extra is not installed (pip install ".[distill]")')


class MeanColourTeacher:
    """A stand-in teacher for cache mechanics: the photo's mean colour, no face in a photo darker than 30."""

    name = "mean_colour"
    dim = 3

    def __init__(self, version: int = 1):
        self.version = version
        self.calls = 0

    @property
    def rules(self) -> dict:
        return {"teacher": self.name, "version": self.version}

    def embed(self, rgb: np.ndarray):
        self.calls += 1
        mean = rgb.reshape(-1, 3).mean(axis=0).astype(np.float32)
        if mean.mean() < 30:
            return None
        return face_teacher.TeacherFace(embedding=mean, box=np.array([0.1, 0.1, 0.9, 0.9], np.float32))


@pytest.fixture
def photo_files(tmp_path, people_dir):
    """Three real photos, a dark one (no "face" for the stand-in teacher) and a broken file."""
    from PIL import Image

    paths = [str(people_dir / name) for name in ("face_a_1.jpg", "face_b_1.jpg", "two_men.jpg")]
    dark = tmp_path / "dark.png"
    Image.new("RGB", (40, 40), (10, 10, 10)).save(dark)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return [*paths, str(dark), str(broken)]


# ----------------------------------------------------------------------------------------------
# The real teacher
# ----------------------------------------------------------------------------------------------


@needs_teacher
def test_the_dlib_teacher_finds_the_face_and_tells_people_apart(people_dir):
    teacher = DlibFaceTeacher()
    faces = {name: teacher.embed(load_rgb(str(people_dir / name), name)) for name in ("face_a_1.jpg", "face_a_2.jpg", "face_b_1.jpg")}
    assert all(face is not None for face in faces.values())
    a1, a2, b1 = (faces[name].embedding for name in ("face_a_1.jpg", "face_a_2.jpg", "face_b_1.jpg"))
    assert a1.shape == (128,) and a1.dtype == np.float32
    # dlib's own rule: the same person within Euclidean distance 0.6.
    assert np.linalg.norm(a1 - a2) < 0.6 < np.linalg.norm(a1 - b1)
    box = faces["face_a_1.jpg"].box
    assert 0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1
    assert teacher.embed(np.full((120, 120, 3), 128, np.uint8)) is None  # a grey square has no face


@needs_teacher
def test_the_teacher_files_are_checked_by_sha256():
    for name, digest in face_teacher.FILE_SHA256.items():
        path = face_teacher.teacher_file(name)
        assert path.is_file() and path.name == name and len(digest) == 64


def test_without_the_extra_the_message_says_what_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(FaceTeacherNotAvailableError, match=r'pip install "sapiensid-hf\[distill\]"'):
        face_teacher.teacher_file(face_teacher.DESCRIPTOR_FILE)
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` raises ImportError
    with pytest.raises(FaceTeacherNotAvailableError, match=r"needs dlib: pip install"):
        DlibFaceTeacher().check_available()


def test_a_teacher_file_that_is_not_the_published_one_is_refused(monkeypatch, tmp_path):
    package = tmp_path / "face_recognition_models"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models" / face_teacher.LANDMARKS_FILE).write_bytes(b"not the model")
    spec = importlib.util.spec_from_file_location("face_recognition_models", package / "__init__.py",
                                                  submodule_search_locations=[str(package)])  # fmt: skip
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: spec)
    with pytest.raises(FaceTeacherNotAvailableError, match="not the published file"):
        face_teacher.teacher_file(face_teacher.LANDMARKS_FILE)


# ----------------------------------------------------------------------------------------------
# The cache
# ----------------------------------------------------------------------------------------------


def test_cache_records_faces_misses_and_unreadable_photos_and_is_reused(photo_files, tmp_path):
    teacher = MeanColourTeacher()
    cache = build_teacher_cache(photo_files, tmp_path / "cache", teacher, chunk_size=2, num_workers=0, progress=False)
    assert cache.found.tolist() == [True, True, True, False, False]
    assert cache.readable.tolist() == [True, True, True, True, False]
    assert [entry["row"] for entry in cache.unreadable] == [4] and "broken.jpg" in cache.unreadable[0]["path"]
    expected = load_rgb(photo_files[0], "first").reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(cache.embeddings[0], expected, rtol=1e-6)
    assert not cache.embeddings[3].any() and (cache.boxes[3] == -1).all()
    meta = json.loads((tmp_path / "cache" / "meta.json").read_text())
    assert meta["rules"] == teacher.rules and meta["fingerprint"]["num_rows"] == 5
    assert not (tmp_path / "cache" / "chunks").exists()

    class NotInstalled(MeanColourTeacher):
        def check_available(self):
            raise face_teacher.FaceTeacherNotAvailableError('pip install "sapiensid-hf[distill]"')

    again = NotInstalled()  # a complete cache is read without the teacher's package
    reused = build_teacher_cache(photo_files, tmp_path / "cache", again, num_workers=0, progress=False)
    assert again.calls == 0  # read from disk, not computed
    np.testing.assert_array_equal(reused.embeddings, cache.embeddings)
    with pytest.raises(face_teacher.FaceTeacherNotAvailableError, match="distill"):  # computing one needs it
        build_teacher_cache(photo_files, tmp_path / "other", NotInstalled(), num_workers=0, progress=False)


def test_workers_compute_the_same_cache(photo_files, tmp_path):
    serial = build_teacher_cache(photo_files, tmp_path / "serial", MeanColourTeacher(), chunk_size=2, num_workers=0, progress=False)
    parallel = build_teacher_cache(photo_files, tmp_path / "parallel", MeanColourTeacher(), chunk_size=2, num_workers=2, progress=False)
    for name in ("embeddings", "found", "boxes", "readable"):
        np.testing.assert_array_equal(getattr(parallel, name), getattr(serial, name), err_msg=name)
    assert parallel.unreadable == serial.unreadable


def test_a_stale_cache_is_computed_again_and_a_cache_of_other_photos_is_refused(photo_files, tmp_path, caplog):
    build_teacher_cache(photo_files, tmp_path / "cache", MeanColourTeacher(version=1), num_workers=0, progress=False)
    newer = MeanColourTeacher(version=2)
    with caplog.at_level(logging.WARNING):
        cache = build_teacher_cache(photo_files, tmp_path / "cache", newer, num_workers=0, progress=False)
    assert newer.calls == 4  # every readable photo again
    assert "other teacher rules" in caplog.text and "stale" in caplog.text
    assert cache.rules == {"teacher": "mean_colour", "version": 2}
    with pytest.raises(TeacherCacheMismatchError, match="made for other photos"):
        build_teacher_cache(photo_files[:3], tmp_path / "cache", newer, num_workers=0, progress=False)
    with pytest.raises(TeacherCacheMismatchError, match="stale"):
        TeacherCache.load(tmp_path / "cache", rules={"teacher": "mean_colour", "version": 3})


def test_an_interrupted_build_resumes_from_its_finished_chunks(photo_files, tmp_path):
    class StopsAtTheThirdPhoto(MeanColourTeacher):
        def embed(self, rgb):
            if self.calls == 2:
                raise KeyboardInterrupt
            return super().embed(rgb)

    with pytest.raises(KeyboardInterrupt):
        build_teacher_cache(photo_files, tmp_path / "cache", StopsAtTheThirdPhoto(), chunk_size=2, num_workers=0, progress=False)
    assert not (tmp_path / "cache" / "meta.json").exists()
    resumed = MeanColourTeacher()
    cache = build_teacher_cache(photo_files, tmp_path / "cache", resumed, chunk_size=2, num_workers=0, progress=False)
    assert resumed.calls == 2  # the first chunk (2 photos) was kept; photos 3-4 computed (5 is unreadable)
    assert cache.found.tolist() == [True, True, True, False, False]


# ----------------------------------------------------------------------------------------------
# The loss terms
# ----------------------------------------------------------------------------------------------


def test_cosine_term_is_zero_when_aligned_and_two_when_opposite():
    teacher = torch.randn(6, 4)
    assert float(cosine_distillation(3.0 * teacher, teacher)) == pytest.approx(0.0, abs=1e-6)
    assert float(cosine_distillation(-teacher, teacher)) == pytest.approx(2.0, abs=1e-6)
    assert float(cosine_distillation(torch.zeros(0, 4), torch.zeros(0, 4))) == 0.0


def test_relation_term_ignores_the_space_and_sees_a_changed_geometry():
    torch.manual_seed(0)
    teacher = torch.randn(8, 16)
    rotation, _ = torch.linalg.qr(torch.randn(16, 16))
    student = torch.cat([teacher @ rotation, torch.zeros(8, 4)], dim=1)  # another space, same geometry
    assert float(relation_distillation(student, teacher)) == pytest.approx(0.0, abs=1e-6)
    shuffled = student[torch.randperm(8)]
    assert float(relation_distillation(shuffled, teacher)) > 0.5
    assert float(relation_distillation(student[:2], teacher[:2])) == 0.0


def test_relation_term_pulls_the_student_towards_the_teacher_geometry():
    torch.manual_seed(0)
    teacher = torch.randn(10, 8)
    student = torch.randn(10, 8, requires_grad=True)
    optimizer = torch.optim.SGD([student], lr=0.5)
    first = float(relation_distillation(student, teacher).detach())
    for _ in range(100):
        optimizer.zero_grad()
        relation_distillation(student, teacher).backward()
        optimizer.step()
    assert float(relation_distillation(student, teacher).detach()) < 0.2 * first


def test_relation_term_of_identical_rows_is_zero_with_a_finite_gradient():
    """A batch whose rows are all alike (measured in a real run: every face row emptied of keypoints)
    has no correlation to learn: no term, and never a NaN gradient that ends the run."""
    student = torch.randn(1, 8).repeat(6, 1).requires_grad_()
    loss = relation_distillation(student, torch.randn(6, 4))
    loss.backward()
    assert float(loss.detach()) == 0.0 and bool(torch.isfinite(student.grad).all())


def test_both_terms_are_float32_under_bfloat16_autocast():
    """A bfloat16 run correlates its pair similarities in float32: in bfloat16 the similarities of a
    batch's pairs (~0.004 a step near 1) lose the differences the relation term learns from."""
    torch.manual_seed(0)
    student, teacher = torch.randn(48, 64), torch.randn(48, 16)
    expected = relation_distillation(student, teacher), cosine_distillation(student[:, :16], teacher)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        found = relation_distillation(student, teacher), cosine_distillation(student[:, :16], teacher)
    for value, reference in zip(found, expected, strict=True):
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, reference, atol=1e-6, rtol=0)


def test_the_projection_maps_the_embedding_to_the_teacher_size():
    assert TeacherProjection(512, 128)(torch.randn(3, 512)).shape == (3, 128)
