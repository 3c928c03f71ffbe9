"""How much of a scene the vision tower's patches carry: probes of object presence.

The MM-LLM can name only what its image tokens encode. Before blaming the connector or the
LLM for a missed or invented object, ask the features themselves: a probe fitted on the
training images' patch grids predicts which object kinds are in held-out images. Its
key-object recall and its false-object rate are a reference for the MM-LLM's key-object
recall and hallucination rate. Two probes:

- `probe`, linear: one logistic regression per object kind on the mean and the max of each
  grid (`patch_summary`), an object predicted at probability 0.5;
- `patch_probe`, a reader of the connector's own kind: a small MLP scores every kind on
  every patch, an image's score is a smooth maximum over its patches, and the threshold is
  the lowest at which validation images keep the false-object rate within 0.08. On the
  cached Lite0 7x7 grids (fitted on the 1600 training images, threshold from the 400
  validation images) it recalls 0.78 of the 400 test images' key objects at a false-object
  rate of 0.087, where the linear probe recalls 0.55 at 0.077: most of what the linear
  probe misses is in the patches, not readable by a linear map of their mean and max.

Intermediate blocks of EfficientNet-Lite0 do not raise this ceiling: fitted on 800 training
images and tested on the 400 test images, the probe's key-object recall (false-object
rate) is 0.44 (0.09) on the last block's 7x7 x 320 grid (the cached patches), 0.08 (0.05)
on block 4's 14x14 x 112 grid, 0.28 (0.07) on block 5's 7x7 x 192 grid, and 0.22 (0.02)
on block 4's grid concatenated with the last block's, upsampled.

A larger input and a spatial summary do (`benchmarks/vision_probe.py`, same 800/400 images;
"at 0.08": the lowest single probability threshold whose false-object rate on the test
images is at most 0.08, a point of the probe's curve; GMAC per image to the last block):

    tower  input  grid   GMAC | key recall (false rate) at 0.5 | key recall at 0.08
                              | mean+max      +2x2 pyramid     | mean+max  +2x2 pyramid
    Lite0  224    7x7    0.38 | 0.44 (0.089)  0.56 (0.063)     | 0.43      0.57
    Lite0  320    10x10  0.78 | 0.39 (0.035)  0.51 (0.044)     | 0.48      0.59
    Lite0  448    14x14  1.54 | 0.39 (0.006)  0.50 (0.012)     | 0.54      0.66
    Lite2  260    9x9    0.86 | 0.46 (0.074)  0.56 (0.072)     | 0.47      0.58
    Lite2  384    12x12  1.69 | 0.45 (0.047)  0.54 (0.035)     | 0.51      0.63
    Lite2  448    14x14  2.30 | 0.43 (0.033)  0.53 (0.025)     | 0.54      0.66

Fitted on all 1600 training images (as `stage_runs.vision_probe`), key recall (false rate)
at 0.5 and key recall at 0.08:

    Lite0  224    7x7    0.38 | 0.55 (0.077)  0.65 (0.072)     | 0.55      0.66
    Lite0  448    14x14  1.54 | 0.54 (0.026)  0.62 (0.025)     | 0.63      0.75

Only Lite0 at 448 px with the pyramid summary reaches key-object recall 0.70 at a
false-object rate of 0.08 (at a threshold read off the test images' curve). A finer grid
makes the probe at 0.5 more cautious (fewer false objects, not more recall); at one
false-object rate it recalls more. Lite2 (ImageNet top-1 77.6 % vs 75.1 %) adds nothing over
Lite0 at the same grid. The linear yardstick stays `patch_summary` at 0.5.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from tinyemo.mmllm.connector import patch_scorer

PROBE_C = 10.0  # inverse L2 strength of each per-object logistic regression
MAX_FALSE_RATE = 0.08  # the patch probe's operating point: at most this share of its objects false


def patch_summary(patches: torch.Tensor) -> np.ndarray:
    """[N, P, C] patch grids -> [N, 2C] mean and max over patches, rows L2-normalised."""
    grid = patches.float()
    summary = torch.cat([grid.mean(dim=1), grid.amax(dim=1)], dim=1)
    return torch.nn.functional.normalize(summary, dim=1).numpy()


def pyramid_summary(patches: torch.Tensor) -> np.ndarray:
    """[N, P, C] square patch grids -> [N, 6C]: the mean and max of `patch_summary` and the
    means of a 2x2 spatial pyramid (quadrants overlap by a row on odd grids), L2-normalised."""
    grid = patches.float()
    n, p, c = grid.shape
    side = int(round(p ** 0.5))
    if side * side != p:
        raise ValueError(f"a pyramid summary needs square grids, not {p} patches")
    quadrants = torch.nn.functional.adaptive_avg_pool2d(
        grid.transpose(1, 2).reshape(n, c, side, side), 2).flatten(1)
    summary = torch.cat([grid.mean(dim=1), grid.amax(dim=1), quadrants], dim=1)
    return torch.nn.functional.normalize(summary, dim=1).numpy()


def presence(scenes: Sequence, kinds: Sequence[str]) -> np.ndarray:
    """[N, K] booleans: which object kinds are in each SceneRecord's scene."""
    column = {kind: k for k, kind in enumerate(kinds)}
    table = np.zeros((len(scenes), len(kinds)), dtype=bool)
    for row, record in enumerate(scenes):
        for obj in record.scene.objects:
            table[row, column[obj.kind]] = True
    return table


def fit_probabilities(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    """Per column of train_y, a logistic regression's presence probabilities on test_x (a
    column with one class only predicts that class with certainty)."""
    from sklearn.linear_model import LogisticRegression

    probabilities = np.zeros((len(test_x), train_y.shape[1]))
    for k in range(train_y.shape[1]):
        column = train_y[:, k]
        if column.all() or not column.any():
            probabilities[:, k] = float(column[0])
            continue
        model = LogisticRegression(C=PROBE_C, max_iter=2000)
        probabilities[:, k] = model.fit(train_x, column).predict_proba(test_x)[:, 1]
    return probabilities


def lowest_threshold(probabilities: np.ndarray, truth: np.ndarray, max_false_rate: float) -> float:
    """The lowest single threshold over all kinds whose predictions (probability >= it) keep
    the false-object rate within `max_false_rate` (1.0 when even the most confident is false)."""
    order = np.argsort(-probabilities, axis=None, kind="stable")
    scores, correct = probabilities.ravel()[order], truth.ravel()[order]
    false_rate = np.cumsum(~correct) / np.arange(1, len(correct) + 1)
    # a cut inside a run of tied scores is not a threshold: only the last of each run counts
    run_ends = np.append(scores[1:] != scores[:-1], True)
    allowed = np.flatnonzero((false_rate <= max_false_rate) & run_ends)
    return float(scores[allowed[-1]]) if len(allowed) else 1.0


def measures(predicted: np.ndarray, truth: np.ndarray, test_scenes: Sequence,
             kinds: Sequence[str]) -> dict[str, float]:
    """Recall of every object and of the key objects, and the false-object rate (predicted
    objects that are not in the image, over all predicted objects)."""
    key_recalls = [np.mean([predicted[row, kinds.index(kind)] for kind in record.key_objects])
                   for row, record in enumerate(test_scenes) if record.key_objects]
    n_predicted = int(predicted.sum())
    return {
        "object_recall": float((predicted & truth).sum() / max(1, truth.sum())),
        "key_object_recall": float(np.mean(key_recalls)) if key_recalls else float("nan"),
        "false_object_rate": float((predicted & ~truth).sum() / n_predicted) if n_predicted else 0.0,
    }


def probe(train_patches: torch.Tensor, train_scenes: Sequence, test_patches: torch.Tensor,
          test_scenes: Sequence, summary=patch_summary,
          max_false_rate: float | None = None) -> dict[str, float]:
    """`measures` of the probe on the test images, each kind predicted present when its
    probability is over 0.5 (the yardstick). `summary` turns patch grids into probe inputs
    (the yardstick's: `patch_summary`). With `max_false_rate`, also `at_false_rate`: the
    measures at the lowest single threshold whose false-object rate on these same test
    images is within it (a point of the probe's curve, not a held-out result)."""
    from tinyemo.scenes import catalogue

    kinds = list(catalogue.OBJECT_KINDS)
    truth = presence(test_scenes, kinds)
    probabilities = fit_probabilities(summary(train_patches), presence(train_scenes, kinds),
                                      summary(test_patches))
    result = measures(probabilities > 0.5, truth, test_scenes, kinds)
    if max_false_rate is not None:
        threshold = lowest_threshold(probabilities, truth, max_false_rate)
        result["at_false_rate"] = measures(probabilities >= threshold, truth, test_scenes, kinds) | {
            "threshold": threshold}
    return result


def _pooled(patch_logits: torch.Tensor) -> torch.Tensor:
    """[N, P, K] per-patch scores -> [N, K]: a smooth maximum over patches (log-mean-exp),
    which passes gradient to every patch, not only to the current best one."""
    return patch_logits.logsumexp(dim=1) - math.log(patch_logits.shape[1])


def patch_probe(train_patches: torch.Tensor, train_scenes: Sequence, test_patches: torch.Tensor,
                test_scenes: Sequence, val_patches: torch.Tensor | None = None,
                val_scenes: Sequence = (), max_false_rate: float = MAX_FALSE_RATE,
                epochs: int = 15, width: int = 128, seed: int = 0) -> dict[str, float]:
    """`probe`'s measures for a reader of the connector's own kind: `connector.patch_scorer`
    (the word-grounded connector's scorer) scores every object kind on every patch, and an
    image's score for a kind is a smooth maximum over its patches (`_pooled`). Fitted with
    binary cross-entropy on the training images' presence; seeded. An object is predicted
    where the score passes a threshold: with validation images, the lowest one at which
    their false-object rate is at most `max_false_rate` (the test images never choose it);
    without, a sigmoid of 0.5. `threshold` is returned with the measures."""
    from tinyemo.scenes import catalogue

    kinds = list(catalogue.OBJECT_KINDS)
    train_y = torch.as_tensor(presence(train_scenes, kinds), dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    scorer = patch_scorer(train_patches.shape[-1], width, len(kinds))
    optimizer = torch.optim.AdamW(scorer.parameters(), lr=3e-3, weight_decay=1e-2)
    patches = train_patches.float()
    for _ in range(epochs):
        order = torch.randperm(len(patches), generator=generator)
        for start in range(0, len(order), 64):
            rows = order[start:start + 64]
            logits = _pooled(scorer(patches[rows]))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, train_y[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        def scores(grid):
            return _pooled(scorer(grid.float())).sigmoid().numpy()
        threshold = 0.5
        if val_patches is not None:
            threshold = lowest_threshold(scores(val_patches), presence(val_scenes, kinds),
                                         max_false_rate)
        predicted = scores(test_patches) >= threshold
    return measures(predicted, presence(test_scenes, kinds), test_scenes, kinds) | {
        "threshold": float(threshold)}
