"""Every person in one image: where the detector looks, and how its finds become one entry per person.

The person detector sees the whole square at 224 x 224, so people smaller than about a fifth of the
picture (a street scene, the back row of a group) are missed. The search therefore also looks at
overlapping tiles, 2 x 2 and 3 x 3, each 1.5 cells wide: a person several times smaller than the picture
fills a tile the way a single person fills a photo. Every candidate's landmarks are taken on the full
square, so a person seen in several windows gives nearly the same keypoints each time, and duplicates
are merged by the overlap of their keypoint boxes. Faces without a body (close-ups, group selfies) come
from the face detector in the same windows and join the list unless a found body already has that face.

All coordinates here are normalised to the detector's square (0-1); the processor maps them to pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .blaze_ops import Roi
from .keypoint_layout import BODY_POINTS, EYE_1, EYE_2, FACE_POINTS, MISSING, NOSE, eye_distance, visible

TILE_GRIDS = (2, 3)
WHOLE_SQUARE = 0  # index of the first window, the whole square
MIN_WINDOWS_SEEN = 2
MIN_WINDOWS_SEEN_WEAK = 3
# Body hits from this score on are kept for the weak rule above (the strong rule uses the detector's
# own threshold, 0.5).
WEAK_BODY_SCORE = 0.3
TILE_WIDTH_IN_CELLS = 1.5
# Two finds are one person when their keypoint boxes overlap this much (intersection over union) ...
SAME_PERSON_IOU = 0.4
# ... or when one box lies this much inside the other (a half-body find inside a whole-body one).
SAME_PERSON_CONTAINED = 0.7
# A face belongs to a found body when its centre lies in the body's head region: the box around the
# body's face points, grown by this factor (a face detector's box is larger than the eyes-nose spread).
HEAD_REGION_GROWTH = 2.5
# Two fits of one head: face centres closer than this many face sizes (the spread of the face points).
SAME_FACE_DISTANCE = 1.0
# Margin around the keypoints: the head reaches above the eyes, the feet below the ankles.
BOX_MARGIN = 0.12
HEAD_MARGIN = 0.6  # of the eye-to-shoulder distance, above the highest face point
FACE_BOX_GROWTH = 0.15
# A face without a body is a person only from this face-detector score on (bodies confirm their faces;
# a lone face has nothing else to confirm it, and texture scores up to about 0.7).
FACE_ONLY_MIN_SCORE = 0.75
# A find with fewer visible keypoints than this is nobody to the tools, which score people only: a nose
# alone or a nose and one eye give the model neither a face nor a body to read. The single-person path's finds
# on 1,212 development photos of people (LFW, CUHK03, Con-ReID) all had 5 or more; under 3 were a cheetah's
# eye and nose, a cheetah's fur (a "shoulder") and the mouth of a crying baby cut under a watermark (a nose).
MIN_PERSON_POINTS = 3
# A body fit with a whole face whose eyes lie this far apart (share of the square's side; the face is about a
# third of the picture wide) is a close-up face photo's subject, kept without shoulders: the close-up faces of
# ../shared/data/faces that the search missed had eyes 0.24-0.46 apart, and with 0.2 here those it still
# missed 0.17-0.18 (a fit of a small "body" on the face's features claimed the face, then was refused). The
# fits on the animal pictures of benchmarks/bench_person_free.py with a whole face lie at most 0.15 apart,
# and a face without legs must pass the face check besides (face_check.py); those pictures kept exactly the
# rows they had with 0.2 (measured 2026-12-05, docs/people.md).
CLOSE_UP_EYE_DISTANCE = 0.15
# A close-up face's head, for telling its own features' fits from other people: its face points' centre
# +- this many times their spread, about the head with its hair (the fits on those features lay 0.67 or more
# inside it, 15 of 16 at least 0.7).
CLOSE_UP_HEAD_SPREADS = 1.25
# A find whose eyes and nose lie on another find's face (the box of its face points grown by this share of
# their spread on each side, about the cheeks and brow) with eyes less than SMALLER_FACE_RATIO as far apart is
# the landmark model's fit of a small "body" on that face's own features: nobody's face can be seen inside
# another's.
FACE_FEATURES_MARGIN = 0.25
SMALLER_FACE_RATIO = 0.5
# Candidates from two windows whose body ROIs are this close (share of the ROI side) and this alike in
# size get the landmark model once.
SIMILAR_ROI_DISTANCE = 0.15
SIMILAR_ROI_SIZE_RATIO = 0.75


@dataclass(frozen=True)
class Window:
    """A square part of the detector's square: left, top and side, normalised."""

    left: float
    top: float
    side: float

    def pixels(self, square_side: int) -> tuple[slice, slice]:
        left, top = round(self.left * square_side), round(self.top * square_side)
        side = max(1, round(self.side * square_side))
        return slice(top, top + side), slice(left, left + side)

    def roi_to_square(self, roi: Roi) -> Roi:
        """A rotated ROI found in this window, in the coordinates of the whole square."""
        return Roi(
            center_x=self.left + roi.center_x * self.side,
            center_y=self.top + roi.center_y * self.side,
            size=roi.size * self.side,
            rotation=roi.rotation,
        )

    def box_to_square(self, boxes: np.ndarray) -> np.ndarray:
        """(..., 4) xyxy boxes or (..., 2) points normalised to the window -> to the square."""
        offset = np.tile(np.array([self.left, self.top], dtype=np.float32), boxes.shape[-1] // 2)
        return (np.asarray(boxes, dtype=np.float32) * self.side + offset).astype(np.float32)


def search_windows(grids: tuple[int, ...] = TILE_GRIDS, width_in_cells: float = TILE_WIDTH_IN_CELLS) -> Iterator[Window]:
    """The whole square, then each grid's overlapping tiles (row by row), each kept inside the square."""
    yield Window(0.0, 0.0, 1.0)
    for cells in grids:
        side = min(1.0, width_in_cells / cells)
        for row in range(cells):
            for column in range(cells):
                center_x, center_y = (column + 0.5) / cells, (row + 0.5) / cells
                left = float(np.clip(center_x - side / 2, 0.0, 1.0 - side))
                top = float(np.clip(center_y - side / 2, 0.0, 1.0 - side))
                yield Window(left, top, side)


@dataclass
class Candidate:
    """One detector hit in one window, in the square's coordinates: a body ROI, or a face box and points."""

    window: int
    score: float
    roi: Roi | None = None
    box: np.ndarray | None = None
    points: np.ndarray | None = None


def same_body_candidate(first: Candidate, second: Candidate) -> bool:
    return similar_roi(first.roi, second.roi)


def same_face_candidate(first: Candidate, second: Candidate) -> bool:
    return box_overlaps(first.box, second.box)[0] >= SAME_PERSON_IOU


def confirmed_groups(
    candidates: list[Candidate], same: Callable[[Candidate, Candidate], bool], strong_score: float = 0.0
) -> list[list[Candidate]]:
    """Candidates grouped by `same` (each joins the first group holding a match, best score first), kept
    when a hit of at least `strong_score` was seen by the whole square or by MIN_WINDOWS_SEEN windows, or
    when weaker hits were seen by MIN_WINDOWS_SEEN_WEAK windows. A real person is seen from every window
    that holds them (a person seen from behind, or blurred, often only weakly); the detector's false hits
    on texture come from one window."""
    groups: list[list[Candidate]] = []
    for candidate in sorted(candidates, key=lambda candidate: -candidate.score):
        group = next((group for group in groups if any(same(candidate, member) for member in group)), None)
        if group is None:
            groups.append([candidate])
        else:
            group.append(candidate)
    kept = []
    for group in groups:
        strong = [member for member in group if member.score >= strong_score]
        strong_windows = {member.window for member in strong}
        if WHOLE_SQUARE in strong_windows or len(strong_windows) >= MIN_WINDOWS_SEEN:
            kept.append(group)
        elif len({member.window for member in group}) >= MIN_WINDOWS_SEEN_WEAK:
            kept.append(group)
    return kept


@dataclass
class FoundPerson:
    """One person in the detector's square.

    Attributes:
        keypoints: (19, 2) float32 normalised to the square, -1 where missing.
        box: (4,) float32 normalised xyxy around the whole visible person (keypoints plus a margin).
        score: the person (or face) detector's score.
        source: "pose" (the body was found) or "face" (a face without a body).
        off_person: (19,) bool, arm and leg points the landmark model placed off its own segmentation of
            the person (`without_points_off_person` leaves them out); None where no mask was made.
    """

    keypoints: np.ndarray
    box: np.ndarray
    score: float
    source: str
    off_person: np.ndarray | None = None

    @property
    def body_found(self) -> bool:
        return bool(visible(self.keypoints)[list(BODY_POINTS)].any())

    @property
    def face_found(self) -> bool:
        return bool(visible(self.keypoints)[list(FACE_POINTS)].sum() >= 2)

    @property
    def prominence(self) -> float:
        return box_area(self.box) * self.score


def box_area(box: np.ndarray) -> float:
    return float(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))


def box_overlaps(first: np.ndarray, second: np.ndarray) -> tuple[float, float]:
    """(intersection over union, intersection over the smaller box) of two xyxy boxes."""
    low = np.maximum(first[:2], second[:2])
    high = np.minimum(first[2:], second[2:])
    intersection = float(np.prod(np.clip(high - low, 0.0, None)))
    first_area, second_area = box_area(first), box_area(second)
    union = first_area + second_area - intersection
    smaller = min(first_area, second_area)
    return (intersection / union if union > 0 else 0.0, intersection / smaller if smaller > 0 else 0.0)


def keypoint_box(keypoints: np.ndarray) -> np.ndarray | None:
    """The box around a person's visible keypoints, grown to cover the head and a margin; None if none."""
    shown = visible(keypoints)
    if not shown.any():
        return None
    points = keypoints[shown]
    low, high = points.min(axis=0), points.max(axis=0)
    extent = high - low
    margin = BOX_MARGIN * max(float(extent[0]), float(extent[1]), 1e-3)
    low, high = low - margin, high + margin
    face = [index for index in FACE_POINTS if shown[index]]
    shoulders = [index for index in BODY_POINTS[:2] if shown[index]]
    if face and shoulders:  # the top of the head lies well above the eyes
        face_top = float(keypoints[face, 1].min())
        neck = float(keypoints[shoulders, 1].mean()) - face_top
        low[1] = min(low[1], face_top - HEAD_MARGIN * max(neck, 0.0))
    return np.clip(np.concatenate([low, high]), 0.0, 1.0).astype(np.float32)


def is_plausible_person(keypoints: np.ndarray, min_body_points: int) -> bool:
    """Enough of a person to keep: `min_body_points` confident body points, a face (3 of its 5 points)
    on shoulders (a portrait), or a face that fills the picture (`is_close_up_face`). Fits on an empty
    crowd region rarely pass any."""
    shown = visible(keypoints)
    body = int(shown[list(BODY_POINTS)].sum())
    face = int(shown[list(FACE_POINTS)].sum())
    portrait = face >= 3 and bool(shown[list(BODY_POINTS[:2])].all())
    return body >= min_body_points or portrait or is_close_up_face(keypoints)


def lies_on_close_up_face(close_up: FoundPerson, other: FoundPerson) -> bool:
    """`other`'s box lies SAME_PERSON_CONTAINED inside the head of the close-up face `close_up`
    (`is_close_up_face`; `head_region` grown CLOSE_UP_HEAD_SPREADS times the face points' spread). Nobody
    else can be seen there, in front of that head: such a find is the landmark model's fit of a small "body"
    on the close-up's own features (16 of 300 close-up face photos of ../shared/data/faces had one beside
    the close-up; 9 of them got a second row for the same face)."""
    if not is_close_up_face(close_up.keypoints):
        return False
    head = head_region(close_up.keypoints, CLOSE_UP_HEAD_SPREADS)
    low, high = np.maximum(other.box[:2], head[:2]), np.minimum(other.box[2:], head[2:])
    inside = float(np.prod(np.clip(high - low, 0.0, None)))
    return inside >= SAME_PERSON_CONTAINED * max(box_area(other.box), 1e-12)


def lies_on_face_features(owner: FoundPerson, other: FoundPerson) -> bool:
    """`other`'s face (its nose and both eyes) lies inside `owner`'s face, the box of `owner`'s face points
    grown by FACE_FEATURES_MARGIN of their spread, and is less than SMALLER_FACE_RATIO its size (eye distance):
    a fit on `owner`'s features (a nose-sized "head" with limbs across the cheeks), not a second person. Unlike
    `lies_on_close_up_face` it holds for a face of any size and looks at the faces, not at the fit's box, whose
    limbs may reach far past the head (caltech/01432.jpg of ../shared/data/faces: "hips" above the hair)."""
    owner_eyes, other_eyes = eye_distance(owner.keypoints), eye_distance(other.keypoints)
    if owner_eyes is None or other_eyes is None or other_eyes >= SMALLER_FACE_RATIO * owner_eyes:
        return False
    shown = visible(owner.keypoints)
    face = owner.keypoints[[index for index in FACE_POINTS if shown[index]]]
    low, high = face.min(axis=0), face.max(axis=0)
    margin = FACE_FEATURES_MARGIN * max(float(np.max(high - low)), 1e-3)
    other_face = other.keypoints[[NOSE, EYE_1, EYE_2]] if visible(other.keypoints)[NOSE] else other.keypoints[[EYE_1, EYE_2]]
    return bool(((low - margin <= other_face) & (other_face <= high + margin)).all())


def is_close_up_face(keypoints: np.ndarray) -> bool:
    """A face cropped tight (a passport photo, a face dataset's crop): all 5 face points, the eyes at least
    CLOSE_UP_EYE_DISTANCE of the square apart. Its shoulders lie outside the picture, so without this rule
    the people search found nobody in 7 % of such photos that the single-person path embeds. (An animal's
    head close up gets fits with eyes that far apart too, with fewer face points.)"""
    if not visible(keypoints)[list(FACE_POINTS)].all():
        return False
    return eye_distance(keypoints) >= CLOSE_UP_EYE_DISTANCE


def is_same_person(first: FoundPerson, second: FoundPerson) -> bool:
    union_share, contained = box_overlaps(first.box, second.box)
    if union_share >= SAME_PERSON_IOU or same_face(first.keypoints, second.keypoints):
        return True
    if lies_on_close_up_face(first, second) or lies_on_close_up_face(second, first):
        return True
    if lies_on_face_features(first, second) or lies_on_face_features(second, first):
        return True
    # A box inside another is the same person only when their keypoints agree where both have them
    # (a child in front of an adult is inside the adult's box but elsewhere in it).
    if contained < SAME_PERSON_CONTAINED:
        return False
    both = visible(first.keypoints) & visible(second.keypoints)
    if not both.any():
        return False
    scale = max(box_height(first.box), box_height(second.box), 1e-3)
    distance = np.linalg.norm(first.keypoints[both] - second.keypoints[both], axis=1)
    return bool(np.median(distance) < 0.1 * scale)


def same_person_keypoints(first: np.ndarray, second: np.ndarray) -> bool:
    """Two sets of 19 keypoints in one frame describe one person (`is_same_person` on the boxes around
    their points); never when either has no visible point."""
    first_box, second_box = keypoint_box(first), keypoint_box(second)
    if first_box is None or second_box is None:
        return False
    return is_same_person(FoundPerson(first, first_box, 1.0, "pose"), FoundPerson(second, second_box, 1.0, "pose"))


def same_face(first: np.ndarray, second: np.ndarray) -> bool:
    """Both have a face and their face points lie within half a face of each other (one person's head
    fitted twice, e.g. once with a wrong body)."""
    first_region, second_region = head_region(first), head_region(second)
    if first_region is None or second_region is None:
        return False
    first_center, second_center = (first_region[:2] + first_region[2:]) / 2, (second_region[:2] + second_region[2:]) / 2
    face_size = min(box_height(first_region), box_height(second_region)) / (2 * HEAD_REGION_GROWTH)
    return float(np.linalg.norm(first_center - second_center)) < SAME_FACE_DISTANCE * max(face_size, 1e-3)


def box_height(box: np.ndarray) -> float:
    return float(box[3] - box[1])


def merge_finds(finds: list[FoundPerson]) -> list[FoundPerson]:
    """One entry per person: the finds are taken best first (a close-up face, then most visible points,
    then score) and a find that is the same person as one already kept is dropped. A close-up face comes
    first because the landmark model also fits whole "bodies" to its features (a face a tenth its size on
    limbs across the photo), which would otherwise outrank it by their points and stand in for it; a fit
    whose face lies on another find's face (`lies_on_face_features`), close-up or not, is dropped first."""
    # A fit on another find's face is that find's person, whatever its rank: it goes first, so that the
    # face's owner is kept and the fit, ranked above it by its many limb points, cannot stand in for it.
    owned = [find for find in finds if not any(owner is not find and lies_on_face_features(owner, find) for owner in finds)]
    ranked = sorted(owned, key=lambda find: (not is_close_up_face(find.keypoints), -int(visible(find.keypoints).sum()), -find.score))
    kept: list[FoundPerson] = []
    for find in ranked:
        if not any(is_same_person(find, person) for person in kept):
            kept.append(find)
    return kept


def without_points_off_person(person: FoundPerson) -> FoundPerson:
    """The person without the arm and leg points off their segmentation, boxed around what is left: the
    landmark model extends a head-and-shoulders photo with hips and legs on whatever lies below it, which
    would box the wall under the photo and frame the person as a pedestrian. Candidates are ranked and
    merged with every point first (a fit keeps its rank), so only the kept people are trimmed."""
    if person.off_person is None or not (person.off_person & visible(person.keypoints)).any():
        return person
    keypoints = person.keypoints.copy()
    keypoints[person.off_person] = MISSING
    box = keypoint_box(keypoints)
    if box is None:
        return person
    return FoundPerson(keypoints, box, person.score, person.source)


def head_region(keypoints: np.ndarray, growth: float = HEAD_REGION_GROWTH) -> np.ndarray | None:
    """The region a detected face of this person would fall in: the face points' centre +- `growth` times
    their spread (None when no face point is visible)."""
    shown = visible(keypoints)
    face = [index for index in FACE_POINTS if shown[index]]
    if not face:
        return None
    points = keypoints[face]
    center = points.mean(axis=0)
    spread = max(float(np.ptp(points[:, 0])), float(np.ptp(points[:, 1])), 1e-3)
    half = growth * spread
    return np.concatenate([center - half, center + half]).astype(np.float32)


def face_has_body(face_box: np.ndarray, people: list[FoundPerson]) -> bool:
    """True when a person already found has their nose or an eye inside the face box (grown by
    FACE_BOX_GROWTH): that face is theirs."""
    grow = FACE_BOX_GROWTH * (face_box[2:] - face_box[:2])
    low, high = face_box[:2] - grow, face_box[2:] + grow
    for person in people:
        shown = visible(person.keypoints)
        points = person.keypoints[[index for index in (NOSE, EYE_1, EYE_2) if shown[index]]]
        if len(points) and ((low <= points) & (points <= high)).all(axis=1).any():
            return True
    return False


def face_person_box(face_box: np.ndarray) -> np.ndarray:
    """A face-only person's box: the face detector's box grown by FACE_BOX_GROWTH on each side."""
    grow = FACE_BOX_GROWTH * (face_box[2:] - face_box[:2])
    return np.clip(np.concatenate([face_box[:2] - grow, face_box[2:] + grow]), 0.0, 1.0).astype(np.float32)


def similar_roi(first: Roi, second: Roi) -> bool:
    """Two person-detector ROIs that describe the same person (centres close, sizes alike)."""
    size = max(first.size, second.size)
    distance = float(np.hypot(first.center_x - second.center_x, first.center_y - second.center_y))
    return distance < SIMILAR_ROI_DISTANCE * size and min(first.size, second.size) > SIMILAR_ROI_SIZE_RATIO * size


def most_prominent_first(people: list[FoundPerson]) -> list[FoundPerson]:
    return sorted(people, key=lambda person: -person.prominence)


__all__ = [
    "Candidate",
    "confirmed_groups",
    "same_body_candidate",
    "same_face_candidate",
    "FoundPerson",
    "Window",
    "box_overlaps",
    "FACE_ONLY_MIN_SCORE",
    "MIN_PERSON_POINTS",
    "WEAK_BODY_SCORE",
    "face_has_body",
    "face_person_box",
    "is_close_up_face",
    "lies_on_close_up_face",
    "lies_on_face_features",
    "is_plausible_person",
    "keypoint_box",
    "merge_finds",
    "without_points_off_person",
    "most_prominent_first",
    "same_person_keypoints",
    "search_windows",
    "similar_roi",
]
