"""A seed ensemble of Metric Projectors: the mean of the members' unit projections, renormalised.

Each member maps an image to a unit vector in the anchor space; the ensemble's projection is
the normalised average of those vectors, so its dot product with an anchor is the cosine of
the averaged direction (and its nearest anchor is the one with the highest mean similarity
up to that single normalisation). `ensemble_projection` is the one place this average is
computed (cross-validation and the shipped artifact both call it).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from tinyemo.projector.model import MetricProjector


def ensemble_projection(projections: Sequence[torch.Tensor]) -> torch.Tensor:
    """`[N, d]` unit rows: the normalised mean of the members' `[N, d]` unit projections."""
    if not projections:
        raise ValueError("an ensemble needs at least one member's projections")
    return F.normalize(torch.stack(list(projections)).mean(dim=0), dim=1)


class SeedEnsemble(nn.Module):
    """Projectors of one recipe trained with different seeds, used as one model."""

    def __init__(self, members: Sequence[MetricProjector]):
        super().__init__()
        if not members:
            raise ValueError("a seed ensemble needs at least one member")
        shapes = {(m.in_dim, m.out_dim) for m in members}
        if len(shapes) != 1:
            raise ValueError(f"ensemble members disagree on their input/output widths: {sorted(shapes)}")
        self.members = nn.ModuleList(members)
        self.in_dim, self.out_dim = members[0].in_dim, members[0].out_dim

    def config(self) -> dict:
        """Enough to rebuild the module from its state dict (see tinyemo.projector.artifact)."""
        return {**self.members[0].config(), "members": len(self.members)}

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return ensemble_projection([member(pooled) for member in self.members])

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_projector(config: dict) -> MetricProjector | SeedEnsemble:
    """The module described by `config()` of a MetricProjector or a SeedEnsemble."""
    config = dict(config)
    members = config.pop("members", None)
    if members is None:
        return MetricProjector(**config)
    return SeedEnsemble([MetricProjector(**config) for _ in range(int(members))])
