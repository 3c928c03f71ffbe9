"""The counterfactual probe: the same scene with and without a suspected attribute.

For every scene whose `attribute` is not `value`, EmoScenes renders the scene as it is and a
copy that differs only in that attribute (`with_attribute(scene, attribute, value)`, which
changes only the frame or corner-mark pixels). Both are encoded by the frozen vision tower
and classified by a projector. The probe reports
- `flip_rate`: the share of pairs whose predicted emotion changes at all;
- `toward_rate`: the share of pairs not already predicted `emotion` whose prediction becomes
  `emotion`: the direct measure of a shortcut from the attribute to the emotion.
The same encoded pairs are scored by every projector given, so a projector trained without
the planted bias is the control the biased one is compared with.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from tinyemo.bias.encoding import encode
from tinyemo.scenes.graph import Scene, with_attribute
from tinyemo.scenes.render import render_scene


@dataclass
class CounterfactualPairs:
    attribute: str
    value: str
    original: torch.Tensor  # pooled features [N, D] of the scenes as they are
    counterfactual: torch.Tensor  # pooled features [N, D] with attribute = value
    before: tuple[str, ...]  # the attribute's value in each original scene

    def __len__(self) -> int:
        return len(self.original)


def encode_pairs(tower, scenes: Sequence[Scene], attribute: str, value: str, image_size: int,
                 batch_size: int = 32, pooled: torch.Tensor | None = None,
                 limit: int | None = None, precision: str = "fp32") -> CounterfactualPairs:
    """Render and encode (original, counterfactual) for the scenes lacking `attribute=value`.

    `pooled` (one row per scene) are the scenes' stored features: rendering is deterministic,
    so they are the originals' features and only the counterfactuals need encoding (in
    `precision`, that of the stored features: see `encoding`). `limit` keeps the first that
    many eligible scenes.
    """
    kept = [i for i, scene in enumerate(scenes) if scene.attributes[attribute] != value][:limit]
    if not kept:
        raise ValueError(f"no scene without {attribute}={value} to build counterfactuals from")
    changed = [render_scene(with_attribute(scenes[i], attribute, value), image_size) for i in kept]
    if pooled is None:
        originals = [render_scene(scenes[i], image_size) for i in kept]
        encoded, _ = encode(tower, originals + changed, batch_size, precision)
        original, counterfactual = encoded[: len(kept)], encoded[len(kept):]
    else:
        original, (counterfactual, _) = pooled[kept].float(), encode(tower, changed, batch_size, precision)
    return CounterfactualPairs(attribute, value, original, counterfactual,
                              tuple(scenes[i].attributes[attribute] for i in kept))


def flip_rates(projector, pairs: CounterfactualPairs, emotion: str) -> dict:
    """How often `projector`'s prediction flips, and flips toward `emotion`, across the pairs."""
    if emotion not in projector.label_names:
        raise ValueError(f"emotion {emotion!r} is not a label of this projector: {', '.join(projector.label_names)}")
    target = projector.label_names.index(emotion)
    before, _ = projector.predict(pairs.original)
    after, _ = projector.predict(pairs.counterfactual)
    eligible = before != target
    flipped = before != after
    toward = eligible & (after == target)
    return {
        "pairs": len(pairs),
        "flip_rate": flipped.float().mean().item(),
        "toward_rate": (toward.sum() / eligible.sum().clamp(min=1)).item(),
        "n_flipped": int(flipped.sum()),
        "n_toward": int(toward.sum()),
        "n_eligible": int(eligible.sum()),
    }
