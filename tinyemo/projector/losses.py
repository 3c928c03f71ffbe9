"""Training losses between projected images and their text anchors.

Every loss takes the same arguments:
`projected [B, d]` (unit rows), `targets [B, d]` (each image's own target anchor, possibly a
synonym's), `labels [B]` (label ids) and `class_anchors [K, d]` (the label set's anchors).

- `cosine` (the paper's default): mean of `1 - cos(p_i, t_i)`; it only pulls each image to
  its anchor and never pushes it away from the others.
- `ntxent`: pytorch-metric-learning's `NTXentLoss(temperature=0.07)` with the images as
  embeddings and the batch's target anchors as the reference set; an image and an anchor
  with the same label are a positive pair (its own anchor included), every other pair a
  negative.
- `infonce` (tau 0.1): for each image one positive, its own target anchor, and as negatives
  the anchors of the *other* labels: `-log(exp(s+/tau) / (exp(s+/tau) + sum_neg exp(s-/tau)))`,
  i.e. a softmax cross-entropy over the label set with the own column replaced by the target.
  Upstream's version (`pos_neg_infoNCE`) concatenated `[s+, s-_1, s-_2, ...]` (one positive,
  then one entry per other-label image of the batch) and took as numerator the sum of the
  first `n_pos` entries, where `n_pos` is the number of *other same-label images* in the
  batch; so its numerator added `n_pos - 1` negative similarities to the positive, and
  became larger the more negatives it mislabeled. Optional label smoothing is ours.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

LOSSES = ("cosine", "ntxent", "infonce")
NTXENT_TEMPERATURE = 0.07
INFONCE_TEMPERATURE = 0.1


def cosine_embedding_loss(projected, targets, labels=None, class_anchors=None) -> torch.Tensor:
    return (1.0 - (projected * targets).sum(dim=1)).mean()


def ntxent_loss(projected, targets, labels, class_anchors=None,
                temperature: float = NTXENT_TEMPERATURE) -> torch.Tensor:
    from pytorch_metric_learning.losses import NTXentLoss

    # A *copy* of the labels: pytorch-metric-learning drops the diagonal pairs when
    # `ref_labels is labels`, which would drop each image's pair with its own anchor (as
    # upstream's call did, leaving only other same-label images' anchors as positives).
    return NTXentLoss(temperature=temperature)(projected, labels, ref_emb=targets,
                                               ref_labels=labels.clone())


def infonce_loss(projected, targets, labels, class_anchors,
                 temperature: float = INFONCE_TEMPERATURE, label_smoothing: float = 0.0) -> torch.Tensor:
    logits = projected @ class_anchors.T
    own = (projected * targets).sum(dim=1)
    logits = logits.scatter(1, labels.unsqueeze(1), own.unsqueeze(1))
    return F.cross_entropy(logits / temperature, labels, label_smoothing=label_smoothing)


def make_loss(name: str, *, temperature: float | None = None, label_smoothing: float = 0.0):
    """The loss function called `name` with its options bound."""
    if name == "cosine":
        return cosine_embedding_loss
    if name == "ntxent":
        tau = temperature or NTXENT_TEMPERATURE
        return lambda p, t, y, a: ntxent_loss(p, t, y, a, temperature=tau)
    if name == "infonce":
        tau = temperature or INFONCE_TEMPERATURE
        return lambda p, t, y, a: infonce_loss(p, t, y, a, temperature=tau,
                                               label_smoothing=label_smoothing)
    raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")
