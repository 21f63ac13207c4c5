"""SapiensID configuration.

Defaults follow the official base configuration (mk-minchul/sapiensid,
tasks/sapiensID/src/models/sapiens_id/configs/base.yaml and backbones/vit_face).
"""

from transformers import PretrainedConfig

# The 19-point layout the model reads (official kp19 preprocessor): 7 face points, then 12 body points.
# Body and ear "left"/"right" follow the official detector's canonical rule: after its left/right
# fix-up, the "left" point of a pair is the one with the larger image x. The eye and mouth points come
# from a 5-point face detector in its own order: "eye_1"/"mouth_1" is the one with the smaller image x.
KEYPOINT_NAMES = (
    "nose",
    "eye_1",
    "eye_2",
    "mouth_1",
    "mouth_2",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

# Index pairs swapped by a horizontal flip.
FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18))


class SapiensIDConfig(PretrainedConfig):
    r"""Configuration of a [`SapiensIDModel`].

    Args:
        image_size (`int`, defaults to 384): side of the square input image.
        num_channels (`int`, defaults to 3): input channels (RGB).
        patch_size (`int`, defaults to 32): side of one retina patch in pixels of the resampled ROI;
            every ROI level is resampled to `image_size` and cut into `(image_size // patch_size) ** 2` patches.
        hidden_size (`int`, defaults to 512): transformer width.
        num_hidden_layers (`int`, defaults to 24): transformer depth.
        num_attention_heads (`int`, defaults to 16): attention heads per layer.
        intermediate_size (`int`, defaults to 1536): MLP width (official mlp_ratio 3).
        hidden_act (`str`, defaults to `"relu6"`): MLP activation of the official face ViT.
        qkv_bias (`bool`, defaults to `False`): bias on the fused qkv projection.
        layer_norm_eps (`float`, defaults to 1e-5): LayerNorm epsilon.
        drop_path_rate (`float`, defaults to 0.1): stochastic depth at the last layer (linear decay).
        attention_probs_dropout_prob (`float`, defaults to 0.0): dropout on attention weights.
        hidden_dropout_prob (`float`, defaults to 0.0): dropout after projections.
        initializer_range (`float`, defaults to 0.02): std of the truncated-normal init.
        image_mean, image_std (`list[float]`, defaults to 0.5): normalisation used by the processor.
        square_pad (`bool`, defaults to `True`): pad to a square before resizing (official test transform).
        pad_fill (`float`, defaults to 1.0): padding value in [0, 1] pixel units (white, as the official
            `SquarePad(fill=1)`), before normalisation.
        num_keypoints (`int`, defaults to 19): keypoints per image, in the order of `KEYPOINT_NAMES`.
        roi_padding (`float`, defaults to 0.3): relative padding of the face and upper-body boxes.
        face_min_points (`int`, defaults to 2): visible face points needed for a face box.
        body_min_points (`int`, defaults to 3): visible upper-body points needed for an upper-body box.
        use_level_embed (`bool`, defaults to `False`): learnable offset added per ROI level to the sampled
            position embedding. The official base config misspells this key, so the released model runs
            without it; the converter turns it on when a checkpoint carries `level_embed`.
        use_foreground_mask (`bool`, defaults to `True`): drop full-image patches that lie in the square
            padding (the official model derives this from white borders; here the processor knows it).
        use_mask_token (`bool`, defaults to `True`): append ONE mask token standing for every dropped token,
            with `log(count)` added to its attention logit.
        mask_ratio (`float`, defaults to 0.66): fraction of all retina tokens dropped in training.
        token_subset_method (`str`, defaults to `"face_first_0.3"`): the official training keep rule:
            with this probability (images with >= 13 visible keypoints) the keep order prefers full-image,
            then upper-body, then face tokens, so faces get masked first. `"random"` keeps a uniform subset.
        use_kprpe (`bool`, defaults to `True`): keypoint relative position encoding on attention keys.
        kprpe_ratio (`float`, defaults to 1.9): iRPE bucket ratio (alpha = r, beta = 2r, gamma = 8r).
        kprpe_grid_size (`int`, defaults to 14): side of the official bucket table the token grid is mapped to.
        kprpe_keypoint_dim (`int`, defaults to 32): per-keypoint projection width of the KP-RPE MLP.
        kprpe_mlp_dim (`int`, defaults to 512): hidden width of the KP-RPE MLP.
        head_queries_per_keypoint (`int`, defaults to 4): Semantic Attention Head queries per keypoint.
        head_depth (`int`, defaults to 1): layer index that sets the differential attention lambda init.
        head_num_heads (`int`, defaults to 1): differential attention heads in the head.
        output_dim (`int`, defaults to 4096): embedding size.
        head_batchnorm_eps (`float`, defaults to 2e-5): epsilon of the two BatchNorms of the head.
        keypoint_drop_prob, part_drop_prob, box_shift_range, box_scale_range, box_drop_prob (`float`,
            defaults to 0.05): training-time keypoint / ROI augmentation of the official kp19 preprocessor.
    """

    model_type = "sapiensid"

    def __init__(
        self,
        image_size: int = 384,
        num_channels: int = 3,
        patch_size: int = 32,
        hidden_size: int = 512,
        num_hidden_layers: int = 24,
        num_attention_heads: int = 16,
        intermediate_size: int = 1536,
        hidden_act: str = "relu6",
        qkv_bias: bool = False,
        layer_norm_eps: float = 1e-5,
        drop_path_rate: float = 0.1,
        attention_probs_dropout_prob: float = 0.0,
        hidden_dropout_prob: float = 0.0,
        initializer_range: float = 0.02,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        square_pad: bool = True,
        pad_fill: float = 1.0,
        num_keypoints: int = 19,
        roi_padding: float = 0.3,
        face_min_points: int = 2,
        body_min_points: int = 3,
        use_level_embed: bool = False,
        use_foreground_mask: bool = True,
        use_mask_token: bool = True,
        mask_ratio: float = 0.66,
        token_subset_method: str = "face_first_0.3",
        use_kprpe: bool = True,
        kprpe_ratio: float = 1.9,
        kprpe_grid_size: int = 14,
        kprpe_keypoint_dim: int = 32,
        kprpe_mlp_dim: int = 512,
        head_queries_per_keypoint: int = 4,
        head_depth: int = 1,
        head_num_heads: int = 1,
        output_dim: int = 4096,
        head_batchnorm_eps: float = 2e-5,
        keypoint_drop_prob: float = 0.05,
        part_drop_prob: float = 0.05,
        box_shift_range: float = 0.05,
        box_scale_range: float = 0.05,
        box_drop_prob: float = 0.05,
        **kwargs,
    ):
        super().__init__(**kwargs)
        sizes = {
            "image_size": image_size, "num_channels": num_channels, "patch_size": patch_size,
            "hidden_size": hidden_size, "num_hidden_layers": num_hidden_layers,
            "num_attention_heads": num_attention_heads, "intermediate_size": intermediate_size,
            "kprpe_grid_size": kprpe_grid_size, "kprpe_keypoint_dim": kprpe_keypoint_dim, "kprpe_mlp_dim": kprpe_mlp_dim,
            "head_queries_per_keypoint": head_queries_per_keypoint, "head_depth": head_depth,
            "head_num_heads": head_num_heads, "output_dim": output_dim,
        }  # fmt: skip
        for name, value in sizes.items():
            # A string or a float here would fail deep inside a layer, and 0 or a negative size makes no model.
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        if image_size % patch_size:
            raise ValueError(f"image_size ({image_size}) must be a multiple of patch_size ({patch_size})")
        if hidden_size % num_attention_heads:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_attention_heads ({num_attention_heads})")
        if hidden_size % 4:
            raise ValueError(f"hidden_size ({hidden_size}) must be a multiple of 4 for the 2-D sin-cos embedding")
        if hidden_size % (2 * head_num_heads):
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by 2 * head_num_heads ({head_num_heads})")
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
        if num_keypoints != len(KEYPOINT_NAMES):
            raise ValueError(f"num_keypoints must be {len(KEYPOINT_NAMES)} (the kp19 layout), got {num_keypoints}")
        if token_subset_method != "random" and not token_subset_method.startswith("face_first_"):
            raise ValueError(f"token_subset_method must be 'random' or 'face_first_<prob>', got {token_subset_method!r}")
        self.image_size = image_size
        self.num_channels = num_channels
        self.patch_size = patch_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.qkv_bias = qkv_bias
        self.layer_norm_eps = layer_norm_eps
        self.drop_path_rate = drop_path_rate
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.hidden_dropout_prob = hidden_dropout_prob
        self.initializer_range = initializer_range
        self.image_mean = list(image_mean) if image_mean is not None else [0.5, 0.5, 0.5]
        self.image_std = list(image_std) if image_std is not None else [0.5, 0.5, 0.5]
        self.square_pad = square_pad
        self.pad_fill = pad_fill
        self.num_keypoints = num_keypoints
        self.roi_padding = roi_padding
        self.face_min_points = face_min_points
        self.body_min_points = body_min_points
        self.use_level_embed = use_level_embed
        self.use_foreground_mask = use_foreground_mask
        self.use_mask_token = use_mask_token
        self.mask_ratio = mask_ratio
        self.token_subset_method = token_subset_method
        self.use_kprpe = use_kprpe
        self.kprpe_ratio = kprpe_ratio
        self.kprpe_grid_size = kprpe_grid_size
        self.kprpe_keypoint_dim = kprpe_keypoint_dim
        self.kprpe_mlp_dim = kprpe_mlp_dim
        self.head_queries_per_keypoint = head_queries_per_keypoint
        self.head_depth = head_depth
        self.head_num_heads = head_num_heads
        self.output_dim = output_dim
        self.head_batchnorm_eps = head_batchnorm_eps
        self.keypoint_drop_prob = keypoint_drop_prob
        self.part_drop_prob = part_drop_prob
        self.box_shift_range = box_shift_range
        self.box_scale_range = box_scale_range
        self.box_drop_prob = box_drop_prob

    @property
    def grid_size(self) -> int:
        """Patches per side of one ROI level."""
        return self.image_size // self.patch_size

    @property
    def tokens_per_level(self) -> int:
        return self.grid_size**2

    @property
    def num_levels(self) -> int:
        """Full image, upper body, face."""
        return 3

    @classmethod
    def tiny(cls, **kwargs) -> "SapiensIDConfig":
        """A small model with the full architecture, for tests and examples (about 1 M parameters)."""
        defaults = dict(
            image_size=96,
            patch_size=16,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=96,
            output_dim=64,
            kprpe_keypoint_dim=8,
            kprpe_mlp_dim=32,
            drop_path_rate=0.0,
        )
        defaults.update(kwargs)
        return cls(**defaults)


__all__ = ["SapiensIDConfig", "KEYPOINT_NAMES", "FLIP_PAIRS"]
