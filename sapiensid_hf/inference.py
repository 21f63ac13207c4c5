"""Load a SapiensID model + processor and turn images into identity embeddings.

Shared by the CLI, the quickstart and the Space so they all load and embed the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .cut_views import CONFIG_KEY as CUTS_CONFIG_KEY
from .cut_views import PHOTO_AS_IT_IS, embedding_cuts
from .embedding_views import embed_images
from .modeling import SapiensIDConfig, SapiensIDModel
from .people_embedding import PeopleEmbeddings, embed_people
from .pretrained import shipped_model_dir
from .processing.people_in_image import PERSON_FRAME_SCALES
from .small_person_framing import in_photo

logger = logging.getLogger(__name__)

MODEL_ENV_VAR = "SAPIENSID_MODEL"
UNTRAINED_WARNING = (
    "NO TRAINED WEIGHTS: this SapiensID model is randomly initialised. Its embeddings and similarity "
    "scores carry no identity information; use the shipped model (no --model), convert the official "
    "checkpoint (`sapiensid convert-official`) or pass --model with a trained folder / hub id."
)
UNTRAINED_SOURCE = "untrained"  # --model untrained: a randomly initialised tiny model, on purpose


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 (first 16 hex digits) over every parameter and buffer, in name order, and the model's embedding
    rule when it averages centre cuts (cut_views.py): which embeddings filled a file or an index, so that
    queries embedded otherwise (another model, or the same weights under another rule) are refused."""
    digest = hashlib.sha256()
    scales = embedding_cuts(model.config) if hasattr(model, "config") else PHOTO_AS_IT_IS
    if scales != PHOTO_AS_IT_IS:  # a folder without the rule keeps the fingerprint it always had
        digest.update(json.dumps({"embedding_cuts": scales}).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class EmbeddingResult:
    """Embeddings and what the processor found, one row per image."""

    embeddings: np.ndarray  # (N, D) L2-normalised float32
    keypoints: np.ndarray  # (N, 19, 2) normalised in the padded square, -1 = missing
    roi_boxes: np.ndarray  # (N, 2, 4) face, upper-body boxes, -1 = none
    person_found: np.ndarray  # (N,) bool
    face_found: np.ndarray  # (N,) bool
    person_box: np.ndarray  # (N, 4) box of the person the keypoints describe, normalised xyxy, -1 = none
    num_people: np.ndarray  # (N,) people the detector saw (-1 when keypoints were given)
    framed: np.ndarray  # (N,) bool: embedded from the person's cut, who fills little of the photo (processing/small_person_frame.py)


def concatenate_results(results: Sequence[EmbeddingResult]) -> EmbeddingResult:
    """Rows of several results, in order, as one."""
    return EmbeddingResult(
        **{name: np.concatenate([getattr(result, name) for result in results]) for name in EmbeddingResult.__dataclass_fields__}
    )


class SapiensIDPipeline:
    """Model + processor; `embed` takes any images the processor accepts."""

    def __init__(
        self,
        model: SapiensIDModel,
        processor: Any,
        trained: bool,
        device: str | torch.device = "cpu",
        source: str | None = None,
    ):
        self.model = model.to(device).eval()
        self.processor = processor
        self.trained = trained
        self.device = torch.device(device)
        self.source = source  # what was loaded: a folder, a hub id, or None for an untrained model
        # Cut a person who fills little of the photo before embedding them (processing/small_person_frame.py);
        # off for pictures known to be crops of one person (`--person-crops`).
        self.frame_small_people = True

    @property
    def description(self) -> str:
        """One line naming the model, for what the tools print and save."""
        if self.source is None:
            return "untrained tiny model (random weights)"
        shipped = shipped_model_dir()
        if shipped is not None and Path(self.source) == shipped:
            return f"sapiensid-small (the shipped default model, {self.source})"
        return self.source if self.trained else f"{self.source} (UNTRAINED: its config has no training record)"

    @torch.no_grad()
    def embed_batches(
        self, images: Sequence[Any], batch_size: int = 8, flip: bool = True, num_workers: int = 0,
        frame_small_people: bool | None = None,
    ) -> Iterator[tuple[list[int], EmbeddingResult | None, list[tuple[int, BaseException]]]]:
        """Embeddings batch by batch, in order: (indices of the images embedded, their result, failures as
        (index, exception)). `num_workers` processes decode and detect (parallel_processing) while the
        model runs here; a failing image is reported, not raised, so the caller may skip it. With
        `frame_small_people` (default: the pipeline's `frame_small_people`, on unless `--person-crops`), a
        person who fills little of the photo is embedded from their cut, framed like the training photos
        (processing/small_person_frame.py; `result.framed` says which; its keypoints and boxes are given in
        the photo's square all the same)."""
        cut_small_people = self.frame_small_people if frame_small_people is None else frame_small_people
        batches = embed_images(
            self.model, self.processor, images, batch_size, self.device, flip, num_workers, frame_small_people=cut_small_people
        )  # fmt: skip
        for batch in batches:
            if batch.embeddings is None:
                yield batch.indices, None, batch.failures
                continue
            features = batch.features
            keypoints, roi_boxes, person_box = in_photo(features)
            result = EmbeddingResult(
                embeddings=batch.embeddings.numpy(),
                keypoints=keypoints,
                roi_boxes=roi_boxes,
                person_found=np.asarray(features["person_found"], dtype=bool),
                face_found=np.asarray(features["face_found"], dtype=bool),
                person_box=person_box,
                num_people=np.asarray(features["num_people"], dtype=np.int64),
                framed=np.asarray(features["framed"], dtype=bool),
            )
            yield batch.indices, result, batch.failures

    def embed(
        self, images: Sequence[Any], batch_size: int = 8, flip: bool = True, num_workers: int = 0,
        frame_small_people: bool | None = None,
    ) -> EmbeddingResult:
        """Detect, build the retina ROIs and embed; `flip` (on by default, as every tool and the figures of the
        model's card) adds each view's mirror (`embedding_views.embed_batch`: about twice the model time, the
        detector runs once). A person who fills little of the photo is embedded from their cut, framed as
        the training photos were (`frame_small_people`, processing/small_person_frame.py; `result.framed`).
        `num_workers` > 0 decodes and detects in that many worker processes. The first image that
        cannot be read raises its error, naming it by its index in `images`."""
        if len(images) == 0:
            raise ValueError("no images given")
        results = []
        for _, result, failures in self.embed_batches(images, batch_size, flip, num_workers, frame_small_people):
            if failures:
                raise failures[0][1]
            results.append(result)
        return concatenate_results(results)

    def embed_people(
        self,
        images: Sequence[Any],
        max_people: int = 20,
        min_person_size: float = 48,
        flip: bool = True,
        batch_size: int = 8,
        detections: Sequence[Any] | None = None,
        frame_scales: Sequence[float] = PERSON_FRAME_SCALES,
    ) -> PeopleEmbeddings:
        """Every person in each photo, one embedding each (people_embedding.py): the image index, the
        person's box, keypoints, score and found flags, and the mean embedding of three cuts of them
        (`frame_scales`). `embed` keeps one person per photo. `detections`: `processor.detect_people` of
        each photo, when already run."""
        return embed_people(self, images, max_people, min_person_size, flip, batch_size, detections, frame_scales)

    def compare_people(
        self, first: Any, second: Any, threshold: float | None = None, flip: bool = True, pair=None, detections=None
    ):
        """Every person of `first` against every person of `second` (people_compare.py): the scores, the
        best-matching pair (or `pair`) and its verdict at the threshold `verify` would use (with flip by
        default, as `verify`)."""
        from .people_compare import compare_people

        return compare_people(self, first, second, threshold=threshold, flip=flip, pair=pair, detections=detections)

    def compare(
        self,
        first: Any,
        second: Any,
        threshold: float | None = None,
        flip: bool = True,
        pair: tuple[int | None, int | None] | None = None,
        every_pair: bool = False,
    ):
        """Two photos compared as `sapiensid compare` and the Space do (people_compare.compare_photos): a
        `PeopleComparison` (`compare_people`) when a photo holds several people, `pair` chooses a person or
        `every_pair` is asked for, else a `Verification` (`verify`; no score when a photo shows nobody)."""
        from .people_compare import compare_photos

        return compare_photos(self, first, second, threshold=threshold, flip=flip, pair=pair, every_pair=every_pair)

    @property
    def embedding_cuts(self) -> tuple[float, ...]:
        """The centre cuts every embedding averages, the photo itself (1.0) first: the model folder's rule
        (config.json `embedding_cuts`, cut_views.py), `(1.0,)` without one. To embed photos as they are,
        `pipeline.model.config.embedding_cuts = None` (the weights fingerprint changes with the rule)."""
        return embedding_cuts(self.model.config)

    def embedding_rule(self, flip: bool) -> dict[str, Any]:
        """How this pipeline embeds with or without `flip`, as a calibration record keeps it and a search
        compares it (`embedding_rule_record`: flip and the model folder's centre cuts)."""
        from .evaluation.calibration import embedding_rule_record

        return embedding_rule_record(flip, self.embedding_cuts)

    @property
    def calibration(self) -> dict[str, Any] | None:
        """The model folder's calibrated verification thresholds (`sapiensid calibrate`), if it has them."""
        return getattr(self.model.config, "calibration", None) or None

    def verify(self, first: Any, second: Any, threshold: float | None = None, flip: bool = True) -> Verification:
        """Same person or not: the cosine similarity of two pictures against a threshold, by default the
        model's calibrated one for faces when both pictures show a face, for bodies otherwise
        (`evaluation/calibration.py`; the returned threshold says which and where it came from). With
        nobody found in a picture there is no score and no verdict. `flip` (on by default, as when the
        thresholds were calibrated) adds the mirrored view of each picture."""
        from .evaluation.calibration import choose_threshold, score_false_match_rate

        result = self.embed([first, second], flip=flip)
        both_faces = bool(result.face_found.all())
        made_with = self.embedding_rule(flip)
        chosen = choose_threshold(self.calibration, both_faces, self.description, threshold, made_with)
        nobody = [name for name, found in zip(("first", "second"), result.person_found, strict=True) if not found]
        score = None if nobody else float(result.embeddings[0] @ result.embeddings[1])
        same = None if score is None else score >= chosen.value
        rarity = score_false_match_rate(self.calibration, both_faces, score, embedded_with=made_with)
        return Verification(score=score, same=same, threshold=chosen, result=result, nobody=nobody, false_match_rate=rarity)

    def similarity(self, first: Any, second: Any, flip: bool = True) -> float:
        """Cosine similarity of two images' embeddings (with flip by default: the score `verify` and
        `sapiensid compare` give).

        Raises `NoPersonFoundError` when the detector finds nobody in either image: the model reads a
        person at their keypoints, so every such image has the same embedding and any score would be noise.
        """
        result = self.embed([first, second], flip=flip)
        nobody = [name for name, found in zip(("first", "second"), result.person_found, strict=True) if not found]
        if nobody:
            raise NoPersonFoundError(f"no person found in the {' and the '.join(nobody)} image: nothing to compare")
        return float(result.embeddings[0] @ result.embeddings[1])


@dataclass
class Verification:
    """`SapiensIDPipeline.verify`: the score (None when nobody was found in a picture), the verdict at the
    threshold, the threshold with its origin, what the processor found, and how often different people
    reach the score on the model's development pairs (None without a score or a recorded FAR curve)."""

    score: float | None
    same: bool | None
    threshold: Any  # evaluation.calibration.ChosenThreshold
    result: EmbeddingResult
    nobody: list[str]
    false_match_rate: Any = None  # evaluation.far_curve.FalseMatchRate: `.rate`, `.describe()`


class NoPersonFoundError(ValueError):
    """An image in which the detector found nobody was asked for an identity score."""


class ModelFolderError(ValueError):
    """A model folder or hub repo that cannot give the weights it claims: refused, never half-loaded."""


# config.json keys a model folder may carry besides SapiensIDConfig's own fields.
EXTRA_CONFIG_KEYS = frozenset({"training", "calibration", "clustering", CUTS_CONFIG_KEY, "auto_map", "architectures",
                               "transformers_version", "_name_or_path"})  # fmt: skip


def unknown_config_fields(source: str | os.PathLike) -> list[str]:
    """Keys of a local folder's config.json that SapiensIDConfig does not know (a typo is silently ignored
    by transformers, so `hiddden_size: 64` would build a model of the default width)."""
    path = Path(source) / "config.json"
    if not path.is_file():
        return []
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelFolderError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(saved, dict):
        raise ModelFolderError(f"{path}: expected a JSON object, got {type(saved).__name__}")
    if saved.get("model_type") != SapiensIDConfig.model_type:
        raise ModelFolderError(f"{path}: model_type is {saved.get('model_type')!r}, not {SapiensIDConfig.model_type!r}")
    known = set(SapiensIDConfig().to_dict()) | EXTRA_CONFIG_KEYS
    return sorted(set(saved) - known)


def looks_like_hub_id(text: str) -> bool:
    """'owner/name' (one slash, no leading '.', '/' or '~'): what the hub could resolve."""
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "~")) and "\\" not in text


def checked_model_source(source: str | os.PathLike) -> str:
    """`source` as the loaders take it: an existing folder (`~` expanded) that holds a config.json, or a hub
    id 'owner/name'. Raises FileNotFoundError naming what it is instead (no such folder, and no hub id;
    a folder without config.json), before anything is loaded."""
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{source}: not a model folder (no config.json); give a saved SapiensID folder or a hub id")
        return os.fspath(path)
    if not looks_like_hub_id(os.fspath(source)):
        raise FileNotFoundError(f"{source}: no such folder (give a saved SapiensID folder or a hub id 'owner/name')")
    return os.fspath(source)


def load_model(source: str | os.PathLike) -> SapiensIDModel:
    """`SapiensIDModel.from_pretrained(source)`, refusing a checkpoint whose tensors do not match the config
    exactly (missing, unexpected or mismatched tensors would be random or ignored: silently wrong scores),
    and a local config.json with fields SapiensIDConfig does not know (typos) or another model_type; a
    source that is neither a model folder nor a hub id is named as such (`checked_model_source`)."""
    source = checked_model_source(source)
    unknown = unknown_config_fields(source)
    if unknown:
        raise ModelFolderError(f"{Path(source) / 'config.json'}: unknown field(s) {', '.join(unknown)} (a typo?)")
    try:
        model, info = SapiensIDModel.from_pretrained(source, output_loading_info=True)
    except OSError:
        raise
    except Exception as error:  # a truncated file, a config transformers cannot read, a wrong model_type ...
        raise ModelFolderError(f"{source}: not a loadable SapiensID model ({type(error).__name__}: {error})") from error
    problems = []
    for key, what in (("missing_keys", "missing"), ("unexpected_keys", "unexpected"), ("mismatched_keys", "mismatched")):
        names = sorted(str(name) for name in info.get(key) or ())
        if names:
            shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
            problems.append(f"{len(names)} {what} tensor(s): {shown}")
    if info.get("error_msgs"):
        problems.append("; ".join(str(message) for message in info["error_msgs"]))
    if problems:
        raise ModelFolderError(
            f"{source}: the weights do not match the model config ({'; '.join(problems)}); refusing to run with "
            "randomly initialised or ignored tensors"
        )
    try:
        embedding_cuts(model.config)
    except ValueError as error:
        raise ModelFolderError(f"{Path(source) / 'config.json'}: {error}") from error
    return model


def load_processor(source: str | os.PathLike | None, config: SapiensIDConfig):
    """The processor of a model folder or hub repo (or the one its model config implies), for this package's
    embedding loop: the loop applies the model config's rule of centre cuts itself (embed_images: workers,
    cached cut keypoints, --no-cuts) and flips as each call says, so the processor's copy of the rule, which
    `AutoModel` users of the folder get, is checked against the model config's and then turned off here
    (cuts and flip; the small-person cut is the pipeline's `frame_small_people`). Raises ModelFolderError when the two records of the cuts differ."""
    processor = _folder_processor(source, config)
    recorded = processor.embedding_cuts
    if recorded is not None and tuple(recorded) != embedding_cuts(config):
        raise ModelFolderError(
            f"{source}: preprocessor_config.json records {CUTS_CONFIG_KEY} {list(recorded)}, but config.json's "
            f"{CUTS_CONFIG_KEY} gives {list(embedding_cuts(config))}: AutoModel users of the folder and this "
            "package would embed its photos differently; record the same scales in both (or remove both)"
        )
    processor.embedding_cuts, processor.embedding_flip, processor.frame_small_people = None, False, False
    return processor


def _folder_processor(source: str | os.PathLike | None, config: SapiensIDConfig):
    from .processing.image_processing_sapiensid import SapiensIDImageProcessor

    if source is not None and (Path(source) / "preprocessor_config.json").is_file():
        return SapiensIDImageProcessor.from_pretrained(source)
    if source is not None and not Path(source).exists():
        # A hub id: its repo's preprocessor_config.json (keypoint rules, size, normalisation) is what its
        # weights expect. A repo without one gets the processor derived from the model config.
        try:
            return SapiensIDImageProcessor.from_pretrained(source)
        except OSError as error:
            logger.info("%s has no preprocessor_config.json (%s); using the processor of its model config", source, error)
    return SapiensIDImageProcessor.from_model_config(config)


def untrained_model(config: SapiensIDConfig, seed: int = 0) -> SapiensIDModel:
    """A randomly initialised model of `config`'s shape, from a private generator (the caller's random
    stream is untouched): the baseline of every "untrained" figure and tool."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SapiensIDModel(config)


def is_trained(config: Any) -> bool:
    """Whether a model config says its weights were trained or converted: a `training` record, written by
    the trainer (sapiensid_hf.training.export) or the official-checkpoint converter. A folder alone proves nothing."""
    record = getattr(config, "training", None)
    return isinstance(record, dict) and bool(record)


def default_model_source(model: str | os.PathLike | None = None) -> str | None:
    """Which model the tools load: `model`, else $SAPIENSID_MODEL, else the shipped sapiensid-small folder;
    None (an untrained model) only for `model="untrained"` or an installation without the shipped folder."""
    source = model if model is not None else os.environ.get(MODEL_ENV_VAR)
    if source is not None:
        return None if os.fspath(source) == UNTRAINED_SOURCE else os.fspath(source)
    shipped = shipped_model_dir()
    return os.fspath(shipped) if shipped is not None else None


def load_pipeline(model: str | os.PathLike | None = None, device: str = "cpu", untrained_size: str = "tiny") -> SapiensIDPipeline:
    """Pipeline for a model folder or hub id (default: $SAPIENSID_MODEL, else the shipped sapiensid-small).

    `model="untrained"` builds a randomly initialised model (`untrained_size` "tiny" or "base") and logs
    `UNTRAINED_WARNING`: useful to try the pipeline, meaningless as a recogniser. A folder counts as
    trained only when its config carries a `training` record (trainer or converter); one without it
    also gets the warning.
    """
    source = default_model_source(model)
    if source is None:
        logger.warning(UNTRAINED_WARNING)
        config = SapiensIDConfig.tiny() if untrained_size == "tiny" else SapiensIDConfig()
        network = untrained_model(config)
        return SapiensIDPipeline(network, load_processor(None, config), trained=False, device=device)
    source = checked_model_source(source)
    network = load_model(source)
    trained = is_trained(network.config)
    if not trained:
        logger.warning(UNTRAINED_WARNING)
    return SapiensIDPipeline(network, load_processor(source, network.config), trained=trained, device=device, source=source)
