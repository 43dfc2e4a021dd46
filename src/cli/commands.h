// Command registration for the `wanrt` executable. Each command or benchmark lives in its own
// file and registers itself with a static object:
//   static wanrt::cli::Command reg("synth", setup_synth);          // wanrt synth ...
//   static wanrt::cli::Bench reg("dit", setup_bench_dit);          // wanrt bench dit ...
// setup receives the parent CLI11 app, adds its subcommand with options and a callback.
// Callbacks throw wanrt::Error for bad input; main turns that into one line on stderr and exit 1.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace wanrt::cli {

using SetupFn = std::function<void(CLI::App& parent)>;

struct Entry {
    std::string name;
    SetupFn setup;
};
std::vector<Entry>& commands();
std::vector<Entry>& benches();

struct Command {
    Command(std::string name, SetupFn fn) { commands().push_back({std::move(name), std::move(fn)}); }
};
struct Bench {
    Bench(std::string name, SetupFn fn) { benches().push_back({std::move(name), std::move(fn)}); }
};

}  // namespace wanrt::cli
