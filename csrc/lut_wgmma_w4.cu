// lut_wgmma's 4-bit kernels (csrc/lut_wgmma_kernel.cuh), a translation unit of their own: the build
// compiles the code widths in parallel.
#include "lut_wgmma_kernel.cuh"

namespace quantdllm {
QUANTDLLM_WGMMA_WIDTH(4)
}  // namespace quantdllm
