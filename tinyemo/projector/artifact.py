"""A trained projector on disk: weights and anchors as safetensors, everything else as JSON.

    models/projector/<name>/
        projector.safetensors   the MLP's state dict
        anchors.safetensors     the label set's anchors [K, d]
        config.json             label names, the MLP's shape, the vision tower and LLM whose
                                spaces it joins, the anchor source/template, the recipe, metrics

No pickles: loading never executes code from the files.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tinyemo.errors import TinyEmoError
from tinyemo.projector.evaluate import nearest_anchor, project
from tinyemo.projector.model import MetricProjector

WEIGHTS, ANCHORS, CONFIG = "projector.safetensors", "anchors.safetensors", "config.json"


class ProjectorLoadError(ValueError, TinyEmoError):
    """A projector directory that is missing, incomplete or inconsistent."""


class FeatureWidthError(ValueError, TinyEmoError):
    """Features whose width is not the one the projector was trained on."""


@dataclass
class ProjectorArtifact:
    model: MetricProjector
    anchors: torch.Tensor  # [K, d] unit rows
    label_names: tuple[str, ...]
    config: dict

    @property
    def feature_dim(self) -> int:
        return self.model.in_dim

    @property
    def vision_tower(self) -> str | None:
        return self.config.get("vision_tower")

    def _check(self, pooled: torch.Tensor) -> torch.Tensor:
        pooled = torch.as_tensor(pooled)
        if pooled.dim() == 1:
            pooled = pooled.unsqueeze(0)
        if pooled.dim() != 2 or pooled.shape[1] != self.feature_dim:
            tower = self.vision_tower or "its vision tower"
            raise FeatureWidthError(
                f"features of shape {list(pooled.shape)} do not fit this projector: it expects "
                f"[N, {self.feature_dim}] pooled features from {tower}; encode the images with "
                "that tower or use a projector trained on your features"
            )
        return pooled.float()

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        """Projected unit vectors [N, d] in the anchor space."""
        return project(self.model, self._check(pooled))

    def predict(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(label ids [N], cosine scores [N, K] against every label's anchor)."""
        return nearest_anchor(self.project(pooled), self.anchors)

    def topk(self, pooled: torch.Tensor, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
        """(label ids [N, k], cosine scores [N, k]), best first."""
        _, scores = self.predict(pooled)
        values, ids = scores.topk(min(k, len(self.label_names)), dim=1)
        return ids, values


def save_projector(directory: str | Path, model: MetricProjector, anchors: torch.Tensor,
                   label_names: Sequence[str], config: dict | None = None) -> Path:
    directory = Path(directory)
    if anchors.shape != (len(label_names), model.out_dim):
        raise ValueError(f"anchors of shape {list(anchors.shape)} do not match "
                         f"{len(label_names)} labels x width {model.out_dim}")
    directory.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS))
    save_file({"anchors": anchors.detach().float().contiguous()}, str(directory / ANCHORS))
    record = {"label_names": list(label_names), "model": model.config(), **(config or {})}
    (directory / CONFIG).write_text(json.dumps(record, indent=2, default=str) + "\n")
    return directory


def load_projector(directory: str | Path) -> ProjectorArtifact:
    directory = Path(directory)
    missing = [name for name in (WEIGHTS, ANCHORS, CONFIG) if not (directory / name).is_file()]
    if missing:
        raise ProjectorLoadError(
            f"{directory} is not a projector directory (missing {', '.join(missing)}); "
            "train one with `dvc repro projector` (it writes models/projector/emotion6 and "
            "models/projector/emoscenes)"
        )
    try:
        config = json.loads((directory / CONFIG).read_text())
        model = MetricProjector(**config["model"])
        model.load_state_dict(load_file(str(directory / WEIGHTS)))
        anchors = load_file(str(directory / ANCHORS))["anchors"]
        label_names = tuple(config["label_names"])
    except (OSError, KeyError, TypeError, RuntimeError, SafetensorError, json.JSONDecodeError) as err:
        raise ProjectorLoadError(f"the projector in {directory} is unreadable or inconsistent: {err}") from None
    if anchors.shape != (len(label_names), model.out_dim):
        raise ProjectorLoadError(f"{directory}: anchors {list(anchors.shape)} do not match the "
                                 f"{len(label_names)} labels and width {model.out_dim}")
    model.eval()
    return ProjectorArtifact(model, anchors, label_names, config)
