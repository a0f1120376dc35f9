// LUT dequant-GEMV for small M (1..kGemvMaxTile rows per M tile).
//
// Mapping: a block of 8 warps owns 16 output rows (two per warp) and a K range; K is walked in
// tiles of 4096 codes, one 128-code unit per lane per tile. Per tile the block stages x ⊙ in_scale
// as fp32 in shared memory (padded so the lanes' 16-byte reads are conflict-free); every lane
// streams its unit's packed codes of both rows with 16-byte loads (issued before current tile is computed), builds the units' LUTs in its private shared-memory
// columns, and accumulates LUT[code] * x in fp32. Two rows per warp read each staged x value once
// for two rows: shared-memory bandwidth, not ALU, bounded the one-row version (v1 notes). A warp
// reduction gives each row's dot products. When N alone cannot fill the GPU, blocks also split K
// (grid.z) and add fp32 partials atomically. Timestep buckets are computed here from t.
#include <algorithm>

#include "dispatch.cuh"
#include "lut_device.cuh"

namespace quantdllm {
namespace {

constexpr int kWarps = 8;
constexpr int kRows = 2;                                    // rows per warp
constexpr int kBlockRows = kWarps * kRows;
constexpr int kThreads = kWarps * 32;
constexpr int kTileK = 32 * dev::kUnit;                     // 4096 codes: one unit per lane
constexpr int kXStride = kTileK + kTileK / dev::kUnit * 4;  // floats per staged x row (16 B pad per unit)

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Stages x[m0:m0+MT, k0:k1] ⊙ in_scale into xs (fp32, padded); rows past M are zero.
template <typename T, int MT>
__device__ __forceinline__ void stage_x(const GemvArgs& a, float* xs, int m0, int k0, int k1) {
    const int K = a.w.K, per_row = (k1 - k0) / 8;
    const T* x = static_cast<const T*>(a.x);
    for (int idx = threadIdx.x; idx < MT * per_row; idx += kThreads) {
        const int m = idx / per_row, k8 = (idx - m * per_row) * 8;
        float v[8];
        if (m0 + m < a.M) {
            const uint4 raw = *reinterpret_cast<const uint4*>(x + static_cast<int64_t>(m0 + m) * K + k0 + k8);
            const T* h = reinterpret_cast<const T*>(&raw);
#pragma unroll
            for (int i = 0; i < 8; ++i) v[i] = dev::to_f<T>(h[i]);
            if (a.w.in_scale) {
#pragma unroll
                for (int i = 0; i < 8; ++i) v[i] *= dev::ldf(a.w.in_scale, k0 + k8 + i, a.w.in_scale_dtype);
            }
        } else {
#pragma unroll
            for (int i = 0; i < 8; ++i) v[i] = 0.f;
        }
        float4* dst = reinterpret_cast<float4*>(xs + m * kXStride + k8 + (k8 / dev::kUnit) * 4);
        dst[0] = make_float4(v[0], v[1], v[2], v[3]);
        dst[1] = make_float4(v[4], v[5], v[6], v[7]);
    }
}

template <typename T, int BITS, LutKind KIND, int MT>
__global__ void __launch_bounds__(kThreads, 3) lut_gemv_kernel(const GemvArgs a, int k_per_split) {
    extern __shared__ __align__(16) float xs[];
    constexpr int E = 1 << BITS;
    constexpr int W = 4 * BITS;  // code words per unit
    const LutWeight& w = a.w;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int K = w.K, N = w.N;
    const int n0 = blockIdx.x * kBlockRows + warp * kRows;
    const int m0 = blockIdx.y * MT;
    const int kb = blockIdx.z * k_per_split, ke = min(K, kb + k_per_split);
    const dev::LaneLuts L = dev::lane_luts<BITS, kRows>(dev::smem_u32(xs + MT * kXStride), warp, lane, w.group_size);
    const int row_bytes = dev::row_lut_bytes(BITS, w.group_size);
    const dev::LutFields p = dev::bucket_fields(w);
    const int64_t row_words = K / 32 * BITS;
    const int32_t* crow[kRows];
    bool row_ok[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
        row_ok[r] = n0 + r < N;
        crow[r] = w.codes + (row_ok[r] ? n0 + r : 0) * row_words;
    }

    // This lane's output (row n0 + r_out, token m0 + m_out) gets bias + timestep bias; loaded now so
    // the dependent t -> bucket -> ts_bias loads hide under the main loop instead of trailing it.
    const int r_out = lane / MT, m_out = lane % MT;
    float extra = 0.f;
    if (lane < kRows * MT && blockIdx.z == 0 && n0 + r_out < N && m0 + m_out < a.M) {
        const int n = n0 + r_out, mrow = m0 + m_out;
        if (a.bias) extra += dev::ldf(a.bias, n, a.bias_dtype);
        if (a.ts_bias) {
            const int b = dev::bucket_of(w.t[w.t_numel == 1 ? 0 : mrow], w.bounds, w.nbounds);
            extra += dev::ldf(a.ts_bias, static_cast<int64_t>(b) * N + n, a.ts_bias_dtype);
        }
    }

    // P partial sums per (row, token) break the FMA dependency chains when MT is small
    constexpr int P = MT >= 4 ? 1 : 4 / MT;
    float acc[kRows][MT][P];
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
        for (int m = 0; m < MT; ++m)
#pragma unroll
            for (int q = 0; q < P; ++q) acc[r][m][q] = 0.f;

    int u = kb / dev::kUnit + lane;
    for (int tk0 = kb; tk0 < ke; tk0 += kTileK, u += 32) {
        const int tk1 = min(ke, tk0 + kTileK);
        const bool have = row_ok[0] && u * dev::kUnit < tk1;
        uint32_t cur[kRows][W];
        if (have) {  // issued first: the loads are in flight while x is staged
#pragma unroll
            for (int r = 0; r < kRows; ++r) dev::load_unit<BITS>(crow[r], u, cur[r]);
        }
        stage_x<T, MT>(a, xs, m0, tk0, tk1);
        __syncthreads();
        if (have) {
#pragma unroll
            for (int r = 0; r < kRows; ++r)
                dev::build_unit_luts<BITS, KIND>(w, p, L.lane_base + r * row_bytes, L.luts, row_ok[r] ? n0 + r : n0, u);
            const float* xu = xs + lane * (dev::kUnit + 4);
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const uint32_t lb = L.lane_base + (j >> L.lut_shift) * (E * 128);
#pragma unroll
                for (int i = 0; i < 32; i += 4) {
                    float4 xv[MT];
#pragma unroll
                    for (int m = 0; m < MT; ++m)
                        xv[m] = *reinterpret_cast<const float4*>(xu + m * kXStride + j * 32 + i);
#pragma unroll
                    for (int r = 0; r < kRows; ++r) {
                        const uint32_t* cw = cur[r] + j * BITS;
                        const uint32_t rb = lb + r * row_bytes;
                        const float v0 = dev::lookup<BITS>(cw, i, rb), v1 = dev::lookup<BITS>(cw, i + 1, rb);
                        const float v2 = dev::lookup<BITS>(cw, i + 2, rb), v3 = dev::lookup<BITS>(cw, i + 3, rb);
#pragma unroll
                        for (int m = 0; m < MT; ++m) {
                            acc[r][m][0 % P] = fmaf(v0, xv[m].x, acc[r][m][0 % P]);
                            acc[r][m][1 % P] = fmaf(v1, xv[m].y, acc[r][m][1 % P]);
                            acc[r][m][2 % P] = fmaf(v2, xv[m].z, acc[r][m][2 % P]);
                            acc[r][m][3 % P] = fmaf(v3, xv[m].w, acc[r][m][3 % P]);
                        }
                    }
                }
            }
        }
        __syncthreads();  // xs is restaged next tile
    }

#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
        for (int m = 0; m < MT; ++m)
#pragma unroll
            for (int q = 1; q < P; ++q) acc[r][m][0] += acc[r][m][q];
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
        for (int m = 0; m < MT; ++m) acc[r][m][0] = warp_sum(acc[r][m][0]);
    // lane r*MT + m writes (row n0 + r, token m0 + m)
    if (lane >= kRows * MT) return;
    float v = extra;
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
        for (int m = 0; m < MT; ++m)
            if (lane == r * MT + m) v += acc[r][m][0];
    const int n = n0 + r_out, mrow = m0 + m_out;
    if (n >= N || mrow >= a.M) return;
    const int64_t o = static_cast<int64_t>(mrow) * N + n;
    if (a.ksplit == 1) static_cast<T*>(a.y)[o] = dev::from_f<T>(v);
    else atomicAdd(static_cast<float*>(a.y) + o, v);
}

size_t gemv_smem(int mt, int bits, int group_size) {
    return static_cast<size_t>(mt) * kXStride * 4 +
           static_cast<size_t>(kWarps + 1) * kRows * dev::row_lut_bytes(bits, group_size);
}

int gemv_tile(int M) { return M >= 3 ? 4 : M; }

}  // namespace

int gemv_ksplit(const GemvArgs& a, int num_sms) {
    const int mt = gemv_tile(a.M);
    const long long blocks = static_cast<long long>((a.w.N + kBlockRows - 1) / kBlockRows) * ((a.M + mt - 1) / mt);
    const int units = a.w.K / dev::kUnit;
    int ks = 1;
    if (blocks < 2LL * num_sms) ks = static_cast<int>(std::min<long long>((2LL * num_sms + blocks - 1) / blocks, units));
    const int per = (units + ks - 1) / ks;  // units per split
    return (units + per - 1) / per;
}

cudaError_t launch_lut_gemv(const GemvArgs& a, cudaStream_t stream) {
    if (check_weight(a.w) || a.M < 1 || !a.x || !a.y) return cudaErrorInvalidValue;
    if (a.ts_bias && (!a.w.t || (a.w.t_numel != 1 && a.w.t_numel != a.M))) return cudaErrorInvalidValue;
    const int mt = gemv_tile(a.M);
    const int units = a.w.K / dev::kUnit;
    const int per = (units + a.ksplit - 1) / a.ksplit;
    if (a.ksplit < 1 || (units + per - 1) / per != a.ksplit) return cudaErrorInvalidValue;
    const dim3 grid((a.w.N + kBlockRows - 1) / kBlockRows, (a.M + mt - 1) / mt, a.ksplit);
    const size_t smem = gemv_smem(mt, a.w.bits, a.w.group_size);
    cudaError_t err = cudaSuccess;
    const bool ok = dispatch_weight(a.x_dtype, a.w.bits, a.w.kind, [&](auto t, auto b, auto k) {
        using T = typename decltype(t)::type;
        constexpr int B = decltype(b)::value;
        constexpr LutKind KIND = decltype(k)::value;
        auto run = [&](auto kernel) {
            err = allow_smem_once(reinterpret_cast<const void*>(kernel));
            if (err == cudaSuccess) {
                kernel<<<grid, kThreads, smem, stream>>>(a, per * dev::kUnit);
                err = cudaGetLastError();
            }
        };
        if (mt == 1) run(lut_gemv_kernel<T, B, KIND, 1>);
        else if (mt == 2) run(lut_gemv_kernel<T, B, KIND, 2>);
        else run(lut_gemv_kernel<T, B, KIND, 4>);
    });
    return ok ? err : cudaErrorInvalidValue;
}

}  // namespace quantdllm
