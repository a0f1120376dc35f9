// lut_wgmma's host side: the plan (wgmma_plan), the x pre-pass (launch_permute_x) and the launch's
// checks (launch_lut_wgmma). The kernel and how it works: lut_wgmma_kernel.cuh; its instantiations,
// one code width per translation unit: lut_wgmma_w{2,3,4}.cu.
#include "lut_wgmma_kernel.cuh"

namespace quantdllm {
namespace {

// out = x with k permuted inside every 64-k chunk into lut_mma's fragment order (see the header),
// times in_scale when given. Output vector v (8 values) of a chunk holds the pairs at k = 16 j +
// 4 (v >> 1) + 2 (v & 1), j = 0..3.
// A programmatic dependent launch itself (launch_permute_x): it waits for the launch before it (the
// previous layer, which may have written x) before its first read.
template <typename T>
__global__ void permute_x_kernel(const T* __restrict__ x, const T* __restrict__ in_scale, T* __restrict__ out,
                                 int64_t vecs, int K) {
    using P = Pair<T>;
    dev::pdl_wait();
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < vecs;
         idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t e0 = idx * 8, row = e0 / K;
        const int col = static_cast<int>(e0 - row * K), v = (col & 63) >> 3;
        const int k0 = (col & ~63) + 4 * (v >> 1) + 2 * (v & 1);
        const uint32_t* src = reinterpret_cast<const uint32_t*>(x + row * K + k0);
        uint4 w = make_uint4(__ldg(src), __ldg(src + 8), __ldg(src + 16), __ldg(src + 24));
        if (in_scale) {
            const uint32_t* s = reinterpret_cast<const uint32_t*>(in_scale + k0);
            w.x = u32(__hmul2(P::bits(w.x), P::bits(__ldg(s))));
            w.y = u32(__hmul2(P::bits(w.y), P::bits(__ldg(s + 8))));
            w.z = u32(__hmul2(P::bits(w.z), P::bits(__ldg(s + 16))));
            w.w = u32(__hmul2(P::bits(w.w), P::bits(__ldg(s + 24))));
        }
        *reinterpret_cast<uint4*>(out + e0) = w;
    }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    // this block's part is stored: lut_wgmma, launched after it as a programmatic dependent, may
    // start its prologue (it waits for this grid's completion before reading x)
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
}  // namespace

bool wgmma_built() {
#ifdef QUANTDLLM_SM90A
    return true;
#else
    return false;
#endif
}

WgmmaPlan wgmma_plan(int M, int N, int K, int num_sms) {
    // Tokens per block and K slices: the plan whose waves cost least, one block per SM. A block's
    // time is a cost per 64-k chunk plus a fixed part (prologue, staging, y store), from the phase
    // stamps of debug/wgmma_waves.cu (H200, random data, w4; eleventh session): 256 / 128 / 64 tokens
    // 0.644 / 0.455 / 0.378 µs per chunk, 3.9 / 2.6 / 2.2 µs fixed. A K slice adds the cluster's
    // sum over distributed shared memory (~4 µs for 256 tokens, the remote half of the tile at ~15
    // bytes per cycle). Options: no split; every tile split (when the tiles leave SMs idle); or only
    // a last, partial wave's tiles split (stream-K's tail), the whole tiles first. The tail is what
    // makes (4096, 12288) at M = 512 1.45 waves instead of 2 (94 -> 81 µs). At most two slices: with
    // clusters of 3 or 4 blocks only 120-124 of the H200's 132 SMs took blocks (GPCs whose SM count
    // is not a multiple), for the whole launch (M = 4096: 575 -> 639 µs).
    auto knob = [](const char* name) { return std::getenv(name) ? std::atoi(std::getenv(name)) : 0; };
    // benchmark / test knobs: the tile, the K slices, and (with slices) the first split tile
    const int forced_bn = knob("QUANTDLLM_WGMMA_BN"), forced_ks = knob("QUANTDLLM_WGMMA_KSPLIT");
    const int forced_from = knob("QUANTDLLM_WGMMA_SPLIT_FROM");
    const char* forced_shift = std::getenv("QUANTDLLM_WGMMA_TS_SHIFT");
    const int chunks = std::max(K / 64, 1);
    const long long nblk = (N + kWRows - 1) / kWRows, sms = std::max(num_sms, 1);
    WgmmaPlan best{128, 1, chunks, 0};
    double best_cost = 1e30;
    struct Tile { int bn; double per_chunk, fixed, sum; };
    for (const Tile& t : {Tile{256, 0.644, 3.9, 4.0}, Tile{128, 0.455, 2.6, 2.0}, Tile{64, 0.378, 2.2, 1.0}}) {
        if (forced_bn && t.bn != forced_bn) continue;
        const long long tiles = nblk * ((M + t.bn - 1) / t.bn);
        const double whole_cost = t.per_chunk * chunks + t.fixed;
        auto consider = [&](double cost, const WgmmaPlan& plan) {
            if (cost < best_cost * 0.999) best = plan, best_cost = cost;
        };
        for (int ks = 1; ks <= kMaxKSplit; ++ks) {
            if (forced_ks ? ks != forced_ks : ks > 2) continue;
            const int slice = (chunks + ks - 1) / ks, per_split = ks == 1 ? chunks : (slice + 3) / 4 * 4;
            const int ks_eff = (chunks + per_split - 1) / per_split;
            if (ks_eff == 1) {
                if (ks == 1 || forced_ks) consider(static_cast<double>((tiles + sms - 1) / sms) * whole_cost, {t.bn, 1, chunks, 0});
                continue;
            }
            const double slice_cost = t.per_chunk * per_split + t.fixed + t.sum;
            // the whole tiles ahead of the split ones: none, full waves of them (the tail), or the
            // knob's; a multiple of ks_eff (a tile's slices are one cluster, aligned to the grid)
            const long long options[2] = {0, forced_ks ? forced_from : tiles / sms * sms};
            for (long long whole : options) {
                whole = std::clamp<long long>(whole, 0, tiles - 1);
                whole -= whole % ks_eff;
                if (forced_ks && whole != std::clamp<long long>(forced_from, 0, tiles - 1) / ks_eff * ks_eff) continue;
                const long long split_blocks = (tiles - whole) * ks_eff;
                const double cost = static_cast<double>((whole + sms - 1) / sms) * whole_cost +
                                    static_cast<double>((split_blocks + sms - 1) / sms) * slice_cost;
                // what slice 0's table chunk adds (~0.8 µs since its loads are compact: seventeenth
                // session, call 6) split evenly between the two slices: 1 chunk at 64-256 tokens
                const int shift = std::clamp(forced_shift ? std::atoi(forced_shift)
                                                          : static_cast<int>(std::lround(kTsChunkUs / (2 * t.per_chunk))),
                                             0, per_split - 1);
                consider(cost, {t.bn, ks_eff, per_split, static_cast<int>(whole), shift});
            }
        }
    }
    return best;
}

cudaError_t launch_permute_x(const void* x, const void* in_scale, void* out, DType dt, int M, int K,
                             cudaStream_t stream) {
    if (M < 1 || K < 64 || K % 64 || !x || !out) return cudaErrorInvalidValue;
    const int64_t vecs = static_cast<int64_t>(M) * K / 8;
    const int threads = 256;
    const int blocks = static_cast<int>(std::min<int64_t>((vecs + threads - 1) / threads, 65535));
    cudaError_t err = cudaErrorInvalidValue;
    bool ok = dispatch_act(dt, [&](auto t) {
        using T = typename decltype(t)::type;
        err = launch_pdl(permute_x_kernel<T>, dim3(blocks), dim3(threads), 0, stream, static_cast<const T*>(x),
                         static_cast<const T*>(in_scale), static_cast<T*>(out), vecs, K);
    });
    return ok ? err : cudaErrorInvalidValue;
}

namespace {
// The TMA descriptor of the permuted x (M rows of K): boxes of 64 k x bn tokens, 128-byte swizzle,
// rows past M read as zeros. cuTensorMapEncodeTiled is a host-only driver function, fetched once.
cudaError_t x_tensor_map(CUtensorMap* map, const void* x, DType dt, int M, int K, int bn) {
    static PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
        void* fn = nullptr;
        cudaDriverEntryPointQueryResult q{};
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q) != cudaSuccess ||
            q != cudaDriverEntryPointSuccess)
            fn = nullptr;
        return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
    }();
    if (!encode) return cudaErrorNotSupported;
    const cuuint64_t dims[2] = {static_cast<cuuint64_t>(K), static_cast<cuuint64_t>(M)};
    const cuuint64_t strides[1] = {static_cast<cuuint64_t>(K) * 2};
    const cuuint32_t box[2] = {64, static_cast<cuuint32_t>(bn)}, unit[2] = {1, 1};
    const CUresult r = encode(map, dt == DType::BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2,
                              const_cast<void*>(x), dims, strides, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
                              CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                              CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
}
}  // namespace

// a.x must be the permuted x (launch_permute_x; in_scale folded there, a.in_scale ignored), or with
// a.x_natural (no in_scale) x as stored; 16-byte aligned either way.
cudaError_t launch_lut_wgmma(const MmaArgs& a, const WgmmaPlan& p, cudaStream_t stream) {
    const int bn = p.bn;
    if (!wgmma_built()) return cudaErrorInvalidDeviceFunction;
    if (a.M < 1 || a.N < 1 || a.K < 64 || a.K % 64 || !a.codes || !a.sz || !a.x || !a.y) return cudaErrorInvalidValue;
    if (a.bits < 2 || a.bits > 4 || (bn != 64 && bn != 128 && bn != 256)) return cudaErrorInvalidValue;
    if (p.ts_shift < 0 || p.ts_shift >= p.per_split) return cudaErrorInvalidValue;
    if (p.ksplit < 1 || p.ksplit > kMaxKSplit || p.per_split < 1 || (p.ksplit > 1 && p.per_split % 4) ||
        static_cast<long long>(p.ksplit - 1) * p.per_split >= a.K / 64 || static_cast<long long>(p.ksplit) * p.per_split < a.K / 64)
        return cudaErrorInvalidValue;
    const long long tiles = static_cast<long long>((a.N + kWRows - 1) / kWRows) * ((a.M + bn - 1) / bn);
    // a tile's slices are one cluster: the split blocks start at a multiple of the cluster size
    if (p.split_from < 0 || p.split_from > tiles || (p.ksplit == 1 && p.split_from != tiles && p.split_from != 0) ||
        p.split_from % p.ksplit)
        return cudaErrorInvalidValue;
    if (a.ts_bias && (!a.t || (a.t_numel != 1 && a.t_numel != a.M) || a.nbounds < 0 || a.nbounds > 63))
        return cudaErrorInvalidValue;  // the timestep chunk is one 64-k chunk: T <= 64
    if ((a.x_dtype != DType::F16 && a.x_dtype != DType::BF16) || reinterpret_cast<uintptr_t>(a.x) % 16)
        return cudaErrorInvalidValue;
    if (a.x_natural && a.in_scale) return cudaErrorInvalidValue;
    CUtensorMap xmap;
    if (const cudaError_t e = x_tensor_map(&xmap, a.x, a.x_dtype, a.M, a.K, bn); e != cudaSuccess) return e;
    MmaArgs args = a;
    args.token_tiles = (a.M + bn - 1) / bn;
    args.per_split = p.per_split;
    const long long blocks = p.split_from + (tiles - p.split_from) * p.ksplit;
    if (blocks > 0x7FFFFFFF) return cudaErrorInvalidValue;
    switch (a.bits) {  // one translation unit per code width (lut_wgmma_w*.cu)
        case 2: return launch_lut_wgmma_bits<2>(args, p, xmap, static_cast<unsigned>(blocks), stream);
        case 3: return launch_lut_wgmma_bits<3>(args, p, xmap, static_cast<unsigned>(blocks), stream);
        case 4: return launch_lut_wgmma_bits<4>(args, p, xmap, static_cast<unsigned>(blocks), stream);
        default: return cudaErrorInvalidValue;
    }
}

}  // namespace quantdllm
