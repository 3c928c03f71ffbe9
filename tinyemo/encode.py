"""Stage `encode`: images -> sharded feature folders, one per split, with a frozen vision tower.

A DataLoader (with worker processes if asked) opens and preprocesses the images; an image
that cannot be read is skipped and counted, never fatal. Batches go through the tower under
`torch.autocast` when the dtype is fp16/bf16. Records are cut into fixed ranges of
`shard_size` records; each range becomes one shard when its last image is encoded, so at
most one shard's rows are held in memory, whatever the size of the dataset.

Restarting an interrupted run keeps the complete shards and encodes only the rest. A run
is identified by a fingerprint of the record list (ids, files, sizes, labels), the tower and
the settings that change the output: a changed dataset starts over instead of resuming.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from tinyemo.datasets import UNREADABLE
from tinyemo.feature_store import ShardWriter, SPLITS, split_path

MISSING = "missing image"  # a record whose file has gone since the listing
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class EncodeSettings:
    batch_size: int = 32  # images per forward pass
    num_workers: int = 0  # DataLoader processes opening and preprocessing images (0: in-process)
    shard_size: int = 10_000  # records per shard (the most rows held in memory)
    dtype: str = "fp32"  # fp32 | fp16 | bf16: autocast dtype, and the pooled dtype on disk
    device: str = "auto"  # auto (cuda if available, else cpu) | cpu | cuda | cuda:N
    patches: bool = False  # keep the patch grid (float16 on disk)

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


class ImageFiles(torch.utils.data.Dataset):
    """Item i: (i, preprocessed pixels [3, H, W], "") or (i, None, why it was skipped)."""

    def __init__(self, records: Sequence, indices: Sequence[int], preprocess):
        self.records, self.indices, self.preprocess = records, list(indices), preprocess

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        index = self.indices[k]
        path = self.records[index].path
        try:
            with Image.open(path) as image:
                image.load()
                rgb = image.convert("RGB")
        except FileNotFoundError:
            return index, None, MISSING
        except Exception:  # truncated, not an image, unsupported mode
            return index, None, UNREADABLE
        return index, self.preprocess([rgb])[0], ""


def channels_last(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels in NHWC memory order (what a batched `to_pixels` gives): CPU convolutions run up to
    twice as fast on it as on NCHW."""
    return pixels.contiguous(memory_format=torch.channels_last)


def collate(items):
    indices = [i for i, pixels, _ in items if pixels is not None]
    pixels = torch.stack([p for _, p, _ in items if p is not None]) if indices else None
    skipped = [(i, why) for i, p, why in items if p is None]
    return indices, pixels, skipped


def fingerprint(records: Sequence, tower_name: str, label_names, settings: EncodeSettings) -> str:
    """What makes two runs the same run (device, batch size and workers do not change it)."""
    def size(path) -> int:
        try:
            return Path(path).stat().st_size
        except OSError:
            return -1

    digest = hashlib.sha256()
    digest.update(json.dumps({"tower": tower_name, "labels": list(label_names), "dtype": settings.dtype,
                              "patches": settings.patches, "shard_size": settings.shard_size}).encode())
    for r in records:
        digest.update(f"\n{r.id}\t{r.path}\t{size(r.path)}\t{r.label}".encode())
    return digest.hexdigest()[:16]


class SplitEncoder:
    """Encodes the records of one split into `folder`, one shard per `shard_size` records."""

    def __init__(self, tower, records: Sequence, label_names, folder: Path, settings: EncodeSettings,
                 meta: dict):
        self.tower, self.records, self.settings = tower, list(records), settings
        self.label_names, self.meta = tuple(label_names), meta
        self.writer = ShardWriter(folder, fingerprint(records, tower.spec.name, label_names, settings))
        self.buffered_peak = 0  # the most rows ever held at once (the memory bound's witness)

    def shard_ranges(self) -> list[range]:
        size, n = self.settings.shard_size, len(self.records)
        return [range(start, min(start + size, n)) for start in range(0, max(n, 1), size)]

    def run(self, on_shard=None) -> dict:
        """Encode what is missing; write the manifest; return counts and throughput.

        `on_shard(k)` is called after the k-th shard of this run is written (k from 1).
        """
        ranges = self.shard_ranges()
        done = self.writer.completed()
        self.writer.reset(keep={i: info for i, info in done.items() if i < len(ranges)})
        todo = [i for i, r in enumerate(ranges) if i not in self.writer.shards]
        started, encoded = time.perf_counter(), 0
        for written, shard in enumerate(self._encode(ranges, todo)):
            encoded += shard
            if on_shard is not None:
                on_shard(written + 1)
        seconds = time.perf_counter() - started
        manifest = self.writer.finish(self.meta)
        return {"n": manifest["n"], "skipped": manifest["skipped"], "encoded_now": encoded,
                "resumed_shards": len(ranges) - len(todo), "seconds": round(seconds, 2),
                "images_per_second": round(encoded / seconds, 1) if encoded and seconds > 0 else None}

    def _loader(self, indices: list[int]):
        from multiprocessing import get_all_start_methods

        workers = self.settings.num_workers
        return torch.utils.data.DataLoader(
            ImageFiles(self.records, indices, self.tower.preprocess), batch_size=self.settings.batch_size,
            shuffle=False, num_workers=workers, collate_fn=collate,
            pin_memory=self.settings.torch_device().type == "cuda",
            multiprocessing_context="fork" if workers and "fork" in get_all_start_methods() else None,
        )

    def _encode(self, ranges: list[range], todo: list[int]):
        """Yield the number of images encoded per shard written, shard by shard."""
        from tqdm.auto import tqdm

        if not todo:
            return
        device, dtype = self.settings.torch_device(), DTYPES[self.settings.dtype]
        tower = self.tower.to(device)
        indices = [i for shard in todo for i in ranges[shard]]
        buffer: dict = {"pooled": [], "patches": [], "rows": [], "skipped": {}}
        current = todo[0]
        bar = tqdm(total=len(indices), desc=f"encoding {self.meta.get('dataset', '')} "
                   f"{self.meta.get('split', '')}", unit="img", mininterval=5)
        with torch.inference_mode(), bar:
            for rows, pixels, skipped in self._loader(indices):
                pooled = patches = None
                if pixels is not None:
                    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                        pooled, patches = tower(channels_last(pixels).to(device, non_blocking=True))
                    pooled = pooled.to("cpu", dtype)
                    patches = patches.to("cpu", torch.float16) if self.settings.patches else None
                events = [(i, k, None) for k, i in enumerate(rows)] + [(i, None, why) for i, why in skipped]
                for index, k, why in sorted(events, key=lambda e: e[0]):
                    while index not in ranges[current]:  # the shard is complete: write it
                        yield self._flush(current, buffer)
                        current = todo[todo.index(current) + 1]
                    if why is not None:
                        buffer["skipped"][self.records[index].id] = why
                        continue
                    buffer["rows"].append(index)
                    buffer["pooled"].append(pooled[k])
                    if patches is not None:
                        buffer["patches"].append(patches[k])
                self.buffered_peak = max(self.buffered_peak, len(buffer["rows"]))
                bar.update(len(rows) + len(skipped))
            yield self._flush(current, buffer)

    def _flush(self, shard: int, buffer: dict) -> int:
        rows = list(buffer["rows"])
        pooled = torch.stack(buffer["pooled"]) if rows else None
        patches = torch.stack(buffer["patches"]) if buffer["patches"] else None
        self.writer.write(shard, [self.records[i].id for i in rows], [self.records[i].label for i in rows],
                          self.label_names, pooled, patches, self.meta, dict(buffer["skipped"]))
        for key in ("pooled", "patches", "rows"):
            buffer[key].clear()
        buffer["skipped"].clear()
        return len(rows)


def group_by_split(records: Sequence) -> dict[str, list]:
    """{split: records} with train/val/test first, each in the given order."""
    groups: dict[str, list] = {}
    for record in records:
        groups.setdefault(record.split, []).append(record)
    return dict(sorted(groups.items(), key=lambda kv: (SPLITS.index(kv[0]) if kv[0] in SPLITS else 9, kv[0])))


def encode_dataset(tower, dataset: str, records: Sequence, label_names, settings: EncodeSettings,
                   root: Path) -> dict:
    """Encode every split of `records` into `root/<dataset>/<split>/`; return per-split summaries."""
    summaries = {}
    for split, items in group_by_split(records).items():
        meta = {"dataset": dataset, "split": split, "vision_tower": tower.spec.name,
                "settings": {k: v for k, v in asdict(settings).items() if k in ("dtype", "shard_size", "patches")}}
        encoder = SplitEncoder(tower, items, label_names, split_path(dataset, split, root), settings, meta)
        result = encoder.run()
        counts = Counter(r.label for r in items if r.id not in _skipped_ids(encoder))
        summaries[split] = {**result, "per_class": {name: counts.get(name, 0) for name in label_names}}
    return summaries


def _skipped_ids(encoder: SplitEncoder) -> set[str]:
    return {i for info in encoder.writer.shards.values() for i in info["skipped"]}


def encode_configured(name: str, base, params) -> dict:
    """Stage `encode` for dataset `name` of the validated params: write its features, return metrics."""
    import shutil

    from tinyemo import emotion6, paths

    from tinyemo.datasets import dataset

    root = Path(params.datasets[name].root)
    if not root.exists():
        fetch = " (`dvc repro fetch-emotion6` puts upstream's features there)" if root == emotion6.FETCHED else ""
        raise dataset(name).layout_error(f"the {name} root {root} does not exist{fetch}; put the "
                                         "dataset there or change encode.datasets in profiles/")
    torch.set_num_threads(base.threads)
    started = time.perf_counter()
    out = paths.FEATURES / name
    if emotion6.is_feature_root(root):
        splits = store_precomputed(name, root, params, base.seed, out)
        tower, source = emotion6.UPSTREAM_TOWER, {"precomputed": True, **emotion6.read_source(root)}
        listing_skipped: Counter = Counter()
    else:
        from tinyemo.models.vision import load_vision_tower

        spec = dataset(name)
        records, listing_skipped = spec.records(root, seed=base.seed)
        tower, source = base.vision_tower, {"root": root.as_posix()}
        settings = EncodeSettings(batch_size=params.batch_size, num_workers=params.num_workers,
                                  shard_size=params.shard_size, dtype=params.dtype, device=params.device,
                                  patches=name in params.patches)
        splits = encode_dataset(load_vision_tower(tower), name, records, spec.label_names, settings,
                                paths.FEATURES)
    for stale in (p for p in out.iterdir() if p.name not in splits):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    return summarise(name, tower, splits, listing_skipped, time.perf_counter() - started, source)


def store_precomputed(name: str, root: Path, params, seed: int, out: Path) -> dict:
    """Upstream's `.pt` features -> shard folders (pooled kept in float16, as shipped)."""
    from tinyemo import emotion6

    summaries = {}
    for split, features in emotion6.precomputed_splits(root, params.val_fraction, seed).items():
        features.save(out / split, shard_size=params.shard_size, pooled_dtype=torch.float16)
        counts = Counter(features.labels)
        summaries[split] = {"n": len(features), "skipped": {}, "per_class": {
            label: counts.get(label, 0) for label in features.label_names}}
    return summaries


def summarise(name: str, tower: str, splits: dict, listing_skipped: Counter, seconds: float,
              source: dict) -> dict:
    """metrics.json of one dataset: images, per class, skipped by reason, throughput."""
    per_class: Counter = Counter()
    skipped: Counter = Counter(listing_skipped)
    for summary in splits.values():
        per_class.update(summary["per_class"])
        skipped.update(summary["skipped"])
    encoded = sum(s.get("encoded_now", 0) for s in splits.values())
    encode_seconds = sum(s.get("seconds", 0.0) for s in splits.values())
    return {
        "dataset": name, "vision_tower": tower, "n_images": sum(s["n"] for s in splits.values()),
        "per_class": dict(per_class), "skipped": dict(sorted(skipped.items())),
        "splits": splits, "encoded_now": encoded,
        "images_per_second": round(encoded / encode_seconds, 1) if encoded and encode_seconds else None,
        "seconds": round(seconds, 2), "source": source,
    }
