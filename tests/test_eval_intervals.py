"""The 95 % intervals of the development figures (evaluation/intervals.py)."""

from __future__ import annotations

import numpy as np
import pytest

from sapiensid_hf.evaluation.intervals import pairs_interval, people_interval


def test_a_people_interval_is_the_percentiles_of_the_means_of_people_drawn_again():
    rng = np.random.default_rng(3)
    people = np.repeat(np.arange(30), rng.integers(1, 6, size=30))
    values = rng.random(len(people))
    low, high = people_interval(values, people, resamples=200, seed=7)
    # The same draws by hand: 200 draws of 30 people, each bringing all of their values.
    ids = np.unique(people)
    drawn = np.random.default_rng(7).integers(30, size=(200, 30))
    means = [np.concatenate([values[people == ids[index]] for index in draw]).mean() for draw in drawn]
    assert [low, high] == pytest.approx(np.percentile(means, [2.5, 97.5]).tolist(), abs=1e-12)
    assert low < values.mean() < high
    assert people_interval(values, people, resamples=200, seed=7) == [low, high]  # seeded: the same every run


def test_queries_of_one_person_that_move_together_widen_the_interval():
    people = np.repeat(np.arange(50), 4)
    together = (people % 2 == 0).astype(float)  # every query of a person right, or every one wrong
    low, high = people_interval(together, people)
    one_by_one = people_interval(together, np.arange(len(people)))  # as if each query were its own person
    assert low < 0.5 < high and high - low > 1.5 * (one_by_one[1] - one_by_one[0])
    assert people_interval(np.ones(8), np.arange(8)) == [1.0, 1.0]  # nothing varies: no width


def test_a_people_interval_refuses_values_without_their_people():
    with pytest.raises(ValueError, match="one person id a value: 3 values, 2 ids"):
        people_interval([1.0, 0.0, 1.0], [0, 1])
    with pytest.raises(ValueError, match="0 values"):
        people_interval([], [])


def test_pairs_are_drawn_again_within_their_kind_keeping_each_count():
    same = np.array([True] * 7 + [False] * 13)
    seen = []

    def statistic(rows: np.ndarray) -> float:
        seen.append((int(same[rows].sum()), int((~same[rows]).sum())))
        return float(rows.mean())

    low, high = pairs_interval(statistic, same, resamples=50)
    assert set(seen) == {(7, 13)} and len(seen) == 50 and low <= high
    correct = np.array([1.0] * 15 + [0.0] * 5)
    low, high = pairs_interval(lambda rows: float(correct[rows].mean()), same)
    assert low < correct.mean() < high < 1.0


def test_ranking_intervals_leave_out_the_queries_the_ranking_skipped():
    from sapiensid_hf.evaluation import evaluate_ranking
    from sapiensid_hf.evaluation.intervals import ranking_intervals

    rng = np.random.default_rng(0)
    query_pids, gallery_pids = np.array([0, 0, 1, 1, 2, 9]), np.array([0, 1, 2, 3, 0, 1, 2])  # person 9: no match
    distances = rng.random((6, 7))
    result = evaluate_ranking(distances, query_pids, gallery_pids, np.zeros(6, int), np.ones(7, int), max_rank=None)
    intervals = ranking_intervals(result, query_pids)
    scored = slice(0, 5)
    assert intervals["rank1"] == people_interval(result.first_match_rank[scored] == 0, query_pids[scored])
    assert intervals["mAP"] == people_interval(result.average_precision[scored], query_pids[scored])
    assert intervals["rank1"][0] <= result.cmc[0] <= intervals["rank1"][1]


def test_a_paired_difference_draws_the_same_people_for_both_models():
    from sapiensid_hf.evaluation.intervals import paired_ranking_differences

    rng = np.random.default_rng(5)
    people = np.repeat(np.arange(40), 3).tolist()
    easy = rng.random(40)[np.repeat(np.arange(40), 3)]  # how easy each person is: shared by both models
    first = {"people": people, "rank1": (easy > 0.4).astype(float).tolist(), "mAP": easy.tolist()}
    # The second model: the same except 6 queries of 2 people it gets wrong.
    worse = np.array(first["rank1"])
    worse[np.isin(np.array(people), [0, 1])] = 0.0
    second = {"people": people, "rank1": worse.tolist(), "mAP": (easy * 0.9).tolist()}
    differences = paired_ranking_differences(first, second)
    rank1 = differences["rank1"]
    assert rank1["difference"] == pytest.approx(np.mean(first["rank1"]) - np.mean(second["rank1"]))
    low, high = rank1["interval"]
    assert 0.0 <= low <= rank1["difference"] <= high
    # Each model's own interval is far wider than that of their difference: the draw's luck is shared.
    own = people_interval(first["rank1"], people)
    assert high - low < 0.5 * (own[1] - own[0])
    assert paired_ranking_differences(first, first)["mAP"] == {"difference": 0.0, "interval": [0.0, 0.0]}
    with pytest.raises(ValueError, match="the same queries for both models"):
        paired_ranking_differences(first, {**second, "people": people[::-1]})


def test_a_paired_pairs_difference_gives_the_figures_difference_and_refuses_other_pairs():
    from sapiensid_hf.evaluation import tar_at_far
    from sapiensid_hf.evaluation.intervals import paired_pairs_differences

    rng = np.random.default_rng(2)
    same = np.array([True] * 100 + [False] * 100)
    scores = np.where(same, 0.6, 0.2) + rng.normal(0, 0.15, size=200)
    better = scores + np.where(same, 0.05, -0.05)
    first = {"same": same.tolist(), "scores": better.tolist(), "correct": (better > 0.4) == same}
    second = {"same": same.tolist(), "scores": scores.tolist(), "correct": (scores > 0.4) == same}
    differences = paired_pairs_differences(first, second, (0.1,))
    assert differences["accuracy"]["difference"] == pytest.approx(first["correct"].mean() - second["correct"].mean())
    expected = tar_at_far(same, better, (0.1,))[0.1] - tar_at_far(same, scores, (0.1,))[0.1]
    assert differences["tar@far=0.1"]["difference"] == pytest.approx(expected)
    for entry in differences.values():
        assert entry["interval"][0] <= entry["difference"] <= entry["interval"][1]
    with pytest.raises(ValueError, match="the same pairs for both models"):
        paired_pairs_differences(first, {**second, "same": same[::-1].tolist()}, (0.1,))


def test_the_mean_of_two_directions_draws_each_person_in_both_or_neither():
    from sapiensid_hf.evaluation.intervals import mean_of_parts_interval

    rng = np.random.default_rng(4)
    people = np.repeat(np.arange(30), 3)
    skill = rng.random(30)[people]  # a person easy in one direction is easy in the other
    forward = {"people": people.tolist(), "rank1": (skill > 0.5).astype(float).tolist()}
    backward = {"people": people[::-1].tolist(), "rank1": (skill[::-1] > 0.45).astype(float).tolist()}
    assert mean_of_parts_interval([forward], "rank1") == people_interval(forward["rank1"], people)
    assert mean_of_parts_interval([forward, forward], "rank1") == mean_of_parts_interval([forward], "rank1")
    low, high = mean_of_parts_interval([forward, backward], "rank1")
    mean = (np.mean(forward["rank1"]) + np.mean(backward["rank1"])) / 2
    assert low < mean < high
    # Drawn apart, the two directions' luck would partly cancel: drawn together it does not.
    apart = [people_interval(part["rank1"], part["people"], seed=seed) for seed, part in enumerate((forward, backward))]
    assert high - low > 0.5 * np.mean([top - bottom for bottom, top in apart])
