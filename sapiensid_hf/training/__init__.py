"""Training SapiensID: masked recognition training with an AdaFace head, on Accelerate.

Entry point: `train(TrainingConfig.from_file(path))`, or `examples/train.py` for the command line.
"""

from ..keypoint_cache import KeypointCache, build_keypoint_cache, dataset_fingerprint
from .adaface import AdaFaceHead, AdaFaceOutput
from .augmentation import TrainingAugmentation, flip_keypoints, flip_sample, photometric_jitter
from .config import ConfigError, TrainingConfig
from .dataset import TrainingDataError
from .masking import MaskingSchedule, StepMasking
from .recognition_model import SapiensIDForRecognitionTraining, build_backbone
from .samplers import IdentityBalancedOrder, ShuffledOrder, TrainingStream
from .trainer import TrainingDivergedError, TrainingInterrupted, TrainingResult, find_checkpoint, train

__all__ = [
    "AdaFaceHead",
    "AdaFaceOutput",
    "ConfigError",
    "IdentityBalancedOrder",
    "KeypointCache",
    "MaskingSchedule",
    "SapiensIDForRecognitionTraining",
    "ShuffledOrder",
    "StepMasking",
    "TrainingAugmentation",
    "TrainingConfig",
    "TrainingDataError",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "TrainingResult",
    "TrainingStream",
    "build_backbone",
    "build_keypoint_cache",
    "dataset_fingerprint",
    "find_checkpoint",
    "flip_keypoints",
    "flip_sample",
    "photometric_jitter",
    "train",
]
