"""A model folder's embedding rule of centre cuts: a photo embedded as the mean of itself and cuts about its
centre.

The shipped model is sensitive to framing (docs/benchmarks.md, "Framing"); the mean of the photo and its
cuts to 95 % and 90 % of its width and height scores better on every development figure than the photo
alone (benchmarks/bench_cut_averaging.py). A model folder states the rule in its config.json:

    "embedding_cuts": {"scales": [1.0, 0.95, 0.9], "source": "<the run that chose it>"}

and every embedding of the project follows it (`embedding_views.embed_images`: the tools, `evaluate`, the
development checks, the Space), so the figures a folder reports are those its users get. The folder's
preprocessor_config.json records the same scales, so `AutoModel` / the `image-feature-extraction` pipeline
without this package give the same embeddings (the processor makes the cuts, processing/centre_cuts.py, and
the model folds them in, modeling/cut_averaging.py); `load_processor` checks that the two records agree. A folder without
the record (the converted official model, anything trained) embeds the photo as it is. The detector runs
on each cut, as on any photo; where it finds nobody there, or somebody else (a crowd), the photo's own
keypoints mapped into the cut are used (processing/centre_cuts.py), so a cut is always of the photo's
person. A cut in which none of the person's points remain adds nothing to the mean. Measured (the same
benchmark): with the photo's keypoints mapped into every cut instead, bodies gain as much but faces lose
(LFW TAR@FAR 1e-2 -1.7 points), so the cost of a detection per cut buys the face figures.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from .processing.centre_cuts import CUT_FEATURES, PHOTO_AS_IT_IS, cut_scales

CONFIG_KEY = "embedding_cuts"


def embedding_cuts(config: Any) -> tuple[float, ...]:
    """The scales a model config's embeddings average, the photo itself (1.0) first; (1.0,) without a record.
    Raises ValueError for a record that is not `{"scales": [1.0, s, ...]}` with every s in (0, 1)."""
    record = getattr(config, CONFIG_KEY, None)
    if record is None:
        return PHOTO_AS_IT_IS
    if not isinstance(record, dict) or record.get("scales") is None:
        raise ValueError(f'{CONFIG_KEY} must be {{"scales": [1.0, s, ...], "source": "..."}}, got {record!r}')
    return cut_scales(record["scales"], where=f"{CONFIG_KEY}'s scales")


def without_embedding_cuts(config: Any) -> Any:
    """A copy of a model config that embeds the photo as it is."""
    plain = copy.deepcopy(config)
    if hasattr(plain, CONFIG_KEY):
        delattr(plain, CONFIG_KEY)
    return plain


def rule_description(scales: Sequence[float]) -> str:
    """How a photo is embedded under `scales`, for what the tools print and the cards say."""
    if tuple(scales) == PHOTO_AS_IT_IS:
        return "the photo as it is"
    shares = ", ".join(f"{scale:g}" for scale in scales)
    return f"the mean of the photo's centre cuts at {shares} of its width and height"


def has_cuts(features: Any) -> bool:
    return CUT_FEATURES["pixel_values"] in features


__all__ = ["CONFIG_KEY", "CUT_FEATURES", "PHOTO_AS_IT_IS", "embedding_cuts", "has_cuts", "rule_description", "without_embedding_cuts"]
