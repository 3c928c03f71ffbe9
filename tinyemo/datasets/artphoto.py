"""ArtPhoto (Machajdik & Hanbury, 2010): 806 artistic photographs in the eight Mikels emotions,
in one flat folder; the label is the file name's prefix before the first `_` (`sad` for sadness).

Upstream (`ArtPhoto_dataloader.py`) ships no split and stops at the first file whose prefix it
does not know. Here such files are counted as skipped and the split is the project's seeded,
stratified one (`tinyemo.datasets.splits`).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from tinyemo.datasets.base import Dataset, ImageRecord, image_files, names_line, record_id
from tinyemo.taxonomy import MIKELS8

PREFIX_LABELS = {e: e for e in MIKELS8} | {"sad": "sadness"}  # file name prefix -> label

FILES = ("<root>/<prefix>_<anything>.jpg   (one flat folder)\n"
         + names_line("<prefix>", sorted(PREFIX_LABELS)) + "   (`sad` means sadness)")


def list_records(spec: Dataset, root: Path):
    skipped: Counter = Counter()
    records = []
    for path in image_files(root, skipped):
        prefix = path.name.split("_")[0]
        if prefix in PREFIX_LABELS:
            records.append(ImageRecord(record_id(path, root), path, PREFIX_LABELS[prefix], "train"))
        else:
            skipped[f"unknown label prefix {prefix!r}"] += 1
    return records, skipped


DATASET = Dataset("artphoto", "mikels8", FILES, list_records, carved=("test", "val"))
