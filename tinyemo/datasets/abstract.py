"""Abstract (Machajdik & Hanbury, 2010): 228 abstract paintings, each with a count of votes per
Mikels emotion in `ABSTRACT_groundTruth.csv` (names and headers quoted with `'`; the headers say
`Content` for contentment and `Sad` for sadness). The label is the majority vote.

Upstream (`Abstract_dataloader.py`) compares the vote counts as text, so "10" loses to "9" and
some majorities are wrong; it ships no split. Here votes are integers, ties (including rows
without votes) are dropped and counted, and the split is the project's seeded, stratified one.
"""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from tinyemo.datasets.base import Dataset, ImageRecord, is_image_file, record_id
from tinyemo.taxonomy import MIKELS8

GROUND_TRUTH = "ABSTRACT_groundTruth.csv"
SHIPPED_HEADERS = ("Amusement", "Anger", "Awe", "Content", "Disgust", "Excitement", "Fear", "Sad")
HEADER_LABELS = dict(zip(SHIPPED_HEADERS, MIKELS8))  # vote column header -> label

FILES = f"""<root>/{GROUND_TRUTH}
  header: '', {', '.join(f"'{h}'" for h in SHIPPED_HEADERS)}
  rows:   '<file>.jpg', <one vote count per emotion>
<root>/<file>.jpg
  label = the emotion with the most votes (ties are dropped)"""


def read_ground_truth(spec: Dataset, path: Path) -> tuple[list[str], list[list[str]]]:
    with spec.require(path, "file").open(newline="") as handle:
        rows = [row for row in csv.reader(handle, quotechar="'", skipinitialspace=True) if row]
    if not rows:
        raise spec.layout_error(f"{path} is empty")
    header = [name.strip().strip("'\"") for name in rows[0][1:]]
    if sorted(header) != sorted(SHIPPED_HEADERS):
        raise spec.layout_error(f"{path} has the vote columns {header}, not one per Mikels emotion")
    return [HEADER_LABELS[name] for name in header], rows[1:]


def majority(votes: list[int], labels: list[str]) -> str | None:
    """The label with the most votes; None on a tie."""
    top = max(votes)
    winners = [label for label, count in zip(labels, votes) if count == top]
    return winners[0] if len(winners) == 1 else None


def list_records(spec: Dataset, root: Path):
    skipped: Counter = Counter()
    labels, rows = read_ground_truth(spec, root / GROUND_TRUTH)
    records = []
    for row in rows:
        try:
            votes = [int(cell) for cell in row[1:]]
        except ValueError:
            votes = []
        if len(votes) != len(labels):
            skipped["malformed row"] += 1
            continue
        label, path = majority(votes, labels), root / row[0].strip().strip("'\"")
        if label is None:
            skipped["tie in votes"] += 1
        elif not is_image_file(path):
            skipped["listed image missing"] += 1
        else:
            records.append(ImageRecord(record_id(path, root), path, label, "train"))
    return records, skipped


DATASET = Dataset("abstract", "mikels8", FILES, list_records, carved=("test", "val"))
