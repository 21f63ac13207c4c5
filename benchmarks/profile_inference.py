"""Where SapiensID inference spends its CPU time: torch.profiler's top operators, as a markdown table.

    python benchmarks/profile_inference.py [--depth 6] [--batch 4] [--top 12] [--code-root DIR]

Base width (512, 16 heads, 384 px, 32 px patches, KP-RPE on), random weights, half full-body and half
upper-body keypoints, eval mode, no masking; one warm-up forward, then `--repeats` profiled forwards.
Each row: the operator, its input shapes (which say what it is: e.g. `[B, L, H*bins]` gathers are the
KP-RPE bias), its self CPU time per forward and its share. `--code-root` profiles the model code of
another checkout (its `modeling/` folder), e.g. a `git worktree` of an older commit, to compare
before / after a change in the same conditions.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from model_inputs import full_body, upper_body  # noqa: E402


def load_modeling(code_root: Path | None):
    if code_root is None:
        return importlib.import_module("sapiensid_hf.modeling")
    sys.path.insert(0, str(code_root))
    return importlib.import_module("modeling")  # the flat folder, imported as a top-level package


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--code-root", type=Path, default=None, help="checkout whose modeling/ to profile")
    args = parser.parse_args()

    modeling = load_modeling(args.code_root)
    torch.manual_seed(0)
    config = modeling.SapiensIDConfig(num_hidden_layers=args.depth, output_dim=512, drop_path_rate=0.0)
    model = modeling.SapiensIDModel(config).eval()
    poses = [full_body(), upper_body()]
    keypoints = torch.stack([poses[index % 2] for index in range(args.batch)])
    pixels = torch.randn(args.batch, 3, config.image_size, config.image_size)
    with torch.no_grad():
        model(pixels, keypoints)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiled:
            for _ in range(args.repeats):
                model(pixels, keypoints)
    events = profiled.key_averages(group_by_input_shape=True)
    total = sum(event.self_cpu_time_total for event in events)
    rows = sorted(events, key=lambda event: -event.self_cpu_time_total)[: args.top]
    source = args.code_root or ROOT
    print(
        f"`python benchmarks/profile_inference.py --depth {args.depth} --batch {args.batch}` on {source.name}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}: {total / 1000 / args.repeats:.0f} ms of "
        "operator time per forward."
    )
    print()
    print("| operator | input shapes | ms / forward | share |")
    print("| --- | --- | --- | --- |")
    for event in rows:
        shapes = ", ".join(str(shape) for shape in event.input_shapes if shape)
        share = event.self_cpu_time_total / total
        print(f"| {event.key} | {shapes} | {event.self_cpu_time_total / 1000 / args.repeats:.1f} | {share:.1%} |")


if __name__ == "__main__":
    main()
