"""The object-presence probe (`ceiling.probe`) on any vision tower at any input size.

The cached EmoScenes features hold one tower at one input size; choosing a tower needs
others. `encode_split` encodes a split's images straight from the image folder with the
tower given, and `at_input_size` reruns a tower at another input side (the EfficientNet-Lite
towers are fully convolutional, so a larger input gives a finer patch grid; EmoScenes images
are upscaled to it). `benchmarks/vision_probe.py` tabulates them.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from tinyemo import paths
from tinyemo.models.vision import VisionTower, encode_images


def at_input_size(tower: VisionTower, image_size: int) -> VisionTower:
    """The same tower (same weights) preprocessing its images to `image_size` px."""
    tower.spec = dataclasses.replace(tower.spec, image_size=image_size)
    return tower


def encode_split(tower: VisionTower, split: str, limit: int | None = None,
                 root: Path = paths.EMOSCENES, batch_size: int = 32):
    """(patches [N, P, patch_dim], the SceneRecords, encode seconds) of the first `limit`
    images of an EmoScenes split in id order (all of them when `limit` is None)."""
    from tinyemo.scenes import load_scene_records

    records = load_scene_records(root, split=split)[:limit]
    started = time.perf_counter()
    _, patches = encode_images(tower, [record.image_path(root) for record in records], batch_size)
    return patches, records, time.perf_counter() - started
