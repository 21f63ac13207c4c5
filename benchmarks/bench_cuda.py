"""SapiensID on a CUDA GPU: inference and training speed (float32, bfloat16), and CUDA against CPU embeddings.

    python benchmarks/bench_cuda.py [--depth 24] [--batch 64] [--repeats 10] [--write docs/benchmarks.md]
    python benchmarks/bench_cuda.py --device cpu --depth 1 --batch 2 --repeats 1   # dry run, no GPU

One prepared script for a session that is lent a GPU (nothing in the tests depends on it):

1. Inference, full base width (512, 16 heads, 384 px, 32 px patches) at `--depth` layers and a
   512-d head output, against transformers' ViTModel with the same width, depth and token count,
   float32 and bfloat16 (`model.to(torch.bfloat16)`), SDPA attention, rounds interleaved so the ratios
   come from the same minutes.
2. CUDA against CPU: the same float32 weights and inputs on both devices; the largest difference of the
   L2-normalised embeddings must be <= 1e-4 (TF32 off), and the bfloat16 model's cosine to float32.
3. Training steps (forward with masking, AdaFace over 1000 classes, backward, AdamW) at mask ratios
   0 and 0.66, float32 and bfloat16 autocast.

Absolute figures are printed (images/s), beside ratios to ViTModel measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from markdown_report import publish_section
from timing import best_of_interleaved_rounds
from transformers import ViTModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bench_model import inputs, vit_like, vit_tokens  # noqa: E402

from sapiensid_hf.modeling import SapiensIDConfig, SapiensIDModel  # noqa: E402
from sapiensid_hf.training import AdaFaceHead, SapiensIDForRecognitionTraining  # noqa: E402

SECTION = "## CUDA"
CPU_TOLERANCE = 1e-4
TRAIN_RATIOS = (0.0, 0.66)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_inputs(batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)  # the same pixels for the CPU and the device run
    return inputs(batch, size)


def sapiensid(depth: int) -> SapiensIDModel:
    torch.manual_seed(0)
    model = SapiensIDModel(SapiensIDConfig(num_hidden_layers=depth, output_dim=512, drop_path_rate=0.0)).eval()
    with torch.no_grad():  # KP-RPE's output is zero-initialised: give the bias values, as a trained model has
        for parameter in model.keypoint_rpe.fc2.parameters():
            parameter.normal_(std=0.02)
    return model


def inference_rows(args, device: torch.device) -> tuple[list[str], dict[str, float]]:
    model = sapiensid(args.depth).to(device)
    config = model.config
    pixels, keypoints = model_inputs(args.batch, config.image_size)
    pixels, keypoints = pixels.to(device), keypoints.to(device)
    with torch.no_grad():
        kept = int((model(pixels, keypoints).token_ids >= 0).sum(dim=1).float().mean())
    vit, vit_pixels = vit_like(config, kept, 16, args.batch)
    vit, vit_pixels = vit.to(device), vit_pixels.to(device)
    half_model = sapiensid(args.depth).to(device).to(torch.bfloat16)
    half_vit = ViTModel(vit.config, add_pooling_layer=False).eval().to(device).to(torch.bfloat16)
    steps = {
        "vit_fp32": lambda: vit(vit_pixels),
        "ours_fp32": lambda: model(pixels, keypoints),
        "vit_bf16": lambda: half_vit(vit_pixels.bfloat16()),
        "ours_bf16": lambda: half_model(pixels.bfloat16(), keypoints),
    }
    with torch.no_grad():
        seconds = best_of_interleaved_rounds(steps, args.repeats, lambda: synchronize(device))
        reference = F.normalize(model(pixels, keypoints).embeddings.float(), dim=-1)
        half = F.normalize(half_model(pixels.bfloat16(), keypoints).embeddings.float(), dim=-1)
    rate = {name: args.batch / value for name, value in seconds.items()}
    rows = [
        f"Inference, batch {args.batch}, depth {args.depth}, best of {args.repeats} interleaved rounds "
        f"({kept} kept tokens + CLS + MASK; ViTModel {vit_tokens(vit)} tokens, 16 px patches):",
        "",
        "| model | dtype | embeddings / s | x ViTModel (same dtype) |",
        "| --- | --- | --- | --- |",
    ]
    for dtype in ("fp32", "bf16"):
        rows.append(f"| transformers ViTModel | {dtype} | {rate['vit_' + dtype]:.1f} | 1.00 |")
        rows.append(f"| SapiensID | {dtype} | {rate['ours_' + dtype]:.1f} | **{rate['ours_' + dtype] / rate['vit_' + dtype]:.2f}** |")
    cosine = float((half * reference).sum(dim=1).min())
    return rows, {"bf16_cosine": cosine}


def cpu_agreement(args, device: torch.device) -> tuple[float, float]:
    """Largest difference of normalised and raw float32 embeddings, device against CPU."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = sapiensid(args.depth)
    pixels, keypoints = model_inputs(min(args.batch, 4), model.config.image_size)
    with torch.no_grad():
        on_cpu = model(pixels, keypoints).embeddings
        on_device = model.to(device)(pixels.to(device), keypoints.to(device)).embeddings.cpu()
    normalised = float((F.normalize(on_device, dim=-1) - F.normalize(on_cpu, dim=-1)).abs().max())
    return normalised, float((on_device - on_cpu).abs().max())


def training_rows(args, device: torch.device) -> list[str]:
    torch.manual_seed(0)
    config = SapiensIDConfig(num_hidden_layers=args.depth, output_dim=512, drop_path_rate=0.0)
    model = SapiensIDForRecognitionTraining(SapiensIDModel(config), AdaFaceHead(512, 1000)).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    pixels, keypoints = model_inputs(args.batch, config.image_size)
    batch = {"pixel_values": pixels.to(device), "keypoints": keypoints.to(device),
             "labels": torch.arange(args.batch, device=device) % 1000}  # fmt: skip

    def step(ratio: float, bfloat16: bool):
        def run():
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
                loss = model(**batch, mask_ratio=ratio)["loss"].mean()
            loss.backward()
            optimizer.step()
        return run

    steps = {(ratio, half): step(ratio, half) for ratio in TRAIN_RATIOS for half in (False, True)}
    seconds = best_of_interleaved_rounds(steps, max(1, args.repeats // 2), lambda: synchronize(device))
    rows = [
        f"Training step (forward with masking, AdaFace 1000 classes, backward, AdamW), batch {args.batch}, depth {args.depth}:",
        "",
        "| mask ratio | precision | images / s | x float32 at ratio 0 |",
        "| --- | --- | --- | --- |",
    ]
    base = args.batch / seconds[(0.0, False)]
    for (ratio, half), value in seconds.items():
        rate = args.batch / value
        rows.append(f"| {ratio:.2f} | {'bf16 autocast' if half else 'fp32'} | {rate:.1f} | {rate / base:.2f}x |")
    return rows


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run of the script")
    parser.add_argument("--depth", type=int, default=24)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--write", type=Path, default=None, help="markdown file to update (section '## CUDA')")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device: this benchmark needs a GPU (--device cpu runs it as a dry run)")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run)"
    inference, extra = inference_rows(args, device)
    normalised, raw = cpu_agreement(args, device)
    agreement = "PASS" if normalised <= CPU_TOLERANCE else "FAIL"
    lines = [
        SECTION,
        "",
        f"`python benchmarks/bench_cuda.py --depth {args.depth} --batch {args.batch} --repeats {args.repeats}` on {name}, "
        f"torch {torch.__version__}; width 512, 16 heads, 384 px, 32 px patches, head output 512, SDPA attention.",
        "",
        *inference,
        "",
        f"{device.type.upper()} against CPU, float32, the same weights and inputs (TF32 off): largest difference of the normalised "
        f"embeddings {normalised:.1e} (raw {raw:.1e}), tolerance {CPU_TOLERANCE:.0e}: **{agreement}**. bfloat16 against "
        f"float32 on the device: lowest cosine {extra['bf16_cosine']:.5f}.",
        "",
        *training_rows(args, device),
        "",
    ]
    section = publish_section(lines, SECTION, args.write)
    if agreement == "FAIL":
        raise SystemExit(f"CUDA and CPU embeddings differ by {normalised:.1e} > {CPU_TOLERANCE:.0e}")
    return section


if __name__ == "__main__":
    main()
