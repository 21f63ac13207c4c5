"""`sapiensid export-onnx`: the embedding model as an ONNX file with a dynamic batch axis, checked against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cut_views import rule_description
from ..inference import MODEL_ENV_VAR
from ..onnx_export import MIN_OPSET, export_onnx
from .common import CommandError, open_pipeline


def run(args: argparse.Namespace) -> int:
    output = Path(args.output).expanduser()
    if output.suffix != ".onnx":
        raise CommandError(f"output {output}: the file name must end in .onnx")
    if args.opset < MIN_OPSET:
        raise CommandError(
            f"--opset {args.opset} is too old: the model needs GridSample (opset {MIN_OPSET} or later)"
        )
    pipeline = open_pipeline(args.model, device="cpu")
    if not pipeline.trained:
        raise CommandError(
            f"export-onnx needs trained weights: pass --model FOLDER_OR_HUB_ID (or set ${MODEL_ENV_VAR}), or "
            "leave both unset for the shipped model; exporting random weights is never what you want"
        )
    print(f"exporting to {output} (exporter: {args.exporter}, opset {args.opset}); this can take a minute...")
    report = export_onnx(
        pipeline.model,
        output,
        opset=args.opset,
        exporter=args.exporter,
        with_roi_boxes=args.with_roi_boxes,
        verify=not args.no_verify,
        tolerance=args.tolerance,
    )
    for name, reason in report.failures.items():
        print(f"the {name} exporter failed ({reason}); used {report.exporter} instead")
    inputs = "pixel_values, keypoints, pixel_mask" + (", roi_boxes" if report.with_roi_boxes else "")
    print(
        f"wrote {report.path} ({report.exporter} exporter, opset {report.opset}; inputs: {inputs}; output: embeddings)"
    )
    if report.max_abs_difference is None:
        print("NOT verified against PyTorch (onnxruntime missing or --no-verify)")
    else:
        sizes = " and ".join(str(size) for size in report.verified_batch_sizes)
        print(
            f"verified with onnxruntime on batches of {sizes}: max abs difference {report.max_abs_difference:.2e}"
        )
    if pipeline.embedding_cuts[1:]:  # the figures of such a folder are not those of one view
        print(
            f"NOTE: this model folder embeds a photo as {rule_description(pipeline.embedding_cuts)}, each view with "
            "its mirror (flip); the graph embeds one view: run it on the photo, its cuts and their mirrors and "
            "average (docs/cli.md, export-onnx; the file's metadata records embedding_cuts)"
        )
    else:
        print("note: the graph embeds one view; `sapiensid embed` adds its mirror (flip) by default (docs/cli.md, export-onnx)")
    return 0
