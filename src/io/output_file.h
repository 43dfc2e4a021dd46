// Output files that are either complete or absent.
//
// TempOutput creates "<folder of dst>/.<name of dst>.<random>.tmp" with O_CREAT|O_EXCL|O_NOFOLLOW
// (a unique name, never an existing file or a symlink someone placed there), writes it with every
// error checked (a full disk or a file-size limit is one error saying nothing was written), and
// commit() renames it onto dst atomically (same folder, so same file system). Until then dst is
// untouched; the destructor removes the temporary file.
//
// The signal guard (install_output_signal_guard, called once by the CLI's main): SIGINT, SIGTERM,
// SIGHUP (a closed terminal) and SIGPIPE (e.g. `wanrt stream … | head`) remove every temporary file
// still registered, print one line and exit 128 + the signal (130, 143, 129, 141); SIGXFSZ is
// ignored so a file-size limit surfaces as a write error instead of a core dump. The handler only
// calls async-signal-safe functions (unlink, write, _exit) on a fixed table of paths.
//
// Errors: wanrt::Error "[output] what, where, what to do".
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

namespace wanrt {

class TempOutput {
public:
    // Creates the temporary file for dst (module names the caller in error messages).
    explicit TempOutput(const std::string& dst, const char* module = "output");
    ~TempOutput();
    TempOutput(const TempOutput&) = delete;
    TempOutput& operator=(const TempOutput&) = delete;

    const std::string& path() const { return tmp_; }  // the temporary file (for libraries that open by name)
    const std::string& destination() const { return dst_; }
    int fd() const { return fd_; }

    // A buffered stream over a duplicate of the file descriptor, for writers that seek or write many
    // small pieces; the caller fcloses it (checking the result) before commit().
    std::FILE* open_stdio();
    // The error for a failed write through such a stream (errno of the failing call): removes the
    // temporary file and throws the same message as write().
    [[noreturn]] void write_failed(int err) { io_fail("writing", err); }

    // Appends bytes; on failure (disk full, size limit, I/O error) throws and the file is removed.
    void write(const void* data, size_t n);
    // Flushes (fsync) and closes; errors as write().
    void close();
    // close() if still open, then renames onto the destination.
    void commit();
    // Removes the temporary file now (also done by the destructor unless committed).
    void discard();

private:
    [[noreturn]] void io_fail(const char* what, int err);
    std::string dst_, tmp_;
    const char* module_;
    int fd_ = -1;
    int slot_ = -1;  // in the signal guard's table
    bool committed_ = false;
};

// Writes a whole small file (JSON, a config) through a TempOutput: complete or absent.
void write_file_atomic(const std::string& dst, const std::string& bytes, const char* module);

// Fails unless dst can be written: not a folder, its folder exists and accepts a new file (probed
// by creating and removing a TempOutput, so nothing else is ever created). `flag` names the option
// in the message (e.g. "--save_file").
void check_output_writable(const std::string& dst, const char* module, const char* flag);

// SIGINT → exit 130, SIGTERM → 143, SIGHUP → 129, SIGPIPE → 141, each with one line on stderr and
// the registered temporary files removed; SIGXFSZ ignored. Idempotent.
void install_output_signal_guard();

// How many temporary files are registered now (for tests).
int registered_temp_outputs();

}  // namespace wanrt
