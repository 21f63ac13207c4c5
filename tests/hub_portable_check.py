"""What a Hugging Face user without this package does with a SapiensID folder; prints the results as JSON.

    python hub_portable_check.py MODEL_DIR NOBODY_IMAGE PHOTO [PHOTO ...]

Run by tests/test_hub_ecosystem.py in environments where `sapiensid_hf` cannot be imported (the newest
transformers with the package blocked, and a separate environment with the oldest supported transformers).
Uses only torch, transformers and what the folder's own code files need.
"""

import json
import sys

import torch
import transformers
from transformers import AutoImageProcessor, AutoModel, pipeline


def main() -> None:
    folder, nobody, *photos = sys.argv[1:]
    try:
        import sapiensid_hf  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("sapiensid_hf is importable here: this check must run without the package")

    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
    with torch.no_grad():
        inputs = processor(photos[:1], return_tensors="pt")
        # Every model input the processor gives (the photo's, and its centre cuts' under the folder's rule),
        # without the person_found check: what docs/model.md says to call.
        direct = model(**{name: value for name, value in inputs.items() if name != "person_found"}).embeddings

    extractor = pipeline("image-feature-extraction", model=folder, trust_remote_code=True)
    unpooled = extractor(photos[0])
    pooled_batch = extractor(photos, pool=True, batch_size=2)
    # docs/model.md: the photo alone, without the folder's rule of centre cuts and flip.
    photo_alone = extractor(photos[0], pool=True, image_processor_kwargs={"embedding_cuts": None, "embedding_flip": False})
    try:
        extractor(nobody, pool=True)
        nobody_error = None
    except ValueError as error:
        nobody_error = str(error)

    print(json.dumps({
        "transformers": transformers.__version__,
        "model_module": type(model).__module__,
        "direct": direct.tolist(),
        "view_inputs": sorted(name for name in inputs if name.startswith("cut_") or "mirrored" in name),
        "photo_alone": photo_alone,
        "unpooled": unpooled,
        "pooled": [row[0] for row in pooled_batch],
        "nobody_error": nobody_error,
    }))


if __name__ == "__main__":
    main()
