// PIL LANCZOS resize (contract in pil_resize.h); names follow Pillow's Resample.c.
#include "video/pil_resize.h"

#include <cmath>

#include "core/error.h"

namespace wanrt {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // PRECISION_BITS

double sinc(double x) {
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return std::sin(x) / x;
}

double lanczos(double x) {  // truncated sinc, support 3
    if (-3.0 <= x && x < 3.0) return sinc(x) * sinc(x / 3.0);
    return 0.0;
}

// precompute_coeffs + normalize_coeffs_8bpc for the box [0, in_size): per output index its first
// input index, its tap count and ksize fixed-point weights.
struct Coeffs {
    int ksize = 0;
    std::vector<int> bounds;  // (xmin, xmax) pairs
    std::vector<int32_t> k;   // out_size × ksize
};

Coeffs precompute(int64_t in_size, int64_t out_size) {
    const double in0 = 0.0, in1 = double(in_size);
    const double scale = (in1 - in0) / double(out_size);
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = 3.0 * filterscale;
    Coeffs c;
    c.ksize = int(std::ceil(support)) * 2 + 1;
    c.bounds.resize(size_t(out_size) * 2);
    c.k.assign(size_t(out_size) * size_t(c.ksize), 0);
    std::vector<double> kk(size_t(c.ksize));
    for (int64_t xx = 0; xx < out_size; ++xx) {
        const double center = in0 + (double(xx) + 0.5) * scale;
        const double ss = 1.0 / filterscale;
        int xmin = int(center - support + 0.5);  // (int) truncates, as C
        if (xmin < 0) xmin = 0;
        int xmax = int(center + support + 0.5);
        if (xmax > in_size) xmax = int(in_size);
        xmax -= xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; ++x) {
            const double w = lanczos((double(x + xmin) - center + 0.5) * ss);
            kk[size_t(x)] = w;
            ww += w;
        }
        for (int x = 0; x < xmax; ++x) {
            if (ww != 0.0) kk[size_t(x)] /= ww;
            const double v = kk[size_t(x)] * double(1 << kPrecisionBits);
            c.k[size_t(xx) * size_t(c.ksize) + size_t(x)] = v < 0 ? int32_t(-0.5 + v) : int32_t(0.5 + v);
        }
        c.bounds[size_t(xx) * 2] = xmin;
        c.bounds[size_t(xx) * 2 + 1] = xmax;
    }
    return c;
}

uint8_t clip8(int32_t v) {
    const int32_t s = v >> kPrecisionBits;  // arithmetic shift, as Pillow's lookup index
    return uint8_t(s < 0 ? 0 : s > 255 ? 255 : s);
}

}  // namespace

std::vector<uint8_t> pil_resize_lanczos(const uint8_t* rgb, int64_t h, int64_t w, int64_t oh, int64_t ow) {
    WANRT_CHECK(h > 0 && w > 0 && oh > 0 && ow > 0, "image", "cannot resize ", w, "x", h, " to ", ow, "x", oh,
                "; sizes must be positive");
    const bool need_h = ow != w, need_v = oh != h;
    const Coeffs ch = precompute(w, ow), cv = precompute(h, oh);
    std::vector<int> vb = cv.bounds;
    // The rows the vertical pass reads: the horizontal pass makes only these.
    const int y_first = vb[0], y_last = vb[size_t(oh) * 2 - 2] + vb[size_t(oh) * 2 - 1];
    std::vector<uint8_t> img(rgb, rgb + h * w * 3);
    int64_t cur_h = h, cur_w = w;
    if (need_h) {
        for (int64_t i = 0; i < oh; ++i) vb[size_t(i) * 2] -= y_first;
        const int64_t th = y_last - y_first;
        std::vector<uint8_t> tmp(size_t(th * ow * 3));
        for (int64_t yy = 0; yy < th; ++yy) {
            const uint8_t* row = img.data() + (yy + y_first) * w * 3;
            for (int64_t xx = 0; xx < ow; ++xx) {
                const int xmin = ch.bounds[size_t(xx) * 2], xmax = ch.bounds[size_t(xx) * 2 + 1];
                const int32_t* k = &ch.k[size_t(xx) * size_t(ch.ksize)];
                int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
                for (int x = 0; x < xmax; ++x) {
                    const uint8_t* p = row + (x + xmin) * 3;
                    s0 += int32_t(p[0]) * k[x];
                    s1 += int32_t(p[1]) * k[x];
                    s2 += int32_t(p[2]) * k[x];
                }
                uint8_t* o = tmp.data() + (yy * ow + xx) * 3;
                o[0] = clip8(s0), o[1] = clip8(s1), o[2] = clip8(s2);
            }
        }
        img.swap(tmp);
        cur_h = th, cur_w = ow;
    }
    if (need_v) {
        std::vector<uint8_t> out(size_t(oh * cur_w * 3));
        for (int64_t yy = 0; yy < oh; ++yy) {
            const int ymin = vb[size_t(yy) * 2], ymax = vb[size_t(yy) * 2 + 1];
            const int32_t* k = &cv.k[size_t(yy) * size_t(cv.ksize)];
            for (int64_t xx = 0; xx < cur_w; ++xx) {
                int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
                for (int y = 0; y < ymax; ++y) {
                    const uint8_t* p = img.data() + ((y + ymin) * cur_w + xx) * 3;
                    s0 += int32_t(p[0]) * k[y];
                    s1 += int32_t(p[1]) * k[y];
                    s2 += int32_t(p[2]) * k[y];
                }
                uint8_t* o = out.data() + (yy * cur_w + xx) * 3;
                o[0] = clip8(s0), o[1] = clip8(s1), o[2] = clip8(s2);
            }
        }
        img.swap(out);
        cur_h = oh;
    }
    WANRT_ASSERT(cur_h == oh && cur_w == ow);
    return img;
}

}  // namespace wanrt
