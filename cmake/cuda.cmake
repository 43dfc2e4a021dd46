# The CUDA backend (src/cuda/), included by the top-level CMakeLists when WANRT_CUDA is on.
#
# What the binary needs at run time: libcudart, libcublasLt (CUDA 13) and libcudnn (9.x) on the
# loader path, and a driver for CUDA 13. Kernels are built as sm_90 machine code plus sm_80/sm_89
# PTX, so Ampere and Ada cards JIT-compile them on first use.
if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
endif()
if(NOT CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 90-real 80-virtual 89-virtual)
endif()
enable_language(CUDA)
if(CCACHE)
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${WANRT_CCACHE})
endif()
find_package(CUDAToolkit REQUIRED)

# cuDNN: inside the toolkit here, in the system lib dir on the GPU machine.
find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/include
          /usr/include/x86_64-linux-gnu REQUIRED)
find_library(CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/lib/x86_64-linux-gnu REQUIRED)
message(STATUS "wanrt CUDA: nvcc ${CMAKE_CUDA_COMPILER_VERSION}, archs ${CMAKE_CUDA_ARCHITECTURES}, "
               "cuDNN ${CUDNN_LIBRARY}")

# The top-level compile options (-Wall, -march, sanitizers) are for the host compiler only: nvcc
# rejects them, so restrict them to C++ sources in the directory and in wanrt_lib, which already
# copied them when it was created.
function(wanrt_cxx_only_options out)
  set(result "")
  foreach(opt IN LISTS ARGN)
    list(APPEND result "$<$<COMPILE_LANGUAGE:CXX>:${opt}>")
  endforeach()
  set(${out} "${result}" PARENT_SCOPE)
endfunction()
get_directory_property(_wanrt_dir_opts COMPILE_OPTIONS)
wanrt_cxx_only_options(_wanrt_dir_opts ${_wanrt_dir_opts})
set_directory_properties(PROPERTIES COMPILE_OPTIONS "${_wanrt_dir_opts}")
get_target_property(_wanrt_lib_opts wanrt_lib COMPILE_OPTIONS)
if(_wanrt_lib_opts)
  wanrt_cxx_only_options(_wanrt_lib_opts ${_wanrt_lib_opts})
  set_target_properties(wanrt_lib PROPERTIES COMPILE_OPTIONS "${_wanrt_lib_opts}")
endif()

file(GLOB WANRT_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/*.cu
     ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/*.cpp)
target_sources(wanrt_lib PRIVATE ${WANRT_CUDA_SOURCES})
# wanrt_lib exists before this file runs, so the architecture list is set on it directly; the
# kernels need C++17 only (CMake 3.25 has no CUDA20 flags for nvcc).
set_target_properties(wanrt_lib PROPERTIES CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}"
                      CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON CUDA_EXTENSIONS OFF
                      CUDA_RUNTIME_LIBRARY Shared)
target_include_directories(wanrt_lib PRIVATE ${CUDNN_INCLUDE_DIR})
target_compile_definitions(wanrt_lib PUBLIC WANRT_HAVE_CUDA)
target_compile_options(wanrt_lib PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -lineinfo -Xcompiler=-Wall>)
target_link_libraries(wanrt_lib PUBLIC CUDA::cudart CUDA::cublasLt ${CUDNN_LIBRARY} CUDA::nvtx3)

# GPU tests (tests/*_gpu.cpp, label `gpu`) are added by tests/cuda_tests.cmake, which
# tests/CMakeLists.txt includes when WANRT_CUDA is on.
