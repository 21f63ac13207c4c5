"""SapiensID for Hugging Face: one model for face, upper-body and full-body human recognition.

Importing this package registers the classes with the transformers Auto classes, so
``AutoModel.from_pretrained(folder)`` works without ``trust_remote_code`` when the package is
installed, and ``save_pretrained`` writes the ``auto_map`` and the flat code files that let
``AutoModel.from_pretrained(folder_or_repo, trust_remote_code=True)`` work where it is not.
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel

from .modeling import KEYPOINT_NAMES, SapiensIDConfig, SapiensIDModel, SapiensIDModelOutput
from .processing import SapiensIDImageProcessor, SapiensIDInputError

__version__ = "0.1.0"

AutoConfig.register(SapiensIDConfig.model_type, SapiensIDConfig, exist_ok=True)
AutoModel.register(SapiensIDConfig, SapiensIDModel, exist_ok=True)
SapiensIDConfig.register_for_auto_class()
SapiensIDModel.register_for_auto_class("AutoModel")
AutoImageProcessor.register(SapiensIDConfig, slow_image_processor_class=SapiensIDImageProcessor, exist_ok=True)

__all__ = [
    "KEYPOINT_NAMES",
    "SapiensIDConfig",
    "SapiensIDImageProcessor",
    "SapiensIDInputError",
    "SapiensIDModel",
    "SapiensIDModelOutput",
    "__version__",
]
