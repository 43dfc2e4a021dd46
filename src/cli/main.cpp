// wanrt: a native runtime for Wan2.1 video diffusion models.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "io/output_file.h"

namespace wanrt::cli {
std::vector<Entry>& commands() {
    static std::vector<Entry> v;
    return v;
}
std::vector<Entry>& benches() {
    static std::vector<Entry> v;
    return v;
}
}  // namespace wanrt::cli

int main(int argc, char** argv) {
    using namespace wanrt::cli;
    CLI::App app{"wanrt: native runtime for Wan2.1 video diffusion models"};
    app.require_subcommand(1);
    auto by_name = [](const Entry& a, const Entry& b) { return a.name < b.name; };
    std::sort(commands().begin(), commands().end(), by_name);
    std::sort(benches().begin(), benches().end(), by_name);
    for (auto& c : commands()) c.setup(app);
    CLI::App* bench = app.add_subcommand("bench", "Benchmarks: median of repeats after warm-up, table + JSON");
    bench->require_subcommand(1);
    for (auto& b : benches()) b.setup(*bench);
    // Ctrl-C / SIGTERM: remove unfinished output files, one line, exit 130 / 143 (io/output_file.h).
    wanrt::install_output_signal_guard();
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
        // One line and exit 1 like every other bad input (CLI11 would print two lines and exit 104-109).
        std::string msg = e.what();
        for (char& ch : msg)
            if (ch == '\n') ch = ' ';
        std::fprintf(stderr, "wanrt: [cli] %s; run 'wanrt --help' or 'wanrt <command> --help' for the flags\n",
                     msg.c_str());
        return 1;
    } catch (const wanrt::Error& e) {
        std::fprintf(stderr, "wanrt: %s\n", e.what());
        return 1;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "wanrt: out of memory; use a smaller size, fewer frames, or bf16 weights\n");
        return 1;
    } catch (const std::filesystem::filesystem_error& e) {
        // A path the file system refuses (longer than NAME_MAX, a loop of links) reached a check that
        // does not name it: one line and exit 1 all the same, never an abort.
        std::string p = e.path1().string();
        if (p.size() > 120) p = p.substr(0, 120) + "...";
        for (char& ch : p)
            if (ch == '\n' || ch == '\r') ch = ' ';
        std::fprintf(stderr, "wanrt: [file] %s: %s; check the path\n", p.c_str(), e.code().message().c_str());
        return 1;
    }
    return 0;
}
