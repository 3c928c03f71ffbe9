"""The image datasets of the paper (and EmoScenes), looked up by exact name.

Each module knows one dataset's folder layout (upstream's, github.com/ggcr/TinyEmo,
`projector_mps/dataloaders/`, with its defects fixed and named in the module's docstring), its
taxonomy and its splits, and lists `ImageRecord`s without opening an image. `check` opens every
image and summarises what is usable. Datasets that lack a split get it from the one seeded,
stratified helper in `splits`.
"""
from __future__ import annotations

from tinyemo.errors import TinyEmoError
from tinyemo.datasets import (
    abstract, artphoto, emoscenes, emoset, emotion6, emotionroi, fi, unbiasedemo, webemo,
)
from tinyemo.datasets.base import SPLITS, Dataset, DatasetLayoutError, ImageRecord
from tinyemo.datasets.check import UNREADABLE, check, is_readable
from tinyemo.datasets.splits import stratified_split


class UnknownDatasetError(TinyEmoError, ValueError):
    """An unknown dataset name; the message lists the valid names."""


DATASETS: dict[str, Dataset] = {
    module.DATASET.name: module.DATASET
    for module in (
        emotion6, emotionroi, emoset, webemo, fi, artphoto, abstract, unbiasedemo, emoscenes,
    )
}


def dataset(name: str) -> Dataset:
    """The dataset called exactly `name`; an unknown name is an error listing the valid ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}"
        ) from None


__all__ = [
    "DATASETS", "SPLITS", "UNREADABLE", "Dataset", "DatasetLayoutError", "ImageRecord",
    "UnknownDatasetError", "check", "dataset", "is_readable", "stratified_split",
]
