"""Cached image embeddings: one `FeatureSet` per dataset split, stored as safetensors shards.

A feature set holds, per image, an id, a label name and the frozen vision tower's pooled
embedding (the Metric Projector's input); EmoScenes sets also hold the patch grid (the
MM-LLM connector's input).

On disk a split is a folder `data/features/<dataset>/<split>/`:

- `shard-00000.safetensors`, ...: `pooled` [n, D] (in the dtype the tower ran in: float16
  for the paper's CLIP, as upstream ships it) and, optionally, `patches` [n, P, d] float16;
- `shard-00000.json`, ...: the shard's ids, labels, label names and metadata;
- `manifest.json`, written last: the shards in order and their row counts. A folder without
  it is an unfinished `encode` run (rerun it to resume).

A single `<name>.safetensors` + `<name>.json` pair is one shard, and loads on its own (the
format of earlier releases). Pooled embeddings are loaded into memory as float32; patch
grids stay on disk in a `PatchStore` that memory-maps the shards and reads the rows a
batch asks for, so a 200k-image grid never has to fit in memory.
"""
from __future__ import annotations

import json
import os
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tinyemo import paths
from tinyemo.errors import TinyEmoError
from tinyemo.taxonomy import label_positions

DATASETS = ("emoscenes", "emotion6")  # the default profile's; every profile's: params encode.datasets
SPLITS = ("train", "val", "test")  # the order splits are listed in
MANIFEST = "manifest.json"
FORMAT = 1  # version of the shard folder layout
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
REBUILD = "rebuild it with `dvc repro encode`"


class FeatureError(ValueError, TinyEmoError):
    """Malformed or missing features; the message names the file and the fix."""


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def sidecar_of(path: Path) -> Path:
    return Path(path).with_suffix(".json")


def write_json(path: Path, payload: dict) -> None:
    """Write `path` atomically (a temporary sibling renamed into place)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload) + "\n")
    os.replace(tmp, path)


def write_shard(path: Path, pooled: torch.Tensor, patches: torch.Tensor | None, sidecar: dict) -> None:
    """One shard: tensors, then the JSON sidecar (its presence marks the shard complete)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"pooled": pooled.contiguous()}
    if patches is not None:
        tensors["patches"] = patches.to(torch.float16).contiguous()
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, tmp)
    os.replace(tmp, path)
    write_json(sidecar_of(path), sidecar)


class PatchStore:
    """Patch grids [N, P, d] kept in safetensors shards, read per batch (memory-mapped).

    Index it like a tensor of rows: an int, a slice, a list, a LongTensor or a numpy array of
    row numbers gives float32 rows. `subset(rows)` is another lazy view; `float()` reads every
    row into memory (for small sets only).
    """

    dtype = torch.float32  # what indexing returns (float16 on disk)

    def __init__(self, files: list[Path], counts: list[int], grid: tuple[int, int],
                 rows: np.ndarray | None = None):
        self.files = [Path(f) for f in files]
        self.counts = [int(c) for c in counts]
        self.starts = np.cumsum([0, *self.counts])
        self.grid = tuple(grid)
        self.rows = np.arange(self.starts[-1]) if rows is None else np.asarray(rows, dtype=np.int64)
        self._handles: dict[int, object] = {}

    def __getstate__(self):  # DataLoader workers reopen the files themselves
        return {**self.__dict__, "_handles": {}}

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.rows), *self.grid))

    @property
    def ndim(self) -> int:
        return 3

    def __len__(self) -> int:
        return len(self.rows)

    def _handle(self, shard: int):
        from safetensors import safe_open

        if shard not in self._handles:
            self._handles[shard] = safe_open(str(self.files[shard]), framework="pt")
        return self._handles[shard]

    def _read(self, global_rows: np.ndarray) -> torch.Tensor:
        out = torch.empty((len(global_rows), *self.grid), dtype=torch.float32)
        order = np.argsort(global_rows, kind="stable")
        start = 0
        while start < len(order):  # one read per run of consecutive rows within a shard
            first = int(global_rows[order[start]])
            shard = bisect_right(self.starts, first) - 1
            end = start + 1
            while (end < len(order) and global_rows[order[end]] == global_rows[order[end - 1]] + 1
                   and global_rows[order[end]] < self.starts[shard + 1]):
                end += 1
            last = int(global_rows[order[end - 1]])
            local = first - int(self.starts[shard])
            block = self._handle(shard).get_slice("patches")[local:local + last - first + 1]
            out[torch.as_tensor(order[start:end])] = block.float()
            start = end
        return out

    def _rows_of(self, index) -> np.ndarray:
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        return self.rows[index]

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, (int, np.integer)):
            return self._read(self.rows[[int(index)]])[0]
        return self._read(np.atleast_1d(self._rows_of(index)))

    def subset(self, rows) -> "PatchStore":
        if not isinstance(rows, (torch.Tensor, np.ndarray, slice)):
            rows = list(rows)
        return PatchStore(self.files, self.counts, self.grid, np.atleast_1d(self._rows_of(rows)))

    def float(self) -> torch.Tensor:
        return self._read(self.rows)

    def __repr__(self) -> str:
        return f"PatchStore(shape={tuple(self.shape)}, shards={len(self.files)})"


@dataclass
class FeatureSet:
    ids: list[str]
    pooled: torch.Tensor  # [N, D] float32
    labels: list[str]  # one name of `label_names` per row
    label_names: tuple[str, ...]
    patches: torch.Tensor | PatchStore | None = None  # [N, P, d_patch] or None
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
        if self.patches is None:
            patches = None
        elif isinstance(self.patches, PatchStore):
            patches = self.patches.subset(rows)
        else:
            patches = self.patches[rows]
        return FeatureSet(
            ids=[self.ids[r] for r in rows], pooled=self.pooled[rows],
            labels=[self.labels[r] for r in rows], label_names=self.label_names,
            patches=patches, meta=dict(self.meta),
        )

    def sidecar(self, rows: slice = slice(None)) -> dict:
        return {"ids": self.ids[rows], "labels": self.labels[rows],
                "label_names": list(self.label_names), "meta": self.meta}

    def save(self, path: Path, shard_size: int = 10_000, pooled_dtype: torch.dtype = torch.float32) -> Path:
        """Write a shard folder (`path` without a suffix), or one shard file (`*.safetensors`)."""
        path = Path(path)
        pooled = self.pooled.to(pooled_dtype)
        if path.suffix == ".safetensors":
            patches = self.patches.float() if isinstance(self.patches, PatchStore) else self.patches
            write_shard(path, pooled, patches, self.sidecar())
            return path
        writer = ShardWriter(path, fingerprint="saved")
        writer.reset()
        for index, start in enumerate(range(0, max(len(self), 1), shard_size)):
            rows = slice(start, start + shard_size)
            patches = None if self.patches is None else self.patches[rows]
            writer.write(index, self.ids[rows], self.labels[rows], self.label_names,
                         pooled[rows], patches, self.meta)
        writer.finish(self.meta)
        return path

    @classmethod
    def load(cls, path: Path) -> "FeatureSet":
        """A shard folder (with its manifest) or a single shard file."""
        path = Path(path)
        if path.is_dir():
            return load_folder(path)
        return load_shards([path], str(path))


def _read_sidecar(path: Path) -> dict:
    sidecar = sidecar_of(path)
    for needed in (path, sidecar):
        if not needed.exists():
            raise FeatureError(f"{needed} is missing; {REBUILD}")
    return json.loads(sidecar.read_text())


def load_shards(files: list[Path], where: str) -> FeatureSet:
    """One FeatureSet from shard files (pooled in memory, patches memory-mapped)."""
    from safetensors import safe_open

    ids, labels, pooled, counts, grid, meta, names = [], [], [], [], None, {}, None
    try:
        for file in files:
            info = _read_sidecar(file)
            names = names or tuple(info["label_names"])
            if tuple(info["label_names"]) != names:
                raise FeatureError(f"{file} has other label names than the shards before it")
            with safe_open(str(file), framework="pt") as handle:
                pooled.append(handle.get_tensor("pooled").float())
                has_patches = "patches" in handle.keys()
                if has_patches:
                    shape = tuple(handle.get_slice("patches").get_shape())
                    grid = grid or shape[1:]
            if (grid is not None) != has_patches and counts:
                raise FeatureError(f"{file}: some shards have patch grids and some do not")
            ids += info["ids"]
            labels += info["labels"]
            counts.append(len(info["ids"]))
            meta = info.get("meta", {})
        patches = PatchStore(files, counts, grid) if grid is not None else None
        return FeatureSet(ids=ids, pooled=torch.cat(pooled), labels=labels, label_names=names,
                          patches=patches, meta=meta)
    except FeatureError as err:
        raise FeatureError(f"{where}: {err}; {REBUILD}") from None
    except Exception as err:  # truncated file, bad JSON, missing key
        raise FeatureError(
            f"{where} (or a .json sidecar) is unreadable ({type(err).__name__}: {err}); {REBUILD}"
        ) from None


def read_manifest(folder: Path) -> dict:
    manifest = Path(folder) / MANIFEST
    if not manifest.exists():
        raise FeatureError(
            f"{folder} has no {MANIFEST}: the `encode` run that writes it did not finish; rerun "
            "`dvc repro encode` (it resumes from the complete shards)"
        )
    try:
        return json.loads(manifest.read_text())
    except json.JSONDecodeError as err:
        raise FeatureError(f"{manifest} is unreadable ({err}); {REBUILD}") from None


def load_folder(folder: Path) -> FeatureSet:
    manifest = read_manifest(folder)
    files = [Path(folder) / s["file"] for s in manifest["shards"] if s["n"] > 0]
    if not files:
        raise FeatureError(f"{folder} holds no encoded images (skipped: {manifest.get('skipped')})")
    features = load_shards(files, str(folder))
    if len(features) != manifest["n"]:
        raise FeatureError(f"{folder}: the manifest lists {manifest['n']} rows, the shards hold "
                           f"{len(features)}; {REBUILD}")
    features.meta = manifest.get("meta", features.meta)
    return features


class ShardWriter:
    """Writes the shards of one split folder, resumably: a shard whose sidecar carries the
    run's fingerprint is complete and kept; anything else in the folder is from another run."""

    def __init__(self, folder: Path, fingerprint: str):
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self.shards: dict[int, dict] = {}

    def completed(self) -> dict[int, dict]:
        """{index: sidecar} of the complete shards of this run already in the folder."""
        done = {}
        for sidecar in sorted(self.folder.glob("shard-*.json")):
            try:
                info = json.loads(sidecar.read_text())
            except json.JSONDecodeError:
                continue
            tensors = sidecar.with_suffix(".safetensors")
            if info.get("fingerprint") == self.fingerprint and (info["n"] == 0 or tensors.exists()):
                done[int(info["index"])] = info
        return done

    def reset(self, keep: dict[int, dict] | None = None) -> None:
        """Remove the manifest and every shard not in `keep`."""
        keep = keep or {}
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / MANIFEST).unlink(missing_ok=True)
        names = {shard_name(i) for i in keep}
        for path in self.folder.iterdir():
            if path.is_file() and path.stem.lstrip(".").split(".")[0] not in names:
                path.unlink()
        self.shards = dict(keep)

    def write(self, index: int, ids: list[str], labels: list[str], label_names, pooled: torch.Tensor,
              patches: torch.Tensor | None, meta: dict, skipped: dict[str, str] | None = None) -> None:
        path = self.folder / f"{shard_name(index)}.safetensors"
        info = {"index": index, "n": len(ids), "fingerprint": self.fingerprint, "ids": list(ids),
                "labels": list(labels), "label_names": list(label_names), "meta": meta,
                "skipped": skipped or {}}
        if ids:
            write_shard(path, pooled, patches, info)
        else:  # every image of this range was unreadable: only the sidecar
            write_json(sidecar_of(path), info)
        self.shards[index] = info

    def finish(self, meta: dict) -> dict:
        """Write the manifest (last: it marks the folder complete); return it."""
        from collections import Counter

        order = sorted(self.shards)
        skipped = Counter(reason for i in order for reason in self.shards[i]["skipped"].values())
        manifest = {
            "format": FORMAT, "fingerprint": self.fingerprint,
            "n": sum(self.shards[i]["n"] for i in order),
            "shards": [{"file": f"{shard_name(i)}.safetensors", "n": self.shards[i]["n"]} for i in order],
            "skipped": dict(sorted(skipped.items())), "meta": meta,
        }
        write_json(self.folder / MANIFEST, manifest)
        return manifest


def _check_name(kind: str, name: str) -> None:
    if not NAME.match(name):
        raise FeatureError(f"invalid {kind} name {name!r}: use lower-case letters, digits, - and _")


def split_path(dataset: str, split: str, root: Path = paths.FEATURES) -> Path:
    """The shard folder of one split."""
    _check_name("dataset", dataset)
    _check_name("split", split)
    return Path(root) / dataset / split


def feature_path(dataset: str, split: str, root: Path = paths.FEATURES) -> Path:
    """Where one split's features are: its shard folder, or a single-file set if only that exists."""
    folder = split_path(dataset, split, root)
    single = folder.with_suffix(".safetensors")
    return single if single.exists() and not folder.exists() else folder


def available_splits(dataset: str, root: Path = paths.FEATURES) -> list[str]:
    """The splits of `dataset` present on disk, train/val/test first."""
    folder = Path(root) / dataset
    if not folder.is_dir():
        return []
    found = {p.name for p in folder.iterdir() if (p / MANIFEST).exists()}
    found |= {p.stem for p in folder.glob("*.safetensors")}
    return sorted(found, key=lambda s: (SPLITS.index(s) if s in SPLITS else len(SPLITS), s))


def encoded_datasets(root: Path = paths.FEATURES) -> list[str]:
    """The datasets under `root` with at least one complete split."""
    root = Path(root)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and available_splits(p.name, root)) \
        if root.is_dir() else []


def load_features(dataset: str, split: str, root: Path = paths.FEATURES) -> FeatureSet:
    """The cached features of one split (written by stage `encode`)."""
    path = feature_path(dataset, split, root)
    if not path.exists():
        present = available_splits(dataset, root)
        raise FeatureError(
            f"no {split} features for {dataset} at {path} (present: {present or 'none'}); "
            f"run `dvc repro encode@{dataset}` (datasets are listed in params.yaml `encode.datasets`)"
        )
    return FeatureSet.load(path)
