"""wanrt: the Wan2.1 video diffusion models in native C++ (CPU and CUDA), from Python.

    import wanrt
    model = wanrt.Model()                      # built-in demo model; Model("Wan2.1-T2V-1.3B") for a folder
    video = model.generate("a cat surfing", size="256*256", frame_num=17, seed=1)
    video.shape, video.dtype                   # (17, 256, 256, 3) uint8
    wanrt.Model("Wan2.1-I2V-14B-480P").generate("the cat turns", image="cat.png")   # or uint8 [H, W, 3];
                                               # FLF2V: image= and last_image=; TI2V-5B: image= optional

    stream = model.stream("oil painting")      # StreamDiffusionV2 video-to-video
    out = stream.push(frames)                  # uint8 [n, H, W, 3] in, restyled frames out

Errors in the inputs raise wanrt.Error with the one-line message the `wanrt` command prints.
"""

from ._wanrt import Error, Model, Stream

__all__ = ["Error", "Model", "Stream"]
