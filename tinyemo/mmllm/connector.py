"""The connector between the vision tower's patch tokens and the LLM's input embeddings.

TinyLLaVA's `mlp2x_gelu`: Linear(patch_dim, d) -> GELU -> Linear(d, d), applied to every
patch token, so a 7x7 patch grid becomes 49 "image tokens" in the LLM's embedding space.
Connectors are built by exact name from `CONNECTORS`.
"""
from __future__ import annotations

from torch import nn


def mlp2x_gelu(patch_dim: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(patch_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))


def linear(patch_dim: int, hidden: int) -> nn.Module:
    return nn.Linear(patch_dim, hidden)


CONNECTORS = {"mlp2x_gelu": mlp2x_gelu, "linear": linear}


def build_connector(kind: str, patch_dim: int, hidden: int) -> nn.Module:
    """A connector by exact name; an unknown name lists the valid ones."""
    try:
        factory = CONNECTORS[kind]
    except KeyError:
        raise ValueError(
            f"unknown connector {kind!r}; valid connectors: {', '.join(sorted(CONNECTORS))}"
        ) from None
    return factory(patch_dim, hidden)
