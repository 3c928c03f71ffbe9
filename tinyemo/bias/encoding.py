"""Images of the bias stage through the frozen vision tower, as the `encode` stage did it.

The control and the counterfactual probe compare features they encode now with features
`encode` stored, so both must come from the same computation: the tower runs on the GPU when
there is one (`tinyemo.devices`), under autocast in the precision the stored features were
encoded in (`encode.dtype`, read from their manifest: fp32, fp16 or bf16), and on the CPU
in float32.
"""
from __future__ import annotations

from tinyemo import devices


def stored_precision(dataset: str = "emoscenes", split: str = "train") -> str:
    """The precision the features of `dataset`/`split` were encoded in (fp32 when their
    manifest does not say)."""
    from tinyemo.feature_store import read_manifest, split_path

    meta = read_manifest(split_path(dataset, split)).get("meta", {})
    return meta.get("settings", {}).get("dtype", "fp32")


def encode(tower, images, batch_size: int = 32, precision: str = "fp32"):
    """(pooled, patches) of `images`, float32 on the CPU; the tower moves to the GPU when
    there is one and runs in `precision` there."""
    from tinyemo.models.vision import encode_images

    device = devices.inference_device()
    with devices.autocast(device, precision):
        return encode_images(tower.to(device), images, batch_size)
