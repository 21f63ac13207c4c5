"""Retina Patch: more, finer patches on the face and upper body, one non-overlapping cover of the image.

Each ROI level (0 full image, 1 upper body, 2 face) is resampled to the model's input size and cut
into the same `grid_size x grid_size` patches, so a small face gets as many patches as the whole
image. A patch belongs to its level only where no higher-priority level covers it (more than half of
its pixels), so the kept patches of all levels tile the image once. Positions come from sampling the
global 2-D sin-cos table inside each ROI (plus an optional learnable per-level offset).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_sapiensid import SapiensIDConfig
from .retina_rois import snap_roi_boxes

FULL_IMAGE, UPPER_BODY, FACE = 0, 1, 2


def sincos_2d_position_table(grid_size: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """(grid_size**2, dim) table: [sin x, cos x, sin y, cos y], row-major over the grid (official layout)."""
    # float32 throughout, whatever torch's default dtype is (from_pretrained(dtype=...) changes it).
    y, x = torch.meshgrid(torch.arange(grid_size), torch.arange(grid_size), indexing="ij")
    omega = torch.arange(dim // 4, dtype=torch.float32) / (dim // 4 - 1)
    omega = 1.0 / (temperature**omega)
    x = x.flatten()[:, None] * omega[None, :]
    y = y.flatten()[:, None] * omega[None, :]
    return torch.cat((x.sin(), x.cos(), y.sin(), y.cos()), dim=1).float()


def grid_sample_float32(values: torch.Tensor, grid: torch.Tensor, **options) -> torch.Tensor:
    """F.grid_sample in float32 (values and coordinates), returned in the values' dtype.

    A half-precision grid cannot address the image (bfloat16 steps are ~1.5 px of a 384 px side), and
    torch's CPU kernel returns NaN for half-precision grids; a float32 model is unaffected (no copies).
    """
    return F.grid_sample(values.float(), grid.float(), **options).to(values.dtype)


def box_sampling_axes(boxes: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """grid_sample x and y coordinates (N, size) each that resample every normalised xyxy box to size x size.

    The resampling grid of an axis-aligned box is separable: point (row, col) is (x[col], y[row]).
    """
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
    extents = boxes[:, 2:] - boxes[:, :2]
    steps = torch.linspace(-1, 1, size, device=boxes.device, dtype=torch.float32)
    xs = steps[None] * extents[:, 0, None] / 2 + centers[:, 0, None]
    ys = steps[None] * extents[:, 1, None] / 2 + centers[:, 1, None]
    return xs * 2 - 1, ys * 2 - 1


def axes_to_grid(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """(..., W) x and (..., H) y coordinates -> the (..., H, W, 2) grid_sample grid they span."""
    height, width = ys.shape[-1], xs.shape[-1]
    return torch.stack([xs[..., None, :].expand(*xs.shape[:-1], height, width), ys[..., :, None].expand(*ys.shape[:-1], height, width)], dim=-1)


def box_sampling_grid(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """grid_sample grid (N, size, size, 2) that resamples each normalised xyxy box to size x size."""
    return axes_to_grid(*box_sampling_axes(boxes, size))


def box_pixel_spans(level_boxes: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L, W + 1) and (B, L, H + 1) float 0 / 1: the pixel columns and rows each level's box touches.

    The extra last entry is 0: it stands for the zero padding outside the image (`nearest_source_pixels`).
    """
    xs = torch.arange(width + 1, device=level_boxes.device, dtype=torch.float32)
    ys = torch.arange(height + 1, device=level_boxes.device, dtype=torch.float32)
    x1, y1, x2, y2 = (level_boxes[..., i, None] for i in range(4))
    in_x = (xs + 1 > x1 * width) & (xs < x2 * width) & (xs < width)
    in_y = (ys + 1 > y1 * height) & (ys < y2 * height) & (ys < height)
    return in_x.float(), in_y.float()


def nearest_source_pixels(coordinates: torch.Tensor, size: int) -> torch.Tensor:
    """Index of the pixel F.grid_sample(mode="nearest", align_corners=False) reads at each normalised
    coordinate of an axis of `size` pixels, or `size` where it reads the zero padding outside the image.

    Asked of grid_sample itself (a 1 x size image holding each pixel's own number), so the rounding is
    the kernel's, bit for bit, and a separable grid needs one lookup per row and column, not per pixel.
    """
    numbers = torch.arange(1, size + 1, device=coordinates.device, dtype=torch.float32).reshape(1, 1, 1, size)
    points = coordinates.float().reshape(1, 1, -1, 1)
    read = F.grid_sample(numbers, torch.cat([points, torch.zeros_like(points)], dim=-1), mode="nearest", align_corners=False)
    read = read.reshape(coordinates.shape).long() - 1  # -1: outside the image
    return torch.where(read < 0, torch.full_like(read, size), read)


def level_pixel_counts(in_rows: torch.Tensor, in_cols: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, 3, g, g) how many of each patch's p x p pixels belong to the patch's own level.

    in_rows / in_cols (B, 3, 3, g * p): 1 where row / column s of level k's resampled image lies in level
    l's box (dims: b, k, l, s). A pixel belongs to the highest level whose box holds it, the full image
    where none does (or outside the image). Boxes are axis-aligned, so a pixel lies in box l exactly when
    its row and its column do, and each patch's count is a sum of products of per-row and per-column sums.
    """
    batch, grid = in_rows.shape[0], in_rows.shape[-1] // patch

    def per_patch(values: torch.Tensor) -> torch.Tensor:  # (B, 3, g * p) -> (B, 3, g)
        return values.reshape(batch, 3, grid, patch).sum(dim=-1)

    def outer(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:  # pixels in both, per patch (B, 3, g, g)
        return per_patch(rows)[..., :, None] * per_patch(cols)[..., None, :]

    body = outer(in_rows[:, :, UPPER_BODY], in_cols[:, :, UPPER_BODY])
    face = outer(in_rows[:, :, FACE], in_cols[:, :, FACE])
    both = outer(in_rows[:, :, UPPER_BODY] * in_rows[:, :, FACE], in_cols[:, :, UPPER_BODY] * in_cols[:, :, FACE])
    owned = torch.stack([patch * patch - body - face + both, body - both, face], dim=2)  # (B, 3, level, g, g)
    own_level = torch.arange(3, device=in_rows.device).reshape(1, 3, 1, 1, 1).expand(batch, 3, 1, grid, grid)
    return torch.gather(owned, 2, own_level).squeeze(2)


@dataclass
class RetinaTokens:
    """All retina tokens of a batch, before the masked recognition model picks the ones it keeps."""

    sampling_x: torch.Tensor  # (B, 3, W) grid_sample x of each column of each level's resampled image
    sampling_y: torch.Tensor  # (B, 3, H) and y of each row (an axis-aligned box's grid is separable)
    positions: torch.Tensor  # (B, T, D) float32 sampled position embedding (+ level offset); T = 3 * grid_size**2
    visible: torch.Tensor  # (B, T) bool: the token is its region's owner (and not square padding)
    level_boxes: torch.Tensor  # (B, 3, 4) snapped boxes of the three levels
    position_grid: torch.Tensor  # (1, D, g, g) the global position table as an image (float32)

    @property
    def sampling_grid(self) -> torch.Tensor:
        """(B, 3, H, W, 2) grid_sample grid each level's resampled image comes from."""
        return axes_to_grid(self.sampling_x, self.sampling_y)


class SapiensIDRetinaPatchEmbeddings(nn.Module):
    """Samples retina patches from the ROIs and embeds them; also owns cls / mask tokens and positions."""

    def __init__(self, config: SapiensIDConfig):
        super().__init__()
        self.config = config
        self.grid_size = config.grid_size
        self.patch_size = config.patch_size
        patch_dim = config.num_channels * config.patch_size**2
        self.patch_projection = nn.Linear(patch_dim, config.hidden_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.mask_token = nn.Parameter(torch.zeros(1, config.hidden_size)) if config.use_mask_token else None
        self.level_embed = nn.Parameter(torch.zeros(config.num_levels, config.hidden_size)) if config.use_level_embed else None
        # Fixed (official: requires_grad False), so a non-persistent buffer rebuilt from the config.
        self.register_buffer("position_table", self.build_position_table(), persistent=False)

    def build_position_table(self) -> torch.Tensor:
        return sincos_2d_position_table(self.grid_size, self.config.hidden_size)

    def _apply(self, fn, recurse=True):
        # The table stays float32 when the model is cast to half precision: a small face ROI's neighbouring
        # tokens differ in position by less than a bfloat16 step, and the head picks tokens by position.
        super()._apply(fn, recurse)
        table = self.position_table
        if table.dtype != torch.float32 and table.device.type != "meta":
            self.position_table = self.build_position_table().to(table.device)
        return self

    def position_grid(self) -> torch.Tensor:
        grid = self.grid_size
        return self.position_table.t().reshape(1, -1, grid, grid)

    def forward(
        self,
        pixel_values: torch.Tensor,
        face_boxes: torch.Tensor,
        body_boxes: torch.Tensor,
        pixel_mask: torch.Tensor | None = None,
    ) -> RetinaTokens:
        batch, _, height, width = pixel_values.shape
        face, body = snap_roi_boxes(face_boxes.float(), body_boxes.float(), self.grid_size)
        full = torch.tensor([0.0, 0.0, 1.0, 1.0], device=face.device).expand(batch, 4)
        level_boxes = torch.stack([full, body, face], dim=1)  # (B, 3, 4)
        flat_boxes = level_boxes.reshape(-1, 4)

        # Every level is resampled to the input size and cut into the same grid of patches; only the
        # grid is built here, the pixels of the tokens actually kept are sampled later.
        xs, ys = box_sampling_axes(flat_boxes, height)
        visible = self._visible_tokens(level_boxes, xs, ys, height, width, pixel_mask)
        positions = self._token_positions(level_boxes)
        sampling_x, sampling_y = xs.reshape(batch, 3, width), ys.reshape(batch, 3, height)
        return RetinaTokens(sampling_x, sampling_y, positions, visible, level_boxes, self.position_grid())

    def token_pixels(self, pixel_values: torch.Tensor, tokens: RetinaTokens, token_ids: torch.Tensor) -> torch.Tensor:
        """(B, N, C*p*p) pixels of the given tokens, bilinearly resampled from their ROI (nn.Unfold order).

        Sampling only the kept tokens costs in proportion to them, which is what makes masking pay. Each
        token's p x p grid is built from its level's column and row coordinates, never from the full grid.
        """
        batch, channels = pixel_values.shape[:2]
        patch, grid = self.patch_size, self.grid_size
        level, cell = token_ids // (grid * grid), token_ids % (grid * grid)
        within = torch.arange(patch, device=token_ids.device)
        side = grid * patch  # coordinates per level

        def coordinates(axis: torch.Tensor, line: torch.Tensor) -> torch.Tensor:  # (B, N, p)
            index = (level * side + line * patch)[..., None] + within
            return torch.gather(axis.reshape(batch, -1), 1, index.flatten(1)).reshape(*index.shape)

        xs, ys = coordinates(tokens.sampling_x, cell % grid), coordinates(tokens.sampling_y, cell // grid)
        count = token_ids.shape[1]
        picked = axes_to_grid(xs, ys).reshape(batch, count * patch, patch, 2)
        sampled = grid_sample_float32(pixel_values, picked, align_corners=False)  # (B, C, N*p, p)
        sampled = sampled.reshape(batch, channels, count, patch, patch).permute(0, 2, 1, 3, 4)
        return sampled.reshape(batch, count, channels * patch * patch)

    def _visible_tokens(self, level_boxes, xs, ys, height, width, pixel_mask) -> torch.Tensor:
        batch, patch = level_boxes.shape[0], self.patch_size
        # The pixel each point of each level's resampled image comes from (nearest), row by row and column
        # by column, and whether that pixel lies in each level's box: (B, 3 sampled, 3 boxes, g * p).
        in_x, in_y = box_pixel_spans(level_boxes, height, width)
        columns = nearest_source_pixels(xs, width).reshape(batch, 3, 1, -1).expand(-1, -1, 3, -1)
        rows = nearest_source_pixels(ys, height).reshape(batch, 3, 1, -1).expand(-1, -1, 3, -1)
        in_cols = torch.gather(in_x[:, None].expand(-1, 3, -1, -1), 3, columns)
        in_rows = torch.gather(in_y[:, None].expand(-1, 3, -1, -1), 3, rows)
        # A patch belongs to a level when more than half of its pixels are that level's (avg_pool2d's
        # division, as the official per-pixel map computes it).
        visible = (level_pixel_counts(in_rows, in_cols, patch) / (patch * patch) > 0.5).reshape(batch, 3, -1)
        if pixel_mask is not None and self.config.use_foreground_mask:
            fraction = F.avg_pool2d(pixel_mask[:, None].float(), self.patch_size).flatten(1)
            # A patch is content when more than half of it is. A very wide or tall photo can have no such
            # patch (a 7:1 strip is 14 px high in a 96 px square): then its fullest patches count, so
            # every photo keeps at least one full-image token. Ordinary photos are unaffected.
            fullest = fraction.amax(dim=1, keepdim=True)
            content = (fraction > 0.5) | ((fullest <= 0.5) & (fraction >= fullest) & (fraction > 0))
            # Out of place: the TorchScript ONNX exporter has no in-place `&=` on a slice.
            full_image = visible[:, FULL_IMAGE : FULL_IMAGE + 1] & content[:, None]
            visible = torch.cat([full_image, visible[:, FULL_IMAGE + 1 :]], dim=1)
        return visible.flatten(1)

    def _token_positions(self, level_boxes: torch.Tensor) -> torch.Tensor:
        batch, grid = level_boxes.shape[0], self.grid_size
        table = self.position_grid()
        # The full-image level uses the table itself (the official bilinear resize to the same size is
        # the identity); the two ROI levels sample it inside their boxes.
        roi_boxes = level_boxes[:, 1:].reshape(-1, 4)
        roi_grid = box_sampling_grid(roi_boxes, grid)
        in_rois = grid_sample_float32(table.expand(roi_boxes.shape[0], -1, -1, -1), roi_grid, align_corners=False)
        full = table.reshape(1, 1, -1, grid * grid).expand(batch, 1, -1, -1)
        sampled = torch.cat([full, in_rois.reshape(batch, 2, -1, grid * grid)], dim=1)
        positions = sampled.transpose(2, 3)  # (B, 3, g*g, D)
        if self.level_embed is not None:
            positions = positions + self.level_embed[None, :, None, :]
        return positions.reshape(batch, 3 * grid * grid, -1)
