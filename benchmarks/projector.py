"""The Metric Projector on real Emotion6 features, measured against its alternatives.

The projector stage's protocol (tinyemo.projector.selection), run alone and timed:

- a held-out test split is set aside first (the dataset's own, else 20 % carved from train,
  seeded and stratified), and val where present: selection never sees them;
- every candidate of the profile's grid is scored by repeated stratified k-fold
  cross-validation on train (mean ± standard error over folds x repeats), beside the
  logistic probe and the nearest centroid on the same folds;
- the winner is refitted on all of train (seed ensemble if CV says so) and compared on the
  held-out splits with the paper recipe, the probe, the centroid and random anchors.

Targets: the shipped projector >= the logistic probe on the held-out test; the whole
protocol within a few minutes on 2 cores.

Run from the repository root after `dvc repro features` (it needs the features and the
converted LLM):

    python benchmarks/projector.py [--profile default] [--folds 5] [--repeats 2] [--out results/benchmarks/projector.json]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tinyemo import config
from tinyemo.projector import selection, study
from tinyemo.projector.anchors import build_anchor_set
from tinyemo.report import markdown_table

PAPER_BEST_EMOTION6 = 0.7727  # Table VIII, TinyEmo-3.21B, zero-shot after joint training


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default", choices=("default", "smoke", "paper"))
    parser.add_argument("--folds", type=int, default=None, help="CV folds (default: the profile's cv_folds)")
    parser.add_argument("--repeats", type=int, default=None, help="CV repeats (default: the profile's cv_repeats)")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/projector.json"))
    args = parser.parse_args()

    sections = config.validate(config.render_profile(args.profile))
    base, params = sections["base"], sections["projector"]
    torch.set_num_threads(base.threads)
    splits = study.load_splits("emotion6")
    label_names = splits["train"].label_names
    anchor_sets = {name: build_anchor_set(label_names, params.anchor_source, c.template, llm=base.llm,
                                          synonyms=c.recipe.synonym_p > 0) for name, c in params.candidates.items()}
    started = time.perf_counter()
    result = selection.select_and_ship(
        splits, params.candidates, anchor_sets, build_anchor_set(label_names, "random", seed=base.seed),
        params.seeds, test_fraction=params.test_fraction, folds=args.folds or params.cv_folds,
        repeats=args.repeats or params.cv_repeats, seed=base.seed, lr_folds=params.lr_cv_folds,
        n_jobs=base.threads)
    seconds = time.perf_counter() - started
    metrics = result.metrics()
    print(markdown_table(*selection.cv_rows({"emotion6": metrics["selection"]})))
    print()
    print(markdown_table(*selection.held_out_rows({"emotion6": metrics["held_out_top1"]})))
    test = metrics["held_out_top1"]["test"]
    summary = {
        "emotion6": metrics, "seconds": seconds, "threads": base.threads,
        "targets": {
            "shipped_at_least_logistic_on_test": test[study.SHIPPED] >= test["logistic regression"],
            "shipped_minus_paper_best_points": 100 * (test[study.SHIPPED] - PAPER_BEST_EMOTION6),
        },
    }
    print(f"\nshipped: {result.name}; protocol {seconds:.0f} s on {base.threads} threads; "
          + ", ".join(f"{k} {v}" for k, v in summary["targets"].items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
