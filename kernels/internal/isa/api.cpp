// api.cpp — the function table of api.h.
#include "api.h"

extern "C" const tdxl_isa_api *tdxl_isa_get_api(void) {
  static const tdxl_isa_api api = {
      tdxl_isa_status_string,   tdxl_isa_best,          tdxl_isa_supported,
      tdxl_isa_level_name,      tdxl_isa_ctx_new,       tdxl_isa_ctx_free,
      tdxl_isa_ctx_level,       tdxl_isa_weight_pack_linear, tdxl_isa_weight_pack_conv,
      tdxl_isa_weight_pack_geglu, tdxl_isa_weight_free, tdxl_isa_weight_level,
      tdxl_isa_weight_bytes,    tdxl_isa_linear,        tdxl_isa_conv2d,
      tdxl_isa_attention,       tdxl_isa_group_norm,    tdxl_isa_layer_norm,
      tdxl_isa_peak,            tdxl_isa_ctx_run,
  };
  return &api;
}
