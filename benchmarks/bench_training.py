"""Training throughput and peak memory at several mask ratios and with the variable ratio.

    python benchmarks/bench_training.py [--depth 4] [--batch 8] [--rounds 3] [--write docs/benchmarks.md]

One full training step of the trainer's model is timed: SapiensID forward with masking, AdaFace head
(1000 classes), backward, AdamW update, on synthetic inputs (data loading is not part of it). The model
keeps the base width and token layout (512 wide, 16 heads, 384 px, 32 px patches: 3 x 144 = 432
retina tokens) with fewer layers and a 512-d head output, so a CPU run takes minutes; every figure is
reported against mask ratio 0 measured in the same run.

Images/s are measured in one process, in rounds that run every configuration in turn (so load from
other programs hits all of them alike), and the median round is reported. Peak memory is measured in a
separate worker process per configuration: after one pass over its steps has allocated the gradients
and the AdamW state (kept), the peak of a second pass above that level, i.e. the activation memory of
a training step: on CPU the peak resident set (VmHWM, reset after `malloc_trim`), on CUDA
`torch.cuda.max_memory_allocated`. Weights + gradients + AdamW state are the same in every row and
are given once.

The variable ratio draws its steps' kept-token counts from the training schedule (`MaskingSchedule`,
mean 0.34 T, batch rescaled to keep tokens per step constant), so its images/s counts the images of
every drawn batch.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from markdown_report import update_section  # noqa: E402
from model_inputs import full_body, upper_body  # noqa: E402

from sapiensid_hf.modeling import SapiensIDConfig, SapiensIDModel  # noqa: E402
from sapiensid_hf.training import AdaFaceHead, MaskingSchedule, SapiensIDForRecognitionTraining  # noqa: E402

SECTION = "## Training"
CONFIGURATIONS = ("0.0", "0.33", "0.66", "0.8", "variable")
NUM_CLASSES = 1000


def build(depth: int, device: torch.device) -> tuple[SapiensIDForRecognitionTraining, torch.optim.Optimizer]:
    torch.manual_seed(0)
    config = SapiensIDConfig(num_hidden_layers=depth, output_dim=512, drop_path_rate=0.0)
    model = SapiensIDForRecognitionTraining(SapiensIDModel(config), AdaFaceHead(512, NUM_CLASSES)).to(device).train()
    return model, torch.optim.AdamW(model.parameters(), lr=1e-4)


def inputs(batch: int, size: int, device: torch.device) -> dict[str, torch.Tensor]:
    poses = [full_body(), upper_body()]
    return {
        "pixel_values": torch.randn(batch, 3, size, size, device=device),
        "keypoints": torch.stack([poses[i % 2] for i in range(batch)]).to(device),
        "labels": torch.arange(batch, device=device) % NUM_CLASSES,
    }


def process_memory(field: str) -> int:
    """VmRSS / VmHWM of this process in bytes (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_resident_memory() -> None:
    """Give freed heap pages back to the OS, then restart the peak-RSS counter (Linux >= 4.0)."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def plans_for(configuration: str, tokens: int, batch: int, variable_steps: int) -> list:
    if configuration == "variable":
        schedule = MaskingSchedule(tokens, batch, mode="variable", seed=0)
        return [schedule.at(step) for step in range(variable_steps)]
    return [MaskingSchedule(tokens, batch, mode="fixed", mask_ratio=float(configuration)).at(0)]


class Stepper:
    """One model + optimizer; runs training steps for any plan."""

    def __init__(self, depth: int, device: torch.device, keep_gradients: bool = False):
        self.device = device
        self.keep_gradients = keep_gradients
        self.model, self.optimizer = build(depth, device)
        config = self.model.backbone.config
        self.tokens = config.num_levels * config.tokens_per_level
        self.data: dict[int, dict[str, torch.Tensor]] = {}

    def __call__(self, plan) -> float:
        """Seconds of one step."""
        if plan.batch_size not in self.data:
            self.data[plan.batch_size] = inputs(plan.batch_size, self.model.backbone.config.image_size, self.device)
        self.synchronize()
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=not self.keep_gradients)
        self.model(**self.data[plan.batch_size], mask_ratio=plan.mask_ratio)["loss"].mean().backward()
        self.optimizer.step()
        self.synchronize()
        return time.perf_counter() - start

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def memory_worker(configuration: str, depth: int, batch: int, variable_steps: int) -> dict[str, float]:
    """Activation memory of one configuration's steps.

    A first pass allocates the gradients (kept between steps) and the AdamW state; the second pass's peak
    above that is what the configuration's forward + backward add.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    stepper = Stepper(depth, device, keep_gradients=True)
    plans = plans_for(configuration, stepper.tokens, batch, variable_steps)
    for plan in plans:
        stepper(plan)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        reset_peak_resident_memory()
        before = process_memory("VmRSS")
    for plan in plans:
        stepper(plan)
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else process_memory("VmHWM")
    static = sum(p.numel() * p.element_size() for p in stepper.model.parameters()) * 4  # weights, grads, 2 moments
    return {"peak_bytes": max(0, peak - before), "static_bytes": static}


def measure_speed(args: argparse.Namespace, device: torch.device) -> dict[str, dict[str, float]]:
    """Images/s per configuration: interleaved rounds in one process, median over rounds.

    Interleaving spreads any load from other programs over every configuration alike.
    """
    stepper = Stepper(args.depth, device)
    plans = {name: plans_for(name, stepper.tokens, args.batch, args.variable_steps) for name in CONFIGURATIONS}
    for name in CONFIGURATIONS:
        stepper(plans[name][0])  # warm-up, not timed
    rates: dict[str, list[float]] = {name: [] for name in CONFIGURATIONS}
    for _ in range(args.rounds):
        for name in CONFIGURATIONS:
            seconds = sum(stepper(plan) for plan in plans[name])
            rates[name].append(sum(plan.batch_size for plan in plans[name]) / seconds)
    results = {}
    for name in CONFIGURATIONS:
        images = sum(plan.batch_size for plan in plans[name])
        results[name] = {
            "images_per_s": statistics.median(rates[name]),
            "kept_tokens": sum(plan.kept_tokens * plan.batch_size for plan in plans[name]) / images,
            "mean_batch": images / len(plans[name]),
            "tokens": stepper.tokens,
        }
    return results


def run_memory_worker(configuration: str, args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, __file__, "--memory_worker", configuration, "--depth", str(args.depth),
               "--batch", str(args.batch), "--variable_steps", str(args.variable_steps)]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (median reported)")
    parser.add_argument("--variable_steps", type=int, default=6, help="steps drawn from the variable schedule per round")
    parser.add_argument("--write", type=Path, default=None, help="markdown file to update (section '## Training')")
    parser.add_argument("--memory_worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker:
        print(json.dumps(memory_worker(args.memory_worker, args.depth, args.batch, args.variable_steps)))
        return ""

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results = measure_speed(args, device)
    for name in CONFIGURATIONS:
        results[name].update(run_memory_worker(name, args))
        result = results[name]
        print(f"{name:>8}: {result['images_per_s']:.2f} img/s, peak +{result['peak_bytes'] / 2**20:.0f} MiB, "
              f"{result['kept_tokens']:.0f} kept tokens, mean batch {result['mean_batch']:.1f}", flush=True)  # fmt: skip
    base = results["0.0"]
    where = f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if device.type == "cuda":
        where = f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    lines = [
        SECTION,
        "",
        f"`python benchmarks/bench_training.py --depth {args.depth} --batch {args.batch} --rounds {args.rounds}` on {where}. "
        f"One training step (forward with masking, AdaFace over {NUM_CLASSES} classes, backward, AdamW) of a model with "
        f"the base width and token layout (512 wide, 16 heads, 384 px, 32 px patches: {base['tokens']} retina tokens), "
        f"depth {args.depth}, head output 512; synthetic inputs, half full-body and half upper-body keypoints. "
        f"Images/s: median of {args.rounds} rounds that run every configuration in turn in one process. Peak memory: "
        "activation memory of a training step, measured in a separate process per configuration as the peak above "
        "the level reached once gradients and AdamW state exist (resident set on CPU, `max_memory_allocated` on "
        f"CUDA); weights + gradients + AdamW state add {base['static_bytes'] / 2**20:.0f} MiB to every row.",
        "",
        "| mask ratio | kept tokens / image | images per step | images / s | x ratio 0 | step activation peak (MiB) | x ratio 0 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, result in results.items():
        label = "variable (exp., mean 0.34 T)" if name == "variable" else f"{float(name):.2f}"
        memory_ratio = result["peak_bytes"] / base["peak_bytes"] if base["peak_bytes"] else float("nan")
        lines.append(
            f"| {label} | {result['kept_tokens']:.0f} | {result['mean_batch']:.1f} | {result['images_per_s']:.2f} | "
            f"{result['images_per_s'] / base['images_per_s']:.2f}x | {result['peak_bytes'] / 2**20:.0f} | {memory_ratio:.2f}x |"
        )
    lines += [
        "",
        "Ratio 0 keeps every visible retina token. The variable ratio draws the first "
        f"{args.variable_steps} steps of the training schedule (seed 0) and rescales each batch to batch x n_ref / n "
        f"(n_ref = {int(base['tokens'] * 0.34)} tokens, clamped to [2, {4 * args.batch}]); its kept tokens are "
        "averaged per image, and its peak memory is that of its largest batch. Timings come from a shared machine: "
        "compare the ratios within one run, not the seconds.",
        "",
    ]
    section = "\n".join(lines)
    if args.write:
        update_section(args.write, SECTION, section)
    print(section)
    return section


if __name__ == "__main__":
    main()
