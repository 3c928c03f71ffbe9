"""The logistic probe: multinomial logistic regression on L2-normalised features, its C chosen
by cross-validation once per feature set, on the accelerator when there is one.

The objective is scikit-learn's `LogisticRegression` (multinomial, L2 penalty, lbfgs):

    mean_i CE(x_i W + b, y_i) + ||W||^2 / (2 C n)        (n training rows; b not penalised)

Both solvers minimise it with the same optimizer, scipy's L-BFGS-B with scikit-learn's
tolerances, warm starts and iteration cap; they differ in where the objective and its
gradient are computed, the only work that grows with the rows:

- `sklearn` (on a CPU): scikit-learn's own `LogisticRegressionCV` and `LogisticRegression`,
  the per-row loss on the process's torch thread count (`base.threads`). On a CPU it is the
  faster of the two: torch's MKL is 2-3 times slower than OpenBLAS on these skinny products
  (rows x features times features x classes) on the default profile's AMD CPU.
- `torch` (on a GPU): the objective in torch, float64, on the device; each L-BFGS iteration
  moves only the parameters (features x classes numbers) between the optimizer and the GPU,
  so its cost hardly grows with the rows until the GPU is busy (WEBEmo: ~200k rows x 768).

`solver=None` picks `torch` where `default_device()` is cuda, else `sklearn`.
benchmarks/logistic_probe.py fits both on the Emotion6 features and prints C, top-1 with n
and 95 % intervals, agreement and time side by side.

`search` picks C from a grid by stratified k-fold cross-validation on the rows given
(accuracy summed over folds; ties go to the earlier C), each C of a fold starting from the
solution of the C before it (`LogisticRegressionCV`'s path; the torch solver walks it the
same way), then refits the chosen C on every row from zeros. `searched` remembers its
results in memory, keyed by a hash of the features and labels and by the grid, folds, seed
and solver: in one process, the projector stage's selection and its baselines, and the
paper_table stage's probe of a dataset in every training group, share one search per
feature set.
"""
from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from tinyemo.projector.train import default_device

DEFAULT_CS = tuple(float(c) for c in np.logspace(-1, 3, 9))  # the grid of C (inverse penalty)
TOLERANCE = 1.0e-4  # L-BFGS-B stops when the largest gradient entry is below this (scikit-learn's tol)
MAX_ITER = 3000  # L-BFGS iterations per fit at most
SOLVERS = ("sklearn", "torch")


def default_solver() -> str:
    return "torch" if default_device().type == "cuda" else "sklearn"


@dataclass
class Probe:
    """A fitted probe: `predict(pooled)` -> label ids (np.ndarray)."""

    C: float
    iterations: int  # L-BFGS iterations of its fit
    weight: torch.Tensor | None = None  # torch solver: [D, K] (float64, CPU)
    bias: torch.Tensor | None = None  # [K]
    estimator: object = None  # sklearn solver: the fitted LogisticRegression

    def predict(self, pooled: torch.Tensor) -> np.ndarray:
        if self.estimator is not None:
            return self.estimator.predict(F.normalize(pooled.float(), dim=1).numpy())
        x = F.normalize(pooled.double(), dim=1)
        return (x @ self.weight + self.bias).argmax(dim=1).numpy()


class SklearnSolver:
    """scikit-learn: `LogisticRegressionCV` for the path of C, `LogisticRegression` for a fit.

    BLAS runs on one thread: these products are skinny (rows x features times features x
    classes), and OpenBLAS's spinning threads made a search 30 times slower when the two
    cores were shared with another process; the per-row loss runs on the process's torch
    thread count (OpenMP)."""

    def __init__(self, pooled: torch.Tensor, labels: torch.Tensor, n_classes: int):
        self.x = F.normalize(pooled.float(), dim=1).numpy()
        self.y = labels.long().numpy()

    @contextlib.contextmanager
    def _threads(self):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"), \
                threadpool_limits(limits=torch.get_num_threads(), user_api="openmp"):
            yield

    def fit(self, rows: np.ndarray, C: float) -> Probe:
        from sklearn.linear_model import LogisticRegression

        with self._threads():
            model = LogisticRegression(C=C, max_iter=MAX_ITER, tol=TOLERANCE).fit(self.x[rows], self.y[rows])
        return Probe(float(C), int(np.max(model.n_iter_)), estimator=model)

    def cv_path(self, Cs: Sequence[float], splits: list) -> tuple[np.ndarray, list[int]]:
        """(accuracy [C, fold], iterations) of every C on every split's scoring rows."""
        from sklearn.linear_model import LogisticRegressionCV

        with self._threads():
            found = LogisticRegressionCV(Cs=list(Cs), cv=splits, max_iter=MAX_ITER, tol=TOLERANCE, scoring="accuracy",
                                         l1_ratios=(0.0,), use_legacy_attributes=False).fit(self.x, self.y)
        scores = np.asarray(found.scores_).reshape(len(splits), len(Cs))  # [fold, (l1 ratio 0: L2), C]
        return scores.T, [int(n) for n in np.asarray(found.n_iter_).ravel()]


class TorchSolver:
    """The same optimizer, the objective and its gradient computed by torch on `device`."""

    def __init__(self, pooled: torch.Tensor, labels: torch.Tensor, n_classes: int,
                 device: str | torch.device | None = None):
        self.device = torch.device(device) if device is not None else default_device()
        self.x = F.normalize(pooled.to(self.device, torch.float64), dim=1)
        self.y = labels.long().to(self.device)
        self.k = n_classes

    def fit(self, rows: np.ndarray, C: float, start: Probe | None = None) -> Probe:
        """Fitted on `rows` at `C`, from zeros or from `start`'s solution."""
        from scipy.optimize import minimize

        index = torch.as_tensor(rows, device=self.device)
        x, onehot = self.x[index], F.one_hot(self.y[index], self.k).to(torch.float64)
        (n, d), k = x.shape, self.k
        strength = 1.0 / (C * n)  # the penalty ||W||^2 / (2 C n)

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            params = torch.from_numpy(theta).to(self.device)
            weight, bias = params[:-k].view(d, k), params[-k:]
            log_p = (x @ weight + bias).log_softmax(dim=1)
            loss = -(onehot * log_p).sum() / n + 0.5 * strength * weight.square().sum()
            residual = (log_p.exp() - onehot) / n  # d mean CE / d logits
            gradient = torch.cat([(x.T @ residual + strength * weight).ravel(), residual.sum(dim=0)])
            return float(loss), gradient.cpu().numpy()

        theta0 = (torch.cat([start.weight.ravel(), start.bias]).numpy() if start is not None
                  else np.zeros(d * k + k))
        result = minimize(objective, theta0, method="L-BFGS-B", jac=True,
                          options={"maxiter": MAX_ITER, "maxls": 50, "gtol": TOLERANCE,
                                   "ftol": 64 * np.finfo(float).eps})
        params = torch.from_numpy(result.x)
        return Probe(float(C), int(result.nit), weight=params[:-k].view(d, k).clone(), bias=params[-k:].clone())

    def accuracy(self, probe: Probe, rows: np.ndarray) -> float:
        index = torch.as_tensor(rows, device=self.device)
        logits = self.x[index] @ probe.weight.to(self.device) + probe.bias.to(self.device)
        return float((logits.argmax(dim=1) == self.y[index]).double().mean())

    def cv_path(self, Cs: Sequence[float], splits: list) -> tuple[np.ndarray, list[int]]:
        """As `LogisticRegressionCV`: per split, the Cs in order, each from the last one's solution."""
        accuracy, iterations = np.zeros((len(Cs), len(splits))), []
        for f, (fit_rows, score_rows) in enumerate(splits):
            probe = None
            for i, C in enumerate(Cs):
                probe = self.fit(fit_rows, float(C), probe)
                iterations.append(probe.iterations)
                accuracy[i, f] = self.accuracy(probe, score_rows)
        return accuracy, iterations


def make_solver(pooled: torch.Tensor, labels: torch.Tensor, solver: str | None = None,
                n_classes: int | None = None) -> SklearnSolver | TorchSolver:
    solver = solver or default_solver()
    if solver not in SOLVERS:
        raise ValueError(f"unknown logistic solver {solver!r}; valid: {', '.join(SOLVERS)}")
    k = n_classes or int(labels.max()) + 1
    return (SklearnSolver if solver == "sklearn" else TorchSolver)(pooled, labels, k)


def fit(pooled: torch.Tensor, labels: torch.Tensor, C: float, solver: str | None = None) -> Probe:
    """The probe at a given C, fitted on every row."""
    return make_solver(pooled, labels, solver).fit(np.arange(len(labels)), C)


@dataclass
class Search:
    """The C chosen by cross-validation and the probe refitted with it on every row."""

    probe: Probe
    solver: str
    Cs: tuple[float, ...]
    cv_accuracy: list[list[float]]  # [C][fold]
    seconds: float  # the search and the refit
    iterations: list[int] = field(default_factory=list)  # per fit, in the order fitted

    @property
    def C(self) -> float:
        return self.probe.C


def search(pooled: torch.Tensor, labels: torch.Tensor, *, Cs: Sequence[float] = DEFAULT_CS, folds: int = 5,
           seed: int = 0, solver: str | None = None) -> Search:
    """Choose C by stratified `folds`-fold CV (seeded), then refit it on every row."""
    from sklearn.model_selection import StratifiedKFold

    started = time.perf_counter()
    solver = solver or default_solver()
    fitter = make_solver(pooled, labels, solver)
    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
                  .split(np.zeros(len(labels)), labels.numpy()))
    accuracy, iterations = fitter.cv_path(Cs, splits)
    best = int(np.argmax(accuracy.sum(axis=1)))  # the first of tied sums: the earlier C
    probe = fitter.fit(np.arange(len(labels)), float(Cs[best]))
    return Search(probe, solver, tuple(float(c) for c in Cs), accuracy.tolist(),
                  time.perf_counter() - started, [*iterations, probe.iterations])


_SEARCHES: dict[str, Search] = {}


def search_key(pooled: torch.Tensor, labels: torch.Tensor, Cs: Sequence[float], folds: int, seed: int,
               solver: str) -> str:
    """A hash of the features, the labels and every setting the search depends on."""
    digest = hashlib.sha256()
    for tensor in (pooled, labels):
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    digest.update(repr((tuple(float(c) for c in Cs), folds, seed, solver, TOLERANCE, MAX_ITER)).encode())
    return digest.hexdigest()


def searched(pooled: torch.Tensor, labels: torch.Tensor, *, Cs: Sequence[float] = DEFAULT_CS, folds: int = 5,
             seed: int = 0, solver: str | None = None) -> Search:
    """`search`, run once per feature set and settings in this process, then remembered."""
    solver = solver or default_solver()
    key = search_key(pooled, labels, Cs, folds, seed, solver)
    if key not in _SEARCHES:
        _SEARCHES[key] = search(pooled, labels, Cs=Cs, folds=folds, seed=seed, solver=solver)
    return _SEARCHES[key]
