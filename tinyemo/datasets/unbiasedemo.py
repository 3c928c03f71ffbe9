"""UnbiasedEmo (Panda et al., 2018): about 3,000 images in six emotions, each emotion folder
split into subject folders (`images/<emotion>/<subject>/*.jpg`).

Upstream (`UnbiasedEmo_dataloader.py`) ships no split, numbers classes in `os.listdir` order
(a stray folder becomes a class) and selected its models on this dataset while also reporting
it. Here only the six emotion folders are read (others are counted as skipped), the split is
the project's seeded, stratified one (`tinyemo.datasets.splits`), and nothing here selects on it.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from tinyemo.datasets.base import Dataset, folder_records, names_line
from tinyemo.taxonomy import UNBIASED6

FILES = "<root>/images/<emotion>/<subject>/*.jpg\n" + names_line("<emotion>", UNBIASED6)


def list_records(spec: Dataset, root: Path):
    skipped: Counter = Counter()
    images = spec.require(root / "images")
    records = folder_records(spec, images, {e: e for e in UNBIASED6}, skipped, split="train",
                             id_base=images, pattern="*/*")
    return records, skipped


DATASET = Dataset("unbiasedemo", "unbiased6", FILES, list_records, carved=("test", "val"))
