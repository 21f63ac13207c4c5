"""Semantic Attention Head: pool the backbone features at the body's semantic points.

Queries are the global position embedding sampled at each keypoint (several per keypoint, each
with a learnable bias); keys are the kept tokens' position embeddings, values their features. A
differential attention pools one feature per query, a second feature is read at the token whose
position is most similar to the query; missing keypoints give zero features. The flattened part
features pass through Linear-BN-Linear-BN to the embedding.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_sapiensid import SapiensIDConfig


class SapiensIDRMSNorm(nn.Module):
    """RMS normalisation without a learnable scale (the differential attention's sub-layer norm)."""

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        normed = hidden_states.float() * torch.rsqrt(hidden_states.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(hidden_states)


def differential_lambda_init(depth: int) -> float:
    return 0.8 - 0.6 * math.exp(-0.3 * depth)


class SapiensIDDifferentialAttention(nn.Module):
    """Differential attention (Ye et al., 2024): softmax(Q1K1) - lambda * softmax(Q2K2), one head by default."""

    def __init__(self, config: SapiensIDConfig):
        super().__init__()
        dim = config.hidden_size
        self.num_heads = config.head_num_heads
        self.head_dim = dim // self.num_heads // 2
        self.scaling = self.head_dim**-0.5
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.out_proj = nn.Linear(dim, dim, bias=False)
        self.lambda_init = differential_lambda_init(config.head_depth)
        self.lambda_q1 = nn.Parameter(torch.zeros(self.head_dim))
        self.lambda_k1 = nn.Parameter(torch.zeros(self.head_dim))
        self.lambda_q2 = nn.Parameter(torch.zeros(self.head_dim))
        self.lambda_k2 = nn.Parameter(torch.zeros(self.head_dim))
        self.sub_norm = SapiensIDRMSNorm(eps=1e-5)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
        batch, num_queries, dim = query.shape
        num_keys = key.shape[1]
        heads, head_dim = self.num_heads, self.head_dim
        q = self.q_proj(query).view(batch, num_queries, 2 * heads, head_dim).transpose(1, 2)
        k = self.k_proj(key).view(batch, num_keys, 2 * heads, head_dim).transpose(1, 2)
        v = self.v_proj(value).view(batch, num_keys, heads, 2 * head_dim).transpose(1, 2)
        logits = torch.nan_to_num((q * self.scaling) @ k.transpose(-1, -2))
        logits = logits.masked_fill(~key_valid[:, None, None, :], float("-inf"))
        weights = F.softmax(logits, dim=-1, dtype=torch.float32).type_as(logits)
        lambda_1 = torch.exp(torch.sum(self.lambda_q1 * self.lambda_k1).float()).type_as(q)
        lambda_2 = torch.exp(torch.sum(self.lambda_q2 * self.lambda_k2).float()).type_as(q)
        lambda_full = lambda_1 - lambda_2 + self.lambda_init
        weights = weights.view(batch, heads, 2, num_queries, num_keys)
        weights = weights[:, :, 0] - lambda_full * weights[:, :, 1]
        pooled = self.sub_norm(weights @ v) * (1 - self.lambda_init)
        pooled = pooled.transpose(1, 2).reshape(batch, num_queries, dim)
        return self.out_proj(pooled)


class SapiensIDSemanticAttentionHead(nn.Module):
    def __init__(self, config: SapiensIDConfig):
        super().__init__()
        dim = config.hidden_size
        self.queries_per_keypoint = config.head_queries_per_keypoint
        num_queries = config.num_keypoints * self.queries_per_keypoint
        self.num_parts = 2 * num_queries
        self.query_embed = nn.Parameter(torch.zeros(1, num_queries, dim))
        self.attention = SapiensIDDifferentialAttention(config)
        # One gate per part feature (the official `learned_mask`, one row per training dataset).
        self.part_gate = nn.Parameter(torch.zeros(1, self.num_parts))
        self.fc1 = nn.Linear(dim * self.num_parts, config.output_dim, bias=False)
        self.bn1 = nn.BatchNorm1d(config.output_dim, eps=config.head_batchnorm_eps)
        self.fc2 = nn.Linear(config.output_dim, config.output_dim, bias=False)
        self.bn2 = nn.BatchNorm1d(config.output_dim, eps=config.head_batchnorm_eps)

    def _apply(self, fn, recurse=True):
        # A cast of the model (`.to(torch.bfloat16)`, `.half()`) leaves `query_embed` in float32: it decides
        # which token the nearest-position part reads, an argmax that can be nearly tied. Only its device
        # follows the model.
        query = self._parameters.pop("query_embed")
        try:
            super()._apply(fn, recurse)
        finally:
            self._parameters["query_embed"] = query
        target = fn(torch.empty(0, dtype=query.dtype, device=query.device)).device
        if target != query.device:
            moved = nn.Parameter(query.detach().to(target), requires_grad=query.requires_grad)
            if query.grad is not None:
                moved.grad = query.grad.to(target)
            self._parameters["query_embed"] = moved
        return self

    def queries(self, keypoint_positions: torch.Tensor) -> torch.Tensor:
        """(B, K*q, D): each keypoint's sampled position embedding, repeated, plus a learnable bias."""
        repeated = keypoint_positions.repeat_interleave(self.queries_per_keypoint, dim=1)
        return repeated + self.query_embed

    def part_features(
        self,
        features: torch.Tensor,
        token_positions: torch.Tensor,
        token_valid: torch.Tensor,
        keypoint_positions: torch.Tensor,
        keypoints_missing: torch.Tensor,
    ) -> torch.Tensor:
        """(B, 2*K*q, D) gated part features: attention-pooled ones, then nearest-position ones.

        Positions come in float32. The nearest token is chosen in float32 in any model dtype and under
        autocast: neighbouring tokens of a small face ROI are closer than a half-precision step, so a
        half-precision choice reads a different token (cosine 0.8 to the float32 embedding, measured). For
        the same reason the query bias itself stays float32 when the model is cast (`_apply`): rounded to
        bfloat16 it moved a nearly tied choice of the shipped weights (cosine 0.96 on a CUHK03 crop).
        """
        dtype = self.attention.q_proj.weight.dtype  # the model's dtype (the query bias stays float32)
        queries = self.queries(keypoint_positions.to(dtype)).to(dtype)
        missing = keypoints_missing.repeat_interleave(self.queries_per_keypoint, dim=1)
        pooled = self.attention(queries, token_positions.to(dtype), features, token_valid)
        pooled = pooled.masked_fill(missing[..., None], 0.0)

        with torch.no_grad(), torch.autocast(token_positions.device.type, enabled=False):
            exact_queries = self.queries(keypoint_positions.float()).float()
            similarity = F.normalize(token_positions.float(), dim=-1) @ F.normalize(exact_queries, dim=-1).transpose(1, 2)
            similarity = similarity.masked_fill(~token_valid[..., None], float("-inf"))
            nearest = similarity.argmax(dim=1)  # (B, K*q)
        picked = torch.gather(features, 1, nearest[..., None].expand(-1, -1, features.shape[-1]))
        picked = picked.masked_fill(missing[..., None], 0.0)

        parts = torch.cat([pooled, picked], dim=1)
        return parts * self.part_gate.sigmoid()[0][None, :, None]

    def forward(self, parts: torch.Tensor) -> torch.Tensor:
        hidden = self.bn1(self.fc1(parts.flatten(1)))
        return self.bn2(self.fc2(hidden))
