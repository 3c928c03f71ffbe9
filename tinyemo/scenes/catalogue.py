"""The vocabulary of the EmoScenes world: colours, objects, palettes, light, weather, attributes.

Everything a scene can contain is declared here, once. Each object kind says how it is drawn
(`shape`, where it sits, how big it may be, which colours it may take), how the teacher names
it, and which emotions it evokes (`cues`: emotion -> weight, read by `tinyemo.scenes.rules`).
An object may evoke several emotions (fire is mostly anger, a little fear and excitement), so
cues overlap and the rules must weigh them. Objects without cues are neutral distractors.

The two *attributes* (`frame_color`, `corner_mark`) have no cue at all: the rules never read
them. They exist so that a bias can be planted in them (see `tinyemo.scenes.planted_bias`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tinyemo.errors import TinyEmoError

# Named colours (RGB). Names are what the teacher writes and what `key_colours` records.
COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (20, 20, 24), "white": (245, 245, 245), "grey": (128, 128, 132),
    "silver": (190, 192, 198), "charcoal": (55, 57, 64), "crimson": (200, 20, 40),
    "red": (230, 40, 30), "orange": (250, 140, 20), "gold": (245, 200, 40),
    "yellow": (250, 235, 60), "lime": (150, 230, 40), "green": (40, 160, 60),
    "olive": (110, 120, 40), "mint": (170, 240, 200), "teal": (0, 140, 140),
    "sky blue": (120, 190, 245), "blue": (40, 80, 210), "navy": (15, 25, 80),
    "violet": (130, 60, 200), "purple": (90, 20, 110), "magenta": (230, 30, 170),
    "pink": (250, 160, 200), "peach": (255, 205, 170), "cream": (250, 240, 210),
    "brown": (110, 70, 35), "mud": (85, 75, 40), "bile": (150, 160, 50),
    "ivory": (235, 230, 200), "cyan": (40, 230, 240),
}

ZONES = ("sky", "ground", "horizon", "scatter")  # where an object is placed


@dataclass(frozen=True)
class ObjectKind:
    name: str  # the id used in scene graphs
    shape: str  # the drawing function in tinyemo.scenes.render
    zone: str  # one of ZONES
    size_range: tuple[float, float]  # relative to the image side
    colours: tuple[str, ...]  # allowed colour names; the first is the most typical
    noun: str  # singular noun phrase the teacher uses
    plural: str
    cues: dict[str, float] = field(default_factory=dict)  # Mikels-8 emotion -> weight
    scales_with_size: bool = False  # awe objects: the cue grows with the object's size


def _kind(name, shape, zone, size, colours, noun, plural, cues=None, scales=False):
    return ObjectKind(name, shape, zone, size, tuple(colours), noun, plural, dict(cues or {}), scales)


OBJECT_KINDS: dict[str, ObjectKind] = {k.name: k for k in (
    # amusement
    _kind("balloon", "balloon", "sky", (0.10, 0.18), ["red", "pink", "yellow", "sky blue", "magenta"],
          "balloon", "balloons", {"amusement": 2.0, "excitement": 0.5}),
    _kind("confetti", "confetti", "scatter", (0.35, 0.6), ["magenta", "yellow", "cyan", "lime"],
          "shower of confetti", "showers of confetti", {"amusement": 2.0, "excitement": 0.8}),
    _kind("party_hat", "party_hat", "ground", (0.12, 0.2), ["magenta", "cyan", "gold", "lime"],
          "party hat", "party hats", {"amusement": 2.0}),
    # anger
    _kind("fire", "fire", "ground", (0.15, 0.3), ["red", "orange"],
          "fire", "fires", {"anger": 2.0, "fear": 0.5, "excitement": 0.4}),
    _kind("lightning", "lightning", "sky", (0.2, 0.35), ["yellow", "white"],
          "lightning bolt", "lightning bolts", {"anger": 1.5, "fear": 1.0}),
    _kind("broken_glass", "broken_glass", "ground", (0.15, 0.3), ["silver", "cyan"],
          "pane of broken glass", "panes of broken glass", {"anger": 2.0, "sadness": 0.3}),
    # awe (cue proportional to size: a small mountain is not awe-inspiring)
    _kind("mountain", "mountain", "horizon", (0.25, 0.75), ["grey", "violet", "navy", "brown"],
          "mountain", "mountains", {"awe": 2.0}, scales=True),
    _kind("wave", "wave", "horizon", (0.25, 0.7), ["blue", "teal", "navy"],
          "great wave", "great waves", {"awe": 2.0}, scales=True),
    _kind("starfield", "starfield", "sky", (0.25, 0.7), ["white", "gold", "cyan"],
          "field of stars", "fields of stars", {"awe": 1.8, "contentment": 0.3}, scales=True),
    # contentment
    _kind("flower", "flower", "ground", (0.1, 0.2), ["pink", "yellow", "white", "violet", "peach"],
          "flower", "flowers", {"contentment": 2.0}),
    _kind("heart", "heart", "sky", (0.1, 0.18), ["red", "pink", "magenta"],
          "heart", "hearts", {"contentment": 1.5, "amusement": 0.5}),
    _kind("sun", "sun", "sky", (0.15, 0.28), ["yellow", "gold", "orange"],
          "sun", "suns", {"contentment": 1.2, "excitement": 0.6}),
    # disgust
    _kind("rot", "rot", "ground", (0.15, 0.3), ["bile", "mud", "olive"],
          "patch of rot and mould", "patches of rot and mould", {"disgust": 2.5}),
    _kind("flies", "flies", "scatter", (0.25, 0.45), ["black", "charcoal"],
          "swarm of flies", "swarms of flies", {"disgust": 1.8}),
    _kind("worm", "worm", "ground", (0.12, 0.22), ["pink", "brown", "bile"],
          "worm", "worms", {"disgust": 1.5, "fear": 0.3}),
    # excitement
    _kind("fireworks", "fireworks", "sky", (0.15, 0.3), ["magenta", "gold", "cyan", "lime", "red"],
          "firework burst", "firework bursts", {"excitement": 2.0, "amusement": 0.5, "awe": 0.3}),
    _kind("gift", "gift", "ground", (0.12, 0.22), ["red", "blue", "gold", "magenta", "green"],
          "wrapped gift", "wrapped gifts", {"excitement": 2.0, "amusement": 0.7}),
    _kind("rocket", "rocket", "sky", (0.14, 0.24), ["silver", "red", "white"],
          "rocket", "rockets", {"excitement": 2.0, "awe": 0.5}),
    # fear
    _kind("spider", "spider", "ground", (0.1, 0.22), ["black", "charcoal", "brown"],
          "spider", "spiders", {"fear": 2.5, "disgust": 0.5}),
    _kind("snake", "snake", "ground", (0.15, 0.3), ["green", "olive", "black", "brown"],
          "snake", "snakes", {"fear": 2.0, "disgust": 0.7}),
    _kind("skull", "skull", "ground", (0.1, 0.2), ["ivory", "white", "grey"],
          "skull", "skulls", {"fear": 2.0, "sadness": 0.5}),
    # sadness
    _kind("tombstone", "tombstone", "ground", (0.12, 0.22), ["grey", "charcoal", "silver"],
          "tombstone", "tombstones", {"sadness": 2.0, "fear": 0.5}),
    _kind("candle", "candle", "ground", (0.1, 0.18), ["white", "cream", "ivory"],
          "candle", "candles", {"sadness": 1.5, "contentment": 0.6}),
    _kind("wilted_flower", "wilted_flower", "ground", (0.1, 0.2), ["brown", "olive", "grey"],
          "wilted flower", "wilted flowers", {"sadness": 1.5}),
    # neutral distractors
    _kind("tree", "tree", "ground", (0.15, 0.3), ["green", "olive", "lime"], "tree", "trees"),
    _kind("house", "house", "ground", (0.15, 0.25), ["cream", "peach", "brown", "white"], "house", "houses"),
    _kind("bird", "bird", "sky", (0.06, 0.1), ["black", "white", "sky blue"], "bird", "birds"),
    _kind("cloud", "cloud", "sky", (0.15, 0.3), ["white", "silver"], "cloud", "clouds"),
    _kind("moon", "moon", "sky", (0.1, 0.18), ["ivory", "silver", "gold"], "moon", "moons"),
    _kind("fence", "fence", "ground", (0.2, 0.35), ["brown", "white", "grey"], "fence", "fences"),
)}


@dataclass(frozen=True)
class Palette:
    name: str
    sky: tuple[str, str]  # colour names, top and bottom of the sky gradient
    ground: str  # colour name of the ground band
    description: str  # how the teacher describes it
    cues: dict[str, float] = field(default_factory=dict)

    @property
    def colour_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.sky, self.ground)))


PALETTES: dict[str, Palette] = {p.name: p for p in (
    Palette("sunny", ("sky blue", "cream"), "green", "bright, sunny colours",
            {"contentment": 1.0, "excitement": 0.4}),
    Palette("pastel", ("mint", "peach"), "cream", "soft pastel tones", {"contentment": 1.5}),
    Palette("candy", ("pink", "mint"), "yellow", "playful candy colours", {"amusement": 1.5}),
    Palette("neon", ("magenta", "cyan"), "violet", "saturated neon colours", {"excitement": 1.5}),
    Palette("ember", ("crimson", "black"), "red", "harsh reds and blacks", {"anger": 1.5}),
    Palette("sickly", ("bile", "olive"), "mud", "sickly greens and browns", {"disgust": 1.5}),
    Palette("ashen", ("grey", "silver"), "charcoal", "washed-out greys", {"sadness": 1.5}),
    Palette("midnight", ("black", "purple"), "black", "near-black shadows", {"fear": 1.5}),
    Palette("vast", ("navy", "violet"), "blue", "deep blues and violets", {"awe": 1.5}),
)}


@dataclass(frozen=True)
class Condition:
    """A light or weather condition: how it is described and the emotions it evokes."""

    name: str
    description: str
    cues: dict[str, float] = field(default_factory=dict)


LIGHTS: dict[str, Condition] = {c.name: c for c in (
    Condition("day", "in full daylight", {"contentment": 0.3, "amusement": 0.3}),
    Condition("dusk", "in the fading light of dusk", {"sadness": 0.5, "awe": 0.5}),
    Condition("night", "at night", {"fear": 0.8, "awe": 0.3}),
)}
LIGHT_BRIGHTNESS = {"day": 1.0, "dusk": 0.8, "night": 0.55}  # multiplies the sky colours

WEATHERS: dict[str, Condition] = {c.name: c for c in (
    Condition("clear", "under a clear sky"),
    Condition("rain", "in steady rain", {"sadness": 1.0}),
    Condition("fog", "in thick fog", {"fear": 0.5, "sadness": 0.5}),
    Condition("snow", "in falling snow", {"contentment": 0.3, "awe": 0.3}),
    Condition("storm", "in a raging storm", {"anger": 0.8, "fear": 0.8}),
)}

# Attributes irrelevant to the rules (never read by tinyemo.scenes.rules); values are drawn
# uniformly at random unless a bias is planted.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "frame_color": ("white", "black", "teal", "orange", "purple", "olive"),
    "corner_mark": ("circle", "square", "triangle", "cross", "diamond"),
}


class UnknownSceneNameError(ValueError, TinyEmoError):
    """Raised for an object, palette, condition or attribute name that does not exist."""


def _lookup(table: dict, name: str, what: str):
    try:
        return table[name]
    except KeyError:
        raise UnknownSceneNameError(f"unknown {what} {name!r}; valid: {', '.join(table)}") from None


def object_kind(name: str) -> ObjectKind:
    return _lookup(OBJECT_KINDS, name, "object kind")


def palette(name: str) -> Palette:
    return _lookup(PALETTES, name, "palette")


def light(name: str) -> Condition:
    return _lookup(LIGHTS, name, "light")


def weather(name: str) -> Condition:
    return _lookup(WEATHERS, name, "weather")


def check_attribute(attribute: str, value: str | None = None) -> None:
    """Raise naming the valid choices if `attribute` (or its `value`) does not exist."""
    values = _lookup(ATTRIBUTES, attribute, "attribute")
    if value is not None and value not in values:
        raise UnknownSceneNameError(
            f"unknown value {value!r} of attribute {attribute!r}; valid: {', '.join(values)}"
        )


def rgb(colour: str) -> tuple[int, int, int]:
    return _lookup(COLOURS, colour, "colour")
