"""Re-id ranking metrics: hand-worked cases for every rule, and equality with per-query reference loops
written the way torchreid / fast-reid (`eval_market1501`) and CAL (`evaluate`, `evaluate_with_clothes`)
write them."""

import numpy as np
import pytest
import torch
from torchreid_reference import torchreid_average_precision, torchreid_valid_queries

from sapiensid_hf.evaluation import NoValidQueryError, evaluate_ranking

# ---------------------------------------------------------------- reference loops (one query at a time)


def torchreid_market1501(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, sort_kind="quicksort"):
    """torchreid `eval_market1501` + fast-reid's mINP, CMC padded where the kept gallery is short."""
    all_cmc, all_ap, all_inp = [], [], []
    for _, _, raw_cmc in torchreid_valid_queries(distmat, q_pids, g_pids, q_camids, g_camids, sort_kind):
        cmc = raw_cmc.cumsum()
        last = np.max(np.where(raw_cmc == 1))
        all_inp.append(cmc[last] / (last + 1.0))
        cmc[cmc > 1] = 1
        cmc = np.concatenate([cmc, np.ones(max(0, max_rank - len(cmc)), cmc.dtype)])
        all_cmc.append(cmc[:max_rank])
        all_ap.append(torchreid_average_precision(raw_cmc))
    return np.asarray(all_cmc).astype(np.float32).sum(0) / len(all_cmc), np.mean(all_ap), np.mean(all_inp)


def _cal_ap_cmc(index, good_index, junk_index):
    cmc = np.zeros(len(index))
    index = index[np.isin(index, junk_index, invert=True)]
    rows_good = np.argwhere(np.isin(index, good_index)).flatten()
    cmc[rows_good[0] :] = 1.0
    ap = sum((1.0 / len(good_index)) * (i + 1.0) / (rows_good[i] + 1) for i in range(len(good_index)))
    return ap, cmc


def cal_evaluate(distmat, q_pids, g_pids, q_camids, g_camids, q_clothes=None, g_clothes=None, mode=None):
    """CAL `evaluate` (mode None) and `evaluate_with_clothes` (mode 'CC' / 'SC'), stable sort."""
    index = np.argsort(distmat, axis=1, kind="stable")
    total_cmc, total_ap, skipped = np.zeros(len(g_pids)), 0.0, 0
    for i in range(distmat.shape[0]):
        query_index = np.argwhere(g_pids == q_pids[i])
        camera_index = np.argwhere(g_camids == q_camids[i])
        good_index = np.setdiff1d(query_index, camera_index, assume_unique=True)
        junk_index = np.intersect1d(query_index, camera_index)
        if mode is not None:
            cloth_index = np.argwhere(g_clothes == q_clothes[i])
            if mode == "CC":
                good_index = np.setdiff1d(good_index, cloth_index, assume_unique=True)
                junk_index = np.union1d(junk_index, np.intersect1d(query_index, cloth_index))
            else:
                good_index = np.intersect1d(good_index, cloth_index)
                junk_index = np.union1d(junk_index, np.setdiff1d(query_index, cloth_index))
        if good_index.size == 0:
            skipped += 1
            continue
        ap, cmc = _cal_ap_cmc(index[i], good_index, junk_index)
        total_cmc, total_ap = total_cmc + cmc, total_ap + ap
    valid = distmat.shape[0] - skipped
    return total_cmc / valid, total_ap / valid, skipped


def random_problem(rng, num_query, num_gallery, num_pids, num_cams, num_clothes=3, ties=False):
    dist = (
        rng.integers(0, 6, (num_query, num_gallery)).astype(np.float64)
        if ties
        else rng.random((num_query, num_gallery))
    )
    return (
        dist,
        rng.integers(0, num_pids, num_query),
        rng.integers(0, num_pids, num_gallery),
        rng.integers(0, num_cams, num_query),
        rng.integers(0, num_cams, num_gallery),
        rng.integers(0, num_clothes, num_query),
        rng.integers(0, num_clothes, num_gallery),
    )


# ---------------------------------------------------------------- hand-worked cases


def market_example():
    """One query (pid 1, camera 0); gallery sorted by distance on purpose."""
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
    g_pids = np.array([1, 2, 1, 3, 1])  # g0 same pid same cam: junk; g2, g4 true matches
    g_cams = np.array([0, 1, 1, 0, 2])
    return dist, np.array([1]), g_pids, np.array([0]), g_cams


def test_junk_same_pid_same_camera_is_removed_before_ranking():
    dist, q_pids, g_pids, q_cams, g_cams = market_example()
    result = evaluate_ranking(dist, q_pids, g_pids, q_cams, g_cams, max_rank=4)
    # Kept ranking: g1 (other), g2 (match), g3 (other), g4 (match); the junk g0 would have been first.
    np.testing.assert_array_equal(result.cmc, [0.0, 1.0, 1.0, 1.0])
    assert result.mAP == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert result.mINP == pytest.approx(2 / 4)
    assert result.first_match_rank.tolist() == [1]


def test_distractors_of_other_identities_on_the_query_camera_stay_in_the_ranking():
    dist, q_pids, g_pids, q_cams, g_cams = market_example()
    g_pids = g_pids.copy()
    g_pids[0] = 9  # g0 is now another person on the query's camera: not junk, it ranks first
    result = evaluate_ranking(dist, q_pids, g_pids, q_cams, g_cams, max_rank=5)
    np.testing.assert_array_equal(result.cmc, [0.0, 0.0, 1.0, 1.0, 1.0])
    assert result.mAP == pytest.approx((1 / 3 + 2 / 5) / 2)


def test_queries_without_a_valid_match_are_skipped_and_counted():
    dist, q_pids, g_pids, q_cams, g_cams = market_example()
    dist = np.vstack([dist, dist, dist])
    q_pids = np.array([1, 3, 7])  # pid 3 only on camera 0 (the query's): skipped; pid 7 absent: skipped
    q_cams = np.array([0, 0, 0])
    result = evaluate_ranking(dist, q_pids, g_pids, q_cams, g_cams, max_rank=4)
    assert (result.num_queries, result.num_valid_queries, result.num_skipped_queries) == (3, 1, 2)
    assert result.mAP == pytest.approx(0.5)
    assert result.first_match_rank.tolist() == [1, -1, -1]
    assert np.isnan(result.average_precision[1:]).all()
    assert result.to_dict()["num_skipped_queries"] == 2


def test_every_camid_equal_gives_an_error_that_says_so():
    dist, q_pids, g_pids, _, _ = market_example()
    with pytest.raises(NoValidQueryError, match=r"every query and gallery camid is 0.*ignore_camera"):
        evaluate_ranking(dist, q_pids, g_pids, np.zeros(1, int), np.zeros(5, int))
    # Without cameras every image of the person is a match: ranking g0, g1, g2, g3, g4.
    result = evaluate_ranking(
        dist, q_pids, g_pids, np.zeros(1, int), np.zeros(5, int), protocol="ignore_camera"
    )
    assert result.mAP == pytest.approx((1 / 1 + 2 / 3 + 3 / 5) / 3)


def test_query_identities_missing_from_gallery_give_an_error_that_says_so():
    dist, _, g_pids, q_cams, g_cams = market_example()
    with pytest.raises(NoValidQueryError, match="none of the 1 query person ids occurs in the gallery"):
        evaluate_ranking(dist, np.array([42]), g_pids, q_cams, g_cams)


def test_ties_are_broken_by_gallery_index():
    q_pids, q_cams = np.array([1]), np.array([0])
    dist = np.array([[0.5, 0.5]])
    other_first = evaluate_ranking(dist, q_pids, np.array([2, 1]), q_cams, np.array([1, 1]))
    match_first = evaluate_ranking(dist, q_pids, np.array([1, 2]), q_cams, np.array([1, 1]))
    assert (other_first.mAP, other_first.cmc[0]) == (0.5, 0.0)
    assert (match_first.mAP, match_first.cmc[0]) == (1.0, 1.0)


def test_all_distances_equal_rank_by_index_with_junk_skipped():
    # g: other, junk, match, other, match -> kept order other, match, other, match
    dist = np.zeros((1, 5), dtype=np.float32)
    result = evaluate_ranking(dist, [1], [2, 1, 1, 3, 1], [0], [1, 0, 1, 1, 2], max_rank=3)
    np.testing.assert_array_equal(result.cmc, [0.0, 1.0, 1.0])
    assert result.mAP == pytest.approx((1 / 2 + 2 / 4) / 2)


def clothes_example():
    """Query: pid 1, camera 0, clothes 10."""
    dist = np.array([[0.1, 0.2, 0.3, 0.05]])
    g_pids = np.array([1, 2, 1, 1])
    g_cams = np.array([1, 1, 2, 0])  # g3 is on the query's camera: junk everywhere
    g_clothes = np.array([10, 20, 11, 11])  # g0 same clothes, g2 other clothes
    return dist, np.array([1]), g_pids, np.array([0]), g_cams, np.array([10]), g_clothes


@pytest.mark.parametrize(
    ("protocol", "cmc", "ap"),
    [
        ("general", [1.0, 1.0, 1.0], (1 / 1 + 2 / 3) / 2),  # ranking g0 (match), g1, g2 (match)
        ("cc", [0.0, 1.0, 1.0], 1 / 2),  # g0 same clothes -> junk; ranking g1, g2 (match)
        ("sc", [1.0, 1.0, 1.0], 1.0),  # g2 other clothes -> junk; ranking g0 (match), g1
    ],
)
def test_clothes_changing_and_same_clothes_rules(protocol, cmc, ap):
    dist, q_pids, g_pids, q_cams, g_cams, q_clothes, g_clothes = clothes_example()
    result = evaluate_ranking(
        dist, q_pids, g_pids, q_cams, g_cams, q_clothes, g_clothes, protocol=protocol, max_rank=3
    )
    np.testing.assert_array_equal(result.cmc, cmc)
    assert result.mAP == pytest.approx(ap)


def test_clothes_protocols_need_clothes_ids_and_explain_unknown_clothes():
    dist, q_pids, g_pids, q_cams, g_cams, _, _ = clothes_example()
    with pytest.raises(ValueError, match="needs query_clothes_ids"):
        evaluate_ranking(dist, q_pids, g_pids, q_cams, g_cams, protocol="cc")
    with pytest.raises(NoValidQueryError, match=r"every clothes id is -1 \(unknown\)"):
        evaluate_ranking(dist, q_pids, g_pids, q_cams, g_cams, [-1], [-1] * 4, protocol="cc")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"distmat": np.zeros(3)}, "must be 2-D"),
        ({"distmat": np.full((1, 5), np.nan)}, "contains NaN"),
        ({"query_pids": [1, 2]}, "query_pids has 2 entries but 1 were expected"),
        ({"gallery_camids": [0.5] * 5}, "integer ids"),
        ({"protocol": "duke"}, "unknown ranking protocol"),
        ({"max_rank": 0}, "max_rank must be >= 1"),
    ],
)
def test_bad_inputs_are_named(kwargs, message):
    dist, q_pids, g_pids, q_cams, g_cams = market_example()
    args = dict(
        distmat=dist, query_pids=q_pids, gallery_pids=g_pids, query_camids=q_cams, gallery_camids=g_cams
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        evaluate_ranking(**args)


def test_torch_inputs_and_float32_give_the_same_numbers():
    dist, q_pids, g_pids, q_cams, g_cams = market_example()
    expected = evaluate_ranking(dist, q_pids, g_pids, q_cams, g_cams)
    result = evaluate_ranking(
        torch.from_numpy(dist).float(), *(torch.from_numpy(a) for a in (q_pids, g_pids, q_cams, g_cams))
    )
    np.testing.assert_array_equal(result.cmc, expected.cmc)
    assert result.mAP == expected.mAP


# ---------------------------------------------------------------- equality with the reference loops


@pytest.mark.parametrize("seed", range(6))
def test_market1501_equals_torchreid_loop_on_random_data(seed):
    rng = np.random.default_rng(seed)
    dist, q_pids, g_pids, q_cams, g_cams, _, _ = random_problem(rng, 40, 300, 25, 4)
    result = evaluate_ranking(dist, q_pids, g_pids, q_cams, g_cams, max_rank=50)
    cmc, m_ap, m_inp = torchreid_market1501(dist, q_pids, g_pids, q_cams, g_cams, 50)  # default quicksort
    np.testing.assert_allclose(result.cmc, cmc, rtol=0, atol=1e-7)  # torchreid sums CMC in float32
    assert result.mAP == pytest.approx(m_ap, rel=1e-12)
    assert result.mINP == pytest.approx(m_inp, rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_ties_equal_torchreid_loop_with_stable_sort(seed):
    rng = np.random.default_rng(100 + seed)
    dist, q_pids, g_pids, q_cams, g_cams, _, _ = random_problem(rng, 30, 120, 8, 3, ties=True)
    result = evaluate_ranking(dist, q_pids, g_pids, q_cams, g_cams, max_rank=120)
    cmc, m_ap, m_inp = torchreid_market1501(dist, q_pids, g_pids, q_cams, g_cams, 120, sort_kind="stable")
    np.testing.assert_allclose(result.cmc, cmc, rtol=0, atol=1e-7)
    assert result.mAP == pytest.approx(m_ap, rel=1e-12)
    assert result.mINP == pytest.approx(m_inp, rel=1e-12)


@pytest.mark.parametrize("mode", [None, "CC", "SC"])
@pytest.mark.parametrize("ties", [False, True])
def test_cloth_changing_protocols_equal_cal_loop(mode, ties):
    rng = np.random.default_rng(7 if ties else 8)
    dist, q_pids, g_pids, q_cams, g_cams, q_clothes, g_clothes = random_problem(rng, 50, 200, 10, 3, 4, ties)
    protocol = {None: "general", "CC": "cc", "SC": "sc"}[mode]
    result = evaluate_ranking(
        dist, q_pids, g_pids, q_cams, g_cams, q_clothes, g_clothes, protocol=protocol, max_rank=None
    )
    cmc, m_ap, skipped = cal_evaluate(dist, q_pids, g_pids, q_cams, g_cams, q_clothes, g_clothes, mode)
    np.testing.assert_allclose(result.cmc, cmc, rtol=0, atol=1e-12)
    assert result.mAP == pytest.approx(m_ap, rel=1e-12)
    assert result.num_skipped_queries == skipped


def test_large_block_boundaries_do_not_change_results():
    # More queries than one internal block so several blocks are evaluated and stitched.
    rng = np.random.default_rng(3)
    dist, q_pids, g_pids, q_cams, g_cams, _, _ = random_problem(rng, 600, 9000, 300, 6)
    result = evaluate_ranking(dist.astype(np.float32), q_pids, g_pids, q_cams, g_cams)
    cmc, m_ap, _ = cal_evaluate(dist.astype(np.float32), q_pids, g_pids, q_cams, g_cams)
    np.testing.assert_allclose(result.cmc, cmc[:50], atol=1e-12)
    assert result.mAP == pytest.approx(m_ap, rel=1e-12)
