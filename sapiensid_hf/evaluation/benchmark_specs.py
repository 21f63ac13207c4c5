"""Which loader and which protocols each benchmark uses, as the official SapiensID evaluators run them.

| benchmark | data | reported (official `tasks/sapiensID/src/evaluations/body_*`) |
| --- | --- | --- |
| `market1501` | Market-1501 query vs bounding_box_test | overall, Market-1501 rule |
| `msmt17` | MSMT17 V1/V2 query vs gallery lists | overall, Market-1501 rule |
| `ltcc` | LTCC query vs test | general + same-clothes (`sc`) + clothes-changing (`cc`), CAL rules |
| `prcc` | PRCC B (same clothes) / C (other clothes) vs A | Market-1501 rule per query set (multi-shot, as CAL and the official code), plus the PRCC paper's single-shot (10 seeded draws) |
| `ccvid` | CCVID query vs gallery, every frame an image | general + `sc` + `cc` (the official image-level evaluation) |
| `ccvid_video` | same, frames averaged per tracklet | general + `sc` + `cc` (CAL video-level style) |
| `verification` | one insightface `.bin` pair file (LFW, CFP-FP, AgeDB-30, ...) | 10-fold accuracy + TAR@FAR |

Every body benchmark uses flip test-time augmentation in the official code; so does the runner by
default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets

from ..data import load_ccvid, load_ltcc, load_market1501, load_msmt17, load_prcc, load_verification_bin


@dataclass(frozen=True)
class RankingEvaluation:
    """One reported ranking result: queries of one role against the gallery of another."""

    name: str
    query_role: str
    gallery_role: str
    protocol: str
    single_shot: bool = False


@dataclass(frozen=True)
class Benchmark:
    name: str
    load: Callable[[Path, str | None], datasets.Dataset]
    rankings: tuple[RankingEvaluation, ...] = ()
    verification: bool = False
    group_column: str | None = None  # embeddings averaged per value of this column (video tracklets)


def _clothes_changing(
    query_role: str = "query", gallery_role: str = "gallery"
) -> tuple[RankingEvaluation, ...]:
    return (
        RankingEvaluation("general", query_role, gallery_role, "general"),
        RankingEvaluation("same_clothes", query_role, gallery_role, "sc"),
        RankingEvaluation("diff_clothes", query_role, gallery_role, "cc"),
    )


_OVERALL = (RankingEvaluation("overall", "query", "gallery", "market1501"),)

BENCHMARKS: dict[str, Benchmark] = {
    "market1501": Benchmark(
        "market1501", lambda root, cache: load_market1501(root, ("query", "gallery"), cache), _OVERALL
    ),
    "msmt17": Benchmark(
        "msmt17", lambda root, cache: load_msmt17(root, ("query", "gallery"), cache_dir=cache), _OVERALL
    ),
    "ltcc": Benchmark(
        "ltcc", lambda root, cache: load_ltcc(root, ("query", "gallery"), cache), _clothes_changing()
    ),
    "prcc": Benchmark(
        "prcc",
        lambda root, cache: load_prcc(root, ("query_same", "query_diff", "gallery"), cache),
        (
            RankingEvaluation("same_clothes", "query_same", "gallery", "market1501"),
            RankingEvaluation("diff_clothes", "query_diff", "gallery", "market1501"),
            RankingEvaluation(
                "same_clothes_single_shot", "query_same", "gallery", "market1501", single_shot=True
            ),
            RankingEvaluation(
                "diff_clothes_single_shot", "query_diff", "gallery", "market1501", single_shot=True
            ),
        ),
    ),
    "ccvid": Benchmark(
        "ccvid", lambda root, cache: load_ccvid(root, ("query", "gallery"), cache), _clothes_changing()
    ),
    "ccvid_video": Benchmark(
        "ccvid_video",
        lambda root, cache: load_ccvid(root, ("query", "gallery"), cache),
        _clothes_changing(),
        group_column="tracklet",
    ),
    "verification": Benchmark(
        "verification", lambda root, cache: load_verification_bin(root, cache), verification=True
    ),
}


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; expected one of {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]
