"""A photo's embedding as the mean of its own and its centre cuts' unit embeddings (a model folder's
embedding rule, `embedding_cuts`; the processor makes the cuts, see the processor's centre_cuts.py)."""

import torch
import torch.nn.functional as F


def cuts_as_batch(
    cut_pixel_values: torch.Tensor, cut_pixel_mask: torch.Tensor, cut_keypoints: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The processor's cut inputs, (B, 3 * C, S, S), (B, C, S, S), (B, C, 19, 2), as one batch of B * C
    views (photo-major): pixel values (B * C, 3, S, S), pixel mask (B * C, S, S), keypoints (B * C, 19, 2)."""
    batch, cuts = cut_keypoints.shape[:2]
    side = cut_pixel_values.shape[-1]
    if cut_pixel_values.shape != (batch, 3 * cuts, side, side) or cut_pixel_mask.shape != (batch, cuts, side, side):
        raise ValueError(
            f"cut inputs disagree: cut_keypoints {tuple(cut_keypoints.shape)} (B, cuts, 19, 2) needs cut_pixel_values "
            f"(B, 3 * cuts, S, S) and cut_pixel_mask (B, cuts, S, S), got {tuple(cut_pixel_values.shape)} and "
            f"{tuple(cut_pixel_mask.shape)}"
        )
    return (
        cut_pixel_values.reshape(batch * cuts, 3, side, side),
        cut_pixel_mask.reshape(batch * cuts, side, side),
        cut_keypoints.reshape(batch * cuts, *cut_keypoints.shape[2:]),
    )


def fold_in_cuts(photo: torch.Tensor, cuts: torch.Tensor, cut_keypoints: torch.Tensor) -> torch.Tensor:
    """(B, D), not normalised: the sum of the photo's (B, D) and its cuts' (B, C, D) unit embeddings (its
    direction is the rule's embedding), leaving out each cut in which no keypoint remains (`cut_keypoints`
    (B, C, 19, 2), -1 = missing): such a cut shows nothing of the photo's person."""
    someone = (cut_keypoints != -1).all(dim=-1).any(dim=-1).to(cuts.dtype)
    return F.normalize(photo, dim=-1) + (F.normalize(cuts, dim=-1) * someone[..., None]).sum(dim=1)


__all__ = ["cuts_as_batch", "fold_in_cuts"]
