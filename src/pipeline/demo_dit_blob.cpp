// The trained demo DiT's safetensors bytes, embedded at build time (CMakeLists.txt defines
// WANRT_DEMO_DIT_PATH when assets/demo/dit.safetensors exists). The assembler's .incbin copies the
// file into read-only data: no generated source, no size limit of a C array initialiser, and the
// object is rebuilt when the file changes (OBJECT_DEPENDS).
#include "pipeline/demo.h"

#ifdef WANRT_DEMO_DIT_PATH
#if defined(__APPLE__)
#define WANRT_DEMO_SYM(x) "_" #x
#define WANRT_DEMO_SECTION ".const_data"
#else
#define WANRT_DEMO_SYM(x) #x
#define WANRT_DEMO_SECTION ".section .rodata"
#endif
__asm__(WANRT_DEMO_SECTION "\n"
        ".balign 64\n"
        ".globl " WANRT_DEMO_SYM(wanrt_demo_dit_begin) "\n" WANRT_DEMO_SYM(wanrt_demo_dit_begin) ":\n"
        ".incbin \"" WANRT_DEMO_DIT_PATH "\"\n"
        ".globl " WANRT_DEMO_SYM(wanrt_demo_dit_end) "\n" WANRT_DEMO_SYM(wanrt_demo_dit_end) ":\n"
        ".text\n");
extern "C" const unsigned char wanrt_demo_dit_begin[], wanrt_demo_dit_end[];
#endif

namespace wanrt {

std::pair<const void*, size_t> demo_dit_blob() {
#ifdef WANRT_DEMO_DIT_PATH
    return {wanrt_demo_dit_begin, size_t(wanrt_demo_dit_end - wanrt_demo_dit_begin)};
#else
    return {nullptr, 0};
#endif
}

}  // namespace wanrt
