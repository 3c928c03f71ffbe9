"""The logistic probe: scikit-learn's search reproduced, the torch solver at the same optimum,
one search per feature set."""
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from tests.projector_helpers import latent_world
from tinyemo.projector import baselines, logistic


def world(n_per_class=40, seed=0):
    features, labels, _ = latent_world(n_per_class=n_per_class, feature_dim=24, noise=0.6, seed=seed)
    return features, labels


def test_the_sklearn_solver_is_scikit_learns_search():
    """C and the refitted weights of LogisticRegressionCV + LogisticRegression, as the probe had them."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    x, y = world()
    found = logistic.search(x, y, folds=3, seed=1, solver="sklearn")
    unit = F.normalize(x.float(), dim=1).numpy()
    reference = LogisticRegressionCV(Cs=list(logistic.DEFAULT_CS), cv=StratifiedKFold(3, shuffle=True, random_state=1),
                                     max_iter=3000, scoring="accuracy", l1_ratios=(0.0,),
                                     use_legacy_attributes=False).fit(unit, y.numpy())
    assert found.C == float(reference.C_)
    refit = LogisticRegression(C=found.C, max_iter=3000).fit(unit, y.numpy())
    assert np.array_equal(found.probe.estimator.coef_, refit.coef_)
    assert np.allclose(np.asarray(found.cv_accuracy).T, np.asarray(reference.scores_).reshape(3, -1))


def test_the_torch_solver_reaches_the_same_optimum():
    x, y = world()
    rows = np.arange(len(y))
    for C in (0.3, 10.0):
        ours = logistic.make_solver(x, y, "torch").fit(rows, C)
        theirs = logistic.make_solver(x, y, "sklearn").fit(rows, C)
        assert (ours.predict(x) == theirs.predict(x)).mean() >= 0.99
        # The same decision function up to a per-row constant (softmax is shift-invariant).
        unit = F.normalize(x.double(), dim=1)
        a = unit @ ours.weight + ours.bias
        estimator = theirs.estimator
        b = unit @ torch.from_numpy(estimator.coef_.T).double() + torch.from_numpy(estimator.intercept_).double()
        centred = lambda z: z - z.mean(dim=1, keepdim=True)  # noqa: E731
        assert torch.allclose(centred(a), centred(b), atol=0.05 * float(centred(b).abs().max()))
    torch_search = logistic.search(x, y, folds=3, seed=1, solver="torch")
    sklearn_search = logistic.search(x, y, folds=3, seed=1, solver="sklearn")
    assert np.abs(np.asarray(torch_search.cv_accuracy) - np.asarray(sklearn_search.cv_accuracy)).max() <= 0.05


def test_one_search_per_feature_set(monkeypatch):
    calls = []
    original = logistic.search

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(logistic, "search", counting)
    monkeypatch.setattr(logistic, "_SEARCHES", {})
    x, y = world(seed=3)
    first = baselines.logistic_regression(x, y, folds=3, seed=0)
    again = baselines.logistic_regression(x.clone(), y.clone(), folds=3, seed=0)  # equal content: reused
    assert len(calls) == 1 and again.details == first.details
    assert (again.predict(x) == first.predict(x)).all()
    baselines.logistic_regression(x, y, folds=3, seed=1)  # other folds: a search of its own
    baselines.logistic_regression(x + 1e-3, y, folds=3, seed=0)  # other features
    assert len(calls) == 3
    baselines.logistic_regression(x, y, folds=3, seed=0, C=1.0)  # C given: a fit, no search
    assert len(calls) == 3


def test_unknown_solver_is_a_clear_error():
    x, y = world(n_per_class=5)
    with pytest.raises(ValueError, match=r"unknown logistic solver 'liblinear'; valid: sklearn, torch"):
        logistic.search(x, y, folds=2, solver="liblinear")
