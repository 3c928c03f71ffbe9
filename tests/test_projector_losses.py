"""Losses on hand-checkable cases; InfoNCE in its correct form, not upstream's miscount."""
import math

import pytest
import torch
from torch.nn import functional as F

from tinyemo.projector.losses import (
    cosine_embedding_loss, infonce_loss, make_loss, ntxent_loss,
)

E = torch.eye(3)  # three orthogonal unit anchors


def upstream_infonce(image, text, labels, temperature=0.1):
    """Upstream's pos_neg_infoNCE numerator, transcribed for comparison: after concatenating
    [s+, s-_1, ...], it sums the first n_pos entries, n_pos = other same-label images."""
    losses = []
    for i, label in enumerate(labels):
        n_pos = int(((labels == label).sum() - 1).item())
        negatives = labels != label
        if n_pos == 0 or negatives.sum() == 0:
            continue
        sims = torch.cat([F.cosine_similarity(image[i:i + 1], text[i:i + 1]),
                          F.cosine_similarity(image[i:i + 1], text[negatives])]) / temperature
        exp = sims.exp()
        losses.append(-torch.log(exp[:n_pos].sum() / exp.sum()))
    return torch.stack(losses).mean()


def test_cosine_loss_is_one_minus_cosine():
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert cosine_embedding_loss(p, t).item() == pytest.approx((0 + 1) / 2)


def test_infonce_is_softmax_over_own_anchor_and_other_labels():
    labels = torch.tensor([0, 1])
    p = F.normalize(torch.tensor([[1.0, 0.5, 0.0], [0.2, 1.0, 0.3]]), dim=1)
    loss = infonce_loss(p, E[labels], labels, E, temperature=0.1)
    expected = []
    for i, y in enumerate(labels.tolist()):
        logits = (p[i] @ E.T) / 0.1
        expected.append(-(logits[y] - torch.logsumexp(logits, 0)))
    assert loss.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-4)


def test_infonce_positive_is_the_target_even_when_it_is_a_synonym():
    labels = torch.tensor([0])
    p = F.normalize(torch.tensor([[1.0, 1.0, 0.0]]), dim=1)
    synonym = F.normalize(torch.tensor([[1.0, 1.0, 0.0]]), dim=1)  # p sits exactly on it
    by_synonym = infonce_loss(p, synonym, labels, E)
    by_label = infonce_loss(p, E[labels], labels, E)
    assert by_synonym < by_label


def test_infonce_differs_from_upstream_miscount():
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    p = F.normalize(torch.randn(6, 3), dim=1)
    ours = infonce_loss(p, E[labels], labels, E).item()
    theirs = upstream_infonce(p, E[labels], labels).item()
    assert abs(ours - theirs) > 0.05


def test_upstream_rewards_closeness_to_a_negative_infonce_does_not():
    # Image 0 (label 0) has two other same-label images, so upstream's numerator also sums
    # its first negative, the anchor of label 1. Two projections with the same similarity
    # to the own anchor, one leaning to label 1, the other to label 2: the correct loss is
    # the same for both; upstream's is lower when leaning to the negative it miscounts.
    labels = torch.tensor([0, 0, 0, 1, 2])
    losses = {}
    for name, row in (("to_label_1", [0.8, 0.6, 0.0]), ("to_label_2", [0.8, 0.0, 0.6])):
        p = E[labels].clone()
        p[0] = torch.tensor(row)
        losses[name] = (infonce_loss(p[:1], E[labels[:1]], labels[:1], E).item(),
                        upstream_infonce(p, E[labels], labels).item())
    assert losses["to_label_1"][0] == pytest.approx(losses["to_label_2"][0], rel=1e-5)
    assert losses["to_label_1"][1] < losses["to_label_2"][1] - 1e-3


def test_ntxent_matches_the_formula_on_a_tiny_batch():
    labels = torch.tensor([0, 1, 0])
    p = F.normalize(torch.tensor([[1.0, 0.9, 0.0], [0.5, 1.0, 0.0], [0.3, 0.3, 1.0]]), dim=1)
    t = E[labels]
    loss = ntxent_loss(p, t, labels, temperature=0.5).item()
    expected = []  # every (image, same-label anchor) pair, the image's own anchor included
    for i in range(3):
        sims = (p[i] @ t.T) / 0.5
        negatives = sims[labels != labels[i]]
        for j in torch.where(labels == labels[i])[0]:
            expected.append(-(sims[j] - torch.logsumexp(torch.cat([sims[j:j + 1], negatives]), 0)))
    assert len(expected) == 5
    assert loss == pytest.approx(torch.stack(expected).mean().item(), rel=1e-4)


def test_make_loss_rejects_unknown_names():
    with pytest.raises(ValueError, match="valid: cosine, ntxent, infonce"):
        make_loss("triplet")
    assert math.isfinite(make_loss("infonce", label_smoothing=0.1)(E[:2], E[:2], torch.tensor([0, 1]), E).item())
