"""Frozen vision towers behind the registry: one small module per family.

`load_vision_tower(name)` returns a `VisionTower` (eval, no grads) with `.spec`,
`.preprocess(images) -> pixels` and `.forward(pixels) -> (pooled, patches)`;
`encode_images` runs it over many images in batches. `prepare_vision_tower` is the
`assets` stage's step that puts pretrained weights into `models/base/<name>/`.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from PIL import Image

from tinyemo import paths
from tinyemo.models import registry
from tinyemo.models.folders import write_manifest
from tinyemo.models.vision import clip, efficientnet, tiny_cnn
from tinyemo.models.vision.base import VisionTower

FAMILIES = {
    "timm-efficientnet-lite": efficientnet,
    "open_clip": clip,
    "tiny-random": tiny_cnn,
}


def _family(spec: registry.VisionTowerSpec):
    return FAMILIES[spec.family]


def load_vision_tower(name: str, base_dir: Path = paths.BASE_MODELS) -> VisionTower:
    spec = registry.vision_tower_spec(name)
    return _family(spec).load(spec, Path(base_dir))


def prepare_vision_tower(name: str, out_dir: Path) -> dict:
    """Make `name` loadable offline from `out_dir` (stage `assets`); return its manifest."""
    spec = registry.vision_tower_spec(name)
    started = time.perf_counter()
    details = _family(spec).prepare(spec, Path(out_dir))
    manifest = {"name": name, "family": spec.family, "source": spec.source, **details,
                "prepare_seconds": round(time.perf_counter() - started, 2)}
    return write_manifest(out_dir, manifest)


def _open(item) -> Image.Image:
    if isinstance(item, Image.Image):
        return item
    with Image.open(item) as image:
        return image.convert("RGB")


@torch.inference_mode()
def encode_images(tower: VisionTower, images, batch_size: int = 32):
    """(pooled [N, pooled_dim], patches [N, P, patch_dim]) for PIL images or image paths."""
    from tqdm.auto import tqdm

    pooled, patches = [], []
    with tqdm(total=len(images), desc=f"encoding with {tower.spec.name}", mininterval=5) as bar:
        for start in range(0, len(images), batch_size):
            batch = [_open(item) for item in images[start:start + batch_size]]
            p, q = tower(tower.preprocess(batch))
            pooled.append(p)
            patches.append(q)
            bar.update(len(batch))
    if not pooled:
        raise ValueError("encode_images needs at least one image")
    return torch.cat(pooled), torch.cat(patches)


__all__ = ["VisionTower", "encode_images", "load_vision_tower", "prepare_vision_tower"]
