// The absolute paths of tests/build_paths.h, given by CMake (tests/CMakeLists.txt) to this object only.
#include "build_paths.h"

namespace wanrt::build_paths {
const char* const fixtures = WANRT_PATH_FIXTURES;
const char* const shared_fixtures = WANRT_PATH_SHARED_FIXTURES;
const char* const data = WANRT_PATH_DATA;
const char* const binary = WANRT_PATH_BINARY;
}  // namespace wanrt::build_paths
