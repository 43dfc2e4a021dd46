"""wanrt: the Wan2.1 video diffusion models in native C++ (CPU and CUDA), from Python.

    import wanrt
    model = wanrt.Model()                      # built-in demo model; Model("Wan2.1-T2V-1.3B") for a folder
    video = model.generate("a cat surfing", size="256*256", frame_num=17, seed=1)
    video.shape, video.dtype                   # (17, 256, 256, 3) uint8

    stream = model.stream("oil painting")      # StreamDiffusionV2 video-to-video
    out = stream.push(frames)                  # uint8 [n, H, W, 3] in, restyled frames out

Errors in the inputs raise wanrt.Error with the one-line message the `wanrt` command prints.
"""

from ._wanrt import Error, Model, Stream

__all__ = ["Error", "Model", "Stream"]
