"""EmoSet (Yang et al., 2023): 118,102 images in the eight Mikels emotions, with upstream's
train/val/test lists as JSON records `[label, "image/<emotion>/<file>.jpg", ...]`.

Upstream (`EmoSet.py`) prefers the 336-px copy of each image by replacing "/image/" anywhere in
the absolute path, so a dataset root whose own path holds a folder called `image` sends every
lookup astray. Here only the record's first path component is swapped (`image/` ->
`image336/`), and the copy is used when it exists; records naming an unknown label or a
missing file are counted as skipped instead of stopping the run.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path, PurePosixPath

from tinyemo.datasets.base import Dataset, ImageRecord, is_image_file, names_line
from tinyemo.taxonomy import MIKELS8

SPLIT_FILES = {"train": "train.json", "val": "val.json", "test": "test.json"}
FULL, RESIZED = "image", "image336"  # the original images, and upstream's preferred 336-px copies

FILES = f"""<root>/{{train,val,test}}.json   a list of [<emotion>, "image/<emotion>/<file>.jpg", ...]
<root>/image/<emotion>/*.jpg
<root>/image336/<emotion>/*.jpg          (optional: preferred when a file has a copy here)
{names_line("<emotion>", MIKELS8)}"""


def image_path(root: Path, relative: str) -> Path | None:
    """The `image336/` copy of `relative` when it exists, else the file itself; None if neither."""
    parts = PurePosixPath(relative).parts
    candidates = [root.joinpath(*parts)]
    if parts and parts[0] == FULL:
        candidates.insert(0, root.joinpath(RESIZED, *parts[1:]))
    return next((path for path in candidates if is_image_file(path)), None)


def read_split(spec: Dataset, path: Path) -> list:
    try:
        entries = json.loads(spec.require(path, "file").read_text())
    except json.JSONDecodeError as err:
        raise spec.layout_error(f"{path} is not valid JSON ({err})") from None
    if not isinstance(entries, list):
        raise spec.layout_error(f"{path} holds a {type(entries).__name__}, not a list of records")
    return entries


def is_record(entry) -> bool:
    return isinstance(entry, list) and len(entry) >= 2 and all(isinstance(x, str) for x in entry[:2])


def list_records(spec: Dataset, root: Path):
    skipped: Counter = Counter()
    records = []
    for split, name in SPLIT_FILES.items():
        for entry in read_split(spec, root / name):
            if not is_record(entry):
                skipped["malformed record"] += 1
                continue
            label, relative = entry[0], entry[1]
            path = image_path(root, relative) if label in MIKELS8 else None
            if label not in MIKELS8:
                skipped[f"unknown emotion {label!r}"] += 1
            elif path is None:
                skipped["listed image missing"] += 1
            else:
                image_id = PurePosixPath(relative).with_suffix("").as_posix()
                records.append(ImageRecord(image_id, path, label, split))
    return records, skipped


DATASET = Dataset("emoset", "mikels8", FILES, list_records)
