"""A face cropped tight (a passport photo, a face dataset's crop) is a person to the people search too: the
body detector's fit of such a photo has the face and no shoulders, which `is_plausible_person` used to
reject, so `embed_people` / `--all-people` found nobody where the single-person path embeds the face."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from sapiensid_hf.processing.keypoint_layout import (
    EYE_1,
    EYE_2,
    LEFT_SHOULDER,
    MOUTH_1,
    MOUTH_2,
    NOSE,
    RIGHT_SHOULDER,
    empty_keypoints,
)
from sapiensid_hf.processing.people_detection import (
    CLOSE_UP_EYE_DISTANCE,
    is_close_up_face,
    is_plausible_person,
)


def face_keypoints(eye_distance: float, with_nose: bool = True) -> np.ndarray:
    keypoints = empty_keypoints()
    keypoints[EYE_1] = [0.5 - eye_distance / 2, 0.4]
    keypoints[EYE_2] = [0.5 + eye_distance / 2, 0.4]
    keypoints[MOUTH_1] = [0.45, 0.7]
    keypoints[MOUTH_2] = [0.55, 0.7]
    if with_nose:
        keypoints[NOSE] = [0.5, 0.55]
    return keypoints


def test_a_face_is_a_close_up_from_the_eye_distance_on_and_only_when_whole():
    assert is_close_up_face(face_keypoints(CLOSE_UP_EYE_DISTANCE))
    assert is_close_up_face(face_keypoints(0.35))
    assert not is_close_up_face(face_keypoints(CLOSE_UP_EYE_DISTANCE - 0.01))  # a smaller face: needs shoulders
    assert not is_close_up_face(face_keypoints(0.35, with_nose=False))  # the whole face is seen in a close-up
    two_points = empty_keypoints()
    two_points[[EYE_1, EYE_2]] = [[0.2, 0.4], [0.8, 0.4]]
    assert not is_close_up_face(two_points)
    one_eye = face_keypoints(0.35)
    one_eye[EYE_2] = -1
    assert not is_close_up_face(one_eye)


def test_a_plausible_person_is_a_body_a_portrait_or_a_close_up_face():
    small_face = face_keypoints(0.05)
    assert not is_plausible_person(small_face, min_body_points=4)
    on_shoulders = small_face.copy()
    on_shoulders[[LEFT_SHOULDER, RIGHT_SHOULDER]] = [[0.6, 0.8], [0.4, 0.8]]
    assert is_plausible_person(on_shoulders, min_body_points=4)
    assert is_plausible_person(face_keypoints(0.3), min_body_points=4)


@pytest.mark.parametrize("name", ["06917.jpg", "04649.jpg"])
def test_the_people_search_finds_the_person_of_a_close_up_face_photo(pipeline, name):
    # Two unlabelled UTKFace crops (200 x 200, the face fills them). Before: 06917 gave nobody; 04649 gave only a
    # false find (a body fitted to the face's features, framed on 0.05 of the photo) that embed_people refused.
    path = SHARED_DATA / "faces" / "utkface" / name
    if not path.exists():
        pytest.skip(f"{path} not found (../shared/data/faces beside the repo)")
    photo = np.asarray(Image.open(path).convert("RGB"))
    found = pipeline.processor.detect_people(photo)
    assert len(found.people) >= 1
    subject = found.people[0]
    assert subject.face_found and subject.source == "pose"
    x0, y0, x1, y1 = subject.box
    assert (x1 - x0) * (y1 - y0) >= 0.25 * photo.shape[0] * photo.shape[1]  # the face photo's subject, not a tile's find
    people = pipeline.embed_people([photo])
    assert len(people.rows) >= 1 and people.images[0].unseen_in_frame == 0
    left, top, right, bottom = people.rows[0].crop_box
    assert (right - left) * (bottom - top) >= 0.5 * photo.shape[0] * photo.shape[1]  # embedded from the face photo
    assert pipeline.embed([photo]).person_found.tolist() == [True]  # as the single-person path always did
