"""Model selection that transfers: repeated, stratified k-fold cross-validation on train only.

The protocol of the projector stage, for every dataset:

1. `held_out_split` sets data aside before anything else: every split other than `train`
   (the dataset's `test`, and `val` where it exists) is never seen by selection or by the
   shipped projector. A dataset without a `test` split gets one carved here, seeded and
   stratified, from `train` (the one place in the package where this happens).
2. `select` trains every candidate of the grid (its first seed) on k-1 folds of the
   remaining training rows and scores it on the k-th, for `repeats` reshuffles of the folds
   (scikit-learn's `RepeatedStratifiedKFold`); the logistic probe and the nearest centroid
   are fitted and scored on the same folds (the probe's C searched once on all of train,
   a search the held-out comparison reuses: `tinyemo.projector.logistic.searched`).
   The candidate with the highest mean top-1 wins
   (ties: grid order). Its seed ensemble is then scored on the same folds, and the shipped
   projector is the ensemble only if that mean is higher than the single seeds' mean.
3. `refit` trains the winner on every training row, once per seed, for the shipped artifact.

Fold scores are reported as mean ± standard error over folds x repeats. The folds share
training rows, so that standard error is optimistic (it treats folds as independent); the
paired differences between candidates on the same folds (`vs_paper_points`) are the
sharper comparison.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch

from tinyemo.feature_store import FeatureSet
from tinyemo.projector import baselines, study
from tinyemo.projector.anchors import AnchorSet
from tinyemo.projector.ensemble import ensemble_projection
from tinyemo.projector.evaluate import nearest_anchor, project
from tinyemo.projector.hyperparameters import Candidate
from tinyemo.projector.train import threads_per_worker, torch_threads

FOLD = "fold"  # the split name of a fold's scoring rows inside `study.run_recipe`


@dataclass
class Development:
    """What selection and the shipped projector may see (`train`), and what they never see."""

    train: FeatureSet
    held_out: dict[str, FeatureSet]  # test first, then val where present
    test_source: str  # where the test split came from, in words


def _pooled_only(features: FeatureSet) -> FeatureSet:
    return dataclasses.replace(features, patches=None)


def held_out_split(splits: Mapping[str, FeatureSet], test_fraction: float, seed: int) -> Development:
    """Set the held-out data aside; carve a seeded, stratified test split from train if none exists."""
    if "train" not in splits:
        raise ValueError(f"no train split among {sorted(splits)}; run `dvc repro features`")
    train = _pooled_only(splits["train"])
    others = {name: _pooled_only(f) for name, f in splits.items() if name != "train"}
    if "test" in others:
        test, source = others.pop("test"), "the dataset's own test split"
    else:
        from sklearn.model_selection import train_test_split

        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"the test fraction must lie in (0, 1), got {test_fraction}")
        keep, carved = train_test_split(np.arange(len(train)), test_size=test_fraction,
                                        random_state=seed, stratify=train.labels)
        test, train = train.subset(np.sort(carved)), train.subset(np.sort(keep))
        source = f"carved from train ({test_fraction:.0%}, stratified, seed {seed})"
    held_out = {"test": test, **others}
    for name, features in held_out.items():
        shared = set(train.ids) & set(features.ids)
        if shared:
            raise ValueError(f"{len(shared)} image id(s) are in both train and {name} "
                             f"(e.g. {sorted(shared)[0]}); rebuild the features with `dvc repro features`")
    return Development(train, held_out, source)


def fold_rows(labels: Sequence[str], folds: int, repeats: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit rows, score rows) of every fold of every repeat: seeded and stratified by label."""
    from sklearn.model_selection import RepeatedStratifiedKFold

    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), np.asarray(labels)))


def mean_se(values: Sequence[float]) -> dict:
    """Mean and standard error (sample std / sqrt n) of fold scores."""
    values = [float(v) for v in values]
    se = float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")
    return {"mean": float(np.mean(values)), "se": se, "n": len(values)}


def _score_fold(train: FeatureSet, rows, candidates: Mapping[str, Candidate],
                anchor_sets: Mapping[str, AnchorSet], seeds: Sequence[int], lr_c: float | None) -> dict:
    """One fold: per candidate the top-1 and unit projections of each seed on the scoring rows;
    with `lr_c`, the baselines' top-1 too."""
    splits = {"train": train.subset(rows[0]), FOLD: train.subset(rows[1])}
    out: dict[str, dict] = {}
    for name, candidate in candidates.items():
        run = study.run_recipe(name, splits, anchor_sets[name], candidate.recipe, seeds, candidate.template)
        out[name] = {"seeds": [e.top1 for e in run.evaluations[FOLD]],
                     "projections": [project(r.model, splits[FOLD].pooled) for r in run.runs]}
    if lr_c is not None:
        for name, record in study.run_baselines(splits, folds=2, seed=0, C=lr_c).items():  # C given: no search
            out[name] = {"seeds": [record[FOLD]["top1"]]}
    return out


def _score_fold_on(threads: int, *args) -> dict:
    """`_score_fold` on `threads` torch threads (a worker's share of the stage's)."""
    with torch_threads(threads):
        return _score_fold(*args)


def _over_folds(train, folds, candidates, anchor_sets, seeds, lr_c, n_jobs) -> list[dict]:
    """`_score_fold` on every fold, in `n_jobs` processes sharing this process's threads,
    results in fold order."""
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    threads = threads_per_worker(torch.get_num_threads(), n_jobs)
    jobs = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_score_fold_on)(threads, train, rows, candidates, anchor_sets, seeds, lr_c) for rows in folds)
    return list(tqdm(jobs, total=len(folds), desc=f"CV folds ({', '.join(candidates)})", mininterval=10))


def _top1(projected, labels, anchor_set: AnchorSet) -> float:
    predicted, _ = nearest_anchor(projected, anchor_set.anchors)
    return float((predicted == labels).float().mean())


@dataclass
class Selection:
    """Fold scores of every candidate and baseline, the winner, and its ensemble's fold scores."""

    folds: int
    repeats: int
    seed: int
    seeds: list[int]
    candidates: dict[str, Candidate]
    scores: dict[str, list[float]]  # name -> top-1 per fold (first seed; baselines: one fit)
    selected: str
    single_seed: list[float] = field(default_factory=list)  # winner: mean over seeds, per fold
    ensemble: list[float] = field(default_factory=list)  # winner: its seed ensemble, per fold
    lr_c: float | None = None  # the logistic probe's C (searched once on all of train)
    fold_ids: list[list[str]] = field(default_factory=list)  # the scoring ids of every fold

    @property
    def ship_ensemble(self) -> bool:
        return len(self.seeds) > 1 and float(np.mean(self.ensemble)) > float(np.mean(self.single_seed))

    def summary(self) -> dict:
        paper = np.asarray(self.scores[next(iter(self.candidates))])
        rows = {}
        for name, values in self.scores.items():
            row = {"top1": mean_se(values), "vs_paper_points": mean_se(100 * (np.asarray(values) - paper))}
            if name in self.candidates:
                row.update(recipe=self.candidates[name].recipe.to_dict(), template=self.candidates[name].template)
            rows[name] = row
        return {
            "protocol": f"{self.folds}-fold stratified CV x {self.repeats} repeats on train only (seed {self.seed})",
            "scores": rows, "selected": self.selected,
            "selected_single_seed": mean_se(self.single_seed), "selected_ensemble": mean_se(self.ensemble),
            "ship_ensemble": self.ship_ensemble, "seeds": list(self.seeds), "logistic_C": self.lr_c,
        }


def select(train: FeatureSet, candidates: Mapping[str, Candidate], anchor_sets: Mapping[str, AnchorSet],
           seeds: Sequence[int], *, folds: int = 5, repeats: int = 2, seed: int = 0, lr_folds: int = 5,
           n_jobs: int = 1) -> Selection:
    """Cross-validate the grid on `train` (first seed), pick the best mean, then score its seed ensemble.

    The first candidate is the reference of the paired differences (the params put the
    paper's recipe first). `n_jobs` folds run in parallel processes (results do not depend on it).
    """
    if not candidates:
        raise ValueError("the candidate grid is empty")
    seeds = list(seeds)
    rows = fold_rows(train.labels, folds, repeats, seed)
    # The probe's C is searched once on all of train (lr_folds-fold CV), then refitted per fold:
    # a little optimistic for the probe, never for the projector, and ten times cheaper.
    lr_c = baselines.logistic_regression(train.pooled, train.label_ids(), folds=lr_folds, seed=seed).details["C"]
    first = _over_folds(train, rows, candidates, anchor_sets, seeds[:1], lr_c, n_jobs)
    scores = {name: [fold[name]["seeds"][0] for fold in first] for name in first[0]}
    means = {name: float(np.mean(scores[name])) for name in candidates}
    selected = max(means, key=lambda name: (means[name], -list(candidates).index(name)))
    result = Selection(folds, repeats, seed, seeds, dict(candidates), scores, selected, lr_c=lr_c,
                       fold_ids=[[train.ids[i] for i in score_rows] for _, score_rows in rows])
    others = _over_folds(train, rows, {selected: candidates[selected]}, anchor_sets, seeds[1:], None,
                         n_jobs) if len(seeds) > 1 else [{selected: {"seeds": [], "projections": []}}] * len(rows)
    labels = train.label_ids()
    for fold, more, (_, score_rows) in zip(first, others, rows):
        a, b = fold[selected], more[selected]
        result.single_seed.append(float(np.mean(a["seeds"] + b["seeds"])))
        result.ensemble.append(_top1(ensemble_projection(a["projections"] + b["projections"]),
                                     labels[score_rows], anchor_sets[selected]))
    return result


def refit(development: Development, name: str, candidate: Candidate, anchor_set: AnchorSet,
          seeds: Sequence[int]) -> study.RecipeRun:
    """The candidate trained on every training row, once per seed, scored on every held-out split."""
    return study.run_recipe(name, {"train": development.train, **development.held_out}, anchor_set,
                            candidate.recipe, seeds, candidate.template)


@dataclass
class Shipped:
    """The whole protocol on one dataset: what was held out, chosen, refitted and compared."""

    development: Development
    selection: Selection
    runs: dict[str, study.RecipeRun]  # the winner ("shipped"), the paper recipe, the random-anchor floor
    baselines: dict[str, dict]  # logistic probe and nearest centroid, fitted on the same train rows
    model: object  # the shipped module (a SeedEnsemble or the first seed's MetricProjector)
    evaluations: dict[str, object]  # held-out split -> Evaluation of the shipped module

    @property
    def name(self) -> str:
        """The shipped model in words, e.g. "ntxent-emotion, ensemble of seeds 0, 1, 2"."""
        seeds = self.selection.seeds
        if self.selection.ship_ensemble:
            return f"{self.selection.selected}, ensemble of seeds {', '.join(map(str, seeds))}"
        return f"{self.selection.selected}, seed {seeds[0]}"

    def metrics(self) -> dict:
        """The dataset's section of results/projector/metrics.json."""
        chosen, shipped = self.selection, self.runs["shipped"]
        return {
            "n": {"train": len(self.development.train),
                  **{split: len(f) for split, f in self.development.held_out.items()}},
            "test_source": self.development.test_source,
            "selection": chosen.summary(),
            "shipped": {
                "name": self.name, "candidate": chosen.selected, "ensemble": chosen.ship_ensemble,
                "recipe": chosen.candidates[chosen.selected].recipe.to_dict(),
                "template": chosen.candidates[chosen.selected].template,
                "train_seconds_per_seed": float(np.mean([r.seconds for r in shipped.runs])),
                "per_seed_top1": {split: [e.top1 for e in evs] for split, evs in shipped.evaluations.items()},
                **{split: e.summary() for split, e in self.evaluations.items()},
            },
            "held_out_top1": self.held_out(),
            "baselines": {name: {k: v for k, v in record.items() if not isinstance(v, dict)}
                          for name, record in self.baselines.items()},
        }

    def held_out(self) -> dict[str, dict[str, float]]:
        """{split: {model: top-1}}; the paper recipe gets the shipped model's treatment (ensemble or not)."""
        ensemble = self.selection.ship_ensemble
        return study.held_out_comparison(
            self.evaluations, {study.PAPER_RECIPE_ROW: self.runs["paper"].chosen_evaluations(ensemble),
                               study.RANDOM_ANCHORS: self.runs["random"].chosen_evaluations(False)},
            self.baselines)


def select_and_ship(splits: Mapping[str, FeatureSet], candidates: Mapping[str, Candidate],
                    anchor_sets: Mapping[str, AnchorSet], random_anchor_set: AnchorSet, seeds: Sequence[int], *,
                    test_fraction: float = 0.2, folds: int = 5, repeats: int = 2, seed: int = 0,
                    lr_folds: int = 5, n_jobs: int = 1) -> Shipped:
    """Hold out, select by CV on train, refit the winner on all of train, and compare on held-out
    data with the paper recipe, the baselines and the winner trained against random anchors."""
    development = held_out_split(splits, test_fraction, seed)
    chosen = select(development.train, candidates, anchor_sets, seeds, folds=folds, repeats=repeats,
                    seed=seed, lr_folds=lr_folds, n_jobs=n_jobs)
    winner, reference = chosen.selected, next(iter(candidates))
    runs = {"shipped": refit(development, winner, candidates[winner], anchor_sets[winner], seeds)}
    runs["paper"] = (runs["shipped"] if winner == reference else
                     refit(development, reference, candidates[reference], anchor_sets[reference], seeds))
    runs["random"] = refit(development, "random anchors", candidates[winner], random_anchor_set, seeds[:1])
    shipped = runs["shipped"]
    model = shipped.ensemble() if chosen.ship_ensemble else shipped.runs[0].model
    evaluations = shipped.chosen_evaluations(chosen.ship_ensemble)
    base = study.run_baselines({"train": development.train, **development.held_out}, lr_folds, seed)
    return Shipped(development, chosen, runs, base, model, evaluations)


def cv_rows(selection_summaries: Mapping[str, dict]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the cross-validation table: mean ± s.e. top-1 and the paired
    difference to the paper recipe, per dataset and model; the selected candidate is marked."""
    header = ["dataset", "model", "CV top-1 (%)", "vs paper (points)"]
    rows = []
    for dataset, summary in selection_summaries.items():
        for name, row in summary["scores"].items():
            mark = " (selected)" if name == summary["selected"] else ""
            rows.append([dataset, name.replace("_", " ") + mark, _pm(row["top1"], 100), _pm(row["vs_paper_points"], 1)])
        for key, label in (("selected_single_seed", "seeds alone (mean)"), ("selected_ensemble", "seed ensemble")):
            rows.append([dataset, f"{summary['selected']}: {label}", _pm(summary[key], 100), ""])
    return header, rows


def held_out_rows(held_out: Mapping[str, Mapping[str, dict]]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the held-out table: {dataset: {split: {model: top-1}}} as percentages."""
    models = list(dict.fromkeys(m for splits in held_out.values() for row in splits.values() for m in row))
    header = ["dataset", "held-out split", *models]
    rows = [[dataset, split, *[(f"{row[m]:+.2f}" if "points" in m else f"{100 * row[m]:.2f}") if m in row else "-"
                                for m in models]]
            for dataset, splits in held_out.items() for split, row in splits.items()]
    return header, rows


def _pm(stat: dict, scale: float) -> str:
    return f"{scale * stat['mean']:.2f} ± {scale * stat['se']:.2f}"
