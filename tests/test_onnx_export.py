"""ONNX export of the embedding model: onnxruntime matches PyTorch on batches of 2 and 3 (dynamic batch)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sapiensid_cli import main
from sapiensid_hf import SapiensIDConfig, SapiensIDModel
from sapiensid_hf.inference import load_pipeline
from sapiensid_hf.onnx_export import (
    EXPORT_FUNCTIONS,
    OnnxExportError,
    SapiensIDEmbeddingGraph,
    example_inputs,
    export_onnx,
)
from sapiensid_hf.processing.detector_assets import (
    DetectorNotAvailableError,
    detector_dir,
    locate_detector_files,
)
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor

onnxruntime = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

PEOPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "people"
PHOTOS = ("face_a_2.jpg", "two_men.jpg", "street_bus.jpg")
FEEDS = ("pixel_values", "keypoints", "pixel_mask")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_model")
    torch.manual_seed(0)
    model = SapiensIDModel(SapiensIDConfig.tiny())
    # Non-trivial KP-RPE output and BatchNorm statistics, so every part of the graph shapes the result.
    with torch.no_grad():
        for parameter in (model.keypoint_rpe.fc2.weight, model.head.part_gate):
            parameter.normal_(std=0.5)
        model.head.bn1.running_mean.normal_(std=0.1)
        model.head.bn1.running_var.uniform_(0.5, 2.0)
    model.config.training = {"trainer": "tests: a stand-in for trained weights"}  # counts as trained
    model.save_pretrained(folder)
    SapiensIDImageProcessor.from_model_config(model.config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model(model_dir) -> SapiensIDModel:
    return load_pipeline(model_dir).model


@pytest.fixture(scope="module")
def onnx_path(model_dir, tmp_path_factory) -> Path:
    """Exported once through the command line, with the default exporter choice."""
    path = tmp_path_factory.mktemp("onnx") / "sapiensid.onnx"
    assert main(["export-onnx", "--model", str(model_dir), "--output", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def session(onnx_path):
    return onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])


def run_onnx(session, features) -> np.ndarray:
    (embeddings,) = session.run(["embeddings"], {name: np.asarray(features[name]) for name in FEEDS})
    return embeddings


def pytorch_embeddings(model, features) -> np.ndarray:
    with torch.no_grad():
        output = model(**{name: torch.as_tensor(np.asarray(features[name])) for name in FEEDS})
    return output.embeddings.numpy()


@pytest.mark.parametrize("batch_size", [2, 3])
def test_onnx_matches_pytorch_on_real_photos(session, model, model_dir, batch_size):
    if not PEOPLE.is_dir():
        pytest.skip(f"real test photos not found at {PEOPLE}")
    try:
        locate_detector_files()
    except DetectorNotAvailableError as error:
        pytest.skip(f"detector files not in {detector_dir()}; run `sapiensid download-detector` ({error})")
    processor = SapiensIDImageProcessor.from_pretrained(model_dir)
    features = processor([str(PEOPLE / name) for name in PHOTOS[:batch_size]], return_tensors="np")
    exported = run_onnx(session, features)
    expected = pytorch_embeddings(model, features)
    assert exported.shape == (batch_size, model.config.output_dim)
    assert np.abs(exported - expected).max() <= 1e-4


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5])
def test_onnx_matches_pytorch_on_every_keypoint_layout(session, model, batch_size):
    # Standing person, face close-up and nobody found, cycled; padding left/right, top/bottom, none.
    features = {name: value.numpy() for name, value in example_inputs(model, batch_size, seed=7).items()}
    exported = run_onnx(session, features)
    assert np.abs(exported - pytorch_embeddings(model, features)).max() <= 1e-4


def test_graph_has_a_dynamic_batch_axis_and_records_its_preprocessing(onnx_path, model):
    proto = onnx.load(str(onnx_path))
    inputs = {entry.name: entry.type.tensor_type for entry in proto.graph.input}
    assert list(inputs) == list(FEEDS)
    for tensor_type in inputs.values():
        assert tensor_type.shape.dim[0].dim_param  # symbolic, not a fixed size
    size = model.config.image_size
    assert [d.dim_value for d in inputs["pixel_values"].shape.dim[1:]] == [3, size, size]
    assert inputs["pixel_mask"].elem_type == onnx.TensorProto.INT64  # what the processor returns
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    assert metadata["image_size"] == str(size)
    assert metadata["keypoint_names"].split(",")[0] == "nose"
    assert "embedding_cuts" not in metadata  # a folder without a rule of centre cuts: the graph's view is all


def test_a_folder_with_centre_cuts_says_so_in_the_graph_and_the_command(model_dir, tmp_path, capsys):
    # The graph embeds one view; such a folder's figures average the photo and its cuts (docs/cli.md).
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "embedding_cuts": {"scales": [1.0, 0.95, 0.9], "source": "tests"}}))
    path = tmp_path / "cuts.onnx"
    capsys.readouterr()
    assert main(["export-onnx", "--model", str(folder), "--output", str(path), "--no-verify"]) == 0
    assert "NOTE: this model folder embeds a photo as the mean of the photo's centre cuts" in capsys.readouterr().out
    metadata = {entry.key: entry.value for entry in onnx.load(str(path), load_external_data=False).metadata_props}
    assert metadata["embedding_cuts"] == "1,0.95,0.9" and "centre cuts" in metadata["embeddings"]


def test_graph_wrapper_equals_the_model_with_and_without_roi_boxes(model):
    inputs = example_inputs(model, batch_size=3, seed=3)
    arguments = (inputs["pixel_values"], inputs["keypoints"], inputs["pixel_mask"])
    with torch.no_grad():
        plain = model(*arguments).embeddings
        wrapped = SapiensIDEmbeddingGraph(model)(*arguments)
        boxed = SapiensIDEmbeddingGraph(model, with_roi_boxes=True)(*arguments, inputs["roi_boxes"])
    torch.testing.assert_close(wrapped, plain, rtol=0, atol=1e-5)
    torch.testing.assert_close(
        boxed, plain, rtol=0, atol=1e-5
    )  # the boxes are the ones computed from keypoints


@pytest.mark.filterwarnings("ignore:.*LeafSpec:FutureWarning")  # torch-internal deprecation notice
def test_stable_sort_is_exported_with_ties_kept_in_index_order(tmp_path):
    class StableArgsort(torch.nn.Module):
        def forward(self, visible: torch.Tensor) -> torch.Tensor:
            return torch.argsort((~visible).to(torch.uint8), dim=1, stable=True)

    from sapiensid_hf.onnx_export import _stable_sort_as_topk

    visible = torch.rand(2, 50, generator=torch.Generator().manual_seed(0)) > 0.5
    path = tmp_path / "argsort.onnx"
    torch.onnx.export(
        StableArgsort().eval(),
        (visible,),
        str(path),
        dynamo=True,
        dynamic_shapes={"visible": {0: torch.export.Dim("batch", min=1)}},
        custom_translation_table={torch.ops.aten.sort.stable: _stable_sort_as_topk},
        verbose=False,
    )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 4):
        sample = torch.rand(batch, 50, generator=torch.Generator().manual_seed(batch)) > 0.4
        (order,) = session.run(None, {session.get_inputs()[0].name: sample.numpy()})
        np.testing.assert_array_equal(order, StableArgsort()(sample).numpy())


def test_every_exporter_failing_raises_and_leaves_no_file(tmp_path, model, monkeypatch):
    def broken(graph, args, input_names, path, opset):
        Path(path).write_bytes(b"half a graph")
        raise RuntimeError("unsupported operator")

    for name in EXPORT_FUNCTIONS:
        monkeypatch.setitem(EXPORT_FUNCTIONS, name, broken)
    path = tmp_path / "model.onnx"
    with pytest.raises(OnnxExportError, match="dynamo: RuntimeError: unsupported operator; torchscript"):
        export_onnx(model, path)
    assert not path.exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"opset": 15}, "GridSample"),
        ({"exporter": "magic"}, "exporter must be"),
        ({"path": "m.pt"}, r"\.onnx"),
    ],
)
def test_bad_export_settings_are_refused(tmp_path, model, kwargs, message):
    path = tmp_path / kwargs.pop("path", "model.onnx")
    with pytest.raises(ValueError, match=message):
        export_onnx(model, path, **kwargs)
