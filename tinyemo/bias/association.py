"""Association analysis: does a concept (or an image group) move the model's prediction
toward an emotion *beyond* what the true labels explain?

For one predictor x (a concept score, or a 0/1 group indicator) and one emotion e, let
y = 1 when the model predicts e. Both are centred within each true-label stratum, which
removes everything the true label explains. What is left is a stratified statistic

    T = sum_s sum_{i in s} (x_i - mean_s x) (y_i - mean_s y),

from which two effect sizes follow:
- `rate_shift` = T / sum_s sum_i (x_i - mean_s x)^2: the stratified regression slope of y on x.
  For a 0/1 group it is the Mantel-Haenszel risk difference: how many percentage points
  more often images *with* the attribute are predicted e than images *without* it that have
  the same true label. For a z-scored concept score it is the change per standard deviation.
- `partial_r`: the correlation of x and y after removing the true label (a partial
  correlation with the label as a categorical covariate), comparable across predictors.

p-values come from a permutation test that shuffles the predictions *within* each
true-label stratum (the null: given its true label, an image's prediction does not depend on
x). The test is one-sided (x raises P(pred = e)): a bias is a push toward an emotion, and
every push away from one emotion is a push toward another. Each pair's p is
(1 + #{T_perm >= T}) / (1 + B). p-values are then corrected for the number of pairs tested,
by Benjamini-Hochberg (false discovery rate, the default) or Holm (family-wise error); both
keep the chance of flagging anything at all under a complete null at most alpha.

Concepts get a second null. A concept's score can predict the prediction without its
*meaning* playing any part (every direction of the projected space carries some of the
image), so a concept is only credited when it also beats meaningless phrases: `null` holds
the scores of random phrases built the same way, and a concept pair's specificity p-value
is the upper tail of its partial r under a normal fitted to the null phrases' partial r for
that emotion (the partial r of many phrases is close to normal; the fit resolves p-values
below 1/R, which the correction for hundreds of pairs needs). The p-value reported is
the larger of the two (an intersection-union test: significant only if both nulls are
rejected).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import sparse, stats

from tinyemo.errors import TinyEmoError

CORRECTIONS = ("bh", "holm")
MIN_NULL = 200  # null predictors needed to fit the null's mean and spread


class AssociationError(ValueError, TinyEmoError):
    """Inputs of the association analysis that do not fit together."""


def _check_inputs(x: np.ndarray, true: np.ndarray, pred: np.ndarray, n_labels: int) -> None:
    if x.ndim != 2:
        raise AssociationError(f"predictors must be a 2-D array [images, predictors], got shape {x.shape}")
    n = x.shape[0]
    if true.shape != (n,) or pred.shape != (n,):
        raise AssociationError(
            f"true labels {true.shape} and predictions {pred.shape} must both have one entry "
            f"per image ({n} images)"
        )
    for name, labels in (("true labels", true), ("predictions", pred)):
        if labels.size and (labels.min() < 0 or labels.max() >= n_labels):
            raise AssociationError(f"{name} must be label ids in [0, {n_labels}); got {labels.min()}..{labels.max()}")
    if not np.isfinite(x).all():
        raise AssociationError("predictors contain NaN or infinite values")


def centre_within(values: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """`values` [N, M] minus the mean of their stratum (row groups given by `strata` [N])."""
    centred = values.astype(np.float64).copy()
    for stratum in np.unique(strata):
        rows = strata == stratum
        centred[rows] -= centred[rows].mean(axis=0)
    return centred


def one_hot(labels: np.ndarray, n_labels: int) -> np.ndarray:
    out = np.zeros((len(labels), n_labels))
    out[np.arange(len(labels)), labels] = 1.0
    return out


def stratified_permutations(strata: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` permutations [n, N] of range(N), each shuffling indices only within their stratum."""
    order = np.argsort(strata, kind="stable")
    keys = strata[None, :].astype(np.float64) * 2.0 + rng.random((n, len(strata)))
    shuffled = np.argsort(keys, axis=1)  # grouped by stratum like `order`, random inside
    perms = np.empty_like(shuffled)
    perms[:, order] = shuffled
    return perms


def permutation_pvalues(xc: np.ndarray, hits: np.ndarray, strata: np.ndarray, n_permutations: int,
                        seed: int, chunk: int = 512) -> np.ndarray:
    """One-sided p [M, K] of T = xc^T hits against shuffles of `hits` rows within strata.

    `xc` must be centred within strata; then centring `hits` changes no T (a within-stratum
    shuffle keeps every stratum's mean), so the 0/1 indicators are shuffled as they are.
    """
    n, m = xc.shape
    k = hits.shape[1]
    labels = hits.argmax(axis=1)
    x32 = np.ascontiguousarray(xc.T, dtype=np.float32)
    observed = (xc.T @ hits).astype(np.float32)
    tolerance = 1e-4 * (np.abs(observed) + 1.0)
    exceed = np.zeros((m, k))
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_permutations:
        size = min(chunk, n_permutations - done)
        shuffled = labels[stratified_permutations(strata, size, rng)]  # [size, N]
        columns = (np.arange(size)[None, :] * k + shuffled.T).ravel()  # image i -> (perm, label)
        rows = np.repeat(np.arange(n), size)
        indicators = sparse.csr_matrix((np.ones(n * size, dtype=np.float32), (rows, columns)),
                                       shape=(n, size * k))
        permuted = (indicators.T @ x32.T).T.reshape(m, size, k)
        exceed += (permuted >= (observed - tolerance)[:, None, :]).sum(axis=1)
        done += size
    return (1.0 + exceed) / (1.0 + n_permutations)


def adjust_pvalues(pvalues: np.ndarray, method: str = "bh") -> np.ndarray:
    """Multiplicity-adjusted p-values (same shape): `bh` Benjamini-Hochberg (scipy's
    `false_discovery_control`) or `holm` (Holm's step-down: the i-th smallest p times
    m - i + 1, made non-decreasing, capped at 1)."""
    if method not in CORRECTIONS:
        raise AssociationError(f"unknown correction {method!r}; valid: {', '.join(CORRECTIONS)}")
    flat = np.asarray(pvalues, dtype=np.float64).ravel()
    if flat.size == 0:
        return flat.reshape(np.shape(pvalues))
    if method == "bh":
        return stats.false_discovery_control(flat, method="bh").reshape(np.shape(pvalues))
    # scipy has no Holm; statsmodels' multipletests does, but is a large dependency for 4 lines
    order = np.argsort(flat, kind="stable")
    adjusted = np.maximum.accumulate(flat[order] * (flat.size - np.arange(flat.size)))
    out = np.empty(flat.size)
    out[order] = np.minimum(adjusted, 1.0)
    return out.reshape(np.shape(pvalues))


def partial_correlations(xc: np.ndarray, yc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, rate shift, partial r) [M, K] from predictors and hits both centred within strata."""
    statistic = xc.T @ yc
    x_var = (xc ** 2).sum(axis=0)[:, None]
    y_var = (yc ** 2).sum(axis=0)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(x_var > 0, statistic / x_var, 0.0)
        partial_r = np.where((x_var > 0) & (y_var > 0), statistic / np.sqrt(x_var * y_var), 0.0)
    return statistic, shift, partial_r


def specificity_pvalues(partial_r: np.ndarray, null_r: np.ndarray) -> np.ndarray:
    """p [M, K]: upper normal tail of each partial r among the null predictors' (`null_r`
    [R, K]); the normal fit lets a few thousand null phrases resolve p-values far below 1/R."""
    mean, spread = null_r.mean(axis=0), null_r.std(axis=0, ddof=1)
    return stats.norm.sf((partial_r - mean[None, :]) / np.where(spread > 0, spread, 1.0)[None, :])


def check_resolution(n_permutations: int, n_tests: int, alpha: float) -> None:
    """Refuse a permutation count whose smallest p could never survive the correction."""
    needed = int(np.ceil(n_tests / alpha))
    if n_permutations < needed:
        raise AssociationError(
            f"{n_permutations} permutations cannot flag anything among {n_tests} tests at "
            f"alpha {alpha} (the smallest p is 1/(1 + permutations)); use at least {needed}"
        )


def group_indicators(values: dict[str, Sequence[str]]) -> tuple[np.ndarray, list[str]]:
    """0/1 columns `attribute=value`, one per value seen, from per-image attribute values."""
    columns, names = [], []
    for attribute, per_image in values.items():
        per_image = np.asarray(per_image)
        for value in sorted(set(per_image.tolist())):
            columns.append((per_image == value).astype(np.float64))
            names.append(f"{attribute}={value}")
    if not columns:
        raise AssociationError("no attribute values to compare groups on")
    return np.stack(columns, axis=1), names


def associate(
    x: np.ndarray,
    true: np.ndarray,
    pred: np.ndarray,
    predictor_names: Sequence[str],
    label_names: Sequence[str],
    *,
    n_permutations: int = 2000,
    correction: str = "bh",
    alpha: float = 0.05,
    seed: int = 0,
    null: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per (predictor, emotion): effect sizes, evidence counts, p, adjusted q, flag.

    `x` [N, M] holds the predictors (z-scored concept scores or 0/1 group indicators),
    `true` and `pred` [N] label ids into `label_names`; `null` [N, R] optional scores of
    meaningless predictors (see the module doc). Rows are sorted flagged first, then by the
    size of the effect.
    """
    x = np.asarray(x, dtype=np.float64)
    true, pred = np.asarray(true), np.asarray(pred)
    n_labels = len(label_names)
    _check_inputs(x, true, pred, n_labels)
    if x.shape[1] != len(predictor_names):
        raise AssociationError(f"{x.shape[1]} predictor columns but {len(predictor_names)} names")

    hits = one_hot(pred, n_labels)
    xc, yc = centre_within(x, true), centre_within(hits, true)
    _, shift, partial_r = partial_correlations(xc, yc)
    check_resolution(n_permutations, x.shape[1] * n_labels, alpha)
    pvalues = permutation_pvalues(xc, hits, true, n_permutations, seed)
    if null is not None:
        if null.shape[1] < MIN_NULL:
            raise AssociationError(f"{null.shape[1]} null predictors are too few to fit their "
                                   f"spread; give at least {MIN_NULL}")
        null_r = partial_correlations(centre_within(np.asarray(null, dtype=np.float64), true), yc)[2]
        specific = specificity_pvalues(partial_r, null_r)
        pvalues = np.maximum(pvalues, specific)
    qvalues = adjust_pvalues(pvalues, correction)

    # Evidence: among the images "high" on x (the group, or the top quartile of a score), how
    # many are predicted e, against how many their true labels alone would lead one to expect.
    high = _high_rows(x)
    rate_by_label = _rate_by_label(hits, true, n_labels)  # [labels, emotions]
    observed = high.T @ hits
    expected = high.T @ rate_by_label[true]
    table = pd.DataFrame({
        "predictor": np.repeat(list(predictor_names), n_labels),
        "emotion": np.tile(list(label_names), len(predictor_names)),
        "rate_shift": shift.ravel(),
        "partial_r": partial_r.ravel(),
        "n_high": np.repeat(high.sum(axis=0), n_labels).astype(int),
        "observed": observed.ravel().astype(int),
        "expected": expected.ravel(),
        "p": pvalues.ravel(),
        "q": qvalues.ravel(),
    })
    if null is not None:
        table.insert(table.columns.get_loc("p"), "p_null", specific.ravel())
    table["flagged"] = table["q"] <= alpha
    return rank(table)


def rank(table: pd.DataFrame) -> pd.DataFrame:
    """Flagged rows first, then the largest standardised effect."""
    ordered = table.sort_values(["flagged", "partial_r", "rate_shift"], ascending=[False, False, False])
    return ordered.reset_index(drop=True)


def _high_rows(x: np.ndarray) -> np.ndarray:
    binary = np.isin(x, (0.0, 1.0)).all(axis=0)
    quartile = np.quantile(x, 0.75, axis=0) if len(x) else np.zeros(x.shape[1])
    return np.where(binary[None, :], x, (x >= quartile[None, :]).astype(np.float64))


def _rate_by_label(hits: np.ndarray, true: np.ndarray, n_labels: int) -> np.ndarray:
    rates = np.zeros((n_labels, hits.shape[1]))
    for label in np.unique(true):
        rates[label] = hits[true == label].mean(axis=0)
    return rates
