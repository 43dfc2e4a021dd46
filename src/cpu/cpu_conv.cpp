// CPU kernels of the VAE op family: conv3d, channel_rms_norm, upsample2x.
//
// conv3d has two paths, both GEMMs through OpenBLAS sgemm:
//  - Winograd F(4×4, 3×3) (below) for 3×3 spatial kernels with spatial stride 1 and at least 16
//    output tiles per frame: every 3×3×3 conv and per-frame 3×3 conv of the VAE at 16×16 and up;
//  - im2col otherwise: for each output frame, the patch matrix col[K, N] (K = C·kt·kh·kw patch
//    entries, N = a tile of output pixels) is filled so that each row is a shifted copy of one input
//    row segment, and y[O, N] = w[O, K] · col[K, N] is one sgemm writing straight into the output
//    frame (ldc = T'·H'·W'). Tiles bound the patch buffer, which would otherwise be K·H'·W' floats.
// The path depends on the frame size only (not on the number of frames), so a frame's result does
// not change with chunking. WANRT_CONV_DIRECT=1 forces im2col, for A/B timing.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "ops/ops.h"
#include "cpu/vecmath.h"

extern "C" {
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);
}

namespace wanrt {

namespace {

// Patch buffer per calling thread, reused across calls (the VAE runs hundreds of convs).
std::vector<float>& patch_buffer(size_t n) {
    thread_local std::vector<float> buf;
    if (buf.size() < n) buf.resize(n);
    return buf;
}

// Target size of one patch tile in floats (16 MiB): big enough for sgemm to run near peak, small
// enough to stay cheap in memory.
constexpr int64_t kTileFloats = int64_t(4) << 20;

// Below 16 tiles of 4×4 per frame the 36 GEMMs get too narrow to beat one im2col GEMM.
constexpr int64_t kWinogradMinTiles = 16;

// ---------------------------------------------------------------------------------------------
// Winograd F(4×4, 3×3) for convs with a 3×3 spatial kernel and spatial stride 1 (every 3×3×3
// conv of the VAE and its per-frame 3×3 convs). Per output frame, the temporal taps whose input
// frame exists are summed inside the GEMM's K dimension (k = dt·C + c), so zero padding frames cost
// nothing. A 6×6 input tile d gives a 4×4 output tile Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A: 36 GEMMs
// U[ξ] (O × K) · V[ξ] (K × tiles) replace one GEMM of 9·K rows — 4× fewer multiplies.
//
// The transformed weights U (4× the weight size) are cached per weight buffer: model weights are
// immutable and reused by every chunk. An entry holds a weak_ptr to the buffer, so a freed buffer
// (or a new one at the same address) never matches a stale entry.
//   Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
//   G  = [1/4 0 0; −1/6 −1/6 −1/6; −1/6 1/6 −1/6; 1/24 1/12 1/6; 1/24 −1/12 1/6; 0 0 1]
//   Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]

// out_r = Σ_j Bᵀ[r][j]·in_j over n lanes (row or column pass of the input transform).
inline void winograd_bt(const float* in0, const float* in1, const float* in2, const float* in3, const float* in4,
                        const float* in5, float* __restrict o0, float* __restrict o1, float* __restrict o2,
                        float* __restrict o3, float* __restrict o4, float* __restrict o5, int64_t n) {
    for (int64_t q = 0; q < n; ++q) {
        const float a0 = in0[q], a1 = in1[q], a2 = in2[q], a3 = in3[q], a4 = in4[q], a5 = in5[q];
        o0[q] = 4 * a0 - 5 * a2 + a4;
        o1[q] = -4 * (a1 + a2) + a3 + a4;
        o2[q] = 4 * (a1 - a2) - a3 + a4;
        o3[q] = 2 * (a3 - a1) - a2 + a4;
        o4[q] = 2 * (a1 - a3) - a2 + a4;
        o5[q] = 4 * a1 - 5 * a3 + a5;
    }
}

// out_r = Σ_j Aᵀ[r][j]·in_j + bias over n lanes (the output transform's passes).
inline void winograd_at(const float* m0, const float* m1, const float* m2, const float* m3, const float* m4,
                        const float* m5, float bias, float* __restrict s0, float* __restrict s1, float* __restrict s2,
                        float* __restrict s3, int64_t n) {
    for (int64_t q = 0; q < n; ++q) {
        const float a1 = m1[q], a2 = m2[q], a3 = m3[q], a4 = m4[q];
        s0[q] = m0[q] + a1 + a2 + a3 + a4 + bias;
        s1[q] = a1 - a2 + 2 * (a3 - a4) + bias;
        s2[q] = a1 + a2 + 4 * (a3 + a4) + bias;
        s3[q] = a1 - a2 + 8 * (a3 - a4) + m5[q] + bias;
    }
}

// Restores OpenBLAS's thread count when the scope ends (also on exceptions).
struct BlasSingleThread {
    int saved = openblas_get_num_threads();
    BlasSingleThread() { openblas_set_num_threads(1); }
    ~BlasSingleThread() { openblas_set_num_threads(saved); }
};

struct WinoWeights {
    std::weak_ptr<Buffer> buf;
    size_t offset = 0;
    Shape shape;
    std::vector<float> U;  // [36][O][kt·C], k = dt·C + c
};

std::mutex g_wino_mutex;
std::vector<std::shared_ptr<WinoWeights>> g_wino_cache;

// U[ξ][o][dt·C + c] = (G g Gᵀ)[ξ] for every 3×3 filter g = w[o, c, dt]; rows o in [o0, o1).
void winograd_weights(const float* w, int64_t O, int64_t C, int64_t kt, int64_t o0, int64_t o1, float* U) {
    const int64_t KC = kt * C;
    for (int64_t o = o0; o < o1; ++o)
        for (int64_t c = 0; c < C; ++c)
            for (int64_t dt = 0; dt < kt; ++dt) {
                const float* g = w + ((o * C + c) * kt + dt) * 9;
                float t[6][3];  // G·g
                for (int j = 0; j < 3; ++j) {
                    const float g0 = g[0 * 3 + j], g1 = g[1 * 3 + j], g2 = g[2 * 3 + j];
                    t[0][j] = g0 / 4;
                    t[1][j] = -(g0 + g1 + g2) / 6;
                    t[2][j] = -(g0 - g1 + g2) / 6;
                    t[3][j] = g0 / 24 + g1 / 12 + g2 / 6;
                    t[4][j] = g0 / 24 - g1 / 12 + g2 / 6;
                    t[5][j] = g2;
                }
                float* dst = U + o * KC + dt * C + c;
                const int64_t plane = O * KC;
                for (int i = 0; i < 6; ++i) {  // (G·g)·Gᵀ
                    const float a = t[i][0], b = t[i][1], e = t[i][2];
                    dst[(i * 6 + 0) * plane] = a / 4;
                    dst[(i * 6 + 1) * plane] = -(a + b + e) / 6;
                    dst[(i * 6 + 2) * plane] = -(a - b + e) / 6;
                    dst[(i * 6 + 3) * plane] = a / 24 + b / 12 + e / 6;
                    dst[(i * 6 + 4) * plane] = a / 24 - b / 12 + e / 6;
                    dst[(i * 6 + 5) * plane] = e;
                }
            }
}

std::shared_ptr<WinoWeights> cached_winograd_weights(ThreadPool& pool, const Tensor& w) {
    const int64_t O = w.size(0), C = w.size(1), kt = w.size(2);
    std::lock_guard<std::mutex> lock(g_wino_mutex);
    std::erase_if(g_wino_cache, [](const auto& e) { return e->buf.expired(); });
    for (const auto& e : g_wino_cache) {
        const auto b = e->buf.lock();
        if (b && b == w.buffer() && e->offset == w.offset_bytes() && e->shape == w.shape()) return e;
    }
    auto e = std::make_shared<WinoWeights>();
    e->buf = w.buffer();
    e->offset = w.offset_bytes();
    e->shape = w.shape();
    e->U.resize(size_t(36 * O * C * kt));
    pool.parallel_for(
        O, 1, [&](int64_t o0, int64_t o1) { winograd_weights(w.data<float>(), O, C, kt, o0, o1, e->U.data()); });
    g_wino_cache.push_back(e);
    return e;
}

}  // namespace

// Winograd path of conv3d (see above); x, w, y as in conv3d, kh = kw = 3, stride_h = stride_w = 1.
static void conv3d_winograd(ThreadPool& pool, const Tensor& x, const Tensor& w, const float* bias,
                            const Conv3dParams& p, const Tensor& y) {
    const int64_t C = x.size(0), T = x.size(1), H = x.size(2), W = x.size(3);
    const int64_t O = w.size(0), kt = w.size(2);
    const int64_t To = y.size(1), Ho = y.size(2), Wo = y.size(3);
    const int64_t th_n = (Ho + 3) / 4, tw_n = (Wo + 3) / 4, KC = kt * C;
    const float* xd = x.data<float>();
    float* yd = y.data<float>();
    const auto ww = cached_winograd_weights(pool, w);
    const float* U = ww->U.data();

    // Output frames with the same range of valid temporal taps form one group (GEMM N = frames·tiles).
    auto tap_range = [&](int64_t to, int64_t* d0, int64_t* d1) {
        const int64_t base = to * p.stride_t - p.pad_t0;
        *d0 = std::clamp<int64_t>(-base, 0, kt);
        *d1 = std::clamp<int64_t>(T - base, *d0, kt);
    };
    // Items per block: V [36][K][NB] and M [36][O][NB] of about 8M floats each at most.
    const int64_t nb_max = std::max<int64_t>(tw_n, (int64_t(8) << 20) / (36 * std::max(KC, O)));
    thread_local std::vector<float> Vbuf, Mbuf;

    for (int64_t g0 = 0; g0 < To;) {
        int64_t d0, d1;
        tap_range(g0, &d0, &d1);
        int64_t g1 = g0 + 1;
        for (int64_t e0, e1; g1 < To; ++g1) {
            tap_range(g1, &e0, &e1);
            if (e0 != d0 || e1 != d1) break;
        }
        const int64_t K = (d1 - d0) * C;
        // Units = (frame, tile row) pairs of this group, tw_n items each.
        const int64_t units = (g1 - g0) * th_n;
        const int64_t units_per_block = std::max<int64_t>(1, nb_max / tw_n);
        for (int64_t u0 = 0; u0 < units; u0 += units_per_block) {
            const int64_t u1 = std::min(units, u0 + units_per_block), NB = (u1 - u0) * tw_n;
            if (K == 0) {  // no input frame at all: the output is the bias
                for (int64_t u = u0; u < u1; ++u) {
                    const int64_t to = g0 + u / th_n, th = u % th_n;
                    for (int64_t o = 0; o < O; ++o)
                        for (int64_t r = th * 4; r < std::min(Ho, th * 4 + 4); ++r)
                            std::fill_n(yd + ((o * To + to) * Ho + r) * Wo, Wo, bias ? bias[o] : 0.0f);
                }
                continue;
            }
            if (Vbuf.size() < size_t(36 * K * NB)) Vbuf.resize(size_t(36 * K * NB));
            if (Mbuf.size() < size_t(36 * O * NB)) Mbuf.resize(size_t(36 * O * NB));
            float* V = Vbuf.data();
            float* M = Mbuf.data();
            // Input transform: V[ξ][k][item] = (Bᵀ d B)[ξ] of the 6×6 input tile of item.
            pool.parallel_for(K, 1, [&](int64_t k0, int64_t k1) {
                const int64_t Wq = tw_n + 1;  // phase arrays: ph[s][q] = padded row[4q + s]
                std::vector<float> prow(size_t(4 * Wq)), ph(size_t(4 * Wq)), t(size_t(36 * tw_n));
                // Interior of the zero-padded row: padded x = input x + pad_w0.
                const int64_t x0 = std::min<int64_t>(p.pad_w0, 4 * Wq),
                              x1 = std::clamp<int64_t>(W + p.pad_w0, x0, 4 * Wq);
                for (int64_t k = k0; k < k1; ++k) {
                    const int64_t dt = d0 + k / C, c = k % C;
                    for (int64_t u = u0; u < u1; ++u) {
                        const int64_t to = g0 + u / th_n, th = u % th_n;
                        const int64_t ti = to * p.stride_t + dt - p.pad_t0;
                        const float* frame = xd + (c * T + ti) * H * W;
                        // Row pass over the tile row's 6 input rows: t[i][ξj][tw].
                        for (int i = 0; i < 6; ++i) {
                            const int64_t hi = th * 4 + i - p.pad_h0;
                            float* P0 = ph.data();
                            float *P1 = P0 + Wq, *P2 = P1 + Wq, *P3 = P2 + Wq;
                            if (hi < 0 || hi >= H) {
                                std::fill(ph.begin(), ph.end(), 0.0f);
                            } else {
                                std::fill(prow.begin(), prow.begin() + x0, 0.0f);
                                std::memcpy(prow.data() + x0, frame + hi * W + (x0 - p.pad_w0),
                                            sizeof(float) * size_t(x1 - x0));
                                std::fill(prow.begin() + x1, prow.end(), 0.0f);
                                const float* pr = prow.data();
                                for (int64_t q = 0; q < Wq; ++q)
                                    P0[q] = pr[4 * q], P1[q] = pr[4 * q + 1], P2[q] = pr[4 * q + 2],
                                    P3[q] = pr[4 * q + 3];
                            }
                            float* ti0 = t.data() + (i * 6) * tw_n;
                            winograd_bt(P0, P1, P2, P3, P0 + 1, P1 + 1, ti0, ti0 + tw_n, ti0 + 2 * tw_n, ti0 + 3 * tw_n,
                                        ti0 + 4 * tw_n, ti0 + 5 * tw_n, tw_n);
                        }
                        // Column pass: V[ξi·6 + ξj][k][(u − u0)·tw_n + tw].
                        const int64_t item0 = (u - u0) * tw_n;
                        for (int j = 0; j < 6; ++j) {
                            const float* r0 = t.data() + j * tw_n;
                            auto v = [&](int i) { return V + ((i * 6 + j) * K + k) * NB + item0; };
                            winograd_bt(r0, r0 + 6 * tw_n, r0 + 12 * tw_n, r0 + 18 * tw_n, r0 + 24 * tw_n,
                                        r0 + 30 * tw_n, v(0), v(1), v(2), v(3), v(4), v(5), tw_n);
                        }
                    }
                }
            });
            // 36 GEMMs: M[ξ] (O × NB) = U[ξ][:, d0·C : d1·C] (O × K, lda kt·C) · V[ξ] (K × NB).
            // Independent GEMMs: one per pool thread at a time with OpenBLAS single-threaded, so no
            // BLAS thread hand-off per (often small) GEMM.
            {
                BlasSingleThread single;
                pool.parallel_for(36, 1, [&](int64_t x0, int64_t x1) {
                    for (int64_t xi = x0; xi < x1; ++xi)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(O), int(NB), int(K), 1.0f,
                                    U + xi * O * KC + d0 * C, int(KC), V + xi * K * NB, int(NB), 0.0f, M + xi * O * NB,
                                    int(NB));
                });
            }
            // Output transform: Y = Aᵀ m A per item, cropped to [Ho, Wo], plus bias.
            pool.parallel_for(O, 1, [&](int64_t o0, int64_t o1) {
                std::vector<float> s(size_t(24 * tw_n)), out(size_t(4 * tw_n));
                for (int64_t o = o0; o < o1; ++o) {
                    const float b = bias ? bias[o] : 0.0f;
                    for (int64_t u = u0; u < u1; ++u) {
                        const int64_t to = g0 + u / th_n, th = u % th_n, item0 = (u - u0) * tw_n;
                        // Along ξi: s[r][ξj][tw] = Σ Aᵀ[r][ξi] m[ξi][ξj].
                        for (int j = 0; j < 6; ++j) {
                            auto m = [&](int i) { return M + ((i * 6 + j) * O + o) * NB + item0; };
                            float* sj = s.data() + j * tw_n;
                            winograd_at(m(0), m(1), m(2), m(3), m(4), m(5), 0.0f, sj, sj + 6 * tw_n, sj + 12 * tw_n,
                                        sj + 18 * tw_n, tw_n);
                        }
                        // Along ξj, plus bias; then interleave the 4 columns of each tile into the row.
                        for (int r = 0; r < 4; ++r) {
                            const int64_t ho = th * 4 + r;
                            if (ho >= Ho) break;
                            const float* a0 = s.data() + (r * 6) * tw_n;
                            float* y0 = out.data();
                            winograd_at(a0, a0 + tw_n, a0 + 2 * tw_n, a0 + 3 * tw_n, a0 + 4 * tw_n, a0 + 5 * tw_n, b,
                                        y0, y0 + tw_n, y0 + 2 * tw_n, y0 + 3 * tw_n, tw_n);
                            const float *y1 = y0 + tw_n, *y2 = y1 + tw_n, *y3 = y2 + tw_n;
                            float* row = yd + ((o * To + to) * Ho + ho) * Wo;
                            const int64_t full = Wo / 4;
                            for (int64_t q = 0; q < full; ++q)
                                row[4 * q] = y0[q], row[4 * q + 1] = y1[q], row[4 * q + 2] = y2[q],
                                        row[4 * q + 3] = y3[q];
                            for (int64_t wo = full * 4; wo < Wo; ++wo) row[wo] = out[size_t((wo % 4) * tw_n + wo / 4)];
                        }
                    }
                }
            });
        }
        g0 = g1;
    }
}

static void conv3d_cpu(CpuBackend& be, const Tensor& x, const Tensor& w, const Tensor* bias, const Conv3dParams& p, const Tensor& y) {
    const int64_t C = x.size(0), T = x.size(1), H = x.size(2), W = x.size(3);
    const int64_t O = w.size(0), kt = w.size(2), kh = w.size(3), kw = w.size(4);
    const int64_t To = y.size(1), Ho = y.size(2), Wo = y.size(3);
    const int64_t K = C * kt * kh * kw, HWo = Ho * Wo, ldy = To * HWo;
    const float* xd = x.data<float>();
    const float* wd = w.data<float>();
    float* yd = y.data<float>();
    const float* bd = bias ? bias->data<float>() : nullptr;
    if (O == 0 || To == 0 || HWo == 0) return;

    const bool pointwise = kt == 1 && kh == 1 && kw == 1 && p.stride_t == 1 && p.stride_h == 1 && p.stride_w == 1 &&
                           p.pad_t0 == 0 && p.pad_t1 == 0 && p.pad_h0 == 0 && p.pad_h1 == 0 && p.pad_w0 == 0 &&
                           p.pad_w1 == 0;
    // Winograd once a frame has enough 4×4 tiles for its GEMMs (16×16 outputs and up). The choice
    // depends on the frame size only, so a frame gives the same result whatever the chunking.
    const bool winograd = kh == 3 && kw == 3 && p.stride_h == 1 && p.stride_w == 1 &&
                          ((Ho + 3) / 4) * ((Wo + 3) / 4) >= kWinogradMinTiles;
    if (winograd) {
        conv3d_winograd(be.pool(), x, w, bd, p, y);
        return;
    }
    if (pointwise) {
        // 1×1×1: y[O, T·H·W] = w[O, C] · x[C, T·H·W], no patch matrix needed.
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(O), int(ldy), int(C), 1.0f, wd, int(C), xd, int(ldy),
                    0.0f, yd, int(ldy));
    } else {
        const int64_t rows_per_tile = std::clamp<int64_t>(kTileFloats / std::max<int64_t>(K * Wo, 1), 1, Ho);
        for (int64_t to = 0; to < To; ++to) {
            for (int64_t h0 = 0; h0 < Ho; h0 += rows_per_tile) {
                const int64_t h1 = std::min(Ho, h0 + rows_per_tile), N = (h1 - h0) * Wo;
                float* col = patch_buffer(size_t(K * N)).data();
                // Fill col[k, n]; k = ((c·kt + dt)·kh + dh)·kw + dw, n = (oh − h0)·Wo + ow.
                be.pool().parallel_for(K, 8, [&](int64_t k0, int64_t k1) {
                    for (int64_t k = k0; k < k1; ++k) {
                        const int64_t dw = k % kw, dh = (k / kw) % kh, dt = (k / (kw * kh)) % kt,
                                      c = k / (kw * kh * kt);
                        const int64_t ti = to * p.stride_t + dt - p.pad_t0;
                        float* dst = col + k * N;
                        if (ti < 0 || ti >= T) {
                            std::memset(dst, 0, sizeof(float) * size_t(N));
                            continue;
                        }
                        const float* frame = xd + (c * T + ti) * H * W;
                        // Output columns whose input column is inside [0, W): ow ∈ [ow0, ow1).
                        const int64_t off = dw - p.pad_w0;
                        int64_t ow0 = off >= 0 ? 0 : (-off + p.stride_w - 1) / p.stride_w;
                        int64_t ow1 = W - off <= 0 ? 0 : (W - off + p.stride_w - 1) / p.stride_w;
                        ow0 = std::min(ow0, Wo);
                        ow1 = std::clamp(ow1, ow0, Wo);
                        for (int64_t oh = h0; oh < h1; ++oh, dst += Wo) {
                            const int64_t hi = oh * p.stride_h + dh - p.pad_h0;
                            if (hi < 0 || hi >= H) {
                                std::memset(dst, 0, sizeof(float) * size_t(Wo));
                                continue;
                            }
                            const float* src = frame + hi * W + off;
                            for (int64_t ow = 0; ow < ow0; ++ow) dst[ow] = 0.0f;
                            if (p.stride_w == 1) {
                                std::memcpy(dst + ow0, src + ow0, sizeof(float) * size_t(ow1 - ow0));
                            } else {
                                for (int64_t ow = ow0; ow < ow1; ++ow) dst[ow] = src[ow * p.stride_w];
                            }
                            for (int64_t ow = ow1; ow < Wo; ++ow) dst[ow] = 0.0f;
                        }
                    }
                });
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(O), int(N), int(K), 1.0f, wd, int(K), col,
                            int(N), 0.0f, yd + to * HWo + h0 * Wo, int(ldy));
            }
        }
    }
    if (bd) {
        be.pool().parallel_for(O, 1, [&](int64_t o0, int64_t o1) {
            for (int64_t o = o0; o < o1; ++o) {
                float* row = yd + o * ldy;
                const float b = bd[o];
                for (int64_t i = 0; i < ldy; ++i) row[i] += b;
            }
        });
    }
}

static void channel_rms_norm_cpu(CpuBackend& be, const Tensor& x, const Tensor& gamma, Activation act, const Tensor& y) {
    WANRT_CHECK(act == Activation::None || act == Activation::Silu, "cpu", "channel_rms_norm takes no activation or silu");
    // x [C, P] with P = T·H·W positions; the norm runs over C (stride P) at every position.
    const int64_t C = x.size(0), P = x.numel() / std::max<int64_t>(C, 1);
    const float* xd = x.data<float>();
    const float* g = gamma.data<float>();
    float* yd = y.data<float>();
    const float scale = std::sqrt(float(C));
    constexpr int64_t kBlock = 512;  // positions per block: the running sums stay in L1
    be.pool().parallel_for((P + kBlock - 1) / kBlock, 1, [&](int64_t b0, int64_t b1) {
        float ss[kBlock];
        for (int64_t b = b0; b < b1; ++b) {
            const int64_t p0 = b * kBlock, n = std::min(kBlock, P - p0);
            for (int64_t i = 0; i < n; ++i) ss[i] = 0.0f;
            for (int64_t c = 0; c < C; ++c) {
                const float* row = xd + c * P + p0;
                for (int64_t i = 0; i < n; ++i) ss[i] += row[i] * row[i];
            }
            // F.normalize: x / max(‖x‖, 1e-12), then · √C · γ.
            for (int64_t i = 0; i < n; ++i) ss[i] = scale / std::max(std::sqrt(ss[i]), 1e-12f);
            for (int64_t c = 0; c < C; ++c) {
                const float* row = xd + c * P + p0;
                float* out = yd + c * P + p0;
                const float gc = g[c];
                for (int64_t i = 0; i < n; ++i) out[i] = row[i] * ss[i] * gc;
                if (act == Activation::Silu)  // the unary op's function, so fused == composed exactly
                    for (int64_t i = 0; i < n; ++i) out[i] = cpu::silu(out[i]);
            }
        }
    });
}

static void upsample2x_cpu(CpuBackend& be, const Tensor& x, const Tensor& y) {
    // x [C, T, H, W] → y [C, T, 2H, 2W]: every input row becomes two output rows of doubled pixels.
    const int64_t rows = x.size(0) * x.size(1) * x.size(2), W = x.size(3);
    const float* xd = x.data<float>();
    float* yd = y.data<float>();
    be.pool().parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float* src = xd + r * W;
            float* d0 = yd + r * 4 * W;
            for (int64_t i = 0; i < W; ++i) d0[2 * i] = d0[2 * i + 1] = src[i];
            std::memcpy(d0 + 2 * W, d0, sizeof(float) * size_t(2 * W));
        }
    });
}

// The same for 2-byte elements (f16/bf16 activations): nearest upsampling only moves values.
static void upsample2x_half_cpu(CpuBackend& be, const Tensor& x, const Tensor& y) {
    const int64_t rows = x.size(0) * x.size(1) * x.size(2), W = x.size(3);
    const uint16_t* xd = x.data<uint16_t>();
    uint16_t* yd = y.data<uint16_t>();
    be.pool().parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const uint16_t* src = xd + r * W;
            uint16_t* d0 = yd + r * 4 * W;
            for (int64_t i = 0; i < W; ++i) d0[2 * i] = d0[2 * i + 1] = src[i];
            std::memcpy(d0 + 2 * W, d0, sizeof(uint16_t) * size_t(2 * W));
        }
    });
}

// Channels last, any element size: x [T, H, W, C] → y [T, 2H, 2W, C]. Each input pixel's C values
// are copied twice into the even output row, which is then copied whole into the odd one.
static void upsample2x_last_cpu(CpuBackend& be, const Tensor& x, const Tensor& y) {
    const int64_t rows = x.size(0) * x.size(1), W = x.size(2);
    const size_t px = dtype_size(x.dtype()) * size_t(x.size(3));  // bytes per pixel
    const char* xd = static_cast<const char*>(x.raw());
    char* yd = static_cast<char*>(y.raw());
    be.pool().parallel_for(rows, 4, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const char* src = xd + size_t(r * W) * px;
            char* d0 = yd + size_t(r * 4 * W) * px;
            for (int64_t i = 0; i < W; ++i) {
                std::memcpy(d0 + size_t(2 * i) * px, src + size_t(i) * px, px);
                std::memcpy(d0 + size_t(2 * i + 1) * px, src + size_t(i) * px, px);
            }
            std::memcpy(d0 + size_t(2 * W) * px, d0, size_t(2 * W) * px);
        }
    });
}

namespace {
// The CPU computes every precision in f32: a prefix is concatenated and a half weight widened
// first (the op's unfused composition, which is also what CUDA's fused half path is tested against).
void conv3d_entry(CpuBackend& be, const Conv3dArgs& a);

// x, prefix and y in the weight's half dtype: the f32 path on the widened input (exact), its
// output rounded once to y's dtype.
void conv3d_half_io(CpuBackend& be, const Conv3dArgs& a) {
    Conv3dArgs f = a;
    f.x = ops::to_dtype(a.x, DType::F32);
    if (a.prefix.defined()) f.prefix = ops::to_dtype(a.prefix, DType::F32);
    f.y = be.empty(DType::F32, a.y.shape());
    conv3d_entry(be, f);
    ops::copy(f.y, a.y);
}

void conv3d_entry(CpuBackend& be, const Conv3dArgs& a) {
    // A bug, not bad input: this backend does not prefer channels last, so ops::conv3d permutes for it.
    WANRT_CHECK(!a.p.channels_last, "cpu", "conv3d kernel received channels-last tensors ", a.x.describe());
    Tensor x = a.x, w = a.w;
    if (a.prefix.defined()) {
        const int64_t C = x.size(0), Tp = a.prefix.size(1), T = x.size(1), HW = x.size(2) * x.size(3);
        x = be.empty(DType::F32, {C, Tp + T, x.size(2), x.size(3)});
        const float* pd = a.prefix.data<float>();
        const float* xd = a.x.data<float>();
        float* d = x.data<float>();
        for (int64_t c = 0; c < C; ++c) {  // [C, Tp + T, H, W]: each channel's prefix frames, then its x frames
            std::memcpy(d + c * (Tp + T) * HW, pd + c * Tp * HW, sizeof(float) * size_t(Tp * HW));
            std::memcpy(d + (c * (Tp + T) + Tp) * HW, xd + c * T * HW, sizeof(float) * size_t(T * HW));
        }
    }
    if (w.dtype() != DType::F32) {
        Tensor wf = be.empty(DType::F32, w.shape());
        const auto* src = w.data<uint16_t>();
        float* d = wf.data<float>();
        const bool bf = w.dtype() == DType::BF16;
        for (int64_t i = 0; i < w.numel(); ++i) d[i] = bf ? bf16_to_f32(src[i]) : f16_to_f32(src[i]);
        w = wf;
    }
    conv3d_cpu(be, x, w, a.bias, a.p, a.y);
}

const RegisterKernel<Conv3dArgs, CpuBackend> reg_conv3d({{DType::F32, DType::F32}, {DType::F32, DType::F16}, {DType::F32, DType::BF16}},
                                                        &conv3d_entry);
const RegisterKernel<Conv3dArgs, CpuBackend> reg_conv3d_half_io({{DType::F16, DType::F16}, {DType::BF16, DType::BF16}},
                                                                &conv3d_half_io);
const RegisterKernel<ChannelRmsNormArgs, CpuBackend> reg_channel_rms_norm(
    {{DType::F32}}, [](CpuBackend& be, const ChannelRmsNormArgs& a) { channel_rms_norm_cpu(be, a.x, a.gamma, a.act, a.y); });
// Half x and y: the f32 kernel on a widened copy, rounded once (the oracle of CUDA's half kernel,
// which widens in registers; the same values).
const RegisterKernel<ChannelRmsNormArgs, CpuBackend> reg_channel_rms_norm_half(
    {{DType::F16}, {DType::BF16}}, [](CpuBackend& be, const ChannelRmsNormArgs& a) {
        const Tensor y = be.empty(DType::F32, a.y.shape());
        channel_rms_norm_cpu(be, ops::to_dtype(a.x, DType::F32), a.gamma, a.act, y);
        ops::copy(y, a.y);
    });
const RegisterKernel<Upsample2xArgs, CpuBackend> reg_upsample2x({{DType::F32}, {DType::F16}, {DType::BF16}},
                                                                [](CpuBackend& be, const Upsample2xArgs& a) {
                                                                    if (a.channels_last) return upsample2x_last_cpu(be, a.x, a.y);
                                                                    if (a.x.dtype() == DType::F32) return upsample2x_cpu(be, a.x, a.y);
                                                                    upsample2x_half_cpu(be, a.x, a.y);
                                                                });
}  // namespace

}  // namespace wanrt
