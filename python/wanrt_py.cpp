// The Python module wanrt._wanrt (pybind11): the model folder, text-to-video generation into a numpy
// array, and the streaming video-to-video loop; python/wanrt/__init__.py re-exports it as `wanrt`.
//
//   Model(ckpt_dir=None, device="auto", threads=0)       a model folder (None: the built-in demo model)
//   Model.generate(prompt, image=None, last_image=None, size=None, ...) → uint8 [F, H, W, 3]
//                   text-, image- (Wan2.1 I2V, i2v-A14B, TI2V-5B) and first-last-frame-to-video
//                   (pipeline/generate.h: image_video_size, set_request_images, run_generate)
//   Model.stream(prompt, ...) → Stream; Stream.push(frames uint8 [n, H, W, 3]) → [m, H, W, 3]
//                                                                            (pipeline/stream.h)
//
// This file only converts: defaults and checks follow `wanrt generate` / `wanrt stream`
// (src/cli/cmd_generate.cpp, cmd_stream.cpp), and the work is the pipeline's own. Every wanrt::Error
// becomes wanrt.Error with the same one-line message the command line prints.
//
// Threads: the GIL is released for every long call (loading, generation, each pushed chunk), and
// re-taken only to call the progress callable, which also delivers Ctrl-C (PyErr_CheckSignals):
// an exception raised there unwinds the pipeline and reaches the caller unchanged. Each object has
// a mutex shared with the streams made from it (one backend, one user at a time), taken after the GIL
// is released (taking it under the GIL could deadlock against a callback waiting for the GIL), so
// threads sharing a model run one after the other.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>

#include "core/error.h"
#include "pipeline/causal_staged.h"
#include "pipeline/demo.h"
#include "pipeline/generate.h"
#include "pipeline/stream.h"
#include "runtime/device.h"
#include "video/video_writer.h"

namespace py = pybind11;
using namespace wanrt;

namespace {

namespace fs = std::filesystem;

// progress(stage, done, total) under the GIL, then pending signals (Ctrl-C) are raised.
using Progress = std::function<void(const std::string&, int64_t, int64_t)>;
Progress make_progress(py::object fn) {
    return [fn = std::move(fn)](const std::string& stage, int64_t done, int64_t total) {
        py::gil_scoped_acquire gil;
        if (!fn.is_none()) fn(stage, done, total);
        if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    };
}

// As the CLI: known extension, an existing folder, writable (probed with the writer's own .tmp name).
void check_output_path(const std::string& path) {
    const fs::path p(path);
    std::error_code ec;
    WANRT_CHECK(!fs::is_directory(p, ec), "generate", "save_file ", path, " is a folder; give a file name such as out.mp4");
    video_container_for(path);  // "[video] unknown extension ..."
    const fs::path parent = p.parent_path().empty() ? fs::path(".") : p.parent_path();
    WANRT_CHECK(fs::is_directory(parent, ec), "generate", "cannot write ", path, ": folder ", parent.string(),
                " does not exist; create it or choose another save_file");
    const std::string probe = path + ".tmp";
    FILE* f = std::fopen(probe.c_str(), "wb");
    WANRT_CHECK(f != nullptr, "generate", "cannot write ", path, " (", std::strerror(errno), "); choose a writable save_file");
    std::fclose(f);
    fs::remove(probe, ec);
}

// Frames [F, H, W, 3] uint8 handed to numpy without a copy (the vector is owned by the array).
py::array_t<uint8_t> to_numpy(Rgb24Video&& v) {
    auto* data = new std::vector<uint8_t>(std::move(v.rgb));
    py::capsule owner(data, [](void* p) { delete static_cast<std::vector<uint8_t>*>(p); });
    return py::array_t<uint8_t>({v.frames, v.height, v.width, int64_t(3)}, data->data(), owner);
}

// A numpy array of RGB frames: uint8 [n, H, W, 3] (or one frame [H, W, 3]), C-contiguous copy if needed.
// The dtype is checked, not cast: float frames in [0, 1] or [-1, 1] would silently become black.
py::array_t<uint8_t, py::array::c_style> frames_arg(const py::array& a, const char* what) {
    WANRT_CHECK(a.dtype().is(py::dtype::of<uint8_t>()), "stream", what, " has dtype ",
                std::string(py::str(a.dtype())), "; pass uint8 RGB frames [n, H, W, 3] (e.g. x.astype(np.uint8))");
    WANRT_CHECK((a.ndim() == 4 || a.ndim() == 3) && a.shape(a.ndim() - 1) == 3, "stream", what, " has ", a.ndim(),
                " dimensions", a.ndim() ? cat(" (last ", a.shape(a.ndim() - 1), ")") : std::string(),
                "; pass RGB frames [n, H, W, 3] (or one frame [H, W, 3])");
    return py::array_t<uint8_t, py::array::c_style>::ensure(a);
}

// A picture argument: None (none), a file path (str or os.PathLike; read_image, the CLI's reader) or a
// uint8 numpy array [H, W, 3] (RGB, copied). The dtype is checked, not cast, as for frames.
Rgb24Video picture_arg(const py::object& a, const char* name) {
    if (a.is_none()) return {};
    if (py::isinstance<py::str>(a) || py::hasattr(a, "__fspath__")) {
        const std::string path = py::str(py::module_::import("os").attr("fsdecode")(a));
        py::gil_scoped_release nogil;
        return read_image(path);  // "[image] ..." for a missing or unreadable file
    }
    WANRT_CHECK(py::isinstance<py::array>(a), "generate", name, " is a ", std::string(py::str(a.get_type().attr("__name__"))),
                "; pass a uint8 numpy array [H, W, 3] (RGB) or an image file path (PNG, JPEG or WebP)");
    const py::array arr = py::reinterpret_borrow<py::array>(a);
    WANRT_CHECK(arr.dtype().is(py::dtype::of<uint8_t>()), "generate", name, " has dtype ",
                std::string(py::str(arr.dtype())), "; pass a uint8 RGB picture [H, W, 3] (e.g. x.astype(np.uint8))");
    WANRT_CHECK(arr.ndim() == 3 && arr.shape(2) == 3 && arr.shape(0) > 0 && arr.shape(1) > 0, "generate", name,
                " has shape ", std::string(py::str(py::tuple(a.attr("shape")))),
                "; pass one RGB picture [H, W, 3] (for a video frame v[i], not v)");
    const auto c = py::array_t<uint8_t, py::array::c_style>::ensure(arr);
    Rgb24Video v{1, c.shape(0), c.shape(1), 16.0, {}};
    v.rgb.assign(c.data(), c.data() + v.frame_bytes());
    return v;
}

class Model {
public:
    Model(std::optional<std::string> ckpt_dir, const std::string& device, int threads) {
        py::gil_scoped_release nogil;
        demo_ = !ckpt_dir || ckpt_dir->empty();  // open_model_folder's errors are the CLI's, word for word
        if (!demo_) ckpt_dir_ = *ckpt_dir;
        parts_ = demo_ ? demo_model_parts() : open_model_folder(*ckpt_dir);
        be_ = make_backend(device, threads);
    }

    py::object generate(const std::string& prompt, py::object image, py::object last_image, std::optional<std::string> size,
                        std::optional<int64_t> frame_num, std::optional<int> sample_steps,
                        std::optional<double> sample_shift, py::object guide_scale, const std::string& solver,
                        std::optional<std::string> neg_prompt, std::optional<int64_t> seed,
                        std::optional<std::string> save_file, py::object progress) {
        // What the folder does with pictures, and the pictures it needs (the CLI's rules for --image and
        // --first_frame/--last_frame, with this call's argument names).
        const ImageTask task = image_task_of(parts_);
        const bool moe = parts_.moe();
        const std::string& name = parts_.name;
        Rgb24Video picture = picture_arg(image, "image"), last = picture_arg(last_image, "last_image");
        WANRT_CHECK(picture.frames > 0 || last.frames == 0, "generate",
                    "last_image needs image: first-last-frame-to-video takes both (image= the first frame)");
        WANRT_CHECK(picture.frames == 0 || task.image || task.ti2v, "generate", "image needs an image-to-video model, but ",
                    name, " holds ", parts_.kind, " (text-to-video); open an I2V folder (e.g. Wan2.1-I2V-14B-480P) or "
                    "leave out image");
        WANRT_CHECK(last.frames == 0 || task.flf2v, "generate", "last_image needs a first-last-frame model, but ", name,
                    " holds ", parts_.kind, "; open a FLF2V folder (Wan2.1-FLF2V-14B-720P) or leave out last_image");
        WANRT_CHECK(!task.flf2v || last.frames > 0, "generate", name, " holds a first-last-frame model (", parts_.kind,
                    "): pass image= (the first frame) and last_image= (uint8 arrays [H, W, 3] or image file paths)");
        WANRT_CHECK(!task.image || picture.frames > 0, "generate", name, " holds an image-to-video model (", parts_.kind,
                    "): pass image= (a uint8 array [H, W, 3] or a PNG, JPEG or WebP path)");
        // Defaults and size checks as `wanrt generate` and serve (pipeline/generate.h).
        const TaskDefaultsKey key = task_defaults_key(parts_, demo_, ckpt_dir_);
        const GenerateDefaults dflt = generate_defaults(key);
        const MoeDefaults md = moe_defaults(task.image);
        GenerateRequest req;
        T2VOptions& opt = req.opt;
        const std::string sz = size ? *size : dflt.size;
        parse_request_size(sz, &opt.width, &opt.height);
        check_supported_size(key, sz);  // TI2V-5B and A14B refuse sizes off their lists
        opt.frame_num = frame_num ? *frame_num : dflt.frame_num;
        opt.sample_steps = sample_steps ? *sample_steps : dflt.sample_steps;
        WANRT_CHECK(opt.sample_steps > 0, "generate", "sample_steps ", opt.sample_steps, " must be at least 1 (official: 50)");
        opt.sample_shift = sample_shift ? *sample_shift : default_sample_shift(key, sz);
        WANRT_CHECK(std::isfinite(opt.sample_shift) && opt.sample_shift > 0, "generate", "sample_shift ",
                    opt.sample_shift, " must be positive (official: 5; 8-12 advised for 1.3B)");
        // guide_scale: g, or (low, high) for the A14B experts (a single g means (g, g) there).
        std::vector<double> guide;
        if (guide_scale.is_none())
            guide = dflt.guide;
        else if (py::isinstance<py::float_>(guide_scale) || py::isinstance<py::int_>(guide_scale))
            guide = {guide_scale.cast<double>()};
        else {
            WANRT_CHECK(py::isinstance<py::sequence>(guide_scale) && py::len(guide_scale) == 2, "generate",
                        "guide_scale must be a number, or (low, high) for the A14B experts");
            guide = guide_scale.cast<std::vector<double>>();
        }
        WANRT_CHECK(guide.size() == 1 || moe, "generate", "guide_scale is a pair (low, high), which only the A14B "
                    "experts take; pass one number");
        for (double g : guide) WANRT_CHECK(std::isfinite(g), "generate", "guide_scale must be a finite number");
        opt.guide_scale = guide[0];
        req.moe.guide_scale_high = guide.back();
        req.moe.boundary = md.boundary;
        WANRT_CHECK(solver == "unipc" || solver == "dpm++" || solver == "euler", "generate", "unknown sample_solver \"",
                    solver, "\"; use unipc (official default), dpm++ or euler");
        opt.solver = solver;
        // frames, size and the pictures against the models: before any weights load
        image_video_size(task, picture, last, opt, parts_.dit_config, parts_.vae_config, parts_.vae22_config);
        if (save_file) check_output_path(*save_file);
        req.prompt = prompt;
        req.neg_prompt = neg_prompt && !neg_prompt->empty() ? *neg_prompt : dflt.neg_prompt;
        if (seed && *seed >= 0) {
            req.seed = uint64_t(*seed);
        } else {  // generate.py: random.randint(0, sys.maxsize)
            std::random_device rd;
            req.seed = ((uint64_t(rd()) << 32) | rd()) & 0x7fffffffffffffffull;
        }
        last_seed_ = int64_t(req.seed);

        const Progress report = make_progress(std::move(progress));
        GenerateProgress gp;
        gp.on_stage = [&](const std::string& s) { report(s, 0, 0); };
        gp.on_step = [&](const T2VStepInfo& s) { report("denoise", s.index + 1, s.total); };
        Rgb24Video frames;
        {
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(*mu_);
            set_request_images(req, task, std::move(picture), std::move(last), *be_);
            const GenerateResult r = run_generate(parts_, be_, std::move(req), gp);
            if (save_file) {  // <file>.tmp, then renamed; at the model's frame rate, as the CLI writes it
                VideoWriteOptions wo;
                wo.fps = sample_fps(parts_);
                write_video(*save_file, r.video, wo);
            }
            frames = video_to_rgb24(r.video);
        }
        return to_numpy(std::move(frames));
    }

    const T2VModelParts& parts() const { return parts_; }
    const std::shared_ptr<Backend>& backend() const { return be_; }
    const std::shared_ptr<std::mutex>& mutex() const { return mu_; }
    bool demo() const { return demo_; }
    int64_t last_seed() const { return last_seed_; }

private:
    T2VModelParts parts_;
    std::shared_ptr<Backend> be_;
    std::string ckpt_dir_;  // the i2v default size follows the folder's name (480P), as the CLI's
    bool demo_ = true;
    int64_t last_seed_ = -1;
    std::shared_ptr<std::mutex> mu_ = std::make_shared<std::mutex>();
};

// StreamV2V fed with frames of any count: they are queued and pushed as the chunks the loop takes
// (5, then 4); push() returns the restyled frames that became ready, possibly none.
class Stream {
public:
    Stream(Model& m, const std::string& prompt, const StreamOptions& so, uint64_t seed, std::optional<std::string> generator,
           py::object progress)
        : parts_(m.parts()), be_(m.backend()), mu_(m.mutex()) {
        WANRT_CHECK(!parts_.dit_config.is_i2v(), "stream", "the causal model needs a text-to-video DiT; ", parts_.name,
                    " holds an image-to-video one");
        so.validate();  // before any weights are touched
        const Progress report = make_progress(std::move(progress));
        const StageFn on_stage = [&](const std::string& s) { report(s, 0, 0); };
        py::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lock(*mu_);
        CausalDitSource gen;
        if (generator) {
            std::error_code ec;
            WANRT_CHECK(fs::is_regular_file(*generator, ec), "stream", "generator ", *generator,
                        " is not a file; pass a CausVid / StreamDiffusionV2 checkpoint (.pt, .pth or .safetensors)");
            gen = open_generator(*generator);
        }
        TextStageTimes text;
        const Tensor context = run_text_stage(parts_, *be_, {prompt}, text, on_stage)[0];
        double load_s = 0;
        auto dit = std::make_shared<CausalDitModel>(run_dit_load_stage(parts_, *be_, std::move(gen), load_s, on_stage));
        on_stage("load VAE");
        std::shared_ptr<WanVae> vae = WanVae::load(parts_.vae_weights(), parts_.vae_config, be_);
        s_ = std::make_unique<StreamV2V>(dit, vae, context, so, seeded_noise(seed));
    }

    py::array_t<uint8_t> push(const py::array& a) {
        const auto f = frames_arg(a, "push(frames)");
        const int64_t n = f.ndim() == 4 ? f.shape(0) : 1, H = f.shape(f.ndim() - 3), W = f.shape(f.ndim() - 2);
        Rgb24Video out;
        {
            const uint8_t* src = f.data();  // the array stays alive (f) while the GIL is released
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(*mu_);
            WANRT_CHECK(!flushed_, "stream", "push after flush; call reset() to start a new stream");
            if (H_ == 0) {
                WANRT_CHECK(H % 16 == 0 && W % 16 == 0 && H > 0 && W > 0, "stream", "frames are ", W, "x", H,
                            "; the size must be a multiple of 16 (e.g. 832x480): resize them first");
                H_ = H, W_ = W;
            }
            WANRT_CHECK(H == H_ && W == W_, "stream", "frames are ", W, "x", H, " but this stream is ", W_, "x", H_,
                        "; keep one size per stream (reset() starts a new one)");
            pending_.insert(pending_.end(), src, src + size_t(n * H * W * 3));
            out = Rgb24Video{0, H_, W_, 16.0, {}};
            const size_t fb = out.frame_bytes();
            while (int64_t(pending_.size() / fb) >= s_->next_chunk_frames()) {
                const int64_t k = s_->next_chunk_frames();
                Rgb24Video chunk{k, H_, W_, 16.0, std::vector<uint8_t>(pending_.begin(), pending_.begin() + long(k * fb))};
                pending_.erase(pending_.begin(), pending_.begin() + long(k * fb));
                append(out, s_->push(rgb24_to_video(chunk, *be_)));
            }
        }
        return to_numpy(std::move(out));
    }

    // The frames still in the stream batch; queued frames short of a whole chunk are dropped (as SD).
    py::array_t<uint8_t> flush() {
        Rgb24Video out;
        {
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(*mu_);
            out = Rgb24Video{0, H_, W_, 16.0, {}};
            if (!flushed_) append(out, s_->flush());
            flushed_ = true;
            pending_.clear();
        }
        return to_numpy(std::move(out));
    }

    void reset() {
        py::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lock(*mu_);
        s_->reset();
        pending_.clear();
        H_ = W_ = 0;
        flushed_ = false;
    }

    // Encodes the new prompt (the text encoder loads for this call and is freed again); the
    // cross-attention K/V change from the next chunk, the KV history stays.
    void set_prompt(const std::string& prompt) {
        py::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lock(*mu_);
        TextStageTimes text;
        s_->set_prompt(run_text_stage(parts_, *be_, {prompt}, text)[0]);
    }

    // Quick getters, still taken without the GIL: the lock may be held by a call in a callback.
    py::dict stats() {
        StreamStats st;
        int64_t kv_bytes = 0;
        {
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(*mu_);
            st = s_->stats();
            kv_bytes = int64_t(s_->cache().bytes());
        }
        py::dict d;
        d["chunks_in"] = st.chunks_in, d["frames_in"] = st.frames_in, d["frames_out"] = st.frames_out;
        d["dit_calls"] = st.dit_calls, d["encode_s"] = st.encode_s, d["dit_s"] = st.dit_s, d["decode_s"] = st.decode_s;
        d["last_noise_scale"] = st.last_noise_scale, d["last_t0"] = st.last_t0, d["kv_cache_bytes"] = kv_bytes;
        return d;
    }
    int64_t next_chunk_frames() {
        py::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lock(*mu_);
        return s_->next_chunk_frames();
    }
    int64_t pending_frames() {
        py::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lock(*mu_);
        return H_ ? int64_t(pending_.size()) / (H_ * W_ * 3) : 0;
    }

private:
    // Restyled frames [3, m, H, W] (undefined: none yet) → appended as RGB24 (clamped as cache_video).
    static void append(Rgb24Video& out, const Tensor& frames) {
        if (!frames.defined()) return;
        Rgb24Video v = video_to_rgb24(frames);
        out.rgb.insert(out.rgb.end(), v.rgb.begin(), v.rgb.end());
        out.frames += v.frames;
    }

    T2VModelParts parts_;  // shares the model's files (and the demo's tokenizer folder)
    std::shared_ptr<Backend> be_;
    std::unique_ptr<StreamV2V> s_;
    std::vector<uint8_t> pending_;  // queued frames, RGB24
    int64_t H_ = 0, W_ = 0;
    bool flushed_ = false;
    std::shared_ptr<std::mutex> mu_;  // the model's
};

}  // namespace

PYBIND11_MODULE(_wanrt, m) {
    m.doc() = "wanrt: Wan2.1 video diffusion (text-to-video, streaming video-to-video) in native C++";
    py::register_exception<wanrt::Error>(m, "Error", PyExc_RuntimeError);

    py::class_<Model>(m, "Model", "A Wan2.1 text-to-video model folder, or the built-in demo model (ckpt_dir=None).")
        .def(py::init<std::optional<std::string>, const std::string&, int>(), py::arg("ckpt_dir") = py::none(),
             py::arg("device") = "auto", py::arg("threads") = 0,
             "Opens the folder (config and file checks; weights load per call, one network at a time). "
             "device: auto, cpu, cuda or cuda:N; threads: CPU threads (0 = all cores).")
        .def("generate", &Model::generate, py::arg("prompt"), py::kw_only(), py::arg("image") = py::none(),
             py::arg("last_image") = py::none(), py::arg("size") = py::none(),
             py::arg("frame_num") = py::none(), py::arg("sample_steps") = py::none(),
             py::arg("sample_shift") = py::none(), py::arg("guide_scale") = py::none(), py::arg("sample_solver") = "unipc",
             py::arg("neg_prompt") = py::none(), py::arg("seed") = py::none(), py::arg("save_file") = py::none(),
             py::arg("progress") = py::none(),
             "Text or image to video as `wanrt generate`: returns uint8 RGB frames [F, H, W, 3]; save_file also "
             "writes them (.mp4, .y4m or .png). image (Wan2.1 I2V and i2v-A14B: required; TI2V-5B: optional) and "
             "last_image (FLF2V: image is the first frame, both required): a uint8 numpy array [H, W, 3] RGB or an "
             "image file path; size is then the max_area and the video keeps the picture's aspect, as "
             "`wanrt generate --image` / `--first_frame --last_frame`. Defaults per task as the CLI: size 832*480 "
             "(1280*720 for 14B, FLF2V, A14B and non-480P I2V folders, 1280*704 TI2V-5B, 256*256 demo), frame_num "
             "81 (121 TI2V-5B, demo 17), sample_steps 50 (I2V and A14B 40, demo 8), guide_scale 5.0 (A14B: the "
             "official (low, high) pair; a pair is accepted there), seed None = random (see last_seed). "
             "progress(stage, done, total) is called as each stage starts (done = total = 0) and after each "
             "denoising step (stage 'denoise').")
        .def(
            "stream",
            [](Model& self, const std::string& prompt, std::vector<double> steps, double noise_scale, bool motion_aware,
               double shift, int64_t cache_frames, int64_t sink_frames, int64_t refresh_frame, double adapt_sink,
               bool normalized_latents, int64_t seed, std::optional<std::string> generator, py::object progress) {
                StreamOptions so;
                so.steps = std::move(steps);
                so.noise_scale = noise_scale;
                so.motion_aware = motion_aware;
                so.shift = shift;
                so.cache_frames = cache_frames;
                so.sink_frames = sink_frames;
                so.refresh_frame = refresh_frame;
                so.adapt_sink_threshold = adapt_sink;
                so.raw_latents = !normalized_latents;
                return std::make_unique<Stream>(self, prompt, so, uint64_t(seed), std::move(generator), std::move(progress));
            },
            py::arg("prompt"), py::kw_only(), py::arg("steps") = std::vector<double>{700, 500},
            py::arg("noise_scale") = 0.8, py::arg("motion_aware") = true, py::arg("shift") = 8.0,
            py::arg("cache_frames") = 6, py::arg("sink_frames") = 3, py::arg("refresh_frame") = 50,
            py::arg("adapt_sink") = 0.2, py::arg("normalized_latents") = false, py::arg("seed") = 0,
            py::arg("generator") = py::none(), py::arg("progress") = py::none(),
            "A streaming video-to-video session as `wanrt stream` (StreamDiffusionV2): encodes the prompt, loads "
            "the causal DiT (generator: a CausVid / StreamDiffusionV2 checkpoint replacing the folder's) and the VAE.")
        .def_property_readonly("name", [](const Model& s) { return s.parts().name; })
        .def_property_readonly("kind", [](const Model& s) { return s.parts().kind; })
        .def_property_readonly("device", [](const Model& s) { return s.backend()->description(); })
        .def_property_readonly("fps", [](const Model& s) { return sample_fps(s.parts()); },
                               "Frames per second of the model's videos (save_file writes them at it): 16, TI2V-5B 24.")
        .def_property_readonly("last_seed", &Model::last_seed, "The seed of the last generate() (-1 before any).")
        .def("__repr__", [](const Model& s) {
            return cat("<wanrt.Model ", s.parts().name, " (", s.parts().kind, ") on ", s.backend()->description(), ">");
        });

    py::class_<Stream>(m, "Stream", "Streaming video-to-video; made by Model.stream().")
        .def("push", &Stream::push, py::arg("frames"),
             "Queues uint8 RGB frames [n, H, W, 3] (H, W multiples of 16) and runs every whole chunk (5 frames, "
             "then 4); returns the restyled frames that became ready, [m, H, W, 3] (m may be 0 while the "
             "stream batch fills).")
        .def("flush", &Stream::flush, "Runs the stream dry: returns the frames still in flight. reset() starts anew.")
        .def("reset", &Stream::reset, "Starts a new stream (caches, queued frames and size cleared).")
        .def("set_prompt", &Stream::set_prompt, py::arg("prompt"),
             "A new prompt from the next chunk on (the text encoder loads for this call).")
        .def_property_readonly("stats", &Stream::stats)
        .def_property_readonly("next_chunk_frames", &Stream::next_chunk_frames)
        .def_property_readonly("pending_frames", &Stream::pending_frames, "Queued frames short of a whole chunk.");
}
