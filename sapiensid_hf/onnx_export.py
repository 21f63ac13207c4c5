"""Export the SapiensID embedding model to ONNX: pixel_values + keypoints + pixel_mask -> embeddings.

The graph is the model in evaluation mode run with ``keep_all_tokens=True``: every retina token goes
through the encoder and the hidden ones are excluded from attention instead of dropped, so the
sequence length does not depend on the data and only the batch axis is dynamic. The embeddings are
identical to the PyTorch model's; like it, the graph does not L2-normalise them.

Two exporters exist in torch 2.13: the default ``torch.export``-based one (``dynamo=True``, needs
onnxscript) and the TorchScript tracer (``dynamo=False``). `export_onnx` tries them in turn and, when
onnxruntime is installed, checks every export against PyTorch on fresh batches of 2 and 3 images
before calling it done.

Two adaptations, both export-time only and neither changing a number:

- attention runs on the explicit softmax path (``config._attn_implementation = "eager"``): torch
  2.13's decomposition of ``scaled_dot_product_attention`` produces a layout the traced ``reshape``
  that follows it cannot view;
- ``aten.sort.stable`` (the stable argsort that orders the kept tokens) is written as ONNX ``TopK``,
  whose specification breaks ties by the lower index, i.e. stably.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .cut_views import embedding_cuts
from .modeling import KEYPOINT_NAMES, SapiensIDModel

logger = logging.getLogger(__name__)

INPUT_NAMES = ("pixel_values", "keypoints", "pixel_mask")
ROI_BOXES_INPUT = "roi_boxes"
OUTPUT_NAME = "embeddings"
DEFAULT_OPSET = 18
MIN_OPSET = 16  # GridSample (retina patch sampling, keypoint position lookup) exists from opset 16
EXPORTERS = ("auto", "dynamo", "torchscript")
DEFAULT_TOLERANCE = 1e-4
VERIFY_BATCH_SIZES = (2, 3)  # two sizes: a graph with a baked-in batch size cannot pass both


class OnnxExportError(RuntimeError):
    """Export failed with every exporter tried, or the exported graph disagrees with PyTorch."""


@dataclass
class OnnxExportReport:
    path: Path
    exporter: str  # "dynamo" or "torchscript"
    opset: int
    with_roi_boxes: bool
    max_abs_difference: float | None  # against PyTorch on the verification batches; None if not verified
    verified_batch_sizes: tuple[int, ...] = ()
    failures: dict[str, str] = field(default_factory=dict)  # exporter -> why it failed (before the one used)


class SapiensIDEmbeddingGraph(nn.Module):
    """The part of the model that ONNX holds: inputs -> embeddings, with a data-independent sequence."""

    def __init__(self, model: SapiensIDModel, with_roi_boxes: bool = False):
        super().__init__()
        self.model = model
        self.with_roi_boxes = with_roi_boxes

    def forward(
        self,
        pixel_values: torch.Tensor,
        keypoints: torch.Tensor,
        pixel_mask: torch.Tensor,
        roi_boxes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        output = self.model(
            pixel_values=pixel_values,
            keypoints=keypoints,
            pixel_mask=pixel_mask,
            roi_boxes=roi_boxes if self.with_roi_boxes else None,
            keep_all_tokens=True,
            return_dict=True,
        )
        return output.embeddings


def example_keypoints(batch_size: int) -> torch.Tensor:
    """(B, 19, 2) keypoints cycling through a standing person, a face close-up and nobody found.

    Export and verification see every branch the processor can produce: face and upper-body ROIs,
    a face ROI alone, and all points missing (full image only).
    """
    standing = torch.tensor(
        [
            [0.50, 0.16], [0.48, 0.14], [0.52, 0.14], [0.485, 0.19], [0.515, 0.19], [0.54, 0.15], [0.46, 0.15],
            [0.59, 0.26], [0.41, 0.26], [0.62, 0.40], [0.38, 0.40], [0.63, 0.52], [0.37, 0.52],
            [0.56, 0.55], [0.44, 0.55], [0.56, 0.74], [0.44, 0.74], [0.56, 0.92], [0.44, 0.92],
        ]
    )  # fmt: skip
    close_up = torch.full((19, 2), -1.0)
    close_up[:7] = torch.tensor(
        [[0.50, 0.55], [0.38, 0.42], [0.62, 0.42], [0.41, 0.70], [0.59, 0.70], [0.80, 0.50], [0.20, 0.50]]
    )
    nobody = torch.full((19, 2), -1.0)
    layouts = (standing, close_up, nobody)
    return torch.stack([layouts[index % len(layouts)] for index in range(batch_size)])


def example_inputs(model: SapiensIDModel, batch_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic processor-like inputs: random pixels, `example_keypoints`, padded masks, ROI boxes."""
    config = model.config
    size = config.image_size
    generator = torch.Generator().manual_seed(seed)
    pixel_values = torch.rand(batch_size, config.num_channels, size, size, generator=generator) * 2 - 1
    pixel_mask = torch.ones(batch_size, size, size, dtype=torch.int64)
    for index in range(batch_size):
        # Portrait, landscape, square: the padding sits left/right, top/bottom, nowhere.
        margin = size // 5
        if index % 3 == 0:
            pixel_mask[index, :, :margin] = 0
            pixel_mask[index, :, size - margin :] = 0
        elif index % 3 == 1:
            pixel_mask[index, :margin] = 0
            pixel_mask[index, size - margin :] = 0
    keypoints = example_keypoints(batch_size)
    face_boxes, body_boxes = model.roi_boxes_from_keypoints(keypoints)
    return {
        "pixel_values": pixel_values,
        "keypoints": keypoints,
        "pixel_mask": pixel_mask,
        ROI_BOXES_INPUT: torch.stack([face_boxes, body_boxes], dim=1),
    }


@contextlib.contextmanager
def _export_mode(model: SapiensIDModel) -> Iterator[None]:
    """Evaluation mode and explicit-softmax attention for the duration of an export (then restored)."""
    config = model.config
    previous_attention = config._attn_implementation
    was_training = model.training
    model.eval()
    config._attn_implementation = "eager"
    try:
        yield
    finally:
        config._attn_implementation = previous_attention
        model.train(was_training)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Hide the exporter's known, harmless notices (torchvision ops it skips, internal deprecations)."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    previous_level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning
            )
            warnings.filterwarnings(
                "ignore", message=r".*The axis name: .* will not be used", category=UserWarning
            )
            yield
    finally:
        registration.setLevel(previous_level)


def _stable_sort_as_topk(self, dim: int = -1, descending: bool = False, stable: bool | None = None):
    """ONNX translation of ``aten.sort.stable``: TopK over the whole axis, ties by the lower index."""
    from onnxscript import opset18 as op

    # ORT's TopK has no kernel for bool / uint8 keys; doubles hold every value the model sorts exactly.
    keys = op.Cast(self, to=11)  # TensorProto.DOUBLE
    length = op.Gather(op.Shape(self), op.Constant(value_ints=[dim]))
    values, indices = op.TopK(keys, length, axis=dim, largest=1 if descending else 0, sorted=1)
    return op.CastLike(values, self), indices


def _export_dynamo(
    graph: SapiensIDEmbeddingGraph, args: tuple, input_names: list[str], path: Path, opset: int
) -> None:
    if importlib.util.find_spec("onnxscript") is None:
        raise OnnxExportError("the torch.export-based exporter needs onnxscript (pip install onnxscript)")
    batch = torch.export.Dim("batch", min=1)
    # The input names are also the names of forward's arguments, which dynamic_shapes is keyed by.
    dynamic_shapes = {name: {0: batch} for name in input_names}
    torch.onnx.export(
        graph,
        args,
        os.fspath(path),
        dynamo=True,
        input_names=input_names,
        output_names=[OUTPUT_NAME],
        opset_version=opset,
        dynamic_shapes=dynamic_shapes,
        custom_translation_table={torch.ops.aten.sort.stable: _stable_sort_as_topk},
        # Small models in one file; the exporter moves the weights of large ones (base: 1.6 GB) to NAME.onnx.data.
        external_data=False,
        verbose=False,
    )


def _export_torchscript(
    graph: SapiensIDEmbeddingGraph, args: tuple, input_names: list[str], path: Path, opset: int
) -> None:
    dynamic_axes = {name: {0: "batch"} for name in [*input_names, OUTPUT_NAME]}
    torch.onnx.export(
        graph,
        args,
        os.fspath(path),
        dynamo=False,
        input_names=input_names,
        output_names=[OUTPUT_NAME],
        opset_version=opset,
        dynamic_axes=dynamic_axes,
        do_constant_folding=True,
    )


EXPORT_FUNCTIONS: dict[str, Callable[..., None]] = {
    "dynamo": _export_dynamo,
    "torchscript": _export_torchscript,
}


def _add_metadata(path: Path, model: SapiensIDModel, with_roi_boxes: bool) -> None:
    """Record what a runtime needs to prepare inputs (size, normalisation, keypoint order) in the file."""
    import onnx

    config = model.config
    proto = onnx.load(os.fspath(path), load_external_data=False)
    metadata = {
        "model_type": "sapiensid",
        "image_size": str(config.image_size),
        "image_mean": ",".join(str(value) for value in config.image_mean),
        "image_std": ",".join(str(value) for value in config.image_std),
        "keypoint_names": ",".join(KEYPOINT_NAMES),
        "output_dim": str(config.output_dim),
        "embeddings": "not L2-normalised; compare with cosine similarity",
        "inputs": ",".join(INPUT_NAMES + ((ROI_BOXES_INPUT,) if with_roi_boxes else ())),
    }
    scales = embedding_cuts(config)
    if scales[1:]:  # the graph embeds one view; the folder's figures average the photo and its centre cuts
        metadata["embedding_cuts"] = ",".join(f"{scale:g}" for scale in scales)
        metadata["embeddings"] += (
            "; one view: the folder's embedding is the normalised sum of the unit embeddings of the photo and its "
            "centre cuts at embedding_cuts (the processor's cut_* outputs; docs/cli.md, export-onnx)"
        )
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, os.fspath(path))


def verify_onnx(
    path: str | os.PathLike,
    model: SapiensIDModel,
    batch_sizes: tuple[int, ...] = VERIFY_BATCH_SIZES,
    with_roi_boxes: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
) -> float:
    """Run the ONNX file with onnxruntime on fresh inputs and compare with PyTorch; the max abs difference.

    Raises `OnnxExportError` when any embedding differs by more than `tolerance` (absolute, scaled up
    for embeddings larger than 1 in magnitude).
    """
    import onnxruntime

    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    feed_names = [entry.name for entry in session.get_inputs()]
    worst = 0.0
    model.eval()
    for offset, batch_size in enumerate(batch_sizes):
        inputs = example_inputs(model, batch_size, seed=1000 + offset)
        with torch.no_grad():
            reference = model(
                pixel_values=inputs["pixel_values"],
                keypoints=inputs["keypoints"],
                pixel_mask=inputs["pixel_mask"],
                roi_boxes=inputs[ROI_BOXES_INPUT] if with_roi_boxes else None,
            ).embeddings.numpy()
        (exported,) = session.run([OUTPUT_NAME], {name: inputs[name].numpy() for name in feed_names})
        if exported.shape != reference.shape:
            raise OnnxExportError(
                f"{path}: ONNX output has shape {exported.shape} for a batch of {batch_size}, PyTorch {reference.shape}"
            )
        difference = float(np.abs(exported - reference).max())
        worst = max(worst, difference)
        allowed = tolerance * max(1.0, float(np.abs(reference).max()))
        if not difference <= allowed:  # also catches NaN
            raise OnnxExportError(
                f"{path}: ONNX embeddings differ from PyTorch by {difference:.3g} (allowed {allowed:.3g}) "
                f"on a batch of {batch_size}"
            )
    return worst


def _onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def export_onnx(
    model: SapiensIDModel,
    path: str | os.PathLike,
    opset: int = DEFAULT_OPSET,
    exporter: str = "auto",
    with_roi_boxes: bool = False,
    verify: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
) -> OnnxExportReport:
    """Write `model`'s embedding graph to `path` (.onnx) with a dynamic batch axis.

    Args:
        model: a `SapiensIDModel`; it is moved to the CPU in float32 for the export.
        path: output file; its folder is created.
        opset: ONNX opset, at least 16 (GridSample).
        exporter: "dynamo" (torch.export, the torch 2.13 default), "torchscript", or "auto" (dynamo,
            then torchscript if it fails or disagrees with PyTorch).
        with_roi_boxes: add a `roi_boxes` (B, 2, 4) input (face, upper-body boxes, -1 = none) instead of
            computing the boxes from the keypoints inside the graph.
        verify: compare with PyTorch under onnxruntime on batches of 2 and 3 (skipped, with a warning,
            when onnxruntime is not installed).
        tolerance: allowed max abs difference of the embeddings in that check.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    if opset < MIN_OPSET:
        raise ValueError(
            f"opset {opset} is too old: the model needs GridSample, available from opset {MIN_OPSET}"
        )
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"{path}: the output file must end in .onnx")
    path.parent.mkdir(parents=True, exist_ok=True)
    if verify and not _onnxruntime_available():
        logger.warning("onnxruntime is not installed: the exported graph is NOT checked against PyTorch")
        verify = False

    model = model.to("cpu").float()
    graph = SapiensIDEmbeddingGraph(model, with_roi_boxes=with_roi_boxes)
    inputs = example_inputs(model, batch_size=2)
    input_names = list(INPUT_NAMES) + ([ROI_BOXES_INPUT] if with_roi_boxes else [])
    args = tuple(inputs[name] for name in input_names)
    candidates = ["dynamo", "torchscript"] if exporter == "auto" else [exporter]

    failures: dict[str, str] = {}
    for name in candidates:
        try:
            with _export_mode(model), _quiet_exporter(), torch.no_grad():
                graph.eval()
                EXPORT_FUNCTIONS[name](graph, args, input_names, path, opset)
            _add_metadata(path, model, with_roi_boxes)
            difference = (
                verify_onnx(path, model, with_roi_boxes=with_roi_boxes, tolerance=tolerance)
                if verify
                else None
            )
        except Exception as error:  # an exporter failure is reported, then the next exporter is tried
            _remove_outputs(path)
            failures[name] = f"{type(error).__name__}: {_first_lines(str(error))}"
            if name != candidates[-1]:
                logger.warning(
                    "ONNX export with the %s exporter failed, trying the next: %s", name, failures[name]
                )
            continue
        return OnnxExportReport(
            path=path,
            exporter=name,
            opset=opset,
            with_roi_boxes=with_roi_boxes,
            max_abs_difference=difference,
            verified_batch_sizes=VERIFY_BATCH_SIZES if verify else (),
            failures=failures,
        )
    details = "; ".join(f"{name}: {reason}" for name, reason in failures.items())
    raise OnnxExportError(f"could not export {path} ({details})")


def _remove_outputs(path: Path) -> None:
    """Delete what a failed export left (the graph and its weights side file), so no wrong file remains."""
    for leftover in (path, path.with_name(path.name + ".data")):
        leftover.unlink(missing_ok=True)


def _first_lines(text: str, count: int = 3) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[:count]) if lines else "(no message)"


__all__ = [
    "DEFAULT_OPSET",
    "OnnxExportError",
    "OnnxExportReport",
    "SapiensIDEmbeddingGraph",
    "example_inputs",
    "export_onnx",
    "verify_onnx",
]
