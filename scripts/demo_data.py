#!/usr/bin/env python3
"""Procedural training clips for the built-in demo model (issue 23; docs/training.md, "The trained demo").

Writes --variants clips per caption "a <colour> <shape> moving <direction> on a <colour> background" for
every shape (circle, square), shape colour, background colour (≠ the shape's) and direction (left,
right, up, down): <name>-<i>.y4m (YUV4MPEG2 4:4:4, BT.601 limited range, the layout wanrt's reader and
writer use) and <name>-<i>.txt (the caption). The shape moves 7/16 of the frame at constant speed
along its direction; where its path lies varies from clip to clip (a fixed pseudo-random draw per
clip name), so the caption says what moves and which way, never where. The Wan DiT has only relative
(RoPE) positions: with one fixed path per caption it has to infer absolute position from the frame's
edges, which the 2-block demo DiT did not learn in 8,000 steps (docs/training.md); "the shape one
frame later sits further left" is a relative fact it can learn.

Pure Python (no numpy): the frames are flat colours, so each row is background, one span of the shape's
colour, background.

    python3 scripts/demo_data.py --out clips/ [--size 64 --frames 17 --shape_scale 1 --travel 0.4375]
"""
import argparse
import os
import random

COLOURS = {
    "red": (230, 25, 25),
    "green": (25, 200, 25),
    "blue": (25, 25, 230),
    "yellow": (235, 225, 25),
    "white": (240, 240, 240),
    "black": (15, 15, 15),
}
SHAPES = ("circle", "square")
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def ycbcr(rgb):
    """BT.601 limited range, rounded half away from zero (src/video/video_writer.h)."""
    r, g, b = rgb
    y = 16 + 219 * (0.299 * r + 0.587 * g + 0.114 * b) / 255
    cb = 128 + 224 * (-0.168736 * r - 0.331264 * g + 0.5 * b) / 255
    cr = 128 + 224 * (0.5 * r - 0.418688 * g - 0.081312 * b) / 255
    return tuple(int(v + 0.5) for v in (y, cb, cr))


def centre(direction, size, frames, f, mid, travel):
    """Centre (x, y) of the shape in frame f: from travel/2 before mid to travel/2 past it."""
    dx, dy = DIRECTIONS[direction]
    s = -1.0 + 2.0 * f / (frames - 1)  # −1 … 1
    return mid[0] + dx * s * travel / 2.0, mid[1] + dy * s * travel / 2.0


def path_middle(name, direction, size, r, travel):
    """The middle of a clip's path: uniform where the whole path and shape stay 1 px inside the frame."""
    rng = random.Random(name)  # seeding from a str is the same on every run and platform
    along = rng.uniform(r + 1 + travel / 2, size - r - 1 - travel / 2)
    across = rng.uniform(r + 1, size - r - 1)
    return (along, across) if DIRECTIONS[direction][0] else (across, along)


def span(shape, cx, cy, r, row):
    """[x0, x1) covered by the shape in pixel row `row` (pixel centres at +0.5), or None."""
    y = row + 0.5
    if shape == "square":
        if abs(y - cy) > r:
            return None
        a, b = cx - r, cx + r
    else:
        d = r * r - (y - cy) ** 2
        if d < 0:
            return None
        h = d ** 0.5
        a, b = cx - h, cx + h
    x0, x1 = int(a + 0.5), int(b + 0.5)  # pixels whose centre lies inside
    return (x0, x1) if x1 > x0 else None


def geometry(shape, size, shape_scale, travel):
    """(radius, path length) in pixels."""
    r = size * (0.16 if shape == "circle" else 0.142) * shape_scale  # equal areas at any scale
    return r, size * travel


def write_clip(path, name, shape, fg, bg, direction, size, frames, shape_scale=1.0, travel_frac=7 / 16):
    fg_ycc, bg_ycc = ycbcr(COLOURS[fg]), ycbcr(COLOURS[bg])
    # Defaults: small enough to leave the path room; the test's checker asks for a centroid shift of
    # size/4 through the 4-frame holds.
    r, travel = geometry(shape, size, shape_scale, travel_frac)
    mid = path_middle(name, direction, size, r, travel)
    out = bytearray(b"YUV4MPEG2 W%d H%d F16:1 Ip A1:1 C444 XCOLORRANGE=LIMITED\n" % (size, size))
    for f in range(frames):
        cx, cy = centre(direction, size, frames, f, mid, travel)
        out += b"FRAME\n"
        for p in range(3):
            bgv, fgv = bytes([bg_ycc[p]]), bytes([fg_ycc[p]])
            for row in range(size):
                sp = span(shape, cx, cy, r, row)
                if sp is None:
                    out += bgv * size
                    continue
                x0, x1 = max(0, sp[0]), min(size, sp[1])
                out += bgv * x0 + fgv * max(0, x1 - x0) + bgv * (size - max(x0, x1))
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(out)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--size", type=int, default=64, help="width = height, a multiple of 16")
    ap.add_argument("--frames", type=int, default=17, help="frames per clip, 1 + 4k")
    ap.add_argument("--variants", type=int, default=6, help="clips per caption, each on its own path")
    # The motion per latent frame against the DiT's 16-px tokens (docs/training.md, session 16): the
    # defaults move the shape 0.44 of a token per latent frame at 64².
    ap.add_argument("--shape_scale", type=float, default=1.0, help="shape radius relative to the default")
    ap.add_argument("--travel", type=float, default=7 / 16, help="path length as a fraction of the size")
    a = ap.parse_args()
    if a.size % 16 or a.size < 32:
        ap.error("--size must be a multiple of 16, at least 32")
    if a.frames < 5 or (a.frames - 1) % 4:
        ap.error("--frames must be 1 + 4k, at least 5")
    if a.variants < 1:
        ap.error("--variants must be at least 1")
    for shape in SHAPES:
        r, travel = geometry(shape, a.size, a.shape_scale, a.travel)
        area = (3.14159 * r * r if shape == "circle" else 4 * r * r) / (a.size * a.size)
        if not 0.02 <= area <= 0.25:
            ap.error("--shape_scale %g makes the %s %.1f %% of the frame; the test's checker wants 2-25 %%"
                     % (a.shape_scale, shape, 100 * area))
        if a.travel < 0.25 or travel + 2 * r + 2 > a.size:
            ap.error("--travel %g: the path must be at least a quarter of the frame and fit it with the %s "
                     "(at most %.3f here)" % (a.travel, shape, (a.size - 2 * r - 2) / a.size))
    os.makedirs(a.out, exist_ok=True)
    n = 0
    for shape in SHAPES:
        for fg in COLOURS:
            for bg in COLOURS:
                if fg == bg:
                    continue
                for d in DIRECTIONS:
                    for i in range(a.variants):
                        name = "%s-%s-%s-on-%s-%d" % (fg, shape, d, bg, i)
                        write_clip(os.path.join(a.out, name + ".y4m"), name, shape, fg, bg, d, a.size, a.frames,
                                   a.shape_scale, a.travel)
                        with open(os.path.join(a.out, name + ".txt"), "w") as fh:
                            fh.write("a %s %s moving %s on a %s background\n" % (fg, shape, d, bg))
                        n += 1
    print("wrote %d clips (%dx%d, %d frames) to %s" % (n, a.size, a.size, a.frames, a.out))


if __name__ == "__main__":
    main()
