"""`check`: open every image of a dataset folder and summarise what is usable.

Listing a dataset never opens an image; this decodes each one with PIL, so a corrupt,
truncated or unreadable file is found here. Such files are counted as "unreadable image" and
left out, never fatal: `n_images` counts the images that decode. JPEGs decode at 1/8 scale
(PIL's `draft`): the whole compressed stream is still read, so truncation is still caught, at
about 1.6 times the speed of a full decode.
"""
from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from tinyemo.datasets.base import SPLITS

UNREADABLE = "unreadable image"


def is_readable(path: Path) -> bool:
    """Whether PIL decodes the image at `path` to the end of its data."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
        return True
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False


def check(name: str, root: Path, seed: int = 0, workers: int | None = None) -> dict:
    """{"dataset", "n_images", "classes": {label: count}, "splits": {split: count},
    "skipped": {reason: count}} for the dataset `name` in the folder `root`, every image opened
    (`workers` threads; PIL decodes outside the GIL). Every label of the dataset's taxonomy
    appears in "classes", with 0 when no usable image has it."""
    from tqdm.auto import tqdm

    from tinyemo.datasets import dataset

    spec = dataset(name)
    records, skipped = spec.records(root, seed)
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        readable = list(tqdm(pool.map(is_readable, [r.path for r in records]), total=len(records),
                             desc=f"opening {name} images", unit="image", mininterval=2))
    usable = [record for record, ok in zip(records, readable) if ok]
    skipped = Counter(skipped)
    if len(usable) < len(records):
        skipped[UNREADABLE] += len(records) - len(usable)
    classes = Counter(r.label for r in usable)
    splits = Counter(r.split for r in usable)
    return {
        "dataset": name,
        "n_images": len(usable),
        "classes": {label: classes[label] for label in spec.label_names},
        "splits": {split: splits[split] for split in SPLITS},
        "skipped": dict(sorted(skipped.items())),
    }
