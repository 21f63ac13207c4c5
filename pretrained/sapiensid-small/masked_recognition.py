"""Masked Recognition Model: keep n_k retina tokens, let ONE mask token stand for all the others.

n identical mask tokens contribute n * exp(q.k_mask) to every softmax denominator and the same
value to every numerator; one mask token whose logit gets + log(n) contributes exactly the same.
So the model sees every dropped token at the cost of one.
"""

from dataclasses import dataclass

import torch

from .configuration_sapiensid import SapiensIDConfig
from .retina_rois import NUM_BODY_POINTS_FOR_FULL_BODY

# Official face-first keep rule: the keep order prefers full-image, then upper-body, then face tokens.
FACE_FIRST_LEVEL_OFFSETS = (-0.3, -0.2, -0.1)
ORDER_NOISE = 1e-3


@dataclass
class TokenSelection:
    token_ids: torch.Tensor  # (B, N) indices into the retina tokens, in the order fed to the encoder
    valid: torch.Tensor  # (B, N) bool: False marks batch padding (excluded from attention)
    mask_count: torch.Tensor  # (B,) how many tokens the mask token stands for (>= 1)


def num_tokens_to_keep(num_tokens: int, mask_ratio: float) -> int:
    """Kept-token count for a mask ratio (official: int(T * (1 - ratio)))."""
    return max(1, int(num_tokens * (1 - mask_ratio)))


def face_first_offsets(
    visible: torch.Tensor, keypoints: torch.Tensor, probability: float, levels: int
) -> torch.Tensor:
    """Per-token keep-order offsets of the official `face_first_<p>` rule (0 for images it skips)."""
    batch, num_tokens = visible.shape
    has_body = (keypoints != -1).any(dim=-1).sum(dim=1) >= NUM_BODY_POINTS_FOR_FULL_BODY
    chosen = (torch.rand(batch, device=visible.device) < probability) & has_body
    per_level = torch.tensor(FACE_FIRST_LEVEL_OFFSETS[:levels], device=visible.device)
    offsets = per_level.repeat_interleave(num_tokens // levels)[None].expand(batch, -1)
    return offsets * chosen[:, None]


def select_tokens(
    visible: torch.Tensor,
    keypoints: torch.Tensor,
    config: SapiensIDConfig,
    mask_ratio: float,
    use_subset_rule: bool,
    keep_all_tokens: bool = False,
) -> TokenSelection:
    """Pick the tokens the encoder sees.

    Without masking every visible token is kept, in token order (batch rows are padded to the
    longest; padding is flagged invalid). `keep_all_tokens` pads every row to all T tokens instead,
    which gives the same result with a shape that does not depend on the data (ONNX export). With masking, `int(T * (1 - mask_ratio))` tokens are kept:
    visible tokens first in random order (shifted by the face-first rule in training), exactly the
    official ordering; a kept token that is not visible is padding.
    """
    batch, num_tokens = visible.shape
    if mask_ratio > 0:
        score = (~visible).float() + torch.rand(batch, num_tokens, device=visible.device) * ORDER_NOISE
        if use_subset_rule and config.token_subset_method.startswith("face_first_"):
            probability = float(config.token_subset_method.rsplit("_", 1)[-1])
            score = score + face_first_offsets(visible, keypoints, probability, config.num_levels)
        keep = num_tokens_to_keep(num_tokens, mask_ratio)
        token_ids = torch.argsort(score, dim=1)[:, :keep]
    else:
        keep = num_tokens if keep_all_tokens else int(visible.sum(dim=1).max())
        # Visible tokens first, each group in token order; unique keys make a plain sort stable, which
        # every ONNX exporter supports.
        order_key = (~visible).long() * num_tokens + torch.arange(num_tokens, device=visible.device)
        token_ids = torch.argsort(order_key, dim=1)[:, :keep]
    valid = torch.gather(visible, 1, token_ids)
    if not torch.jit.is_tracing() and not torch.compiler.is_compiling() and not bool(valid.any(dim=1).all()):
        empty = (~valid.any(dim=1)).nonzero().flatten().tolist()
        raise ValueError(f"images {empty} of the batch have no visible retina patch (is pixel_mask all zero?)")
    mask_count = (num_tokens - valid.sum(dim=1)).clamp(min=1)
    return TokenSelection(token_ids, valid, mask_count)


def gather_tokens(values: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """values (B, T, ...) -> (B, N, ...) at token_ids."""
    index = token_ids.reshape(*token_ids.shape, *([1] * (values.ndim - 2))).expand(-1, -1, *values.shape[2:])
    return torch.gather(values, 1, index)


def key_bias(selection: TokenSelection, use_mask_token: bool, dtype: torch.dtype) -> torch.Tensor:
    """(B, L) additive attention-logit bias over the sequence [CLS, kept tokens, MASK].

    0 for real tokens, -inf for batch padding, log(count) for the mask token.
    """
    batch = selection.valid.shape[0]
    device = selection.valid.device
    kept = torch.zeros(selection.valid.shape, dtype=dtype, device=device)
    kept = kept.masked_fill(~selection.valid, float("-inf"))
    parts = [torch.zeros(batch, 1, dtype=dtype, device=device), kept]
    if use_mask_token:
        parts.append(selection.mask_count.to(dtype).log()[:, None])
    return torch.cat(parts, dim=1)
