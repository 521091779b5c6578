// cpu.cpp — CPU feature detection (CPUID + XCR0 + AMX permission) and the dispatch table, filled once.
// Baseline code: no target pragma here.
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "isa_internal.h"

namespace {

// Linux ABI numbers (asm/prctl.h); spelled out because older headers lack them.
const int kArchGetXcompPerm = 0x1022;
const int kArchReqXcompPerm = 0x1023;
const int kXfeatureXtiledata = 18;

uint64_t read_xcr0() {
    uint32_t eax = 0, edx = 0;
    // xgetbv with ecx = 0; encoded as bytes so that no -mxsave is needed in this baseline unit.
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<uint64_t>(edx) << 32) | eax;
}

bool request_amx_permission() {
    long rc = syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata);
    if (rc != 0) return false;  // refused (old kernel, seccomp, ...): fall back cleanly
    unsigned long mask = 0;
    if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &mask) != 0) return false;
    return (mask & (1ul << kXfeatureXtiledata)) != 0;
}

uint32_t detect_features() {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const bool fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return 0;
    const uint64_t xcr0 = read_xcr0();
    const bool os_ymm = (xcr0 & 0x6) == 0x6;
    const bool os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0;     // opmask, ZMM_Hi256, Hi16_ZMM
    const bool os_tile = (xcr0 & 0x60000) == 0x60000;        // XTILECFG, XTILEDATA
    unsigned max_leaf = __get_cpuid_max(0, nullptr);
    if (max_leaf < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    const bool avx2 = (b >> 5) & 1;
    const bool f512 = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    const bool amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1;
    const unsigned max_sub = a;
    bool avx512bf16 = false;
    if (max_sub >= 1) {
        unsigned a1, b1, c1, d1;
        __cpuid_count(7, 1, a1, b1, c1, d1);
        avx512bf16 = (a1 >> 5) & 1;
    }
    uint32_t f = 0;
    if (os_ymm && avx2 && fma && f16c) f |= TDXL_ISA_FEAT_AVX2;
    if ((f & TDXL_ISA_FEAT_AVX2) && os_zmm && f512 && dq && bw && vl) f |= TDXL_ISA_FEAT_AVX512;
    if ((f & TDXL_ISA_FEAT_AVX512) && avx512bf16) f |= TDXL_ISA_FEAT_AVX512BF16;
    if ((f & TDXL_ISA_FEAT_AVX512BF16) && amx_tile && amx_bf16 && os_tile && request_amx_permission())
        f |= TDXL_ISA_FEAT_AMX;
    return f;
}

int level_from_name(const char *s) {
    if (!strcmp(s, "ref")) return TDXL_ISA_REF;
    if (!strcmp(s, "avx2")) return TDXL_ISA_AVX2;
    if (!strcmp(s, "avx512")) return TDXL_ISA_AVX512;
    if (!strcmp(s, "avx512bf16")) return TDXL_ISA_AVX512BF16;
    if (!strcmp(s, "amx")) return TDXL_ISA_AMX;
    return -1;
}

struct dispatch {
    uint32_t features = 0;
    int best = TDXL_ISA_REF;
    const tdxl_isa_ops *ops[6] = {};
};

const dispatch &get_dispatch() {
    static dispatch d;
    static std::once_flag once;
    std::call_once(once, [] {
        d.features = detect_features();
        int best = TDXL_ISA_REF;
        if (d.features & TDXL_ISA_FEAT_AVX2) best = TDXL_ISA_AVX2;
        if (d.features & TDXL_ISA_FEAT_AVX512) best = TDXL_ISA_AVX512;
        if (d.features & TDXL_ISA_FEAT_AVX512BF16) best = TDXL_ISA_AVX512BF16;
        if (d.features & TDXL_ISA_FEAT_AMX) best = TDXL_ISA_AMX;
        // The cap: an unknown value caps to "ref" (fail safe: the slowest path runs, never a wrong one).
        if (const char *cap = getenv("TDXL_MAX_ISA"); cap != nullptr && *cap != 0) {
            int c = level_from_name(cap);
            if (c < 0) c = TDXL_ISA_REF;
            if (c < best) best = c;
        }
        d.best = best;
        // A level's getter is compiled for that level's ISA (its table may be built with, say, zmm moves),
        // so it is called only when the CPU has the level; unsupported levels stay NULL.
        d.ops[TDXL_ISA_REF] = tdxl_isa_ops_ref();
        d.ops[TDXL_ISA_AMX_EMU] = tdxl_isa_ops_amx_emu();
        if (d.features & TDXL_ISA_FEAT_AVX2) d.ops[TDXL_ISA_AVX2] = tdxl_isa_ops_avx2();
        if (d.features & TDXL_ISA_FEAT_AVX512) d.ops[TDXL_ISA_AVX512] = tdxl_isa_ops_avx512();
        if (d.features & TDXL_ISA_FEAT_AVX512BF16) d.ops[TDXL_ISA_AVX512BF16] = tdxl_isa_ops_avx512bf16();
        if (d.features & TDXL_ISA_FEAT_AMX) d.ops[TDXL_ISA_AMX] = tdxl_isa_ops_amx();
    });
    return d;
}

}  // namespace

extern "C" {

uint32_t tdxl_isa_features(void) { return get_dispatch().features; }

int tdxl_isa_best(void) { return get_dispatch().best; }

int tdxl_isa_supported(int level) {
    const uint32_t f = get_dispatch().features;
    switch (level) {
        case TDXL_ISA_REF: return 1;
        case TDXL_ISA_AVX2: return (f & TDXL_ISA_FEAT_AVX2) != 0;
        case TDXL_ISA_AVX512: return (f & TDXL_ISA_FEAT_AVX512) != 0;
        case TDXL_ISA_AVX512BF16: return (f & TDXL_ISA_FEAT_AVX512BF16) != 0;
        case TDXL_ISA_AMX: return (f & TDXL_ISA_FEAT_AMX) != 0;
        case TDXL_ISA_AMX_EMU: return 1;
        default: return 0;
    }
}

const char *tdxl_isa_level_name(int level) {
    switch (level) {
        case TDXL_ISA_REF: return "ref";
        case TDXL_ISA_AVX2: return "avx2";
        case TDXL_ISA_AVX512: return "avx512";
        case TDXL_ISA_AVX512BF16: return "avx512bf16";
        case TDXL_ISA_AMX: return "amx";
        case TDXL_ISA_AMX_EMU: return "amx-emu";
        default: return "unknown";
    }
}

const char *tdxl_isa_status_string(int status) {
    switch (status) {
        case TDXL_ISA_OK: return "ok";
        case TDXL_ISA_EINVAL: return "invalid argument";
        case TDXL_ISA_ENOMEM: return "out of memory";
        case TDXL_ISA_EUNSUPPORTED: return "ISA level not supported on this CPU";
        case TDXL_ISA_EMISMATCH: return "packed weight does not match the operation";
        default: return "unknown status";
    }
}

const tdxl_isa_ops *tdxl_isa_ops_for(int level) {
    if (level < 0 || level > TDXL_ISA_AMX_EMU) return nullptr;
    return get_dispatch().ops[level];
}

const tdxl_isa_ops *tdxl_isa_ops_with(int level, int (*has)(const tdxl_isa_ops *ops)) {
    for (int l = level; l >= 0; l--) {
        const tdxl_isa_ops *ops = tdxl_isa_ops_for(l);
        if (ops != nullptr && has(ops)) return ops;
        if (l == TDXL_ISA_AMX_EMU) l = TDXL_ISA_REF + 1;
    }
    return nullptr;
}

}  // extern "C"
