"""Person re-identification ranking metric (CMC rank-k, mAP, mINP) as an `evaluate` module.

Load it with `evaluate.load("<path to this folder>")`. Queries are the rows you add; the gallery is
passed to `compute`.
"""

import datasets
import evaluate
import numpy as np

from sapiensid_hf.evaluation.cuhk03 import evaluate_cuhk03_single_gallery_shot
from sapiensid_hf.evaluation.distance import distance_matrix
from sapiensid_hf.evaluation.ranking import evaluate_ranking

_DESCRIPTION = """
Ranks the gallery by distance to every query and reports CMC (rank-1/5/10/20), mAP and mINP, with the
Market-1501 rule (gallery images of the query's person from the query's camera are removed), the same
numbers as torchreid / fast-reid. `protocol="ignore_camera"` keeps every image of the person as a
match (sets without camera labels); `protocol="cuhk03"` gives CUHK03 single-gallery-shot CMC.
"""

_KWARGS_DESCRIPTION = """
Args:
    query_embeddings: one embedding (list of floats) per query.
    query_pids: person id of each query.
    query_camids: camera id of each query.
    gallery_embeddings: (num_gallery, dim) array, passed to `compute`.
    gallery_pids, gallery_camids: ids of the gallery images, passed to `compute`.
    protocol: "market1501" (default), "ignore_camera" or "cuhk03".
    metric: "cosine" (default) or "euclidean" (squared L2).
    max_rank: CMC length, default 50.
    seed: random seed of the CUHK03 draws (default 0).
Returns:
    rank1, rank5, rank10, rank20, mAP, mINP (fractions), num_valid_queries, num_skipped_queries.
Example:
    >>> metric = evaluate.load("sapiensid_hf/evaluation/metrics/reid_ranking")
    >>> metric.compute(query_embeddings=[[1.0, 0.0]], query_pids=[7], query_camids=[0],
    ...                gallery_embeddings=[[1.0, 0.1], [0.0, 1.0]], gallery_pids=[7, 3], gallery_camids=[1, 1])["rank1"]
    1.0
"""

_CITATION = """
@inproceedings{zheng2015scalable,
  title={Scalable Person Re-identification: A Benchmark},
  author={Zheng, Liang and Shen, Liyue and Tian, Lu and Wang, Shengjin and Wang, Jingdong and Tian, Qi},
  booktitle={ICCV}, year={2015}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ReidRanking(evaluate.Metric):
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
                }
            ),
        )

    def _compute(
        self,
        query_embeddings,
        query_pids,
        query_camids,
        gallery_embeddings,
        gallery_pids,
        gallery_camids,
        protocol="market1501",
        metric="cosine",
        max_rank=50,
        seed=0,
    ):
        distmat = distance_matrix(
            np.asarray(query_embeddings, np.float32), np.asarray(gallery_embeddings, np.float32), metric
        )
        if protocol == "cuhk03":
            result = evaluate_cuhk03_single_gallery_shot(
                distmat, query_pids, gallery_pids, query_camids, gallery_camids, max_rank=max_rank, seed=seed
            )
        else:
            result = evaluate_ranking(
                distmat,
                query_pids,
                gallery_pids,
                query_camids,
                gallery_camids,
                protocol=protocol,
                max_rank=max_rank,
            )
        return result.to_dict()
