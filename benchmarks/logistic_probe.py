"""The logistic probe's two solvers side by side on the Emotion6 features: the same ceiling?

`tinyemo.projector.logistic` has two solvers of one objective: `sklearn` (scikit-learn's
`LogisticRegressionCV`, the probe's solver on a CPU) and `torch` (the same L-BFGS-B
optimizer with the objective computed by torch, the probe's solver on a GPU). In one run,
on the projector stage's Emotion6 protocol (the same held-out test split carved from train,
the same 5-fold search of C on the training rows), this prints for each solver: the C chosen,
the top-1 on every held-out split with n and a 95 % Wilson interval, the images on which the
two disagree (McNemar's discordant pairs), and the search's time; and the ratio of the times.

With `--synthetic-rows N` it also times both on random features of WEBEmo's shape (768-d,
25 classes, N rows), where the difference in speed shows (a GPU is where `torch` pays off).

Run from the repository root; the Emotion6 features are read as stage `fetch-emotion6`
reads them (TINYEMO_DATA_DIR, else the download cache):

    python benchmarks/logistic_probe.py [--threads 2] [--synthetic-rows 0] \
        [--out results/benchmarks/logistic_probe.json]
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from tinyemo import config, emotion6
from tinyemo.projector import logistic, selection
from tinyemo.projector.train import default_device
from tinyemo.report import markdown_table


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion correct / n."""
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def compare(pooled, labels, held_out: dict, folds: int, seed: int) -> dict:
    """Both solvers' searches on (pooled, labels), scored on every held-out (pooled, labels)."""
    out = {}
    for solver in logistic.SOLVERS:
        started = time.perf_counter()
        found = logistic.search(pooled, labels, folds=folds, seed=seed, solver=solver)
        out[solver] = {"C": found.C, "seconds": time.perf_counter() - started,
                       "iterations": int(sum(found.iterations)),
                       "predicted": {split: found.probe.predict(x) for split, (x, _) in held_out.items()}}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the default profile's)")
    parser.add_argument("--synthetic-rows", type=int, default=0, help="also time both on N random 768-d rows")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/logistic_probe.json"))
    args = parser.parse_args()

    sections = config.validate(config.render_profile("default"))
    base, params = sections["base"], sections["projector"]
    torch.set_num_threads(args.threads or base.threads)
    splits = emotion6.precomputed_splits(emotion6.locate_emotion6(), sections["encode"].val_fraction, base.seed)
    development = selection.held_out_split(splits, params.test_fraction, base.seed)
    train = development.train
    held_out = {split: (f.pooled, f.label_ids().numpy()) for split, f in development.held_out.items()}
    print(f"Emotion6: {len(train)} training rows ({params.lr_cv_folds}-fold search of C), held out: "
          + ", ".join(f"{split} {len(y)}" for split, (_, y) in held_out.items())
          + f"; {torch.get_num_threads()} threads, torch solver on {default_device().type}")
    result = compare(train.pooled, train.label_ids(), held_out, params.lr_cv_folds, base.seed)

    rows, record = [], {"threads": torch.get_num_threads(), "device": default_device().type, "emotion6": {}}
    for solver, found in result.items():
        entry = {"C": found["C"], "seconds": found["seconds"], "iterations": found["iterations"], "splits": {}}
        for split, (_, truth) in held_out.items():
            correct, n = int((found["predicted"][split] == truth).sum()), len(truth)
            low, high = wilson(correct, n)
            entry["splits"][split] = {"top1": correct / n, "n": n, "wilson95": [low, high]}
            rows.append([solver, f"{found['C']:g}", split, str(n), f"{100 * correct / n:.2f}",
                         f"[{100 * low:.1f}, {100 * high:.1f}]", f"{found['seconds']:.2f}"])
        record["emotion6"][solver] = entry
    print(markdown_table(["solver", "C", "split", "n", "top-1 (%)", "95 % Wilson", "search (s)"], rows))
    for split, (_, truth) in held_out.items():
        ours, theirs = (result[s]["predicted"][split] for s in ("sklearn", "torch"))
        only_sklearn = int(((ours == truth) & (theirs != truth)).sum())
        only_torch = int(((ours != truth) & (theirs == truth)).sum())
        record["emotion6"][f"discordant_{split}"] = {"sklearn_only": only_sklearn, "torch_only": only_torch}
        print(f"{split}: the two disagree on {int((ours != theirs).sum())} of {len(truth)} images; "
              f"right only with sklearn {only_sklearn}, only with torch {only_torch}")
    ratio = result["torch"]["seconds"] / result["sklearn"]["seconds"]
    record["emotion6"]["time_ratio_torch_over_sklearn"] = ratio
    print(f"search time, torch / sklearn: {ratio:.2f} (torch on {default_device().type})")

    if args.synthetic_rows:
        generator = torch.Generator().manual_seed(base.seed)
        y = torch.randint(25, (args.synthetic_rows,), generator=generator)
        centres = torch.randn(25, 768, generator=generator)
        x = 0.1 * centres[y] + torch.randn(args.synthetic_rows, 768, generator=generator)
        timed = compare(x, y, {}, params.lr_cv_folds, base.seed)
        record["synthetic"] = {"rows": args.synthetic_rows, **{s: {"C": t["C"], "seconds": t["seconds"]}
                                                               for s, t in timed.items()}}
        print(f"{args.synthetic_rows} random 768-d rows, 25 classes: " + ", ".join(
            f"{s} {t['seconds']:.1f} s (C {t['C']:g})" for s, t in timed.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
