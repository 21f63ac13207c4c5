"""Face verification: insightface's 10-fold accuracy, scikit-learn's ROC, insightface's TAR@FAR."""

import numpy as np
import pytest
import torch

from sapiensid_hf.evaluation import fuse_flip, kfold_indices, roc_curve, tar_at_far, verification_accuracy


def insightface_calculate_roc(thresholds, embeddings1, embeddings2, actual_issame, nrof_folds=10):
    """insightface `calculate_roc` (pca=0) with scikit-learn KFold(shuffle=False) folds, loop for loop."""

    def calculate_accuracy(threshold, dist, issame):
        predict_issame = np.less(dist, threshold)
        tp = np.sum(np.logical_and(predict_issame, issame))
        fp = np.sum(np.logical_and(predict_issame, np.logical_not(issame)))
        tn = np.sum(np.logical_and(np.logical_not(predict_issame), np.logical_not(issame)))
        fn = np.sum(np.logical_and(np.logical_not(predict_issame), issame))
        tpr = 0 if (tp + fn == 0) else float(tp) / float(tp + fn)
        fpr = 0 if (fp + tn == 0) else float(fp) / float(fp + tn)
        return tpr, fpr, float(tp + tn) / dist.size

    nrof_pairs = len(actual_issame)
    sizes = np.full(nrof_folds, nrof_pairs // nrof_folds)
    sizes[: nrof_pairs % nrof_folds] += 1
    bounds = np.r_[0, np.cumsum(sizes)]
    indices = np.arange(nrof_pairs)
    tprs = np.zeros((nrof_folds, len(thresholds)))
    fprs = np.zeros((nrof_folds, len(thresholds)))
    accuracy = np.zeros(nrof_folds)
    dist = np.sum(np.square(np.subtract(embeddings1, embeddings2)), 1)
    for fold_idx in range(nrof_folds):
        test_set = indices[bounds[fold_idx] : bounds[fold_idx + 1]]
        train_set = np.setdiff1d(indices, test_set)
        acc_train = np.zeros(len(thresholds))
        for threshold_idx, threshold in enumerate(thresholds):
            _, _, acc_train[threshold_idx] = calculate_accuracy(
                threshold, dist[train_set], actual_issame[train_set]
            )
        best_threshold_index = np.argmax(acc_train)
        for threshold_idx, threshold in enumerate(thresholds):
            tprs[fold_idx, threshold_idx], fprs[fold_idx, threshold_idx], _ = calculate_accuracy(
                threshold, dist[test_set], actual_issame[test_set]
            )
        _, _, accuracy[fold_idx] = calculate_accuracy(
            thresholds[best_threshold_index], dist[test_set], actual_issame[test_set]
        )
    return np.mean(tprs, 0), np.mean(fprs, 0), accuracy


def normalized_pairs(rng, num_pairs, dim=16, noise=0.9):
    first = rng.standard_normal((num_pairs, dim))
    same = rng.random(num_pairs) < 0.5
    second = np.where(
        same[:, None],
        first + noise * rng.standard_normal((num_pairs, dim)),
        rng.standard_normal((num_pairs, dim)),
    )
    first /= np.linalg.norm(first, axis=1, keepdims=True)
    second /= np.linalg.norm(second, axis=1, keepdims=True)
    return first, second, same


@pytest.mark.parametrize(("num_pairs", "seed"), [(600, 0), (587, 1), (203, 2)])
def test_accuracy_equals_insightface_loop_bit_for_bit(num_pairs, seed):
    first, second, same = normalized_pairs(np.random.default_rng(seed), num_pairs)
    thresholds = np.arange(0, 4, 0.01)
    tpr, fpr, accuracy = insightface_calculate_roc(thresholds, first, second, same)
    result = verification_accuracy(first, second, same)
    np.testing.assert_array_equal(result.fold_accuracy, accuracy)
    np.testing.assert_array_equal(result.tpr, tpr)
    np.testing.assert_array_equal(result.fpr, fpr)
    assert result.accuracy == np.mean(accuracy)
    assert result.accuracy_std == np.std(accuracy)
    # Each pair's verdict at its own fold's threshold: a fold's share right is that fold's accuracy.
    for fold, (_, test) in enumerate(kfold_indices(num_pairs, 10)):
        assert result.held_out_correct[test].mean() == pytest.approx(accuracy[fold], abs=1e-12)


def test_threshold_is_chosen_on_the_other_folds():
    # Two folds. Fold 0 holds the genuine pairs (distances 0.1, 0.5), fold 1 the impostors (1.5, 3.0).
    # Fold 0 is tested with the threshold fitted on impostors only: the first maximum is 0.00 (nothing
    # accepted), so both genuine pairs are rejected -> 0. Fold 1 is tested with the threshold fitted on
    # genuine pairs only: the first grid value above 0.5 is 0.51, which rejects both impostors -> 1.
    distances = np.array([0.1, 0.5, 1.5, 3.0])
    first = np.zeros((4, 1))
    second = np.sqrt(distances)[:, None]
    result = verification_accuracy(first, second, [True, True, False, False], n_folds=2)
    np.testing.assert_array_equal(result.fold_accuracy, [0.0, 1.0])
    np.testing.assert_allclose(result.fold_threshold, [0.0, 0.51])
    assert (result.accuracy, result.accuracy_std) == (0.5, 0.5)
    np.testing.assert_array_equal(result.held_out_correct, [False, False, True, True])


def test_kfold_indices_match_scikit_learn():
    sklearn_model_selection = pytest.importorskip("sklearn.model_selection")
    for num_items, folds in [(6000, 10), (587, 10), (13, 4), (10, 10)]:
        expected = list(
            sklearn_model_selection.KFold(n_splits=folds, shuffle=False).split(np.arange(num_items))
        )
        for (train, test), (ref_train, ref_test) in zip(
            kfold_indices(num_items, folds), expected, strict=True
        ):
            np.testing.assert_array_equal(train, ref_train)
            np.testing.assert_array_equal(test, ref_test)


def test_bad_verification_inputs_are_named():
    with pytest.raises(ValueError, match="is_same has 2 entries for 3 pairs"):
        verification_accuracy(np.zeros((3, 2)), np.zeros((3, 2)), [True, False])
    with pytest.raises(ValueError, match="cannot split 3 pairs into 10 folds"):
        verification_accuracy(np.zeros((3, 2)), np.zeros((3, 2)), [True, False, True])
    with pytest.raises(ValueError, match="NaN"):
        verification_accuracy(np.full((3, 2), np.nan), np.zeros((3, 2)), [True, False, True], n_folds=1)


def test_fuse_flip_is_the_normalised_sum():
    embeddings = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    flipped = torch.tensor([[0.0, 4.0], [0.0, 2.0]])
    np.testing.assert_allclose(fuse_flip(embeddings, flipped).numpy(), [[0.6, 0.8], [0.0, 1.0]])


# ---------------------------------------------------------------- ROC and TAR@FAR


def test_roc_hand_worked_with_intermediate_points_dropped():
    scores = [0.9, 0.85, 0.8, 0.3, 0.2, 0.1, 0.05]
    labels = [1, 0, 1, 1, 0, 0, 0]
    fpr, tpr, thresholds = roc_curve(labels, scores)
    # (fp, tp) after each distinct score: (0,1) (1,1) (1,2) (1,3) (2,3) (3,3) (4,3); the collinear
    # (1,2), (2,3) and (3,3) are dropped, (0,0) at +inf is prepended.
    np.testing.assert_allclose(fpr, [0, 0, 0.25, 0.25, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 1 / 3, 1, 1])
    np.testing.assert_allclose(thresholds, [np.inf, 0.9, 0.85, 0.3, 0.05])


def test_tar_at_far_takes_the_closest_fpr_and_the_highest_tpr_there():
    scores = [0.9, 0.85, 0.8, 0.3, 0.2, 0.1, 0.05]
    labels = [1, 0, 1, 1, 0, 0, 0]
    tars = tar_at_far(labels, scores, fars=(0.25, 0.1, 1e-6))
    assert tars == {0.25: 1.0, 0.1: pytest.approx(1 / 3), 1e-6: pytest.approx(1 / 3)}


def insightface_tar_at_far(fpr, tpr, far):
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)
    _, min_index = min(list(zip(abs(fpr - far), range(len(fpr)), strict=True)))
    return tpr[min_index]


@pytest.mark.parametrize("seed", range(4))
def test_roc_equals_scikit_learn_and_tar_equals_insightface_rule(seed):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 3000)
    scores = np.round(rng.standard_normal(3000) + labels, 2 if seed % 2 else 12)  # seed 1, 3: many ties
    for drop in (True, False):
        for mine, reference in zip(
            roc_curve(labels, scores, drop),
            metrics.roc_curve(labels, scores, drop_intermediate=drop),
            strict=True,
        ):
            np.testing.assert_array_equal(mine, reference)
    fpr, tpr, _ = metrics.roc_curve(labels, scores)
    for far, tar in tar_at_far(labels, scores).items():
        assert tar == insightface_tar_at_far(fpr, tpr, far)


def test_roc_needs_both_classes():
    with pytest.raises(ValueError, match="every one of the 3 labels is genuine"):
        roc_curve([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="scores contain NaN"):
        roc_curve([1, 0], [0.1, np.nan])
