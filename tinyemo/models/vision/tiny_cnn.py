"""`tiny-random-cnn`: a four-convolution network with seeded random weights, for the smoke
profile. 64 px in; patches = the 4x4 grid of 16-channel features; pooled = the average of a
32-channel 1x1 head over that grid. Built from this file alone, in milliseconds."""
from __future__ import annotations

import torch
from torch import nn

from tinyemo.models.registry import VisionTowerSpec
from tinyemo.models.vision.base import VisionTower, to_pixels

SEED = 0  # fixed: every run builds the same weights
MEAN = STD = (0.5, 0.5, 0.5)
CHANNELS = (3, 8, 16, 16, 16)  # four stride-2 convolutions: 64 px -> a 4x4 grid


class TinyCNNTower(VisionTower):
    def __init__(self, spec: VisionTowerSpec):
        super().__init__(spec)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            layers = []
            for c_in, c_out in zip(CHANNELS, CHANNELS[1:]):
                layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GELU()]
            self.body = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.Conv2d(CHANNELS[-1], spec.pooled_dim, 1), nn.GELU())
        self.freeze()

    def preprocess(self, images):
        return to_pixels(images, self.spec.image_size, MEAN, STD)

    def encode(self, pixels):
        grid = self.body(pixels)
        return self.head(grid).mean(dim=(2, 3)), grid.flatten(2).transpose(1, 2)


def load(spec: VisionTowerSpec, base_dir=None) -> TinyCNNTower:
    return TinyCNNTower(spec)


def prepare(spec: VisionTowerSpec, out_dir) -> dict:
    return {"seed": SEED, "channels": list(CHANNELS), "mean": MEAN, "std": STD}
