"""Semantic Attention Head queries and KP-RPE buckets."""

import math

import pytest
import torch
import torch.nn.functional as F
from model_inputs import all_missing, full_body

from sapiensid_hf.modeling import SapiensIDConfig, SapiensIDModel
from sapiensid_hf.modeling.keypoint_rpe import num_buckets, token_bucket_table


@pytest.fixture(scope="module")
def model() -> SapiensIDModel:
    return SapiensIDModel(SapiensIDConfig.tiny(image_size=192, patch_size=32)).eval()


def cell_center(row: int, col: int, grid: int) -> list[float]:
    """Normalised (x, y) that grid-samples (align_corners=True) exactly the table cell (row, col)."""
    return [col / (grid - 1), row / (grid - 1)]


def test_head_queries_follow_the_keypoints(model):
    grid = model.config.grid_size
    table = model.embeddings.position_table
    keypoints = torch.full((1, 19, 2), -1.0)
    keypoints[0, 0] = torch.tensor(cell_center(1, 2, grid))
    keypoints[0, 7] = torch.tensor(cell_center(4, 3, grid))
    positions, missing = model.keypoint_positions(keypoints, model.embeddings.position_grid())
    queries = model.head.queries(positions) - model.head.query_embed
    per = model.config.head_queries_per_keypoint
    torch.testing.assert_close(queries[0, 0:per], table[1 * grid + 2].expand(per, -1))
    torch.testing.assert_close(queries[0, 7 * per : 8 * per], table[4 * grid + 3].expand(per, -1))
    assert missing[0].tolist() == [i not in (0, 7) for i in range(19)]
    assert (queries[0, per : 7 * per] == 0).all(), "missing keypoints sample nothing"

    moved = keypoints.clone()
    moved[0, 0] = torch.tensor(cell_center(1, 3, grid))  # one patch to the right
    moved_queries = model.head.queries(model.keypoint_positions(moved, model.embeddings.position_grid())[0])
    moved_queries = moved_queries - model.head.query_embed
    torch.testing.assert_close(moved_queries[0, 0:per], table[1 * grid + 3].expand(per, -1))
    torch.testing.assert_close(moved_queries[0, per:], queries[0, per:])


def test_all_missing_keypoints_give_a_finite_embedding(model):
    pixels = torch.randn(2, 3, 192, 192)
    keypoints = torch.stack([all_missing(), full_body()])
    with torch.no_grad():
        output = model(pixels, keypoints)
    assert torch.isfinite(output.embeddings).all()
    assert not torch.allclose(output.embeddings[0], output.embeddings[1])


def test_missing_keypoints_zero_their_part_features(model):
    pixels = torch.randn(1, 3, 192, 192)
    keypoints = full_body()[None].clone()
    keypoints[0, 15:] = -1  # knees and ankles missing
    captured = {}
    handle = model.head.register_forward_pre_hook(lambda module, args: captured.setdefault("parts", args[0]))
    with torch.no_grad():
        model(pixels, keypoints)
    handle.remove()
    per = model.config.head_queries_per_keypoint
    parts = captured["parts"][0].reshape(2, 19 * per, -1)
    assert (parts[:, 15 * per :] == 0).all()
    assert (parts[:, : 15 * per].abs().sum(dim=-1) > 0).all()


def official_bucket_lookup(grid: int, levels: int, table_size: int, ratio: float) -> torch.Tensor:
    """The official KP-RPE bucket subsetting, written out independently: bucket table on a
    table_size grid, then two nearest grid_sample lookups with each token's level-local position."""
    alpha, beta, gamma = ratio, 2 * ratio, 8 * ratio
    rows = torch.arange(table_size).view(-1, 1).repeat(1, table_size)
    cols = torch.arange(table_size).view(1, -1).repeat(table_size, 1)
    positions = torch.stack([rows, cols], 2).view(-1, 2)
    diff = positions[:, None] - positions[None]

    def piecewise(relative):
        relative = relative.float()
        out = relative.round()
        far = relative.abs() > alpha
        value = alpha + torch.log(relative.abs().clamp(min=1e-6) / alpha) / math.log(gamma / alpha) * (beta - alpha)
        out[far] = (torch.sign(relative) * value.round().clip(max=beta)).trunc()[far]
        return out.long()

    side = 2 * int(beta) + 1
    table = (piecewise(diff[..., 0]) + int(beta)) * side + piecewise(diff[..., 1]) + int(beta)
    token_rows = torch.arange(grid).repeat_interleave(grid).repeat(levels)
    token_cols = torch.arange(grid).repeat(grid).repeat(levels)
    token_grid = torch.stack([token_rows, token_cols], -1).float() / (grid - 1) * 2 - 1  # [row, col] -> (x, y)
    sample_grid = token_grid[None, :, None, :]
    count = table.shape[0]
    first = F.grid_sample(table.float().T.reshape(1, count, table_size, table_size), sample_grid, mode="nearest", align_corners=True)
    first = first[..., 0].permute(0, 2, 1).reshape(1, -1, table_size, table_size)
    both = F.grid_sample(first, sample_grid, mode="nearest", align_corners=True)[..., 0]
    return both[0].long()


@pytest.mark.parametrize("grid, table_size", [(12, 14), (6, 14), (6, 6)])
def test_bucket_table_matches_the_official_grid_sample_lookup(grid, table_size):
    ours = token_bucket_table(grid, 3, table_size, 1.9)
    assert torch.equal(ours, official_bucket_lookup(grid, 3, table_size, 1.9))
    assert ours.max() < num_buckets(1.9) - 1  # the last bucket is reserved for CLS / mask tokens


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_cast_model_keeps_the_query_bias_in_float32(tmp_path, dtype):
    # The query bias decides the nearest-position part (an argmax that can be nearly tied): a cast of the
    # model, or loading it at a dtype, must not round it (the shipped weights lost 0.04 cosine on a crop).
    torch.manual_seed(0)
    model = SapiensIDModel(SapiensIDConfig.tiny()).eval()
    with torch.no_grad():
        model.head.query_embed.normal_(std=0.3)
    exact = model.head.query_embed.detach().clone()
    cast = model.to(dtype)
    assert cast.head.query_embed.dtype == torch.float32 and torch.equal(cast.head.query_embed, exact)
    assert cast.head.fc1.weight.dtype == dtype and cast.layers[0].mlp.fc1.weight.dtype == dtype
    assert cast.to("meta").head.query_embed.device.type == "meta"  # the device still follows
    model = SapiensIDModel(SapiensIDConfig.tiny())
    with torch.no_grad():
        model.head.query_embed.copy_(exact)
    model.save_pretrained(tmp_path)
    loaded = SapiensIDModel.from_pretrained(tmp_path, dtype=dtype)
    assert loaded.head.query_embed.dtype == torch.float32 and torch.equal(loaded.head.query_embed, exact)
    pixels, keypoints = torch.rand(2, 3, loaded.config.image_size, loaded.config.image_size), full_body()[None].repeat(2, 1, 1)
    with torch.no_grad():
        assert loaded.eval()(pixels.to(dtype), keypoints).embeddings.dtype == dtype
