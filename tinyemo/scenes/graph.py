"""The scene graph: everything an EmoScenes image is made of, as plain data.

A `Scene` fully determines its image (`tinyemo.scenes.render.render_scene`), its rule label
(`tinyemo.scenes.rules.rule_label`) and the teacher's text. It round-trips through JSON
(`to_dict` / `Scene.from_dict`), which is how `scenes.jsonl` stores it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from tinyemo.scenes import catalogue


@dataclass(frozen=True)
class SceneObject:
    kind: str  # a name from catalogue.OBJECT_KINDS
    x: float  # centre, relative to the image width (0..1)
    y: float  # centre, relative to the image height (0..1)
    size: float  # relative to the image side
    colour: str  # a name from catalogue.COLOURS

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]
    palette: str
    light: str
    weather: str
    attributes: dict[str, str] = field(default_factory=dict)  # frame_color, corner_mark
    detail_seed: int = 0  # positions of raindrops, confetti, stars: drawn from this seed

    def __post_init__(self):
        catalogue.palette(self.palette)
        catalogue.light(self.light)
        catalogue.weather(self.weather)
        for obj in self.objects:
            catalogue.object_kind(obj.kind)
            catalogue.rgb(obj.colour)
        if set(self.attributes) != set(catalogue.ATTRIBUTES):
            raise catalogue.UnknownSceneNameError(
                f"a scene needs exactly the attributes {', '.join(catalogue.ATTRIBUTES)}; "
                f"got {', '.join(self.attributes) or 'none'}"
            )
        for attribute, value in self.attributes.items():
            catalogue.check_attribute(attribute, value)

    def to_dict(self) -> dict:
        return {
            "objects": [obj.to_dict() for obj in self.objects],
            "palette": self.palette,
            "light": self.light,
            "weather": self.weather,
            "attributes": dict(self.attributes),
            "detail_seed": self.detail_seed,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Scene":
        return cls(
            objects=tuple(SceneObject(**obj) for obj in data["objects"]),
            palette=data["palette"],
            light=data["light"],
            weather=data["weather"],
            attributes=dict(data["attributes"]),
            detail_seed=int(data["detail_seed"]),
        )

    def fingerprint(self) -> int:
        """A stable integer hash of the whole graph (seeds the teacher's wording choices)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little")


def with_attribute(scene: Scene, attribute: str, value: str) -> Scene:
    """A counterfactual copy of `scene` that differs only in one rule-irrelevant attribute."""
    catalogue.check_attribute(attribute, value)
    return dataclasses.replace(scene, attributes={**scene.attributes, attribute: value})
