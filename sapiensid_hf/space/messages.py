"""The Space's verdicts and error messages: what a visitor reads instead of a traceback."""

from __future__ import annotations

import logging
import math
from typing import Any

from ..evaluation.calibration import UNCALIBRATED_THRESHOLD
from ..inference import NoPersonFoundError
from ..people_embedding import PersonChoiceError
from ..processing.detector_assets import DetectorNotAvailableError
from ..processing.image_decoding import SapiensIDInputError
from .uploads import UploadError

logger = logging.getLogger("sapiensid_hf.space")

DEFAULT_THRESHOLD = UNCALIBRATED_THRESHOLD  # shown before the first comparison, and for an uncalibrated model


def failure_message(error: Exception) -> str:
    """The message shown for an error raised while handling a request."""
    if isinstance(error, UploadError | SapiensIDInputError | NoPersonFoundError | PersonChoiceError):
        return str(error)
    if isinstance(error, DetectorNotAvailableError):
        return (
            f"A detector file is not installed on this server, so this picture cannot be processed. {error}"
        )
    logger.exception("unexpected error in the SapiensID demo")
    return (
        f"Something went wrong on the server ({type(error).__name__}: {error}). Please try another picture."
    )


def verdict_markdown(
    score: float | None, threshold: float, trained: bool = True, origin: str | None = None, rarity: str | None = None
) -> str:
    """Same / different at `threshold` (and where the threshold came from), or nothing without a score;
    `rarity`: how often different people reach the score (FalseMatchRate.describe), independent of the threshold."""
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return ""
    same = score >= threshold
    text = (
        f"### {'Same person' if same else 'Different people'}\n"
        f"cosine {score:.3f} {'≥' if same else '<'} threshold {threshold:.3f}"
        + (f" ({origin})" if origin else "")
    )
    if rarity:
        text += f"\n\nOn the model's development photos, {rarity}."
    if not trained:
        text += "\n\n**Untrained weights: this verdict is meaningless.**"
    return text


def rarity_words(rate: Any) -> str | None:
    """How often different people reach a score (a FalseMatchRate), in words; None without a calibration."""
    return None if rate is None else rate.describe()
