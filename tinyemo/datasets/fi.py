"""FI (You et al., 2016): about 23,000 web images in the eight Mikels emotions, one folder each.

Upstream (`FI_dataloader.py`) numbers its classes in `os.listdir` order, so a stray folder
becomes a class, and draws its 80/20 split without a seed. Here only the eight emotion folders
are read (others are counted as skipped) and the 80/20 split is the project's seeded,
stratified one (`tinyemo.datasets.splits`), with val carved from train.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from tinyemo.datasets.base import Dataset, folder_records, names_line
from tinyemo.taxonomy import MIKELS8

FILES = "<root>/<emotion>/*.jpg\n" + names_line("<emotion>", MIKELS8)


def list_records(spec: Dataset, root: Path):
    skipped: Counter = Counter()
    records = folder_records(spec, root, {e: e for e in MIKELS8}, skipped, split="train",
                             id_base=root)
    return records, skipped


DATASET = Dataset("fi", "mikels8", FILES, list_records, carved=("test", "val"))
