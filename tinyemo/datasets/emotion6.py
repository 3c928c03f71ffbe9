"""Emotion6 (Peng et al., 2015): 1,980 images in six Ekman emotions, one folder per emotion.

Upstream (`Emotion6.py`) ships no split and takes its classes from whatever folders it finds;
here the six emotion folders are read (any other folder is counted as skipped) and the split
is the project's seeded, stratified one (`tinyemo.datasets.splits`).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from tinyemo.datasets.base import Dataset, folder_records, names_line
from tinyemo.taxonomy import EKMAN6

FILES = "<root>/images/<emotion>/*.jpg\n" + names_line("<emotion>", EKMAN6)


def list_records(spec: Dataset, root: Path):
    skipped: Counter = Counter()
    images = spec.require(root / "images")
    records = folder_records(spec, images, {e: e for e in EKMAN6}, skipped, split="train",
                             id_base=images)
    return records, skipped


DATASET = Dataset("emotion6", "ekman6", FILES, list_records, carved=("test", "val"))
