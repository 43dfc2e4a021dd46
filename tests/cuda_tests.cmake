# GPU tests: one gtest executable per tests/*_gpu.cpp, ctest label `gpu` (correctness, seconds);
# *_perf_gpu.cpp get `gpu_perf` instead (full-size timings: minutes, writes an 11.4 GB T5 to /tmp).
# Included by tests/CMakeLists.txt when WANRT_CUDA is on; CI builds them but has no GPU to run them.
include_guard(GLOBAL)
find_package(GTest REQUIRED)
include(GoogleTest)
# Fixtures as for the CPU tests (tests/test_util.h); on the GPU machine scripts/device_gpu.sh sets
# WANRT_FIXTURES, since these source paths do not exist there.
file(GLOB WANRT_GPU_TEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*_gpu.cpp)
foreach(src IN LISTS WANRT_GPU_TEST_SOURCES)
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_LIST_DIR})
  # The fixture and binary paths: wanrt_build_paths (tests/CMakeLists.txt, build_paths.h).
  target_link_libraries(${name} PRIVATE wanrt_whole wanrt_build_paths GTest::gtest GTest::gtest_main)
  # Listed when ctest runs, not at build time: the build machine may have no GPU.
  set(label gpu)
  if(name MATCHES "_perf_gpu$")
    set(label gpu_perf)
  endif()
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60 PROPERTIES LABELS ${label})
endforeach()
