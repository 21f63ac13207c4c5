"""Clothes-changing re-identification metric (general / same-clothes / clothes-changing), as an
`evaluate` module. Load it with `evaluate.load("<path to this folder>")`."""

import datasets
import evaluate
import numpy as np

from sapiensid_hf.evaluation.distance import distance_matrix
from sapiensid_hf.evaluation.ranking import evaluate_ranking

_DESCRIPTION = """
The three numbers the clothes-changing reference code (CAL / Simple-CCReID `test`) reports for LTCC,
PRCC-style and CCVID evaluations: `general` (Market-1501 rule), `sc` (same clothes only) and `cc`
(clothes-changing only: gallery images of the person in the query's clothes are removed).
"""

_KWARGS_DESCRIPTION = """
Args:
    query_embeddings, query_pids, query_camids, query_clothes_ids: one entry per query.
    gallery_embeddings, gallery_pids, gallery_camids, gallery_clothes_ids: passed to `compute`.
    metric: "cosine" (default) or "euclidean" (squared L2).
    max_rank: CMC length, default 50.
Returns:
    For each of general / sc / cc: `<name>_rank1`, `_rank5`, `_rank10`, `_rank20`, `_mAP`, `_mINP`,
    `_num_valid_queries`, `_num_skipped_queries`. A protocol under which no query is valid gives None
    values and its reason under `<name>_error`.
"""

_CITATION = """
@inproceedings{gu2022clothes,
  title={Clothes-Changing Person Re-identification with RGB Modality Only},
  author={Gu, Xinqian and Chang, Hong and Ma, Bingpeng and Bai, Shutao and Shan, Shiguang and Chen, Xilin},
  booktitle={CVPR}, year={2022}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CcReidRanking(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "query_embeddings": datasets.Sequence(datasets.Value("float32")),
                    "query_pids": datasets.Value("int64"),
                    "query_camids": datasets.Value("int64"),
                    "query_clothes_ids": datasets.Value("int64"),
                }
            ),
        )

    def _compute(
        self,
        query_embeddings,
        query_pids,
        query_camids,
        query_clothes_ids,
        gallery_embeddings,
        gallery_pids,
        gallery_camids,
        gallery_clothes_ids,
        metric="cosine",
        max_rank=50,
    ):
        distmat = distance_matrix(
            np.asarray(query_embeddings, np.float32), np.asarray(gallery_embeddings, np.float32), metric
        )
        results = {}
        for protocol in ("general", "sc", "cc"):
            try:
                summary = evaluate_ranking(
                    distmat,
                    query_pids,
                    gallery_pids,
                    query_camids,
                    gallery_camids,
                    query_clothes_ids,
                    gallery_clothes_ids,
                    protocol=protocol,
                    max_rank=max_rank,
                ).to_dict()
            except ValueError as error:
                summary = {key: None for key in ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")}
                summary["error"] = str(error)
            results.update({f"{protocol}_{key}": value for key, value in summary.items()})
        return results
