"""Detached inference on new images: the projector's label, then the LLM's reasoning.

Loads the fine-tuned MM-LLM, the Metric Projector and the vision tower they were trained
with; encodes image files once (pooled embedding for the projector, patch grid for the
MM-LLM) and writes, per image, the reasoning for the projector's label. The MM-LLM and the
vision tower run on the GPU when there is one, in the precision the MM-LLM trained in
(`tinyemo.devices`); the projector's small MLP reads the pooled embeddings on the CPU.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from PIL import Image

from tinyemo import devices, paths
from tinyemo.errors import TinyEmoError
from tinyemo.images import UnreadableImageError, read_image  # noqa: F401 (part of this module's interface)
from tinyemo.mmllm import artifact, infer


class IncompatibleModelsError(TinyEmoError, ValueError):
    """A projector and an MM-LLM that read different vision towers' features."""


@dataclass
class Verdict:
    image: str
    label: str
    score: float  # cosine between the projected image and the label's anchor
    options: list[tuple[str, float]]  # the top labels with their scores, best first


class Explainer:
    def __init__(self, model_dir: Path = artifact.MODEL_DIR / "finetune",
                 projector_dir: Path = paths.MODELS / "projector" / "emoscenes",
                 base_dir: Path = paths.BASE_MODELS):
        from tinyemo.models.vision import load_vision_tower
        from tinyemo.projector.artifact import load_projector

        config = artifact.read_config(model_dir, "finetune")
        self.projector = load_projector(projector_dir)
        tower = self.projector.vision_tower
        if tower and tower != config["vision_tower"]:
            raise IncompatibleModelsError(f"the projector in {projector_dir} reads {tower} features but the "
                             f"MM-LLM in {model_dir} reads {config['vision_tower']}; use a matching pair")
        self.model, self.tokenizer, self.config = artifact.load_mmllm(
            model_dir, base_dir=base_dir)
        device = devices.model_device(self.model)
        self.tower = load_vision_tower(config["vision_tower"], base_dir).to(device)
        self.decoding = infer.Decoding.saved(config)

    @torch.inference_mode()
    def encode(self, images: list[Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled, patches) of the images, float32 on the CPU (the tower runs where the
        MM-LLM does)."""
        with devices.autocast(devices.model_device(self.tower), self.model.precision):
            return self.tower(self.tower.preprocess(images))

    def classify(self, names: list[str], pooled: torch.Tensor, k: int = 3) -> list[Verdict]:
        ids, scores = self.projector.topk(pooled, k)
        labels = self.projector.label_names
        return [Verdict(name, labels[row[0]], float(vals[0]),
                        [(labels[i], float(v)) for i, v in zip(row, vals.tolist())])
                for name, row, vals in zip(names, ids.tolist(), scores)]

    def prompt(self, verdict: Verdict) -> str:
        return infer.detached_prompt(verdict.label, [label for label, _ in verdict.options])

    def stream(self, verdict: Verdict, patches: torch.Tensor, max_new_tokens: int) -> Iterator[str]:
        return infer.stream(self.model, self.tokenizer, self.prompt(verdict), patches,
                            max_new_tokens, self.config.get("system_prompt"), self.decoding)

    def reasoning(self, verdict: Verdict, patches: torch.Tensor, max_new_tokens: int) -> str:
        return infer.generate(self.model, self.tokenizer, [self.prompt(verdict)], patches[None],
                              max_new_tokens, 1, self.config.get("system_prompt"), "explain",
                              self.decoding)[0]
