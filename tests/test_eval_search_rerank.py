"""Top-k search, k-reciprocal re-ranking and embedding helpers."""

import numpy as np
import pytest
import torch

from sapiensid_hf.evaluation import (
    aggregate_by_group,
    distance_matrix,
    faiss_available,
    k_reciprocal_rerank,
    stable_topk_smallest,
    topk_search,
)
from sapiensid_hf.evaluation import rerank as rerank_module
from sapiensid_hf.evaluation.distance import l2_normalize
from sapiensid_hf.evaluation.rerank import DEFAULT_RERANK, RerankMemoryError, rerank_embeddings


def test_stable_topk_breaks_ties_by_column_like_a_stable_sort():
    values = torch.tensor([[3.0, 1.0, 2.0, 1.0, 1.0, 0.0], [5.0, 5.0, 5.0, 5.0, 5.0, 5.0]])
    got_values, got_columns = stable_topk_smallest(values, 3)
    expected_values, expected_columns = torch.sort(values, dim=1, stable=True)
    assert got_columns.tolist() == [[5, 1, 3], [0, 1, 2]]
    assert torch.equal(got_columns, expected_columns[:, :3])
    assert torch.equal(got_values, expected_values[:, :3])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_topk_search_equals_stable_sort_of_the_full_matrix(metric):
    rng = np.random.default_rng(0)
    query = torch.from_numpy(rng.standard_normal((37, 8)))
    gallery = torch.from_numpy(rng.standard_normal((250, 8)))
    gallery[100] = gallery[3]  # exact duplicates: ties resolved by index across gallery blocks
    distances, indices = topk_search(
        query, gallery, k=20, metric=metric, backend="torch", query_block=16, gallery_block=64
    )
    full = distance_matrix(query, gallery, metric)
    expected_dist, expected_index = torch.sort(full, dim=1, stable=True)
    np.testing.assert_array_equal(indices, expected_index[:, :20].numpy())
    np.testing.assert_allclose(distances, expected_dist[:, :20].numpy(), rtol=0, atol=1e-12)


def test_topk_search_caps_k_and_checks_inputs():
    distances, indices = topk_search(
        np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32), k=5, backend="torch"
    )
    assert indices.tolist() == [[0, 1], [1, 0]]
    np.testing.assert_allclose(distances, [[-1, 0], [-1, 0]])
    with pytest.raises(ValueError, match="query dim 2 != gallery dim 3"):
        topk_search(np.zeros((1, 2)), np.zeros((4, 3)), k=1)
    with pytest.raises(ValueError, match="unknown search backend"):
        topk_search(np.zeros((1, 2)), np.zeros((4, 2)), k=1, backend="annoy")


@pytest.mark.skipif(not faiss_available(), reason="faiss is not installed")
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_faiss_backend_finds_the_same_neighbours(metric):
    rng = np.random.default_rng(1)
    query = rng.standard_normal((20, 16)).astype(np.float32)
    gallery = rng.standard_normal((500, 16)).astype(np.float32)
    dist_f, index_f = topk_search(query, gallery, k=10, metric=metric, backend="faiss")
    dist_t, index_t = topk_search(query, gallery, k=10, metric=metric, backend="torch")
    np.testing.assert_array_equal(index_f, index_t)
    np.testing.assert_allclose(dist_f, dist_t, atol=1e-4)


def test_distance_matrix_cosine_is_negative_cosine_similarity():
    query = np.array([[2.0, 0.0]])
    gallery = np.array([[1.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    np.testing.assert_allclose(distance_matrix(query, gallery).numpy(), [[-1.0, 0.0, -np.sqrt(0.5)]])
    np.testing.assert_allclose(distance_matrix(query, gallery, "euclidean").numpy(), [[1.0, 13.0, 2.0]])


def torchreid_distance(query: torch.Tensor, gallery: torch.Tensor, metric: str) -> torch.Tensor:
    """torchreid `metrics/distance.py` (`euclidean_squared_distance`, `cosine_distance`)."""
    if metric == "cosine":
        return 1 - torch.mm(
            torch.nn.functional.normalize(query, p=2, dim=1), torch.nn.functional.normalize(gallery, p=2, dim=1).t()
        )
    m, n = query.size(0), gallery.size(0)
    distmat = torch.pow(query, 2).sum(dim=1, keepdim=True).expand(m, n) + torch.pow(gallery, 2).sum(
        dim=1, keepdim=True
    ).expand(n, m).t()
    return distmat.addmm_(query, gallery.t(), beta=1, alpha=-2)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("block_size", [7, 4096])  # ragged query blocks and one block
def test_distance_matrix_equals_torchreid_formulation(metric, dtype, block_size):
    generator = torch.Generator().manual_seed(3)
    query = torch.randn(30, 64, generator=generator, dtype=dtype) * 3
    gallery = torch.randn(45, 64, generator=generator, dtype=dtype)
    got = distance_matrix(query, gallery, metric, block_size=block_size)
    expected = torchreid_distance(query, gallery, metric) - (1 if metric == "cosine" else 0)
    assert got.dtype == dtype and got.shape == (30, 45)
    tolerance = 1e-4 if dtype == torch.float32 else 1e-10  # summation order only
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=0, atol=tolerance * (50 if metric == "euclidean" else 1))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_distance_matrix_refuses_non_finite_embeddings_naming_the_side(bad):
    clean = np.ones((3, 4), dtype=np.float32)
    dirty = clean.copy()
    dirty[1, 2] = bad
    with pytest.raises(ValueError, match="query contains NaN or infinite"):
        distance_matrix(dirty, clean)
    with pytest.raises(ValueError, match="gallery contains NaN or infinite"):
        distance_matrix(clean, dirty, "euclidean")


def test_distance_matrix_refuses_a_block_size_below_one():
    with pytest.raises(ValueError, match="block_size must be at least 1"):
        distance_matrix(np.eye(2), np.eye(2), block_size=0)


def test_aggregate_by_group_averages_then_normalises_in_order_of_appearance():
    embeddings = np.array([[1.0, 0.0], [0.0, 5.0], [3.0, 0.0], [0.0, 1.0]])
    fused, first_rows = aggregate_by_group(embeddings, ["t2", "t1", "t2", "t1"])
    assert first_rows.tolist() == [0, 1]
    np.testing.assert_allclose(fused.numpy(), [[1.0, 0.0], [0.0, 1.0]])


def torchreid_re_ranking(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3):
    """torchreid `utils/rerank.py`, with a stable argsort (our tie policy)."""
    original_dist = np.concatenate(
        [np.concatenate([q_q_dist, q_g_dist], axis=1), np.concatenate([q_g_dist.T, g_g_dist], axis=1)], axis=0
    )
    original_dist = np.power(original_dist, 2).astype(np.float32)
    original_dist = np.transpose(1.0 * original_dist / np.max(original_dist, axis=0))
    V = np.zeros_like(original_dist).astype(np.float32)
    initial_rank = np.argsort(original_dist, kind="stable").astype(np.int32)
    query_num = q_g_dist.shape[0]
    all_num = query_num + q_g_dist.shape[1]
    half = int(np.around(k1 / 2.0)) + 1
    for i in range(all_num):
        forward = initial_rank[i, : k1 + 1]
        backward = initial_rank[forward, : k1 + 1]
        k_reciprocal = forward[np.where(backward == i)[0]]
        expansion = k_reciprocal
        for candidate in k_reciprocal:
            c_forward = initial_rank[candidate, :half]
            c_backward = initial_rank[c_forward, :half]
            c_reciprocal = c_forward[np.where(c_backward == candidate)[0]]
            if len(np.intersect1d(c_reciprocal, k_reciprocal)) > 2.0 / 3 * len(c_reciprocal):
                expansion = np.append(expansion, c_reciprocal)
        expansion = np.unique(expansion)
        weight = np.exp(-original_dist[i, expansion])
        V[i, expansion] = 1.0 * weight / np.sum(weight)
    original_dist = original_dist[:query_num]
    if k2 != 1:
        V = np.stack([np.mean(V[initial_rank[i, :k2], :], axis=0) for i in range(all_num)])
    inv_index = [np.where(V[:, i] != 0)[0] for i in range(all_num)]
    jaccard = np.zeros_like(original_dist, dtype=np.float32)
    for i in range(query_num):
        temp_min = np.zeros(shape=[1, all_num], dtype=np.float32)
        nonzero = np.where(V[i, :] != 0)[0]
        for j in nonzero:
            temp_min[0, inv_index[j]] = temp_min[0, inv_index[j]] + np.minimum(V[i, j], V[inv_index[j], j])
        jaccard[i] = 1 - temp_min / (2.0 - temp_min)
    final = jaccard * (1 - lambda_value) + original_dist * lambda_value
    return final[:query_num, query_num:]


@pytest.mark.parametrize(("k1", "k2"), [(20, 6), (5, 1), (7, 3)])
def test_rerank_equals_torchreid_loop(k1, k2):
    rng = np.random.default_rng(k1)
    centers = rng.standard_normal((6, 8))
    query = centers[rng.integers(0, 6, 15)] + 0.5 * rng.standard_normal((15, 8))
    gallery = centers[rng.integers(0, 6, 60)] + 0.5 * rng.standard_normal((60, 8))

    def euclidean(a, b):
        return np.sqrt(np.maximum(distance_matrix(a, b, "euclidean").numpy(), 0))

    args = (euclidean(query, gallery), euclidean(query, query), euclidean(gallery, gallery))
    result = k_reciprocal_rerank(*args, k1=k1, k2=k2)
    expected = torchreid_re_ranking(*args, k1=k1, k2=k2)
    assert result.shape == (15, 60)
    np.testing.assert_allclose(result, expected, rtol=0, atol=2e-6)  # float32 summation order


def test_rerank_checks_shapes():
    with pytest.raises(ValueError, match="shapes do not fit"):
        k_reciprocal_rerank(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((2, 2)))


def test_rerank_embeddings_is_the_reference_on_torchreids_distance_of_unit_embeddings():
    generator = np.random.default_rng(0)
    query, gallery = generator.normal(size=(7, 16)), generator.normal(size=(30, 16))
    unit_q, unit_g = l2_normalize(query), l2_normalize(gallery)
    expected = k_reciprocal_rerank(
        *(distance_matrix(a, b, "euclidean").numpy() for a, b in ((unit_q, unit_g), (unit_q, unit_q), (unit_g, unit_g))),
        **DEFAULT_RERANK,
    )  # fmt: skip
    result = rerank_embeddings(query, gallery)
    np.testing.assert_allclose(result, expected, atol=1e-6)
    # Only the direction of an embedding counts, as for the cosine the plain ranking uses.
    scales = generator.uniform(0.5, 3.0, size=(37, 1))
    np.testing.assert_allclose(rerank_embeddings(query * scales[:7], gallery * scales[7:]), expected, atol=1e-5)
    assert not np.allclose(result, rerank_embeddings(query, gallery, k1=3, k2=2))  # the settings are used


def test_rerank_refuses_a_set_whose_matrices_would_not_fit(monkeypatch):
    monkeypatch.setattr(rerank_module, "available_memory_bytes", lambda: 2**30)
    rerank_module.check_rerank_memory(100, 5000)  # 0.4 GiB: fits
    with pytest.raises(RerankMemoryError, match=r"re-ranking 3368 queries and 15913 gallery images needs about 5\.5 GiB .* 1\.0 GiB is free"):
        rerank_embeddings(np.ones((3368, 4)), np.ones((15913, 4)))


def test_free_memory_is_the_containers_when_its_limit_leaves_less(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16777216 kB\nMemAvailable:    8388608 kB\n")  # 8 GiB free on the host
    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    monkeypatch.setattr(rerank_module, "MEMINFO", meminfo)
    monkeypatch.setattr(rerank_module, "CGROUP_LIMITS", ((limit, usage), (tmp_path / "v1_limit", tmp_path / "v1_usage")))
    assert rerank_module.available_memory_bytes() == 8 * 2**30  # no container files: the host's figure
    limit.write_text(f"{4 * 2**30}\n")
    usage.write_text(f"{2**30}\n")
    assert rerank_module.available_memory_bytes() == 3 * 2**30  # a 4 GiB container using 1 GiB
    limit.write_text("max\n")
    assert rerank_module.available_memory_bytes() == 8 * 2**30  # a container without a limit
    meminfo.unlink()
    limit.unlink()
    assert rerank_module.available_memory_bytes() is None


def test_rerank_in_blocks_of_rows_equals_the_reference(monkeypatch):
    """Blocks smaller than the matrices (7 rows of 75, the last one short): the tile-by-tile transpose and
    the blocked weights give the reference's result, as on a gallery larger than one block."""
    monkeypatch.setattr(rerank_module, "_ROWS_PER_BLOCK", 7)
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((6, 8))
    query = centers[rng.integers(0, 6, 15)] + 0.5 * rng.standard_normal((15, 8))
    gallery = centers[rng.integers(0, 6, 60)] + 0.5 * rng.standard_normal((60, 8))
    args = tuple(np.sqrt(np.maximum(distance_matrix(a, b, "euclidean").numpy(), 0))
                 for a, b in ((query, gallery), (query, query), (gallery, gallery)))  # fmt: skip
    np.testing.assert_allclose(k_reciprocal_rerank(*args), torchreid_re_ranking(*args), rtol=0, atol=2e-6)
    square = np.arange(23 * 23, dtype=np.float32).reshape(23, 23)
    expected = square.T.copy()
    rerank_module._transpose_in_place(square)
    np.testing.assert_array_equal(square, expected)
