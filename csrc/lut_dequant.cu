// Dequantize a LUT weight to a dense (N, K) fp16/bf16 matrix, in_scale folded in: the large-M
// path feeds it to cuBLAS, where the GEMM's O(M*N*K) work dwarfs one pass over the weight.
// Same mapping as the GEMV (warp = row, lane = 128-code unit) and the same lane-private LUTs.
#include "dispatch.cuh"
#include "lut_device.cuh"

namespace quantdllm {
namespace {

constexpr int kWarps = 8;

template <typename T, int BITS, LutKind KIND>
__global__ void __launch_bounds__(kWarps * 32) lut_dequant_kernel(const DequantArgs a) {
    extern __shared__ __align__(16) unsigned char smem[];
    constexpr int E = 1 << BITS;
    const LutWeight& w = a.w;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int n = blockIdx.x * kWarps + warp;
    const int u = blockIdx.y * 32 + lane;
    const dev::LaneLuts L = dev::lane_luts<BITS>(dev::smem_u32(smem), warp, lane, w.group_size);
    if (n >= w.N || u * dev::kUnit >= w.K) return;
    const dev::LutFields p = dev::bucket_fields(w);
    uint32_t cw[4 * BITS];
    dev::load_unit<BITS>(w.codes + static_cast<int64_t>(n) * (w.K / 32 * BITS), u, cw);
    dev::build_unit_luts<BITS, KIND>(w, p, L, n, u);
    T* out = static_cast<T*>(a.out) + static_cast<int64_t>(n) * w.K + u * dev::kUnit;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const uint32_t lb = L.lane_base + (j >> L.lut_shift) * (E * 128);
#pragma unroll
        for (int i = 0; i < 32; i += 8) {
            alignas(16) T vals[8];
#pragma unroll
            for (int ii = 0; ii < 8; ++ii) {
                float v = dev::lookup<BITS>(cw + j * BITS, i + ii, lb);
                if (w.in_scale) v *= dev::ldf(w.in_scale, u * dev::kUnit + j * 32 + i + ii, w.in_scale_dtype);
                vals[ii] = dev::from_f<T>(v);
            }
            *reinterpret_cast<uint4*>(out + j * 32 + i) = *reinterpret_cast<const uint4*>(vals);
        }
    }
}

}  // namespace

cudaError_t launch_lut_dequant(const DequantArgs& a, cudaStream_t stream) {
    if (check_weight(a.w) || !a.out) return cudaErrorInvalidValue;
    const int units = a.w.K / dev::kUnit;
    const dim3 grid((a.w.N + kWarps - 1) / kWarps, (units + 31) / 32);
    const int luts = a.w.group_size >= dev::kUnit ? 1 : dev::kUnit / a.w.group_size;
    const size_t smem = static_cast<size_t>(kWarps + 1) * luts * (1 << a.w.bits) * 128;
    cudaError_t err = cudaSuccess;
    const bool ok = dispatch_weight(a.out_dtype, a.w.bits, a.w.kind, [&](auto t, auto b, auto k) {
        auto kernel = lut_dequant_kernel<typename decltype(t)::type, decltype(b)::value, decltype(k)::value>;
        err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
        if (err == cudaSuccess) {
            kernel<<<grid, kWarps * 32, smem, stream>>>(a);
            err = cudaGetLastError();
        }
    });
    return ok ? err : cudaErrorInvalidValue;
}

}  // namespace quantdllm
