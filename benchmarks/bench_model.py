"""Model speed: masked training steps against the FLOP bound, inference against transformers' ViTModel.

    python benchmarks/bench_model.py [--depth 6] [--batch 8] [--repeats 3] [--write docs/benchmarks.md]
                                     [--previous-code DIR] [--config-from MODEL_FOLDER]

Train-step time (forward + backward) at several mask ratios is compared with the unmasked step in
the same run, beside the FLOP ratio of the same configurations (torch's FLOP counter), so the
figure of merit is (time speed-up) / (FLOP speed-up): 1.0 means masking saves exactly the work it
removes. Inference embeddings/s is compared with a ViTModel of the same width, depth and token
count, with 16 px patches (the usual ViT) and with 32 px patches (the same 3072-wide patch projection as
the retina patches). `--previous-code DIR` also times the model code of another checkout (its
`modeling/` folder, e.g. a `git worktree` of an older commit) with the same weights and inputs, and
checks that both give the same embeddings. The backbone is full width (512, 16 heads, 384 px, 32 px patches); depth and the head's
output size are reduced so a CPU run takes minutes (figures are ratios, so this is fair). `--config-from` times
the shape of a model folder instead (e.g. pretrained/sapiensid-small, the shipped default; random weights, its
own depth), in its own section.
"""

import argparse
import importlib
import math
import sys
from pathlib import Path

import torch
from markdown_report import publish_section
from timing import best_of_interleaved_rounds
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from transformers import ViTConfig, ViTModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from model_inputs import full_body, upper_body  # noqa: E402

from sapiensid_hf.modeling import SapiensIDConfig, SapiensIDModel  # noqa: E402

MASK_RATIOS = (0.0, 0.33, 0.66, 0.8)
SECTION = "## Model"


def flops(step) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def inference_flops(forward) -> int:
    """FLOPs of one forward, attention included: torch's counter sees attention's matmuls only when
    scaled_dot_product_attention runs as its math decomposition (the fused CPU kernel is not counted)."""
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]):
        return flops(forward)


def vit_like(config: SapiensIDConfig, tokens: int, patch: int, batch: int) -> tuple[ViTModel, torch.Tensor]:
    """transformers' ViTModel of SapiensID's width and depth with a square grid of about `tokens` patches, and
    a random batch for it."""
    side = round(math.sqrt(tokens))
    vit_config = ViTConfig(
        hidden_size=config.hidden_size, num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size, image_size=side * patch, patch_size=patch, qkv_bias=False,
    )
    return ViTModel(vit_config, add_pooling_layer=False).eval(), torch.randn(batch, 3, side * patch, side * patch)


def vit_tokens(vit: ViTModel) -> int:
    """Sequence length of a ViTModel: its patches and CLS."""
    return vit.embeddings.patch_embeddings.num_patches + 1


def official_size_flop_bound() -> float:
    """ViTModel's FLOPs / SapiensID's at the official size (depth 24, 4096-d head), one image of each pose."""
    model = SapiensIDModel(SapiensIDConfig(drop_path_rate=0.0)).eval()
    pixels, keypoints = inputs(2, model.config.image_size)
    with torch.no_grad():
        kept = int((model(pixels, keypoints).token_ids >= 0).sum(dim=1).float().mean())
    vit, vit_pixels = vit_like(model.config, kept, 16, batch=2)
    return inference_flops(lambda: vit(vit_pixels)) / inference_flops(lambda: model(pixels, keypoints))


def inputs(batch: int, size: int):
    poses = [full_body(), upper_body()]
    keypoints = torch.stack([poses[i % 2] for i in range(batch)])
    return torch.randn(batch, 3, size, size), keypoints


def train_step(model, pixels, keypoints, ratio):
    def step():
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        model(pixels, keypoints, mask_ratio=ratio).embeddings.square().mean().backward()

    return step


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", type=Path, default=None, help="markdown file to update (section '## Model')")
    parser.add_argument("--previous-code", type=Path, default=None, help="checkout whose modeling/ to compare with")
    parser.add_argument("--config-from", type=Path, default=None, help="model folder whose shape to time (--depth ignored)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.config_from is not None:
        config = SapiensIDConfig.from_pretrained(args.config_from, drop_path_rate=0.0)
    else:
        config = SapiensIDConfig(num_hidden_layers=args.depth, output_dim=512, drop_path_rate=0.0)
    section = SECTION if args.config_from is None else f"{SECTION}: {args.config_from.name}"
    # Augmentation off so every ratio processes the same boxes; dropout-free for stable timing.
    config.keypoint_drop_prob = config.part_drop_prob = config.box_drop_prob = 0.0
    model = SapiensIDModel(config).train()
    pixels, keypoints = inputs(args.batch, config.image_size)

    rows = []
    base_time = base_flops = None
    for ratio in MASK_RATIOS:
        step = train_step(model, pixels, keypoints, ratio)
        seconds, work = best_of_interleaved_rounds({"step": step}, args.repeats)["step"], flops(step)
        base_time, base_flops = base_time or seconds, base_flops or work
        speedup, flop_speedup = base_time / seconds, base_flops / work
        tokens = model(pixels, keypoints, mask_ratio=ratio).token_ids.shape[1]
        rows.append((ratio, tokens, seconds, speedup, flop_speedup, speedup / flop_speedup))
        print(f"mask {ratio:.2f}: {tokens} tokens, {seconds:.3f} s/step, speed-up {speedup:.2f}x, FLOP bound {flop_speedup:.2f}x")

    model.eval()
    with torch.no_grad():
        kept = int((model(pixels, keypoints).token_ids >= 0).sum(dim=1).float().mean())
        steps = {}
        for patch in sorted({16, config.patch_size}):
            vit, vit_pixels = vit_like(config, kept, patch, args.batch)
            steps[f"vit{patch}"] = lambda vit=vit, vit_pixels=vit_pixels: vit(vit_pixels)
        vit_length = vit_tokens(vit)  # the same for both patch sizes
        steps["ours"] = lambda: model(pixels, keypoints)
        # The same model without KP-RPE shows what the keypoint bias (a gather per layer) costs.
        plain = SapiensIDModel(SapiensIDConfig(**{**config.to_diff_dict(), "use_kprpe": False})).eval()
        steps["without_kprpe"] = lambda: plain(pixels, keypoints)
        difference = None
        if args.previous_code is not None:
            sys.path.insert(0, str(args.previous_code))
            old_modeling = importlib.import_module("modeling")  # the other checkout's flat folder
            old_model = old_modeling.SapiensIDModel(old_modeling.SapiensIDConfig(**config.to_diff_dict())).eval()
            old_model.load_state_dict(model.state_dict())
            difference = float((old_model(pixels, keypoints).embeddings - model(pixels, keypoints).embeddings).abs().max())
            steps["previous"] = lambda: old_model(pixels, keypoints)
        seconds = best_of_interleaved_rounds(steps, args.repeats)
        work = {name: inference_flops(step) for name, step in steps.items()}
    vit_rate, ours_rate = args.batch / seconds["vit16"], args.batch / seconds["ours"]

    def row(label: str, tokens: str, name: str) -> str:
        # FLOP bound: the speed a model would have if it ran its FLOPs exactly as fast as ViTModel runs its own.
        rate = args.batch / seconds[name]
        bound = work["vit16"] / work[name]
        bold = "**" if name == "ours" else ""
        return (
            f"| {label} | {tokens} | {work[name] / args.batch / 1e9:.1f} | {rate:.2f} | {bold}{rate / vit_rate:.2f}{bold} | "
            f"{bound:.2f} | {rate / vit_rate / bound:.2f} |"
        )

    print(f"inference: SapiensID {ours_rate:.2f} img/s ({kept} tokens), ViTModel {vit_rate:.2f} img/s ({vit_length} tokens)")

    shape_option = f" --config-from {args.config_from}" if args.config_from else f" --depth {args.depth}"
    patch_dim = config.num_channels * config.patch_size**2
    lines = [
        section,
        "",
        f"`python benchmarks/bench_model.py{shape_option} --batch {args.batch} --repeats {args.repeats}"
        f"{f' --previous-code {args.previous_code}' if args.previous_code else ''}` on {torch.get_num_threads()} CPU threads "
        f"(torch {torch.__version__}); width {config.hidden_size}, {config.num_attention_heads} heads, {config.image_size} px, "
        f"{config.patch_size} px patches, depth {config.num_hidden_layers}, head output {config.output_dim}.",
        "",
        "| mask ratio | kept tokens | train step (s) | speed-up vs ratio 0 | FLOP-bound speed-up | fraction of FLOP bound |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {r:.2f} | {t} | {s:.3f} | {a:.2f}x | {b:.2f}x | {c:.2f} |" for r, t, s, a, b, c in rows]
    lines += [
        "",
        f"Ratio 0 keeps every visible retina token (padded to the longest image). Inference, batch {args.batch}, same run "
        f"(best of {args.repeats} rounds, each round timing every model once in turn):",
        "",
        "| model | tokens | GFLOP / image | embeddings / s | x ViTModel (16 px patches) | FLOP bound (ViTModel's FLOPs / the model's) | fraction of FLOP bound |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        row("transformers ViTModel, 16 px patches", str(vit_length), "vit16"),
        *([row(f"transformers ViTModel, {config.patch_size} px patches (a {patch_dim}-wide patch projection, as the retina patches)",
               str(vit_length), f"vit{config.patch_size}")] if config.patch_size != 16 else []),
        row("SapiensID", f"{kept} + CLS + MASK", "ours"),
        row("SapiensID without KP-RPE", f"{kept} + CLS + MASK", "without_kprpe"),
    ]
    if difference is not None:
        lines.append(
            row(f"SapiensID, code of {args.previous_code.name} (same weights; embeddings differ by at most {difference:.1e})",
                f"{kept} + CLS + MASK", "previous")
        )
    lines += [
        "",
        "What SapiensID computes beyond a ViT of the same tokens: KP-RPE's per-layer bias (an MLP output of "
        "H x buckets values per token and a (B, H, L, L) gather, which the official model also computes), "
        f"the retina sampling of three ROI levels, the {patch_dim}-wide patch projection and the Semantic Attention "
        "Head; the profile is in the section below. FLOP bound: the speed the model would have if it ran its "
        "FLOPs (attention included, counted by torch's FLOP counter on attention's math form) exactly as fast as "
        "ViTModel runs its own; an implementation that computes the same numbers can pass it only with "
        "kernels faster than ViTModel's. At the official size (depth 24, 4096-d head) the FLOP bound is "
        f"{official_size_flop_bound():.2f}.",
        "",
    ]
    return publish_section(lines, section, args.write)


if __name__ == "__main__":
    main()
