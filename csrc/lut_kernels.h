// Host-side interface of the LUT kernels. Depends only on the CUDA toolkit (no torch), so every
// .cu file compiles with plain nvcc; csrc/torch_binding.cpp turns torch tensors into these structs.
#pragma once
#include <cstdint>
#include <functional>
#include <cuda_runtime.h>

namespace quantdllm {

enum class DType : int { F16 = 0, BF16 = 1, F32 = 2 };
enum class LutKind : int { Table = 0, Scaled = 1, Binary = 2 };

// One weight in the canonical format (DESIGN.md), read as stored: no repacking for this backend.
//   Table : f0 = table (N, G, 2^b)
//   Scaled: f0 = codebook (2^b) or (N, 2^b) [cb_per_row], f1 = scale (N, G), f2 = zero (N, G) or null
//   Binary: f0 = alpha (N, G, b), f1 = mu (N, G)
// A field with a timestep LUT set has a leading bucket dim: bucket_stride[i] elements per bucket
// (0 = shared). The bucket is *lut_bucket if given, else the bucket of t[0] over `bounds`
// (number of boundaries <= t), computed on the device: no host sync, graph-safe.
struct LutWeight {
    const int32_t* codes = nullptr;  // (N, K/32*bits), dense little-endian bit stream per row
    const void* f[3] = {nullptr, nullptr, nullptr};
    int64_t bucket_stride[3] = {0, 0, 0};
    const int32_t* lut_bucket = nullptr;
    const float* t = nullptr;       // timesteps: 1 (uniform) or M (one per row) fp32 values
    int t_numel = 0;
    const float* bounds = nullptr;  // (nbounds) increasing bucket boundaries
    int nbounds = 0;
    DType lut_dtype = DType::F16;
    const void* in_scale = nullptr;  // (K) or null
    DType in_scale_dtype = DType::F16;
    int N = 0, K = 0, bits = 4, group_size = 128;
    LutKind kind = LutKind::Table;
    bool cb_per_row = false;
};

// y (M, N) = (x ⊙ in_scale) @ W^T + bias + ts_bias[bucket(t[m])]; fp32 accumulation.
// With ksplit > 1 the kernel atomically adds fp32 partial sums into y_f32 (zeroed by the caller).
struct GemvArgs {
    LutWeight w;
    const void* x = nullptr;  // (M, K) contiguous, x_dtype f16 or bf16
    DType x_dtype = DType::F16;
    int M = 0;
    void* y = nullptr;        // (M, N) x_dtype when ksplit == 1, else float32 workspace
    int ksplit = 1;
    const void* bias = nullptr;  DType bias_dtype = DType::F16;        // (N) or null
    const void* ts_bias = nullptr; DType ts_bias_dtype = DType::F16;     // (T, N) or null; needs w.t
};

// W (N, K) dequantized (in_scale folded in) into out_dtype (f16/bf16), for the cuBLAS path.
struct DequantArgs {
    LutWeight w;
    void* out = nullptr;
    DType out_dtype = DType::F16;
};

// Largest M the GEMV path takes in one M tile, and the K split the launcher would use.
constexpr int kGemvMaxTile = 4;
int gemv_ksplit(const GemvArgs& a, int num_sms);

// Shape rules shared by every kernel; nullptr when the weight can run, else why not.
const char* check_weight(const LutWeight& w);

cudaError_t launch_lut_gemv(const GemvArgs& a, cudaStream_t stream);
cudaError_t launch_lut_dequant(const DequantArgs& a, cudaStream_t stream);

// y (M, N) += ts_bias[bucket(t[m])] in place (the cuBLAS path's epilogue); t has 1 or M values.
struct TsBiasArgs {
    void* y = nullptr; DType y_dtype = DType::F16;
    int M = 0, N = 0;
    const float* t = nullptr; int t_numel = 0;
    const float* bounds = nullptr; int nbounds = 0;
    const void* ts_bias = nullptr; DType ts_bias_dtype = DType::F16;
};
cudaError_t launch_ts_bias_add(const TsBiasArgs& a, cudaStream_t stream);

// ---- Tensor-core path (csrc/lut_mma.cu): affine `scaled` weights (w = code * s + z per group),
// any M, weights in the fragment-order layout written by quantdllm_kernels/backends/cuda_layout.py:
//   codes: [tile16][super][lane][words]  int32, super = 64 * (bits == 4 ? 1 : bits == 2 ? 2 : 4) codes
//   sz:    [tile16][group][row8][4]       activation dtype: (s_r, s_r+8, z_r, z_r+8)
// Rows are padded to a multiple of 32 (two 16-row tiles per warp), K to a multiple of `super`.
constexpr int kTraceSlots = 16;  // phase stamps per block in a -DQUANTDLLM_MMA_TRACE build (lut_device.cuh)
struct MmaArgs {
    const int32_t* codes = nullptr;
    const void* sz = nullptr;
    int N = 0, K = 0, bits = 4;
    int group_shift = 7;       // group = k >> group_shift, >= 6 (31 for one group per row)
    int groups = 0;            // groups per padded row in sz
    int group_mask = 0;        // set by launch_lut_mma: k & group_mask == 0 starts a group
    // set by launch_lut_mma from the plan, so that the kernel's prologue divides nothing (its
    // integer divisions were a ~230-instruction dependent chain ahead of the first copy at M = 1)
    int wn_shift = 0;          // log2(plan.wn)
    int token_tiles = 1;       // ceil(M / (8 nt))
    int per_split = 0;         // super-chunks per K split
    int cluster_sum = 0;       // lut_mma: the K slices of a tile are one cluster, summed in shared memory
    const void* x = nullptr;   // (M, K) contiguous
    DType x_dtype = DType::F16;
    bool x_natural = false;    // lut_wgmma: x as stored, not permuted (no in_scale)
    int M = 0;
    const void* in_scale = nullptr;  // (K) in x's dtype, or null
    const void* bias = nullptr; DType bias_dtype = DType::F16;
    const float* t = nullptr; int t_numel = 0;
    const float* bounds = nullptr; int nbounds = 0;
    const void* ts_bias = nullptr; DType ts_bias_dtype = DType::F16;
    void* y = nullptr;         // (M, N) in x's dtype
    float* workspace = nullptr;  // (ksplit, M, N) fp32 partial sums when ksplit > 1
    int* semaphores = nullptr;   // >= grid.x * grid.y zeroed ints when ksplit > 1 (left zeroed);
                                 // the plan splits K only when grid.x * grid.y < resident blocks
    unsigned long long* trace = nullptr;  // kTraceSlots stamps per block, read only by a -DQUANTDLLM_MMA_TRACE build
};

// Launch shape chosen from (M, N, K, bits, SM count, the kernel's occupancy): warps along N (wn) and K (wk) in a block of
// four, token tiles of 8 * nt, and the K split across blocks.
struct MmaPlan {
    int wn = 1, wk = 4, nt = 1, ksplit = 1;
    int grid_x = 0, grid_y = 0;
    // a K split of 2 slices runs them as one thread-block cluster where the device and the build
    // have clusters (sm_90): no workspace, no semaphore (QUANTDLLM_MMA_CLUSTER=0 never, =1 up to 8
    // slices: lut_mma.cu, kClusterSplitDefault)
    bool cluster = false;
};
int mma_super_k(int bits);
// in_scale: whether the launch has one (M <= 8 runs a leaner kernel without, with more blocks per SM).
MmaPlan mma_plan(int M, int N, int K, int bits, int num_sms, DType x_dtype, bool in_scale);
// The same rules with the blocks resident per SM of a plan's kernel given (mma_plan asks the runtime):
// no CUDA call, so python_tests/test_mma_plan.py checks them on any machine with nvcc.
using MmaResidentFn = std::function<int(const MmaPlan&)>;
MmaPlan mma_plan_with(int M, int N, int K, int bits, int num_sms, const MmaResidentFn& resident);
// On compute capability >= 9.0 a programmatic dependent launch (dispatch.cuh, launch_pdl): its blocks
// may start before the launch ahead of it on the stream has finished, but touch no global memory
// until it has (griddepcontrol.wait), so callers need no care; it lets the launch after it start
// after its main loop. QUANTDLLM_NO_PDL=1 makes it a plain launch.
cudaError_t launch_lut_mma(const MmaArgs& a, const MmaPlan& p, cudaStream_t stream);

// ---- Large-M tensor-core path on sm_90a (csrc/lut_wgmma_kernel.cuh; host side csrc/lut_wgmma.cu): the same weight layout as lut_mma, wgmma
// with the dequantized W in registers. Two ways to pass x:
// - a.x_natural (no in_scale): x as stored; the kernel reorders the codes inside each lane quad
//   instead. It waits for the launch before it (griddepcontrol.wait) before any global
//   read, so callers need no care.
// - otherwise x goes through launch_permute_x first (k in the layout's fragment order, in_scale
//   folded in); launch_lut_wgmma then reads a.x as that copy and ignores a.in_scale, with the
//   ordering contract below.
// A tile split along K runs as one thread-block cluster of ksplit blocks that sum their slices in
// distributed shared memory: no workspace, no semaphores (a.workspace / a.semaphores unused).
// With the pre-pass, launch_lut_wgmma is a programmatic dependent launch: launch it right after
// launch_permute_x on the same stream. It waits for that launch before reading x, but reads everything else (codes, scales,
// bias, t, boundaries, the timestep table) from its start, so those must be written before
// launch_permute_x is launched. launch_permute_x is a programmatic dependent launch too (sm_90+): it
// waits for the launch before it before reading x, and lut_wgmma starts only as it ends, so "written
// before" means by any launch ahead of it on the stream. lut_wgmma lets the launch after it start
// after its main loop (that launch, if programmatic, waits for all of it before touching memory).
bool wgmma_built();  // whether this build holds sm_90a device code (QUANTDLLM_SM90A, set by setup.py)
struct WgmmaPlan {
    int bn = 128;        // tokens per block: 64, 128 or 256
    int ksplit = 1;      // K slices of each split tile
    int per_split = 0;   // 64-k chunks per slice (a multiple of 4 when ksplit > 1)
    int split_from = 0;  // tiles (row block major, token tile minor) below this run whole K; with
                         // ksplit > 1 (<= 8: one cluster per tile) the rest run ksplit slices each, one
                         // block per slice after them; a multiple of ksplit
    int ts_shift = 0;    // with a timestep table and 4-bit codes, the 64-k chunks slice 0 of a split
                         // tile hands to slice 1 (slice 0 runs the table's chunk first); < per_split
};
WgmmaPlan wgmma_plan(int M, int N, int K, int num_sms);
cudaError_t launch_permute_x(const void* x, const void* in_scale, void* out, DType dt, int M, int K,
                             cudaStream_t stream);
cudaError_t launch_lut_wgmma(const MmaArgs& a, const WgmmaPlan& p, cudaStream_t stream);

}  // namespace quantdllm
