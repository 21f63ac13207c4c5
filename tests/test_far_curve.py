"""The FAR curve of a calibration record and the threshold for a verdict on the best of many pairs: the best
of N different-person pairs must pass as rarely as one pair passes the calibrated threshold."""

from __future__ import annotations

import numpy as np
import pytest

from sapiensid_hf.evaluation.calibration import (
    KindThresholds,
    choose_threshold,
    different_person_scores,
    score_false_match_rate,
    threshold_false_match_rates,
)
from sapiensid_hf.evaluation.far_curve import (
    FalseMatchRate,
    FarCurve,
    best_of_pairs_threshold,
    far_of_best_of,
)
from sapiensid_hf.people_compare import pairs_judged

RNG_SCORES = np.random.default_rng(0).normal(0.0, 0.1, 200_000)  # different-person cosines of a made-up model
CURVE = FarCurve.from_different_scores(RNG_SCORES, "made-up pairs", {"best_accuracy": 0.1, "far_1e-2": 0.2327})


def test_far_of_best_of_is_the_per_pair_rate_whose_best_of_n_passes_at_the_one_pair_rate():
    for single, pairs in ((0.3, 8), (0.01, 400), (0.17, 2)):
        per_pair = far_of_best_of(single, pairs)
        assert 1 - (1 - per_pair) ** pairs == pytest.approx(single, rel=1e-12)
        assert per_pair < single
    assert far_of_best_of(0.3, 1) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="at least one pair"):
        far_of_best_of(0.3, 0)


def test_each_kept_threshold_accepts_at_most_its_far_and_rests_on_enough_pairs():
    assert CURVE.fars[0] == 0.5 and list(CURVE.fars) == sorted(CURVE.fars, reverse=True)
    assert list(CURVE.thresholds) == sorted(CURVE.thresholds)
    for far, threshold in zip(CURVE.fars, CURVE.thresholds, strict=True):
        accepted = int((RNG_SCORES >= threshold).sum())
        assert accepted <= far * RNG_SCORES.size  # rounded up to 4 decimals: never more than its FAR
        assert accepted >= 0.9 * far * RNG_SCORES.size - 5  # and not far below it
        assert far * RNG_SCORES.size >= 10
    # 200,000 pairs measure 5e-5 (10 pairs) but not 3e-5 (6 pairs).
    assert CURVE.fars[-1] == 5e-5
    assert CURVE.far_at["best_accuracy"] == pytest.approx((RNG_SCORES >= 0.1).mean(), abs=1e-6)
    assert FarCurve.from_record(CURVE.to_record()) == CURVE
    with pytest.raises(ValueError, match="cannot measure"):
        FarCurve.from_different_scores(np.zeros(15), "too few", {})


def test_the_best_of_n_different_pairs_passes_the_raised_threshold_as_often_as_one_pair_passes_the_calibrated_one():
    single = 0.1
    single_far = (RNG_SCORES >= single).mean()  # about 16 %
    fresh = np.random.default_rng(1).normal(0.0, 0.1, (20_000, 8))  # 20,000 groups of 8 different-person pairs
    raised = best_of_pairs_threshold(CURVE, "best_accuracy", single, pairs=8)
    assert raised.within_curve and raised.value > single and raised.pairs == 8
    best = fresh.max(axis=1)
    assert (best >= raised.value).mean() == pytest.approx(single_far, abs=0.015)
    assert (best >= single).mean() > 0.7  # at the one-pair threshold the best of 8 passes most of the time
    # One pair: nothing to raise.
    assert best_of_pairs_threshold(CURVE, "best_accuracy", single, pairs=1).value == single


def test_a_far_below_the_curve_says_the_threshold_is_too_low_for_it():
    threshold, within = CURVE.threshold_at(1e-7)
    assert not within and threshold == CURVE.thresholds[-1]
    inside = [CURVE.threshold_at(far)[0] for far in (0.4, 0.1, 0.07, 0.01, 1e-4)]
    assert inside == sorted(inside) and CURVE.threshold_at(0.1)[0] == CURVE.thresholds[CURVE.fars.index(0.1)]
    raised = best_of_pairs_threshold(CURVE, "far_1e-2", 0.2327, pairs=10_000)
    assert not raised.within_curve and raised.value == CURVE.thresholds[-1]


def test_choose_threshold_raises_the_calibrated_one_for_the_best_of_several_pairs_and_says_so():
    face = KindThresholds(0.1, 0.8, 0.2327, 0.4, 600, 300).with_far_curve(RNG_SCORES, "made-up pairs")
    record = {"face": {**face.to_record(), "pairs_from": "LFW"}, "body": {**face.to_record(), "pairs_from": "CUHK03"},
              "default": "best_accuracy", "source": "tests"}  # fmt: skip
    one = choose_threshold(record, True, "m")
    assert one.value == 0.1 and "raised" not in one.origin
    eight = choose_threshold(record, True, "m", pairs=8)
    assert eight.value == best_of_pairs_threshold(face.far_curve, "best_accuracy", 0.1, 8).value > 0.1
    assert "raised from 0.100 because the best of 8 pairs is judged" in eight.origin and "on made-up pairs" in eight.origin
    assert "NOTE" not in eight.origin
    many = choose_threshold(record, True, "m", pairs=400 * 400)
    assert "NOTE: that needs a FAR of" in many.origin and "below what those pairs measure" in many.origin
    # The user's threshold is taken as given; a record without a curve keeps its threshold and says so.
    given = choose_threshold(record, True, "m", given=0.05, pairs=8)
    assert given.value == 0.05 and given.origin == "given with --threshold; the best of 8 pairs is judged, not raised for it: more false matches pass"
    assert "the best of 8 pairs is judged, not raised" in choose_threshold(None, True, "m", pairs=8).origin
    plain = {**record, "face": {key: value for key, value in record["face"].items() if key != "far_curve"}}
    old = choose_threshold(plain, True, "m", pairs=8)
    assert old.value == 0.1 and "records no FAR curve" in old.origin and "re-run `sapiensid calibrate`" in old.origin


def test_different_person_scores_are_every_pair_of_two_people():
    embeddings = np.eye(3, dtype=np.float32)[[0, 0, 1, 2]]  # rows 0 and 1 alike, of one person
    scores = different_person_scores(embeddings, np.array([7, 7, 8, 9]))
    assert sorted(scores.tolist()) == [0.0] * 5  # 6 pairs less the same-person one


def test_pairs_judged_counts_the_pairs_the_verdicts_pair_was_picked_from():
    assert pairs_judged((3, 4), (None, None)) == 12
    assert pairs_judged((3, 4), (1, None)) == 4
    assert pairs_judged((3, 4), (None, 2)) == 3
    assert pairs_judged((3, 4), (1, 2)) == 1


def test_the_rate_at_a_score_is_the_share_of_different_pairs_that_reach_it():
    # At a kept threshold: its FAR; between two: the measured share within the curve's resolution; the
    # inverse of threshold_at; beyond the kept points: a bound, said to be one.
    for far, threshold in zip(CURVE.fars, CURVE.thresholds, strict=True):
        assert CURVE.rate_at(threshold).rate == pytest.approx(far) and CURVE.rate_at(threshold).bound == "about"
    for score in (0.01, 0.12, 0.2, 0.3, 0.35):
        measured = (RNG_SCORES >= score).mean()
        assert CURVE.rate_at(score).rate == pytest.approx(measured, rel=0.1), score
    for far in (0.4, 0.07, 0.004, 3e-4):
        assert CURVE.rate_at(CURVE.threshold_at(far)[0]).rate == pytest.approx(far, rel=2e-3)
    rates = [CURVE.rate_at(score).rate for score in np.linspace(0.0, 0.4, 81)]
    assert rates == sorted(rates, reverse=True)
    low, high = CURVE.rate_at(-0.5), CURVE.rate_at(0.9)
    assert (low.bound, low.rate) == ("over", 0.5) and low.percent() == "over 50.0 %"
    assert (high.bound, high.rate) == ("under", 5e-5) and high.percent() == "under 0.005 %"


def test_the_best_of_several_different_pairs_reaches_a_score_more_often_than_one():
    one = CURVE.rate_at(0.1)
    best = one.for_best_of(8)
    assert best.rate == pytest.approx(1 - (1 - one.rate) ** 8) and best.best_of == 8 and best.rate > one.rate
    fresh = np.random.default_rng(2).normal(0.0, 0.1, (20_000, 8)).max(axis=1)
    assert best.rate == pytest.approx((fresh >= 0.1).mean(), abs=0.015)
    assert "the best of 8 different-person pairs scores this high or higher in about" in best.describe()
    with pytest.raises(ValueError, match="at least one pair"):
        one.for_best_of(0)
    assert FalseMatchRate(0.074, "about", 329_256, "LFW", kind="face").describe() == (
        "about 7.4 % of different-person face pairs score this high or higher (LFW: 329,256)"
    )
    # A body rate says that it was measured on one set of pedestrians (bench_search_evidence: 1.5-3.5x on another).
    assert FalseMatchRate(0.005, "about", 435_477, "CUHK03", kind="body").describe() == (
        "about 0.5 % of different-person body pairs score this high or higher (CUHK03: 435,477); on other photo "
        "sets of people it can be several times higher"
    )


def test_the_tools_say_how_many_different_people_pass_a_threshold_and_reach_a_score():
    face = KindThresholds(0.1, 0.8, 0.2327, 0.4, 600, 300).with_far_curve(RNG_SCORES, "made-up pairs")
    body = KindThresholds(0.05, 0.8, 0.2327, 0.4, 600, 300).with_far_curve(RNG_SCORES + 0.05, "other pairs")
    record = {"face": {**face.to_record(), "pairs_from": "LFW"}, "body": {**body.to_record(), "pairs_from": "CUHK03"},
              "default": "best_accuracy", "source": "tests"}  # fmt: skip
    # A calibrated threshold: the share measured at it; a given one: read off the curve of the pictures' kind.
    calibrated = choose_threshold(record, True, "m")
    measured = f"{100 * face.far_curve.far_at['best_accuracy']:.1f} %"
    assert calibrated.origin.endswith(f"; {measured} of different-person face pairs pass it (made-up pairs)")
    given = choose_threshold(record, False, "m", given=0.3)
    assert given.origin == f"given with --threshold; {body.far_curve.rate_at(0.3).percent()} of different-person body pairs pass it (other pairs)"
    # The score's rate comes from the curve of the pictures' kind.
    rate = score_false_match_rate(record, True, 0.2)
    assert rate.kind == "face" and rate.rate == pytest.approx((RNG_SCORES >= 0.2).mean(), rel=0.1)
    assert score_false_match_rate(record, False, 0.2).rate > rate.rate  # the body pairs score 0.05 higher
    assert score_false_match_rate(record, True, 0.2, pairs=4) == rate.for_best_of(4)
    # Nothing to say without a score or without a curve.
    plain = {kind: {k: v for k, v in record[kind].items() if k != "far_curve"} for kind in ("face", "body")}
    assert score_false_match_rate(record, True, None) is None
    assert score_false_match_rate({**record, **plain}, True, 0.2) is None and score_false_match_rate(None, True, 0.2) is None
    assert "pass it" not in choose_threshold({**record, **plain}, True, "m").origin
    # Embeddings made by another rule than the curve's (--no-flip): their scores move, so nothing is said.
    made_so = {"flip": True, "cut_scales": [1.0]}
    ruled = {**record, "embedded_with": made_so}
    assert score_false_match_rate(ruled, True, 0.2, embedded_with=made_so) == rate
    assert score_false_match_rate(ruled, True, 0.2, embedded_with={**made_so, "flip": False}) is None
    other = choose_threshold(ruled, True, "m", embedded_with={**made_so, "flip": False})
    assert "NOTE: chosen on embeddings made with" in other.origin and "pass it" not in other.origin
    assert "pass it" in choose_threshold(ruled, True, "m", embedded_with=made_so).origin
    # A grouping threshold (cluster): both kinds' rates, none for another rule or without curves.
    both = threshold_false_match_rates(ruled, 0.3, made_so)
    assert both["face"].rate == face.far_curve.rate_at(0.3).rate and both["body"].rate == body.far_curve.rate_at(0.3).rate
    assert both["face"].kind == "face" and both["body"].rate > both["face"].rate
    assert threshold_false_match_rates(ruled, 0.3, {**made_so, "cut_scales": [1.0, 0.9]}) == {}
    assert threshold_false_match_rates({**record, **plain}, 0.3) == {} and threshold_false_match_rates(None, 0.3) == {}
