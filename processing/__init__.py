"""SapiensID image processing: decoding, keypoint detection, retina ROIs and their visualisation.

The files here are flat and use relative imports only, so ``save_pretrained`` can copy them next to
a model and ``AutoImageProcessor.from_pretrained(..., trust_remote_code=True)`` can load them
without this package.
"""

from .detector_assets import DetectorNotAvailableError
from .image_decoding import SapiensIDInputError
from .image_processing_sapiensid import MODEL_INPUT_NAMES, SapiensIDImageProcessor
from .keypoint_detector import BlazePoseDetector, KeypointDetector, KeypointResult
from .people_in_image import PeopleInImage, Person
from .visualization_sapiensid import visualize

__all__ = [
    "MODEL_INPUT_NAMES",
    "BlazePoseDetector",
    "DetectorNotAvailableError",
    "KeypointDetector",
    "KeypointResult",
    "PeopleInImage",
    "Person",
    "SapiensIDImageProcessor",
    "SapiensIDInputError",
    "visualize",
]
