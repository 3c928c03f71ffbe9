"""Plain-language descriptions of a scene graph: object groups, colours, places.

Used by the teachers (caption, visual question answers, reasoning) and by the LLM teacher's
prompt, so every sentence they write is grounded in the graph.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tinyemo.scenes import catalogue
from tinyemo.scenes.graph import Scene, SceneObject

NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class Group:
    """All objects of one kind in a scene."""

    kind: str
    objects: tuple[SceneObject, ...]

    @property
    def count(self) -> int:
        return len(self.objects)

    @property
    def plural(self) -> bool:
        return self.count > 1

    @property
    def colours(self) -> list[str]:
        return list(dict.fromkeys(obj.colour for obj in self.objects))

    @property
    def noun(self) -> str:
        kind = catalogue.object_kind(self.kind)
        return kind.plural if self.plural else kind.noun

    def phrase(self, article: str = "indefinite", with_colour: bool = True) -> str:
        """'a pink flower', 'two pink and white flowers', 'the black spiders'."""
        colour = " and ".join(self.colours) + " " if with_colour else ""
        if article == "definite":
            return f"the {colour}{self.noun}"
        if self.plural:
            return f"{NUMBERS[min(self.count, 9)]} {colour}{self.noun}"
        return with_article(f"{colour}{self.noun}")


def with_article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def groups(scene: Scene) -> list[Group]:
    """Object groups, largest total size first."""
    by_kind: dict[str, list[SceneObject]] = {}
    for obj in scene.objects:
        by_kind.setdefault(obj.kind, []).append(obj)
    found = [Group(kind, tuple(objs)) for kind, objs in by_kind.items()]
    return sorted(found, key=lambda g: -sum(o.size for o in g.objects))


def group_of(scene: Scene, kind: str) -> Group:
    for group in groups(scene):
        if group.kind == kind:
            return group
    raise KeyError(f"the scene has no {kind!r}")


def place(obj: SceneObject) -> str:
    """Where an object is, in words: 'in the upper left', 'on the ground at the right'."""
    side = "left" if obj.x < 0.38 else "right" if obj.x > 0.62 else "centre"
    zone = catalogue.object_kind(obj.kind).zone
    if zone == "horizon":
        return f"on the horizon{'' if side == 'centre' else ' to the ' + side}"
    if obj.y < 0.5:
        return "high in the middle of the sky" if side == "centre" else f"in the upper {side}"
    return "in the foreground, centre" if side == "centre" else f"on the ground at the {side}"


def join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def object_list(scene: Scene) -> str:
    return join([g.phrase() for g in groups(scene)])


def setting(scene: Scene) -> str:
    """'in soft pastel tones, at night, in steady rain'."""
    return ", ".join((
        f"in {catalogue.palette(scene.palette).description}",
        catalogue.light(scene.light).description,
        catalogue.weather(scene.weather).description,
    ))


def facts(scene: Scene) -> str:
    """A compact factual listing of the scene (for LLM prompts)."""
    lines = [f"- {g.phrase()} ({', '.join(place(o) for o in g.objects)})" for g in groups(scene)]
    pal = catalogue.palette(scene.palette)
    lines.append(f"- colours: {pal.description} ({', '.join(pal.colour_names)})")
    lines.append(f"- light: {scene.light}; weather: {scene.weather}")
    return "\n".join(lines)
