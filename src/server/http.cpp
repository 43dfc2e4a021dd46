// The HTTP and WebSocket front end of `wanrt serve` on Boost.Beast (server.h has the API and the
// security rules). Parsing and framing are Beast's; this file only routes, checks and answers.
//
// HTTP connections are asynchronous (beast::tcp_stream with a timeout per read and write, so an
// idle or slow client cannot hold a connection). A WebSocket upgrade on /v1/stream takes the socket
// off the event loop onto its own thread: a stream's chunks are long blocking computations, and its
// frames are read, restyled and answered in order there.
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "core/error.h"
#include "server/beast.h"
#include "server/server.h"
#include "server/stream_pipeline.h"

namespace wanrt::serve {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using json = nlohmann::json;

bool is_loopback_host(const std::string& host) {
    if (host == "localhost") return true;
    boost::system::error_code ec;
    const net::ip::address a = net::ip::make_address(host, ec);
    return !ec && a.is_loopback();
}

struct Server::Impl {
    ServerOptions opt;
    ServeModel& model;
    std::atomic<size_t> connections{0};
    std::atomic<int> streams{0};
    std::mutex mu;  // stream threads, their sockets, stopped
    std::vector<std::thread> stream_threads;
    std::vector<int> stream_fds;
    bool stopped = false;
    std::unique_ptr<JobQueue> jobs;  // destroyed after the io context (declared before it)
    net::io_context ioc;
    tcp::acceptor acceptor{ioc};
    net::signal_set signals{ioc};
    std::vector<std::thread> io_threads;

    Impl(const ServerOptions& o, ServeModel& m) : opt(o), model(m) {}
    void accept();
    void stop();
    void run_stream(tcp::socket sock, http::request<http::string_body> req);
};

namespace {

using Request = http::request<http::string_body>;
using StringResponse = http::response<http::string_body>;

StringResponse json_response(http::status st, const json& j, const Request* req) {
    StringResponse res{st, req ? req->version() : 11};
    res.set(http::field::server, "wanrt");
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-store");
    res.keep_alive(req ? req->keep_alive() : false);
    res.body() = j.dump() + "\n";
    res.prepare_payload();
    return res;
}
StringResponse error_response(http::status st, const std::string& msg, const Request* req) {
    return json_response(st, json{{"error", msg}}, req);
}

// Splits "/a/b?x=1&y=2" into the path and the query value of `key` ("" when absent); %XX decoded.
std::string query_value(beast::string_view target, const std::string& key) {
    const size_t q = target.find('?');
    if (q == beast::string_view::npos) return {};
    std::string query(target.substr(q + 1));
    size_t at = 0;
    while (at <= query.size()) {
        size_t end = query.find('&', at);
        if (end == std::string::npos) end = query.size();
        const std::string kv = query.substr(at, end - at);
        const size_t eq = kv.find('=');
        if (eq != std::string::npos && kv.substr(0, eq) == key) {
            std::string v;
            const std::string raw = kv.substr(eq + 1);
            for (size_t i = 0; i < raw.size(); ++i) {
                if (raw[i] == '%' && i + 2 < raw.size() && std::isxdigit(static_cast<unsigned char>(raw[i + 1])) &&
                    std::isxdigit(static_cast<unsigned char>(raw[i + 2]))) {
                    v += char(std::stoi(raw.substr(i + 1, 2), nullptr, 16));
                    i += 2;
                } else {
                    v += raw[i] == '+' ? ' ' : raw[i];
                }
            }
            return v;
        }
        at = end + 1;
    }
    return {};
}

// The comparison time does not depend on where the strings differ (only on the length).
bool equal_const_time(const std::string& a, const std::string& b) {
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

// "" when authorised, else the error's status and message.
std::optional<std::pair<http::status, std::string>> check_token(const Request& req, const std::string& token) {
    if (token.empty()) return std::nullopt;
    std::string given;
    const auto auth = req[http::field::authorization];
    if (auth.size() > 7 && auth.substr(0, 7) == "Bearer ") given = std::string(auth.substr(7));
    if (given.empty()) given = query_value(req.target(), "token");
    if (given.empty())
        return std::make_pair(http::status::unauthorized,
                              std::string("[serve] this server needs a token: send \"Authorization: Bearer <token>\" "
                                          "(or ?token=<token> on the page and the WebSocket)"));
    if (!equal_const_time(given, token))
        return std::make_pair(http::status::forbidden, std::string("[serve] wrong token"));
    return std::nullopt;
}

bool valid_id(const std::string& id) {
    return id.size() == 32 &&
           std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

class HttpSession : public std::enable_shared_from_this<HttpSession> {
public:
    HttpSession(tcp::socket&& s, Server::Impl& srv, bool over_capacity)
        : stream_(std::move(s)), srv_(srv), over_(over_capacity) {}
    ~HttpSession() { --srv_.connections; }

    void run() {
        net::dispatch(stream_.get_executor(), beast::bind_front_handler(&HttpSession::do_read, shared_from_this()));
    }

private:
    std::chrono::steady_clock::duration timeout() const {
        return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::duration<double>(srv_.opt.idle_timeout_s));
    }

    // The header first: its target and method choose the body limit (a job may carry a picture).
    // Beast checks a Content-Length against the limit while it parses the header, so the limit is
    // the larger of the two then and the route's own is checked here; a chunked body is bounded by
    // body_limit as it is read. (Not boost::none: Boost 1.74 compares len > none as true.)
    uint64_t body_limit() const {
        const auto& h = parser_->get();
        const bool job = h.method() == http::verb::post && h.target().substr(0, h.target().find('?')) == "/v1/generate";
        return job ? std::max(srv_.opt.max_body, srv_.opt.max_upload) : srv_.opt.max_body;
    }

    void do_read() {
        parser_.emplace();
        parser_->body_limit(std::max(srv_.opt.max_body, srv_.opt.max_upload));
        parser_->header_limit(16 * 1024);
        stream_.expires_after(timeout());
        http::async_read_header(stream_, buffer_, *parser_,
                                beast::bind_front_handler(&HttpSession::on_header, shared_from_this()));
    }

    void on_header(beast::error_code ec, size_t n) {
        if (ec) return on_read(ec, n);
        const uint64_t limit = body_limit();
        if (const auto len = parser_->content_length(); len && *len > limit)
            return on_read(http::error::body_limit, 0);  // answered before the body is read
        parser_->body_limit(limit);
        http::async_read(stream_, buffer_, *parser_,
                         beast::bind_front_handler(&HttpSession::on_read, shared_from_this()));
    }

    void on_read(beast::error_code ec, size_t) {
        if (ec == http::error::end_of_stream) return close();
        if (ec == http::error::body_limit) {
            const uint64_t limit = body_limit();
            return send(error_response(
                http::status::payload_too_large,
                "[serve] the request body is over this server's limit of " + std::to_string(limit) + " bytes" +
                    (limit > srv_.opt.max_body ? "; send a smaller picture (or start the server with a larger --max_upload_mib)"
                                               : ""),
                nullptr));
        }
        if (ec == http::error::header_limit)
            return send(error_response(http::status::request_header_fields_too_large,
                                       "[serve] the request headers are over 16 KiB", nullptr));
        if (ec && ec.category() == make_error_code(http::error::bad_target).category() &&
            ec != http::error::partial_message)
            return send(
                error_response(http::status::bad_request, "[serve] malformed HTTP request: " + ec.message(), nullptr));
        if (ec) return;  // timeout, reset: the connection is gone
        req_ = parser_->release();
        if (over_)
            return send(error_response(http::status::service_unavailable,
                                       "[serve] too many open connections; retry shortly", nullptr));
        handle();
    }

    template <class Msg>
    void send(Msg&& msg) {
        auto sp = std::make_shared<std::decay_t<Msg>>(std::forward<Msg>(msg));
        if (over_) sp->keep_alive(false);
        stream_.expires_after(timeout());
        http::async_write(stream_, *sp, [self = shared_from_this(), sp](beast::error_code ec, size_t) {
            if (ec) return;
            if (sp->need_eof()) return self->close();
            self->do_read();
        });
    }

    void close() {
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    }

    void handle() {
        const Request& req = req_;
        if (auto bad = check_token(req, srv_.opt.token)) {
            StringResponse res = error_response(bad->first, bad->second, &req);
            if (bad->first == http::status::unauthorized) res.set(http::field::www_authenticate, "Bearer");
            return send(std::move(res));
        }
        std::string path(req.target().substr(0, req.target().find('?')));
        const http::verb m = req.method();
        auto method_not_allowed = [&](const char* allow) {
            StringResponse res = error_response(
                http::status::method_not_allowed,
                "[serve] " + std::string(req.method_string()) + " is not allowed on " + path + "; use " + allow, &req);
            res.set(http::field::allow, allow);
            return send(std::move(res));
        };

        if (path == "/" || path == "/index.html") {
            if (m != http::verb::get) return method_not_allowed("GET");
            StringResponse res{http::status::ok, req.version()};
            res.set(http::field::server, "wanrt");
            res.set(http::field::content_type, "text/html; charset=utf-8");
            res.set(http::field::cache_control, "no-store");
            res.set("Content-Security-Policy",
                    "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                    "img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
                    "connect-src 'self' ws: wss:");
            res.keep_alive(req.keep_alive());
            res.body() = live_page_html();
            res.prepare_payload();
            return send(std::move(res));
        }
        if (path == "/v1/health") {
            if (m != http::verb::get) return method_not_allowed("GET");
            return send(json_response(http::status::ok,
                                      json{{"status", "ok"},
                                           {"model", srv_.model.parts.name},
                                           {"kind", srv_.model.parts.kind},
                                           {"task", srv_.model.task()},
                                           // the live stream's DiT: the model's, a --generator file's, or none
                                           {"stream", !srv_.model.causal ? "none"
                                                      : srv_.model.generator.empty() ? "dit"
                                                                                     : "generator"},
                                           {"device", srv_.model.be->description()},
                                           {"queued", srv_.jobs->queued()},
                                           {"max_queue", srv_.opt.max_queue}},
                                      &req));
        }
        if (path == "/v1/generate") {
            if (m != http::verb::post) return method_not_allowed("POST");
            return generate();
        }
        if (path == "/v1/stream") {
            if (m != http::verb::get) return method_not_allowed("GET");
            // Picture-taking models (i2v, flf2v, i2v-A14B) are refused before the upgrade; the other
            // models without a causal DiT (ti2v-5B, t2v-A14B) at the first config (StreamSession::configure).
            if (srv_.model.i2v())
                return send(error_response(http::status::unprocessable_entity,
                                           "[serve] model " + srv_.model.parts.name + " (" + srv_.model.parts.kind +
                                               ") is image-to-video (" + srv_.model.task() +
                                               "); the live stream runs a Wan2.1 text-to-video model: start wanrt "
                                               "serve with one (a T2V folder, or the demo without --task)",
                                           &req));
            if (!websocket::is_upgrade(req))
                return send(error_response(
                    http::status::upgrade_required,
                    "[serve] /v1/stream is a WebSocket endpoint; connect with a WebSocket client", &req));
            if (srv_.streams.fetch_add(1) >= srv_.opt.max_streams) {
                --srv_.streams;
                return send(error_response(http::status::service_unavailable,
                                           "[serve] a live stream is already running (limit " +
                                               std::to_string(srv_.opt.max_streams) + "); retry when it ends",
                                           &req));
            }
            stream_.expires_never();
            return srv_.run_stream(stream_.release_socket(), std::move(req_));
        }
        const std::string prefix = "/v1/jobs/";
        if (path.rfind(prefix, 0) == 0) {
            std::string rest = path.substr(prefix.size()), sub;
            const size_t slash = rest.find('/');
            if (slash != std::string::npos) {
                sub = rest.substr(slash + 1);
                rest = rest.substr(0, slash);
            }
            if (!valid_id(rest)) return not_found(path);
            if (sub.empty()) {
                if (m == http::verb::get) return job_status(rest);
                if (m == http::verb::delete_) return job_cancel(rest);
                return method_not_allowed("GET, DELETE");
            }
            if (sub == "result") {
                if (m != http::verb::get) return method_not_allowed("GET");
                return job_result(rest);
            }
            if (sub == "events") {
                if (m != http::verb::get) return method_not_allowed("GET");
                return job_events(rest);
            }
        }
        return not_found(path);
    }

    void not_found(const std::string& path) {
        send(error_response(http::status::not_found,
                            "[serve] no such resource " + path.substr(0, 200) +
                                "; see docs/serve.md (POST /v1/generate, GET /v1/jobs/{id}, ...)",
                            &req_));
    }

    // The body: JSON (pictures as base64) or multipart/form-data (server/upload.h). A picture sent to
    // a text-to-video model, or none to an image-to-video one (likewise "last_image" and first-last-frame
    // models), is 422; every other bad input 400.
    void generate() {
        JobRequest r;
        try {
            const beast::string_view ct = req_[http::field::content_type];
            const GenerateBody body =
                parse_generate_body(std::string_view(ct.data(), ct.size()), req_.body(), srv_.opt.max_upload);
            const std::string mismatch = task_mismatch(srv_.model, body.has_image, body.has_last_image);
            if (!mismatch.empty()) return send(error_response(http::status::unprocessable_entity, mismatch, &req_));
            std::shared_ptr<const RgbImage> image, last_image;
            if (body.has_image)
                image = std::make_shared<const RgbImage>(
                    decode_image(body.image, srv_.opt.limits.max_image_pixels, "the uploaded image"));
            if (body.has_last_image)
                last_image = std::make_shared<const RgbImage>(
                    decode_image(body.last_image, srv_.opt.limits.max_image_pixels, "the uploaded last_image"));
            r = parse_job_request(body.options, srv_.model, srv_.opt.limits, std::move(image), std::move(last_image));
        } catch (const Error& e) {
            return send(error_response(http::status::bad_request, e.what(), &req_));
        } catch (const std::bad_alloc&) {
            return send(error_response(http::status::payload_too_large,
                                       "[serve] out of memory reading the request; send a smaller picture", &req_));
        }
        try {
            const auto [id, pos] = srv_.jobs->submit(std::move(r));
            StringResponse res = json_response(http::status::accepted,
                                               json{{"id", id},
                                                    {"status", "queued"},
                                                    {"position", pos},
                                                    {"status_url", "/v1/jobs/" + id},
                                                    {"events_url", "/v1/jobs/" + id + "/events"},
                                                    {"result_url", "/v1/jobs/" + id + "/result"}},
                                               &req_);
            res.set(http::field::location, "/v1/jobs/" + id);
            return send(std::move(res));
        } catch (const QueueFull&) {
            StringResponse res = error_response(
                http::status::too_many_requests,
                "[serve] the job queue is full (" + std::to_string(srv_.opt.max_queue) + " waiting); retry later",
                &req_);
            res.set(http::field::retry_after, "5");
            return send(std::move(res));
        } catch (const QueueClosed&) {
            return send(
                error_response(http::status::service_unavailable, "[serve] the server is shutting down", &req_));
        }
    }

    void job_status(const std::string& id) {
        json j;
        if (!srv_.jobs->describe(id, j)) return not_found("/v1/jobs/" + id);
        send(json_response(http::status::ok, j, &req_));
    }

    void job_cancel(const std::string& id) {
        json j;
        if (!srv_.jobs->cancel(id, j)) return not_found("/v1/jobs/" + id);
        send(json_response(http::status::ok, j, &req_));
    }

    void job_result(const std::string& id) {
        std::string file, format;
        JobStatus st;
        if (!srv_.jobs->result(id, file, format, st)) return not_found("/v1/jobs/" + id);
        if (st != JobStatus::Done)
            return send(error_response(http::status::conflict,
                                       std::string("[serve] job ") + id + " is " + to_string(st) +
                                           (st == JobStatus::Queued || st == JobStatus::Running
                                                ? "; poll GET /v1/jobs/" + id + " until it is done"
                                                : "; it has no result"),
                                       &req_));
        http::file_body::value_type body;
        beast::error_code ec;
        body.open(file.c_str(), beast::file_mode::scan, ec);
        if (ec)
            return send(error_response(http::status::gone, "[serve] the result of job " + id + " was removed", &req_));
        const uint64_t size = body.size();
        http::response<http::file_body> res{std::piecewise_construct, std::make_tuple(std::move(body)),
                                            std::make_tuple(http::status::ok, req_.version())};
        res.set(http::field::server, "wanrt");
        res.set(http::field::content_type, format == "mp4" ? "video/mp4" : "video/x-yuv4mpeg");
        res.set(http::field::content_disposition, "attachment; filename=\"" + id + "." + format + "\"");
        res.content_length(size);
        res.keep_alive(req_.keep_alive());
        send(std::move(res));
    }

    // Server-Sent Events: the job's JSON whenever it changes (polled every 100 ms on the event loop,
    // never blocking it), "event: <status>" at the end, then the connection closes.
    void job_events(const std::string& id) {
        json j;
        if (!srv_.jobs->describe(id, j)) return not_found("/v1/jobs/" + id);
        sse_id_ = id;
        sse_res_ = std::make_shared<http::response<http::empty_body>>(http::status::ok, req_.version());
        sse_res_->set(http::field::server, "wanrt");
        sse_res_->set(http::field::content_type, "text/event-stream");
        sse_res_->set(http::field::cache_control, "no-store");
        sse_res_->keep_alive(false);
        sse_sr_ = std::make_shared<http::response_serializer<http::empty_body>>(*sse_res_);
        timer_.emplace(stream_.get_executor());
        stream_.expires_after(timeout());
        http::async_write_header(stream_, *sse_sr_, [self = shared_from_this()](beast::error_code ec, size_t) {
            if (!ec) self->sse_tick();
        });
    }

    void sse_tick() {
        json j;
        std::string event = "progress";
        bool last = false;
        if (!srv_.jobs->describe(sse_id_, j)) {
            j = json{{"id", sse_id_}, {"status", "deleted"}};
            event = "deleted";
            last = true;
        } else {
            const std::string st = j.value("status", "");
            if (st == "done" || st == "failed" || st == "cancelled") {
                event = st;
                last = true;
            }
        }
        std::string dump = j.dump();
        const auto now = std::chrono::steady_clock::now();
        if (dump != sse_last_ || last) {
            sse_out_ = "event: " + event + "\ndata: " + dump + "\n\n";
            sse_last_ = std::move(dump);
            sse_beat_ = now;
        } else if (now - sse_beat_ > std::chrono::seconds(15)) {
            sse_out_ = ": keep-alive\n\n";  // lets proxies and clients see the connection is alive
            sse_beat_ = now;
        } else {
            sse_out_.clear();
        }
        auto next = [self = shared_from_this(), last](beast::error_code ec, size_t) {
            if (ec) return;
            if (last) return self->close();
            self->timer_->expires_after(std::chrono::milliseconds(100));
            self->timer_->async_wait([self](beast::error_code e) {
                if (!e) self->sse_tick();
            });
        };
        if (sse_out_.empty()) return next({}, 0);
        stream_.expires_after(timeout());
        net::async_write(stream_, net::buffer(sse_out_), std::move(next));
    }

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    Server::Impl& srv_;
    bool over_;
    std::optional<http::request_parser<http::string_body>> parser_;
    Request req_;
    // Server-Sent Events.
    std::string sse_id_, sse_last_, sse_out_;
    std::chrono::steady_clock::time_point sse_beat_ = std::chrono::steady_clock::now();
    std::shared_ptr<http::response<http::empty_body>> sse_res_;
    std::shared_ptr<http::response_serializer<http::empty_body>> sse_sr_;
    std::optional<net::steady_timer> timer_;
};

}  // namespace

void Server::Impl::accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket sock) {
        if (ec) {
            if (ec == net::error::operation_aborted) return;
        } else {
            // Small replies (JSON, SSE events, a stream's stats after its frames) must not wait for
            // Nagle's algorithm to meet the peer's delayed ACK (~40 ms each time).
            beast::error_code nd;
            sock.set_option(tcp::no_delay(true), nd);
            const bool over = connections.fetch_add(1) >= opt.max_connections;
            std::make_shared<HttpSession>(std::move(sock), *this, over)->run();
        }
        accept();
    });
}

namespace {

// One live stream's WebSocket on its own event loop (the stream's thread): reads and writes are
// asynchronous so the restyled frames of chunk k go out while the client's frames for chunk k+1 come
// in and while the model runs (StreamPipeline, stream_pipeline.h). Back-pressure: at most
// max_in_flight frames are read and not yet settled by a written answer; at the limit the link stops
// reading, so the client's sends wait in TCP (the page also caps its own frames in flight).
class StreamLink {
public:
    StreamLink(websocket::stream<tcp::socket>& ws, net::io_context& ioc, ServeModel& model, int codec_threads,
               int64_t max_in_flight)
        : ws_(ws),
          ioc_(ioc),
          guard_(net::make_work_guard(ioc)),
          max_in_flight_(max_in_flight),
          pipe_(model, codec_threads, [this](StreamOutput out) {
              // The emit thread: hand the output to the event loop, which alone touches the socket.
              net::post(ioc_, [this, o = std::make_shared<StreamOutput>(std::move(out))]() mutable {
                  queue(std::move(*o));
              });
          }) {}
    void start() { read(); }
    // Closes the pipeline (the chunk running finishes) and lets the event loop end.
    void shut() {
        if (closed_) return;
        closed_ = true;
        pipe_.close();
        beast::error_code ec;
        ws_.next_layer().shutdown(tcp::socket::shutdown_both, ec);
        ws_.next_layer().close(ec);  // aborts a pending read or write
        guard_.reset();
    }

private:
    struct Msg {
        bool text = false;
        std::vector<uint8_t> bytes;  // binary
        json message;                // text: serialised when its turn comes (send_ms, server_ms filled)
        std::string dumped;
        int64_t settles = 0;
        StreamClock::time_point last_in{};
    };

    void read() {
        if (reading_ || closed_ || in_flight_ >= max_in_flight_) return;
        reading_ = true;
        ws_.async_read(buf_, [this](beast::error_code ec, size_t) {
            reading_ = false;
            if (ec) return shut();
            const auto now = StreamClock::now();
            if (ws_.got_text()) {
                pipe_.push_text(beast::buffers_to_string(buf_.data()), now);
            } else {
                const auto* d = static_cast<const uint8_t*>(buf_.data().data());
                ++in_flight_;
                pipe_.push_frame(std::vector<uint8_t>(d, d + buf_.size()), now);
            }
            buf_.consume(buf_.size());
            read();
        });
    }

    void queue(StreamOutput out) {
        if (closed_) return;
        for (auto& f : out.frames) {
            Msg m;
            m.bytes = std::move(f);
            wq_.push_back(std::move(m));
        }
        Msg m;
        m.text = true;
        m.message = std::move(out.message);
        m.settles = out.frames_done;
        m.last_in = out.last_in;
        wq_.push_back(std::move(m));
        write();
    }

    void write() {
        if (writing_ || closed_ || wq_.empty()) return;
        Msg& m = wq_.front();
        const auto now = StreamClock::now();
        if (!m.text && !in_chunk_) {
            in_chunk_ = true;  // the first frame of a chunk's answer
            chunk_start_ = now;
        }
        if (m.text) {
            if (m.message.value("type", "") == "chunk") {
                const double send = in_chunk_ ? std::chrono::duration<double, std::milli>(now - chunk_start_).count() : 0;
                m.message["parts"]["send_ms"] = send;
                m.message["server_ms"] = std::chrono::duration<double, std::milli>(now - m.last_in).count();
                size_t bytes_out = 0;
                for (size_t b : sent_bytes_) bytes_out += b;
                m.message["bytes_out"] = bytes_out;
                m.message["in_flight"] = in_flight_;  // frames read and not yet answered (≤ the limit)
            }
            in_chunk_ = false;
            sent_bytes_.clear();
            m.dumped = m.message.dump();
        } else {
            sent_bytes_.push_back(m.bytes.size());
        }
        ws_.text(m.text);
        writing_ = true;
        auto done = [this](beast::error_code ec, size_t) {
            writing_ = false;
            if (ec) return shut();
            const Msg m = std::move(wq_.front());
            wq_.pop_front();
            in_flight_ -= m.settles;
            read();  // credit came back
            write();
        };
        if (m.text)
            ws_.async_write(net::buffer(m.dumped), std::move(done));
        else
            ws_.async_write(net::buffer(m.bytes), std::move(done));
    }

    websocket::stream<tcp::socket>& ws_;
    net::io_context& ioc_;
    net::executor_work_guard<net::io_context::executor_type> guard_;
    const int64_t max_in_flight_;
    beast::flat_buffer buf_;
    bool reading_ = false, writing_ = false, closed_ = false, in_chunk_ = false;
    int64_t in_flight_ = 0;
    std::deque<Msg> wq_;
    std::vector<size_t> sent_bytes_;
    StreamClock::time_point chunk_start_{};
    StreamPipeline pipe_;  // last: destroyed (joined) first, before what its emit callback uses
};

}  // namespace

// The live stream: config messages (text JSON) and frames (binary RGB/RGBA or JPEG) in; restyled
// frames (binary) and one stats message per chunk (text JSON) out, through StreamLink. Errors in a
// message are answered with {"type": "error", "error": ...} and the stream goes on; a broken
// connection ends it.
void Server::Impl::run_stream(tcp::socket sock, http::request<http::string_body> req) {
    std::lock_guard<std::mutex> lk(mu);
    if (stopped) {
        --streams;
        return;
    }
    stream_fds.push_back(sock.native_handle());
    stream_threads.emplace_back([this, s = std::move(sock), r = std::move(req)]() mutable {
        const int fd = s.native_handle();
        try {
            // The socket moves from the server's event loop to this stream's own.
            net::io_context ioc;
            const auto proto = s.local_endpoint().protocol();
            websocket::stream<tcp::socket> ws(tcp::socket(ioc, proto, s.release()));
            ws.read_message_max(opt.max_ws_message);
            ws.set_option(websocket::stream_base::decorator(
                [](websocket::response_type& res) { res.set(http::field::server, "wanrt"); }));
            ws.accept(r);
            StreamLink link(ws, ioc, model, opt.codec_threads, opt.max_stream_frames_in_flight);
            link.start();
            ioc.run();
            link.shut();
        } catch (const std::exception&) {
            // closed by the client, the server stopping, or a protocol error: the stream ends
        }
        --streams;
        std::lock_guard<std::mutex> lk2(mu);
        stream_fds.erase(std::remove(stream_fds.begin(), stream_fds.end(), fd), stream_fds.end());
    });
}

void Server::Impl::stop() {
    {
        std::lock_guard<std::mutex> lk(mu);
        if (stopped) return;
        stopped = true;
        for (int fd : stream_fds) ::shutdown(fd, SHUT_RDWR);  // unblocks the stream threads' reads
    }
    ioc.stop();
    for (auto& t : io_threads)
        if (t.joinable() && t.get_id() != std::this_thread::get_id()) t.join();
    jobs->stop();
    for (auto& t : stream_threads)
        if (t.joinable()) t.join();
}

Server::Server(const ServerOptions& opt, ServeModel& model) : impl_(std::make_unique<Impl>(opt, model)) {
    WANRT_CHECK(opt.port >= 0 && opt.port <= 65535, "serve", "--port ", opt.port, " must be in [0, 65535]");
    WANRT_CHECK(is_loopback_host(opt.host) || !opt.token.empty(), "serve", "--host ", opt.host,
                " is reachable from other machines: pass --token <secret> (clients send \"Authorization: Bearer "
                "<secret>\"), or bind 127.0.0.1");
    boost::system::error_code ec;
    const std::string host = opt.host == "localhost" ? "127.0.0.1" : opt.host;
    const net::ip::address addr = net::ip::make_address(host, ec);
    WANRT_CHECK(!ec, "serve", "--host ", opt.host, " is not an IP address; use e.g. 127.0.0.1 or 0.0.0.0");
    Impl& s = *impl_;
    const tcp::endpoint ep(addr, static_cast<unsigned short>(opt.port));
    s.acceptor.open(ep.protocol(), ec);
    if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) s.acceptor.bind(ep, ec);
    if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
    WANRT_CHECK(!ec, "serve", "cannot listen on ", opt.host, ":", opt.port, " (", ec.message(),
                "); choose another --port or stop what uses it");
    s.jobs = std::make_unique<JobQueue>(model, opt.max_queue, opt.keep_finished);
}

Server::~Server() {
    stop();
}

int Server::port() const {
    return impl_->acceptor.local_endpoint().port();
}

JobQueue& Server::jobs() {
    return *impl_->jobs;
}

void Server::start() {
    Impl& s = *impl_;
    s.accept();
    for (int i = 0; i < std::max(1, s.opt.io_threads); ++i) s.io_threads.emplace_back([&s] { s.ioc.run(); });
}

void Server::run() {
    Impl& s = *impl_;
    s.signals.add(SIGINT);
    s.signals.add(SIGTERM);
    s.signals.async_wait([&s](beast::error_code ec, int) {
        if (!ec) s.ioc.stop();
    });
    start();
    for (auto& t : s.io_threads) t.join();
    stop();
}

void Server::stop() {
    impl_->stop();
}

}  // namespace wanrt::serve
