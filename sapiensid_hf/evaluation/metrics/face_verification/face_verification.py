"""Face verification metric: LFW-style 10-fold accuracy (insightface) and TAR@FAR, as an `evaluate`
module. Load it with `evaluate.load("<path to this folder>")`."""

import datasets
import evaluate
import numpy as np

from sapiensid_hf.evaluation.roc import DEFAULT_FARS, tar_at_far
from sapiensid_hf.evaluation.verification import verification_accuracy

_DESCRIPTION = """
10-fold verification accuracy exactly as insightface's `eval/verification.py` (threshold on the squared
L2 distance chosen on the other nine folds), plus TAR at FAR 1e-6 ... 1e-1 from the ROC of the cosine
similarities (insightface IJB rule). Pass L2-normalised embeddings (with flip augmentation:
`sapiensid_hf.evaluation.distance.fuse_flip`).
"""

_KWARGS_DESCRIPTION = """
Args:
    embeddings1, embeddings2: the two embeddings of each pair (lists of floats).
    is_same: True for a genuine pair.
    n_folds: default 10.
    fars: target false-accept rates, default 1e-6 ... 1e-1.
Returns:
    accuracy, accuracy_std, mean_threshold, and `tar@far=<far>` for every target.
"""

_CITATION = """
@techreport{huang2007lfw,
  title={Labeled Faces in the Wild: A Database for Studying Face Recognition in Unconstrained Environments},
  author={Huang, Gary B. and Ramesh, Manu and Berg, Tamara and Learned-Miller, Erik},
  institution={University of Massachusetts, Amherst}, number={07-49}, year={2007}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class FaceVerification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "embeddings1": datasets.Sequence(datasets.Value("float64")),
                    "embeddings2": datasets.Sequence(datasets.Value("float64")),
                    "is_same": datasets.Value("bool"),
                }
            ),
        )

    def _compute(self, embeddings1, embeddings2, is_same, n_folds=10, fars=DEFAULT_FARS):
        first = np.asarray(embeddings1, dtype=np.float64)
        second = np.asarray(embeddings2, dtype=np.float64)
        labels = np.asarray(is_same, dtype=bool)
        results = verification_accuracy(first, second, labels, n_folds=n_folds).to_dict()
        similarity = np.sum(first * second, -1)
        results.update({f"tar@far={far:g}": tar for far, tar in tar_at_far(labels, similarity, fars).items()})
        return results
