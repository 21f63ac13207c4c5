"""TAR@FAR from verification scores (insightface IJB-B / IJB-C rule), as an `evaluate` module.
Load it with `evaluate.load("<path to this folder>")`."""

import datasets
import evaluate

from sapiensid_hf.evaluation.roc import DEFAULT_FARS, tar_at_far

_DESCRIPTION = """
True-accept rate at target false-accept rates from the ROC of similarity scores (scikit-learn
`roc_curve` points; for each target the point with the closest FPR, the highest TPR among ties), as the
insightface IJB evaluation prints it.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: similarity score of each pair (higher = more likely the same identity).
    references: 1 for a genuine pair, 0 for an impostor pair.
    fars: target false-accept rates, default 1e-6 ... 1e-1.
Returns:
    `tar@far=<far>` for every target.
"""

_CITATION = """
@inproceedings{maze2018iarpa,
  title={IARPA Janus Benchmark-C: Face Dataset and Protocol},
  author={Maze, Brianna and others}, booktitle={ICB}, year={2018}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TarAtFar(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, fars=DEFAULT_FARS):
        return {f"tar@far={far:g}": tar for far, tar in tar_at_far(references, predictions, fars).items()}
