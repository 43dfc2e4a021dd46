// TAEHV forward code; mirrors taehv.py's TAEHV.encoder / TAEHV.decoder nn.Sequential index for index
// (contract and the two load-time weight transforms in taehv.h).
#include "models/taehv.h"

#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "models/weights.h"
#include "ops/clamp.h"
#include "ops/ops.h"

namespace wanrt {

namespace {

enum class Op { Conv, Relu, Clamp, MemBlock, TPool, TGrow, Upsample };

struct Conv {
    Tensor w;  // [O, I, kt, kh, kw]
    Tensor b;  // [O] or undefined (no bias)
    int pad = 1, stride = 1, stride_t = 1;
};

struct Layer {
    Op op = Op::Relu;
    int stride = 1;       // TPool / TGrow temporal stride, Upsample factor (1 or 2)
    Conv conv;            // Conv, TPool, TGrow; MemBlock: conv[0] as the kt = 2 conv
    Conv conv1, conv2;    // MemBlock: conv[2], conv[4]
};

constexpr int64_t kEncWidth = 64;
constexpr int64_t kDecWidths[4] = {256, 128, 64, 64};

}  // namespace

struct TaehvNet {
    std::vector<Layer> encoder, decoder;
};

int64_t TaehvConfig::t_downscale() const {
    int64_t s = 1;
    for (bool b : encoder_time_downscale) s *= b ? 2 : 1;
    return s;
}

int64_t TaehvConfig::t_upscale() const {
    int64_t s = 1;
    for (bool b : decoder_time_upscale) s *= b ? 2 : 1;
    return s;
}

TaehvConfig TaehvConfig::from_weights(const TensorSource& src) {
    const StoredTensor* e0 = src.find("encoder.0.weight");
    const StoredTensor* d1 = src.find("decoder.1.weight");
    if (!e0 || !d1 || e0->shape.size() != 4 || d1->shape.size() != 4 || e0->shape[0] != kEncWidth ||
        d1->shape[0] != kDecWidths[0])
        fail("taehv", src.origin(), " is not a TAEHV state dict (no encoder.0.weight [64, 3·p², 3, 3] / decoder.1.weight "
             "[256, C, 3, 3]); pass taew2_1.pth from madebyollin/taehv");
    TaehvConfig c;
    c.latent_channels = d1->shape[1];
    const int64_t in = e0->shape[1];
    c.patch_size = in == 3 ? 1 : in == 12 ? 2 : in == 48 ? 4 : 0;
    if (c.patch_size == 0)
        fail("taehv", src.origin(), ": encoder.0.weight takes ", in, " channels, not 3·p² for p = 1, 2 or 4");
    return c;
}

namespace {

// Fetches each weight by its state-dict name (or, without a loader, records the manifest: the names
// and stored shapes synthetic weights are made of).
class Builder {
public:
    Builder(WeightLoader* wl, DType conv_dtype) : wl_(wl), conv_dtype_(conv_dtype) {}
    // The layout the convs built from here on store their weights for (one per coder).
    void set_channels_last(bool cl) { channels_last_ = cl; }
    std::vector<std::pair<std::string, Shape>> manifest;

    // nn.Conv2d(in, out, k, padding=k/2, stride) stored [out, in, k, k], used as a kt = 1 conv3d.
    Conv conv2d(const std::string& n, int64_t in, int64_t out, int k, bool bias, int stride = 1) {
        Conv c;
        c.w = weight(n + ".weight", {out, in, k, k}, {out, in, 1, k, k});
        if (bias) c.b = get(n + ".bias", {out}, {out});
        c.pad = k / 2;
        c.stride = stride;
        return c;
    }
    Layer memblock(const std::string& n, int64_t C) {
        Layer l;
        l.op = Op::MemBlock;
        // conv(cat[x, past]) as a temporal kt = 2 conv over (past, x): input half 1 (past) becomes
        // tap 0, half 0 (x) tap 1.
        l.conv.b = get(n + ".conv.0.bias", {C}, {C});
        l.conv.w = transformed(n + ".conv.0.weight", {C, 2 * C, 3, 3}, [&](const std::vector<float>& w) {
            std::vector<float> r(w.size());
            for (int64_t o = 0; o < C; ++o)
                for (int64_t c = 0; c < C; ++c)
                    for (int64_t tap = 0; tap < 2; ++tap)
                        for (int64_t k = 0; k < 9; ++k)
                            r[((o * C + c) * 2 + tap) * 9 + k] = w[(o * 2 * C + (tap == 0 ? C + c : c)) * 9 + k];
            return r;
        }, {C, C, 2, 3, 3});
        l.conv.pad = 1;
        l.conv1 = conv2d(n + ".conv.2", C, C, 3, true);
        l.conv2 = conv2d(n + ".conv.4", C, C, 3, true);
        return l;
    }
    Layer tpool(const std::string& n, int64_t C, int s) {
        Layer l;
        l.op = Op::TPool;
        l.stride = s;
        // w [C, s·C, 1, 1] → [C, C, s, 1, 1]: w3[o, c, k] = w[o, k·C + c].
        l.conv.w = transformed(n + ".conv.weight", {C, s * C, 1, 1}, [&](const std::vector<float>& w) {
            std::vector<float> r(w.size());
            for (int64_t o = 0; o < C; ++o)
                for (int64_t c = 0; c < C; ++c)
                    for (int64_t k = 0; k < s; ++k) r[(o * C + c) * s + k] = w[o * s * C + k * C + c];
            return r;
        }, {C, C, s, 1, 1});
        l.conv.pad = 0;
        l.conv.stride_t = s;
        return l;
    }
    Layer tgrow(const std::string& n, int64_t C, int s) {
        Layer l;
        l.op = Op::TGrow;
        l.stride = s;
        const std::string name = n + ".conv.weight";
        Shape stored{s * C, C, 1, 1};
        // patch_tgrow_layers: a checkpoint trained with a larger stride keeps its last s·C rows.
        if (wl_) {
            const StoredTensor* st = wl_->source().find(name);
            if (st && st->shape.size() == 4 && st->shape[0] > s * C && st->shape[0] % C == 0 && st->shape[1] == C)
                stored = st->shape;
        }
        Tensor w = get(name, stored, {stored[0], C, 1, 1, 1});
        if (w.defined() && stored[0] > s * C) w = ops::contiguous(w.slice(0, stored[0] - s * C, stored[0]));
        l.conv.w = conv_weight(w);
        l.conv.pad = 0;
        return l;
    }
    static Layer plain(Op op, int stride = 1) {
        Layer l;
        l.op = op;
        l.stride = stride;
        return l;
    }
    static Layer conv_layer(Conv c) {
        Layer l;
        l.op = Op::Conv;
        l.conv = std::move(c);
        return l;
    }

private:
    Tensor get(const std::string& name, const Shape& stored, const Shape& use) {
        if (!wl_) {
            manifest.emplace_back(name, stored);
            return {};
        }
        return wl_->param_as(name, stored, use);
    }
    // A conv weight in the conv dtype and, channels last, stored [O, kt, kh, kw, C] (cuDNN's NDHWC
    // filter layout, so no conv rearranges it per call).
    Tensor conv_weight(const Tensor& w) const {
        if (!w.defined()) return w;
        const Tensor c = w.dtype() != conv_dtype_ ? ops::to_dtype(w, conv_dtype_) : w;
        return channels_last_ ? ops::conv_weight_channels_last(c) : c;
    }
    Tensor weight(const std::string& name, const Shape& stored, const Shape& use) {
        return conv_weight(get(name, stored, use));
    }
    // A weight rearranged on the host once (small tensors), then uploaded.
    template <class F>
    Tensor transformed(const std::string& name, const Shape& stored, F f, const Shape& use) {
        Tensor w = get(name, stored, stored);
        if (!w.defined()) return {};
        const std::vector<float> r = f(ops::to_host_f32(w));
        return conv_weight(ops::from_host(wl_->backend(), DType::F32, use, r.data()));
    }

    WeightLoader* wl_;
    DType conv_dtype_;
    bool channels_last_ = false;
};

// The encoder and decoder of TAEHV.__init__, index for index.
TaehvNet build(Builder& B, const TaehvConfig& c) {
    TaehvNet net;
    const int64_t p2 = 3 * c.patch_size * c.patch_size;
    auto& E = net.encoder;
    auto e = [](size_t i) { return "encoder." + std::to_string(i); };
    B.set_channels_last(c.encoder_channels_last);
    E.push_back(Builder::conv_layer(B.conv2d(e(0), p2, kEncWidth, 3, true)));
    E.push_back(Builder::plain(Op::Relu));
    for (int stage = 0; stage < 3; ++stage) {
        E.push_back(B.tpool(e(E.size()), kEncWidth, c.encoder_time_downscale[size_t(stage)] ? 2 : 1));
        E.push_back(Builder::conv_layer(B.conv2d(e(E.size()), kEncWidth, kEncWidth, 3, false, 2)));
        for (int k = 0; k < 3; ++k) E.push_back(B.memblock(e(E.size()), kEncWidth));
    }
    E.push_back(Builder::conv_layer(B.conv2d(e(E.size()), kEncWidth, c.latent_channels, 3, true)));

    auto& D = net.decoder;
    auto d = [](size_t i) { return "decoder." + std::to_string(i); };
    B.set_channels_last(c.decoder_channels_last);
    D.push_back(Builder::plain(Op::Clamp));
    D.push_back(Builder::conv_layer(B.conv2d(d(1), c.latent_channels, kDecWidths[0], 3, true)));
    D.push_back(Builder::plain(Op::Relu));
    for (int stage = 0; stage < 3; ++stage) {
        const int64_t C = kDecWidths[stage];
        for (int k = 0; k < 3; ++k) D.push_back(B.memblock(d(D.size()), C));
        D.push_back(Builder::plain(Op::Upsample, c.decoder_space_upscale[size_t(stage)] ? 2 : 1));
        D.push_back(B.tgrow(d(D.size()), C, c.decoder_time_upscale[size_t(stage)] ? 2 : 1));
        D.push_back(Builder::conv_layer(B.conv2d(d(D.size()), C, kDecWidths[stage + 1], 3, false)));
    }
    D.push_back(Builder::plain(Op::Relu));
    D.push_back(Builder::conv_layer(B.conv2d(d(D.size()), kDecWidths[3], p2, 3, true)));
    return net;
}

// x [C, T, H, W], or [T, H, W, C] with cl (channels last); the output in the same layout.
Tensor conv(const Conv& c, bool cl, const Tensor& x, const Tensor* prefix = nullptr, int pad_t0 = 0) {
    Conv3dParams p;
    p.channels_last = cl;
    p.pad_h0 = p.pad_h1 = p.pad_w0 = p.pad_w1 = c.pad;
    p.stride_h = p.stride_w = c.stride;
    p.stride_t = c.stride_t;
    p.pad_t0 = pad_t0;
    return ops::conv3d(x, c.w, c.b.defined() ? &c.b : nullptr, p, prefix);
}

// MemBlock.forward(x, past) = ReLU(conv(ReLU(conv(ReLU(conv(cat[x, past]))))) + x): past is the
// block's input one frame earlier, zero before frame 0 (pad_t0 = 1) or the previous chunk's last
// input frame (the conv's prefix).
Tensor memblock(const Layer& l, bool cl, const Tensor& x, const Tensor& past) {
    Tensor h = past.defined() ? conv(l.conv, cl, x, &past) : conv(l.conv, cl, x, nullptr, 1);  // x's shape
    h = conv(l.conv1, cl, ops::relu(h));
    h = conv(l.conv2, cl, ops::relu(h));
    return ops::relu(ops::add(h, x));  // skip: identity (n_in == n_out everywhere in TAEHV)
}

// Clamp: tanh(x / 3) · 3 (in x's dtype: f32 or the half activations).
Tensor soft_clamp(const Tensor& x_in) {
    const Tensor x = ops::contiguous(x_in);
    Tensor y = x.backend()->empty(x.dtype(), x.shape());
    const Tensor* in[1] = {&x};
    const float third = 1.0f / 3.0f, three = 3.0f;
    ops::lincomb(in, &third, 1, y);
    y = ops::tanh(y);
    const Tensor* yin[1] = {&y};
    ops::lincomb(yin, &three, 1, y);
    return y;
}

// A copy with its own buffer. Channels last, a slice along T (dim 0) is contiguous and
// ops::contiguous would return the view itself: kept as a block's memory, it would hold the whole
// activation it was cut from alive (hundreds of MB per block at 480p).
Tensor owned_copy(const Tensor& v) {
    Tensor c = v.backend()->empty(v.dtype(), v.shape());
    ops::copy(v, c);
    return c;
}

// Runs a module list over x [C, T, H, W] (or [T, H, W, C] with cl) with the per-layer state mem (a
// fresh, empty list of the right size for a whole clip). Returns an undefined tensor when a TPool
// waits for frames.
Tensor run(const std::vector<Layer>& layers, bool cl, Tensor x, std::vector<Tensor>& mem) {
    if (mem.size() != layers.size()) mem.assign(layers.size(), Tensor());
    const int td = cl ? 0 : 1;  // the time dim
    for (size_t i = 0; i < layers.size(); ++i) {
        const Layer& l = layers[i];
        switch (l.op) {
            case Op::Conv: x = conv(l.conv, cl, x); break;
            case Op::Relu: x = ops::relu(x); break;
            case Op::Clamp: x = soft_clamp(x); break;
            case Op::MemBlock: {
                const Tensor past = mem[i];
                const int64_t T = x.size(td);
                mem[i] = owned_copy(x.slice(td, T - 1, T));  // [C, 1, H, W] / [1, H, W, C]: the next chunk's past
                x = memblock(l, cl, x, past);
                break;
            }
            case Op::TPool: {
                if (mem[i].defined()) x = ops::concat({mem[i], x}, td);  // frames still waiting in front
                const int64_t T = x.size(td), n = T / l.stride * l.stride;
                mem[i] = n < T ? owned_copy(x.slice(td, n, T)) : Tensor();
                if (n == 0) return {};
                x = conv(l.conv, cl, n < T ? ops::contiguous(x.slice(td, 0, n)) : x);  // n/s frames
                break;
            }
            case Op::TGrow: {
                x = conv(l.conv, cl, x);  // [s·C, T, H, W] / [T, H, W, s·C]
                if (l.stride == 1) break;
                const int64_t s = l.stride;
                if (cl) {  // [T, H, W, s·C] → [T, H, W, s, C] → [T, s, H, W, C] → [T·s, H, W, C]
                    const int64_t T = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3) / s;
                    x = ops::contiguous(x.reshape({T, H, W, s, C}).permute({0, 3, 1, 2, 4})).reshape({T * s, H, W, C});
                } else {  // [s·C, T, H, W] → [s, C, T, H, W] → [C, T, s, H, W] → [C, T·s, H, W]
                    const int64_t C = x.size(0) / s, T = x.size(1), H = x.size(2), W = x.size(3);
                    x = ops::contiguous(x.reshape({s, C, T, H, W}).permute({1, 2, 0, 3, 4})).reshape({C, T * s, H, W});
                }
                break;
            }
            case Op::Upsample:
                if (l.stride == 2) x = ops::upsample2x(x, cl);  // nearest, on H and W
                break;
        }
    }
    return x;
}

// Into the network: x [C, T, H, W] (any dtype) → the conv dtype, and [T, H, W, C] with cl; one copy.
Tensor to_net(const Tensor& x, bool cl, const TaehvConfig& c) {
    return ops::to_dtype(cl ? x.permute({1, 2, 3, 0}) : x, c.conv_dtype);
}

// Out of the network: [C, T, H, W] or, with cl, [T, H, W, C] → f32 [C, T, H, W]; one copy.
Tensor from_net(const Tensor& y, bool cl) {
    return ops::to_dtype(cl ? y.permute({3, 0, 1, 2}) : y, DType::F32);
}

// F.pixel_unshuffle(x, p) per frame: [3, T, H, W] → [3·p², T, H/p, W/p], channel c·p² + i·p + j.
Tensor pixel_unshuffle(const Tensor& x, int64_t p) {
    if (p == 1) return x;
    const int64_t C = x.size(0), T = x.size(1), H = x.size(2), W = x.size(3);
    // [C, T, H/p, p, W/p, p] → [C, p, p, T, H/p, W/p]
    return ops::contiguous(x.reshape({C, T, H / p, p, W / p, p}).permute({0, 3, 5, 1, 2, 4}))
        .reshape({C * p * p, T, H / p, W / p});
}

// F.pixel_shuffle(x, p), the inverse: [3·p², T, h, w] → [3, T, h·p, w·p].
Tensor pixel_shuffle(const Tensor& x, int64_t p) {
    if (p == 1) return x;
    const int64_t C = x.size(0) / (p * p), T = x.size(1), h = x.size(2), w = x.size(3);
    // [C, p, p, T, h, w] → [C, T, h, p, w, p]
    return ops::contiguous(x.reshape({C, p, p, T, h, w}).permute({0, 3, 4, 1, 5, 2})).reshape({C, T, h * p, w * p});
}

}  // namespace

std::shared_ptr<Taehv> Taehv::load(std::shared_ptr<TensorSource> src, std::shared_ptr<Backend> be, DType conv_dtype,
                                   TaehvLayout layout) {
    if (conv_dtype != DType::F32 && conv_dtype != DType::F16 && conv_dtype != DType::BF16)
        fail("taehv", "conv precision ", dtype_name(conv_dtype), " is not one of f32, f16, bf16");
    std::shared_ptr<Taehv> m(new Taehv());
    m->cfg_ = TaehvConfig::from_weights(*src);
    m->cfg_.conv_dtype = conv_dtype;
    // Auto, measured on the H200 (docs/perf.md, session 13): channels last makes the f16 encoder 36 %
    // faster and the decoder 17 % slower (its TGrow permutes cost more than its NDHWC convs save), and
    // TF32 NDHWC is no faster: the encoder alone, half convs, on a backend that prefers it.
    const bool auto_enc = be->prefers_channels_last_conv() && conv_dtype != DType::F32;
    m->cfg_.encoder_channels_last = layout == TaehvLayout::Auto ? auto_enc : layout == TaehvLayout::Ndhwc;
    m->cfg_.decoder_channels_last = layout == TaehvLayout::Ndhwc;
    m->be_ = std::move(be);
    WeightLoader wl(src, *m->be_);
    Builder B(&wl, conv_dtype);
    m->net_ = std::make_unique<TaehvNet>(build(B, m->cfg_));
    wl.finish();
    return m;
}

Taehv::~Taehv() = default;

void Taehv::check_video(const Shape& s) const {
    const int64_t m = cfg_.space_scale();
    if (s.size() != 4 || s[0] != 3 || s[1] < 1)
        fail("taehv", "video must be [3, F ≥ 1, H, W] frames in [0, 1], got ", shape_str(s));
    if (s[2] < m || s[3] < m || s[2] % m || s[3] % m)
        fail("taehv", "frame size ", s[3], "x", s[2], " must be a multiple of ", m, "; resize the video");
}

void Taehv::check_latent(const Shape& s) const {
    if (s.size() != 4 || s[0] != cfg_.latent_channels || s[1] < 1 || s[2] < 1 || s[3] < 1)
        fail("taehv", "latent must be [", cfg_.latent_channels, ", T ≥ 1, h, w], got ", shape_str(s),
             "; the latent does not belong to this TAEHV checkpoint");
}

Tensor Taehv::encode(const Tensor& video) const {
    TaehvStreamEncoder enc(std::shared_ptr<const Taehv>(std::shared_ptr<const Taehv>(), this));
    Tensor z = enc.push(video);
    Tensor rest = enc.flush();
    if (!z.defined()) return rest;
    return rest.defined() ? ops::concat({z, rest}, 1) : z;
}

Tensor Taehv::decode_raw(const Tensor& z) const {
    check_latent(z.shape());
    std::vector<Tensor> mem;
    const bool cl = cfg_.decoder_channels_last;
    return from_net(run(net_->decoder, cl, to_net(z, cl, cfg_), mem), cl);
}

Tensor Taehv::decode(const Tensor& z) const {
    TaehvStreamDecoder dec(std::shared_ptr<const Taehv>(std::shared_ptr<const Taehv>(), this));
    return dec.push(z);
}

// ---- streams ---------------------------------------------------------------------------------

TaehvStreamEncoder::TaehvStreamEncoder(std::shared_ptr<const Taehv> tae) : tae_(std::move(tae)) {}
TaehvStreamEncoder::~TaehvStreamEncoder() = default;

void TaehvStreamEncoder::reset() {
    mem_.clear();
    last_frame_ = Tensor();
    frames_ = H_ = W_ = 0;
}

Tensor TaehvStreamEncoder::push(const Tensor& frames) {
    tae_->check_video(frames.shape());
    if (frames_ > 0 && (frames.size(2) != H_ || frames.size(3) != W_))
        fail("taehv", "frames of ", frames.size(3), "x", frames.size(2), " pushed into a stream of ", W_, "x", H_,
             "; reset() before a new clip");
    H_ = frames.size(2), W_ = frames.size(3);
    const Tensor x = ops::to_dtype(frames, DType::F32);
    const int64_t n = x.size(1);
    last_frame_ = ops::contiguous(x.slice(1, n - 1, n));
    frames_ += n;
    // The network runs in its conv dtype (activations stay half between half convs); latents come out f32.
    const TaehvConfig& c = tae_->cfg_;
    const bool cl = c.encoder_channels_last;
    const Tensor z = run(tae_->net_->encoder, cl, to_net(pixel_unshuffle(x, c.patch_size), cl, c), mem_);
    return z.defined() ? from_net(z, cl) : z;  // [C, k, h, w] f32
}

Tensor TaehvStreamEncoder::flush() {
    const int64_t s = tae_->cfg_.t_downscale();
    if (frames_ == 0 || frames_ % s == 0) return {};
    const int64_t pad = s - frames_ % s;
    std::vector<Tensor> copies(size_t(pad), last_frame_);
    Tensor z = push(pad == 1 ? last_frame_ : ops::concat(copies, 1));
    return z;
}

TaehvStreamDecoder::TaehvStreamDecoder(std::shared_ptr<const Taehv> tae) : tae_(std::move(tae)) {}
TaehvStreamDecoder::~TaehvStreamDecoder() = default;

void TaehvStreamDecoder::reset() {
    mem_.clear();
    frames_ = raw_out_ = h_ = w_ = 0;
}

Tensor TaehvStreamDecoder::push(const Tensor& latents) {
    tae_->check_latent(latents.shape());
    if (frames_ > 0 && (latents.size(2) != h_ || latents.size(3) != w_))
        fail("taehv", "a ", latents.size(3), "x", latents.size(2), " latent pushed into a stream of ", w_, "x", h_,
             "; reset() before a new clip");
    h_ = latents.size(2), w_ = latents.size(3);
    frames_ += latents.size(1);
    const TaehvConfig& c = tae_->cfg_;
    const bool cl = c.decoder_channels_last;
    const Tensor raw = run(tae_->net_->decoder, cl, to_net(latents, cl, c), mem_);  // 4n frames of 3p² channels
    const int64_t n = raw.size(cl ? 0 : 1), trim = std::max<int64_t>(0, c.frames_to_trim() - raw_out_);
    raw_out_ += n;
    if (trim >= n) return {};
    Tensor y = ops::clamp(pixel_shuffle(from_net(raw, cl), c.patch_size), 0.0f, 1.0f);  // [3, 4n, H, W] f32
    return trim > 0 ? ops::contiguous(y.slice(1, trim, n)) : y;
}

// ---- synthetic weights -----------------------------------------------------------------------

std::shared_ptr<TensorSource> synthetic_taehv_weights(int64_t latent_channels, uint32_t seed) {
    TaehvConfig c;
    c.latent_channels = latent_channels;
    Builder B(nullptr, DType::F32);
    build(B, c);
    auto src = std::make_shared<MemoryTensorSource>(cat("synthetic TAEHV (seed ", seed, ")"));
    uint64_t state = seed;
    auto uniform = [&state] {  // in [-1, 1)
        const uint64_t z = splitmix64(state);
        return float(int64_t(z >> 40) - (int64_t(1) << 23)) * (1.0f / float(1 << 23));
    };
    for (const auto& [name, shape] : B.manifest) {
        const int64_t n = shape_numel(shape);
        const int64_t fan_in = shape.size() > 1 ? n / shape[0] : shape[0];
        // PyTorch's default conv init bound 1/√fan_in; biases small so the clamp to [0, 1] keeps detail.
        const float bound = shape.size() > 1 ? 1.0f / std::sqrt(float(fan_in)) : 0.1f;
        std::vector<float> v(static_cast<size_t>(n));
        for (float& x : v) x = bound * uniform();
        if (name == "decoder.22.bias")
            for (float& x : v) x = 0.5f + x;  // frames around mid-grey
        void* d = src->add_uninitialized(name, DType::F16, shape);
        convert_elements(v.data(), DType::F32, d, DType::F16, n);
    }
    return src;
}

}  // namespace wanrt
