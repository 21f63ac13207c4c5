"""SapiensID: one model for face, upper-body and full-body human recognition (Kim et al., CVPR 2025).

Data flow: retina patches from the full image, upper-body and face ROIs -> keep n_k tokens (masked
recognition model: one mask token with a log-count logit bias stands for the rest) -> ViT encoder
with keypoint relative position encoding -> Semantic Attention Head -> embedding.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

from .attention_bias import (
    attention_with_pair_bias,
    fold_key_bias_into_buckets,
    fold_key_bias_into_values,
    pair_bias,
)
from .configuration_sapiensid import SapiensIDConfig
from .cut_averaging import cuts_as_batch, fold_in_cuts
from .keypoint_rpe import SapiensIDKeypointRPE
from .masked_recognition import TokenSelection, gather_tokens, key_bias, select_tokens
from .retina_patch import RetinaTokens, SapiensIDRetinaPatchEmbeddings, grid_sample_float32
from .retina_rois import MISSING, augment_boxes, augment_keypoints, compute_roi_boxes, drop_boxes
from .semantic_attention_head import SapiensIDDifferentialAttention, SapiensIDSemanticAttentionHead
from .transformers_compat import init


@dataclass
class SapiensIDModelOutput(ModelOutput):
    """
    embeddings (`torch.FloatTensor` of shape `(batch_size, output_dim)`):
        Identity embeddings (not L2-normalised; compare with cosine similarity). Given `mirrored_keypoints`,
        the sum of the embeddings of each image and of its mirror; given the centre cuts of the images
        (`cut_pixel_values`, ...), the sum of the unit embeddings of each image and its cuts (each cut's
        with its mirror's when `cut_mirrored_keypoints` are given).
    last_hidden_state (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`):
        Final-norm encoder output over `[CLS, kept retina tokens..., MASK]`.
    token_ids (`torch.LongTensor` of shape `(batch_size, num_kept)`):
        Retina token index (level * grid_size**2 + row * grid_size + col) of each kept token; -1 marks
        batch padding.
    roi_boxes (`torch.FloatTensor` of shape `(batch_size, 3, 4)`):
        Snapped full-image, upper-body and face boxes the patches were sampled from (zero-area if absent).
    pooler_output (`torch.FloatTensor` of shape `(batch_size, output_dim)`):
        The embeddings L2-normalised: the identity vector to compare by dot product, what `sapiensid embed`
        writes and what the `image-feature-extraction` pipeline returns with `pool=True`.
    hidden_states (`tuple(torch.FloatTensor)`, *optional*):
        Input of every layer and the output of the last one, each `(batch_size, sequence_length, hidden_size)`.
    attentions (`tuple(torch.FloatTensor)`, *optional*):
        Attention weights of every layer, each `(batch_size, num_heads, sequence_length, sequence_length)`.

    Every output but `embeddings` and `pooler_output` is the images' own, never their mirrors' or cuts'.
    """

    embeddings: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    token_ids: torch.LongTensor | None = None
    roi_boxes: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


def _check_view_inputs(
    keypoints: torch.Tensor,
    mirrored_keypoints: torch.Tensor | None,
    cuts: tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None],
    cut_mirrored_keypoints: torch.Tensor | None,
) -> None:
    """ValueError for test-time view inputs that do not go together (cuts_as_batch checks the cuts' shapes)."""
    cut_keypoints = cuts[2]
    if any(value is not None for value in cuts) and any(value is None for value in cuts):
        raise ValueError("cut_pixel_values, cut_pixel_mask and cut_keypoints go together: give all three or none")
    if cut_keypoints is not None and cut_keypoints.shape[0] != keypoints.shape[0]:
        raise ValueError(f"cut_keypoints has {cut_keypoints.shape[0]} images, keypoints {keypoints.shape[0]}")
    if (cut_mirrored_keypoints is not None) != (cut_keypoints is not None and mirrored_keypoints is not None):
        raise ValueError(
            "with the cut inputs, mirrored_keypoints and cut_mirrored_keypoints go together (the mirror of the "
            "image and of each cut); cut_mirrored_keypoints needs both"
        )
    if mirrored_keypoints is not None and mirrored_keypoints.shape != keypoints.shape:
        raise ValueError(f"mirrored_keypoints must have the shape of keypoints {tuple(keypoints.shape)}, got {tuple(mirrored_keypoints.shape)}")


def refuse_images_without_person(person_found: torch.Tensor) -> None:
    """ValueError naming the images (batch indices) in which the detector found nobody."""
    person_found = torch.as_tensor(person_found).reshape(-1)
    if not (torch.jit.is_tracing() or torch.compiler.is_compiling()) and not bool(person_found.all()):
        nobody = [int(index) for index in torch.nonzero(~person_found.bool()).reshape(-1)]
        raise ValueError(
            f"no person was found in image(s) {nobody} of this batch of {person_found.numel()} (person_found is "
            "False): without keypoints every such image gets the same embedding, so it cannot be compared to "
            "anyone. Leave those images out, or call the model without `person_found` to embed them anyway."
        )


class SapiensIDDropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample."""

    def __init__(self, drop_prob: float):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return hidden_states
        keep = 1 - self.drop_prob
        shape = (hidden_states.shape[0],) + (1,) * (hidden_states.ndim - 1)
        return hidden_states * hidden_states.new_empty(shape).bernoulli_(keep) / keep


class SapiensIDAttention(nn.Module):
    """Multi-head self-attention with an additive logit bias (KP-RPE, mask-token count, padding)."""

    def __init__(self, config: SapiensIDConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.qkv_bias)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = config.attention_probs_dropout_prob
        self.proj_dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_bias: torch.Tensor,
        bias_index: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`attention_bias` is a logit bias broadcastable to (B, H, L, L); with `bias_index` (B, L, L) it is
        (B, H, L, buckets) bucket values instead, and the pair (i, j) reads bucket bias_index[b, i, j]."""
        batch, length, dim = hidden_states.shape
        qkv = self.qkv(hidden_states).reshape(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)
        dropout = self.dropout if self.training else 0.0
        weights = None
        if output_attentions or self.config._attn_implementation == "eager":
            bias = attention_bias if bias_index is None else pair_bias(attention_bias, bias_index)
            logits = (query * self.scaling) @ key.transpose(-2, -1) + bias
            weights = logits.softmax(dim=-1)
            context = F.dropout(weights, p=dropout, training=self.training) @ value
        elif bias_index is not None:
            context = attention_with_pair_bias(query, key, value, attention_bias, bias_index, dropout, self.scaling)
        else:
            context = F.scaled_dot_product_attention(
                query, key, value, attn_mask=attention_bias.to(query.dtype), dropout_p=dropout, scale=self.scaling
            )
        context = context.transpose(1, 2).reshape(batch, length, dim)
        return self.proj_dropout(self.proj(context)), weights


class SapiensIDMLP(nn.Module):
    def __init__(self, config: SapiensIDConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.relu6 = config.hidden_act == "relu6"

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.fc1(hidden_states)
        if self.relu6 and not hidden_states.requires_grad:
            # Without autograd, ReLU6 (the official activation) runs in place on fc1's temporary output:
            # no second (B, L, intermediate) tensor to allocate and fault in a layer. (With autograd, the
            # in-place op measured slower: its backward copies.)
            hidden_states = F.relu6(hidden_states, inplace=True)
        else:
            hidden_states = self.act(hidden_states)
        return self.dropout(self.fc2(self.dropout(hidden_states)))


class SapiensIDLayer(GradientCheckpointingLayer):
    """Pre-norm transformer block (official face ViT: LayerNorm, ReLU6 MLP, stochastic depth)."""

    def __init__(self, config: SapiensIDConfig, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = SapiensIDAttention(config)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = SapiensIDMLP(config)
        self.drop_path = SapiensIDDropPath(drop_path)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_bias: torch.Tensor,
        bias_index: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # Tensors are passed positionally so reentrant gradient checkpointing sees them.
        attended, weights = self.attention(self.norm1(hidden_states), attention_bias, bias_index, output_attentions)
        hidden_states = hidden_states + self.drop_path(attended)
        hidden_states = hidden_states + self.drop_path(self.mlp(self.norm2(hidden_states)))
        return hidden_states, weights


class SapiensIDPreTrainedModel(PreTrainedModel):
    config_class = SapiensIDConfig
    config: SapiensIDConfig
    base_model_prefix = "sapiensid"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["SapiensIDRetinaPatchEmbeddings", "SapiensIDLayer"]
    # Loaded in float32 at any dtype: it decides the head's nearest-position choice (SemanticAttentionHead._apply).
    _keep_in_fp32_modules_strict = ["query_embed"]
    _supports_sdpa = True

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model.realign_tensors()
        return loaded

    @torch.no_grad()
    def realign_tensors(self) -> None:
        """Copy tensors that sit at unaligned addresses (memory-mapped safetensors) into fresh storage.

        CPU matmul kernels take different vector paths on unaligned data, so without this a reloaded
        model differs from the saved one in the last bits.
        """
        for tensor in list(self.parameters()) + list(self.buffers()):
            if tensor.device.type == "cpu" and tensor.data_ptr() % 64:
                tensor.data = tensor.data.clone()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm1d)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            if isinstance(module, nn.BatchNorm1d):
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
        # Non-persistent buffers are not in the checkpoint: rebuild them (from_pretrained leaves them empty).
        if isinstance(module, SapiensIDRetinaPatchEmbeddings):
            init.copy_(module.position_table, module.build_position_table())
            init.zeros_(module.cls_token)
            init.zeros_(module.patch_projection.bias)
            if module.mask_token is not None:
                init.normal_(module.mask_token, std=std)
            if module.level_embed is not None:
                init.trunc_normal_(module.level_embed, std=std)
        elif isinstance(module, SapiensIDKeypointRPE):
            init.copy_(module.bucket_table, module.build_bucket_table())
            # Zero output: KP-RPE starts as no bias at all (official init).
            init.zeros_(module.fc2.weight)
            init.zeros_(module.fc2.bias)
        elif isinstance(module, SapiensIDDifferentialAttention):
            for parameter in (module.lambda_q1, module.lambda_k1, module.lambda_q2, module.lambda_k2):
                init.normal_(parameter, mean=0.0, std=0.1)
        elif isinstance(module, SapiensIDSemanticAttentionHead):
            init.normal_(module.query_embed, std=std)
            init.zeros_(module.part_gate)


class SapiensIDModel(SapiensIDPreTrainedModel):
    def __init__(self, config: SapiensIDConfig):
        super().__init__(config)
        self.config = config
        self.embeddings = SapiensIDRetinaPatchEmbeddings(config)
        depth = config.num_hidden_layers
        # Linear stochastic-depth decay, in plain Python so the model can be built on the meta device.
        drop_rates = [config.drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.layers = nn.ModuleList([SapiensIDLayer(config, rate) for rate in drop_rates])
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.keypoint_rpe = SapiensIDKeypointRPE(config) if config.use_kprpe else None
        self.head = SapiensIDSemanticAttentionHead(config)
        self.post_init()

    def roi_boxes_from_keypoints(self, keypoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Face and upper-body boxes (B, 4) from keypoints, as the official kp19 preprocessor builds them."""
        config = self.config
        return compute_roi_boxes(keypoints, config.roi_padding, config.face_min_points, config.body_min_points)

    def _augment(self, keypoints, face_boxes, body_boxes):
        """Training-time keypoint / ROI augmentation of the official kp19 preprocessor."""
        config = self.config
        if face_boxes is None:
            keypoints = augment_keypoints(keypoints, config.keypoint_drop_prob, config.part_drop_prob)
            face_boxes, body_boxes = self.roi_boxes_from_keypoints(keypoints)
        if config.box_shift_range > 0 and config.box_scale_range > 0:
            face_boxes = augment_boxes(face_boxes, config.box_shift_range, config.box_scale_range)
            body_boxes = augment_boxes(body_boxes, config.box_shift_range, config.box_scale_range)
        face_boxes, body_boxes = drop_boxes(face_boxes, body_boxes, config.box_drop_prob)
        return keypoints, face_boxes, body_boxes

    def _check_inputs(self, pixel_values, keypoints, roi_boxes, pixel_mask) -> None:
        config = self.config
        size = config.image_size
        if pixel_values.ndim != 4 or pixel_values.shape[1:] != (config.num_channels, size, size):
            raise ValueError(
                f"pixel_values must have shape (B, {config.num_channels}, {size}, {size}), got {tuple(pixel_values.shape)}; "
                "use SapiensIDImageProcessor to prepare images"
            )
        batch = pixel_values.shape[0]
        if keypoints.shape != (batch, config.num_keypoints, 2):
            raise ValueError(
                f"keypoints must have shape ({batch}, {config.num_keypoints}, 2) (normalised x, y; -1 = missing), "
                f"got {tuple(keypoints.shape)}"
            )
        if roi_boxes is not None and roi_boxes.shape != (batch, 2, 4):
            raise ValueError(f"roi_boxes must have shape ({batch}, 2, 4) (face, upper body), got {tuple(roi_boxes.shape)}")
        if pixel_mask is not None and pixel_mask.shape != (batch, size, size):
            raise ValueError(f"pixel_mask must have shape ({batch}, {size}, {size}), got {tuple(pixel_mask.shape)}")
        for name, tensor in (("pixel_values", pixel_values), ("keypoints", keypoints), ("roi_boxes", roi_boxes)):
            if tensor is not None and not tensor.is_floating_point():
                raise TypeError(
                    f"{name} must be a floating-point tensor, got {tensor.dtype}; use SapiensIDImageProcessor "
                    "(it normalises uint8 pixels)"
                )
        # A NaN would flow silently into the embedding. Value checks are skipped while tracing / exporting,
        # where they cannot be expressed. The sum is one reading pass (isfinite alone takes five: 3 % of a
        # training step): it is NaN / infinite whenever a value is, and only then are the values counted
        # (a sum of huge finite values can overflow; then nothing is found and nothing is refused).
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            for name, tensor in (("pixel_values", pixel_values), ("keypoints", keypoints), ("roi_boxes", roi_boxes)):
                if tensor is not None and not bool(torch.isfinite(tensor.sum())):
                    bad = int((~torch.isfinite(tensor)).sum())
                    if bad:
                        raise ValueError(f"{name} contains NaN or infinite values ({bad} of them)")

    def forward(
        self,
        pixel_values: torch.Tensor,
        keypoints: torch.Tensor,
        pixel_mask: torch.Tensor | None = None,
        roi_boxes: torch.Tensor | None = None,
        person_found: torch.Tensor | None = None,
        cut_pixel_values: torch.Tensor | None = None,
        cut_pixel_mask: torch.Tensor | None = None,
        cut_keypoints: torch.Tensor | None = None,
        mirrored_keypoints: torch.Tensor | None = None,
        cut_mirrored_keypoints: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        keep_all_tokens: bool = False,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SapiensIDModelOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, image_size, image_size)`):
            Square-padded, resized, normalised images (see `SapiensIDImageProcessor`).
        keypoints (`torch.FloatTensor` of shape `(batch_size, 19, 2)`):
            Normalised x, y of the 19 keypoints in `KEYPOINT_NAMES` order; -1 for a missing point.
        pixel_mask (`torch.Tensor` of shape `(batch_size, image_size, image_size)`, *optional*):
            1 on image content, 0 on square padding; full-image patches mostly in padding are dropped.
        roi_boxes (`torch.FloatTensor` of shape `(batch_size, 2, 4)`, *optional*):
            Face and upper-body boxes (normalised xyxy, -1 = none). Computed from `keypoints` when omitted.
        person_found (`torch.BoolTensor` of shape `(batch_size,)`, *optional*):
            Whether the processor's detector found a person in each image (the processor returns it, so
            `model(**processor(images))` passes it). When given, an image without a person is refused with a
            `ValueError` naming it: with no keypoints every such image gets the same embedding, which says
            nothing about who is in it. Leave those images out, or call the model without this input to
            embed them anyway.
        cut_pixel_values (`torch.FloatTensor` of shape `(batch_size, 3 * cuts, image_size, image_size)`, *optional*),
        cut_pixel_mask (`torch.Tensor` of shape `(batch_size, cuts, image_size, image_size)`, *optional*),
        cut_keypoints (`torch.FloatTensor` of shape `(batch_size, cuts, 19, 2)`, *optional*):
            The images' centre cuts, as a processor with a folder's `embedding_cuts` rule returns them (each
            cut's three channels in turn). Given, the embedding of each image is the mean of the unit
            embeddings of the image and its cuts (a cut with no keypoint left adds nothing): the rule the
            folder's figures and thresholds were measured with.
        mirrored_keypoints (`torch.FloatTensor` of shape `(batch_size, 19, 2)`, *optional*),
        cut_mirrored_keypoints (`torch.FloatTensor` of shape `(batch_size, cuts, 19, 2)`, *optional*):
            Flip test-time augmentation (a processor with `embedding_flip` returns them): the keypoints of
            each horizontally mirrored image (and cut); the embedding of the mirrored pixels at them is
            added to the image's (the cut's) before the cuts are averaged, as the official evaluators do.
        mask_ratio (`float`, *optional*):
            Fraction of retina tokens to drop. Defaults to `config.mask_ratio` in training and 0 (keep
            every visible token) in evaluation.
        keep_all_tokens (`bool`, defaults to `False`):
            Without masking, run all retina tokens with the hidden ones excluded from attention instead of
            dropping them: identical embeddings, a data-independent sequence length (for ONNX export).
        """
        config = self.config
        output_attentions = output_attentions if output_attentions is not None else config.output_attentions
        output_hidden_states = output_hidden_states if output_hidden_states is not None else config.output_hidden_states
        return_dict = return_dict if return_dict is not None else config.return_dict
        self._check_inputs(pixel_values, keypoints, roi_boxes, pixel_mask)
        if person_found is not None:
            refuse_images_without_person(person_found)
        cuts = (cut_pixel_values, cut_pixel_mask, cut_keypoints)
        _check_view_inputs(keypoints, mirrored_keypoints, cuts, cut_mirrored_keypoints)
        if mask_ratio is None:
            mask_ratio = config.mask_ratio if self.training else 0.0

        keypoints = keypoints.float()
        face_boxes, body_boxes = (roi_boxes[:, 0], roi_boxes[:, 1]) if roi_boxes is not None else (None, None)
        if self.training:
            keypoints, face_boxes, body_boxes = self._augment(keypoints, face_boxes, body_boxes)
        elif face_boxes is None:
            face_boxes, body_boxes = self.roi_boxes_from_keypoints(keypoints)

        tokens = self.embeddings(pixel_values, face_boxes, body_boxes, pixel_mask)
        selection = select_tokens(
            tokens.visible, keypoints, config, mask_ratio, use_subset_rule=self.training, keep_all_tokens=keep_all_tokens
        )
        hidden_states, token_positions = self.embed_selected_tokens(pixel_values, tokens, selection)
        keypoint_positions, keypoints_missing = self.keypoint_positions(keypoints, tokens.position_grid)

        encoded, all_hidden, all_attentions = self.encode(
            hidden_states, selection, token_positions, keypoint_positions, keypoints_missing,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
        )
        kept_features = encoded[:, 1 : 1 + selection.token_ids.shape[1]]
        parts = self.head.part_features(kept_features, token_positions, selection.valid, keypoint_positions, keypoints_missing)
        embeddings = self.head(parts)
        if mirrored_keypoints is not None or cut_keypoints is not None:
            embeddings = self.add_views(embeddings, pixel_values, pixel_mask, mirrored_keypoints, cuts, cut_mirrored_keypoints, mask_ratio, keep_all_tokens)

        token_ids = selection.token_ids.masked_fill(~selection.valid, -1)
        output = SapiensIDModelOutput(
            embeddings=embeddings,
            last_hidden_state=encoded,
            token_ids=token_ids,
            roi_boxes=tokens.level_boxes,
            pooler_output=F.normalize(embeddings.float(), dim=-1).to(embeddings.dtype),
            hidden_states=all_hidden,
            attentions=all_attentions,
        )
        return output if return_dict else output.to_tuple()

    def add_views(
        self,
        embeddings: torch.Tensor,
        pixel_values: torch.Tensor,
        pixel_mask: torch.Tensor | None,
        mirrored_keypoints: torch.Tensor | None,
        cuts: tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None],
        cut_mirrored_keypoints: torch.Tensor | None,
        mask_ratio: float,
        keep_all_tokens: bool,
    ) -> torch.Tensor:
        """The images' `embeddings` plus their mirrors' (flip test-time augmentation), then averaged with their
        centre cuts' (each with its own mirror): a folder's embedding rule, each view one more forward pass."""
        if mirrored_keypoints is not None:
            mirror = self(
                pixel_values=pixel_values.flip(-1), keypoints=mirrored_keypoints,
                pixel_mask=None if pixel_mask is None else pixel_mask.flip(-1),
                mask_ratio=mask_ratio, keep_all_tokens=keep_all_tokens, return_dict=True,
            )  # fmt: skip
            embeddings = (embeddings.float() + mirror.embeddings.float()).to(embeddings.dtype)
        cut_pixel_values, cut_pixel_mask, cut_keypoints = cuts
        if cut_keypoints is None:
            return embeddings
        pixels, mask, points = cuts_as_batch(cut_pixel_values, cut_pixel_mask, cut_keypoints)
        mirrored = None if cut_mirrored_keypoints is None else cut_mirrored_keypoints.reshape(points.shape)
        cut_embeddings = self(
            pixel_values=pixels, keypoints=points, pixel_mask=mask, mirrored_keypoints=mirrored,
            mask_ratio=mask_ratio, keep_all_tokens=keep_all_tokens, return_dict=True,
        ).embeddings  # fmt: skip
        cut_embeddings = cut_embeddings.float().view(*cut_keypoints.shape[:2], -1)
        return fold_in_cuts(embeddings.float(), cut_embeddings, cut_keypoints.float()).to(embeddings.dtype)

    def embed_selected_tokens(
        self, pixel_values: torch.Tensor, tokens: RetinaTokens, selection: TokenSelection
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequence [CLS, projected kept patches + positions, (MASK)] and the kept tokens' float32 positions."""
        embeddings = self.embeddings
        pixels = embeddings.token_pixels(pixel_values, tokens, selection.token_ids)
        positions = gather_tokens(tokens.positions, selection.token_ids)  # float32, also for the head's choices
        dtype = embeddings.patch_projection.weight.dtype
        patches = embeddings.patch_projection(pixels.to(dtype)) + positions.to(dtype)
        batch = patches.shape[0]
        parts = [embeddings.cls_token.expand(batch, -1, -1).to(patches.dtype), patches]
        if embeddings.mask_token is not None:
            parts.append(embeddings.mask_token[None].expand(batch, -1, -1).to(patches.dtype))
        return torch.cat(parts, dim=1), positions

    def keypoint_positions(self, keypoints: torch.Tensor, position_grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, D) float32 position embedding sampled at each keypoint (zero when missing), (B, K) missing flags."""
        batch = keypoints.shape[0]
        grid = (keypoints * 2 - 1)[:, :, None]
        sampled = grid_sample_float32(position_grid.expand(batch, -1, -1, -1), grid, align_corners=True)
        missing = (keypoints == MISSING).all(dim=-1)
        return sampled[..., 0].transpose(1, 2), missing

    def encode(
        self,
        hidden_states: torch.Tensor,
        selection: TokenSelection,
        token_positions: torch.Tensor,
        keypoint_positions: torch.Tensor,
        keypoints_missing: torch.Tensor,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        """Run the transformer layers with the KP-RPE + mask-count + padding logit bias; then the final norm."""
        has_mask_token = self.embeddings.mask_token is not None
        dtype = hidden_states.dtype
        keys = key_bias(selection, has_mask_token, dtype)  # (B, L): padding -inf, mask token log(count)
        rpe = self.keypoint_rpe
        if rpe is not None:
            relations = rpe.relation_features(
                token_positions, keypoint_positions, keypoints_missing, selection.valid, has_mask_token
            )
            buckets = rpe.token_buckets(selection.token_ids, has_mask_token)
            bias_index = fold_key_bias_into_buckets(buckets, keys, has_mask_token, rpe.num_buckets)
        all_hidden = () if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for index, layer in enumerate(self.layers):
            if output_hidden_states:
                all_hidden += (hidden_states,)
            if rpe is None:
                hidden_states, weights = layer(hidden_states, keys[:, None, None, :], None, output_attentions)
            else:
                values = fold_key_bias_into_values(rpe.bucket_values(relations, index).to(dtype), keys, has_mask_token)
                hidden_states, weights = layer(hidden_states, values, bias_index, output_attentions)
            if output_attentions:
                all_attentions += (weights,)
        hidden_states = self.layernorm(hidden_states)
        if output_hidden_states:
            all_hidden += (hidden_states,)
        return hidden_states, all_hidden, all_attentions


__all__ = ["SapiensIDModel", "SapiensIDPreTrainedModel", "SapiensIDModelOutput"]
