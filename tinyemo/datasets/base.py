"""What every dataset module builds on: the image record, the dataset spec and layout checks.

A dataset module lists its images from the folder layout alone (it never opens an image) and
returns every image with its label (as the text anchors read it) and its split. Anything it
has to leave out is counted by reason in a `Counter`, never dropped silently.
"""
from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tinyemo.errors import TinyEmoError
from tinyemo.datasets.splits import TEST_FRACTION, VAL_FRACTION, carve, check_seed
from tinyemo.taxonomy import taxonomy as taxonomy_labels

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # upstream globs `*.jpg` only; the others are harmless


class DatasetLayoutError(TinyEmoError, ValueError):
    """A dataset folder lacks what its layout needs; the message names it and the expected layout."""


@dataclass(frozen=True)
class ImageRecord:
    id: str  # unique within the dataset, relative and stable (e.g. "anger/12")
    path: Path  # the image file
    label: str  # the label as the text anchors read it, one of the dataset's label_names
    split: str  # "train" | "val" | "test"


Lister = Callable[["Dataset", Path], "tuple[list[ImageRecord], Counter]"]


@dataclass(frozen=True)
class Dataset:
    name: str
    taxonomy: str  # a name in tinyemo.taxonomy.TAXONOMIES
    files: str  # the files and folders the layout needs, in words
    lister: Lister  # (this spec, root) -> (records split as upstream splits them, skipped reasons)
    carved: tuple[str, ...] = ()  # splits upstream lacks, carved (seeded, stratified) from train

    @property
    def label_names(self) -> tuple[str, ...]:
        return taxonomy_labels(self.taxonomy)

    @property
    def layout(self) -> str:
        """The expected folder layout and where the splits come from (quoted by layout errors)."""
        pct = {"test": f"{TEST_FRACTION:.0%}", "val": f"{VAL_FRACTION:.0%}"}
        if set(self.carved) == {"test", "val"}:
            splits = (f"none shipped; test = {pct['test']} of each class, val = {pct['val']} of "
                      "the rest (seeded)")
        elif self.carved == ("val",):
            splits = f"train and test shipped; val = {pct['val']} of each train class (seeded)"
        else:
            splits = "shipped with the data"
        return f"{self.files}\n  splits: {splits}"

    def records(self, root: Path, seed: int = 0) -> tuple[list[ImageRecord], Counter]:
        """Every usable image of the folder `root` with its label and split, sorted by id and
        listed by layout only (no image is opened), and the count of what was left out, by
        reason. The splits upstream lacks are carved from train with `seed` (test first: a
        dataset with no split at all loses TEST_FRACTION of each class to test, then
        VAL_FRACTION of what is left to val)."""
        root = Path(root)
        if not root.is_dir():
            raise self.layout_error(f"the dataset folder {root} does not exist")
        check_seed(seed)
        listed, skipped = self.lister(self, root)
        if not listed:
            raise self.layout_error(f"{root} holds no image of this dataset")
        unique: dict[str, ImageRecord] = {}
        for record in sorted(listed, key=lambda r: r.id):
            if record.id in unique:
                skipped["duplicate id"] += 1
            else:
                unique[record.id] = record
        records = list(unique.values())
        if "test" in self.carved:
            records = carve(records, "test", TEST_FRACTION, seed)
        if "val" in self.carved:
            records = carve(records, "val", VAL_FRACTION, seed)
        return records, skipped

    def layout_error(self, problem: str) -> DatasetLayoutError:
        return DatasetLayoutError(f"{self.name}: {problem}; expected layout:\n{self.layout}")

    def require(self, path: Path, kind: str = "folder") -> Path:
        """`path` if it exists as a `kind` ("folder" or "file"), else a layout error naming it."""
        found = path.is_dir() if kind == "folder" else path.is_file()
        if not found:
            raise self.layout_error(f"the {kind} {path} is missing")
        return path


def names_line(title: str, names) -> str:
    """`  title: a, b, c` wrapped under the first name (for the `files` text)."""
    return textwrap.fill(", ".join(names), width=92, initial_indent=f"  {title}: ",
                         subsequent_indent=" " * (len(title) + 4))


def record_id(path: Path, base: Path) -> str:
    """The id of an image: its path relative to `base`, POSIX separators, without the suffix."""
    return path.relative_to(base).with_suffix("").as_posix()


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def image_files(folder: Path, skipped: Counter, pattern: str = "*") -> list[Path]:
    """The image files matching `pattern` under `folder`, sorted; other visible files are counted
    in `skipped` as "not an image file" (hidden files such as .DS_Store are ignored)."""
    found = []
    for path in sorted(folder.glob(pattern)):
        if path.name.startswith(".") or path.is_dir():
            continue
        if is_image_file(path):
            found.append(path)
        else:
            skipped["not an image file"] += 1
    return found


def class_folders(spec: "Dataset", folder: Path, folder_labels: dict[str, str],
                  skipped: Counter) -> list[tuple[Path, str]]:
    """(subfolder, label) for each subfolder of `folder` named in `folder_labels` (folder name ->
    label). A label with no folder is a layout error; a subfolder with another name is counted in
    `skipped` (as "unknown folder NAME") with its images, never made a class of its own."""
    spec.require(folder)
    found = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name in folder_labels:
            found.append((sub, folder_labels[sub.name]))
            continue
        n_images = sum(1 for p in sub.rglob("*") if is_image_file(p))
        if n_images:
            skipped[f"unknown folder {sub.name!r}"] += n_images
    missing = sorted(set(folder_labels.values()) - {label for _, label in found})
    if missing:
        first_name = {}
        for name, label in folder_labels.items():
            first_name.setdefault(label, name)
        names = [first_name[label] for label in missing]
        raise spec.layout_error(f"{folder} lacks the class folder(s) {', '.join(names)}")
    return found


def folder_records(spec: "Dataset", folder: Path, folder_labels: dict[str, str], skipped: Counter,
                   *, split: str, id_base: Path, pattern: str = "*") -> list[ImageRecord]:
    """The images `folder/<class folder>/<pattern>` as records of `split`, ids relative to
    `id_base`."""
    return [
        ImageRecord(record_id(path, id_base), path, label, split)
        for sub, label in class_folders(spec, folder, folder_labels, skipped)
        for path in image_files(sub, skipped, pattern)
    ]
