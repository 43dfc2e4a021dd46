// PIL's Image.resize(size, Image.LANCZOS) of an 8-bit RGB picture, bit for bit (Pillow's
// libImaging/Resample.c): the TI2V image-to-video input is resized this way before its centre crop.
//
// Pillow's algorithm, reproduced exactly: per output pixel a Lanczos-3 kernel (support 3 × the scale
// when shrinking) centred at (x + 0.5)·scale, weights normalised in float64 and then converted to
// 22-bit fixed point (rounded half away from zero); a horizontal pass first into an 8-bit image
// (sums start at ½ and are clipped to [0, 255]), restricted to the rows the vertical pass reads, then
// a vertical pass the same way. A pass whose size does not change is skipped.
#pragma once

#include <cstdint>
#include <vector>

namespace wanrt {

// rgb: h × w × 3 bytes (row-major, interleaved) → oh × ow × 3 bytes. Sizes must be positive.
std::vector<uint8_t> pil_resize_lanczos(const uint8_t* rgb, int64_t h, int64_t w, int64_t oh, int64_t ow);

}  // namespace wanrt
