"""The encoder's attention-logit bias: the key bias (padding, mask-token count) and KP-RPE's pair bias.

KP-RPE gives every (query, key) pair its own logit bias: the query's value at the pair's bucket. The
bias is kept as (bucket values, bucket ids) and only turned into the (B, H, L, L) tensor attention
reads when attention runs. On CPU that happens a few images at a time (one for the full-width model),
so the bias attention reads is still in cache: writing the whole batch's bias and reading it back cost more memory traffic than the gather
itself (the full-width model's bias is 10.5 MB an image and a layer). The key bias is folded into the
bucket values as two extra buckets, so building the bias is one gather and no add; the numbers are the
ones of gathering, then adding the key bias, and one image's attention does not depend on the others.
"""

import torch
import torch.nn.functional as F

# Extra buckets after the KP-RPE ones: padding keys read -inf, the mask token reads its own bucket's
# value plus log(count). Every other key's bias is 0 (see masked_recognition.key_bias).
PADDING_BUCKET = 0
MASK_TOKEN_BUCKET = 1


def fold_key_bias_into_buckets(buckets: torch.Tensor, key_bias: torch.Tensor, has_mask_token: bool, num_buckets: int) -> torch.Tensor:
    """(B, L, L) bucket ids -> the same ids with padding keys and the mask-token key sent to the extra buckets."""
    padding_keys = torch.isneginf(key_bias)[:, None, :]
    folded = buckets.masked_fill(padding_keys, num_buckets + PADDING_BUCKET)
    if has_mask_token:
        folded[:, :, -1] = num_buckets + MASK_TOKEN_BUCKET
    return folded


def fold_key_bias_into_values(values: torch.Tensor, key_bias: torch.Tensor, has_mask_token: bool) -> torch.Tensor:
    """(B, L, H, buckets) values, as the MLP writes them -> (B, H, L, buckets + extra), head-major.

    Appends the padding bucket (and the mask-token bucket). The mask token's key sits in the last KP-RPE
    bucket (no position), so its folded value is that bucket's value plus the key bias, added in the
    same dtype as the unfolded sum. The copy this needs anyway also moves the heads first: the bias
    gathered from head-major values is a contiguous (B, H, L, L) tensor, and CPU attention reads a
    contiguous mask faster than a transposed one.
    """
    by_head = values.transpose(1, 2)
    extra = [by_head.new_full((*by_head.shape[:3], 1), float("-inf"))]
    if has_mask_token:
        extra.append(by_head[..., -1:] + key_bias[:, -1, None, None, None].to(values.dtype))
    return torch.cat([by_head, *extra], dim=3)  # contiguous: cat writes a fresh tensor in this shape


def pair_bias(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(B, H, L, L) bias values[b, h, i, index[b, i, j]] from head-major (B, H, L, buckets) values.

    One gather along the bucket axis; the index is shared by the heads (an expanded view, no copy).
    """
    return torch.gather(values, 3, index[:, None].expand(-1, values.shape[1], -1, -1))


# Largest bias one attention call builds on CPU: small enough to stay in a desktop CPU's last-level cache.
CPU_BIAS_BYTES_PER_CALL = 8 * 2**20


def _builds_one_graph() -> bool:
    # Exporters and compilers trace one graph for every batch size: a Python loop over the batch would
    # freeze the traced batch size into it.
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()


def samples_per_attention_call(query: torch.Tensor, values: torch.Tensor) -> int:
    """How many images one attention call covers: the whole batch on accelerators and while exporting;
    on CPU as many as keep the built bias under CPU_BIAS_BYTES_PER_CALL (at least one)."""
    batch, heads, length = query.shape[:3]
    if query.device.type != "cpu" or _builds_one_graph():
        return batch
    bytes_per_image = heads * length * length * values.element_size()
    return max(1, min(batch, CPU_BIAS_BYTES_PER_CALL // bytes_per_image))


def writes_attention_out(query: torch.Tensor, values: torch.Tensor) -> bool:
    """True in CPU training at reduced precision (bfloat16 autocast, a half-precision model): the bias values
    need a gradient, which torch's fused CPU attention kernels do not give, and scaled_dot_product_attention's
    math path would recompute the attention in float32. In float32 that math path is as fast or faster (it
    measured 0.99x at sapiensid-small's shapes and 1.08x at the official size), so it stays."""
    return (
        query.device.type == "cpu" and query.dtype in (torch.bfloat16, torch.float16)
        and torch.is_grad_enabled() and values.requires_grad and not _builds_one_graph()
    )  # fmt: skip


def attention_learning_the_bias(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, values: torch.Tensor, index: torch.Tensor,
    dropout: float, scale: float,
) -> torch.Tensor:
    """Attention written out for CPU training at reduced precision (`writes_attention_out`):
    softmax(q k^T * scale + bias) v, a few images at a time as `attention_with_pair_bias` splits the batch
    (the logits of a large model's images stay in cache).

    SDPA's math path, which CPU training otherwise takes, recomputes the whole attention in float32 and
    guards its softmax against rows that are all -inf (two more passes over the (B, H, L, L) logits);
    no row here is (every image keeps its CLS token, whose key no bias masks). The two matrix products
    run in the attention's own dtype (bfloat16 under autocast), the bias and the softmax in float32 (or wider),
    as GPU attention kernels do; the bias is not rounded to bfloat16 first, as SDPA's mask was.
    """
    precise = torch.promote_types(query.dtype, torch.float32)
    logits = torch.matmul(query * scale, key.transpose(-2, -1)).to(precise) + pair_bias(values.to(precise), index)
    weights = F.dropout(logits.softmax(dim=-1), p=dropout, training=dropout > 0)
    return weights.to(query.dtype) @ value


def attention_with_pair_bias(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, values: torch.Tensor, index: torch.Tensor,
    dropout: float, scale: float, samples_per_call: int | None = None,
) -> torch.Tensor:
    """Scaled dot-product attention with the pair bias of `values` / `index`, built a few images at a time
    (in bfloat16 CPU training, written out: `attention_learning_the_bias`)."""
    step = samples_per_call or samples_per_attention_call(query, values)
    attend = attention_learning_the_bias if writes_attention_out(query, values) else _fused_attention
    # split, not slicing: the backward of a split joins the pieces' gradients once, where each slice's
    # backward would write a zero-filled tensor of the whole batch's values.
    pieces = zip(query.split(step), key.split(step), value.split(step), values.split(step), index.split(step), strict=True)
    contexts = [attend(q, k, v, bucket_values, ids, dropout, scale) for q, k, v, bucket_values, ids in pieces]
    return contexts[0] if len(contexts) == 1 else torch.cat(contexts)


def _fused_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, values: torch.Tensor, index: torch.Tensor,
    dropout: float, scale: float,
) -> torch.Tensor:
    return F.scaled_dot_product_attention(query, key, value, attn_mask=pair_bias(values, index), dropout_p=dropout, scale=scale)
