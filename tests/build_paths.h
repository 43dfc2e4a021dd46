// Where the test executables find their files: the repo's fixtures and data folders, the shared
// fixtures beside the repo, and the wanrt binary of this build.
//
// Why not -D definitions on every test object: the paths are absolute, so each test object's
// command line would name the checkout and ccache could not reuse it in a fresh clone (CI builds a
// clean clone). Only build_paths.cpp carries them; it is the one test object a clone recompiles.
#pragma once

namespace wanrt::build_paths {
extern const char* const fixtures;         // tests/fixtures
extern const char* const shared_fixtures;  // ../shared/fixtures beside the repo
extern const char* const data;             // tests/data
extern const char* const binary;           // the wanrt CLI of this build ("" when not built)
}  // namespace wanrt::build_paths

#define WANRT_TEST_FIXTURES (::wanrt::build_paths::fixtures)
#define WANRT_SHARED_FIXTURES (::wanrt::build_paths::shared_fixtures)
#define WANRT_TEST_DATA (::wanrt::build_paths::data)
#define WANRT_BINARY (::wanrt::build_paths::binary)
