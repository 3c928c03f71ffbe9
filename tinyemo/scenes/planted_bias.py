"""Planted biases: make a rule-irrelevant attribute value co-occur with one emotion in train.

A planted bias `{attribute, value, emotion, strength}` sets, for every *training* image whose
label is `emotion`, the attribute to `value` with probability `strength` (and to one of the
other values, uniformly, otherwise), so P(value | emotion) = strength in train. Images of the
other classes, and every validation and test image, keep the uniform base rate
1 / (number of values). Whether the bias mechanism chose the value is recorded per image
(`biased`). The rules never read attributes, so the bias is pure shortcut: a model that uses
it gains on train and nothing on test.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from tinyemo.scenes import catalogue
from tinyemo.scenes.graph import Scene, with_attribute
from tinyemo.taxonomy import check_label


@dataclass(frozen=True)
class PlantedBias:
    attribute: str
    value: str
    emotion: str
    strength: float

    @property
    def base_rate(self) -> float:
        return 1.0 / len(catalogue.ATTRIBUTES[self.attribute])


def check_biases(biases: list) -> list[PlantedBias]:
    """Validate planted-bias specs (dicts or objects with the same fields)."""
    checked = []
    for spec in biases:
        if isinstance(spec, PlantedBias):
            fields = dataclasses.asdict(spec)
        else:
            fields = spec if isinstance(spec, dict) else spec.model_dump()
        missing = {"attribute", "value", "emotion", "strength"} - set(fields)
        if missing:
            raise ValueError(f"planted bias {fields} lacks {sorted(missing)}")
        bias = PlantedBias(str(fields["attribute"]), str(fields["value"]), str(fields["emotion"]),
                           float(fields["strength"]))
        catalogue.check_attribute(bias.attribute, bias.value)
        check_label(bias.emotion, what="emotion in planted_biases")
        if not 0.0 <= bias.strength <= 1.0:
            raise ValueError(f"planted bias strength must be within [0, 1], got {bias.strength}")
        if any(b.attribute == bias.attribute and b.emotion == bias.emotion for b in checked):
            raise ValueError(
                f"two planted biases on attribute {bias.attribute!r} for emotion {bias.emotion!r}; "
                "keep one"
            )
        checked.append(bias)
    return checked


def plant(rng: np.random.Generator, scene: Scene, label: str, biases: list[PlantedBias]) -> tuple[Scene, bool]:
    """Apply every bias whose emotion is `label`; return the scene and whether a value was planted."""
    planted = False
    for bias in biases:
        if bias.emotion != label:
            continue
        if rng.random() < bias.strength:
            scene, planted = with_attribute(scene, bias.attribute, bias.value), True
        else:
            others = [v for v in catalogue.ATTRIBUTES[bias.attribute] if v != bias.value]
            scene = with_attribute(scene, bias.attribute, others[int(rng.integers(len(others)))])
    return scene, planted
