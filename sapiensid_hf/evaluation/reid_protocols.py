"""Which gallery items count as true matches ("good") or are removed ("junk") for one query.

The rules, for a query with person id p, camera c and clothes k, over gallery items (p', c', k'):

| protocol | good | junk (removed before ranking) | reference |
| --- | --- | --- | --- |
| `market1501` | p'=p, c'!=c | p'=p, c'=c | torchreid / fast-reid `eval_market1501` |
| `general` | same as `market1501` | same as `market1501` | CAL `evaluate` (LTCC/PRCC/CCVID "general") |
| `cc` | p'=p, c'!=c, k'!=k | p'=p and (c'=c or k'=k) | CAL `evaluate_with_clothes(mode='CC')` |
| `sc` | p'=p, c'!=c, k'=k | p'=p and (c'=c or k'!=k) | CAL `evaluate_with_clothes(mode='SC')` |
| `ignore_camera` | p'=p | nothing | official SapiensID `metric_gpu.evaluate(ignore_cam=True)`, used when a set has no cameras |

Items of other identities are never junk: they stay in the ranking as distractors. In every protocol
good and junk together are exactly the gallery items of the query's person, so junk is never built
explicitly: it is "same person, not good".
"""

from __future__ import annotations

import numpy as np
import torch

RANKING_PROTOCOLS = ("market1501", "general", "cc", "sc", "ignore_camera")
CLOTHES_PROTOCOLS = ("cc", "sc")


class NoValidQueryError(ValueError):
    """Raised when no query has a true match under the chosen protocol, with the reason."""


def check_protocol(protocol: str) -> str:
    if protocol not in RANKING_PROTOCOLS:
        raise ValueError(
            f"unknown ranking protocol {protocol!r}; expected one of {', '.join(RANKING_PROTOCOLS)}"
        )
    return protocol


def match_masks(
    protocol: str,
    query_pids: torch.Tensor,
    gallery_pids: torch.Tensor,
    query_camids: torch.Tensor,
    gallery_camids: torch.Tensor,
    query_clothes: torch.Tensor | None,
    gallery_clothes: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean (num_query, num_gallery) masks `(good, same_person)` for a block of queries.

    Junk is `same_person & ~good`: every protocol splits the query's own person into the two.
    """
    same_pid = query_pids[:, None] == gallery_pids[None, :]
    if protocol == "ignore_camera":
        return same_pid, same_pid
    other_cam = query_camids[:, None] != gallery_camids[None, :]
    if protocol in ("market1501", "general"):
        return same_pid & other_cam, same_pid
    same_clothes = query_clothes[:, None] == gallery_clothes[None, :]
    if protocol == "cc":
        return same_pid & other_cam & ~same_clothes, same_pid
    return same_pid & other_cam & same_clothes, same_pid


def explain_no_valid_query(
    protocol: str,
    query_pids: np.ndarray,
    gallery_pids: np.ndarray,
    query_camids: np.ndarray,
    gallery_camids: np.ndarray,
    query_clothes: np.ndarray | None,
    gallery_clothes: np.ndarray | None,
) -> str:
    """A sentence saying why every query was skipped, for the error message."""
    num_query = len(query_pids)
    shared = np.isin(query_pids, gallery_pids)
    if not shared.any():
        return (
            f"none of the {num_query} query person ids occurs in the gallery "
            f"(query ids e.g. {np.unique(query_pids)[:5].tolist()}, gallery ids e.g. "
            f"{np.unique(gallery_pids)[:5].tolist()}); check that query and gallery come from the same split"
        )
    cams = np.unique(np.concatenate([query_camids, gallery_camids]))
    if cams.size == 1:
        return (
            f"every query and gallery camid is {int(cams[0])}, and protocol {protocol!r} removes gallery images "
            "of the query's person taken by the query's camera, so nothing is left to match; if this set has "
            "no camera labels use protocol='ignore_camera'"
        )
    if protocol in ("market1501", "general"):
        return (
            "every gallery image of each query's person was taken by the query's own camera, and protocol "
            f"{protocol!r} removes those (same pid and same camid)"
        )
    clothes = np.unique(np.concatenate([query_clothes, gallery_clothes]))
    if clothes.size == 1:
        return (
            f"every clothes id is {int(clothes[0])}"
            + (" (unknown)" if clothes[0] == -1 else "")
            + f", so protocol {protocol!r} cannot tell same from changed clothes; use 'general' or give clothes ids"
        )
    wanted = "different" if protocol == "cc" else "the same"
    return (
        f"no query has a gallery image of its person wearing {wanted} clothes from another camera, "
        f"which protocol {protocol!r} requires"
    )
