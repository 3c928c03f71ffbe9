"""Sampling scenes: a target emotion, objects consistent with it, distractors, random attributes.

`sample_scene(rng, emotion)` draws a scene *intended* to evoke `emotion`: 1-3 objects whose
strongest cue is that emotion (awe objects drawn large), the emotion's palette / light /
weather with probability `STYLE_MATCH` each (otherwise uniform), and 0-3 distractor objects
of any kind. The label is then computed by the rules, not taken from the target: distractors
and overlapping cues sometimes win, so the label must be read from the whole scene.
"""
from __future__ import annotations

import numpy as np

from tinyemo.scenes import catalogue
from tinyemo.scenes.graph import Scene, SceneObject
from tinyemo.taxonomy import MIKELS8, check_label

STYLE_MATCH = 0.5  # probability that palette, light and weather follow the target emotion
MAX_PRIMARY, MAX_DISTRACTORS = 3, 3

ZONE_Y = {"sky": (0.12, 0.42), "ground": (0.62, 0.88), "horizon": (0.55, 0.62), "scatter": (0.3, 0.7)}


def _matching(table: dict, emotion: str) -> list[str]:
    """The names whose strongest cue (ties included) is `emotion`."""
    return [name for name, item in table.items()
            if item.cues and item.cues.get(emotion, 0.0) == max(item.cues.values())]


PRIMARY_KINDS = {e: _matching(catalogue.OBJECT_KINDS, e) for e in MIKELS8}
PRIMARY_PALETTES = {e: _matching(catalogue.PALETTES, e) for e in MIKELS8}
PRIMARY_LIGHTS = {e: _matching(catalogue.LIGHTS, e) for e in MIKELS8}
PRIMARY_WEATHERS = {e: _matching(catalogue.WEATHERS, e) for e in MIKELS8}


def _choice(rng: np.random.Generator, items) -> str:
    items = list(items)
    return items[int(rng.integers(len(items)))]


def _styled(rng: np.random.Generator, table: dict, preferred: list[str]) -> str:
    if preferred and rng.random() < STYLE_MATCH:
        return _choice(rng, preferred)
    return _choice(rng, table)


def sample_object(rng: np.random.Generator, kind_name: str, large: bool = False) -> SceneObject:
    kind = catalogue.object_kind(kind_name)
    low, high = kind.size_range
    if large:
        low = (low + high) / 2
    size = float(rng.uniform(low, high))
    y_low, y_high = ZONE_Y[kind.zone]
    return SceneObject(
        kind=kind.name,
        x=round(float(rng.uniform(0.15, 0.85)), 4),
        y=round(float(rng.uniform(y_low, y_high)), 4),
        size=round(size, 4),
        colour=_choice(rng, kind.colours),
    )


def sample_attributes(rng: np.random.Generator) -> dict[str, str]:
    return {name: _choice(rng, values) for name, values in catalogue.ATTRIBUTES.items()}


def sample_scene(rng: np.random.Generator, emotion: str | None = None) -> Scene:
    """A random scene aimed at `emotion` (uniform over Mikels-8 when None)."""
    emotion = check_label(emotion) if emotion is not None else _choice(rng, MIKELS8)
    primaries = [
        sample_object(rng, _choice(rng, PRIMARY_KINDS[emotion]),
                      large=catalogue.object_kind(PRIMARY_KINDS[emotion][0]).scales_with_size)
        for _ in range(int(rng.integers(1, MAX_PRIMARY + 1)))
    ]
    distractors = [
        sample_object(rng, _choice(rng, catalogue.OBJECT_KINDS))
        for _ in range(int(rng.integers(0, MAX_DISTRACTORS + 1)))
    ]
    return Scene(
        objects=tuple(primaries + distractors),
        palette=_styled(rng, catalogue.PALETTES, PRIMARY_PALETTES[emotion]),
        light=_styled(rng, catalogue.LIGHTS, PRIMARY_LIGHTS[emotion]),
        weather=_styled(rng, catalogue.WEATHERS, PRIMARY_WEATHERS[emotion]),
        attributes=sample_attributes(rng),
        detail_seed=int(rng.integers(2**31)),
    )
