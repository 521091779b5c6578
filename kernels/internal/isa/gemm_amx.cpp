// gemm_amx.cpp — the AMX-bf16 level on real tiles (see gemm_amx_body.h for the kernel and tile map).
// A is rounded to bf16 with AVX512-BF16 (every AMX CPU has it); the epilogue, attention and GroupNorm are
// the avx512 level's. Selected only when CPUID, XCR0 and arch_prctl(XTILEDATA) all agree.
#include <cstring>

#include <immintrin.h>

#include "isa_internal.h"

#pragma GCC target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,avx2,f16c")

#include "gemm_amx_body.h"

extern "C" const tdxl_isa_ops *tdxl_isa_ops_amx(void) {
    static tdxl_gemm_kernel kern;
    static tdxl_isa_ops ops;
    static const bool init = [] {
        const tdxl_isa_ops *bf = tdxl_isa_ops_avx512bf16();
        kern = {TDXL_ISA_AMX, "amx-bf16", TDXL_BFMT_BF16_VNNI, 1, kAmxMR, kAmxNR, kAmxKC, 32,
                amx_ukr, bf->gemm_bf16->pack_a, bf->gemm_bf16->epilogue, bf->gemm_bf16->epilogue_geglu,
                amx_finish};
        ops = *bf;
        ops.level = TDXL_ISA_AMX;
        ops.gemm_bf16 = &kern;
        ops.gemm_f32 = nullptr;
        return true;
    }();
    (void)init;
    return &ops;
}
