"""Drawing functions for the object kinds of the catalogue (PIL, no anti-aliasing, fast).

Each function draws one object centred at (cx, cy) with half-extent r (pixels) in colour
`c` (RGB), using `rnd` (a `random.Random` seeded from the scene graph) for its details.
`SHAPES` maps a kind's `shape` name to its function.
"""
from __future__ import annotations

import math
import random

from PIL import ImageDraw

RGB = tuple[int, int, int]


def shade(c: RGB, factor: float) -> RGB:
    return tuple(max(0, min(255, int(v * factor))) for v in c)


def _circle(d: ImageDraw.ImageDraw, x, y, r, fill, outline=None):
    d.ellipse((x - r, y - r, x + r, y + r), fill=fill, outline=outline)


def _star(d, x, y, r, fill, points=5):
    pts = []
    for i in range(points * 2):
        rad = r if i % 2 == 0 else r * 0.45
        a = math.pi * i / points - math.pi / 2
        pts.append((x + rad * math.cos(a), y + rad * math.sin(a)))
    d.polygon(pts, fill=fill)


def balloon(d, cx, cy, r, c, rnd):
    d.line((cx, cy + 0.8 * r, cx + 0.2 * r, cy + 2.0 * r), fill=(60, 60, 60), width=1)
    d.ellipse((cx - 0.7 * r, cy - r, cx + 0.7 * r, cy + 0.8 * r), fill=c)
    _circle(d, cx - 0.3 * r, cy - 0.45 * r, 0.15 * r, shade(c, 1.4))


def confetti(d, cx, cy, r, c, rnd):
    colours = [c, (250, 235, 60), (230, 30, 170), (40, 230, 240), (150, 230, 40)]
    for _ in range(int(18 + 20 * rnd.random())):
        x, y = cx + rnd.uniform(-r, r), cy + rnd.uniform(-r, r)
        w, h = rnd.uniform(1, 0.12 * r), rnd.uniform(1, 0.06 * r)
        d.rectangle((x, y, x + w, y + h), fill=rnd.choice(colours))


def party_hat(d, cx, cy, r, c, rnd):
    d.polygon([(cx - 0.6 * r, cy + r), (cx + 0.6 * r, cy + r), (cx, cy - r)], fill=c)
    for t in (0.35, 0.65):
        y = cy - r + 2 * r * t
        half = 0.6 * r * t
        d.line((cx - half, y, cx + half, y), fill=(250, 250, 250), width=max(1, int(r / 8)))
    _circle(d, cx, cy - r, 0.15 * r, (250, 235, 60))


def fire(d, cx, cy, r, c, rnd):
    for scale, colour in ((1.0, c), (0.65, (250, 140, 20)), (0.35, (250, 235, 60))):
        pts = []
        for i in range(9):
            a = math.pi * i / 8
            rad = scale * r * (0.6 + 0.4 * rnd.random())
            pts.append((cx - scale * r * math.cos(a), cy + r - rad * 1.8 * math.sin(a) ** 0.5))
        d.polygon(pts, fill=colour)


def lightning(d, cx, cy, r, c, rnd):
    pts, x, y = [], cx + rnd.uniform(-0.2, 0.2) * r, cy - r
    for i in range(4):
        pts.append((x, y))
        x += (0.5 if i % 2 == 0 else -0.5) * r
        y += 0.5 * r
    right = [(px + 0.18 * r, py + 0.05 * r) for px, py in pts]
    d.polygon(pts + [(x, y + 0.2 * r)] + right[::-1], fill=c)


def broken_glass(d, cx, cy, r, c, rnd):
    d.rectangle((cx - r, cy - 0.8 * r, cx + r, cy + 0.8 * r), outline=shade(c, 0.6), width=max(1, int(r / 10)))
    ix, iy = cx + rnd.uniform(-0.3, 0.3) * r, cy + rnd.uniform(-0.3, 0.3) * r
    for i in range(7):
        a = 2 * math.pi * (i + rnd.random() * 0.5) / 7
        d.line((ix, iy, ix + r * math.cos(a), iy + 0.8 * r * math.sin(a)), fill=c, width=1)
    for _ in range(4):
        x, y = cx + rnd.uniform(-r, r), cy + 0.9 * r
        d.polygon([(x, y), (x + 0.2 * r, y - 0.05 * r), (x + 0.05 * r, y - 0.3 * r)], fill=c)


def mountain(d, cx, cy, r, c, rnd):
    base, peak = cy + 0.05 * r, cy - 1.6 * r
    d.polygon([(cx - 1.6 * r, base), (cx + 1.6 * r, base), (cx, peak)], fill=c)
    cap = 0.3
    d.polygon([(cx - 1.6 * r * cap, peak + 1.65 * r * cap), (cx + 1.6 * r * cap, peak + 1.65 * r * cap),
               (cx, peak)], fill=(245, 245, 245))


def wave(d, cx, cy, r, c, rnd):
    pts = [(cx - 1.8 * r, cy + 0.1 * r)]
    for i in range(21):
        t = i / 20
        pts.append((cx - 1.8 * r + 3.6 * r * t, cy - 1.4 * r * math.sin(math.pi * t) ** 2))
    pts.append((cx + 1.8 * r, cy + 0.1 * r))
    d.polygon(pts, fill=c)
    for i in range(5):
        t = 0.3 + 0.1 * i
        x, y = cx - 1.8 * r + 3.6 * r * t, cy - 1.4 * r * math.sin(math.pi * t) ** 2
        _circle(d, x, y, 0.12 * r, (245, 245, 245))


def starfield(d, cx, cy, r, c, rnd):
    for _ in range(int(10 + 40 * r / 50)):
        x, y = cx + rnd.uniform(-1.4 * r, 1.4 * r), cy + rnd.uniform(-0.8 * r, 0.8 * r)
        _circle(d, x, y, rnd.uniform(0.5, 1.6), c)
    for _ in range(3):
        _star(d, cx + rnd.uniform(-r, r), cy + rnd.uniform(-0.6 * r, 0.6 * r), rnd.uniform(0.08, 0.15) * r, c)


def flower(d, cx, cy, r, c, rnd):
    d.line((cx, cy, cx, cy + 1.2 * r), fill=(40, 140, 50), width=max(1, int(r / 6)))
    for i in range(6):
        a = 2 * math.pi * i / 6
        _circle(d, cx + 0.5 * r * math.cos(a), cy + 0.5 * r * math.sin(a), 0.38 * r, c)
    _circle(d, cx, cy, 0.3 * r, (250, 200, 40))


def heart(d, cx, cy, r, c, rnd):
    _circle(d, cx - 0.45 * r, cy - 0.3 * r, 0.5 * r, c)
    _circle(d, cx + 0.45 * r, cy - 0.3 * r, 0.5 * r, c)
    d.polygon([(cx - 0.93 * r, cy - 0.15 * r), (cx + 0.93 * r, cy - 0.15 * r), (cx, cy + r)], fill=c)


def sun(d, cx, cy, r, c, rnd):
    for i in range(12):
        a = 2 * math.pi * i / 12
        d.line((cx + 0.7 * r * math.cos(a), cy + 0.7 * r * math.sin(a),
                cx + r * math.cos(a), cy + r * math.sin(a)), fill=c, width=max(1, int(r / 8)))
    _circle(d, cx, cy, 0.6 * r, c)


def rot(d, cx, cy, r, c, rnd):
    for _ in range(7):
        x, y = cx + rnd.uniform(-0.7, 0.7) * r, cy + rnd.uniform(-0.4, 0.4) * r
        w, h = rnd.uniform(0.25, 0.5) * r, rnd.uniform(0.15, 0.35) * r
        d.ellipse((x - w, y - h, x + w, y + h), fill=c)
    for _ in range(10):
        x, y = cx + rnd.uniform(-0.8, 0.8) * r, cy + rnd.uniform(-0.4, 0.4) * r
        _circle(d, x, y, rnd.uniform(0.03, 0.09) * r, shade(c, 0.5))


def flies(d, cx, cy, r, c, rnd):
    for _ in range(int(10 + 10 * rnd.random())):
        x, y = cx + rnd.uniform(-r, r), cy + rnd.uniform(-0.7 * r, 0.7 * r)
        s = max(1.0, 0.05 * r)
        d.ellipse((x - 1.5 * s, y - 2 * s, x, y - 0.5 * s), fill=(200, 200, 210))
        _circle(d, x, y, s, c)


def worm(d, cx, cy, r, c, rnd):
    phase = rnd.uniform(0, math.pi)
    for i in range(14):
        t = i / 13
        _circle(d, cx - r + 2 * r * t, cy + 0.3 * r * math.sin(phase + 3 * math.pi * t), 0.16 * r, c)
    _circle(d, cx + r, cy + 0.3 * r * math.sin(phase + 3 * math.pi), 0.03 * r + 1, (20, 20, 20))


def fireworks(d, cx, cy, r, c, rnd):
    for i in range(14):
        a = 2 * math.pi * i / 14 + rnd.random() * 0.2
        x, y = cx + r * math.cos(a), cy + r * math.sin(a)
        d.line((cx + 0.25 * r * math.cos(a), cy + 0.25 * r * math.sin(a), x, y), fill=c, width=1)
        _circle(d, x, y, max(1.0, 0.06 * r), shade(c, 1.3))


def gift(d, cx, cy, r, c, rnd):
    ribbon = (250, 235, 60) if sum(c) < 450 else (200, 20, 40)
    d.rectangle((cx - 0.8 * r, cy - 0.5 * r, cx + 0.8 * r, cy + r), fill=c)
    d.rectangle((cx - 0.9 * r, cy - 0.7 * r, cx + 0.9 * r, cy - 0.4 * r), fill=shade(c, 0.8))
    d.rectangle((cx - 0.12 * r, cy - 0.7 * r, cx + 0.12 * r, cy + r), fill=ribbon)
    _circle(d, cx - 0.25 * r, cy - 0.85 * r, 0.22 * r, ribbon)
    _circle(d, cx + 0.25 * r, cy - 0.85 * r, 0.22 * r, ribbon)


def rocket(d, cx, cy, r, c, rnd):
    d.polygon([(cx - 0.35 * r, cy + 0.6 * r), (cx - 0.8 * r, cy + r), (cx - 0.35 * r, cy + 0.1 * r)], fill=(200, 20, 40))
    d.polygon([(cx + 0.35 * r, cy + 0.6 * r), (cx + 0.8 * r, cy + r), (cx + 0.35 * r, cy + 0.1 * r)], fill=(200, 20, 40))
    d.rectangle((cx - 0.35 * r, cy - 0.5 * r, cx + 0.35 * r, cy + 0.8 * r), fill=c)
    d.polygon([(cx - 0.35 * r, cy - 0.5 * r), (cx + 0.35 * r, cy - 0.5 * r), (cx, cy - r)], fill=shade(c, 0.8))
    _circle(d, cx, cy - 0.1 * r, 0.15 * r, (120, 190, 245))
    d.polygon([(cx - 0.25 * r, cy + 0.8 * r), (cx + 0.25 * r, cy + 0.8 * r), (cx, cy + 1.3 * r)], fill=(250, 140, 20))


def spider(d, cx, cy, r, c, rnd):
    w = max(1, int(r / 10))
    for side in (-1, 1):
        for i in range(4):
            a = -0.6 + 0.4 * i
            kx, ky = cx + side * 0.6 * r, cy + (a - 0.4) * r
            d.line((cx, cy, kx, ky), fill=c, width=w)
            d.line((kx, ky, cx + side * r, cy + (a + 0.3) * r), fill=c, width=w)
    d.ellipse((cx - 0.35 * r, cy - 0.3 * r, cx + 0.35 * r, cy + 0.45 * r), fill=c)
    _circle(d, cx, cy - 0.4 * r, 0.2 * r, c)
    _circle(d, cx - 0.08 * r, cy - 0.45 * r, 0.05 * r + 0.5, (200, 20, 40))
    _circle(d, cx + 0.08 * r, cy - 0.45 * r, 0.05 * r + 0.5, (200, 20, 40))


def snake(d, cx, cy, r, c, rnd):
    phase = rnd.uniform(0, math.pi)
    pts = [(cx - r + 2 * r * i / 24, cy + 0.35 * r * math.sin(phase + 4 * math.pi * i / 24)) for i in range(25)]
    d.line(pts, fill=c, width=max(2, int(0.22 * r)))
    hx, hy = pts[-1]
    d.ellipse((hx - 0.2 * r, hy - 0.15 * r, hx + 0.25 * r, hy + 0.15 * r), fill=shade(c, 0.8))
    d.line((hx + 0.25 * r, hy, hx + 0.45 * r, hy), fill=(200, 20, 40), width=1)
    _circle(d, hx + 0.05 * r, hy - 0.05 * r, 0.04 * r + 0.5, (250, 235, 60))


def skull(d, cx, cy, r, c, rnd):
    _circle(d, cx, cy - 0.15 * r, 0.75 * r, c)
    d.rectangle((cx - 0.45 * r, cy + 0.3 * r, cx + 0.45 * r, cy + 0.85 * r), fill=c)
    for side in (-1, 1):
        _circle(d, cx + side * 0.3 * r, cy - 0.1 * r, 0.2 * r, (20, 20, 24))
    d.polygon([(cx, cy + 0.15 * r), (cx - 0.1 * r, cy + 0.35 * r), (cx + 0.1 * r, cy + 0.35 * r)], fill=(20, 20, 24))
    for i in range(4):
        x = cx - 0.3 * r + 0.2 * r * i
        d.line((x, cy + 0.55 * r, x, cy + 0.85 * r), fill=(20, 20, 24), width=1)


def tombstone(d, cx, cy, r, c, rnd):
    d.rectangle((cx - 0.6 * r, cy - 0.4 * r, cx + 0.6 * r, cy + r), fill=c)
    d.pieslice((cx - 0.6 * r, cy - r, cx + 0.6 * r, cy + 0.2 * r), 180, 360, fill=c)
    dark = shade(c, 0.5)
    d.line((cx, cy - 0.6 * r, cx, cy + 0.2 * r), fill=dark, width=max(1, int(r / 8)))
    d.line((cx - 0.3 * r, cy - 0.35 * r, cx + 0.3 * r, cy - 0.35 * r), fill=dark, width=max(1, int(r / 8)))
    d.rectangle((cx - 0.8 * r, cy + 0.9 * r, cx + 0.8 * r, cy + r), fill=(90, 70, 40))


def candle(d, cx, cy, r, c, rnd):
    _circle(d, cx, cy - 0.75 * r, 0.35 * r, (255, 220, 120))
    d.rectangle((cx - 0.25 * r, cy - 0.4 * r, cx + 0.25 * r, cy + r), fill=c)
    d.ellipse((cx - 0.12 * r, cy - 0.95 * r, cx + 0.12 * r, cy - 0.45 * r), fill=(250, 140, 20))
    d.ellipse((cx - 0.06 * r, cy - 0.8 * r, cx + 0.06 * r, cy - 0.5 * r), fill=(250, 235, 60))


def wilted_flower(d, cx, cy, r, c, rnd):
    d.arc((cx - 0.2 * r, cy - 0.6 * r, cx + 0.9 * r, cy + 1.4 * r), 180, 270, fill=(110, 120, 40), width=max(1, int(r / 6)))
    d.line((cx - 0.2 * r + 0.55 * r, cy + 0.4 * r, cx + 0.35 * r, cy + 1.2 * r), fill=(110, 120, 40), width=max(1, int(r / 6)))
    hx, hy = cx - 0.15 * r, cy + 0.2 * r
    for i in range(4):
        a = math.pi * (0.25 + 0.5 * i / 3)
        _circle(d, hx + 0.3 * r * math.cos(a), hy + 0.35 * r * math.sin(a), 0.2 * r, c)
    for _ in range(2):
        _circle(d, cx + rnd.uniform(-0.6, 0.6) * r, cy + 1.1 * r, 0.12 * r, c)


def tree(d, cx, cy, r, c, rnd):
    d.rectangle((cx - 0.12 * r, cy, cx + 0.12 * r, cy + r), fill=(110, 70, 35))
    for dx, dy, rr in ((0, -0.4, 0.6), (-0.35, -0.05, 0.45), (0.35, -0.05, 0.45)):
        _circle(d, cx + dx * r, cy + dy * r, rr * r, c)


def house(d, cx, cy, r, c, rnd):
    d.rectangle((cx - 0.7 * r, cy - 0.2 * r, cx + 0.7 * r, cy + r), fill=c)
    d.polygon([(cx - 0.9 * r, cy - 0.2 * r), (cx + 0.9 * r, cy - 0.2 * r), (cx, cy - r)], fill=(150, 50, 40))
    d.rectangle((cx - 0.15 * r, cy + 0.4 * r, cx + 0.15 * r, cy + r), fill=(90, 60, 30))
    d.rectangle((cx + 0.3 * r, cy + 0.05 * r, cx + 0.55 * r, cy + 0.3 * r), fill=(120, 190, 245))


def bird(d, cx, cy, r, c, rnd):
    w = max(1, int(r / 4))
    d.line((cx - r, cy - 0.4 * r, cx, cy + 0.2 * r), fill=c, width=w)
    d.line((cx, cy + 0.2 * r, cx + r, cy - 0.4 * r), fill=c, width=w)


def cloud(d, cx, cy, r, c, rnd):
    for dx, dy, rr in ((-0.5, 0.1, 0.45), (0, -0.15, 0.55), (0.5, 0.1, 0.45)):
        _circle(d, cx + dx * r, cy + dy * r, rr * r, c)
    d.rectangle((cx - 0.5 * r, cy + 0.1 * r, cx + 0.5 * r, cy + 0.55 * r), fill=c)


def moon(d, cx, cy, r, c, rnd):
    _circle(d, cx, cy, r, c)
    for _ in range(3):
        _circle(d, cx + rnd.uniform(-0.5, 0.5) * r, cy + rnd.uniform(-0.5, 0.5) * r,
                rnd.uniform(0.1, 0.2) * r, shade(c, 0.85))


def fence(d, cx, cy, r, c, rnd):
    w = max(1, int(r / 8))
    for y in (cy - 0.2 * r, cy + 0.3 * r):
        d.line((cx - r, y, cx + r, y), fill=c, width=w)
    for i in range(6):
        x = cx - r + 2 * r * i / 5
        d.rectangle((x - 0.07 * r, cy - 0.5 * r, x + 0.07 * r, cy + 0.6 * r), fill=c)


SHAPES = {f.__name__: f for f in (
    balloon, confetti, party_hat, fire, lightning, broken_glass, mountain, wave, starfield,
    flower, heart, sun, rot, flies, worm, fireworks, gift, rocket, spider, snake, skull,
    tombstone, candle, wilted_flower, tree, house, bird, cloud, moon, fence,
)}


# Corner marks (the `corner_mark` attribute): drawn white with a black outline in a box.
def corner_mark(d: ImageDraw.ImageDraw, mark: str, box: tuple[float, float, float, float]) -> None:
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    white, black = (250, 250, 250), (10, 10, 10)
    if mark == "circle":
        d.ellipse(box, fill=white, outline=black)
    elif mark == "square":
        d.rectangle(box, fill=white, outline=black)
    elif mark == "triangle":
        d.polygon([(x0, y1), (x1, y1), (cx, y0)], fill=white, outline=black)
    elif mark == "diamond":
        d.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=white, outline=black)
    elif mark == "cross":
        w = max(1, int(r / 2))
        m = w  # inset so that the thick strokes stay inside the box
        d.line((x0 + m, y0 + m, x1 - m, y1 - m), fill=white, width=w)
        d.line((x0 + m, y1 - m, x1 - m, y0 + m), fill=white, width=w)
    else:
        raise ValueError(f"no drawing for corner mark {mark!r}")
