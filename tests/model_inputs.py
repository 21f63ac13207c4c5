"""Keypoint layouts for model tests: named poses in normalised square-image coordinates."""

import torch

MISSING = -1.0


def full_body(center_x: float = 0.5, top: float = 0.1, height: float = 0.8) -> torch.Tensor:
    """A standing person facing the camera: face, shoulders down to ankles."""
    scale = height
    points = [
        (0.0, 0.06),  # nose
        (-0.02, 0.04), (0.02, 0.04),  # eyes (smaller x first)
        (-0.015, 0.08), (0.015, 0.08),  # mouth corners
        (0.04, 0.05), (-0.04, 0.05),  # ears: left = larger x
        (0.1, 0.17), (-0.1, 0.17),  # shoulders
        (0.13, 0.33), (-0.13, 0.33),  # elbows
        (0.14, 0.48), (-0.14, 0.48),  # wrists
        (0.07, 0.52), (-0.07, 0.52),  # hips
        (0.07, 0.75), (-0.07, 0.75),  # knees
        (0.07, 0.97), (-0.07, 0.97),  # ankles
    ]
    return torch.tensor([[center_x + dx * scale, top + dy * scale] for dx, dy in points])


def upper_body() -> torch.Tensor:
    keypoints = full_body(top=0.05, height=1.9)
    keypoints[11:] = MISSING  # wrists and below out of frame
    return keypoints.clamp(max=1.0).where(keypoints != MISSING, torch.tensor(MISSING))


def face_close_up() -> torch.Tensor:
    keypoints = torch.full((19, 2), MISSING)
    keypoints[:7] = torch.tensor(
        [[0.5, 0.55], [0.38, 0.42], [0.62, 0.42], [0.41, 0.7], [0.59, 0.7], [0.8, 0.5], [0.2, 0.5]]
    )
    return keypoints


def face_at_corner() -> torch.Tensor:
    """A face whose padded box sticks out of the top-left corner."""
    keypoints = torch.full((19, 2), MISSING)
    keypoints[:5] = torch.tensor([[0.05, 0.06], [0.02, 0.03], [0.09, 0.03], [0.03, 0.1], [0.08, 0.1]])
    return keypoints


def all_missing() -> torch.Tensor:
    return torch.full((19, 2), MISSING)


POSES = {
    "face_close_up": face_close_up,
    "upper_body": upper_body,
    "full_body": full_body,
    "all_missing": all_missing,
    "face_at_corner": face_at_corner,
}
