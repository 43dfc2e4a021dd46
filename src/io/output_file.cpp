// Temporary output files: unique O_EXCL|O_NOFOLLOW names, checked writes, atomic rename, and a
// signal handler that removes whatever is unfinished.
#include "io/output_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "core/error.h"

namespace wanrt {

namespace fs = std::filesystem;

namespace {

// The guard's table: fixed storage so the handler never allocates. A slot is claimed (0 → 1),
// filled, then published (1 → 2); the handler unlinks published slots only.
constexpr int kSlots = 8192;  // a PNG sequence holds one temporary file per frame until commit
constexpr size_t kPathMax = 1024;  // longer paths are not registered (still removed on errors)
struct Slot {
    std::atomic<int> state{0};
    char path[kPathMax];
};
Slot g_slots[kSlots];
volatile sig_atomic_t g_stderr_tty = 0;

int register_path(const std::string& p) {
    if (p.size() >= kPathMax) return -1;
    for (int i = 0; i < kSlots; ++i) {
        int expect = 0;
        if (g_slots[i].state.compare_exchange_strong(expect, 1)) {
            std::memcpy(g_slots[i].path, p.c_str(), p.size() + 1);
            g_slots[i].state.store(2);
            return i;
        }
    }
    return -1;
}

void unregister_path(int slot) {
    if (slot >= 0) g_slots[slot].state.store(0);
}

void put_str(const char* s) {
    size_t n = 0;
    while (s[n]) ++n;
    while (n > 0) {
        const ssize_t w = ::write(2, s, n);
        if (w <= 0) return;
        s += w;
        n -= size_t(w);
    }
}

extern "C" void on_stop_signal(int sig) {
    int removed = 0;
    for (auto& s : g_slots)
        if (s.state.load() == 2 && ::unlink(s.path) == 0) ++removed;
    if (g_stderr_tty) put_str("\n");  // end a progress bar drawn in place
    put_str(sig == SIGINT    ? "wanrt: interrupted (SIGINT)"
            : sig == SIGTERM ? "wanrt: terminated (SIGTERM)"
            : sig == SIGHUP  ? "wanrt: hung up (SIGHUP)"
                             : "wanrt: output pipe closed (SIGPIPE)");
    put_str(removed ? "; the unfinished output file was removed, nothing was written\n"
                    : "; no output was written\n");
    ::_exit(128 + sig);
}

std::string random_suffix() {
    static std::atomic<uint64_t> counter{0};
    std::random_device rd;
    const uint64_t v = (uint64_t(rd()) << 32) ^ rd() ^ (uint64_t(::getpid()) << 16) ^ counter.fetch_add(1);
    static const char* kAlnum = "abcdefghijklmnopqrstuvwxyz0123456789";
    std::string s;
    uint64_t x = v;
    for (int i = 0; i < 10; ++i, x /= 36) s += kAlnum[x % 36];
    return s;
}

}  // namespace

TempOutput::TempOutput(const std::string& dst, const char* module) : dst_(dst), module_(module) {
    const fs::path p(dst);
    const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    const std::string name = p.filename().string();
    WANRT_CHECK(!name.empty(), module_, "cannot write ", dst, ": it names a folder; give a file name");
    for (int attempt = 0; attempt < 16 && fd_ < 0; ++attempt) {
        tmp_ = (dir / ("." + name + "." + random_suffix() + ".tmp")).string();
        fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd_ < 0 && errno != EEXIST) break;
    }
    if (fd_ < 0)
        fail(module_, "cannot write ", dst, ": creating a file in ", dir.string(), " failed (", std::strerror(errno),
             "); check that the folder exists and is writable");
    slot_ = register_path(tmp_);
}

TempOutput::~TempOutput() {
    if (!committed_) discard();
}

void TempOutput::discard() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
    unregister_path(slot_);
    slot_ = -1;
}

void TempOutput::io_fail(const char* what, int err) {
    discard();
    const char* why = err == ENOSPC ? "the disk is full"
                      : err == EFBIG ? "the file size limit was reached (ulimit -f)"
                      : err == EDQUOT ? "the disk quota is exceeded"
                                      : "an I/O error occurred";
    fail(module_, what, " ", dst_, " failed: ", why, " (", std::strerror(err), "); nothing was written: free space or ",
         "choose another folder");
}

void TempOutput::write(const void* data, size_t n) {
    WANRT_ASSERT(fd_ >= 0);
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
        const ssize_t w = ::write(fd_, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) io_fail("writing", w < 0 ? errno : ENOSPC);
        p += w;
        n -= size_t(w);
    }
}

std::FILE* TempOutput::open_stdio() {
    WANRT_ASSERT(fd_ >= 0);
    const int fd = ::dup(fd_);
    std::FILE* f = fd >= 0 ? ::fdopen(fd, "wb") : nullptr;
    if (!f) {
        if (fd >= 0) ::close(fd);
        io_fail("opening", errno);
    }
    return f;
}

void TempOutput::close() {
    if (fd_ < 0) return;
    // fsync: a full disk on file systems that allocate late (NFS, XFS delayed allocation) shows here.
    if (::fsync(fd_) != 0 && errno != EINVAL && errno != EROFS) io_fail("finishing", errno);
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0 && errno != EINTR) io_fail("finishing", errno);
}

void TempOutput::commit() {
    close();
    if (std::rename(tmp_.c_str(), dst_.c_str()) != 0) {
        const int err = errno;
        discard();
        fail(module_, "cannot move the finished file into place as ", dst_, ": ", std::strerror(err),
             "; check that this path is not a folder and is writable");
    }
    committed_ = true;
    unregister_path(slot_);
    slot_ = -1;
}

void write_file_atomic(const std::string& dst, const std::string& bytes, const char* module) {
    TempOutput t(dst, module);
    t.write(bytes.data(), bytes.size());
    t.commit();
}

void check_output_writable(const std::string& dst, const char* module, const char* flag) {
    const fs::path p(dst);
    std::error_code ec;
    WANRT_CHECK(!dst.empty(), module, flag, " is empty; give a file name such as out.mp4");
    WANRT_CHECK(!fs::is_directory(p, ec), module, flag, " ", dst, " is a folder; give a file name such as ",
                (p / "out.mp4").string());
    const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    WANRT_CHECK(fs::is_directory(dir, ec), module, "cannot write ", dst, ": folder ", dir.string(),
                " does not exist; create it or choose another ", flag);
    TempOutput probe(dst, module);  // removed again by its destructor
}

void install_output_signal_guard() {
    static std::atomic<bool> done{false};
    if (done.exchange(true)) return;
    g_stderr_tty = isatty(2);
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) sigaddset(&sa.sa_mask, sig);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) sigaction(sig, &sa, nullptr);
    signal(SIGXFSZ, SIG_IGN);
}

int registered_temp_outputs() {
    int n = 0;
    for (auto& s : g_slots) n += s.state.load() == 2;
    return n;
}

}  // namespace wanrt
