"""EmotionROI (Peng et al., 2016): 1,980 images in six Ekman emotions (many shared with
Emotion6), with upstream's train/test lists in `training_testing_split/`.

Upstream (`EmoROI.py`) has no validation split (anything but "test" reads the training list)
and stops at the first line naming a file or an emotion it does not know. Here val is carved
(seeded, stratified) from the training list, and such lines are counted as skipped.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from tinyemo.datasets.base import Dataset, ImageRecord, is_image_file, names_line, record_id
from tinyemo.taxonomy import EKMAN6

SPLIT_FILES = {"train": "training.txt", "test": "testing.txt"}

FILES = f"""<root>/images/<emotion>/*.jpg
<root>/training_testing_split/training.txt   one line per image: <emotion>/<file>
<root>/training_testing_split/testing.txt    (same)
{names_line("<emotion>", EKMAN6)}"""


def list_records(spec: Dataset, root: Path):
    skipped: Counter = Counter()
    images = spec.require(root / "images")
    lists = spec.require(root / "training_testing_split")
    records = []
    for split, name in SPLIT_FILES.items():
        for line in spec.require(lists / name, "file").read_text().splitlines():
            parts = line.strip().split("/")
            if parts == [""]:
                continue
            if len(parts) != 2:
                skipped["malformed split line"] += 1
            elif parts[0] not in EKMAN6:
                skipped[f"unknown emotion {parts[0]!r}"] += 1
            elif not is_image_file(images / parts[0] / parts[1]):
                skipped["listed image missing"] += 1
            else:
                path = images / parts[0] / parts[1]
                records.append(ImageRecord(record_id(path, images), path, parts[0], split))
    return records, skipped


DATASET = Dataset("emotionroi", "ekman6", FILES, list_records, carved=("val",))
