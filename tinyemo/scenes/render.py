"""Render a scene graph to a PIL image, deterministically.

Every drawing choice comes from the graph: background gradient from the palette and the
light, objects (kind, position, size, colour) drawn back to front (horizon, sky, scattered,
then ground objects by depth), weather overlays, and last the rule-irrelevant attributes:
the frame border (`frame_color`) and a small mark in the bottom-right corner (`corner_mark`).
Small details (raindrops, confetti pieces, stars) come from `random.Random` seeded with the
graph's `detail_seed` and the object's index, so the same graph always gives the same pixels.
The attributes are drawn last in fixed regions (`attribute_regions`), so a counterfactual
that changes an attribute changes only those pixels.
"""
from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw

from tinyemo.scenes import catalogue
from tinyemo.scenes.graph import Scene
from tinyemo.scenes.shapes import SHAPES, corner_mark, shade

HORIZON = 0.6  # relative height of the horizon line
FRAME_WIDTH = 0.04  # border width relative to the image side
MARK_SIZE = 0.09  # corner mark side relative to the image side
ZONE_ORDER = {"horizon": 0, "sky": 1, "scatter": 2, "ground": 3}


def frame_width(size: int) -> int:
    return max(2, round(FRAME_WIDTH * size))


def mark_box(size: int) -> tuple[int, int, int, int]:
    side = max(4, round(MARK_SIZE * size))
    end = size - frame_width(size) - max(1, size // 64) - 1
    return (end - side, end - side, end, end)


def attribute_regions(size: int) -> dict[str, np.ndarray]:
    """Boolean masks [size, size] of the pixels each attribute may change."""
    frame = np.ones((size, size), dtype=bool)
    w = frame_width(size)
    frame[w:size - w, w:size - w] = False
    mark = np.zeros((size, size), dtype=bool)
    x0, y0, x1, y1 = mark_box(size)
    mark[y0:y1 + 1, x0:x1 + 1] = True
    return {"frame_color": frame, "corner_mark": mark}


def _background(scene: Scene, size: int) -> Image.Image:
    pal = catalogue.palette(scene.palette)
    bright = catalogue.LIGHT_BRIGHTNESS[scene.light]
    top, bottom = (np.array(shade(catalogue.rgb(c), bright), dtype=np.float32) for c in pal.sky)
    horizon = int(HORIZON * size)
    t = np.linspace(0.0, 1.0, horizon, dtype=np.float32)[:, None]
    sky = top * (1 - t) + bottom * t
    ground_top = np.array(shade(catalogue.rgb(pal.ground), bright), dtype=np.float32)
    t = np.linspace(0.0, 1.0, size - horizon, dtype=np.float32)[:, None]
    ground = ground_top * (1 - 0.35 * t)
    rows = np.concatenate([sky, ground]).astype(np.uint8)
    return Image.fromarray(np.repeat(rows[:, None, :], size, axis=1), "RGB")


def _objects(scene: Scene, draw: ImageDraw.ImageDraw, size: int) -> None:
    factor = 0.6 + 0.4 * catalogue.LIGHT_BRIGHTNESS[scene.light]
    order = sorted(
        range(len(scene.objects)),
        key=lambda i: (ZONE_ORDER[catalogue.object_kind(scene.objects[i].kind).zone],
                       -scene.objects[i].size if scene.objects[i].y > HORIZON - 0.1 else 0,
                       scene.objects[i].y, i),
    )
    for i in order:
        obj = scene.objects[i]
        kind = catalogue.object_kind(obj.kind)
        rnd = random.Random(scene.detail_seed * 1009 + i)
        y = HORIZON if kind.zone == "horizon" else obj.y
        SHAPES[kind.shape](draw, obj.x * size, y * size, obj.size * size / 2,
                           shade(catalogue.rgb(obj.colour), factor), rnd)


def _weather(scene: Scene, image: Image.Image, size: int) -> Image.Image:
    rnd = random.Random(scene.detail_seed * 7919 + 1)
    draw = ImageDraw.Draw(image)
    if scene.weather == "fog":
        return Image.blend(image, Image.new("RGB", image.size, (200, 200, 205)), 0.45)
    if scene.weather == "storm":
        for _ in range(6):
            x, y, r = rnd.uniform(0, size), rnd.uniform(0, 0.15 * size), rnd.uniform(0.12, 0.22) * size
            draw.ellipse((x - 1.5 * r, y - r / 2, x + 1.5 * r, y + r / 2), fill=(60, 62, 70))
    if scene.weather in ("rain", "storm"):
        colour = (150, 170, 200) if scene.weather == "rain" else (190, 200, 215)
        for _ in range(70 if scene.weather == "rain" else 100):
            x, y = rnd.uniform(0, size), rnd.uniform(0, size)
            draw.line((x, y, x - 0.015 * size, y + 0.05 * size), fill=colour, width=1)
    if scene.weather == "snow":
        for _ in range(90):
            x, y, r = rnd.uniform(0, size), rnd.uniform(0, size), rnd.uniform(0.5, 1.8) * size / 224
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(250, 250, 252))
    return image


def _attributes(scene: Scene, image: Image.Image, size: int) -> None:
    draw = ImageDraw.Draw(image)
    w = frame_width(size)
    colour = catalogue.rgb(scene.attributes["frame_color"])
    draw.rectangle((0, 0, size - 1, size - 1), outline=colour, width=w)
    corner_mark(draw, scene.attributes["corner_mark"], mark_box(size))


def render_scene(scene: Scene, size: int = 224) -> Image.Image:
    """The image of `scene`, `size` x `size` RGB; identical for identical graphs."""
    image = _background(scene, size)
    _objects(scene, ImageDraw.Draw(image), size)
    image = _weather(scene, image, size)
    _attributes(scene, image, size)
    return image

