"""Synthetic features whose class structure is known, for the projector tests."""
import torch
from torch.nn import functional as F

from tinyemo.projector.anchors import AnchorSet
from tinyemo.taxonomy import EKMAN6


def latent_world(n_per_class=60, feature_dim=32, anchor_dim=16, latent_dim=3, noise=0.15, seed=0):
    """(features, labels, anchor set): each class has a latent point z_k; its anchor is a
    linear image of z_k and its images are another linear image of z_k plus noise. A map
    learned on some classes therefore transfers to the others (as the paper hopes of the
    LLM's embedding space)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(len(EKMAN6), latent_dim, generator=g)
    anchors = F.normalize(z @ torch.randn(latent_dim, anchor_dim, generator=g), dim=1)
    labels = torch.arange(len(EKMAN6)).repeat_interleave(n_per_class)
    features = z[labels] @ torch.randn(latent_dim, feature_dim, generator=g)
    features = features + noise * torch.randn(features.shape, generator=g)
    return features, labels, AnchorSet(EKMAN6, anchors)


def random_anchor_set(dim=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return AnchorSet(EKMAN6, F.normalize(torch.randn(len(EKMAN6), dim, generator=g), dim=1))
