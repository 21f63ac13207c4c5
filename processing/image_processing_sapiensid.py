"""SapiensID image processor: any photo in, pixel values + 19 keypoints + retina ROI boxes out.

Per image:

1. Decode (file path, bytes, PIL, numpy, torch; EXIF orientation; every mode to RGB, see
   image_decoding.py).
2. ``pixel_values``: the official test transform (white square pad split as (wp // 2, wp - wp // 2),
   bilinear resize without antialiasing to `size`, normalise with `image_mean` / `image_std`), and
   ``pixel_mask`` (1 = real image, 0 = square padding).
3. ``keypoints``: the keypoint detector (default BlazePose + BlazeFace fallback, see
   keypoint_detector.py) on the padded square (an antialiased copy of at most `detector_max_side`
   pixels), points outside the real image dropped, then the official conventions (keypoint_layout.py).
   Or the caller's own keypoints via ``keypoints=``, used as given.
4. ``roi_boxes``: face and upper-body boxes from the keypoints (retina_rois.py, shared with the model).

No alignment step: the model reads the whole square and the keypoints say where the person is.
"""

import copy
import os
from collections.abc import Sequence
from typing import Any, NamedTuple, TypedDict

import numpy as np
import torch
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

# The six `noqa: F401` imports: transformers 4.x copies a local model folder's code into its module cache
# by this file's own relative imports only (5.x, and 4.x from a hub repository, follow them recursively),
# so the files keypoint_detector.py and people_in_image.py need are named here too.
from .blaze_ops import Roi  # noqa: F401
from .centre_cuts import CUT_FEATURES, cut_features, cut_scales
from .detector_assets import DetectorNotAvailableError
from .face_check import face_confirmed, needs_face_check
from .face_frame import cascade_face_box  # noqa: F401
from .face_points import RetinaFaceFivePoints  # noqa: F401
from .hog_pedestrians import pedestrian_rois  # noqa: F401
from .image_decoding import DEFAULT_MAX_IMAGE_PIXELS, SapiensIDInputError, describe_input, load_rgb
from .keypoint_detector import (
    FACE_POINT_SOURCES,
    KEYPOINT_RULES_VERSION,
    PERSON_CHOICES,
    SOURCE_GIVEN,
    BlazePoseDetector,
    KeypointDetector,
    KeypointResult,
    require_choice,
    sees_somebody,
)
from .keypoint_layout import (
    MISSING,
    NUM_KEYPOINTS,
    apply_official_rules,
    drop_outside,
    flip_keypoints,
    visible,
)
from .people_detection import FoundPerson, same_person_keypoints
from .people_in_image import (
    DEFAULT_MAX_PEOPLE,
    DEFAULT_MIN_PERSON_SIZE,
    PeopleInImage,
    keypoints_in_crop,
    people_in_photo,
    with_face_boxes,
)
from .person_crop import ContentBounds  # noqa: F401
from .photo_cuts import pixel_keypoints_in_crop, to_padded_square  # noqa: F401
from .retina_rois import compute_roi_boxes
from .small_person_frame import detected_person, small_person_cut
from .square_resampling import SquarePadding, detector_square, resample_padded_square
from .standing_person_prior import SOURCE_PRIOR, standing_person_keypoints

# Outputs the model reads; the rest of the BatchFeature describes what the detector found.
MODEL_INPUT_NAMES = ["pixel_values", "keypoints", "pixel_mask", "roi_boxes"]
_KEYPOINT_TOLERANCE = 1e-3


class SapiensIDImageProcessorKwargs(TypedDict, total=False):
    """The processor's settings (what `from_pretrained(..., **kwargs)` may override)."""

    size: int | dict[str, int]
    image_mean: Sequence[float]
    image_std: Sequence[float]
    pad_fill: float
    roi_padding: float
    face_min_points: int
    body_min_points: int
    patch_size: int
    detector_max_side: int
    max_image_pixels: int
    min_detection_confidence: float
    min_presence_confidence: float
    min_keypoint_confidence: float
    face_fallback: bool
    person_crop_fallback: bool
    person_choice: str
    face_points: str
    detector_cache_dir: str | None
    standing_person_prior: bool
    embedding_cuts: Sequence[float] | None
    embedding_flip: bool
    frame_small_people: bool


# Settings of the default detector: attributes only (changing one rebuilds it), not per-call arguments.
_DETECTOR_SETTINGS = (
    "detector_cache_dir",
    "min_detection_confidence",
    "min_presence_confidence",
    "min_keypoint_confidence",
    "face_fallback",
    "person_crop_fallback",
    "person_choice",
    "face_points",
)
# Detector settings that joined the keypoint rules after version 2: recorded only when not the default,
# so caches and model folders made with the defaults stay valid.
_LATER_RULES_DEFAULTS = {"person_choice": "prominent", "face_points": "blazeface"}
_CALL_SETTINGS = (
    "size",
    "image_mean",
    "image_std",
    "pad_fill",
    "roi_padding",
    "face_min_points",
    "body_min_points",
    "detector_max_side",
    "max_image_pixels",
    "standing_person_prior",
    "embedding_cuts",
    "embedding_flip",
    "frame_small_people",
)


class SapiensIDImageProcessor(BaseImageProcessor):
    r"""Prepares any picture of a person for [`SapiensIDModel`], with no alignment step.

    Args:
        size (`int` or `dict`, defaults to 384): side of the square model input (``{"height": s, "width": s}``).
        image_mean, image_std (`list[float]`, defaults to 0.5): normalisation after scaling to [0, 1].
        pad_fill (`float`, defaults to 1.0): square-padding value in [0, 1] (white, official ``SquarePad(fill=1)``).
        roi_padding (`float`, defaults to 0.3), face_min_points (`int`, defaults to 2), body_min_points
            (`int`, defaults to 3): retina ROI rule of the official kp19 preprocessor.
        patch_size (`int`, defaults to 32): retina patch size, for the visualisation's patch grid.
        detector_max_side (`int`, defaults to 768): side of the detector's copy of the padded square.
        max_image_pixels (`int`, defaults to 50_000_000): files above this are decoded at reduced
            scale (JPEG) or refused (other formats).
        min_detection_confidence, min_presence_confidence, min_keypoint_confidence (`float`, defaults to 0.5):
            thresholds of the default detector; a keypoint below `min_keypoint_confidence` is -1.
        face_fallback (`bool`, defaults to `True`): run the face detector when no body is found.
        person_crop_fallback (`bool`, defaults to `True`): when the person detector finds nobody in a tall
            image, take the image as a crop of one person (re-identification crops; see person_crop.py).
        person_choice (`str`, defaults to `"prominent"`): whose keypoints a photo of several people gives:
            "prominent" (largest body area x detection score) or "confidence" (the highest detection score,
            the official aligner's rule). Recorded in `keypoint_rules` when not the default.
        face_points (`str`, defaults to `"blazeface"`): where the five face points (eyes, nose, mouth
            corners) come from: "blazeface" (BlazePose's, or BlazeFace's nose and eyes without mouth
            corners when nobody is found) or "retinaface" (the official aligner's rule: RetinaFace on the
            square head crop, or the whole image when nobody is found; needs onnxruntime and
            `sapiensid download-detector --retinaface`). Recorded in `keypoint_rules` when not the default.
        standing_person_prior (`bool`, defaults to `False`): declare every image a crop of one standing person
            (re-identification data): an image in which the detector finds nobody gets the body points of
            an upright person filling it (standing_person_prior.py; ``keypoint_source`` "prior") instead of
            no keypoints. Never turn it on for arbitrary photos: it guesses a person.
        embedding_cuts (`list[float]`, *optional*): the model folder's embedding rule of centre cuts, e.g.
            ``[1.0, 0.95, 0.9]``: each image also yields its cuts about the centre to 0.95 and 0.9 of its width
            and height (centre_cuts.py; the detector runs on each cut), which the model folds into its pooled
            output (the mean of the unit embeddings of the photo and its cuts). None (default) or ``[1.0]``:
            the photo as it is. Pass ``embedding_cuts=None`` to a call for the photo alone.
        embedding_flip (`bool`, defaults to `False`): flip test-time augmentation, the rest of a folder's
            embedding rule: each image (and each cut) also yields the keypoints of its mirror image, and the
            model adds the embedding of the mirrored pixels at them (as the official evaluators do).
        frame_small_people (`bool`, defaults to `False`): a person the detector found who fills little of
            the photo (the frame they would be cut to covers less than half of it) is cut from the
            full-resolution photo, framed like the training photos, and that cut is the picture (the
            detector runs again on it; small_person_frame.py). And where the detector's first look at the
            whole photo finds nobody, the photo is searched as `detect_people` searches it (its tiles,
            upright silhouettes, faces) and the most prominent person found is the one embedded: a person
            covering a twentieth of a street photo is mostly missed by the first look. A face the first look
            found without a body counts only at the face score the search asks of a lone face (0.75: flowers,
            gift-box prints and animal faces reach 0.50-0.75); a weaker one is searched for like nobody. On in
            the shipped model's folder: the model hardly recognises a person who fills a fifth of the picture.
            Never for given keypoints.
        detector_cache_dir (`str`, *optional*): directory of the detector files (default:
            $SAPIENSID_DETECTOR_DIR or ~/.cache/sapiensid_hf/detector).
        detector (`KeypointDetector`, *optional*): a detector object to use instead of the default one
            (not saved by `save_pretrained`).

    Calling it returns a [`BatchFeature`] with, for B images and S = size:

    - ``pixel_values`` (B, 3, S, S) float32, ``pixel_mask`` (B, S, S) int64 (1 = image, 0 = padding),
      ``keypoints`` (B, 19, 2) float32 (normalised to the square, -1 = missing), ``roi_boxes``
      (B, 2, 4) float32 ([face, upper body] normalised xyxy, -1 rows = none; the full image is
      always used): the model inputs, also listed in ``MODEL_INPUT_NAMES``.
    - ``person_found`` (B,) bool: someone was found (body or face); ``face_found`` (B,) bool: a face
      box exists; ``num_people`` (B,) int64: people the detector saw (-1 when keypoints were given);
      ``chosen_person`` (B,) int64: index into ``person_boxes`` of the person the keypoints describe
      (-1 if none); ``person_box`` (B, 4): that person's box (-1 if none); ``person_boxes``: list of
      (P, 4) boxes, most prominent first; ``keypoint_source``: list of "pose", "crop", "face", "none",
      "given", or "prior" (the standing-person prior); ``detection_score`` (B,) float32: the detector's score
      of the person (or lone face) the keypoints describe, NaN where it gives none.
    - ``framed`` (B,) bool: the picture is the cut of a small person (`frame_small_people`); then the
      model inputs, the keypoints and the boxes above are the cut's (``num_people`` stays the photo's
      count), ``frame_box`` (B, 4) float32 is the cut in the photo's pixels (xyxy; -1 where not framed)
      and ``original_sizes`` (B, 2) int64 the photo's (height, width): small_person_frame.py's
      `cut_points_in_photo` maps the cut's points into the photo's square.
    - With `embedding_cuts` beyond 1.0 (C cuts), the cuts' model inputs: ``cut_pixel_values`` (B, 3 * C, S, S)
      (each cut's three channels in turn), ``cut_pixel_mask`` (B, C, S, S), ``cut_keypoints`` (B, C, 19, 2).
      The other outputs are the photo's.
    - With `embedding_flip`: ``mirrored_keypoints`` (B, 19, 2), the keypoints of each mirrored image (x -> 1 - x,
      left and right swapped), and with cuts ``cut_mirrored_keypoints`` (B, C, 19, 2).

    No person found is not an error here: keypoints are all -1 and ``person_found`` is False. The model's
    semantic head pools at keypoints only, so every such image gets one and the same embedding, whatever
    the photo: the tools refuse to score it, and so should any caller (check ``person_found``).
    """

    model_input_names = MODEL_INPUT_NAMES
    valid_kwargs = SapiensIDImageProcessorKwargs

    def __init__(
        self,
        size: int | dict[str, int] = 384,
        image_mean: Sequence[float] = (0.5, 0.5, 0.5),
        image_std: Sequence[float] = (0.5, 0.5, 0.5),
        pad_fill: float = 1.0,
        roi_padding: float = 0.3,
        face_min_points: int = 2,
        body_min_points: int = 3,
        patch_size: int = 32,
        detector_max_side: int = 768,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        min_detection_confidence: float = 0.5,
        min_presence_confidence: float = 0.5,
        min_keypoint_confidence: float = 0.5,
        face_fallback: bool = True,
        person_crop_fallback: bool = True,
        person_choice: str = "prominent",
        face_points: str = "blazeface",
        detector_cache_dir: str | None = None,
        standing_person_prior: bool = False,
        embedding_cuts: Sequence[float] | None = None,
        embedding_flip: bool = False,
        frame_small_people: bool = False,
        detector: KeypointDetector | None = None,
        **kwargs,
    ):
        recorded = kwargs.pop("keypoint_rules_version", None)
        super().__init__(**kwargs)
        self.size = {"height": _square_side(size), "width": _square_side(size)}
        self.image_mean = [float(value) for value in image_mean]
        self.image_std = [float(value) for value in image_std]
        self.pad_fill = float(pad_fill)
        self.roi_padding = float(roi_padding)
        self.face_min_points = int(face_min_points)
        self.body_min_points = int(body_min_points)
        self.patch_size = int(patch_size)
        self.detector_max_side = int(detector_max_side)
        self.max_image_pixels = int(max_image_pixels)
        self.min_detection_confidence = float(min_detection_confidence)
        self.min_presence_confidence = float(min_presence_confidence)
        self.min_keypoint_confidence = float(min_keypoint_confidence)
        self.face_fallback = bool(face_fallback)
        self.person_crop_fallback = bool(person_crop_fallback)
        self.person_choice = require_choice("person_choice", person_choice, PERSON_CHOICES)
        self.face_points = require_choice("face_points", face_points, FACE_POINT_SOURCES)
        self.standing_person_prior = bool(standing_person_prior)
        self.embedding_cuts = _recorded_cuts(embedding_cuts)
        self.embedding_flip = bool(embedding_flip)
        self.frame_small_people = bool(frame_small_people)
        if recorded is not None and recorded != self.keypoint_rules_version:
            raise ValueError(
                f"this processor config records keypoint_rules_version={recorded}, but its settings give "
                f"version {self.keypoint_rules_version} (version 1 = person_crop_fallback off, "
                f"{KEYPOINT_RULES_VERSION} = on): the model folder and the settings disagree"
            )
        self.detector_cache_dir = os.fspath(detector_cache_dir) if detector_cache_dir is not None else None
        self._detector = None
        self._detector_built_with = None
        self._detector_threads: int | None = None  # a runtime choice, not a setting: never saved
        if detector is not None:
            self.detector = detector

    @classmethod
    def from_model_config(cls, config: Any, **kwargs) -> "SapiensIDImageProcessor":
        """A processor matching a `SapiensIDConfig` (input size, normalisation, padding, ROI rule)."""
        settings = {
            "size": config.image_size,
            "image_mean": config.image_mean,
            "image_std": config.image_std,
            "pad_fill": config.pad_fill,
            "roi_padding": config.roi_padding,
            "face_min_points": config.face_min_points,
            "body_min_points": config.body_min_points,
            "patch_size": config.patch_size,
        }
        settings.update(kwargs)
        return cls(**settings)

    @property
    def keypoint_rules_version(self) -> int:
        """1: scene person detector + face fallback; 2: adds the person-crop fallback."""
        return KEYPOINT_RULES_VERSION if self.person_crop_fallback else 1

    @property
    def keypoint_rules(self) -> dict[str, Any]:
        """What decides the detected keypoints (rules version, detector settings, detector input side):
        keypoints made under other rules must be detected again, not reused."""
        rules = {"version": self.keypoint_rules_version, "detector_max_side": self.detector_max_side}
        for name in _DETECTOR_SETTINGS:
            value = getattr(self, name)
            if name != "detector_cache_dir" and _LATER_RULES_DEFAULTS.get(name, object()) != value:
                rules[name] = value
        if self._detector is not None and self._detector_built_with is None:
            rules["detector"] = type(self._detector).__qualname__  # a plug-in detector
        if self.standing_person_prior:  # cached keypoints would hold guessed people
            rules["standing_person_prior"] = True
        return rules

    @property
    def image_size(self) -> int:
        return self.size["height"]

    @property
    def detector(self) -> KeypointDetector:
        """The keypoint detector. The default BlazePose one is created on first use, and again whenever
        one of its settings (detector_cache_dir, the min_*_confidence thresholds, face_fallback) changed
        or the processor is used in another process (e.g. a forked DataLoader worker)."""
        # The process id is part of the key: native interpreters are not carried across a fork.
        wanted = (*(getattr(self, name) for name in _DETECTOR_SETTINGS), self._detector_threads, os.getpid())
        if self._detector is None or (
            self._detector_built_with is not None and self._detector_built_with != wanted
        ):
            self._detector = BlazePoseDetector(
                cache_dir=self.detector_cache_dir,
                min_detection_confidence=self.min_detection_confidence,
                min_presence_confidence=self.min_presence_confidence,
                min_keypoint_confidence=self.min_keypoint_confidence,
                face_fallback=self.face_fallback,
                person_crop_fallback=self.person_crop_fallback,
                person_choice=self.person_choice,
                face_points=self.face_points,
                num_threads=self._detector_threads,
            )
            self._detector_built_with = wanted
        return self._detector

    @detector.setter
    def detector(self, detector: KeypointDetector | None) -> None:
        if detector is not None and not callable(getattr(detector, "detect", None)):
            raise TypeError(
                f"a detector needs a `detect(square_rgb_uint8) -> KeypointResult` method, got {detector!r}"
            )
        self._detector = detector
        self._detector_built_with = None  # a plug-in is used as it is

    def set_detector_threads(self, num_threads: int | None) -> None:
        """Threads of each default-detector model (None: the runtime's default). A parallel job gives its
        worker processes one thread each. Not saved with the processor; a plugged-in detector ignores it."""
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be at least 1 or None, got {num_threads}")
        self._detector_threads = num_threads

    def __call__(
        self, images: Any, keypoints: Any = None, return_tensors: str | None = "pt", cut_keypoints: Any = None, **kwargs
    ) -> BatchFeature:
        return self.preprocess(images, keypoints=keypoints, return_tensors=return_tensors, cut_keypoints=cut_keypoints, **kwargs)

    def preprocess(
        self, images: Any, keypoints: Any = None, return_tensors: str | None = "pt", cut_keypoints: Any = None, **kwargs
    ) -> BatchFeature:
        """Process one image or a list / batch of images; see the class docstring for the outputs.

        Args:
            images: a file path, encoded bytes, PIL image, numpy array (HWC / CHW / HW) or torch tensor,
                a list of those, or a 4-D array / tensor holding a batch.
            keypoints: optional (B, 19, 2) (or (19, 2) for one image) keypoints normalised to the padded
                square, -1 = missing, used instead of running the detector.
            return_tensors: "pt" (default) or "np" / None for numpy arrays.
            cut_keypoints: optional (B, C, 19, 2) keypoints of the C centre cuts of each image (the
                ``cut_keypoints`` of an earlier call on the same images and keypoints), used instead of
                running the detector on the cuts.
            kwargs: a constructor setting overriding it for this call (not the detector's settings:
                set those on the processor).
        """
        settings = self._call_settings(kwargs)
        return_tensors = _tensor_type(return_tensors)
        image_list = _as_image_list(images)
        given = _validate_keypoints(keypoints, len(image_list)) if keypoints is not None else None
        size = _square_side(settings["size"])
        fill = settings["pad_fill"] * 255.0
        mean = np.asarray(settings["image_mean"], dtype=np.float32)
        std = np.asarray(settings["image_std"], dtype=np.float32)
        scales = cut_scales(settings["embedding_cuts"])[1:]
        cut_keypoints = _validate_cut_keypoints(cut_keypoints, len(image_list), len(scales))
        # Each cut is prepared like a photo, with this call's settings, and has no cuts, mirror or frame of its own.
        cut_settings = {**settings, "embedding_cuts": None, "embedding_flip": False, "frame_small_people": False}

        def prepare_cut(cut_images: list[np.ndarray], at: np.ndarray | None) -> BatchFeature:
            return self.preprocess(cut_images, keypoints=at, return_tensors="np", **cut_settings)

        pixel_values, pixel_masks, results, cuts, frames = [], [], [], [], []
        for index, image in enumerate(image_list):
            name = describe_input(image, index)
            rgb = load_rgb(image, name, settings["max_image_pixels"])
            padding = SquarePadding.of(*rgb.shape[:2])
            frame = _Frame(None, *rgb.shape[:2], -1)
            if given is not None:
                result = KeypointResult(keypoints=given[index], source=SOURCE_GIVEN)
            else:
                result = self._detect(rgb, padding, settings, name)
                if settings["standing_person_prior"] and not visible(result.keypoints).any():
                    # The caller declared the image a person crop: its extent is the person's.
                    prior = standing_person_keypoints(padding.content_box())
                    result = KeypointResult(keypoints=prior, person_boxes=result.person_boxes, source=SOURCE_PRIOR)
                elif settings["frame_small_people"]:
                    if result.is_weak_lone_face or result.shows_too_little:
                        # The tools embed people only: a lone face must meet the people search's standard,
                        # and a find must show enough of a person for the model to read (MIN_PERSON_POINTS).
                        result = KeypointResult()
                    if not visible(result.keypoints).any():
                        result = self._searched_for_people(rgb, padding, result, settings, name)
                    frame = frame._replace(people=result.num_people)
                    rgb, result, box = self._frame_small_person(rgb, result, settings, name)
                    frame = frame._replace(box=box)
                    padding = SquarePadding.of(*rgb.shape[:2])
            pixels = resample_padded_square(rgb, size, fill=fill) / 255.0
            pixel_values.append(((pixels - mean) / std).transpose(2, 0, 1))
            pixel_masks.append(padding.content_mask(size))
            results.append(result)
            frames.append(frame)
            if scales:
                known = None if cut_keypoints is None else cut_keypoints[index]
                cuts.append(cut_features(prepare_cut, rgb, result.keypoints, scales, name, known))
        features = self._assemble(pixel_values, pixel_masks, results, frames, settings, return_tensors)
        data = {key: np.concatenate([cut[key] for cut in cuts]) for key in CUT_FEATURES.values()} if cuts else {}
        if settings["embedding_flip"]:
            data["mirrored_keypoints"] = flip_keypoints(np.stack([result.keypoints for result in results]))
            if cuts:
                data["cut_mirrored_keypoints"] = flip_keypoints(data[CUT_FEATURES["keypoints"]])
        if data:
            features.update(BatchFeature(data=data, tensor_type=return_tensors))
        return features

    def detect_people(
        self,
        image: Any,
        max_people: int = DEFAULT_MAX_PEOPLE,
        min_person_size: float = DEFAULT_MIN_PERSON_SIZE,
        face_boxes: bool = True,
    ) -> PeopleInImage:
        """Every person in one photo, most prominent first (people_in_image.py, people_detection.py).

        Each person has a box and 19 keypoints in the photo's pixels, a detection score, and whether the
        body and the face were seen. People whose box is smaller than `min_person_size` pixels (longer
        side) are skipped and counted; at most `max_people` are returned (`cap_reached` says so).
        `Person.crop_box` is the part of the photo to embed that person from. `face_boxes`: frame a
        person seen without legs around the box OpenCV's face detector finds (face_frame.py: the rule the
        model's face photos were cut with); False frames every face from its keypoints alone.
        """
        name = describe_input(image, 0)
        rgb = load_rgb(image, name, self.max_image_pixels)
        if not hasattr(self.detector, "detect_people"):  # a ValueError: the tools report it as a message, not a traceback
            raise ValueError(
                f"the keypoint detector {type(self.detector).__name__} finds one person per image; "
                "detect_people needs a detector with a detect_people method (the default BlazePose detector)"
            )
        finds = self._found_people(rgb, self.detector_max_side, self.pad_fill, name)
        people = people_in_photo(finds, rgb.shape[0], rgb.shape[1], max_people, min_person_size)
        return with_face_boxes(people, rgb) if face_boxes else people

    def _found_people(self, rgb: np.ndarray, max_side: int, pad_fill: float, name: str) -> list[FoundPerson]:
        """Every person the detector's people search finds in the photo `rgb`, most prominent first, keypoints
        normalised to its padded square under the official conventions."""
        square = detector_square(rgb, max_side, fill=round(pad_fill * 255))
        try:
            finds = self.detector.detect_people(square)
        except DetectorNotAvailableError:
            raise
        except Exception as error:
            raise RuntimeError(f"{name}: the keypoint detector failed ({type(error).__name__}: {error})") from error
        return [FoundPerson(apply_official_rules(find.keypoints), find.box, find.score, find.source) for find in finds]

    def _call_settings(self, overrides: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(overrides) - set(_CALL_SETTINGS))
        if unknown:
            hint = (
                " (detector settings are set on the processor, not per call)"
                if set(unknown) & set(_DETECTOR_SETTINGS)
                else ""
            )
            raise TypeError(
                f"unexpected argument(s) {', '.join(unknown)}{hint}; per-call settings are {', '.join(_CALL_SETTINGS)}"
            )
        return {name: overrides.get(name, getattr(self, name)) for name in _CALL_SETTINGS}

    def _detect(
        self, rgb: np.ndarray, padding: SquarePadding, settings: dict[str, Any], name: str
    ) -> KeypointResult:
        square = detector_square(rgb, settings["detector_max_side"], fill=round(settings["pad_fill"] * 255))
        try:
            result = self.detector.detect(square)
        except DetectorNotAvailableError:
            raise
        except Exception as error:
            raise RuntimeError(
                f"{name}: the keypoint detector failed ({type(error).__name__}: {error})"
            ) from error
        keypoints = np.asarray(result.keypoints, dtype=np.float32)
        person_boxes = np.asarray(result.person_boxes, dtype=np.float32).reshape(-1, 4)
        if keypoints.shape != (NUM_KEYPOINTS, 2):
            raise ValueError(
                f"the detector returned keypoints of shape {keypoints.shape}, expected ({NUM_KEYPOINTS}, 2)"
            )
        if not -1 <= result.chosen_person < len(person_boxes):
            raise ValueError(
                f"the detector returned chosen_person={result.chosen_person} for {len(person_boxes)} people"
            )
        keypoints = apply_official_rules(drop_outside(keypoints, padding.content_box()))
        return KeypointResult(
            keypoints=keypoints,
            person_boxes=person_boxes,
            chosen_person=result.chosen_person,
            source=result.source,
            score=getattr(result, "score", None),
        )

    def _searched_for_people(
        self, rgb: np.ndarray, padding: SquarePadding, first_look: KeypointResult, settings: dict[str, Any], name: str
    ) -> KeypointResult:
        """The most prominent person the people search (`detect_people`: the photo's tiles, upright
        silhouettes, faces) finds in a photo where the detector's first look found nobody, or `first_look`.
        The first look reads the whole photo at the detector's input size (224 pixels for BlazePose, whose
        person detector keys on the face), where the face of a person covering a twentieth of a street photo
        is a few pixels wide; the search, which also reads the photo's tiles, finds most of them.
        People under DEFAULT_MIN_PERSON_SIZE pixels are left out (too small to recognise), as detect_people
        leaves them out; so is the search with a detector that has none."""
        if not hasattr(self.detector, "detect_people"):
            return first_look
        finds = self._found_people(rgb, settings["detector_max_side"], settings["pad_fill"], name)
        people = people_in_photo(finds, *rgb.shape[:2]).people
        if not people:
            return first_look
        boxes = [to_padded_square(np.reshape(person.box, (2, 2)), padding).reshape(4) for person in people]
        keypoints = drop_outside(to_padded_square(people[0].keypoints, padding), padding.content_box())
        return KeypointResult(
            keypoints=keypoints, person_boxes=np.stack(boxes), chosen_person=0, source=people[0].source, score=people[0].score
        )

    def _frame_small_person(
        self, rgb: np.ndarray, result: KeypointResult, settings: dict[str, Any], name: str
    ) -> tuple[np.ndarray, KeypointResult, tuple[int, int, int, int] | None]:
        """(picture, its keypoints, the cut's pixel box or None): the photo as it is, or, when its chosen person
        fills little of it, that person's frame cut from it (small_person_frame.py) with the detector's
        person there, or the person's own keypoints mapped into the cut where it finds somebody else (a
        person is never embedded from another person's keypoints; as embed_people does). Where the detector
        finds nobody in the person's own frame (or a face too weak to count alone), the find is not
        confirmed: the photo as it is, without a person (flowers, animals and prints fool the detector's
        look at a whole photo, and rarely its look at their frame; real people are seen again). So is a
        person showing a face and no legs whose face OpenCV's YuNet does not confirm (face_check.py)."""
        box = result.person_boxes[result.chosen_person] if result.chosen_person >= 0 else np.full(4, MISSING, np.float32)
        if self._face_unconfirmed(rgb, result, box):
            return rgb, KeypointResult(person_boxes=result.person_boxes), None
        found = small_person_cut(rgb, result.keypoints, box, result.source)
        if found is None:
            return rgb, result, None
        person, crop = found
        left, top, right, bottom = crop
        cut = np.ascontiguousarray(rgb[top:bottom, left:right])
        detected = self._detect(cut, SquarePadding.of(*cut.shape[:2]), settings, f"{name}, its person's frame")
        if not self._sees_somebody(detected):
            return rgb, KeypointResult(person_boxes=result.person_boxes), None
        own = apply_official_rules(keypoints_in_crop(person, crop))
        if not same_person_keypoints(own, detected.keypoints):
            detected = KeypointResult(keypoints=own, source=SOURCE_GIVEN)
        return cut, detected, crop

    def _face_unconfirmed(self, rgb: np.ndarray, result: KeypointResult, box: np.ndarray) -> bool:
        """A detected person who shows a face and no legs, and whose face YuNet does not confirm (face_check.py):
        an animal's head, not a person."""
        person = detected_person(result.keypoints, box, result.source, *rgb.shape[:2])
        if person is None or not needs_face_check(person.keypoints):
            return False
        return not face_confirmed(rgb, person.keypoints, self.detector_cache_dir)

    @staticmethod
    def _sees_somebody(result: KeypointResult) -> bool:
        """The detector's look at a person's own frame confirms a person there (`sees_somebody`)."""
        return sees_somebody(result.keypoints, result.source, result.score)

    def _assemble(
        self,
        pixel_values: list[np.ndarray],
        pixel_masks: list[np.ndarray],
        results: list[KeypointResult],
        frames: list["_Frame"],
        settings: dict[str, Any],
        return_tensors: str,
    ) -> BatchFeature:
        keypoints = np.stack([result.keypoints for result in results]).astype(np.float32)
        face_boxes, body_boxes = compute_roi_boxes(
            torch.from_numpy(keypoints),
            padding=settings["roi_padding"],
            face_min_points=settings["face_min_points"],
            body_min_points=settings["body_min_points"],
        )
        no_box = np.full(4, MISSING, dtype=np.float32)
        data = {
            "pixel_values": np.stack(pixel_values).astype(np.float32),
            "pixel_mask": np.stack(pixel_masks).astype(np.int64),
            "keypoints": keypoints,
            "roi_boxes": torch.stack([face_boxes, body_boxes], dim=1).numpy(),
            "person_found": visible(keypoints).any(axis=1),
            "face_found": (face_boxes != MISSING).any(dim=1).numpy(),
            "num_people": np.array(
                [
                    frame.people if frame.box is not None else -1 if result.source == SOURCE_GIVEN else result.num_people
                    for result, frame in zip(results, frames, strict=True)
                ],
                dtype=np.int64,
            ),
            "chosen_person": np.array([result.chosen_person for result in results], dtype=np.int64),
            "person_box": np.stack(
                [
                    result.person_boxes[result.chosen_person] if result.chosen_person >= 0 else no_box
                    for result in results
                ]
            ).astype(np.float32),
            "detection_score": np.array([np.nan if r.score is None else r.score for r in results], dtype=np.float32),
            "framed": np.array([frame.box is not None for frame in frames], dtype=bool),
            "frame_box": np.array([frame.box or no_box for frame in frames], dtype=np.float32).reshape(-1, 4),
            "original_sizes": np.array([(frame.height, frame.width) for frame in frames], dtype=np.int64).reshape(-1, 2),
        }
        features = BatchFeature(data=data, tensor_type=return_tensors)
        convert = torch.from_numpy if return_tensors == "pt" else np.asarray
        features["person_boxes"] = [convert(result.person_boxes.astype(np.float32)) for result in results]
        features["keypoint_source"] = [result.source for result in results]
        return features

    def to_dict(self) -> dict[str, Any]:
        # The detector object (model runtimes, possibly user code) is not a setting and is never saved.
        output = {
            key: copy.deepcopy(value) for key, value in self.__dict__.items() if not key.startswith("_")
        }
        output["image_processor_type"] = type(self).__name__
        output["keypoint_rules_version"] = self.keypoint_rules_version
        return output

    def __getstate__(self) -> dict[str, Any]:
        # The default detector holds native interpreters; it is rebuilt lazily after unpickling.
        state = self.__dict__.copy()
        if state.get("_detector_built_with") is not None:
            state["_detector"], state["_detector_built_with"] = None, None
        return state


class _Frame(NamedTuple):
    """Where an image's picture came from: the photo (`box` None) or the cut `box` (xyxy pixels) of a small
    person; the photo's `height` x `width` and the people the detector saw in it (-1: not counted)."""

    box: tuple[int, int, int, int] | None
    height: int
    width: int
    people: int


def _recorded_cuts(value: Sequence[float] | None) -> list[float] | None:
    """The setting as saved: the scales of a rule of centre cuts, or None for the photo as it is."""
    scales = cut_scales(value)
    return list(scales) if scales[1:] else None


def _tensor_type(return_tensors: str | None) -> str:
    if return_tensors in ("pt", "np", None):
        return return_tensors or "np"
    raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")


def _square_side(size: int | dict[str, int]) -> int:
    if isinstance(size, int) and not isinstance(size, bool):
        side = size
    elif isinstance(size, dict) and {"height", "width"} <= set(size) and size["height"] == size["width"]:
        side = int(size["height"])
    elif isinstance(size, dict) and set(size) == {"shortest_edge"}:
        side = int(size["shortest_edge"])
    else:
        raise ValueError(f"size must be an int or a square {{'height': s, 'width': s}} dict, got {size!r}")
    if side < 1:
        raise ValueError(f"size must be positive, got {side}")
    return side


def _as_image_list(images: Any) -> list[Any]:
    if isinstance(images, list | tuple):
        if not images:
            raise SapiensIDInputError("no images given (empty list)")
        for index, image in enumerate(images):
            if isinstance(image, list | tuple):
                raise SapiensIDInputError(
                    f"image {index} is itself a {type(image).__name__}; pass a flat list of images"
                )
        return list(images)
    ndim = getattr(images, "ndim", None)
    if ndim == 4 and (isinstance(images, np.ndarray) or torch.is_tensor(images)):
        if len(images) == 0:
            raise SapiensIDInputError("no images given (empty batch)")
        return list(images)
    return [images]


def _validate_cut_keypoints(cut_keypoints: Any, batch_size: int, cuts: int) -> np.ndarray | None:
    """(B, C, 19, 2) float32 cut keypoints, or None; each cut's are checked like `keypoints` when used."""
    if cut_keypoints is None:
        return None
    if not cuts:
        raise SapiensIDInputError("cut_keypoints given, but this call makes no centre cuts (embedding_cuts)")
    values = _float_array(cut_keypoints, "cut_keypoints")
    if values.shape != (batch_size, cuts, NUM_KEYPOINTS, 2):
        raise SapiensIDInputError(
            f"cut_keypoints must have shape ({batch_size}, {cuts}, {NUM_KEYPOINTS}, 2) for {batch_size} image(s) "
            f"with {cuts} centre cut(s) each, got {values.shape}"
        )
    return values


def _float_array(values: Any, name: str) -> np.ndarray:
    """`values` (numpy, torch, nested lists) as a float32 array, or a SapiensIDInputError naming `name`."""
    if torch.is_tensor(values):
        values = values.detach().cpu().numpy()
    try:
        return np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise SapiensIDInputError(f"{name} could not be read as a float array ({error})") from error


def _validate_keypoints(keypoints: Any, batch_size: int) -> np.ndarray:
    values = _float_array(keypoints, "keypoints")
    if values.shape == (NUM_KEYPOINTS, 2) and batch_size == 1:
        values = values[None]
    if values.shape != (batch_size, NUM_KEYPOINTS, 2):
        raise SapiensIDInputError(
            f"keypoints must have shape ({batch_size}, {NUM_KEYPOINTS}, 2) for {batch_size} image(s), got {values.shape}"
        )
    missing = values == MISSING
    if (missing[..., 0] != missing[..., 1]).any():
        raise SapiensIDInputError("a missing keypoint must have both coordinates -1")
    present = values[~missing]
    if not np.isfinite(present).all():
        raise SapiensIDInputError("keypoints must be finite")
    if present.size and (present.min() < -_KEYPOINT_TOLERANCE or present.max() > 1 + _KEYPOINT_TOLERANCE):
        raise SapiensIDInputError(
            "keypoints must be normalised to the padded square ([0, 1]) or exactly -1 for a missing point; "
            f"found values in [{present.min():g}, {present.max():g}]"
        )
    return np.where(missing, MISSING, np.clip(values, 0.0, 1.0)).astype(np.float32)


SapiensIDImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = ["MODEL_INPUT_NAMES", "SapiensIDImageProcessor", "SapiensIDInputError"]
