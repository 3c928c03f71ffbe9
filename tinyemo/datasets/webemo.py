"""WEBEmo (Panda et al., 2018): about 268,000 web images in Parrott's 25 fine emotions, split by
upstream into `train/`, `validation/` and `test/`, one folder per emotion.

Two folders ship misspelled (`cheerfullness`, `irritabilty`) and upstream (`WEBEmo.py`) uses the
folder names as label text, so the anchors of two classes were built from misspelled words.
Here the shipped folders are read (a corrected folder name is accepted too) and every label
is spelled as in `tinyemo.taxonomy.PARROTT25`. Upstream's `validation/` is the val split.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from tinyemo.datasets.base import Dataset, folder_records, names_line
from tinyemo.taxonomy import PARROTT25

SHIPPED_SPELLING = {"cheerfulness": "cheerfullness", "irritability": "irritabilty"}
# folder name -> label: the folders as shipped first, then the correct spellings.
FOLDER_LABELS = {SHIPPED_SPELLING.get(e, e): e for e in PARROTT25} | {e: e for e in PARROTT25}
SPLIT_FOLDERS = {"train": "train", "validation": "val", "test": "test"}

FILES = (
    "<root>/{train,validation,test}/<emotion>/*.jpg\n"
    + names_line("<emotion>", [SHIPPED_SPELLING.get(e, e) for e in PARROTT25])
    + "\n  (as shipped, two of them misspelled; the correct spellings are accepted too)"
)


def list_records(spec: Dataset, root: Path):
    skipped: Counter = Counter()
    records = []
    for folder, split in SPLIT_FOLDERS.items():
        records += folder_records(spec, spec.require(root / folder), FOLDER_LABELS, skipped,
                                  split=split, id_base=root)
    return records, skipped


DATASET = Dataset("webemo", "parrott25", FILES, list_records)
