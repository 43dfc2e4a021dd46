"""Tests of the Python bindings on the built-in demo model (ctest: python_bindings, label cpu).

Run from the build tree: PYTHONPATH=build/python WANRT_BINARY=build/wanrt /usr/bin/python3 -m pytest python/tests
Nothing here skips: a missing module, numpy or CLI binary fails. WANRT_TEST_DEVICE (default cpu)
picks the backend, e.g. WANRT_TEST_DEVICE=cuda on a GPU machine.
"""
import os
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest

import wanrt

# Small enough to run in seconds on a CPU: 64x48 (W x H, multiples of 16), 5 frames, 2 steps.
SIZE, W, H = "64*48", 64, 48
FRAMES, STEPS = 5, 2
DEVICE = os.environ.get("WANRT_TEST_DEVICE") or "cpu"


@pytest.fixture(scope="module")
def model():
    return wanrt.Model(device=DEVICE)


def gen(model, **kw):
    args = dict(size=SIZE, frame_num=FRAMES, sample_steps=STEPS, seed=7)
    args.update(kw)
    return model.generate("a red fox running through snow", **args)


def cli_binary():
    path = os.environ.get("WANRT_BINARY") or shutil.which("wanrt")
    assert path and os.path.exists(path), "the wanrt binary was not found: set WANRT_BINARY (ctest sets it)"
    return path


def cli_error(*args):
    """The one-line message `wanrt ARGS` fails with (its stderr line 'wanrt: MESSAGE')."""
    r = subprocess.run([cli_binary(), *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = [l for l in r.stderr.splitlines() if l.startswith("wanrt: ")]
    assert len(lines) == 1, r.stderr
    return lines[0][len("wanrt: "):]


def one_line(e):
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("["), msg
    return msg


def test_model_info(model):
    assert model.kind == "demo"
    assert "demo" in model.name
    assert model.device  # the backend description, e.g. "AMD EPYC, 2 threads"
    assert model.last_seed == -1


def test_generate_shape_dtype(model):
    v = gen(model)
    assert isinstance(v, np.ndarray)
    assert v.dtype == np.uint8
    assert v.shape == (FRAMES, H, W, 3)
    assert v.flags.c_contiguous
    assert v.std() > 1.0  # structured noise, not a constant picture
    assert model.last_seed == 7


def test_generate_deterministic(model):
    a, b, c = gen(model, seed=3), gen(model, seed=3), gen(model, seed=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_generate_random_seed_is_reported(model):
    v = gen(model, seed=None)
    s = model.last_seed
    assert s >= 0
    assert np.array_equal(v, gen(model, seed=s))


def test_generate_matches_cli(model, tmp_path):
    """The same request through the CLI writes the same frames (y4m carries them as 4:2:0, so compare
    the files the two write)."""
    py_file, cli_file = tmp_path / "py.y4m", tmp_path / "cli.y4m"
    gen(model, seed=11, save_file=str(py_file))
    r = subprocess.run([cli_binary(), "generate", "--size", SIZE, "--frame_num", str(FRAMES), "--sample_steps",
                        str(STEPS), "--base_seed", "11", "--prompt", "a red fox running through snow", "--save_file",
                        str(cli_file), "--device", DEVICE], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert py_file.read_bytes() == cli_file.read_bytes()
    assert py_file.read_bytes().count(b"FRAME") == FRAMES


def test_generate_progress(model):
    calls = []
    gen(model, progress=lambda stage, done, total: calls.append((stage, done, total)))
    steps = [(d, t) for s, d, t in calls if s == "denoise" and t > 0]
    assert steps == [(i + 1, STEPS) for i in range(STEPS)]
    assert any(t == 0 for _, _, t in calls)  # the stage announcements


def test_progress_exception_propagates(model):
    class Stop(Exception):
        pass

    def stop(stage, done, total):
        if done == 1:
            raise Stop("cancelled")

    with pytest.raises(Stop):
        gen(model, progress=stop)
    assert gen(model).shape == (FRAMES, H, W, 3)  # the model is still usable


def test_gil_released(model):
    """Python keeps running while a generation runs in another thread: with the GIL held for the
    whole call, the loop below would get about one turn."""
    result = {}
    t = threading.Thread(target=lambda: result.update(v=gen(model, size="128*96", frame_num=9, sample_steps=4)))
    turns = 0
    t.start()
    while t.is_alive():
        time.sleep(0.001)
        turns += 1
    t.join()
    assert result["v"].shape == (9, 96, 128, 3)
    assert turns >= 10, turns


def test_error_class():
    assert issubclass(wanrt.Error, RuntimeError)


def test_errors_one_line(model, tmp_path):
    with pytest.raises(wanrt.Error) as e:
        gen(model, size="64x48")
    assert "WIDTH*HEIGHT" in one_line(e)
    with pytest.raises(wanrt.Error) as e:
        gen(model, frame_num=6)
    assert "4n+1" in one_line(e)
    with pytest.raises(wanrt.Error) as e:
        gen(model, sample_solver="ddim")
    assert "unipc" in one_line(e)
    with pytest.raises(wanrt.Error) as e:
        gen(model, save_file=str(tmp_path / "out.xyz"))
    assert one_line(e).startswith("[video]")
    assert not (tmp_path / "out.xyz").exists()
    with pytest.raises(wanrt.Error) as e:
        wanrt.Model(device="tpu")
    one_line(e)


def test_errors_same_as_cli(tmp_path):
    missing = str(tmp_path / "no_such_model")
    with pytest.raises(wanrt.Error) as e:
        wanrt.Model(missing)
    assert one_line(e) == cli_error("generate", "--ckpt_dir", missing, "--save_file", str(tmp_path / "x.y4m"))


def test_stream_errors_same_as_cli(model, tmp_path):
    with pytest.raises(wanrt.Error) as e:
        model.stream("oil painting", noise_scale=1.5)
    assert one_line(e) == cli_error("stream", "--input", str(tmp_path / "in.y4m"), "--output",
                                    str(tmp_path / "out.y4m"), "--prompt", "oil painting", "--noise_scale", "1.5")


def moving_frames(n, seed=0):
    """A bright square moving over a noisy background: [n, H, W, 3] uint8."""
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 60, size=(n, H, W, 3), dtype=np.uint8)
    for i in range(n):
        v[i, 10:26, 2 * i:2 * i + 16] = (250, 200, 40)
    return v


def run_stream(model, pieces, frames):
    s = model.stream("oil painting", steps=[700, 500], seed=5)
    outs, at = [], 0
    for n in pieces:
        o = s.push(frames[at:at + n])
        at += n
        assert o.dtype == np.uint8 and o.ndim == 4 and o.shape[1:] == (H, W, 3)
        outs.append(o)
    outs.append(s.flush())
    return s, np.concatenate(outs)


def test_stream_push(model):
    frames = moving_frames(17)  # chunks of 5, 4, 4, 4
    s, out = run_stream(model, [5, 4, 4, 4], frames)
    assert out.shape == (17, H, W, 3)
    assert s.stats["frames_in"] == 17 and s.stats["chunks_in"] == 4
    assert np.abs(out.astype(int) - frames.astype(int)).mean() > 1.0  # restyled, not passed through


def test_stream_any_piece_sizes(model):
    """Frames are queued into the loop's chunks: any split gives the same video."""
    frames = moving_frames(19)  # 17 in whole chunks, 2 left over (dropped at flush, as SD)
    _, ref = run_stream(model, [5, 4, 4, 4, 2], frames)
    s = model.stream("oil painting", steps=[700, 500], seed=5)
    first = s.push(frames[:3])
    assert first.shape == (0, H, W, 3) and s.pending_frames == 3 and s.next_chunk_frames == 5
    rest = s.push(frames[3:19])
    assert s.pending_frames == 2
    out = np.concatenate([first, rest, s.flush()])
    assert out.shape == (17, H, W, 3)
    assert np.array_equal(out, ref)


def test_stream_errors(model):
    s = model.stream("oil painting")
    with pytest.raises(wanrt.Error) as e:
        s.push(moving_frames(5).astype(np.float32))
    assert "uint8" in one_line(e)
    with pytest.raises(wanrt.Error) as e:
        s.push(np.zeros((5, 40, 64, 3), np.uint8))
    assert "multiple of 16" in one_line(e)
    with pytest.raises(wanrt.Error) as e:
        s.push(np.zeros((5, H, W), np.uint8))
    one_line(e)
    s.push(moving_frames(5))
    with pytest.raises(wanrt.Error) as e:
        s.push(np.zeros((4, 32, 32, 3), np.uint8))
    assert "one size per stream" in one_line(e)
    s.flush()
    with pytest.raises(wanrt.Error) as e:
        s.push(moving_frames(4))
    assert "reset()" in one_line(e)
    s.reset()
    assert s.push(moving_frames(5)).shape == (5, H, W, 3)  # chunk 0 comes back at once


# ---- image-to-video: Wan2.1 I2V, FLF2V, Wan2.2 TI2V-5B and i2v-A14B demo folders (`wanrt synth`) ----

I2V_SIZE = "64*64"  # the max_area; the video keeps the picture's aspect (pipeline/i2v.h)
PROMPT = "a red fox running through snow"


def png_bytes(rgb):
    """A PNG (8-bit RGB, no filter) of a uint8 [H, W, 3] array, written here so that the picture the
    CLI reads from the file is exactly the array (no PIL needed)."""
    import struct
    import zlib

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    h, w, _ = rgb.shape
    raw = b"".join(b"\0" + rgb[y].tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def picture(h, w, seed):
    """A smooth gradient with a square: uint8 [h, w, 3]."""
    y, x = np.mgrid[0:h, 0:w]
    p = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y + 40 * seed) % 256], -1).astype(np.uint8)
    p[h // 4:h // 2, w // 4:w // 2] = (250, 200 - 50 * seed, 40)
    return p


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """Two pictures of one size (48x40, not the video's aspect: the resize runs) as arrays and PNG files."""
    d = tmp_path_factory.mktemp("pictures")
    out = {}
    for name, seed in (("first", 0), ("last", 1)):
        arr = picture(40, 48, seed)
        (d / (name + ".png")).write_bytes(png_bytes(arr))
        out[name] = (arr, d / (name + ".png"))
    return out


_folders = {}


def demo_folder(tmp_path_factory, name):
    """`wanrt synth --model NAME --full_folder`: a complete release folder of a demo model, made once."""
    if name not in _folders:
        d = tmp_path_factory.mktemp(name)
        r = subprocess.run([cli_binary(), "synth", "--model", name, "--full_folder", "--out", str(d)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        _folders[name] = str(d)
    return _folders[name]


def y4m_size(data):
    """(W, H) from a .y4m header."""
    header = data.split(b"\n", 1)[0].split()
    return int(next(t[1:] for t in header if t.startswith(b"W"))), int(next(t[1:] for t in header if t.startswith(b"H")))


def cli_generate(folder, out, *args):
    r = subprocess.run([cli_binary(), "generate", "--ckpt_dir", folder, "--size", I2V_SIZE, "--frame_num", str(FRAMES),
                        "--sample_steps", str(STEPS), "--base_seed", "11", "--prompt", PROMPT, "--save_file", str(out),
                        "--device", DEVICE, *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return out.read_bytes()


# (synth model, the CLI's picture flags, the binding's picture arguments); first/last name `pictures`.
IMAGE_CASES = [
    ("demo-i2v", ["--image", "first"], {"image": "first"}),
    ("demo-flf2v", ["--first_frame", "first", "--last_frame", "last"], {"image": "first", "last_image": "last"}),
    ("demo-ti2v-5B", ["--image", "first"], {"image": "first"}),
    ("demo-ti2v-5B", [], {}),  # TI2V-5B's picture is optional: text-to-video without one
    ("demo-i2v-A14B", ["--image", "first"], {"image": "first"}),
    ("demo-t2v-A14B", [], {}),  # the experts' default guide pair and boundary, as the CLI's
]


@pytest.mark.parametrize("synth,cli_args,py_args", IMAGE_CASES,
                         ids=["i2v", "flf2v", "ti2v-image", "ti2v-text", "i2v-A14B", "t2v-A14B"])
def test_image_generate_matches_cli(tmp_path_factory, pictures, synth, cli_args, py_args):
    """Model.generate(image=...) gives the frames `wanrt generate --image` (--first_frame/--last_frame) writes
    on the same folder and seed (the .y4m files byte for byte), whether the picture is an array or a path."""
    folder = demo_folder(tmp_path_factory, synth)
    tmp = tmp_path_factory.mktemp("out")
    cli = cli_generate(folder, tmp / "cli.y4m",
                       *[str(pictures[a][1]) if a in pictures else a for a in cli_args])
    m = wanrt.Model(folder, device=DEVICE)
    assert m.fps == (24 if synth == "demo-ti2v-5B" else 16)  # the configs' sample_fps: the .y4m headers agree
    as_array = {k: pictures[v][0] for k, v in py_args.items()}
    v = m.generate(PROMPT, size=I2V_SIZE, frame_num=FRAMES, sample_steps=STEPS, seed=11,
                   save_file=str(tmp / "py.y4m"), **as_array)
    assert isinstance(v, np.ndarray) and v.dtype == np.uint8 and v.flags.c_contiguous
    w, h = y4m_size(cli)
    assert v.shape == (FRAMES, h, w, 3)
    assert v.std() > 1.0
    assert (tmp / "py.y4m").read_bytes() == cli
    assert cli.count(b"FRAME") == FRAMES
    if py_args:  # paths (str and os.PathLike) read as the CLI reads them: the same frames
        as_str = {k: str(pictures[n][1]) for k, n in py_args.items()}
        as_path = {k: pictures[n][1] for k, n in py_args.items()}
        for a in (as_str, as_path):
            u = m.generate(PROMPT, size=I2V_SIZE, frame_num=FRAMES, sample_steps=STEPS, seed=11, **a)
            assert np.array_equal(u, v)
        if synth == "demo-i2v":  # the picture conditions the video: another one changes it
            u = m.generate(PROMPT, size=I2V_SIZE, frame_num=FRAMES, sample_steps=STEPS, seed=11,
                           image=pictures["last"][0])
            assert not np.array_equal(u, v)


def image_error(m, **kw):
    args = dict(size=I2V_SIZE, frame_num=FRAMES, sample_steps=STEPS, seed=1)
    args.update(kw)
    with pytest.raises(wanrt.Error) as e:
        m.generate(PROMPT, **args)
    return one_line(e)


def test_image_errors(model, tmp_path_factory, pictures, tmp_path):
    first, first_png = pictures["first"]
    last = pictures["last"][0]
    # A text-to-video model given a picture.
    msg = image_error(model, image=first)
    assert "image needs an image-to-video model" in msg and "leave out image" in msg, msg
    i2v = wanrt.Model(demo_folder(tmp_path_factory, "demo-i2v"), device=DEVICE)
    # An I2V model without one, or with a last frame.
    msg = image_error(i2v)
    assert "image-to-video model" in msg and "pass image=" in msg, msg
    assert "last_image needs a first-last-frame model" in image_error(i2v, image=first, last_image=last)
    assert "last_image needs image" in image_error(i2v, last_image=last)
    # Arrays of the wrong dtype or shape, and things that are neither arrays nor paths.
    msg = image_error(i2v, image=first.astype(np.float32) / 255)
    assert msg.startswith("[generate] image has dtype float32") and "uint8" in msg, msg
    msg = image_error(i2v, image=first[..., 0])
    assert "image has shape (40, 48)" in msg and "[H, W, 3]" in msg, msg
    assert "[H, W, 3]" in image_error(i2v, image=np.zeros((40, 48, 4), np.uint8))
    assert "[H, W, 3]" in image_error(i2v, image=np.stack([first, first]))
    msg = image_error(i2v, image=first.tolist())
    assert "image is a list" in msg and "file path" in msg, msg
    # Option errors still come before anything loads; a guide pair is for the A14B experts only.
    assert "only the A14B experts" in image_error(i2v, image=first, guide_scale=(3.0, 4.0))
    assert "4n+1" in image_error(i2v, image=first, frame_num=6)
    # A missing file: the CLI's message, word for word.
    missing = str(tmp_path / "missing.png")
    msg = image_error(i2v, image=missing)
    assert msg == cli_error("generate", "--ckpt_dir", demo_folder(tmp_path_factory, "demo-i2v"), "--image", missing,
                            "--size", I2V_SIZE, "--save_file", str(tmp_path / "x.y4m"))
    # FLF2V needs both pictures of one size.
    flf = wanrt.Model(demo_folder(tmp_path_factory, "demo-flf2v"), device=DEVICE)
    msg = image_error(flf, image=first)
    assert "first-last-frame model" in msg and "last_image=" in msg, msg
    assert image_error(flf, image=first, last_image=last[:32]).startswith("[flf2v]")
    # TI2V-5B takes one optional picture.
    ti2v = wanrt.Model(demo_folder(tmp_path_factory, "demo-ti2v-5B"), device=DEVICE)
    assert "last_image needs a first-last-frame model" in image_error(ti2v, image=first, last_image=last)
    assert "dtype" in image_error(ti2v, image=first.astype(np.int16))


def test_moe_guide_pair(tmp_path_factory, pictures):
    """The A14B experts take guide_scale as (low, high), as --sample_guide_scale low,high; g alone is (g, g)."""
    m = wanrt.Model(demo_folder(tmp_path_factory, "demo-i2v-A14B"), device=DEVICE)
    args = dict(image=pictures["first"][0], size=I2V_SIZE, frame_num=FRAMES, sample_steps=STEPS, seed=2)
    a = m.generate(PROMPT, guide_scale=(2.0, 2.0), **args)
    assert np.array_equal(a, m.generate(PROMPT, guide_scale=2.0, **args))
    assert not np.array_equal(a, m.generate(PROMPT, guide_scale=(2.0, 6.0), **args))


# ---- the same size rules and lines as `wanrt serve` (pipeline/generate.h: parse_request_size) ----

BAD_SIZES = ["832x480", "65*64", "64*99999", "64*"]


@pytest.fixture(scope="module")
def serve_port():
    """`wanrt serve --port 0` on the demo model; yields its port (read from its start line)."""
    import re
    p = subprocess.Popen([cli_binary(), "serve", "--port", "0", "--device", "cpu"], stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in p.stderr:
            m = re.search(r"at http://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "wanrt serve did not start"
        yield port
    finally:
        p.terminate()
        p.wait(timeout=30)


def serve_error(port, body):
    """The one-line error POST /v1/generate answers (400, JSON {"error"})."""
    import json
    import urllib.error
    import urllib.request
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/generate", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 400
    return json.loads(e.value.read())["error"]


@pytest.mark.parametrize("size", BAD_SIZES)
def test_bad_size_refused_as_serve_does(model, serve_port, size):
    """A bad size is refused by Model.generate and by serve's job API with the same one-line message."""
    with pytest.raises(wanrt.Error) as e:
        gen(model, size=size)
    msg = one_line(e)
    assert msg.startswith("[generate] ") and "size" in msg, msg
    assert serve_error(serve_port, {"prompt": PROMPT, "size": size, "frame_num": FRAMES, "sample_steps": STEPS}) == msg
