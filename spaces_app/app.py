"""SapiensID Gradio Space: compare two pictures of people, search a gallery, read about the model.

The page lives in the installed package (sapiensid_hf/space); this file is the Space's `app_file`.
Run it with ``python spaces_app/app.py --model <folder or hub id>``, or ``sapiensid demo`` anywhere the
package is installed. Without a model (no --model, no $SAPIENSID_MODEL) it uses the shipped default
model, sapiensid-small; ``--model untrained`` runs a randomly initialised tiny model and says, on every
tab, that its scores are meaningless.
"""

import os
from pathlib import Path

from sapiensid_hf.commands.demo import main
from sapiensid_hf.processing.detector_assets import DETECTOR_DIR_ENV

# A deployed Space ships the detector's .tflite files and the face check's YuNet .onnx here (see docs/space.md).
BUNDLED_DETECTOR_DIR = Path(__file__).resolve().parent / "detector"

if __name__ == "__main__":
    if BUNDLED_DETECTOR_DIR.is_dir() and not os.environ.get(DETECTOR_DIR_ENV):
        os.environ[DETECTOR_DIR_ENV] = str(BUNDLED_DETECTOR_DIR)
    raise SystemExit(main())
