"""open_clip towers (the paper's CLIP ViT-L/14 and ViT-B/16, OpenAI weights), loaded by name.

pooled = `encode_image` (unnormalised; what the paper's projector reads); patches = the
patch tokens (class token dropped) of the penultimate transformer block, as LLaVA and
TinyLLaVA feed their connectors. One forward pass gives both.
"""
from __future__ import annotations

import torch

from tinyemo.models.registry import VisionTowerSpec
from tinyemo.models.vision.base import VisionTower


class OpenClipTower(VisionTower):
    def __init__(self, spec: VisionTowerSpec):
        import open_clip

        super().__init__(spec)
        # OpenAI's weights were trained with QuickGELU; open_clip 3 only warns when the
        # architecture's default GELU is used with them, and the features come out wrong.
        quick_gelu = bool(open_clip.get_pretrained_cfg(spec.architecture, spec.pretrained).get("quick_gelu"))
        model, _, self.transform = open_clip.create_model_and_transforms(
            spec.architecture, pretrained=spec.pretrained or None, force_quick_gelu=quick_gelu
        )
        self.visual = model.visual
        self.freeze()

    def preprocess(self, images):
        return torch.stack([self.transform(image.convert("RGB")) for image in images])

    def encode(self, pixels):
        penultimate = len(self.visual.transformer.resblocks) - 2
        out = self.visual.forward_intermediates(pixels, indices=[penultimate], output_fmt="NLC")
        return out["image_features"], out["image_intermediates"][0]


def load(spec: VisionTowerSpec, base_dir=None) -> OpenClipTower:
    return OpenClipTower(spec)


def prepare(spec: VisionTowerSpec, out_dir) -> dict:
    return {"arch": spec.architecture, "pretrained": spec.pretrained, "loaded_by_name": True}
