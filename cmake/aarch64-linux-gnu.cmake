# ARM64 cross build with Debian's cross toolchain (gcc-aarch64-linux-gnu, g++-aarch64-linux-gnu),
# the tests run under qemu-user. It keeps the CPU kernels' scalar fallbacks honest: the AVX2 paths
# are x86-only (#if defined(__AVX2__)), so this build compiles and runs the portable code.
#
#   cmake -S . -B build-arm64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#         -DWANRT_TOKENIZER=OFF -DWANRT_FFMPEG=OFF
#
# Libraries: the arm64 multiarch packages (libopenblas-dev:arm64, libgtest-dev:arm64; nlohmann-json is
# headers only) live beside the amd64 ones in /usr/lib/aarch64-linux-gnu. There is no arm64
# sentencepiece: installing libsentencepiece-dev:arm64 REMOVES the amd64 one (the package is not
# co-installable), so this build leaves the tokenizer out (WANRT_TOKENIZER=OFF). scripts/setup.sh
# installs the arm64 packages that do co-install.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Headers and libraries of the target: the cross toolchain's own tree, then the multiarch dirs.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
# pkg-config must not hand out the amd64 .pc files.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
# Test binaries (and gtest's discovery at build time) run through qemu-user with the arm64 multiarch
# runtime: the loader /lib/ld-linux-aarch64.so.1 and libc, libstdc++, OpenBLAS from
# /lib/aarch64-linux-gnu, all from the :arm64 packages. Never `-L /usr/aarch64-linux-gnu`: that
# prefix holds the cross toolchain's loader (libc6-arm64-cross, glibc 2.36-8) while the libraries
# outside it resolve to the multiarch libc (libc6:arm64, 2.36-9+deb12uN, security updates the cross
# package lacks); a loader and a libc of different builds disagree on ld.so's internal layout and
# the first pthread_create spins forever (every std::thread, OpenBLAS's thread start-up, wanrt's
# thread pool: all "hangs under qemu" of issue 21 were this). Linking against the cross glibc and
# running on the multiarch one is fine: same 2.36 ABI, the runtime is the newer build.
find_program(WANRT_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64 REQUIRED)
if(NOT EXISTS /lib/ld-linux-aarch64.so.1)
  message(FATAL_ERROR "no /lib/ld-linux-aarch64.so.1: install the arm64 multiarch runtime (scripts/setup.sh: libc6:arm64)")
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR ${WANRT_QEMU_AARCH64})
