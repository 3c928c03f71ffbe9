"""The Metric Projector: a small MLP from a frozen image embedding into the LLM's
token-embedding space.

The paper's block is `Linear(d_v, d) -> BatchNorm1d(d) -> GELU -> Dropout(0.2) -> Linear(d, d)`
with d the LLM's input-embedding width; the output is L2-normalised so that a dot product
with an (L2-normalised) text anchor is a cosine similarity.

`depth` counts the Linear layers (2 = the paper's block; 1 = a linear map; 3 = two hidden
blocks), `width` is the hidden width (default: the output width, as in the paper).
`normalize_input` L2-normalises the image embedding before the first layer (the paper feeds
it raw; CLIP embeddings have norms of about 18-20).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class MetricProjector(nn.Module):
    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        width: int | None = None,
        depth: int = 2,
        dropout: float = 0.2,
        normalize_input: bool = False,
    ):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1 (number of Linear layers), got {depth}")
        width = width or out_dim
        self.in_dim, self.out_dim, self.width, self.depth = in_dim, out_dim, width, depth
        self.dropout, self.normalize_input = dropout, normalize_input
        layers: list[nn.Module] = []
        previous = in_dim
        for _ in range(depth - 1):
            layers += [nn.Linear(previous, width), nn.BatchNorm1d(width), nn.GELU(), nn.Dropout(dropout)]
            previous = width
        layers.append(nn.Linear(previous, out_dim))
        self.mlp = nn.Sequential(*layers)

    def config(self) -> dict:
        """The constructor arguments (enough to rebuild the module from its state dict)."""
        return {
            "in_dim": self.in_dim, "out_dim": self.out_dim, "width": self.width,
            "depth": self.depth, "dropout": self.dropout, "normalize_input": self.normalize_input,
        }

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        if pooled.dim() != 2 or pooled.shape[1] != self.in_dim:
            raise ValueError(
                f"the projector expects pooled features of shape [N, {self.in_dim}], got "
                f"{list(pooled.shape)}: the features come from a different vision tower than "
                "the one it was trained on"
            )
        x = pooled.float()
        if self.normalize_input:
            x = F.normalize(x, dim=1)
        return F.normalize(self.mlp(x), dim=1)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
