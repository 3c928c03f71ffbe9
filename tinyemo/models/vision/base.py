"""What every vision tower shares: frozen eval mode, square preprocessing, the output contract."""
from __future__ import annotations

import torch
from PIL import Image

from tinyemo.models.registry import VisionTowerSpec


def square(image: Image.Image) -> Image.Image:
    """The largest centred square of `image` (square images, e.g. EmoScenes, are kept whole,
    so nothing near the border, such as a frame, is cropped away)."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))


def to_pixels(images: list[Image.Image], size: int, mean, std) -> torch.Tensor:
    """RGB, centre square, bicubic resize to `size`, normalise: a [N, 3, size, size] batch."""
    import numpy as np

    arrays = [
        np.asarray(square(im.convert("RGB")).resize((size, size), Image.BICUBIC), dtype=np.float32)
        for im in images
    ]
    pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 255.0
    mean = torch.tensor(mean).view(1, 3, 1, 1)
    std = torch.tensor(std).view(1, 3, 1, 1)
    return (pixels - mean) / std


class VisionTower(torch.nn.Module):
    """A frozen image encoder. `forward(pixels)` -> (pooled [N, pooled_dim], patches [N, P, patch_dim]).

    Subclasses set `self.spec` and implement `preprocess` and `encode`. The tower stays in
    eval mode (its batch-norm statistics never move) and its parameters never need grads.
    """

    def __init__(self, spec: VisionTowerSpec):
        super().__init__()
        self.spec = spec

    def freeze(self) -> "VisionTower":
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> "VisionTower":
        return super().train(False)  # frozen: always eval

    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled, patches) as float32 on the CPU, wherever the tower runs."""
        weights = next(self.parameters(), None)
        if weights is not None:
            pixels = pixels.to(weights.device, weights.dtype)
        pooled, patches = self.encode(pixels)
        if pooled.shape[1] != self.spec.pooled_dim or patches.shape[2] != self.spec.patch_dim:
            raise RuntimeError(
                f"{self.spec.name} produced pooled {tuple(pooled.shape)} and patches "
                f"{tuple(patches.shape)}; the registry promises widths {self.spec.pooled_dim} "
                f"and {self.spec.patch_dim}"
            )
        return pooled.float().cpu(), patches.float().cpu()
