// Dequantize a LUT weight to a dense (N, K) fp16/bf16 matrix, in_scale folded in: the large-M
// path feeds it to cuBLAS, where the GEMM's O(M*N*K) work dwarfs one pass over the weight.
// Same mapping as the GEMV (warp = row, lane = 128-code unit) and the same lane-private LUTs; each
// lane stages its 256 output bytes in shared memory so the warp stores them coalesced (v1 stored
// 16-byte pieces 256 bytes apart per lane and ran at 23% of DRAM bandwidth).
// Also the cuBLAS path's timestep-bias epilogue.

#include "dispatch.cuh"
#include "lut_device.cuh"

namespace quantdllm {
namespace {

constexpr int kWarps = 8;

constexpr int kStageStride = dev::kUnit * 2 + 16;  // bytes per lane's unit in the staging area (+16: no conflicts)
constexpr int kStageWarp = 32 * kStageStride;

template <typename T, int BITS, LutKind KIND>
__global__ void __launch_bounds__(kWarps * 32) lut_dequant_kernel(const DequantArgs a) {
    extern __shared__ __align__(16) unsigned char smem[];
    constexpr int E = 1 << BITS;
    const LutWeight& w = a.w;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int n = blockIdx.x * kWarps + warp;
    const int u0 = blockIdx.y * 32, units = w.K / dev::kUnit;
    const int u = u0 + lane;
    unsigned char* stage = smem + warp * kStageWarp;
    const dev::LaneLuts L = dev::lane_luts<BITS>(dev::smem_u32(smem + kWarps * kStageWarp), warp, lane, w.group_size);
    if (n >= w.N) return;  // whole warp
    if (u < units) {
        const dev::LutFields p = dev::bucket_fields(w);
        uint32_t cw[4 * BITS];
        dev::load_unit<BITS>(w.codes + static_cast<int64_t>(n) * (w.K / 32 * BITS), u, cw);
        dev::build_unit_luts<BITS, KIND>(w, p, L.lane_base, L.luts, n, u);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const uint32_t lb = L.lane_base + (j >> L.lut_shift) * (E * 128);
#pragma unroll
            for (int i = 0; i < 32; i += 8) {
                float v[8];
#pragma unroll
                for (int ii = 0; ii < 8; ++ii) v[ii] = dev::lookup<BITS>(cw + j * BITS, i + ii, lb);
                if (w.in_scale) {
#pragma unroll
                    for (int ii = 0; ii < 8; ++ii)
                        v[ii] *= dev::ldf(w.in_scale, u * dev::kUnit + j * 32 + i + ii, w.in_scale_dtype);
                }
                *reinterpret_cast<uint4*>(stage + lane * kStageStride + (j * 32 + i) * 2) =
                    make_uint4(dev::pack2<T>(v[0], v[1]), dev::pack2<T>(v[2], v[3]), dev::pack2<T>(v[4], v[5]), dev::pack2<T>(v[6], v[7]));
            }
        }
    }
    __syncwarp();
    // coalesced copy-out: the warp writes its units' 256-byte rows as consecutive 16-byte pieces
    const int span = min(32, units - u0) * dev::kUnit * 2;
    unsigned char* out = reinterpret_cast<unsigned char*>(static_cast<T*>(a.out) + static_cast<int64_t>(n) * w.K +
                                                          static_cast<int64_t>(u0) * dev::kUnit);
    for (int o = lane * 16; o < span; o += 512)
        *reinterpret_cast<uint4*>(out + o) =
            *reinterpret_cast<const uint4*>(stage + (o >> 8) * kStageStride + (o & 255));
}

// y[m, :] += ts_bias[bucket(t[m]), :]. 16-byte pieces of y when rows allow (N % 8 == 0, y aligned):
// the scalar form ran at a fraction of DRAM bandwidth and cost +9% at M = 256 (H200).
template <typename T>
__global__ void ts_bias_add_kernel(const TsBiasArgs a, const bool vec) {
    const int m = blockIdx.y;
    const int b = dev::bucket_of(a.t[a.t_numel == 1 ? 0 : m], a.bounds, a.nbounds);
    T* y = static_cast<T*>(a.y) + static_cast<int64_t>(m) * a.N;
    const int64_t tb = static_cast<int64_t>(b) * a.N;
    const int step = gridDim.x * blockDim.x;
    if (vec) {
        for (int n = (blockIdx.x * blockDim.x + threadIdx.x) * 8; n < a.N; n += step * 8) {
            uint4 v = *reinterpret_cast<const uint4*>(y + n);
            T* e = reinterpret_cast<T*>(&v);
#pragma unroll
            for (int i = 0; i < 8; ++i) e[i] = dev::from_f<T>(dev::to_f<T>(e[i]) + dev::ldf(a.ts_bias, tb + n + i, a.ts_bias_dtype));
            *reinterpret_cast<uint4*>(y + n) = v;
        }
        return;
    }
    for (int n = blockIdx.x * blockDim.x + threadIdx.x; n < a.N; n += step)
        y[n] = dev::from_f<T>(dev::to_f<T>(y[n]) + dev::ldf(a.ts_bias, tb + n, a.ts_bias_dtype));
}

}  // namespace

cudaError_t launch_lut_dequant(const DequantArgs& a, cudaStream_t stream) {
    if (check_weight(a.w) || !a.out) return cudaErrorInvalidValue;
    const int units = a.w.K / dev::kUnit;
    const dim3 grid((a.w.N + kWarps - 1) / kWarps, (units + 31) / 32);
    const size_t smem = static_cast<size_t>(kWarps) * kStageWarp +
                        static_cast<size_t>(kWarps + 1) * dev::row_lut_bytes(a.w.bits, a.w.group_size);
    cudaError_t err = cudaSuccess;
    const bool ok = dispatch_weight(a.out_dtype, a.w.bits, a.w.kind, [&](auto t, auto b, auto k) {
        auto kernel = lut_dequant_kernel<typename decltype(t)::type, decltype(b)::value, decltype(k)::value>;
        err = allow_smem_once(reinterpret_cast<const void*>(kernel));
        if (err == cudaSuccess) {
            kernel<<<grid, kWarps * 32, smem, stream>>>(a);
            err = cudaGetLastError();
        }
    });
    return ok ? err : cudaErrorInvalidValue;
}

cudaError_t launch_ts_bias_add(const TsBiasArgs& a, cudaStream_t stream) {
    if (!a.y || !a.t || !a.ts_bias || a.M < 1 || a.N < 1 || (a.t_numel != 1 && a.t_numel != a.M))
        return cudaErrorInvalidValue;
    const bool vec = a.N % 8 == 0 && (reinterpret_cast<uintptr_t>(a.y) & 15) == 0;
    const int per_block = 256 * (vec ? 8 : 1);
    const dim3 grid(std::min((a.N + per_block - 1) / per_block, 8), a.M);
    if (a.y_dtype == DType::F16) ts_bias_add_kernel<__half><<<grid, 256, 0, stream>>>(a, vec);
    else if (a.y_dtype == DType::BF16) ts_bias_add_kernel<__nv_bfloat16><<<grid, 256, 0, stream>>>(a, vec);
    else return cudaErrorInvalidValue;
    return cudaGetLastError();
}

}  // namespace quantdllm
