"""The emotion rules of EmoScenes: the label is a function of the scene graph.

Every element of a scene carries cue weights (declared in `tinyemo.scenes.catalogue`):

- each object adds its cues (`cues[emotion]`); for awe objects (mountains, great waves,
  fields of stars) the weight is multiplied by `size / AWE_REFERENCE_SIZE`, clipped to
  [AWE_MIN_FACTOR, AWE_MAX_FACTOR]: the bigger, the more awe-inspiring;
- the palette, the light and the weather add theirs.

The rule label is the emotion with the highest total score; an exact tie goes to the emotion
that comes first in Mikels-8 order. The attributes `frame_color` and `corner_mark` are never
read. `rules_table()` lists every cue for the dataset card.
"""
from __future__ import annotations

from dataclasses import dataclass

from tinyemo.scenes import catalogue
from tinyemo.scenes.graph import Scene, SceneObject
from tinyemo.taxonomy import MIKELS8

AWE_REFERENCE_SIZE = 0.45  # an awe object of this size counts its nominal weight
AWE_MIN_FACTOR, AWE_MAX_FACTOR = 0.3, 1.6


@dataclass(frozen=True)
class Cue:
    source: str  # "object", "palette", "light" or "weather"
    name: str  # the object kind / palette / condition name
    emotion: str
    weight: float
    colours: tuple[str, ...] = ()  # the colour names this cue shows on screen


def object_weight(obj: SceneObject, emotion: str) -> float:
    kind = catalogue.object_kind(obj.kind)
    weight = kind.cues.get(emotion, 0.0)
    if kind.scales_with_size:
        weight *= min(max(obj.size / AWE_REFERENCE_SIZE, AWE_MIN_FACTOR), AWE_MAX_FACTOR)
    return weight


def cues(scene: Scene) -> list[Cue]:
    """Every non-zero contribution of the scene to any emotion."""
    found = []
    for obj in scene.objects:
        for emotion in catalogue.object_kind(obj.kind).cues:
            found.append(Cue("object", obj.kind, emotion, object_weight(obj, emotion), (obj.colour,)))
    pal = catalogue.palette(scene.palette)
    found += [Cue("palette", pal.name, e, w, pal.colour_names) for e, w in pal.cues.items()]
    for source, condition in (("light", catalogue.light(scene.light)),
                              ("weather", catalogue.weather(scene.weather))):
        found += [Cue(source, condition.name, e, w) for e, w in condition.cues.items()]
    return [cue for cue in found if cue.weight > 0]


def rule_scores(scene: Scene) -> dict[str, float]:
    scores = dict.fromkeys(MIKELS8, 0.0)
    for cue in cues(scene):
        scores[cue.emotion] += cue.weight
    return scores


def rule_label(scene: Scene) -> str:
    scores = rule_scores(scene)
    return max(MIKELS8, key=lambda e: (scores[e], -MIKELS8.index(e)))


def evidence(scene: Scene, emotion: str) -> list[Cue]:
    """The cues supporting `emotion`, strongest first."""
    return sorted((c for c in cues(scene) if c.emotion == emotion), key=lambda c: -c.weight)


def key_elements(scene: Scene, emotion: str) -> tuple[list[str], list[str]]:
    """The object kinds and colour names that drive `emotion` in this scene, strongest first."""
    support = evidence(scene, emotion)
    objects = list(dict.fromkeys(c.name for c in support if c.source == "object"))
    colours = list(dict.fromkeys(col for c in support for col in c.colours))
    return objects, colours


def rules_table() -> list[tuple[str, str, str, str]]:
    """(emotion, source, name, weight) for every cue of the catalogue, grouped by emotion."""
    rows = []
    for kind in catalogue.OBJECT_KINDS.values():
        for emotion, weight in kind.cues.items():
            shown = f"{weight:g} x size/{AWE_REFERENCE_SIZE:g}" if kind.scales_with_size else f"{weight:g}"
            rows.append((emotion, "object", kind.name, shown))
    for source, table in (("palette", catalogue.PALETTES), ("light", catalogue.LIGHTS),
                          ("weather", catalogue.WEATHERS)):
        for item in table.values():
            rows += [(e, source, item.name, f"{w:g}") for e, w in item.cues.items()]
    return sorted(rows, key=lambda r: (MIKELS8.index(r[0]), -float(r[3].split()[0])))
