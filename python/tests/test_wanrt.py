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
