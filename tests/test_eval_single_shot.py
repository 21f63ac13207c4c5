"""CUHK03 single-gallery-shot and PRCC single-shot: equal to the reference loops draw for draw."""

import random
from collections import defaultdict

import numpy as np
import pytest
from torchreid_reference import torchreid_average_precision, torchreid_valid_queries

from sapiensid_hf.evaluation import (
    NoValidQueryError,
    evaluate_cuhk03_single_gallery_shot,
    evaluate_ranking,
    evaluate_single_shot,
    single_shot_gallery_draws,
)


def torchreid_cuhk03(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, num_repeats=10):
    """torchreid `eval_cuhk03`, drawing from numpy's global generator (np.bool -> bool for NumPy 2)."""
    all_cmc, all_ap = [], []
    for order, keep, raw_cmc in torchreid_valid_queries(distmat, q_pids, g_pids, q_camids, g_camids, "stable"):
        positions = defaultdict(list)
        for idx, pid in enumerate(g_pids[order][keep]):
            positions[pid].append(idx)
        cmc = 0.0
        for _ in range(num_repeats):
            mask = np.zeros(len(raw_cmc), dtype=bool)
            for idxs in positions.values():
                mask[np.random.choice(idxs)] = True
            one_shot = raw_cmc[mask].cumsum()
            one_shot[one_shot > 1] = 1
            cmc += one_shot[:max_rank].astype(np.float32)
        all_cmc.append(cmc / num_repeats)
        all_ap.append(torchreid_average_precision(raw_cmc))
    return np.asarray(all_cmc).astype(np.float32).sum(0) / len(all_cmc), np.mean(all_ap)


def cuhk03_problem(rng):
    num_ids = int(rng.integers(4, 12))
    g_pids = np.arange(num_ids * int(rng.integers(2, 5))) % num_ids
    rng.shuffle(g_pids)
    num_query = int(rng.integers(3, 15))
    return (
        rng.random((num_query, g_pids.size)),
        rng.integers(0, num_ids, num_query),
        g_pids,
        rng.integers(0, 2, num_query),
        rng.integers(0, 2, g_pids.size),
        min(num_ids, 5),
    )


@pytest.mark.parametrize("seed", range(8))
def test_cuhk03_equals_torchreid_loop_with_the_same_seed(seed):
    dist, q_pids, g_pids, q_cams, g_cams, max_rank = cuhk03_problem(np.random.default_rng(seed))
    np.random.seed(seed)
    cmc, m_ap = torchreid_cuhk03(dist, q_pids, g_pids, q_cams, g_cams, max_rank)
    result = evaluate_cuhk03_single_gallery_shot(
        dist, q_pids, g_pids, q_cams, g_cams, max_rank=max_rank, seed=seed
    )
    np.testing.assert_allclose(result.cmc, cmc, rtol=0, atol=1e-6)  # reference accumulates in float32
    assert result.mAP == pytest.approx(m_ap, rel=1e-12)


def test_cuhk03_without_seed_draws_from_numpy_global_generator_like_torchreid():
    dist, q_pids, g_pids, q_cams, g_cams, max_rank = cuhk03_problem(np.random.default_rng(99))
    np.random.seed(5)
    cmc, _ = torchreid_cuhk03(dist, q_pids, g_pids, q_cams, g_cams, max_rank)
    np.random.seed(5)
    result = evaluate_cuhk03_single_gallery_shot(dist, q_pids, g_pids, q_cams, g_cams, max_rank=max_rank)
    np.testing.assert_allclose(result.cmc, cmc, rtol=0, atol=1e-6)


def test_cuhk03_with_one_image_per_identity_equals_multi_shot():
    # Nothing to draw: single-shot CMC is the plain Market-1501 CMC.
    dist = np.array([[0.1, 0.2, 0.3], [0.3, 0.1, 0.2]])
    args = (dist, [1, 2], [2, 1, 3], [0, 0], [1, 1, 1])
    single = evaluate_cuhk03_single_gallery_shot(*args, max_rank=3, seed=0)
    multi = evaluate_ranking(*args, max_rank=3)
    np.testing.assert_array_equal(single.cmc, [0.0, 0.5, 1.0])  # matches at positions 1 and 2
    np.testing.assert_array_equal(single.cmc, multi.cmc)
    assert single.protocol == "cuhk03"


def test_cuhk03_single_shot_cmc_is_the_fraction_of_draws():
    # Identity 2 has a close (0.1) and a far (0.9) image; the query's identity 1 sits at 0.5. Rank-1 is
    # hit exactly in the repeats that draw identity 2's far image: randint(0, 2) == 1.
    dist = np.array([[0.1, 0.5, 0.9]])
    result = evaluate_cuhk03_single_gallery_shot(dist, [1], [2, 1, 2], [0], [1, 1, 1], max_rank=2, seed=11)
    far_drawn = np.random.RandomState(11).randint(0, 2, size=10) == 1
    np.testing.assert_allclose(result.cmc, [far_drawn.mean(), 1.0])


def test_cuhk03_all_invalid_explains():
    with pytest.raises(NoValidQueryError, match="camid"):
        evaluate_cuhk03_single_gallery_shot(np.zeros((1, 2)), [1], [1, 2], [0], [0, 0])


def cal_prcc_gallery_idx(gallery_pids):
    """The `gallery_idx` loop of CAL's PRCC loader, on Python's global `random`."""
    pid2imgidx = {}
    for idx, pid in enumerate(gallery_pids):
        pid2imgidx.setdefault(pid, []).append(idx)
    random.seed(3)
    return [[random.choice(pid2imgidx[pid]) for pid in pid2imgidx] for _ in range(10)]


def test_prcc_single_shot_draws_equal_cal_gallery_idx():
    g_pids = np.random.default_rng(0).integers(0, 30, 400)
    draws = single_shot_gallery_draws(g_pids)
    assert draws.tolist() == cal_prcc_gallery_idx(g_pids.tolist())
    # one image per identity, identities in order of first appearance
    first_seen = list(dict.fromkeys(g_pids.tolist()))
    assert [g_pids[draws[0]].tolist()] == [first_seen]


def test_prcc_single_shot_averages_the_draws():
    rng = np.random.default_rng(4)
    g_pids = np.repeat(np.arange(6), 3)
    dist = rng.random((12, g_pids.size))
    q_pids = rng.integers(0, 6, 12)
    q_cams, g_cams = np.ones(12, int), np.zeros(g_pids.size, int)
    result = evaluate_single_shot(dist, q_pids, g_pids, q_cams, g_cams, max_rank=6)
    draws = single_shot_gallery_draws(g_pids, 10, 3)
    per_draw = [evaluate_ranking(dist[:, d], q_pids, g_pids[d], q_cams, g_cams[d], max_rank=6) for d in draws]
    np.testing.assert_allclose(result.cmc, np.mean([r.cmc for r in per_draw], axis=0))
    assert result.mAP == pytest.approx(np.mean([r.mAP for r in per_draw]))
    assert len(result.draws) == 10
    assert result.to_dict()["num_draws"] == 10


def test_single_shot_rejects_draws_outside_the_gallery():
    with pytest.raises(ValueError, match="outside the gallery"):
        evaluate_single_shot(np.zeros((1, 2)), [1], [1, 2], [0], [1, 1], draws=np.array([[0, 5]]))
