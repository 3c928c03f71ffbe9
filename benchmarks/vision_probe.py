"""How much of an EmoScenes image each vision tower's patch grid carries, per input size.

For every configuration (registry tower, input side in px), the tower encodes the first
`--train` images of the train split and all the test images straight from the image folder
(EmoScenes images are rendered at 224 px and resized to the input side), and
`tinyemo.mmllm.ceiling.probe` (one logistic regression per object kind on the mean and max
of each grid) predicts which object kinds are in each test image:

- at probability 0.5: the yardstick recorded in `tinyemo/mmllm/ceiling.py`;
- at the lowest single threshold whose false-object rate on the test images is within
  `--max-false-rate` (a point of the probe's curve, chosen on the test images themselves):
  grids differ in how confident the probe is, and this compares them at one false-object rate.

The same probe on a richer summary (mean, max and a 2x2 pyramid of means) is a separate line.
Target (issue): key-object recall >= 0.70 at a false-object rate <= 0.08. Encode seconds
are per 100 test images, batch 32, on the threads given (CPU unless `--device`).

Run from anywhere after `pip install -e .` (it converts the towers' weights into a
temporary folder; EmoScenes must exist); `--cache` keeps the encoded grids for reruns:

    python benchmarks/vision_probe.py [--data data/emoscenes] [--train 800] [--threads 2] \
        [--configs efficientnet-lite0@224 efficientnet-lite2@448 ...] [--cache DIR] [--out probe.json]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from tinyemo import paths
from tinyemo.mmllm import ceiling
from tinyemo.mmllm.tower_probe import at_input_size, encode_split
from tinyemo.models.vision import load_vision_tower, prepare_vision_tower
from tinyemo.report import markdown_table
from tinyemo.scenes import load_scene_records

CONFIGS = ("efficientnet-lite0@224", "efficientnet-lite0@448", "efficientnet-lite2@260",
           "efficientnet-lite2@448", "efficientnet-lite0@320", "efficientnet-lite2@384")
SUMMARIES = {"mean+max": ceiling.patch_summary, "mean+max+2x2": ceiling.pyramid_summary}
HEADER = ["tower", "input px", "grid", "patch dim", "summary", "encode s / 100 img",
          "key-object recall", "object recall", "false-object rate",
          "key-object recall @cap", "object recall @cap", "false-object rate @cap"]


def parse_config(text: str) -> tuple[str, int]:
    name, _, size = text.partition("@")
    return name, int(size)


def encoded(name: str, size: int, base: Path, args) -> dict:
    """Train and test patch grids and the test encode seconds (from `--cache` when there)."""
    cached = args.cache / f"{name}@{size}-train{args.train}.pt" if args.cache else None
    if cached and cached.exists():
        return torch.load(cached, weights_only=True)
    if not (base / name).exists():
        prepare_vision_tower(name, base / name)
    tower = at_input_size(load_vision_tower(name, base_dir=base), size).to(args.device)
    train, _, _ = encode_split(tower, "train", args.train, args.data)
    test, _, seconds = encode_split(tower, "test", None, args.data)
    grids = {"train": train, "test": test, "test_seconds": torch.tensor(seconds)}
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.save(grids, cached)
    return grids


def measure(name: str, size: int, base: Path, args) -> list[dict]:
    grids = encoded(name, size, base, args)
    train_scenes = load_scene_records(args.data, split="train")[:args.train]
    test_scenes = load_scene_records(args.data, split="test")
    side = int(round(grids["test"].shape[1] ** 0.5))
    common = {"tower": name, "input_px": size, "grid": f"{side}x{side}",
              "patch_dim": grids["test"].shape[2],
              "encode_s_per_100": round(100 * float(grids["test_seconds"]) / len(test_scenes), 2)}
    return [common | {"summary": label} | ceiling.probe(grids["train"], train_scenes, grids["test"],
                                                        test_scenes, summary, args.max_false_rate)
            for label, summary in SUMMARIES.items()]


def table_row(r: dict) -> list:
    capped = r["at_false_rate"]
    return [r["tower"], r["input_px"], r["grid"], r["patch_dim"], r["summary"], r["encode_s_per_100"]] + [
        round(m[k], 3) for m in (r, capped)
        for k in ("key_object_recall", "object_recall", "false_object_rate")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=paths.EMOSCENES, help="the EmoScenes folder")
    parser.add_argument("--train", type=int, default=800, help="train images the probe is fitted on")
    parser.add_argument("--max-false-rate", type=float, default=0.08, help="the cap of the @cap columns")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), help="tower@px, e.g. efficientnet-lite0@448")
    parser.add_argument("--cache", type=Path, default=None, help="keep encoded grids here for reruns")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    with tempfile.TemporaryDirectory() as base:
        for config in args.configs:
            rows += measure(*parse_config(config), Path(base), args)
            print(f"measured {config}", flush=True)
    rows.sort(key=lambda row: row["summary"] != "mean+max")
    print(f"@cap: at the lowest probability threshold with false-object rate <= {args.max_false_rate} "
          f"on the test images")
    print(markdown_table(HEADER, [table_row(r) for r in rows]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
