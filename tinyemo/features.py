"""Cached image embeddings: one `FeatureSet` per dataset split, stored as safetensors + JSON.

A feature set holds, per image, an id, a label name and the frozen vision tower's pooled
embedding (the Metric Projector's input); EmoScenes sets also hold the patch grid (the
MM-LLM connector's input). On disk, `<split>.safetensors` holds the tensors (pooled float32,
patches float16 to halve their size) and `<split>.json` the ids, labels, label names and
free-form metadata (e.g. which vision tower made them).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tinyemo import paths
from tinyemo.errors import TinyEmoError
from tinyemo.taxonomy import label_positions

DATASETS = ("emoscenes", "emotion6")
SPLITS = ("train", "val", "test")


class FeatureError(ValueError, TinyEmoError):
    """Malformed or missing features; the message names the file and the fix."""


@dataclass
class FeatureSet:
    ids: list[str]
    pooled: torch.Tensor  # [N, D] float32
    labels: list[str]  # one name of `label_names` per row
    label_names: tuple[str, ...]
    patches: torch.Tensor | None = None  # [N, P, d_patch] or None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.label_names = tuple(self.label_names)
        self.ids, self.labels = list(self.ids), list(self.labels)
        self.pooled = self.pooled.float()
        n = len(self.ids)
        if self.pooled.ndim != 2 or self.pooled.shape[0] != n:
            raise FeatureError(f"pooled features must be [N={n}, D], got {tuple(self.pooled.shape)}")
        if len(self.labels) != n:
            raise FeatureError(f"{len(self.labels)} labels for {n} ids")
        if len(set(self.ids)) != n:
            raise FeatureError("feature ids must be unique")
        unknown = sorted(set(self.labels) - set(self.label_names))
        if unknown:
            raise FeatureError(f"unknown label(s) {unknown}; valid: {', '.join(self.label_names)}")
        if self.patches is not None and (self.patches.ndim != 3 or self.patches.shape[0] != n):
            raise FeatureError(f"patches must be [N={n}, P, d], got {tuple(self.patches.shape)}")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return self.pooled.shape[1]

    def label_ids(self) -> torch.Tensor:
        """Label positions in `label_names` (int64 [N])."""
        return torch.tensor(label_positions(self.labels, self.label_names), dtype=torch.long)

    def subset(self, rows) -> "FeatureSet":
        rows = [int(r) for r in rows]
        return FeatureSet(
            ids=[self.ids[r] for r in rows], pooled=self.pooled[rows],
            labels=[self.labels[r] for r in rows], label_names=self.label_names,
            patches=None if self.patches is None else self.patches[rows], meta=dict(self.meta),
        )

    def save(self, path: Path) -> None:
        """Write `path` (.safetensors) and its JSON sidecar (same name, .json)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"pooled": self.pooled.contiguous()}
        if self.patches is not None:
            tensors["patches"] = self.patches.to(torch.float16).contiguous()
        save_file(tensors, path)
        sidecar = {"ids": self.ids, "labels": self.labels, "label_names": list(self.label_names),
                   "meta": self.meta}
        path.with_suffix(".json").write_text(json.dumps(sidecar) + "\n")

    @classmethod
    def load(cls, path: Path) -> "FeatureSet":
        from safetensors.torch import load_file

        path = Path(path)
        sidecar = path.with_suffix(".json")
        for needed in (path, sidecar):
            if not needed.exists():
                raise FeatureError(f"{needed} is missing; run `dvc repro features` to make it")
        try:
            tensors = load_file(path)
            info = json.loads(sidecar.read_text())
            patches = tensors.get("patches")
            return cls(
                ids=info["ids"], pooled=tensors["pooled"], labels=info["labels"],
                label_names=tuple(info["label_names"]),
                patches=None if patches is None else patches.float(), meta=info.get("meta", {}),
            )
        except FeatureError as err:
            raise FeatureError(f"{path}: {err}; rebuild it with `dvc repro features`") from None
        except Exception as err:  # truncated file, bad JSON, missing key
            raise FeatureError(
                f"{path} (or its .json sidecar) is unreadable ({type(err).__name__}: {err}); "
                "rebuild it with `dvc repro features`"
            ) from None


def feature_path(dataset: str, split: str, root: Path = paths.FEATURES) -> Path:
    if dataset not in DATASETS:
        raise FeatureError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise FeatureError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    return Path(root) / dataset / f"{split}.safetensors"


def available_splits(dataset: str, root: Path = paths.FEATURES) -> list[str]:
    """The splits of `dataset` present on disk, in train/val/test order."""
    return [s for s in SPLITS if feature_path(dataset, s, root).exists()]


def load_features(dataset: str, split: str, root: Path = paths.FEATURES) -> FeatureSet:
    """The cached features of one split (written by stage `features`)."""
    path = feature_path(dataset, split, root)
    if not path.exists():
        present = available_splits(dataset, root)
        raise FeatureError(
            f"no {split} features for {dataset} at {path} (present: {present or 'none'}); "
            "run `dvc repro features` (Emotion6 has a test split only if its data has test/)"
        )
    return FeatureSet.load(path)
