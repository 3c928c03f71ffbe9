"""The Metric Projector on real Emotion6 features, measured against its alternatives.

In one run on this machine, on the same carved train/validation split as the pipeline
(stage `encode`: stratified, seeded, `encode.val_fraction` of train/):

- validation top-1 of the tuned recipe, the paper recipe (mean ± std over seeds, anchors
  from the LLM's input-embedding table), logistic regression on L2-normalised features
  (C by cross-validation on train only) and the nearest class centroid;
- the training (fitting) time of each, and the ratios between them;
- with `--cv K`, the same comparison as a K-fold cross-validated estimate over the whole
  train/ folder (less noisy than one 278-image validation split).

Nothing here reads a test split. Targets: the tuned recipe >= logistic regression and > the
paper recipe on validation; projector training < 30 s on 2 cores.

Run from the repository root after `dvc repro assets` (it needs the converted LLM):

    python benchmarks/projector.py [--seeds 0 1 2] [--cv 5] [--out results/benchmarks/projector.json]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from tinyemo import config, emotion6
from tinyemo.projector import baselines
from tinyemo.projector.anchors import build_anchor_set
from tinyemo.projector.evaluate import top1
from tinyemo.projector.train import PAPER_RECIPE, train_projector

TRAINING_BUDGET_S = 30.0


def recipes(sections) -> dict:
    projector = sections["projector"]
    return {"tuned": (projector.tuned_recipe, projector.tuned_template), "paper": (PAPER_RECIPE, "bare")}


def measure(train, val, sections, seeds, llm: str) -> dict:
    """Top-1 on `val` and training seconds of every model, fitted on `train`."""
    x, y, vx, vy = train.pooled, train.label_ids(), val.pooled, val.label_ids()
    out = {}
    for name, (recipe, template) in recipes(sections).items():
        anchors = build_anchor_set(train.label_names, sections["projector"].anchor_source, template,
                                   llm=llm, synonyms=recipe.synonym_p > 0)
        scores, seconds = [], []
        for seed in seeds:
            started = time.perf_counter()
            model = train_projector(x, y, anchors, recipe.but(seed=seed)).model
            seconds.append(time.perf_counter() - started)
            scores.append(top1(model, vx, vy, anchors.anchors))
        out[f"{name}_recipe"] = {"top1": float(np.mean(scores)), "top1_std": float(np.std(scores)),
                                 "seconds": float(np.mean(seconds))}
    for baseline in (baselines.logistic_regression(x, y, folds=sections["projector"].lr_cv_folds),
                     baselines.nearest_centroid(x, y, len(train.label_names))):
        accuracy = float((baseline.predict(vx) == vy.numpy()).mean())
        out[baseline.name] = {"top1": accuracy, "seconds": baseline.seconds, **baseline.details}
    return out


def cross_validated(full, sections, seeds, llm: str, folds: int) -> dict:
    """Mean over K stratified folds of `measure` (each fold in turn is the validation set)."""
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=sections["base"].seed)
    runs = [measure(full.subset(a), full.subset(b), sections, seeds, llm)
            for a, b in splitter.split(np.zeros(len(full)), full.labels)]
    return {name: {"top1": float(np.mean([r[name]["top1"] for r in runs])),
                   "top1_std_over_folds": float(np.std([r[name]["top1"] for r in runs]))}
            for name in runs[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cv", type=int, default=0, metavar="K", help="also a K-fold estimate (0: off)")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/projector.json"))
    args = parser.parse_args()

    sections = config.validate(config.render_profile("default"))
    base = sections["base"]
    torch.set_num_threads(base.threads)
    full = emotion6.read_feature_folder(emotion6.split_folders(emotion6.locate_emotion6())["train"])
    train, val = emotion6.carve_validation(full, sections["encode"].val_fraction, base.seed)
    print(f"Emotion6 train {len(train)}, validation {len(val)} (carved from train/, seed {base.seed}); "
          f"anchors: {base.llm}; seeds {args.seeds}; {torch.get_num_threads()} threads")

    result = {"validation": measure(train, val, sections, args.seeds, base.llm)}
    v = result["validation"]
    print(f"\n{'model':22s} {'val top-1':>16s} {'train/fit s':>12s}")
    for name, row in v.items():
        spread = f" ± {100 * row['top1_std']:.2f}" if "top1_std" in row else ""
        print(f"{name:22s} {100 * row['top1']:>8.2f}{spread:8s} {row['seconds']:>12.2f}")
    ratios = {
        "tuned_minus_paper_points": 100 * (v["tuned_recipe"]["top1"] - v["paper_recipe"]["top1"]),
        "tuned_minus_logreg_points": 100 * (v["tuned_recipe"]["top1"] - v["logistic_regression"]["top1"]),
        "tuned_over_logreg_top1": v["tuned_recipe"]["top1"] / v["logistic_regression"]["top1"],
        "logreg_fit_over_tuned_training_time": v["logistic_regression"]["seconds"] / v["tuned_recipe"]["seconds"],
        "tuned_over_paper_training_time": v["tuned_recipe"]["seconds"] / v["paper_recipe"]["seconds"],
    }
    result["ratios"] = ratios
    result["targets"] = {
        "tuned_at_least_logreg": v["tuned_recipe"]["top1"] >= v["logistic_regression"]["top1"],
        "tuned_above_paper": v["tuned_recipe"]["top1"] > v["paper_recipe"]["top1"],
        "training_under_30s": v["tuned_recipe"]["seconds"] < TRAINING_BUDGET_S,
        "paper_best_emotion6": 0.7727,
    }
    print("\nratios: " + ", ".join(f"{k} {val:.2f}" for k, val in ratios.items()))
    print("targets: " + ", ".join(f"{k} {val}" for k, val in result["targets"].items()))
    if args.cv:
        result[f"cross_validated_{args.cv}_fold"] = cv = cross_validated(full, sections, args.seeds, base.llm, args.cv)
        print(f"\n{args.cv}-fold cross-validated top-1 over train/ ({len(full)} images):")
        for name, row in cv.items():
            print(f"{name:22s} {100 * row['top1']:>8.2f} (± {100 * row['top1_std_over_folds']:.2f} over folds)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
