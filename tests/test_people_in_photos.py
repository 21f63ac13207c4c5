"""Every person in a photo: detection on the real photos of ../shared/data/people, one embedding per
person, the cap / size limit / nobody cases, and `sapiensid embed --all-people`."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import SHARED_DATA, box_iou
from detector_files import hide_opencv, require_detector_files
from PIL import Image

from sapiensid_cli import main
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor
from sapiensid_hf.processing.keypoint_detector import KeypointResult
from sapiensid_hf.processing.people_detection import Candidate, box_overlaps, confirmed_groups, search_windows
from sapiensid_hf.processing.people_in_image import (
    BODY_CROP_MARGIN,
    FACE_FRAME_EYE_DISTANCE,
    FACE_FRAME_EYES_AT,
    FACE_FRAME_FACE_SIZE,
    FACE_FRAME_TIGHTENING,
    PEDESTRIAN_FRAME_ABOVE_SHOULDERS,
    PEDESTRIAN_FRAME_BELOW_ANKLES,
    PEDESTRIAN_FRAME_WIDTH,
    PERSON_FRAME_SCALES,
    PORTRAIT_CROP_MARGIN,
    Person,
    keypoints_in_crop,
    people_in_photo,
    to_photo_pixels,
)
from sapiensid_hf.processing.square_resampling import SquarePadding


@pytest.fixture(scope="module")
def processor():
    require_detector_files()
    return SapiensIDImageProcessor()


# ----------------------------------------------------------------------------------------------
# Detection on real photos
# ----------------------------------------------------------------------------------------------


def test_the_two_people_standing_in_the_street_scene_get_a_tall_box_each(processor, people_dir):
    found = processor.detect_people(people_dir / "street_bus.jpg")
    assert len(found.people) >= 2 and (found.width, found.height) == (810, 1080)
    standing = found.people[:2]
    for person in standing:
        x0, y0, x1, y1 = person.box
        assert person.body_found and y1 - y0 > 1.8 * (x1 - x0)  # a whole standing body
        assert 300 < y0 < 500 and 800 < y1 < 1000  # head at the bus window, feet on the pavement
        shown = person.keypoints[:, 0] >= 0  # every keypoint lies inside its box, in the photo's pixels
        assert ((person.keypoints[shown] >= [x0, y0]) & (person.keypoints[shown] <= [x1, y1])).all()
    centres = sorted((person.box[0] + person.box[2]) / 2 for person in standing)
    assert centres[0] < 200 < centres[1] < 350  # the man in the light coat, then the man in black
    assert box_iou(np.array(standing[0].box), np.array(standing[1].box)) < 0.3


def test_both_men_are_found_and_nobody_else(processor, people_dir):
    found = processor.detect_people(people_dir / "two_men.jpg")
    assert len(found.people) == 2 and found.found == 2 and not found.cap_reached
    left, right = sorted(found.people, key=lambda person: person.box[0])
    assert (left.box[0] + left.box[2]) / 2 < 640 < (right.box[0] + right.box[2]) / 2
    assert all(person.body_found and person.face_found for person in found.people)
    assert found.summary() == "2 people"


def test_the_group_selfie_yields_several_people_with_faces(processor, people_dir):
    found = processor.detect_people(people_dir / "selfie-many-people.jpg")
    assert len(found.people) >= 3
    assert sum(person.face_found for person in found.people) >= 3
    boxes = [np.array(person.box) for person in found.people]
    assert all(box_iou(boxes[i], boxes[j]) < 0.5 for i in range(len(boxes)) for j in range(i))  # no duplicates


def test_a_close_up_is_one_person(processor, people_dir):
    for name in ("face_a_1.jpg", "face_b_1.jpg"):
        found = processor.detect_people(people_dir / name)
        assert len(found.people) == 1 and found.people[0].face_found, name


def test_the_cap_and_the_size_limit_are_applied_and_said(processor, people_dir):
    capped = processor.detect_people(people_dir / "two_men.jpg", max_people=1)
    assert len(capped.people) == 1 and capped.cap_reached
    assert capped.summary() == "1 person (1 more beyond max_people=1 left out)"
    tiny = processor.detect_people(people_dir / "two_men.jpg", min_person_size=5000)
    assert tiny.people == [] and tiny.too_small == tiny.found == 2 and not tiny.cap_reached
    assert tiny.summary() == "0 people (2 too small to recognise left out)"


def test_a_photo_with_nobody_gives_no_person(processor):
    sky = np.zeros((300, 400, 3), dtype=np.uint8)
    sky[:] = (90, 140, 220)
    found = processor.detect_people(sky)
    assert found.people == [] and found.found == 0 and found.summary() == "nobody found"


def test_a_head_and_shoulders_photo_on_a_wall_is_boxed_on_the_photo_not_on_the_wall(processor):
    # An LFW training photo pasted on a plain wall, as in benchmarks/bench_people.py's scenes: the landmark
    # model puts hips and an elbow on the empty wall below it, which boxed the person down to the canvas
    # edge and framed them as a pedestrian standing on that wall.
    photo = SHARED_DATA / "identities" / "lfw" / "train" / "Abdullah_Gul" / "Abdullah_Gul_0009.jpg"
    if not photo.is_file():
        pytest.skip(f"{photo} not found (../shared/data beside the repo)")
    wall = np.full((720, 1280, 3), 150.0) + np.random.default_rng(0).normal(0, 6, (720, 1280, 3))
    canvas = np.clip(wall, 0, 255).astype(np.uint8)
    left, top, side = 901, 210, 300
    canvas[top : top + side, left : left + side] = np.asarray(
        Image.open(photo).convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
    )
    found = processor.detect_people(canvas)
    assert len(found.people) == 1
    person = found.people[0]
    x0, y0, x1, y1 = person.box
    assert left - 10 <= x0 < x1 <= left + side + 10 and top - 10 <= y0 < y1 <= top + side + 10
    shown = (person.keypoints >= 0).all(axis=1)
    assert (person.keypoints[shown, 1] <= top + side).all(), "a point on the wall below the photo"
    assert person.body_found and shown[7:9].all()  # the shoulders in the photo stay
    assert not person.legs_seen
    frame = person.crop_box(found.width, found.height)
    assert frame[3] <= top + side + 0.15 * side  # framed as a face photo, not as a pedestrian


def test_only_the_points_off_the_person_are_left_out_and_the_box_follows_the_rest():
    from sapiensid_hf.processing.people_detection import FoundPerson, keypoint_box, without_points_off_person

    keypoints = np.full((19, 2), -1.0, dtype=np.float32)
    keypoints[:3] = [(0.50, 0.20), (0.48, 0.18), (0.52, 0.18)]  # nose, eyes
    keypoints[7:9] = [(0.42, 0.30), (0.58, 0.30)]  # shoulders
    keypoints[13:15] = [(0.45, 0.80), (0.55, 0.80)]  # hips on the wall
    off_person = np.zeros(19, dtype=bool)
    off_person[13:15] = True
    person = FoundPerson(keypoints, keypoint_box(keypoints), 0.9, "pose", off_person)
    trimmed = without_points_off_person(person)
    assert (trimmed.keypoints[13:15] == -1).all() and (trimmed.keypoints[:9] == keypoints[:9]).all()
    expected = keypoints.copy()
    expected[13:15] = -1
    np.testing.assert_allclose(trimmed.box, keypoint_box(expected))
    assert trimmed.box[3] < 0.5 < person.box[3] and trimmed.score == 0.9
    # Nothing flagged, or no mask made: the person as found.
    for off in (None, np.zeros(19, dtype=bool)):
        as_found = FoundPerson(keypoints, person.box, 0.9, "pose", off)
        assert without_points_off_person(as_found) is as_found


def test_a_detector_that_sees_one_person_is_refused_clearly():
    class OnePersonDetector:
        def detect(self, image):
            return KeypointResult()

    with pytest.raises(ValueError, match="OnePersonDetector finds one person per image"):
        SapiensIDImageProcessor(detector=OnePersonDetector()).detect_people(np.zeros((64, 64, 3), np.uint8))


# ----------------------------------------------------------------------------------------------
# Geometry and bookkeeping
# ----------------------------------------------------------------------------------------------


def test_the_search_windows_cover_the_square_with_overlapping_tiles():
    windows = list(search_windows())
    assert len(windows) == 1 + 4 + 9 and windows[0].side == 1.0
    for window in windows:
        assert 0 <= window.left <= 1 - window.side + 1e-9 and 0 <= window.top <= 1 - window.side + 1e-9
    grid = np.linspace(0.005, 0.995, 60)
    for cells, tiles in ((2, windows[1:5]), (3, windows[5:])):
        covered = [
            any(t.left <= x <= t.left + t.side and t.top <= y <= t.top + t.side for t in tiles) for x in grid for y in grid
        ]
        assert all(covered), cells


def test_a_candidate_is_kept_when_the_whole_square_or_two_windows_saw_it():
    same = lambda a, b: abs(a.score - b.score) < 0.05  # noqa: E731  (stand-in: near scores = same find)
    candidates = [Candidate(0, 0.9), Candidate(3, 0.6), Candidate(5, 0.61), Candidate(7, 0.3)]
    groups = confirmed_groups(candidates, same)
    assert [[member.window for member in group] for group in groups] == [[0], [5, 3]]
    # below the strong score a person needs three windows: blurred people and people seen from behind
    weak = [Candidate(4, 0.35), Candidate(6, 0.34), Candidate(8, 0.33), Candidate(1, 0.12), Candidate(2, 0.11)]
    groups = confirmed_groups(weak + [Candidate(0, 0.9)], same, strong_score=0.5)
    assert [[member.window for member in group] for group in groups] == [[0], [4, 6, 8]]


def test_photo_pixels_and_crop_keypoints_round_trip():
    padding = SquarePadding.of(300, 500)  # a wide photo: padding above and below
    normalised = np.array([[0.5, 0.5], [-1.0, -1.0], [0.1, 0.3]], dtype=np.float32)
    pixels = to_photo_pixels(normalised, padding)
    assert np.allclose(pixels[0], [250, 150]) and (pixels[1] == -1).all() and np.allclose(pixels[2], [50, 50])
    keypoints = np.full((19, 2), -1.0, dtype=np.float32)
    keypoints[0], keypoints[7], keypoints[8] = (120, 60), (100, 100), (140, 100)
    person = Person((90.0, 40.0, 150.0, 200.0), keypoints, 0.9, True, True, "pose")
    crop = (80, 30, 160, 210)  # 80 x 180: padded to 180, 50 px on the left
    in_crop = keypoints_in_crop(person, crop)
    assert np.allclose(in_crop[0], [(120 - 80 + 50) / 180, (60 - 30) / 180])
    assert (in_crop[1] == -1).all()
    assert keypoints_in_crop(person, (130, 30, 160, 210))[0, 0] == -1  # outside the crop: missing


# Six CUHK03 development pedestrians side by side on a wall (a scene of benchmarks/bench_people.py):
# photo and where it is pasted (x0, y0, x1, y1). Three of them are seen from behind or blurred.
PEDESTRIAN_SCENE = (
    ("cuhk03/val/0027_06.jpg", (82, 254, 208, 680)),
    ("cuhk03/val/0011_05.jpg", (294, 263, 421, 680)),
    ("cuhk03/val/0066_09.jpg", (473, 269, 595, 680)),
    ("cuhk03/val/0087_06.jpg", (661, 243, 795, 680)),
    ("cuhk03/val/0055_07.jpg", (900, 327, 1016, 680)),
    ("cuhk03/val/0018_09.jpg", (1083, 230, 1234, 680)),
)


def _pedestrian_scene() -> np.ndarray:
    identities = SHARED_DATA / "identities"
    if not identities.is_dir():
        pytest.skip(f"development photos not found at {identities}")
    canvas = np.clip(150 + np.random.default_rng(0).normal(0, 6, (720, 1280, 3)), 0, 255).astype(np.uint8)
    for path, (x0, y0, x1, y1) in PEDESTRIAN_SCENE:
        photo = Image.open(identities / path).convert("RGB").resize((x1 - x0, y1 - y0), Image.Resampling.BILINEAR)
        canvas[y0:y1, x0:x1] = np.asarray(photo)
    return canvas


def _people_on_pasted_photos(people) -> tuple[int, int]:
    """(pasted pedestrians found with a box of IoU >= 0.5, found boxes that are nobody pasted)."""
    pasted = [np.array(box, np.float32) for _, box in PEDESTRIAN_SCENE]
    overlaps = np.array([[box_overlaps(np.array(person.box, np.float32), box)[0] for box in pasted] for person in people])
    overlaps = overlaps.reshape(len(people), len(pasted))
    on_a_photo = overlaps.max(axis=1, initial=0.0) >= 0.5
    return len(set(overlaps.argmax(axis=1)[on_a_photo].tolist())), int((~on_a_photo).sum())


def test_pedestrians_seen_from_behind_are_found_by_their_silhouette(processor):
    canvas = _pedestrian_scene()
    detector = processor.detector
    assert detector.pedestrian_search  # on by default
    found = processor.detect_people(canvas)
    assert _people_on_pasted_photos(found.people) == (6, 0)
    assert all(person.body_found for person in found.people)
    try:
        detector.pedestrian_search = False
        face_anchored_only = processor.detect_people(canvas)
    finally:
        detector.pedestrian_search = True
    right, false = _people_on_pasted_photos(face_anchored_only.people)
    assert right <= 4 and false == 0  # the face-anchored search alone misses people the silhouette finds


def test_the_silhouette_search_finds_nobody_on_a_plain_wall_and_names_opencv_when_it_is_missing(monkeypatch):
    from sapiensid_hf.processing import hog_pedestrians
    from sapiensid_hf.processing.detector_assets import DetectorNotAvailableError

    wall = np.clip(150 + np.random.default_rng(1).normal(0, 6, (768, 768, 3)), 0, 255).astype(np.uint8)
    assert hog_pedestrians.pedestrian_rois(wall) == []
    hide_opencv(monkeypatch)
    with pytest.raises(DetectorNotAvailableError, match="pip install opencv-python-headless"):
        hog_pedestrians.pedestrian_rois(wall)


def test_tiny_photos_are_searched_for_people_without_a_crash():
    # OpenCV's HOG corrupted its heap on squares under about 97 pixels and aborted the process (a data
    # worker, or the command): run in a child process so that a crash fails this test, not the suite.
    import subprocess
    import sys

    script = """
import numpy as np
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor
processor = SapiensIDImageProcessor(frame_small_people=True)
rng = np.random.default_rng(0)
found = []
for height, width in ((8, 8), (30, 20), (64, 64), (90, 90), (96, 40), (127, 127)):
    photo = (rng.random((height, width, 3)) * 255).astype(np.uint8)
    found.append(len(processor.detect_people(photo).people))
    processor([photo], return_tensors="np")  # the people search runs where the first look finds nobody
print("found", sum(found))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "found 0"


def expected_face_frame(eyes_at: tuple[float, float], lfw_side: float) -> tuple[int, int, int, int]:
    """The LFW photo square around eyes at `eyes_at`, tightened about its centre, in integer pixels."""
    middle_x = eyes_at[0] + (0.5 - FACE_FRAME_EYES_AT[0]) * lfw_side
    middle_y = eyes_at[1] + (0.5 - FACE_FRAME_EYES_AT[1]) * lfw_side
    half = FACE_FRAME_TIGHTENING * lfw_side / 2
    return (int(np.floor(middle_x - half)), int(np.floor(middle_y - half)), int(np.ceil(middle_x + half)), int(np.ceil(middle_y + half)))


def test_a_head_and_shoulders_is_cut_as_an_lfw_photo_of_that_face_and_a_whole_body_with_its_margin():
    keypoints = np.full((19, 2), -1.0, dtype=np.float32)
    keypoints[1], keypoints[2] = (380, 200), (420, 200)  # eyes 40 px apart
    keypoints[7], keypoints[8] = (330, 300), (470, 300)  # shoulders
    portrait = Person((320.0, 150.0, 480.0, 320.0), keypoints, 0.9, True, True, "pose")
    # The eyes take the share of the frame they take in LFW photos; the frame is then tightened about its
    # centre by FACE_FRAME_TIGHTENING.
    assert portrait.crop_box(1000, 1000) == expected_face_frame(eyes_at=(400, 200), lfw_side=40 / FACE_FRAME_EYE_DISTANCE)
    assert portrait.crop_box(450, 1000)[2] == 450  # inside the photo
    with_mouth = keypoints.copy()
    with_mouth[3], with_mouth[4] = (385, 230), (415, 230)  # mouth 30 px below the eyes: the face size sets the frame
    framed = Person((320.0, 150.0, 480.0, 320.0), with_mouth, 0.9, True, True, "pose").crop_box(1000, 1000)
    assert framed == expected_face_frame(eyes_at=(400, 200), lfw_side=np.hypot(40, 30) / FACE_FRAME_FACE_SIZE)
    assert 0.85 < (framed[2] - framed[0]) / (np.hypot(40, 30) / FACE_FRAME_FACE_SIZE) < 0.95  # 10 % tighter
    turned = with_mouth.copy()
    turned[1, 0], turned[2, 0] = 385, 415  # a turned head: the eyes narrow to 3/4, the frame less
    narrowed = Person((320.0, 150.0, 480.0, 320.0), turned, 0.9, True, True, "pose").crop_box(1000, 1000)
    assert 0.80 < (narrowed[2] - narrowed[0]) / (framed[2] - framed[0]) < 0.90
    to_the_hips = keypoints.copy()
    to_the_hips[13:15] = (360, 500), (440, 500)  # hips without legs (a group behind a table): framed as a face
    assert Person((320.0, 150.0, 480.0, 520.0), to_the_hips, 0.9, True, True, "pose").crop_box(1000, 1000) == portrait.crop_box(1000, 1000)
    walking = to_the_hips.copy()
    walking[15:17] = (365, 650), (435, 650)  # knees: a body seen down to its legs keeps the body's box
    body = Person((320.0, 150.0, 480.0, 700.0), walking, 0.9, True, True, "pose")
    margin = BODY_CROP_MARGIN * 550
    assert body.crop_box(1000, 1000) == (int(np.floor(320 - margin)), int(np.floor(150 - margin)), int(np.ceil(480 + margin)), int(np.ceil(700 + margin)))
    standing = walking.copy()
    standing[17:19] = (365, 800), (435, 800)  # ankles: cut as a re-identification crop of this person is
    body_height = 800 - 300
    frame = Person((320.0, 150.0, 480.0, 850.0), standing, 0.9, True, True, "pose").crop_box(1000, 1000)
    half_width = PEDESTRIAN_FRAME_WIDTH * body_height / 2
    assert frame == (
        int(np.floor(400 - half_width)), int(np.floor(300 - PEDESTRIAN_FRAME_ABOVE_SHOULDERS * body_height)),
        int(np.ceil(400 + half_width)), int(np.ceil(800 + PEDESTRIAN_FRAME_BELOW_ANKLES * body_height)))  # fmt: skip
    # A bad fit met on a real photo: an ankle 10 px below the shoulders would make a 5 x 14 px frame.
    sliver = np.array([[210, 186], [210, 184], [213, 185], [208, 188], [210, 189], [214, 188], [209, 186],
                       [211, 198], [206, 196], [199, 195], [-1, -1], [193, 185], [-1, -1], [209, 233],
                       [207, 231], [201, 213], [-1, -1], [-1, -1], [177, 206]], dtype=np.float32)  # fmt: skip
    margin = BODY_CROP_MARGIN * 63
    assert Person((171.0, 176.0, 220.0, 239.0), sliver, 0.56, True, True, "pose").crop_box(375, 375) == (
        int(np.floor(171 - margin)), int(np.floor(176 - margin)), int(np.ceil(220 + margin)), int(np.ceil(239 + margin)))  # fmt: skip
    no_eyes = keypoints.copy()
    no_eyes[1:3] = -1  # without both eyes: the portrait margin around the box
    margin = PORTRAIT_CROP_MARGIN * 170
    assert Person((320.0, 150.0, 480.0, 320.0), no_eyes, 0.9, True, True, "pose").crop_box(1000, 1000) == (
        int(np.floor(320 - margin)), int(np.floor(150 - margin)), int(np.ceil(480 + margin)), int(np.ceil(320 + margin)))  # fmt: skip
    # The other cuts of the same person: the frame scaled about its centre, still inside the photo.
    x0, y0, x1, y1 = Person((320.0, 150.0, 480.0, 850.0), standing, 0.9, True, True, "pose").crop_box(1000, 1000, 1.05)
    assert (x0, x1) == (int(np.floor(400 - 1.05 * half_width)), int(np.ceil(400 + 1.05 * half_width)))
    assert (y1 - y0) / (frame[3] - frame[1]) == pytest.approx(1.05, abs=0.01)
    assert portrait.crop_box(450, 1000, 1.05)[2] == 450
    with pytest.raises(ValueError, match="scale"):
        portrait.crop_box(1000, 1000, 0.0)


def test_people_in_photo_counts_what_it_leaves_out():
    from sapiensid_hf.processing.people_detection import FoundPerson

    def find(size: float) -> FoundPerson:
        keypoints = np.full((19, 2), -1.0, dtype=np.float32)
        keypoints[7:9] = (0.5, 0.5)
        return FoundPerson(keypoints, np.array([0.1, 0.1, 0.1 + size, 0.1 + size], np.float32), 0.8, "pose")

    found = people_in_photo([find(0.5), find(0.4), find(0.01), find(0.3)], 1000, 1000, max_people=2)
    assert [round(person.box[2] - person.box[0]) for person in found.people] == [500, 400]
    assert (found.found, found.too_small, found.cap_reached) == (4, 1, True)
    with pytest.raises(ValueError, match="max_people"):
        people_in_photo([], 10, 10, max_people=0)


# ----------------------------------------------------------------------------------------------
# One embedding per person
# ----------------------------------------------------------------------------------------------


def test_each_person_is_embedded_like_single_person_crops(pipeline, people_dir):
    """A person's embedding is the normalised mean of the single-person embeddings of their three cuts."""
    result = pipeline.embed_people([people_dir / "two_men.jpg", people_dir / "street_bus.jpg"])
    assert [row.image_index for row in result.rows][:2] == [0, 0] and len(result.images) == 2
    assert np.allclose(np.linalg.norm(result.embeddings, axis=1), 1.0, atol=1e-5)
    photo = np.asarray(Image.open(people_dir / "two_men.jpg").convert("RGB"))
    redetected = 0
    for row in result.people_of(0):
        left, top, right, bottom = row.crop_box
        assert row.crop_box == row.person.crop_box(1280, 720)
        assert row.frame_boxes == tuple(row.person.crop_box(1280, 720, scale) for scale in PERSON_FRAME_SCALES)
        eyes = row.person.keypoints[1:3]
        if row.person.whole_body or (eyes == -1).any():  # the box with a margin; a portrait framed on its face
            assert left <= row.person.box[0] and row.person.box[2] <= right
        else:
            assert (eyes[:, 0] > left).all() and (eyes[:, 0] < right).all() and (eyes[:, 1] > top).all()
        cuts = [np.ascontiguousarray(photo[t:b, l:r]) for l, t, r, b in row.frame_boxes]  # noqa: E741
        single = pipeline.embed(cuts).embeddings
        if row.keypoint_source == "redetected":
            redetected += 1
            mean = single.sum(axis=0) / np.linalg.norm(single.sum(axis=0))
            np.testing.assert_allclose(row.embedding, mean, atol=1e-5)
            assert not np.allclose(single[0], single[2], atol=1e-3)  # the cuts differ, so the mean is not one of them
    assert redetected >= 1  # the equality above was checked


def test_one_frame_scale_embeds_the_crop_as_it_is_framed(pipeline, people_dir):
    three = pipeline.embed_people([people_dir / "two_men.jpg"])
    one = pipeline.embed_people([people_dir / "two_men.jpg"], frame_scales=(1.0,), detections=three.images)
    photo = np.asarray(Image.open(people_dir / "two_men.jpg").convert("RGB"))
    for row in one.rows:
        assert row.frame_boxes == (row.crop_box,)
        left, top, right, bottom = row.crop_box
        if row.keypoint_source == "redetected":
            single = pipeline.embed([np.ascontiguousarray(photo[top:bottom, left:right])]).embeddings[0]
            np.testing.assert_allclose(row.embedding, single, atol=1e-5)
    assert [row.crop_box for row in one.rows] == [row.crop_box for row in three.rows]
    with pytest.raises(ValueError, match="frame_scales"):
        pipeline.embed_people([people_dir / "two_men.jpg"], frame_scales=())


def test_a_person_pasted_into_a_scene_is_found_there(pipeline, people_dir):
    """The man in the light coat, cut from the street scene, pasted onto a plain canvas beside another
    photo's people: his row in the composed scene is the closest to his own crop."""
    street = np.asarray(Image.open(people_dir / "street_bus.jpg").convert("RGB"))
    own = pipeline.embed_people([street])
    man = own.people_of(0)[0]
    left, top, right, bottom = man.crop_box
    cut = street[top:bottom, left:right]
    scene = np.asarray(Image.open(people_dir / "two_men.jpg").convert("RGB").resize((1280, 720))).copy()
    scale = 600 / cut.shape[0]
    pasted = np.asarray(Image.fromarray(cut).resize((round(cut.shape[1] * scale), 600)))
    scene_canvas = np.full((720, 1280 + pasted.shape[1] + 40, 3), 200, dtype=np.uint8)
    scene_canvas[:, :1280] = scene
    scene_canvas[60 : 60 + 600, 1300 : 1300 + pasted.shape[1]] = pasted
    found = pipeline.embed_people([scene_canvas])
    similarities = found.embeddings @ man.embedding
    best = found.rows[int(np.argmax(similarities))]
    assert best.person.box[0] > 1280 - 20  # the person on the right of the canvas, where he was pasted
    assert len(found.rows) >= 3


def test_a_photo_with_nobody_has_no_row(pipeline):
    sky = np.full((240, 320, 3), 128, dtype=np.uint8)
    result = pipeline.embed_people([sky])
    assert result.rows == [] and result.images[0].summary() == "nobody found"
    assert result.embeddings.shape == (0, 0)


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def test_embed_all_people_writes_one_row_per_person(pipeline, people_dir, tmp_path, capsys, monkeypatch):
    model_dir = pipeline.source
    output = tmp_path / "people.parquet"
    sky = tmp_path / "sky.png"
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(sky)
    status = main(["embed", str(people_dir / "two_men.jpg"), str(sky), "--all-people", "--output", str(output),
                   "--model", str(model_dir)])  # fmt: skip
    captured = capsys.readouterr()
    assert status == 0, captured.err
    table = pq.read_table(output)
    assert table.column("path").to_pylist() == [str(people_dir / "two_men.jpg")] * 2
    assert table.column("person_index").to_pylist() == [0, 1]
    embeddings = np.stack(table.column("embedding").to_pylist())
    direct = pipeline.embed_people([people_dir / "two_men.jpg"])
    np.testing.assert_allclose(embeddings, direct.embeddings, atol=1e-6)
    np.testing.assert_allclose(np.stack(table.column("box").to_pylist()), [row.person.box for row in direct.rows], atol=1e-3)
    assert "embedded 2 people in 2 photo(s)" in captured.out and f"{sky}: nobody found" in captured.err
    assert table.schema.metadata[b"sapiensid.rows"] == b"people"

    # a person file is not a gallery of photos, and one row per person needs a parquet file
    assert main(["search", str(people_dir / "face_a_1.jpg"), "--gallery", str(output), "--model", str(model_dir)]) != 0
    assert "--all-people" in capsys.readouterr().err
    assert main(["embed", str(sky), "--all-people", "--output", str(tmp_path / "p.npy"), "--model", str(model_dir)]) != 0
    assert "give FILE.parquet" in capsys.readouterr().err


def test_search_all_people_ranks_people_names_the_box_and_picks_the_query_person(
    pipeline, people_dir, tmp_path, capsys
):
    model = str(pipeline.source)
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for name in ("two_men.jpg", "street_bus.jpg"):
        (gallery / name).write_bytes((people_dir / name).read_bytes())
    query = people_dir / "street_bus.jpg"
    status = main(["search", str(query), "--gallery", str(gallery), "--all-people", "--query-person", "1",
                   "--output-dir", str(tmp_path / "out"), "--model", model])  # fmt: skip
    captured = capsys.readouterr()
    assert status == 0, captured.err
    own = pipeline.embed_people([query]).rows[1]  # person 1 of the query photo
    first = next(line for line in captured.out.splitlines() if line.startswith(f"| {query} | 1 | 1 |"))
    cells = [cell.strip() for cell in first.strip("|").split("|")]
    assert float(cells[3]) == pytest.approx(1.0, abs=1e-4)  # the same person, found in the gallery's copy
    assert cells[4] == str(gallery / "street_bus.jpg") and cells[5] == "1"
    assert cells[6] == "(" + ", ".join(f"{round(value)}" for value in own.person.box) + ")"
    assert "searching for person 1 of 2" in captured.err
    assert (tmp_path / "out" / "ranking.png").is_file()

    # the same ranking from the people file of `embed --all-people`
    people_file = tmp_path / "gallery.parquet"
    assert main(["embed", str(gallery), "--all-people", "--output", str(people_file), "--model", model]) == 0
    capsys.readouterr()
    assert main(["search", str(query), "--gallery", str(people_file), "--all-people", "--query-person", "1",
                 "--model", model]) == 0  # fmt: skip
    search_out = capsys.readouterr()
    assert first in search_out.out and "note:" not in search_out.err.replace("note: no false-match rates", "")
    assert pq.read_table(people_file).schema.metadata[b"sapiensid.person_frame_scales"] == b"[0.95, 1.0, 1.05]"

    # a people file embedded from other cuts (here one, as before the cuts were recorded) is searched with a note
    old = pq.read_table(people_file)
    metadata = {key: value for key, value in old.schema.metadata.items() if key != b"sapiensid.person_frame_scales"}
    pq.write_table(old.replace_schema_metadata(metadata), tmp_path / "old.parquet")
    assert main(["search", str(query), "--gallery", str(tmp_path / "old.parquet"), "--all-people", "--model", model]) == 0
    err = capsys.readouterr().err
    assert "holds people embedded from one cut a person" in err and "faces framed from their keypoints" not in err
    # a people file made before faces were framed around OpenCV's face box: the same note names the framing
    assert pq.read_table(people_file).schema.metadata[b"sapiensid.person_framing"] == b"face-box"
    unframed = {key: value for key, value in old.schema.metadata.items() if key != b"sapiensid.person_framing"}
    pq.write_table(old.replace_schema_metadata(unframed), tmp_path / "unframed.parquet")
    assert main(["search", str(query), "--gallery", str(tmp_path / "unframed.parquet"), "--all-people", "--model", model]) == 0
    err = capsys.readouterr().err
    assert "holds people embedded with faces framed from their keypoints" in err and "one cut a person" not in err
    assert "embed the gallery again for the best ranking" in err
    metadata[b"sapiensid.person_frame_scales"] = b"[0.95, oops]"
    pq.write_table(old.replace_schema_metadata(metadata), tmp_path / "bad.parquet")
    assert main(["search", str(query), "--gallery", str(tmp_path / "bad.parquet"), "--all-people", "--model", model]) != 0
    assert f"{tmp_path / 'bad.parquet'}: its sapiensid.person_frame_scales is not a list of scales" in capsys.readouterr().err

    # a query person the photo does not hold, a query with nobody, a photo gallery file
    assert main(["search", str(query), "--gallery", str(people_file), "--all-people", "--query-person", "7",
                 "--model", model]) != 0  # fmt: skip
    assert "query person 7 asked, but the photo holds 2 people" in capsys.readouterr().err
    sky = tmp_path / "sky.png"
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(sky)
    assert main(["search", str(sky), "--gallery", str(people_file), "--all-people", "--model", model]) != 0
    err = capsys.readouterr().err
    assert f"{sky}: no person found in the query photo" in err and "nobody to search for" in err
    assert main(["search", str(query), "--gallery", str(gallery), "--query-person", "1", "--model", model]) != 0
    assert "it needs --all-people" in capsys.readouterr().err


def test_compare_on_photos_with_several_people_reports_the_best_pair(pipeline, people_dir, capsys):
    import json

    first, second = people_dir / "two_men.jpg", people_dir / "street_bus.jpg"
    status = main(["compare", str(first), str(second), "--json", "--model", str(pipeline.source)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    report = json.loads(captured.out)
    found = pipeline.embed_people([first, second], flip=True)  # a verdict's rule: flip, as calibrated
    expected = found.embeddings[:2] @ found.embeddings[2:].T
    np.testing.assert_allclose(report["scores"], expected, atol=1e-5)
    best = np.unravel_index(np.argmax(expected), expected.shape)
    assert report["pair"] == [int(best[0]), int(best[1])] and report["score"] == pytest.approx(expected.max(), abs=1e-5)
    assert report["same_person"] == (report["score"] >= report["threshold"])
    assert len(report["people_a"]) == 2 and report["people_a"][0]["person"] == 0
    assert report["pairs_judged"] == expected.size  # the best of every pair: the verdict says so

    assert main(["compare", str(first), str(second), "--all-pairs", "--model", str(pipeline.source)]) == 0
    out = capsys.readouterr().out
    assert f"best-matching pair: person {best[0]} of A and person {best[1]} of B" in out
    assert "all pairs (rows: people of A, columns: people of B):" in out and "the best of" in out


def test_pipeline_compare_routes_as_the_compare_command_and_the_space(pipeline, people_dir):
    from sapiensid_hf.inference import Verification
    from sapiensid_hf.people_compare import PeopleComparison

    several = [str(people_dir / "two_men.jpg"), str(people_dir / "street_bus.jpg")]
    routed = pipeline.compare(*several)  # several people in a photo: every pair
    expected = pipeline.compare_people(*several)
    assert isinstance(routed, PeopleComparison) and routed.pair == expected.pair
    np.testing.assert_allclose(routed.scores, expected.scores, atol=1e-6)
    assert routed.threshold.value == pytest.approx(expected.threshold.value)
    one_each = [str(people_dir / "face_a_1.jpg"), str(people_dir / "face_a_2.jpg")]
    verified = pipeline.compare(*one_each)  # one person in each: the single-person verdict
    assert isinstance(verified, Verification)
    assert verified.score == pytest.approx(pipeline.verify(*one_each).score, abs=1e-6)
    chosen = pipeline.compare(*one_each, pair=(0, 0))  # a person chosen: that one pair, judged as one
    assert isinstance(chosen, PeopleComparison) and chosen.pair == (0, 0) and chosen.pairs_judged == 1
    every = pipeline.compare(*one_each, every_pair=True)
    assert isinstance(every, PeopleComparison) and every.scores.shape == (1, 1)


def test_detections_already_made_are_used_as_they_are(pipeline, people_dir):
    photos = [people_dir / "two_men.jpg", people_dir / "street_bus.jpg"]
    detections = [pipeline.processor.detect_people(photo) for photo in photos]
    calls = []
    original = pipeline.processor.detect_people
    pipeline.processor.detect_people = lambda *args, **kwargs: calls.append(args) or original(*args, **kwargs)
    try:
        given = pipeline.embed_people(photos, detections=detections)
    finally:
        del pipeline.processor.detect_people
    assert calls == []  # not detected a second time
    np.testing.assert_allclose(given.embeddings, pipeline.embed_people(photos).embeddings, atol=1e-6)
    with pytest.raises(ValueError, match="1 detections given for 2 images"):
        pipeline.embed_people(photos, detections=detections[:1])
