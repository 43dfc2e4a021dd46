// wanrt serve: the HTTP job API, the live WebSocket stream and the live page over one model loaded
// once (server/server.h; docs/serve.md). Without --ckpt_dir the built-in demo model serves.
// The flags are checked before the model loads: a non-loopback --host without --token is refused.
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "runtime/device.h"
#include "server/server.h"

namespace wanrt::cli {

namespace {

struct Opts {
    serve::ServerOptions server;
    std::string ckpt_dir, device = "auto", task, generator;
    int threads = 0;
    int64_t max_body_kib = 1024, max_upload_mib = 16;
};

void run(Opts o) {
    serve::ServerOptions& so = o.server;
    WANRT_CHECK(serve::is_loopback_host(so.host) || !so.token.empty(), "serve", "--host ", so.host,
                " is reachable from other machines: pass --token <secret> (clients send \"Authorization: Bearer "
                "<secret>\"), or bind 127.0.0.1");
    WANRT_CHECK(so.port >= 0 && so.port <= 65535, "serve", "--port ", so.port, " must be in [0, 65535]");
    WANRT_CHECK(o.max_body_kib >= 1, "serve", "--max_body_kib must be at least 1");
    WANRT_CHECK(so.max_queue >= 1, "serve", "--max_queue must be at least 1");
    WANRT_CHECK(o.max_upload_mib >= 1 && o.max_upload_mib <= 1024, "serve", "--max_upload_mib must be in [1, 1024]");
    so.max_body = size_t(o.max_body_kib) * 1024;
    so.max_upload = size_t(o.max_upload_mib) << 20;
    auto be = make_backend(o.device, o.threads);
    std::fprintf(stderr, "serve: loading %s on %s\n",
                 o.ckpt_dir.empty() ? "the built-in demo model" : o.ckpt_dir.c_str(), be->description().c_str());
    auto model = serve::ServeModel::load(
        o.ckpt_dir, be, [](const std::string& s) { std::fprintf(stderr, "  %s...\n", s.c_str()); }, o.task, o.generator);
    serve::Server server(so, *model);
    std::fprintf(stderr, "serve: %s (%s) at http://%s:%d/ (job API under /v1, live page at /)%s; Ctrl-C stops\n",
                 model->parts.name.c_str(), model->parts.kind.c_str(), so.host.c_str(), server.port(),
                 so.token.empty() ? "" : ", token required");
    std::fflush(stderr);
    server.run();
    std::fprintf(stderr, "serve: stopped\n");
}

void setup(CLI::App& app) {
    auto o = std::make_shared<Opts>();
    CLI::App* c = app.add_subcommand(
        "serve", "HTTP job API + live WebSocket stream + live page over one loaded model (docs/serve.md)");
    c->add_option("--host", o->server.host, "Address to bind; a non-loopback one needs --token")->capture_default_str();
    c->add_option("--port", o->server.port, "TCP port (0 = any free port, printed)")->capture_default_str();
    c->add_option("--ckpt_dir", o->ckpt_dir,
                  "Wan2.1 T2V, I2V or FLF2V, or Wan2.2 A14B (T2V, I2V) or TI2V-5B model folder (default: the built-in "
                  "demo model)");
    c->add_option("--task", o->task,
                  "i2v-14B, flf2v-14B, t2v-A14B, i2v-A14B or ti2v-5B serves that demo model (default: the folder's "
                  "task, or t2v)");
    c->add_option("--generator", o->generator,
                  "Causal DiT weights for the live stream (CausVid / Self-Forcing / StreamDiffusionV2 model file; "
                  "jobs keep the folder's DiT)");
    c->add_option("--token", o->server.token, "Bearer token every request must carry (required off loopback)");
    c->add_option("--max_queue", o->server.max_queue, "Jobs waiting at most (more: 429)")->capture_default_str();
    c->add_option("--max_body_kib", o->max_body_kib, "Request body limit in KiB (more: 413)")->capture_default_str();
    c->add_option("--max_upload_mib", o->max_upload_mib, "POST /v1/generate body limit in MiB (a picture; more: 413)")
        ->capture_default_str();
    c->add_option("--device", o->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
    c->add_option("--threads", o->threads, "CPU threads (0 = all cores)")->capture_default_str();
    c->callback([o] { run(*o); });
}

Command reg("serve", setup);

}  // namespace
}  // namespace wanrt::cli
