"""KP-RPE: keypoint relative position encoding (Kim et al., CVPR 2024) as SapiensID uses it.

Each query token's offsets to the 19 keypoints (differences of sin-cos position embeddings) go
through a small MLP that outputs, for every layer and head, one logit bias per relative-position
bucket (iRPE "product" buckets). The bias of a (query, key) pair is the query's value at the pair's
bucket. Plain PyTorch; no custom op.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_sapiensid import SapiensIDConfig

INVALID_OFFSET = -2.0  # official value for "no keypoint relation" (missing keypoint, CLS, mask token)


def _piecewise_index(relative: torch.Tensor, alpha: float, beta: float, gamma: float) -> torch.Tensor:
    """iRPE piecewise index: exact below alpha, log-spaced up to beta beyond it."""
    magnitude = relative.abs()
    far = magnitude > alpha
    log_scaled = alpha + torch.log(magnitude.clamp(min=1e-6) / alpha) / math.log(gamma / alpha) * (beta - alpha)
    far_index = (torch.sign(relative) * log_scaled.round().clip(max=beta)).to(torch.int64)
    return torch.where(far, far_index, relative.round().to(torch.int64))


def num_buckets(ratio: float) -> int:
    """Product buckets (2*int(beta)+1)^2 plus one for tokens without a position (CLS, mask)."""
    beta = int(2 * ratio)
    return (2 * beta + 1) ** 2 + 1


def token_bucket_table(grid_size: int, num_levels: int, table_size: int, ratio: float) -> torch.Tensor:
    """(T, T) bucket id for every pair of retina tokens.

    Exactly the official lookup: each token's row/column inside its own level's grid is mapped by
    nearest neighbour onto a `table_size` grid, with the two axes swapped as the official grid_sample
    lookup swaps them; the pair's offset on that grid is bucketed by the iRPE product rule.
    """
    alpha, beta, gamma = ratio, 2 * ratio, 8 * ratio
    cells = torch.arange(grid_size, dtype=torch.float32)
    normalised = (cells / (grid_size - 1)) * 2 - 1  # float32 (as the official grid) whatever the default dtype
    on_table = torch.round(((normalised + 1) / 2) * (table_size - 1)).to(torch.int64)
    rows = on_table.repeat_interleave(grid_size).repeat(num_levels)
    cols = on_table.repeat(grid_size).repeat(num_levels)
    first = _piecewise_index((cols[:, None] - cols[None, :]).float(), alpha, beta, gamma) + int(beta)
    second = _piecewise_index((rows[:, None] - rows[None, :]).float(), alpha, beta, gamma) + int(beta)
    return first * (2 * int(beta) + 1) + second


class SapiensIDKeypointRPE(nn.Module):
    """Maps keypoint-relative token embeddings to per-layer, per-head bucket biases."""

    def __init__(self, config: SapiensIDConfig):
        super().__init__()
        self.num_layers = config.num_hidden_layers
        self.num_heads = config.num_attention_heads
        self.num_buckets = num_buckets(config.kprpe_ratio)
        self.keypoint_projection = nn.Linear(config.hidden_size, config.kprpe_keypoint_dim)
        self.fc1 = nn.Linear(config.num_keypoints * config.kprpe_keypoint_dim, config.kprpe_mlp_dim)
        self.fc2 = nn.Linear(config.kprpe_mlp_dim, self.num_buckets * self.num_heads * self.num_layers)
        self.config = config
        self.register_buffer("bucket_table", self.build_bucket_table(), persistent=False)

    def build_bucket_table(self) -> torch.Tensor:
        config = self.config
        return token_bucket_table(config.grid_size, config.num_levels, config.kprpe_grid_size, config.kprpe_ratio)

    def token_buckets(self, token_ids: torch.Tensor, has_mask_token: bool) -> torch.Tensor:
        """(B, L, L) bucket ids over [CLS, kept tokens, (MASK)]; CLS and MASK use the extra bucket."""
        table = self.bucket_table
        buckets = table[token_ids[:, :, None], token_ids[:, None, :]]
        pad = (1, 1, 1, 1) if has_mask_token else (1, 0, 1, 0)
        return F.pad(buckets, pad, value=self.num_buckets - 1)

    def relation_features(
        self, token_positions: torch.Tensor, keypoint_positions: torch.Tensor, keypoints_missing: torch.Tensor,
        token_valid: torch.Tensor, has_mask_token: bool,
    ) -> torch.Tensor:
        """(B, L, mlp_dim) MLP hidden features from each token's offsets to the keypoints.

        The first layer is linear, so proj(p_token - p_keypoint) = proj(p_token) - W p_keypoint: computed
        without materialising the (B, N, 19, D) offsets the official code builds.
        """
        projection = self.keypoint_projection
        # Positions arrive in float32 (retina_patch keeps them so); the MLP runs in the model's dtype.
        token_positions = token_positions.to(projection.weight.dtype)
        keypoint_positions = keypoint_positions.to(projection.weight.dtype)
        token_part = projection(token_positions)  # (B, N, c) includes the bias
        keypoint_part = F.linear(keypoint_positions, projection.weight)  # (B, K, c)
        offsets = token_part[:, :, None] - keypoint_part[:, None]  # (B, N, K, c)
        invalid_value = projection(torch.full_like(token_positions[:1, :1], INVALID_OFFSET))  # (1, 1, c)
        invalid = keypoints_missing[:, None, :] | ~token_valid[:, :, None]
        offsets = torch.where(invalid[..., None], invalid_value[:, :, None], offsets)
        batch, _, num_keypoints, width = offsets.shape
        no_relation = invalid_value.expand(batch, 1, num_keypoints, width)
        pieces = [no_relation, offsets] + ([no_relation] if has_mask_token else [])
        offsets = torch.cat(pieces, dim=1).flatten(2)
        return F.relu(self.fc1(offsets))

    def bucket_values(self, features: torch.Tensor, layer: int) -> torch.Tensor:
        """(B, L, H, buckets) logit bias of one layer for every query, head and bucket.

        A pair's bias is its query's value at the pair's bucket (attention_bias.pair_bias). Only this
        layer's rows of fc2 are applied: the other layers' outputs are never materialised together.
        """
        heads, bins = self.num_heads, self.num_buckets
        rows = slice(layer * heads * bins, (layer + 1) * heads * bins)
        per_bucket = F.linear(features, self.fc2.weight[rows], self.fc2.bias[rows])  # (B, L, H*bins)
        return per_bucket.reshape(*per_bucket.shape[:2], heads, bins)
