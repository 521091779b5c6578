// gemm_amx_emu.cpp — the AMX kernel of gemm_amx_body.h on an emulation of the tile instructions in plain
// C++ (TDXL_AMX_EMULATE), baseline code: tests run the AMX packing and tiling on any x86-64. Never chosen
// automatically; contexts ask for TDXL_ISA_AMX_EMU explicitly. Falls back to the ref level for the rest.
#include <cstring>

#include "isa_internal.h"

#define TDXL_AMX_EMULATE 1
#include "gemm_amx_body.h"

namespace {

void pack_a_scalar(const float *const *rows, int64_t nrows, int64_t kc, int64_t kcp, uint16_t *dst, int64_t ldd) {
    for (int64_t r = 0; r < nrows; r++) {
        for (int64_t k = 0; k < kc; k++) dst[r * ldd + k] = tdxl_f32_to_bf16(rows[r][k]);
        for (int64_t k = kc; k < kcp; k++) dst[r * ldd + k] = 0;
    }
}

}  // namespace

extern "C" const tdxl_isa_ops *tdxl_isa_ops_amx_emu(void) {
    static tdxl_gemm_kernel kern;
    static tdxl_isa_ops ops;
    static const bool init = [] {
        const tdxl_isa_ops *ref = tdxl_isa_ops_ref();
        kern = {TDXL_ISA_AMX_EMU, "amx-bf16-emulated", TDXL_BFMT_BF16_VNNI, 1, kAmxMR, kAmxNR, kAmxKC, 32,
                amx_ukr, pack_a_scalar, ref->gemm_f32->epilogue, ref->gemm_f32->epilogue_geglu,
                amx_finish};
        ops.level = TDXL_ISA_AMX_EMU;
        ops.gemm_bf16 = &kern;
        ops.gemm_f32 = nullptr;
        return true;
    }();
    (void)init;
    return &ops;
}
