"""How fast the Metric Projector trains at the paper's shapes, and what Table VIII costs at that speed.

Throughput does not depend on the features' values, only on their shapes, so this runs on
random features: 768-d inputs (CLIP ViT-L/14), batch 32, the joint label space of
EmotionROI + WEBEmo + EmoSet (Ekman-6, Parrott-25 and Mikels-8: the union of their words),
anchors of each row's width (OpenELM-270M 1280, OpenELM-450M 1536, TinyLlama 2048, Phi-2 2560,
MiniLM 384) and each recipe of the paper profile's `paper_table` section. It measures the
training steps per second of every shape with `tinyemo.projector.train.steps_per_second` (a
warm-up epoch, then a timed one) on the CPU, at each thread count asked for, and on the GPU
when there is one, and prints:

- steps/s at d = 1280 and 2560 (and every other width the table needs), per recipe;
- the plan of the paper profile's Table VIII (`tinyemo.projector.table_plan`, the stage's own
  planning code) from the datasets' published training-split sizes, and its training time at
  each measured speed.

Figures only, no timed assertions. Run from the repository root (no data needed):

    python benchmarks/projector_throughput.py [--threads 1 2] [--steps 20] \
        [--out results/benchmarks/projector_throughput.json]
"""
from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
from torch.nn import functional as F

from tinyemo import config
from tinyemo.datasets import dataset
from tinyemo.models import registry
from tinyemo.projector import paper_table, table_plan
from tinyemo.projector.anchors import AnchorSet, build_anchor_set
from tinyemo.projector.joint import union_labels
from tinyemo.projector.train import torch_threads
from tinyemo.report import markdown_table

FEATURE_WIDTH = 768  # CLIP ViT-L/14 encode_image
# Training rows of the paper's datasets as our loaders split them (approximate, from the published
# split sizes): EmotionROI's 1,386-image training list less the 10 % carved as val; WEBEmo's
# training folder (about 214k images); EmoSet's 94,481-image training list.
PAPER_TRAIN_ROWS = {"emotionroi": 1247, "webemo": 214_000, "emoset": 94_481}


def random_anchors(label_names, dim: int, seed: int = 0) -> AnchorSet:
    """Unit anchors (and three synonyms each) of the right width: their values do not change the speed."""
    generator = torch.Generator().manual_seed(seed)
    anchors = F.normalize(torch.randn(len(label_names), dim, generator=generator), dim=1)
    synonyms = F.normalize(torch.randn(len(label_names), 3, dim, generator=generator), dim=-1)
    return AnchorSet(tuple(label_names), anchors, synonyms)


def anchor_width(row: paper_table.RowSpec) -> int:
    if row.source == "sentence":
        return build_anchor_set(["joy"], "sentence").dim
    return registry.llm_spec(row.llm).embed_dim  # llm rows, and the random floor (its base LLM's width)


def paper_plan(sections: dict) -> list[table_plan.Training]:
    params, base = sections["paper_table"], sections["base"]
    rows = paper_table.plan_rows(params, base.llm)
    widths = {row.name: anchor_width(row) for row in rows}
    groups = [table_plan.Group(tuple(group), sum(PAPER_TRAIN_ROWS[name] for name in group), FEATURE_WIDTH)
              for group in params.groups()]
    return table_plan.plan(groups, rows, lambda group, row: widths[row.name], len(params.seeds))


def measure(trainings, labels, device: str, threads: int, steps: int) -> tuple[dict, dict]:
    """(steps/s per shape, the plan's estimate) on one device and thread count."""
    with torch_threads(threads):
        speeds = table_plan.warm_up(trainings, lambda t: random_anchors(labels, t.anchor_dim), steps=steps,
                                    device=device)
        return speeds, table_plan.estimate(trainings, speeds, device=device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU thread counts to measure")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per shape (after as many warm-up steps)")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/projector_throughput.json"))
    args = parser.parse_args()

    sections = config.validate(config.render_profile("paper"))
    trainings = paper_plan(sections)
    labels = union_labels([dataset(name).label_names for name in sections["paper_table"].groups()[0]])
    print(f"joint label space: {len(labels)} labels; {FEATURE_WIDTH}-d features, batch "
          f"{trainings[0].recipe.batch_size}; {args.steps} timed steps per shape")
    settings = [("cpu", threads) for threads in args.threads]
    if torch.cuda.is_available():
        settings.append(("cuda", torch.get_num_threads()))
    runs = [(device, threads, *measure(trainings, labels, device, threads, args.steps)) for device, threads in settings]

    names = {t.shape: t.recipe_name for t in trainings}
    header = ["anchor width d", "recipe", *[f"{device}, {threads} thr. (steps/s)" for device, threads, _, _ in runs]]
    print(markdown_table(header, [[str(shape[1]), names[shape], *[f"{speeds[shape]:.0f}" for _, _, speeds, _ in runs]]
                                  for shape in sorted(names, key=lambda shape: (shape[1], names[shape]))]))
    print()
    print(table_plan.describe(runs[0][3]).split("\nestimated")[0])
    for device, threads, _, summary in runs:
        print(f"Table VIII (paper profile), {summary['trainings']} trainings, {summary['steps']:,} steps: "
              f"about {summary['estimated_train_seconds'] / 3600:.1f} h of training on {device} ({threads} threads)")
    record = {"hardware": {"cpu": platform.processor() or platform.machine(), "cpu_count": torch.get_num_threads(),
                           "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
              "feature_width": FEATURE_WIDTH, "labels": len(labels), "train_rows": PAPER_TRAIN_ROWS,
              "steps": args.steps, "runs": [summary for _, _, _, summary in runs]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
