"""Evaluation results as files: JSON, a markdown table, CMC and ROC plots (matplotlib, Agg backend)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .roc import roc_curve

RANK_COLUMNS = ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")


def _percent(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def figure_cell(values: dict[str, Any], metric: str, digits: int = 2) -> str:
    """`values[metric]` in percent, with its interval (intervals.py) in brackets when the record has one."""
    value = values.get(metric)
    if value is None:
        return "-"
    cell = f"{100 * value:.{digits}f}"
    interval = values.get("intervals", {}).get(metric)
    return cell if interval is None else f"{cell} ({100 * interval[0]:.{digits}f}-{100 * interval[1]:.{digits}f})"


def interval_words(settings: dict[str, Any]) -> str:
    """What the brackets of a results table are (intervals.py, the record's `intervals` settings), in words."""
    return (
        f"In brackets: {100 * settings['level']:g} % intervals, percentile bootstrap of {settings['resamples']} draws "
        f"(seed {settings['seed']}): rankings over the query people, each with all of their queries; pairs drawn "
        "again one by one, same-person and different-person ones apart, accuracy at the thresholds the folds chose "
        '(docs/evaluation.md, "Intervals").'
    )


def markdown_table(results: dict) -> str:
    """Ranking rows (percent) and / or the verification row, under a title naming model and data."""
    lines = [f"### {results['benchmark']}: {results['model']}", "", f"Data: `{results['dataset_root']}`"]
    lines.append(f"Flip test-time augmentation: {'on' if results['flip'] else 'off'}. Numbers in percent.")
    lines += _ranking_table(results.get("rankings", {}))
    settings = results.get("rerank")
    if results.get("rankings_reranked") and settings:
        lines += ["", f"After {rerank_words(settings)}:", *_ranking_table(results["rankings_reranked"])]
    verification = results.get("verification")
    if verification:
        fars = [key for key in verification if key.startswith("tar@far=")]
        lines += [
            "",
            "| pairs | accuracy | std | " + " | ".join(f"TAR@FAR={key.split('=')[1]}" for key in fars) + " |",
            "| --- | --- | --- | " + " | ".join("---" for _ in fars) + " |",
            f"| {verification['num_pairs']} | {figure_cell(verification, 'accuracy')} | "
            f"{_percent(verification['accuracy_std'])} | "
            + " | ".join(figure_cell(verification, k) for k in fars)
            + " |",
        ]
    if results.get("intervals"):
        lines += ["", interval_words(results["intervals"])]
    missing = results.get("photos_without_person")
    if missing:
        counts = ", ".join(f"{role} {entry['count']} of {entry['of']}" for role, entry in missing.items())
        lines += ["", f"Photos in which the detector found nobody: {counts}; {nobody_rule(results.get('standing_person_prior', False))}."]
    return "\n".join(lines) + "\n"


def _ranking_table(rankings: dict) -> list[str]:
    """The markdown rows of one set of rankings (percent), and why any of them was not scored."""
    if not rankings:
        return []
    lines = [
        "",
        "| evaluation | protocol | queries (valid) | gallery | rank-1 | rank-5 | rank-10 | rank-20 | mAP | mINP |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in rankings.items():
        counts = f"{row['num_queries']} ({row.get('num_valid_queries', 0 if 'error' in row else '-')})"
        if "error" in row:
            cells = " | ".join(["not scored (see below)"] + ["-"] * (len(RANK_COLUMNS) - 1))
        else:
            cells = " | ".join(figure_cell(row, column) for column in RANK_COLUMNS)
        lines.append(f"| {name} | {row['protocol']} | {counts} | {row['num_gallery']} | {cells} |")
    unscored = [(name, row["error"]) for name, row in rankings.items() if "error" in row]
    if unscored:
        lines += ["", "Not scored:"] + [f"- {name}: {reason}" for name, reason in unscored]
    return lines


def rerank_words(settings: dict) -> str:
    """The re-ranking a results record names (its `rerank` settings), in words."""
    return (
        f"k-reciprocal re-ranking (Zhong et al. 2017; k1 {settings['k1']}, k2 {settings['k2']}, "
        f"lambda {settings['lambda_value']})"
    )


def nobody_rule(standing_person_prior: bool) -> str:
    """How the photos in which the detector found nobody were scored."""
    if standing_person_prior:
        return "scored with the keypoints of a standing person filling the crop (the standing-person prior)"
    return "scored, but every such photo gets the same embedding"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def plot_cmc(curves: dict[str, np.ndarray], path: Path, title: str) -> Path:
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    figure, axis = plt.subplots(figsize=(6, 4.5))
    for name, cmc in curves.items():
        ranks = np.arange(1, len(cmc) + 1)
        axis.plot(
            ranks,
            100 * np.asarray(cmc),
            marker="o",
            markersize=2.5,
            label=f"{name} (rank-1 {100 * cmc[0]:.1f})",
        )
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("rank")
    axis.set_ylabel("matching rate (%)")
    axis.set_title(title)
    axis.grid(True, alpha=0.3)
    if curves:  # no curve (no query could be scored): an empty plot without a legend
        axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_roc(labels: np.ndarray, scores: np.ndarray, path: Path, title: str) -> Path:
    plt = _pyplot()
    fpr, tpr, _ = roc_curve(labels, scores)
    figure, axis = plt.subplots(figsize=(6, 4.5))
    shown = fpr > 0  # a log axis cannot show FPR = 0
    axis.plot(fpr[shown], 100 * tpr[shown])
    axis.set_xscale("log")
    axis.set_xlabel("false accept rate")
    axis.set_ylabel("true accept rate (%)")
    axis.set_title(title)
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_json(results: dict, path: Path) -> Path:
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    return path
