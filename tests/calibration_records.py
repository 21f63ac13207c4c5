"""A made-up calibration record with FAR curves, for the tests of what the tools read off them."""

from __future__ import annotations

import numpy as np

from sapiensid_hf.evaluation.calibration import embedding_rule_record
from sapiensid_hf.evaluation.far_curve import FarCurve

RULE = embedding_rule_record(True, (1.0,))  # flip, the photo as it is: how the tiny test models embed


def made_up_calibration(face=(0.80, 0.05), body=(0.80, 0.08), seed: int = 0) -> dict:
    """A calibration record whose FAR curves come from normal different-person cosines, one per kind:
    centred where the tiny test model's scores lie, so they are read inside the curves; above the mean the
    body curve is the higher one, as a real model's is."""
    rng = np.random.default_rng(seed)
    record = {"default": "best_accuracy", "source": "tests", "embedded_with": RULE}
    for kind, (mean, spread) in (("face", face), ("body", body)):
        points = {"best_accuracy": mean, "far_1e-2": mean + 2.4 * spread}
        curve = FarCurve.from_different_scores(rng.normal(mean, spread, 200_000), f"made-up {kind} pairs", points)
        record[kind] = {**points, "pairs_from": f"made-up {kind} pairs", "far_curve": curve.to_record()}
    return record
