"""Hub-portable SapiensID model code (installed as ``sapiensid_hf.modeling``)."""

from .configuration_sapiensid import FLIP_PAIRS, KEYPOINT_NAMES, SapiensIDConfig
from .modeling_sapiensid import SapiensIDModel, SapiensIDModelOutput, SapiensIDPreTrainedModel

__all__ = [
    "FLIP_PAIRS",
    "KEYPOINT_NAMES",
    "SapiensIDConfig",
    "SapiensIDModel",
    "SapiensIDModelOutput",
    "SapiensIDPreTrainedModel",
]
