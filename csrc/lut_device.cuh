// Device building blocks shared by the GEMV and dequant kernels: typed loads, per-lane LUTs in
// shared memory, and code decoding straight into shared-memory addresses.
//
// Lane-private LUTs. Each lane decodes its own 128-code unit, so it keeps the LUT(s) of the
// group(s) of that unit in its own column of a [lut][entry][lane] fp32 array: entry e of lane l
// lives at byte e*128 + l*4 (+ lut * 2^b*128). Lookups are conflict-free whatever the codes, and
// no __syncwarp is needed (a lane only reads what it wrote). Because the lane offset occupies
// bits 2..6 and the entry bits 7..7+b-1, the address of a code is ((code << 7) & mask) | base:
// one shift and one LOP3 per code.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>

#include "lut_kernels.h"

// Phase stamps for benchmarks/debug/mma_phases.cu (lut_mma) and wgmma_waves.cu (lut_wgmma), in a build
// with -DQUANTDLLM_MMA_TRACE only: thread 0 of each block writes a.trace[(blockIdx.z * gridDim.x +
// blockIdx.x) * kTraceSlots + slot]:
// 0 globaltimer at entry, 1 clock64 at entry, 2 after the ring's first stages are issued (lut_mma) or
// the fp32 tile is staged in shared memory (lut_wgmma), 3 when warp 0's first stage has landed, 4 after
// the main loop, 5 after y (or the partials) is stored, 6 globaltimer at exit, 7 the SM; lut_wgmma
// also 8 globaltimer with 5 and 9 clock64 with 6 (so the SM clock is exact for every block), and in
// a K split's sum globaltimer 10 after its first cluster barrier, 11 once the share is summed, 12
// after the y stores.
#ifdef QUANTDLLM_MMA_TRACE
__device__ __forceinline__ unsigned long long global_ns() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %globaltimer;" : "=l"(t));
    return t;
}
__device__ __forceinline__ unsigned int sm_id() {
    unsigned int r;
    asm volatile("mov.u32 %0, %smid;" : "=r"(r));
    return r;
}
#define MMA_TRACE(a, slot, expr)                                                                        \
    do {                                                                                                \
        if ((a).trace && threadIdx.x == 0)                                                              \
            (a).trace[(static_cast<int64_t>(blockIdx.z) * gridDim.x + blockIdx.x) * kTraceSlots + (slot)] = (expr); \
    } while (0)
#else
#define MMA_TRACE(a, slot, expr) \
    do {                         \
    } while (0)
#endif

namespace quantdllm {
namespace dev {

constexpr int kUnit = 128;  // codes per lane-unit: 4 chunks of 32 codes = 4*bits int32 words

__device__ __forceinline__ float ldf(const void* p, int64_t i, DType dt) {
    switch (dt) {
        case DType::F16: return __half2float(static_cast<const __half*>(p)[i]);
        case DType::BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
        default: return static_cast<const float*>(p)[i];
    }
}

// ldf in two steps, for loads that should all be in flight before the first use: the element's bits
// (16 or 32, no conversion), then its value.
__device__ __forceinline__ uint32_t ld_raw(const void* p, int64_t i, DType dt) {
    return dt == DType::F32 ? static_cast<const uint32_t*>(p)[i] : static_cast<const uint16_t*>(p)[i];
}
__device__ __forceinline__ float raw_to_f(uint32_t r, DType dt) {
    switch (dt) {
        case DType::F16: return __half2float(__ushort_as_half(static_cast<unsigned short>(r)));
        case DType::BF16: return __uint_as_float(r << 16);
        default: return __uint_as_float(r);
    }
}

// v[e] += the 8 values of dtype dt in the 16-byte words lo (and hi, fp32 only: 32 bytes)
__device__ __forceinline__ void add8_words(float (&v)[8], uint4 lo, uint4 hi, DType dt) {
    if (dt == DType::F32) {
        const uint32_t ws[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
#pragma unroll
        for (int e = 0; e < 8; ++e) v[e] += __uint_as_float(ws[e]);
        return;
    }
    const uint32_t ws[4] = {lo.x, lo.y, lo.z, lo.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        v[2 * j] += raw_to_f(ws[j] & 0xFFFFu, dt);
        v[2 * j + 1] += raw_to_f(ws[j] >> 16, dt);
    }
}

// v[e] += p[i + e] for e < valid, p in dtype dt; with `vec` (p + i 16-byte aligned) a whole group
// (valid == 8) takes one or two 16-byte loads.
__device__ __forceinline__ void add8(float (&v)[8], const void* p, int64_t i, DType dt, int valid, bool vec) {
    if (vec && valid == 8) {
        const uint4* q = reinterpret_cast<const uint4*>(static_cast<const char*>(p) + i * (dt == DType::F32 ? 4 : 2));
        add8_words(v, __ldg(q), dt == DType::F32 ? __ldg(q + 1) : uint4{}, dt);
        return;
    }
#pragma unroll
    for (int e = 0; e < 8; ++e)
        if (e < valid) v[e] += ldf(p, i + e, dt);
}

// Fetch the 128-byte line at p (a valid global address) into L2, without waiting for it.
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

// Every bucket's row segment [n_first, n_first + rows) of a timestep bias table (T x N, element
// size es) fetched into L2 by threads tid of nthreads, at a kernel's start: the epilogue's reads of
// the table then hit L2 (after an L2 flush they were a DRAM round trip behind the main loop).
__device__ __forceinline__ void prefetch_table_rows(const void* table, int es, int buckets, int N, int n_first,
                                                    int rows, int tid, int nthreads) {
    const int per_row = (rows * es + 127) / 128, shift = __popc(per_row - 1);  // exact when a power of two
    const bool pow2 = (per_row & (per_row - 1)) == 0;
    for (int i = tid; i < buckets * per_row; i += nthreads) {
        const int b = pow2 ? i >> shift : i / per_row, col = n_first + (i - b * per_row) * (128 / es);
        if (col < N && col < n_first + rows)
            prefetch_l2(static_cast<const char*>(table) + (static_cast<int64_t>(b) * N + col) * es);
    }
}

__device__ __forceinline__ int dtype_size(DType dt) { return dt == DType::F32 ? 4 : 2; }

template <typename T> __device__ __forceinline__ float to_f(T v);
template <> __device__ __forceinline__ float to_f<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
// two values rounded to T, packed as one 32-bit register (lo in the low half)
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
    const T l = from_f<T>(lo), h = from_f<T>(hi);
    return static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(&l)) |
           (static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(&h)) << 16);
}

// Shared-memory access by 32-bit shared-window address (the OR-addressing needs raw addresses).
// volatile keeps lane-private stores and loads in program order relative to each other.
__device__ __forceinline__ void sts_f32(uint32_t addr, float v) {
    asm volatile("st.shared.f32 [%0], %1;" ::"r"(addr), "f"(v));
}
__device__ __forceinline__ float lds_f32(uint32_t addr) {
    float v;
    asm volatile("ld.shared.f32 %0, [%1];" : "=f"(v) : "r"(addr));
    return v;
}
// Programmatic dependent launch (sm_90+; no-ops below): `pdl_trigger` lets the launch after this
// one (if it was made with the programmatic-serialization attribute) start its blocks now, and
// `pdl_wait` holds this one until the launch before it has completed and its writes are visible.
// A kernel made with the attribute must call pdl_wait before its first global read or write.
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Thread-block clusters (sm_90+; nothing below, where no launch makes clusters). A barrier over the
// cluster: every thread of every block arrives, then waits; a releasing arrive orders this thread's
// memory operations before it (a relaxed one orders none), the acquiring wait makes the others'
// visible after it.
__device__ __forceinline__ void cluster_arrive() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory");
#endif
}
__device__ __forceinline__ void cluster_arrive_relaxed() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
#endif
}
__device__ __forceinline__ void cluster_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory");
#endif
}
// The shared-memory address of block `rank` of the cluster at the offset of this block's `addr`, and
// a 4-byte load from it (distributed shared memory)
__device__ __forceinline__ uint32_t cluster_map(uint32_t addr, int rank) {
    uint32_t out = addr;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(out) : "r"(addr), "r"(rank));
#endif
    return out;
}
__device__ __forceinline__ float ld_cluster_f32(uint32_t remote) {
    float v = 0.f;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(remote) : "memory");
#endif
    return v;
}

// 16-byte read-only load of packed codes. L1 is allowed: a lane's 16-byte loads stride 16*bits
// bytes across the warp, so the line a load brings in serves the lane's next chunk.
__device__ __forceinline__ uint4 ldg_stream(const void* p) {
    return __ldg(static_cast<const uint4*>(p));
}

// The 4*BITS words of unit u of a row (4 chunks of 32 codes; 16-byte aligned since K % 128 == 0).
template <int BITS>
__device__ __forceinline__ void load_unit(const int32_t* row, int u, uint32_t (&w)[4 * BITS]) {
    const uint4* src = reinterpret_cast<const uint4*>(row + static_cast<int64_t>(u) * 4 * BITS);
#pragma unroll
    for (int i = 0; i < BITS; ++i) {
        uint4 v = ldg_stream(src + i);
        w[4 * i] = v.x; w[4 * i + 1] = v.y; w[4 * i + 2] = v.z; w[4 * i + 3] = v.w;
    }
}

// Code i (0..31) of a chunk whose BITS words start at w, shifted left by 7 (unmasked).
// Constant-folds to one shift (or a funnel shift for 3-bit codes that straddle two words).
template <int BITS>
__device__ __forceinline__ uint32_t code_shl7(const uint32_t* w, int i) {
    const int pos = i * BITS, wd = pos >> 5, off = pos & 31;
    if (off + BITS > 32) return __funnelshift_r(w[wd], w[wd + 1], off) << 7;
    return off >= 7 ? (w[wd] >> (off - 7)) : (w[wd] << (7 - off));
}

// LUT field pointers with the timestep bucket applied (once per thread).
struct LutFields {
    const void* f[3];
};

// Bucket of timestep v: the number of boundaries <= v (searchsorted right); T <= 64, a short scan.
// Eight predicated loads per step are independent, so they are in flight together: a plain loop
// over a runtime count issued them one round trip after another (about 2 µs for T = 8 at the start
// of a GEMV, measured as +7% at M = 1 on an H200).
__device__ __forceinline__ int bucket_of(float v, const float* bounds, int nbounds) {
    int b = 0;
    for (int i0 = 0; i0 < nbounds; i0 += 8) {
        float bd[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) bd[j] = i0 + j < nbounds ? __ldg(bounds + i0 + j) : __int_as_float(0x7f800000);
#pragma unroll
        for (int j = 0; j < 8; ++j) b += bd[j] <= v;
    }
    return b;
}

__device__ __forceinline__ LutFields bucket_fields(const LutWeight& w) {
    LutFields r;
    const bool per_bucket = w.bucket_stride[0] | w.bucket_stride[1] | w.bucket_stride[2];
    const int b = w.lut_bucket ? *w.lut_bucket : (per_bucket && w.t ? bucket_of(w.t[0], w.bounds, w.nbounds) : 0);
    const int es = dtype_size(w.lut_dtype);
#pragma unroll
    for (int i = 0; i < 3; ++i)
        r.f[i] = w.f[i] ? static_cast<const char*>(w.f[i]) + static_cast<int64_t>(b) * w.bucket_stride[i] * es
                        : nullptr;
    return r;
}

// Writes the 2^BITS fp32 entries of LUT (n, q) to this lane's column starting at addr.
template <int BITS, LutKind KIND>
__device__ __forceinline__ void build_lut(const LutWeight& w, const LutFields& p, int n, int q, uint32_t addr) {
    constexpr int E = 1 << BITS;
    const int G = w.K / w.group_size;
    const int64_t gq = static_cast<int64_t>(n) * G + q;
    const DType dt = w.lut_dtype;
    if constexpr (KIND == LutKind::Table) {
#pragma unroll
        for (int e = 0; e < E; ++e) sts_f32(addr + e * 128, ldf(p.f[0], gq * E + e, dt));
    } else if constexpr (KIND == LutKind::Scaled) {
        const float s = ldf(p.f[1], gq, dt);
        const float z = p.f[2] ? ldf(p.f[2], gq, dt) : 0.f;
        const int64_t cb0 = w.cb_per_row ? static_cast<int64_t>(n) * E : 0;
#pragma unroll
        for (int e = 0; e < E; ++e) sts_f32(addr + e * 128, fmaf(ldf(p.f[0], cb0 + e, dt), s, z));
    } else {  // Binary: value(e) = mu + sum_i alpha_i * (bit_i(e) ? +1 : -1)
        float a[BITS];
#pragma unroll
        for (int i = 0; i < BITS; ++i) a[i] = ldf(p.f[0], gq * BITS + i, dt);
        const float mu = ldf(p.f[1], gq, dt);
#pragma unroll
        for (int e = 0; e < E; ++e) {
            float v = mu;
#pragma unroll
            for (int i = 0; i < BITS; ++i) v += ((e >> i) & 1) ? a[i] : -a[i];
            sts_f32(addr + e * 128, v);
        }
    }
}

// Per-lane LUT area: luts_per_unit LUTs of 2^BITS entries; aligned so that base | offset works.
struct LaneLuts {
    uint32_t lane_base;  // this lane's column of LUT 0
    int lut_shift;       // chunk j of a unit uses LUT j >> lut_shift
    int luts;            // LUTs per unit: 128 / group_size, at least 1
};

// Bytes of one row's LUT area per warp (host and device agree on this).
__host__ __device__ __forceinline__ int row_lut_bytes(int bits, int group_size) {
    const int luts = group_size >= kUnit ? 1 : kUnit / group_size;
    return luts * (1 << bits) * 128;
}

// A warp owning ROWS rows keeps ROWS such areas back to back (row r at lane_base + r * row_bytes).
template <int BITS, int ROWS = 1>
__device__ __forceinline__ LaneLuts lane_luts(uint32_t region, int warp, int lane, int group_size) {
    LaneLuts r;
    r.luts = group_size >= kUnit ? 1 : kUnit / group_size;
    r.lut_shift = group_size >= kUnit ? 2 : (group_size == 64 ? 1 : 0);
    const uint32_t bytes = ROWS * r.luts * (1u << BITS) * 128u;
    region = (region + bytes - 1) & ~(bytes - 1);  // host reserves one extra `bytes` for this
    r.lane_base = region + warp * bytes + lane * 4;
    return r;
}

// Builds the LUTs of unit u (codes u*128 .. u*128+127) of row n.
template <int BITS, LutKind KIND>
__device__ __forceinline__ void build_unit_luts(const LutWeight& w, const LutFields& p, uint32_t base, int luts,
                                                int n, int u) {
    const int q0 = (u * kUnit) / w.group_size;
    for (int l = 0; l < luts; ++l) build_lut<BITS, KIND>(w, p, n, q0 + l, base + l * ((1 << BITS) * 128));
}

// Looks up code i of chunk j: fp32 value from this lane's LUT.
template <int BITS>
__device__ __forceinline__ float lookup(const uint32_t* chunk_words, int i, uint32_t lut_base) {
    constexpr uint32_t mask = ((1u << BITS) - 1u) << 7;
    return lds_f32((code_shl7<BITS>(chunk_words, i) & mask) | lut_base);
}

}  // namespace dev
}  // namespace quantdllm
