"""Processor speed by stage on the real photos, against the official transform and the model, per CPU core.

    python benchmarks/bench_processor.py [--repeats 3] [--no-model] [--write docs/benchmarks.md]

Stages, per image, on the eight photos in ../shared/data/people (2 to 4.3 MP JPEGs):

- decode: bytes -> upright RGB array (PIL, EXIF, mode rule);
- pixels: padded, resized, normalised ``pixel_values`` and ``pixel_mask``;
- detection: the detector's square copy, BlazePose (+ BlazeFace when nobody is found);
- ROIs: the official keypoint rules and the retina ROI boxes;
- processor: the whole ``SapiensIDImageProcessor`` call from the encoded bytes.

Baselines measured in the same run: the official test transform alone (PIL decode, ToTensor, SquarePad,
Resize without antialiasing, Normalize, written with torch) and the base SapiensID model's inference
(embeddings/s, random weights, keypoints from the processor). Everything runs on one thread.
"""

import argparse
import io
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sapiensid_hf.processing.image_decoding import load_rgb
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor
from sapiensid_hf.processing.keypoint_detector import BlazePoseDetector
from sapiensid_hf.processing.keypoint_layout import apply_official_rules, drop_outside
from sapiensid_hf.processing.retina_rois import compute_roi_boxes
from sapiensid_hf.processing.square_resampling import SquarePadding, detector_square, resample_padded_square

PEOPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "people"
SECTION = "## Processor"
SIZE = 384


def per_image_seconds(work: Callable[[bytes], object], photos: list[bytes], repeats: int) -> float:
    """Median over repeats of the mean time per photo (one warm-up pass first)."""
    for photo in photos:
        work(photo)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for photo in photos:
            work(photo)
        runs.append((time.perf_counter() - start) / len(photos))
    return statistics.median(runs)


def official_transform(data: bytes) -> torch.Tensor:
    """The official test transform, as written in the reference code (torch ops on a float tensor)."""
    with Image.open(io.BytesIO(data)) as image:
        tensor = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).float() / 255
    _, height, width = tensor.shape
    side = max(height, width)
    pad_w, pad_h = side - width, side - height
    padded = F.pad(tensor, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=1.0)
    resized = F.interpolate(padded[None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return (resized - 0.5) / 0.5


def model_seconds(processor: SapiensIDImageProcessor, photos: list[bytes], repeats: int) -> float:
    from sapiensid_hf.modeling import SapiensIDConfig, SapiensIDModel

    torch.manual_seed(0)
    model = SapiensIDModel(SapiensIDConfig()).eval()
    inputs = processor(photos)
    names = ("pixel_values", "keypoints", "pixel_mask", "roi_boxes")
    batches = [{name: inputs[name][index : index + 1] for name in names} for index in range(len(photos))]
    with torch.no_grad():
        model(**batches[0])  # warm-up
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            for batch in batches:
                model(**batch)
            runs.append((time.perf_counter() - start) / len(batches))
    return statistics.median(runs)


def update_section(path: Path, heading: str, body: str) -> None:
    """Replace (or append) one `## ` section of a markdown file, leaving the others alone."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    parts = text.split("\n## ")
    head, sections = parts[0], ["## " + part for part in parts[1:]]
    sections = [section for section in sections if section.split("\n", 1)[0].strip() != heading]
    sections.append(body.rstrip() + "\n")
    path.write_text("\n".join([head.rstrip() + "\n"] + sections))


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-model", action="store_true", help="skip the model baseline")
    parser.add_argument(
        "--write", type=Path, default=None, help="markdown file to update (section '## Processor')"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    names = sorted(path.name for path in PEOPLE.glob("*.jpg"))
    photos = [(PEOPLE / name).read_bytes() for name in names]
    detector = BlazePoseDetector(num_threads=1)
    processor = SapiensIDImageProcessor(size=SIZE, detector=detector)
    decoded = {photo: load_rgb(photo, "bench") for photo in photos}
    squares = {photo: detector_square(decoded[photo], processor.detector_max_side) for photo in photos}
    found = {photo: detector.detect(squares[photo]).keypoints for photo in photos}

    def pixels(photo: bytes) -> None:
        rgb = decoded[photo]
        values = (resample_padded_square(rgb, SIZE) / 255.0 - 0.5) / 0.5
        SquarePadding.of(*rgb.shape[:2]).content_mask(SIZE)
        values.transpose(2, 0, 1)

    def detection(photo: bytes) -> None:
        detector.detect(detector_square(decoded[photo], processor.detector_max_side))

    def rois(photo: bytes) -> None:
        box = SquarePadding.of(*decoded[photo].shape[:2]).content_box()
        keypoints = apply_official_rules(drop_outside(found[photo], box))
        compute_roi_boxes(torch.from_numpy(keypoints)[None])

    stages = {
        "decode": lambda photo: load_rgb(photo, "bench"),
        "pixels": pixels,
        "detection": detection,
        "ROIs": rois,
        "processor (all stages)": lambda photo: processor(photo),
    }
    seconds = {stage: per_image_seconds(work, photos, args.repeats) for stage, work in stages.items()}
    baseline = per_image_seconds(official_transform, photos, args.repeats)
    model = None if args.no_model else model_seconds(processor, photos, args.repeats)

    megapixels = statistics.mean(rgb.shape[0] * rgb.shape[1] for rgb in decoded.values()) / 1e6
    lines = [
        SECTION,
        "",
        f"`python benchmarks/bench_processor.py --repeats {args.repeats}` on one CPU thread ({platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}); the {len(photos)} photos of ../shared/data/people (JPEG, mean {megapixels:.1f} MP), "
        f"output {SIZE} px, detector copy {processor.detector_max_side} px. Time per image, and its ratio to the official "
        "test transform measured in the same run (PIL decode + pad + resize + normalise, no keypoints).",
        "",
        "Timings come from a shared 2-core machine and vary between runs; compare the ratios within one run.",
        "",
        "| stage | ms / image | images / s | x official transform |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {stage} | {1000 * s:.1f} | {1 / s:.1f} | {s / baseline:.2f} |" for stage, s in seconds.items()
    ]
    lines += [f"| official transform (baseline) | {1000 * baseline:.1f} | {1 / baseline:.1f} | 1.00 |"]
    if model is not None:
        ratio = (1 / seconds["processor (all stages)"]) / (1 / model)
        lines += [
            "",
            f"Base SapiensID inference in the same run, batch 1, one thread: {1 / model:.2f} embeddings/s; the whole "
            f"processor runs at **{ratio:.1f}x** that rate, so one processor core keeps up with {ratio:.1f} model cores.",
        ]
    lines.append("")
    section = "\n".join(lines)
    for line in lines:
        print(line)
    if args.write:
        update_section(args.write, SECTION, section)
    return section


if __name__ == "__main__":
    main()
