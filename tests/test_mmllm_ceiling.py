"""The probes of object presence in patch features (the vision tower's ceiling)."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tinyemo.mmllm import ceiling
from tinyemo.scenes import catalogue

KINDS = list(catalogue.OBJECT_KINDS)[:4]


def scenes_and_patches(n: int, seed: int, informative: bool):
    """Scenes of 1-2 of four object kinds; patches encode them (or are pure noise)."""
    generator = torch.Generator().manual_seed(seed)
    scenes, patches = [], torch.randn(n, 9, 16, generator=generator) * 0.3
    for row in range(n):
        chosen = torch.randperm(4, generator=generator)[: 1 + row % 2].tolist()
        objects = tuple(SimpleNamespace(kind=KINDS[k]) for k in chosen)
        scenes.append(SimpleNamespace(scene=SimpleNamespace(objects=objects),
                                      key_objects=[KINDS[chosen[0]]]))
        if informative:
            for k in chosen:
                patches[row, k, k] += 3.0
    return patches, scenes


def test_the_probe_reads_objects_that_the_patches_encode():
    result = ceiling.probe(*scenes_and_patches(200, 0, True), *scenes_and_patches(100, 1, True))
    assert result["object_recall"] > 0.95 and result["key_object_recall"] > 0.95
    assert result["false_object_rate"] < 0.05


def test_the_probe_finds_nothing_in_noise():
    test_patches, test_scenes = scenes_and_patches(100, 1, False)
    result = ceiling.probe(*scenes_and_patches(200, 0, False), test_patches, test_scenes)
    # predictions independent of the truth are right at the base rate: each of the 4 kinds is
    # in 3/8 of the images (1 or 2 of 4 kinds each), so about 5/8 of predicted objects are false
    base_rate = ceiling.presence(test_scenes, KINDS).mean()
    assert abs(base_rate - 3 / 8) < 0.05
    assert abs(result["false_object_rate"] - (1 - base_rate)) < 0.15
    informed = ceiling.probe(*scenes_and_patches(200, 0, True), *scenes_and_patches(100, 1, True))
    assert result["key_object_recall"] < informed["key_object_recall"] - 0.5


def test_the_pyramid_summary_tells_where_the_mean_and_max_cannot():
    top_left, bottom_right = torch.zeros(1, 4, 4, 8), torch.zeros(1, 4, 4, 8)
    top_left[0, 0, 0, 3] = bottom_right[0, 3, 3, 3] = 1.0
    grids = torch.cat([top_left, bottom_right]).flatten(1, 2)  # [2, 16 patches, 8]
    plain, pyramid = ceiling.patch_summary(grids), ceiling.pyramid_summary(grids)
    assert plain.shape == (2, 16) and pyramid.shape == (2, 48)
    assert (plain[0] == plain[1]).all() and not (pyramid[0] == pyramid[1]).all()
    assert abs(float((pyramid ** 2).sum(axis=1)[0]) - 1.0) < 1e-6


def test_the_pyramid_summary_needs_square_grids():
    with pytest.raises(ValueError, match="square grids, not 12 patches"):
        ceiling.pyramid_summary(torch.zeros(1, 12, 4))


def test_the_lowest_threshold_within_the_false_rate_cap():
    probabilities = np.array([[0.9, 0.8], [0.7, 0.6]])
    truth = np.array([[True, False], [True, True]])  # false-object rate down the ranking: 0, 1/2, 1/3, 1/4
    assert ceiling.lowest_threshold(probabilities, truth, 0.3) == 0.6
    assert ceiling.lowest_threshold(probabilities, truth, 0.1) == 0.9
    assert ceiling.lowest_threshold(np.array([[0.9]]), np.array([[False]]), 0.1) == 1.0


def test_the_threshold_never_splits_tied_probabilities():
    probabilities = np.array([[0.9, 0.5], [0.5, 0.1]])
    truth = np.array([[True, True], [False, False]])  # at 0.5 both tied objects come in: 1/3 false
    assert ceiling.lowest_threshold(probabilities, truth, 0.2) == 0.9
    assert ceiling.lowest_threshold(probabilities, truth, 0.4) == 0.5


def test_the_capped_operating_point_keeps_its_false_rate_and_recalls_more():
    train_patches, train_scenes = scenes_and_patches(200, 0, True)
    test_patches, test_scenes = scenes_and_patches(100, 1, True)
    test_patches += torch.randn(test_patches.shape, generator=torch.Generator().manual_seed(2))
    result = ceiling.probe(train_patches, train_scenes, test_patches, test_scenes, max_false_rate=0.2)
    capped = result["at_false_rate"]
    # noisy test grids make the probe cautious at 0.5; a lower threshold trades false objects for recall
    assert result["false_object_rate"] < 0.1 and result["object_recall"] < 0.6
    assert capped["threshold"] < 0.5 and 0.1 < capped["false_object_rate"] <= 0.2
    assert capped["object_recall"] > result["object_recall"] + 0.2


def test_the_patch_probe_reads_objects_and_keeps_its_false_rate_on_validation():
    train, val, test = (scenes_and_patches(n, seed, True) for n, seed in ((300, 0), (100, 2), (100, 1)))
    patch = ceiling.patch_probe(*train, *test, *val, max_false_rate=0.05)
    assert patch["key_object_recall"] > 0.95 and patch["false_object_rate"] <= 0.05
    noise = [scenes_and_patches(n, seed, False) for n, seed in ((300, 0), (100, 1), (100, 2))]
    blind = ceiling.patch_probe(*noise[0], *noise[1], *noise[2], max_false_rate=0.05)
    # nothing to read: only a strict threshold keeps validation's false objects under 5 %,
    # and it finds (next to) nothing
    assert blind["key_object_recall"] < 0.2 and blind["threshold"] > 0.5
