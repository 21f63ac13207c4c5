"""Optimizer parameter groups and the learning-rate schedule (a pure function of the step)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import HeadConfig, OptimizerConfig, ScheduleConfig

# Parameters that are positions / tokens / gates rather than weights: no weight decay, as for norms and biases.
NO_DECAY_SUFFIXES = ("cls_token", "mask_token", "level_embed", "query_embed", "part_gate", "lambda_q1", "lambda_k1",
                     "lambda_q2", "lambda_k2")  # fmt: skip


def parameter_groups(model: nn.Module, optimizer: OptimizerConfig, head: HeadConfig) -> list[dict]:
    """Backbone weights (decayed), backbone norms / biases / tokens (not decayed), and the class centres.

    Each group carries `lr_multiplier`, applied on top of the schedule every step.
    """
    decay, no_decay, centres = [], [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if name.startswith("head."):  # the margin head's class centres (the backbone's own head is "backbone.head")
            centres.append(parameter)
        elif parameter.ndim <= 1 or name.endswith(NO_DECAY_SUFFIXES):
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    groups = [
        {"params": decay, "weight_decay": optimizer.weight_decay, "lr_multiplier": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "lr_multiplier": 1.0},
        {"params": centres, "weight_decay": optimizer.weight_decay, "lr_multiplier": head.lr_multiplier},
    ]
    return [group for group in groups if group["params"]]


def build_optimizer(model: nn.Module, optimizer: OptimizerConfig, head: HeadConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, optimizer, head)
    fused = optimizer.fused or None  # None: torch's own choice (the per-tensor loop on the CPU), as before the option
    if optimizer.name == "sgd":
        return torch.optim.SGD(groups, lr=optimizer.lr, momentum=optimizer.momentum, fused=fused)
    return torch.optim.AdamW(groups, lr=optimizer.lr, betas=tuple(optimizer.betas), eps=optimizer.eps, fused=fused)


def scheduled_lr(step: int, base_lr: float, schedule: ScheduleConfig) -> float:
    """Linear warm-up over `warmup_steps`, then cosine / linear decay to `min_lr_ratio` x base, or constant."""
    if step < schedule.warmup_steps:
        return base_lr * (step + 1) / schedule.warmup_steps
    if schedule.decay == "constant":
        return base_lr
    span = max(1, schedule.max_steps - schedule.warmup_steps)
    progress = min(1.0, (step - schedule.warmup_steps) / span)
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if schedule.decay == "cosine" else 1 - progress
    return base_lr * (schedule.min_lr_ratio + (1 - schedule.min_lr_ratio) * shape)


def margin_fraction(step: int, warmup_steps: int) -> float:
    """Fraction of the AdaFace margin at `step` (0-based): linear from 1 / warmup_steps to 1, then 1."""
    return 1.0 if warmup_steps <= 0 else min(1.0, (step + 1) / warmup_steps)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_multiplier", 1.0)


__all__ = ["build_optimizer", "margin_fraction", "parameter_groups", "scheduled_lr", "set_learning_rate"]
