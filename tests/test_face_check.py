"""The face check (processing/face_check.py): a person who fills the photo (so is not looked at again in
their own frame), shows a face and no legs, is kept only where OpenCV's YuNet confirms the face. A
cheetah's head that BlazePose takes for a person gets "no person found" from both paths; real faces pass."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image, ImageOps

from sapiensid_cli import main
from sapiensid_hf import people_embedding
from sapiensid_hf.inference import NoPersonFoundError
from sapiensid_hf.processing import image_processing_sapiensid
from sapiensid_hf.processing.face_check import (
    FACE_CHECK_MIN_EYE_DISTANCE,
    face_confirmed,
    head_square,
    needs_face_check,
    yunet_faces,
)
from sapiensid_hf.processing.keypoint_layout import (
    EYE_1,
    EYE_2,
    LEFT_HIP,
    LEFT_KNEE,
    LEFT_SHOULDER,
    NOSE,
    empty_keypoints,
)


def eyes_apart(distance: float) -> np.ndarray:
    keypoints = empty_keypoints()
    keypoints[EYE_1] = [100.0, 100.0]
    keypoints[EYE_2] = [100.0 + distance, 100.0]
    keypoints[NOSE] = [100.0 + distance / 2, 120.0]
    return keypoints


def test_a_face_without_legs_is_checked_from_the_eye_distance_on():
    assert needs_face_check(eyes_apart(FACE_CHECK_MIN_EYE_DISTANCE))
    assert not needs_face_check(eyes_apart(FACE_CHECK_MIN_EYE_DISTANCE - 0.5))  # a pedestrian's face: too small to judge
    with_shoulder = eyes_apart(40)
    with_shoulder[LEFT_SHOULDER] = [90, 200]
    assert needs_face_check(with_shoulder)  # head and shoulders: still a face picture
    for legs in (LEFT_HIP, LEFT_KNEE):
        body = eyes_apart(40)
        body[legs] = [100, 400]
        assert not needs_face_check(body)  # a body: no face detector can judge it
    one_eye = eyes_apart(40)
    one_eye[EYE_2] = -1
    assert not needs_face_check(one_eye)


def test_the_head_square_is_four_spreads_about_the_head_points_clipped_to_the_photo():
    keypoints = eyes_apart(40)  # eyes (100, 100) and (140, 100), nose (120, 120): spread 40, centre (120, 110)
    assert head_square(keypoints, 400, 400) == (40, 30, 200, 190)
    assert head_square(keypoints, 150, 180) == (40, 30, 180, 150)


@pytest.fixture(scope="module")
def face_photo() -> np.ndarray:
    path = SHARED_DATA / "faces" / "utkface" / "06917.jpg"
    if not path.exists():
        pytest.skip(f"{path} not found (../shared/data/faces beside the repo)")
    return np.asarray(Image.open(path).convert("RGB"))


def cheetah_crop(box: tuple[int, int, int, int], grey: bool) -> np.ndarray:
    """A part of gradio's sample photo of a cheetah in which BlazePose's person detector finds a "person"
    that fills the picture, with both eyes and no legs (benchmarks/bench_person_free.py's animal crops)."""
    spec = importlib.util.find_spec("gradio")
    path = Path(list(spec.submodule_search_locations)[0]) / "test_data" / "cheetah2.jpg" if spec else None
    if path is None or not path.exists():
        pytest.skip("gradio's test_data/cheetah2.jpg is not installed")
    picture = Image.open(path).convert("RGB").crop(box)
    return np.asarray(ImageOps.grayscale(picture).convert("RGB") if grey else picture)


CHEETAH_HEADS = [((359, 290, 741, 684), False), ((359, 290, 741, 684), True), ((339, 363, 727, 764), True)]


def test_yunet_confirms_a_real_face_and_not_a_cheetahs_head(pipeline, face_photo):
    for picture, is_face in [(face_photo, True), (cheetah_crop(*CHEETAH_HEADS[0]), False)]:
        person = pipeline.processor.detect_people(picture).people[0]
        assert needs_face_check(person.keypoints)
        assert face_confirmed(picture, person.keypoints) is is_face
    faces = yunet_faces(face_photo)
    assert len(faces) >= 1 and faces[:, 4].max() >= 0.8
    assert (faces[:, :4] >= -0.1 * face_photo.shape[0]).all()  # boxes in the photo's own pixels


@pytest.mark.parametrize(("box", "grey"), CHEETAH_HEADS)
def test_a_cheetah_the_detector_takes_for_a_person_is_nobody_to_both_paths(pipeline, monkeypatch, box, grey):
    picture = cheetah_crop(box, grey)
    assert pipeline.embed([picture]).person_found.tolist() == [False]
    people = pipeline.embed_people([picture])
    found = people.images[0]  # the search may fit the head more than once (a close-up and a smaller fit)
    assert people.rows == [] and found.found >= 1 and found.face_unconfirmed == found.found
    assert f"{found.found} whose face the face detector did not confirm left out" in found.summary()
    # Without the face check both paths embedded it (what the tools did before).
    monkeypatch.setattr(image_processing_sapiensid, "face_confirmed", lambda *args: True)
    monkeypatch.setattr(people_embedding, "face_confirmed", lambda *args: True)
    assert pipeline.embed([picture]).person_found.tolist() == [True]
    assert len(pipeline.embed_people([picture]).rows) >= 1


def test_compare_answers_unknown_when_every_person_found_in_a_picture_is_refused(capsys, tmp_path, pipeline, model_dir, face_photo):
    # The search fits the cheetah's head more than once, so `compare` takes the several-people path; the face
    # check refuses every fit. The answer is the one for any picture without a person, not an error.
    picture = cheetah_crop(*CHEETAH_HEADS[0])
    assert len(pipeline.processor.detect_people(picture).people) >= 2
    cheetah, face = tmp_path / "cheetah.png", tmp_path / "face.png"
    Image.fromarray(picture).save(cheetah)
    Image.fromarray(face_photo).save(face)
    status = main(["compare", str(cheetah), str(face), "--model", str(model_dir), "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    result = json.loads(captured.out)
    assert result["verdict"] == "unknown: no person found in A" and result["score"] is None
    assert result["person_found"] == [False, True]
    # Every pair was asked for: there is no pair, and the command says so.
    assert main(["compare", str(cheetah), str(face), "--model", str(model_dir), "--all-pairs"]) != 0
    assert "no person found in image A" in capsys.readouterr().err
    # The library answers the same (the command and the Space call it).
    verification = pipeline.compare(picture, face_photo)
    assert verification.score is None and verification.same is None and verification.nobody == ["first"]
    with pytest.raises(NoPersonFoundError, match="no person found in image A"):
        pipeline.compare(picture, face_photo, every_pair=True)
    with pytest.raises(NoPersonFoundError, match="no person found in image A"):
        pipeline.compare(picture, face_photo, pair=(0, None))


def test_a_close_up_face_is_still_a_person_to_both_paths(pipeline, face_photo):
    assert pipeline.embed([face_photo]).person_found.tolist() == [True]
    people = pipeline.embed_people([face_photo])
    assert len(people.rows) == 1 and people.images[0].face_unconfirmed == 0
