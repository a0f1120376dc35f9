// Tensor-core LUT GEMM for large M on sm_90a: wgmma with the dequantized W as the register A operand.
//
// Y^T = W X^T, as in lut_mma.cu (same weight layout, same magic-number decode), but with Hopper's
// warpgroup MMA: each of a block's two warpgroups owns 64 rows of W (one 16-row tile per warp) and
// multiplies them by BN tokens per wgmma.m64nBNk16, A (the dequantized W) from registers and B (x)
// from shared memory. mma.sync peaked near 300 TFLOP/s in lut_mma at M = 256 (H200); wgmma is the
// only way to the ~700 TFLOP/s that fp16 cuBLAS reaches at M >= 1024.
//
// x, two ways. The layout permutes k inside every 64-code chunk so that a lane of lut_mma reads its
// 16 consecutive k with two 16-byte loads (lut_mma.cu's header), while wgmma reads B from shared
// memory in natural fragment order. Either x is permuted the same way once per call by a pre-pass
// (launch_permute_x, in_scale folded in: M*K*2 bytes each way, ~3 µs of a (4096, 4096) M = 512
// call), or, without in_scale (XNAT), x is read as stored and each lane quad reorders its codes
// instead (4-bit: quad_transpose4, ~19 instructions per chunk, which slow the loop by 2-4% at
// 256-token tiles and ~18% at 128; 2-bit: QuadSwap, 10; 3-bit: a gather through shared memory, ~9;
// the op takes it from M = 256). Then one thread per block copies each 64-k chunk of it with a TMA box copy
// (64 k x BN tokens, 128-byte swizzle: the canonical K-major layout of a wgmma descriptor, 8-row
// groups 1024 bytes apart; rows past M read as zeros) that completes on the stage's mbarrier. The
// copies had been eight 16-byte cp.async per thread per chunk, whose address math (recomputed every
// chunk at ~216 registers) was ~150 of a warp's ~258 instructions per chunk: the warps, not the
// tensor cores, set the pace.
//
// Pipeline, per block of 2 warpgroups (256 threads, 128 W rows x BN tokens): a ring of x stages
// (64-k chunks), kAhead = stages - 2 chunks in flight. Each chunk: one block barrier (which proves
// that every warpgroup has retired the wgmmas of the chunk two back, whose stage the next copy
// overwrites), issue the copy kAhead ahead, wait on the chunk's mbarrier, wgmma x 4 (k16 steps) on
// the A decoded during the previous chunk, commit, wait for the previous chunk's group (its A set is
// then free), decode the next chunk's A into that set. Codes and scales ride in a lane-private
// cp.async ring of super-chunks (each lane reads back only what it copied: no barrier). Per-stage
// "empty" mbarriers in place of the block barrier measured slower (NOTES, tenth session).
//
// K split (wgmma_plan: when the tiles leave SMs idle, or a last wave is partial): the tiles from
// plan.split_from on run as plan.ksplit slices of K, one block each, and a tile's slices are one
// thread-block cluster. Each slice stages its fp32 tile in its shared memory; after a cluster barrier
// each sums its share of the tokens over every slice's tile (two slices: the other's half arrives by
// bulk copies into a receive area; more: loads over distributed shared memory; slice order either
// way: deterministic) and adds the bias terms. One launch, no workspace, no semaphores.
//
// This header holds the kernel; csrc/lut_wgmma.cu the plan, the x pre-pass and the launch checks;
// lut_wgmma_w{2,3,4}.cu each one code width's 12 kernels (dtype x tile x x form), so that the build
// compiles the widths in parallel (one translation unit of all 36 was ~80 s on one core, the
// critical path of a build).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <type_traits>
#include <utility>

#include <cuda.h>           // CUtensorMap (the x copies are TMA loads)
#include <cudaTypedefs.h>   // PFN_cuTensorMapEncodeTiled, fetched through the runtime: no -lcuda

#include "dispatch.cuh"
#include "lut_device.cuh"
#include "mma_fragments.cuh"

namespace quantdllm {
namespace {
using namespace frag;

constexpr int kWGs = 2;                 // warpgroups per block, 64 W rows each
constexpr int kWWarps = kWGs * 4;
constexpr int kWThreads = kWWarps * 32;
constexpr int kWRows = kWGs * 64;       // W rows per block
// 64-k chunks of x in the ring (BN = 256: 32 KB stages, five fit beside the code ring), and the
// chunks in flight: the stage of chunk i - 2 is the free one
template <int BN> constexpr int kXStages = BN == 256 ? 5 : 6;
template <int BN> constexpr int kAhead = kXStages<BN> - 2;
constexpr int kOutPad = 4;              // fp32 epilogue tile: row stride kWRows + 4 (conflict-free stores)
constexpr int kMaxKSplit = 8;           // K slices of a tile: one cluster (8 blocks: the portable cluster size)
constexpr double kTsChunkUs = 0.8;      // what slice 0's timestep chunk adds, µs (H200, 64-256 tokens: 0.6-1.0)

// Shared memory of one block: the x ring (1024-aligned), reused by the fp32 epilogue tile, then the
// code ring (SC super-chunks; a slot is refilled kAhead chunks before use, after its previous
// super-chunk's last chunk has been decoded).
// The loop body (UNR chunks, ending in wgmma.wait_group 0) and the code ring's slots are sized so
// that every ring index of a chunk is fixed by its place in the body (bodies start at multiples of
// UNR): UNR a multiple of 2 S (stage r % S, the stage barrier's phase (r / S) & 1), of CH and of 2
// (the A sets), and SC dividing UNR / CH (slot (r / CH) % SC). The modulo and phase arithmetic of a
// runtime chunk index was ~20 of a warp's ~140-160 instructions per chunk, and the 64-128-token loop
// is bound by its warps' instruction latency (eighteenth session, call 2); without it the launches
// ran 0.6-5% faster (call 6: mostly uniform-datapath instructions, off the decode's dependency
// chains). Where that would take a body longer than 12 chunks (3-bit at 256 tokens: 20), the body
// is 8 chunks with indices computed.
constexpr int gcd_(int a, int b) { return b == 0 ? a : gcd_(b, a % b); }
constexpr int lcm_(int a, int b) { return a / gcd_(a, b) * b; }
constexpr int smallest_divisor_at_least(int n, int lo) {
    for (int d = lo; d < n; ++d)
        if (n % d == 0) return d;
    return n;
}
template <int BITS, int BN>
struct WPlan {
    static constexpr int CH = Layout<BITS>::kChunks, V = Layout<BITS>::kWords / 4;
    static constexpr int S = kXStages<BN>;
    static constexpr int kUnrFixed = lcm_(2 * S, CH);
    static constexpr bool kFixed = kUnrFixed <= 12;
    static constexpr int UNR = kFixed ? kUnrFixed : 8;
    static constexpr int kScMin = (kAhead<BN> + CH - 1) / CH + 1;  // a slot refilled kAhead chunks ahead
    static constexpr int SC = kFixed ? smallest_divisor_at_least(UNR / CH, kScMin) : kScMin;
    static_assert(UNR % CH == 0 && UNR % 2 == 0 && SC >= kScMin, "the loop body and the rings");
    static_assert(!kFixed || ((UNR / S) % 2 == 0 && (UNR / CH) % SC == 0), "fixed ring indices");
    static constexpr int kXStage = BN * 128;
    static constexpr int kSlotWarp = V * 512 + CH * 256;  // a warp's codes (V x 32 lanes x 16 B), scales (CH x 32 x 8 B)
    static constexpr int kXBytes = kXStages<BN> * kXStage;
    static constexpr int kOutBytes = BN * (kWRows + kOutPad) * 4;
    static constexpr int kFront = kXBytes > kOutBytes ? kXBytes : kOutBytes;
    static constexpr int kCodeBytes = SC * kWWarps * kSlotWarp;
    // 3-bit, x as stored: each warp's gather area past the code ring, a row of 4 x 16 bytes per lane
    // (padded to 80: conflict-free 16-byte stores and loads), gather_blocks
    static constexpr int kGatherRow = 80, kGatherWarp = BITS == 3 ? 32 * kGatherRow : 0;
    static constexpr int kGatherOff = kFront + kCodeBytes;
    // A two-slice K split's receive area, after the loop: the peer's partial sums of this slice's
    // half of the tokens, right past the fp32 tile (over the rings' tails, free by then), kShare
    // token groups of kTokStep tokens, each completing on its own mbarrier
    static constexpr int kTokStep = kWThreads / (kWRows / 8), kShare = BN / kTokStep / 2;
    static constexpr int kRecvOff = kOutBytes, kRecvBytes = kOutBytes / 2;
    static constexpr int kRingsEnd = kGatherOff + kWWarps * kGatherWarp;
    static constexpr int kEnd = kRingsEnd > kRecvOff + kRecvBytes ? kRingsEnd : kRecvOff + kRecvBytes;
    // past both: an mbarrier per x stage, then one per received token group
    static constexpr int kBarOff = (kEnd + 7) / 8 * 8;
    static constexpr int kSmem = 1024 + kBarOff + (kXStages<BN> + kShare) * 8;  // + alignment slack
    static_assert(kSmem <= 227 * 1024, "one block's shared memory on sm_90");
};

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)  // the device pass for sm_90a: everything wgmma
// Matrix descriptor of a K-major operand in 128-byte-swizzled rows: start >> 4, leading offset 1
// (unused with this swizzle), stride 1024 bytes between 8-row groups, swizzle mode 1 (128 B).
__device__ __forceinline__ uint64_t sw128_desc(uint32_t addr) {
    return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (1ull << 16) | (64ull << 32) | (1ull << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory"); }
// An empty asm that takes the registers as read-write: their values are computed before it, and
// not moved past the wgmma fence that follows.
__device__ __forceinline__ void pin(uint32_t (&r)[4]) {
    asm volatile("" : "+r"(r[0]), "+r"(r[1]), "+r"(r[2]), "+r"(r[3]));
}
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

// The K slices of a tile are one thread-block cluster: a barrier over it (release / acquire: the
// slices' shared-memory tiles written before are visible after), and 16-byte loads from the shared
// memory of block `rank` of the cluster at the offset of this block's address `addr`.
using dev::cluster_arrive;
using dev::cluster_wait;
__device__ __forceinline__ void cluster_sync() {
    cluster_arrive();
    cluster_wait();
}
// An arrive that orders nothing: after it this block only stores y, which no other block reads, and
// a releasing arrive would wait for those stores to drain (~6 µs of a 256-token tile: eleventh session)
using dev::cluster_arrive_relaxed;
// Bulk copy (the TMA engine) of `bytes` from this block's shared memory to block `rank`'s at the same
// offset as `dst`, completing on that block's mbarrier at the offset of `bar`.
__device__ __forceinline__ void push_to_peer(uint32_t dst, uint32_t src, uint32_t bytes, uint32_t bar, int rank) {
    const uint32_t rdst = dev::cluster_map(dst, rank), rbar = dev::cluster_map(bar, rank);
    asm volatile("cp.async.bulk.shared::cluster.shared::cta.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                 ::"r"(rdst), "r"(src), "r"(bytes), "r"(rbar)
                 : "memory");
}
__device__ __forceinline__ float4 ld_cluster4(uint32_t remote) {
    float4 v;
    asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "r"(remote) : "memory");
    return v;
}

// The x stages are filled by the tensor-memory accelerator: one thread issues a 2-D box copy
// (64 k x BN tokens, 128-byte swizzle: the layout the wgmma descriptor reads, rows past M zero)
// that completes on the stage's mbarrier; every thread waits on that barrier's phase.
__device__ __forceinline__ void mbar_init(uint32_t bar) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void tma_x_chunk(uint32_t dst, uint32_t bar, const CUtensorMap* map, int k, int m,
                                            uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
        ::"r"(dst), "l"(reinterpret_cast<uint64_t>(map)), "r"(k), "r"(m), "r"(bar)
        : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    uint32_t done = 0;
    do {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}"
                     : "=r"(done)
                     : "r"(bar), "r"(parity)
                     : "memory");
    } while (!done);
}

#define QD_WGMMA_N64(TY) \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n" \
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " " \
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, " \
                 "{%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}" \
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]) \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(one))
#define QD_WGMMA_N128(TY) \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n" \
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " " \
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, " \
                 "{%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}" \
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]) \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(one))
#define QD_WGMMA_N256(TY) \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %133, 0;\n" \
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32." TY "." TY " " \
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, " \
                 "{%128, %129, %130, %131}, %132, p, 1, 1, 0;\n}" \
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127]) \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(one))

// D (64 x BN fp32, the warpgroup's registers) += A (64 x 16, registers) * B (16 x BN at desc); `one` (1)
// is the scale-d flag, a register defined before the wgmma fence (see the kernel)
template <typename T, int BN>
__device__ __forceinline__ void wgmma_rs(float (&d)[BN / 2], const uint32_t (&a)[4], uint64_t desc, uint32_t one) {
    if constexpr (BN == 256) {
        if constexpr (std::is_same_v<T, __half>) QD_WGMMA_N256("f16");
        else QD_WGMMA_N256("bf16");
    } else if constexpr (BN == 128) {
        if constexpr (std::is_same_v<T, __half>) QD_WGMMA_N128("f16");
        else QD_WGMMA_N128("bf16");
    } else {
        static_assert(BN == 64, "BN is 64, 128 or 256");
        if constexpr (std::is_same_v<T, __half>) QD_WGMMA_N64("f16");
        else QD_WGMMA_N64("bf16");
    }
}

// x as stored (XNAT, 4-bit): a lane's code words hold k = 16 q + 4 s + {0..3} of rows g and g + 8
// (the layout's order, lut_mma.cu), while wgmma step st on natural x needs k = 16 st + 2 q + 8 h +
// {0, 1} at lane q: two bytes of lane st's words s = q / 2 and 2 + q / 2. Inside each quad, in
// round r each lane builds (one byte permutation) the word that lane q ^ r needs from it and swaps
// it with that lane (shuffle xor r); the word received in round r belongs to step q ^ r, so two
// conditional swaps put them in step order. Nibble j of the result is then row g + 8 (j & 1), k =
// 16 st + 2 q + 8 (j & 3) / 2 + j / 4: the decode below reads it unchanged. ~19 instructions per
// chunk, against a pre-pass that moved M x K x 2 bytes each way (~3 µs of a (4096, 4096) M = 512
// call). sel[0] / sel[1]: the byte selectors for rounds whose partner has bit 0 equal / opposite to q's.
__device__ __forceinline__ void quad_transpose4(uint32_t (&w)[4], int q) {
    const bool hi_pair = q & 2;  // rounds 0 and 1 take words (q / 2, 2 + q / 2), rounds 2 and 3 the others
    const uint32_t x0 = hi_pair ? w[1] : w[0], y0 = hi_pair ? w[3] : w[2];
    const uint32_t x1 = hi_pair ? w[0] : w[1], y1 = hi_pair ? w[2] : w[3];
    const uint32_t same = (q & 1) ? 0x7351u : 0x6240u, other = (q & 1) ? 0x6240u : 0x7351u;
    uint32_t r[4];
    r[0] = __byte_perm(x0, y0, same);
    r[1] = __shfl_xor_sync(0xFFFFFFFFu, __byte_perm(x0, y0, other), 1);
    r[2] = __shfl_xor_sync(0xFFFFFFFFu, __byte_perm(x1, y1, same), 2);
    r[3] = __shfl_xor_sync(0xFFFFFFFFu, __byte_perm(x1, y1, other), 3);
    // step st's word is r[st ^ q]
    if (q & 1) w[0] = r[1], w[1] = r[0], w[2] = r[3], w[3] = r[2];
    else w[0] = r[0], w[1] = r[1], w[2] = r[2], w[3] = r[3];
    if (q & 2) {
        const uint32_t t0 = w[0], t1 = w[1];
        w[0] = w[2], w[1] = w[3], w[2] = t0, w[3] = t1;
    }
}

// x as stored (XNAT), 2-bit: the data lane q needs for step st sits in lane st's words (as for
// 4-bit), but in 2-bit fields: every code word holds lane q's fields at the position
// bits b2 = q & 1 and b3 = q >> 1 of each half (the layout puts them there). Two butterfly stages per
// word swap those bits of the quad index and of the position (cuda_layout.quad_exchange emulates
// them): for b2 the lanes whose bit 0 differs trade the nibbles meant for each other, each rotating
// its word by 4 toward the partner's slots, one shuffle and one LOP3; for b3, whole bytes, one
// shuffle and one byte permutation. Afterwards the position bits hold the source lane's (= the
// step's) bits, at places that depend on no lane: DecodeNat reads them with constant shifts. 5
// instructions per word: 10 per chunk, against the pre-pass's M x K x 2 bytes
// each way. The per-lane constants are three registers.
struct QuadSwap {
    uint32_t amt, keep, sel;  // b2's rotate (left, mod 32) and own nibbles; b3's byte selector
    __device__ __forceinline__ explicit QuadSwap(int q)
        : amt(q & 1 ? 4u : 28u), keep(q & 1 ? 0xF0F0F0F0u : 0x0F0F0F0Fu), sel(q & 2 ? 0x3715u : 0x6240u) {}
    __device__ __forceinline__ uint32_t operator()(uint32_t v) const {
        const uint32_t r = __shfl_xor_sync(0xFFFFFFFFu, __funnelshift_l(v, v, amt), 1);
        v = (v & keep) | (r & ~keep);
        return __byte_perm(v, __shfl_xor_sync(0xFFFFFFFFu, v, 2), sel);  // bytes (v0 r0 v2 r2) or (r1 v1 r3 v3)
    }
};

// A register j of step st of chunk c from the exchanged 2-bit words: word 2c + (j >> 1) at 4 st +
// 2 (j & 1); rows g + 8 at f = 4 with magic/4, as Decode's: one shift per k pair. 3-bit: from the
// gathered blocks (gather_blocks: word 4 st + c is block q of chunk c of lane st of the quad), as
// Decode's.
template <typename T, int BITS>
struct DecodeNat {
    static_assert(BITS == 2 || BITS == 3, "x as stored: 4-bit reorders whole words (quad_transpose4)");
    using D = Decode<T, BITS, false>;
    static constexpr uint32_t kMagicHi = D::kMagicHi;
    static __device__ __forceinline__ uint32_t a_reg(const uint32_t* w, int c, int st, int j) {
        if constexpr (BITS == 3) return D::from_block(w[4 * st + c], j >> 1, j & 1);
        const uint32_t magic = (j & 1) ? kMagicHi : Pair<T>::kMagic;
        return lop3_and_or(w[2 * c + (j >> 1)] >> (4 * st), (j & 1) ? 0x000C000Cu : 0x00030003u, magic);
    }
};

// x as stored, 3-bit: lane q of a quad needs block q (Decode) of each quad lane's words, for every
// chunk. Once per super-chunk each lane stores its four blocks of the four chunks, block d into the
// gather row of lane 4g + d at its own 16 bytes (q), and after a warp barrier loads its own row: 4 +
// 4 16-byte accesses (rows 80 bytes apart: no bank conflicts) and block 3's assembly (6 per chunk),
// ~9 instructions per chunk, where a shuffle transpose of the quad took ~25. gw[4 st + c] is then
// block q of chunk c of lane st. (The twenty-first session's 3-bit exchange moved nibbles and bytes
// of a 2-bit and a 1-bit plane: 15 instructions per chunk, on a decode of 46 per chunk.)
template <typename T>
__device__ __forceinline__ void gather_blocks(const uint32_t (&cw)[12], uint32_t (&gw)[16], uint32_t row0, int q) {
    using D = Decode<T, 3, false>;
#pragma unroll
    for (int d = 0; d < 4; ++d)  // row0: this quad's first row; lane 4g + d's row, this lane's 16 bytes
        asm volatile("st.shared.v4.u32 [%0], {%1,%2,%3,%4};" ::"r"(row0 + d * 80 + q * 16), "r"(D::block(cw, 0, d)),
                     "r"(D::block(cw, 1, d)), "r"(D::block(cw, 2, d)), "r"(D::block(cw, 3, d))
                     : "memory");
    __syncwarp();
#pragma unroll
    for (int st = 0; st < 4; ++st)
        asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];"
                     : "=r"(gw[4 * st]), "=r"(gw[4 * st + 1]), "=r"(gw[4 * st + 2]), "=r"(gw[4 * st + 3])
                     : "r"(row0 + q * 80 + st * 16)
                     : "memory");
}
#endif

template <typename T, int BITS, int BN, bool XNAT>
__global__ void __launch_bounds__(kWThreads, 1) lut_wgmma_kernel(const MmaArgs a, const WgmmaPlan p,
                                                                    const __grid_constant__ CUtensorMap xmap) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    // Without the pre-pass, the launch before this one is the caller's, which may write anything
    // this one reads (x, t, even the weights): wait for it before the first global read.
    if constexpr (XNAT) dev::pdl_wait();
    using P = Pair<T>;
    using L = Layout<BITS>;
    using W = WPlan<BITS, BN>;
    // the decode: x as stored at 2/3 bits reads the exchanged (2-bit) or gathered (3-bit) words (DecodeNat)
    using DX = std::conditional_t<XNAT && BITS != 4, DecodeNat<T, BITS>, Decode<T, BITS, false>>;
    constexpr int CH = W::CH, V = W::V, S = kXStages<BN>, AHEAD = kAhead<BN>;
    MMA_TRACE(a, 0, global_ns());
    MMA_TRACE(a, 1, clock64());
    extern __shared__ uint8_t smem_raw[];
    const uint32_t raw = dev::smem_u32(smem_raw), base = (raw + 1023u) & ~1023u;
    const uint32_t xring = base, cring = base + W::kFront, bars = base + W::kBarOff;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, q = lane & 3;
    // block -> (tile, K slice): tiles below p.split_from run whole K, the rest p.ksplit slices each
    const int b = blockIdx.x, split = b >= p.split_from, ksplit = split ? p.ksplit : 1;
    const int tidx = split ? p.split_from + (b - p.split_from) / p.ksplit : b, z = split ? (b - p.split_from) % p.ksplit : 0;
    const int nb = tidx / a.token_tiles, tb = tidx - nb * a.token_tiles;
    const int tiles = (a.N + 31) / 32 * 2;
    const int tile = min(nb * kWWarps + warp, tiles - 1);  // warps past the last tile compute a copy, never stored
    const int m0 = tb * BN, n0 = nb * kWRows;
    // this block's K slice: chunks c0 .. c0 + nchunks - 1, c0 whole super-chunks (CH). With a timestep
    // table, slice 0 runs the table's chunk ahead of its loop, ~1 µs of prologue that slice 1 would
    // wait for at the cluster's sum (sixteenth session, call 1; seventeenth, call 6); with 4-bit codes
    // (one chunk per super-chunk) slice 0 hands its last p.ts_shift code chunks to slice 1 instead.
    // Only for a tile that is split: a plan without a split has split_from 0, so `split` alone is true
    // for every block of it (that form dropped the last chunk of unsplit tiles: sixteenth, call 5).
    const int shift = ksplit > 1 && BITS == 4 && a.ts_bias ? p.ts_shift : 0;
    const int c0 = z == 0 ? 0 : z * p.per_split - (z == 1 ? shift : 0);
    const int nchunks = split ? min((z + 1) * p.per_split - (z == 0 ? shift : 0), a.K >> 6) - c0 : a.K >> 6;
    const int kbase = c0 << 6;
    const int U = (a.K + L::kSuper - 1) / L::kSuper;
    const uint4* code_src =
        reinterpret_cast<const uint4*>(a.codes) + static_cast<int64_t>(tile) * U * V * 32 + lane + (c0 / CH) * 32 * V;
    const uint2* sz_src = static_cast<const uint2*>(a.sz) + static_cast<int64_t>(tile) * a.groups * 8 + g;
    const uint32_t my_slot0 = cring + warp * W::kSlotWarp + lane * 16;  // + slot * kWWarps * kSlotWarp
    const uint32_t my_sz0 = cring + warp * W::kSlotWarp + V * 512 + lane * 8;

    // Ring indices of chunk j at position pos of its loop body (pos = j outside the loop): with fixed
    // indices (WPlan::kFixed) from pos alone, which the compiler folds in the unrolled body
    auto stage_of = [&](int j, int pos) { return (W::kFixed ? pos : j) % S; };
    auto phase_of = [&](int j, int pos) { return ((W::kFixed ? pos : j) / S) & 1; };
    auto slot_of = [&](int j, int pos) { return ((W::kFixed ? pos : j) / CH) % W::SC; };
    // chunk j of x into stage j % kXStages (thread 0, one TMA copy); with the first chunk of a
    // super-chunk, this lane's codes and scales
    auto issue_x = [&](int j, int pos) {
        const int st = stage_of(j, pos);
        if (tid == 0) tma_x_chunk(xring + st * W::kXStage, bars + st * 8, &xmap, kbase + (j << 6), m0, W::kXStage);
    };
    auto issue_codes = [&](int j, int pos) {
        if (pos % CH == 0) {  // (j - pos: a multiple of UNR, so of CH)
            const int u = j / CH;
            const uint32_t so = slot_of(j, pos) * kWWarps * W::kSlotWarp;
#pragma unroll
            for (int v = 0; v < V; ++v) cp_async16(my_slot0 + so + v * 512, code_src + static_cast<int64_t>(u) * 32 * V + v * 32);
#pragma unroll
            for (int c = 0; c < CH; ++c) {
                const int k = kbase + ((j + c) << 6);
                if (CH > 1 && k >= a.K) break;
                cp_async8(my_sz0 + so + c * 256, sz_src + (k >> a.group_shift) * 8);
            }
        }
    };
    auto issue = [&](int j, int pos) {
        issue_x(j, pos);
        issue_codes(j, pos);
    };

    // Timestep bias as one more K chunk of the GEMM, run before the loop: B = the tokens' buckets
    // one-hot (64 k x BN tokens, written into the ring's last stage in the TMA's swizzled layout: no
    // copy goes there before the loop's second step, whose barrier follows this chunk's wait), A =
    // the table transposed (A[row][k] = ts_bias[k][n0 + row] for k < T <= 64, rounded to T), one k16
    // step per 16 buckets. The accumulators start with each token's row and the epilogue is the
    // plain one. Its loads (t, boundaries, table) are issued first, ahead of the ring's copies. It
    // costs ~1 µs of prologue (2.2-2.6 µs against 1.4-1.7 without a table; 3.0 before its loads took
    // few instructions: seventeenth session, calls 5-6). The proxy fence below (MEMBAR.ALL.CTA in
    // SASS, which waits for the thread's copies in flight) is not that cost: with only chunk 0's codes
    // issued ahead of it the prologue was the same (call 3). Branch next/ts-onehot-prepass has the
    // pre-pass write the one-hot rows instead: no fence.
    // (The twelfth session added the rows in the epilogue, staged in shared memory with a bucket and
    // a row load per token: ~2 µs of a 256-token tile; this chunk after the loop ~1.9 µs: call 2.)
    // With a K split, slice 0 adds the table. t is read before griddepcontrol.wait: the launch
    // before this one (the x permutation) does not write it.
    const bool ts_chunk = a.ts_bias && z == 0;
    const int wrow = (warp >> 2) * 64 + (warp & 3) * 16 + g;  // this lane's first W row of the block
    uint32_t raw_a[4][4][2] = {};  // the lane's A elements as stored: rows wrow (+ 8), k = 16 st + 2q (+ 8) (+ 1)
    float tv = 0.f, b_lo = 0.f, b_hi = 0.f;  // token tid's t; boundaries lane and 32 + lane
    if (ts_chunk) {
        // Few instructions on purpose: the first form (a bounds test and a dtype select per element, 32
        // elements) cost the block ~1 µs before its first barrier (seventeenth session, call 5: 1.45
        // µs from entry against 0.44 without a table). Here the k tests are warp-uniform per group of
        // 8 k (T = 8 loads 4 elements), the row tests two predicates, the dtype one branch.
        const int nbk = a.nbounds + 1, r0 = n0 + wrow;
        const bool ok0 = r0 < a.N, ok1 = r0 + 8 < a.N;
        auto load_table = [&](auto elem) {
            using E = decltype(elem);
            const E* tb = static_cast<const E*>(a.ts_bias) + static_cast<int64_t>(2 * q) * a.N + r0;
#pragma unroll
            for (int st = 0; st < 4; ++st)
#pragma unroll
                for (int hi = 0; hi < 2; ++hi) {
                    if (16 * st + 8 * hi >= nbk) continue;  // no k of these 8 (warp-uniform)
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        const int k = 16 * st + 8 * hi + h;  // + 2q, in tb
                        const E* p = tb + static_cast<int64_t>(k) * a.N;
                        const bool kok = k + 2 * q < nbk;
                        if (kok && ok0) raw_a[st][2 * hi][h] = __ldg(p);
                        if (kok && ok1) raw_a[st][2 * hi + 1][h] = __ldg(p + 8);
                    }
                }
        };
        if (a.ts_bias_dtype == DType::F32) load_table(uint32_t{});
        else load_table(uint16_t{});
        if (tid < BN) {
            tv = __ldg(a.t + (a.t_numel == 1 ? 0 : min(m0 + tid, a.M - 1)));
            if (lane < a.nbounds) b_lo = __ldg(a.bounds + lane);
            if (lane + 32 < a.nbounds) b_hi = __ldg(a.bounds + 32 + lane);
        }
    }

    float acc[BN / 2];
#pragma unroll
    for (int e = 0; e < BN / 2; ++e) acc[e] = 0.f;
    if (tid == 0) {
#pragma unroll
        for (int s = 0; s < S + W::kShare; ++s) mbar_init(bars + s * 8);  // the x stages', then the received groups'
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();  // the barriers exist before anyone waits on them
    MMA_TRACE(a, 13, clock64());
#pragma unroll
    for (int j = 0; j < AHEAD; ++j) {
        if (j < nchunks) issue_codes(j, j);
        cp_async_commit();
    }
    // x is written by the launch before this one (launch_permute_x), which this one may overlap
    // (programmatic dependent launch): the codes above do not depend on it, the x copies wait for
    // it to complete. (Thread 0 issues every x copy; the others wait on the stages' barriers.)
    if (tid == 0) {
        asm volatile("griddepcontrol.wait;" ::: "memory");
#pragma unroll
        for (int j = 0; j < AHEAD; ++j)
            if (j < nchunks) issue_x(j, j);
    }
    if (ts_chunk) {  // (above: what it computes and why here)
        MMA_TRACE(a, 14, clock64());  // the chunk starts: the ring's first copies issued
        const int steps = (a.nbounds + 1 + 15) >> 4;
        const uint32_t onehot = xring + (S - 1) * W::kXStage;
        if (tid < BN) {  // token row tid: its bucket's k is one, the rest zero (128-byte swizzle)
            int bk = 0;  // the bucket: boundaries <= t, lane i's two boundaries by shuffle
            for (int i = 0; i < a.nbounds; ++i) bk += __shfl_sync(0xFFFFFFFFu, i < 32 ? b_lo : b_hi, i & 31) <= tv;
            const uint32_t one_bits = (P::kOnes & 0xFFFFu) << (16 * (bk & 1));
#pragma unroll
            for (int c = 0; c < 8; ++c) {
                const int e = c == bk >> 3 ? (bk >> 1) & 3 : -1;  // the 32-bit word holding the one
                asm volatile("st.shared.v4.u32 [%0], {%1,%2,%3,%4};" ::"r"(onehot + tid * 128 + ((c ^ (tid & 7)) << 4)),
                             "r"(e == 0 ? one_bits : 0u), "r"(e == 1 ? one_bits : 0u), "r"(e == 2 ? one_bits : 0u),
                             "r"(e == 3 ? one_bits : 0u)
                             : "memory");
            }
        }
        uint32_t At[4][4];
#pragma unroll
        for (int st = 0; st < 4; ++st)
#pragma unroll
            for (int jj = 0; jj < 4; ++jj)
                At[st][jj] = dev::pack2<T>(dev::raw_to_f(raw_a[st][jj][0], a.ts_bias_dtype),
                                           dev::raw_to_f(raw_a[st][jj][1], a.ts_bias_dtype));
        MMA_TRACE(a, 15, clock64());  // t, the boundaries and the table landed; one-hot rows stored
        fence_proxy_async();  // the one-hot rows (generic stores) visible to the wgmmas (async proxy)
        __syncthreads();
        uint32_t one = 1;
        asm volatile("" : "+r"(one));
        wgmma_fence();
#pragma unroll
        for (int st = 0; st < 4; ++st)
            if (st < steps) wgmma_rs<T, BN>(acc, At[st], sw128_desc(onehot + st * 32), one);
        wgmma_commit();
        wgmma_wait<0>();
    }
    const typename P::T2 mg[2] = {P::bits(P::kMagic), P::bits(DX::kMagicHi)};  // rows g, g + 8 (Decode)
    // Two register sets of A and of the descriptors, by chunk parity: chunk i + 1 is decoded while
    // chunk i's wgmmas run. The compiler sees a wgmma as a synchronous asm that has consumed its
    // inputs, so each set is pinned until the wait that retires its chunk (else chunk i + 1's A
    // could take chunk i's registers). ptxas serializes every wgmma (C7513) when a wgmma may be in
    // flight across a loop back edge, so the loop body is UNR chunks ending in wait<0>: the next
    // body's first A is decoded before it, and only the tensor-core tail of the body's last chunk
    // is exposed (to this warpgroup; the other one's wgmmas can fill it).
    uint32_t A[2][4][4] = {};
    uint64_t desc[2][4] = {};
    uint32_t cw[L::kWords];
    constexpr bool kGather = XNAT && BITS == 3;
    uint32_t gw[kGather ? 16 : 1];  // 3-bit, x as stored: the gathered blocks (gather_blocks)
    const uint32_t gather_row0 = base + W::kGatherOff + warp * W::kGatherWarp + (lane & ~3) * W::kGatherRow;
    // A of chunk i (position R in the loop body: c = R % CH, parity R & 1), codes and scales from
    // the lane's ring slot (landed: the caller waited for chunk i's copies)
    auto decode = [&](auto pos, int i) {
        constexpr int R = decltype(pos)::value, c = R % CH, par = R & 1;
        const uint32_t so = slot_of(i, R) * kWWarps * W::kSlotWarp;
        if constexpr (c == 0) {
#pragma unroll
            for (int v = 0; v < V; ++v)
                asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];"
                             : "=r"(cw[4 * v]), "=r"(cw[4 * v + 1]), "=r"(cw[4 * v + 2]), "=r"(cw[4 * v + 3])
                             : "r"(my_slot0 + so + v * 512));
            if constexpr (XNAT && BITS == 4) quad_transpose4(cw, q);
            if constexpr (kGather) gather_blocks<T>(cw, gw, gather_row0, q);
        }
        if constexpr (XNAT && BITS == 2) {  // this chunk's words
            const QuadSwap swap(q);
#pragma unroll
            for (int h = 0; h < 2; ++h) cw[2 * c + h] = swap(cw[2 * c + h]);
        }
        uint2 szv;
        asm volatile("ld.shared.v2.u32 {%0,%1}, [%2];" : "=r"(szv.x), "=r"(szv.y) : "r"(my_sz0 + so + c * 256));
        const typename P::T2 sc[2] = {P::lo(szv.x), P::hi(szv.x)};
        const typename P::T2 zr[2] = {P::lo(szv.y), P::hi(szv.y)};
#pragma unroll
        for (int st = 0; st < 4; ++st) {
#pragma unroll
            for (int jj = 0; jj < 4; ++jj)
                A[par][st][jj] = u32(__hfma2(__hsub2(P::bits(DX::a_reg(kGather ? gw : cw, c, st, jj)), mg[jj & 1]), sc[jj & 1], zr[jj & 1]));
            pin(A[par][st]);
        }
    };
    constexpr int UNR = W::UNR;  // a multiple of CH and of 2 (WPlan)
    if (nchunks > 0) {
        cp_async_wait<AHEAD - 1>();  // chunk 0's codes (this lane's own copies: no barrier)
        decode(IntTag<0>{}, 0);
    }
    MMA_TRACE(a, 3, clock64());  // chunk 0's codes landed and decoded
    for (int i0 = 0; i0 < nchunks; i0 += UNR) {
        [&]<int... R>(std::integer_sequence<int, R...>) {
            auto step = [&](auto pos) {
                constexpr int r = decltype(pos)::value, par = r & 1;
                const int i = i0 + r;
                if (i >= nchunks) return;
                __syncthreads();  // chunk i - 2's wgmmas retired everywhere: its stage is free
                if (i + AHEAD < nchunks) issue(i + AHEAD, r + AHEAD);
                cp_async_commit();
                const uint32_t xs = xring + stage_of(i, r) * W::kXStage;
                mbar_wait(bars + stage_of(i, r) * 8, phase_of(i, r));  // chunk i's x landed
#pragma unroll
                for (int st = 0; st < 4; ++st) {
                    desc[par][st] = sw128_desc(xs + st * 32);
                    asm volatile("" : "+l"(desc[par][st]));
                }
                uint32_t one = 1;  // the scale-d flag, defined before the fence (not between it and a wgmma)
                asm volatile("" : "+r"(one));
                wgmma_fence();  // A was written by ordinary instructions
#pragma unroll
                for (int st = 0; st < 4; ++st) wgmma_rs<T, BN>(acc, A[par][st], desc[par][st], one);
                wgmma_commit();
                wgmma_wait<1>();  // chunk i - 1 retired: its A set is free
#pragma unroll
                for (int st = 0; st < 4; ++st) {
                    pin(A[par ^ 1][st]);
                    asm volatile("" : "+l"(desc[par ^ 1][st]));
                }
                cp_async_wait<AHEAD - 1>();  // chunk i + 1's codes (this lane's own copies)
                if (i + 1 < nchunks) decode(IntTag<r + 1>{}, i + 1);
            };
            (step(IntTag<R>{}), ...);
        }(std::make_integer_sequence<int, UNR>{});
        wgmma_wait<0>();  // nothing in flight across the back edge (above)
    }
    wgmma_wait<0>();
    MMA_TRACE(a, 4, clock64());
    // the next launch, if it is a programmatic dependent (the next call's x pre-pass, lut_mma), may
    // start its blocks now: it waits for all of this one before touching memory
    dev::pdl_trigger();
    cp_async_wait<0>();
    fence_proxy_async();  // the TMA writes (async proxy) ordered before the generic stores below
    __syncthreads();      // the x ring becomes the fp32 output tile [token][row]
    float* out = reinterpret_cast<float*>(smem_raw + (xring - raw));
    const bool vec = (a.N & 7) == 0;  // then every (M, N) row group is 16-byte aligned
    auto aligned = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; };
    constexpr int kGroups = kWRows / 8;  // row groups of 8 rows
    // the accumulators of the token groups G (tokens 16 G .. 16 G + 15) that keep(G) accepts
    auto stage = [&](auto keep) {
#pragma unroll
        for (int jn = 0; jn < BN / 8; ++jn) {
            if (!keep(jn >> 1)) continue;
#pragma unroll
            for (int e = 0; e < 4; ++e)
                out[(jn * 8 + 2 * q + (e & 1)) * (kWRows + kOutPad) + wrow + 8 * (e >> 1)] = acc[jn * 4 + e];
        }
    };
    // Two K slices stage the other slice's groups first (the ones they push), and their own groups
    // while the pushes fly (below)
    if (ksplit == 2) {
        stage([&](int G) { return (G & 1) != z; });
        fence_proxy_async();  // the groups, stored here, are read by the bulk copies below (async proxy)
    } else {
        stage([](int) { return true; });
    }
    __syncthreads();
    MMA_TRACE(a, 2, clock64());  // the fp32 tile staged in shared memory
    T* y = static_cast<T*>(a.y);
    const int toks = min(BN, a.M - m0);
    // Thread tid always handles rows n0 + r8 .. + 7 of tokens tok0, tok0 + kTokStep, ... (the block's
    // threads are a multiple of its 16 row groups): its bias is loaded once, and a whole row group
    // (N % 8 == 0) moves with 16-byte loads and stores and no per-element test. (The per-element form
    // cost ~6.6 µs of a 256-token tile's ~50, and its K-split sum ~15 µs: tenth session's trace.)
    // The loop below is kept short on purpose: each block runs its epilogue once, from an
    // instruction cache that is cold after an L2 flush, and a per-row timestep epilogue unrolled
    // over 8 tokens (45 KB of SASS) took 6.1 µs against 2.5 with one t (twelfth session's stamps).
    constexpr int kTokStep = W::kTokStep;  // = kWThreads / kGroups
    static_assert(kWThreads % kGroups == 0 && kTokStep == 16, "a thread's rows are fixed; token groups of 16");
    const int r8 = (tid % kGroups) * 8, n = n0 + r8, tok0 = tid / kGroups;
    const int valid = max(0, min(8, a.N - n));  // rows of the group inside N
    float bias8[8] = {};
    if (a.bias && valid > 0) dev::add8(bias8, a.bias, n, a.bias_dtype, valid, vec && aligned(a.bias));
    // the staged fp32 values of token tok (16-byte aligned: the tile's row stride is 33 x 16 bytes)
    auto staged = [&](int tok, float (&v)[8]) {
        const float4* src = reinterpret_cast<const float4*>(out + tok * (kWRows + kOutPad) + r8);
        const float4 lo = src[0], hi = src[1];
        v[0] = lo.x, v[1] = lo.y, v[2] = lo.z, v[3] = lo.w, v[4] = hi.x, v[5] = hi.y, v[6] = hi.z, v[7] = hi.w;
    };
    // y of token tok (< toks), this thread's rows: the sums v + bias
    auto store_row = [&](int tok, float (&v)[8]) {
        alignas(16) T h[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) h[e] = dev::from_f<T>(v[e] + bias8[e]);
        T* dst = y + static_cast<int64_t>(m0 + tok) * a.N + n;
        if (vec && valid == 8) {
            *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(h);
        } else {
#pragma unroll
            for (int e = 0; e < 8; ++e)
                if (e < valid) dst[e] = h[e];
        }
    };
    // y of tokens first, first + step, ... < toks: the staged sums + bias, two tokens per trip
    auto store_tokens = [&](int first_tok, int step) {
        if (valid == 0) return;
#pragma unroll 1
        for (int t = first_tok; t < toks; t += 2 * step) {
            float v[2][8];
#pragma unroll
            for (int u = 0; u < 2; ++u)
                if (t + u * step < toks) staged(t + u * step, v[u]);
#pragma unroll
            for (int u = 0; u < 2; ++u) {
                if (t + u * step >= toks) break;
                store_row(t + u * step, v[u]);
            }
        }
    };
    if (ksplit == 1) {
        store_tokens(tok0, kTokStep);
        MMA_TRACE(a, 5, clock64());
        MMA_TRACE(a, 8, global_ns());
        MMA_TRACE(a, 6, global_ns());
        MMA_TRACE(a, 9, clock64());
        MMA_TRACE(a, 7, sm_id());
        return;
    }
    // K split: the tile's slices are one cluster (block rank z), each with its fp32 tile staged in
    // shared memory above; slice z sums its share of the tokens (the thread's z, z + ks, ... of its
    // tokens: whole groups of kTokStep) over every slice's tile, own slice first, then the others in
    // rank order (a fixed order per token: a second call gives the same bits), and stores y.
    // - Two slices (what wgmma_plan picks): after a cluster barrier (both tiles staged, both rings
    //   idle), each slice pushes the other's share of its tile into the other's receive area with
    //   bulk copies (the TMA engine, one per token group, each completing on its own mbarrier of the
    //   receiver; its own groups are staged after the pushes are issued), and sums its own cells
    //   with each received group as it lands, storing its y at once: the y stores run under the
    //   transfer (at 256 tokens the first group lands ~1.5 µs after the barrier, the other 7 ~0.13
    //   µs apart; summing after the whole share had landed left 1.3 µs of y stores behind it:
    //   nineteenth session). (Pulling the share with 16-byte loads over the cluster's network moved
    //   ~14 GB/s per SM, 4.7 µs of a 256-token slice: sixteenth session, call 1.)
    // - More slices (forced only): each slice pulls its share from every other tile, all of a tile's
    //   loads issued before the first add; a token past the tile's end reads the share's first row
    //   instead (in bounds, its sum unused).
    //   The sums go back to the slice's own cells (no other slice reads them) and y is stored from
    //   there.
    // The second cluster barrier's arrive comes once this block has everything it needs from the
    // others and its wait just before exit: each tile stays alive until the others are done with it,
    // and the y stores run inside the barrier (a releasing arrive after them waited for them to
    // drain, ~6 µs of a 256-token tile; two slices arrive relaxed, after their stores).
    // (Partial tiles through global memory and a semaphore, the tenth session's form, cost ~20 µs
    // per split tile.)
    MMA_TRACE(a, 5, clock64());
    MMA_TRACE(a, 8, global_ns());
    constexpr int kShare = W::kShare;  // a thread's tokens of a split tile: at most this many
    constexpr uint32_t kGroupBytes = kTokStep * (kWRows + kOutPad) * 4;  // a token group's staged rows
    float v[kShare][8];
    const int my0 = tok0 + kTokStep * z, my_step = kTokStep * ksplit;
    auto share_tok = [&](int u) {  // the staged row of share member u (the first one past the tile's end)
        const int tok = my0 + my_step * u;
        return tok < toks ? tok : my0;
    };
    const bool summing = valid > 0 && my0 < toks;
    const uint32_t recv_bar = bars + S * 8, recv = base + W::kRecvOff;  // group u's barrier: recv_bar + 8 u
    const int ngroups = (toks + kTokStep - 1) / kTokStep;  // token groups holding tokens < toks
    if (ksplit == 2 && tid == 0) {  // this share's groups z + 2 u (u = 0, 1, ...) will land here
#pragma unroll
        for (int u = 0; u < kShare; ++u)
            if (z + 2 * u < ngroups)
                asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(recv_bar + 8 * u), "r"(kGroupBytes) : "memory");
    }
    cluster_sync();
    MMA_TRACE(a, 10, global_ns());  // every slice staged: what waited here is the slices' skew
    if (ksplit == 2) {
        if (tid == 0)  // the other share's groups, to their places in the other slice's receive area
            for (int G = 1 - z; G < ngroups; G += 2)
                push_to_peer(recv + (G >> 1) * kGroupBytes, xring + G * kGroupBytes, kGroupBytes, recv_bar + 8 * (G >> 1), 1 - z);
        stage([&](int G) { return (G & 1) == z; });  // this slice's own groups, read back below by other threads
        __syncthreads();
        if (summing) {
#pragma unroll
            for (int u = 0; u < kShare; ++u) staged(share_tok(u), v[u]);
            const float* in = reinterpret_cast<const float*>(smem_raw + (recv - raw));
#pragma unroll
            for (int u = 0; u < kShare; ++u) {  // member u is in received group u, row tok0
                if (my0 + my_step * u >= toks) break;
                mbar_wait(recv_bar + 8 * u, 0);
                const float4* src = reinterpret_cast<const float4*>(in + (u * kTokStep + tok0) * (kWRows + kOutPad) + r8);
                const float4 lo = src[0], hi = src[1];
                v[u][0] += lo.x, v[u][1] += lo.y, v[u][2] += lo.z, v[u][3] += lo.w;
                v[u][4] += hi.x, v[u][5] += hi.y, v[u][6] += hi.z, v[u][7] += hi.w;
                store_row(my0 + my_step * u, v[u]);
                if (u == 0) MMA_TRACE(a, 11, global_ns());  // the first group landed and stored
            }
        }
        // every group meant for this block has landed (the peer's copies have read its tile)
        cluster_arrive_relaxed();
        MMA_TRACE(a, 12, global_ns());
        cluster_wait();  // the peer's groups meant for it have landed: this tile may go
        MMA_TRACE(a, 6, global_ns());
        MMA_TRACE(a, 9, clock64());
        MMA_TRACE(a, 7, sm_id());
        return;
    } else if (summing) {
#pragma unroll
        for (int u = 0; u < kShare; ++u) staged(share_tok(u), v[u]);
        const uint32_t mine = dev::smem_u32(out + r8);
#pragma unroll 1
        for (int zz = 0; zz < ksplit; ++zz) {
            if (zz == z) continue;
            const uint32_t from = dev::cluster_map(mine, zz);
            float4 lo[kShare], hi[kShare];
#pragma unroll
            for (int u = 0; u < kShare; ++u) {
                const uint32_t at = from + share_tok(u) * (kWRows + kOutPad) * 4;
                lo[u] = ld_cluster4(at), hi[u] = ld_cluster4(at + 16);
            }
#pragma unroll
            for (int u = 0; u < kShare; ++u) {
                v[u][0] += lo[u].x, v[u][1] += lo[u].y, v[u][2] += lo[u].z, v[u][3] += lo[u].w;
                v[u][4] += hi[u].x, v[u][5] += hi[u].y, v[u][6] += hi[u].z, v[u][7] += hi[u].w;
            }
        }
    }
    cluster_arrive();  // done with the other tiles (pulled into registers, or their pushes landed here)
    MMA_TRACE(a, 11, global_ns());
    if (summing) {
#pragma unroll
        for (int u = 0; u < kShare; ++u) {  // own cells of this share: read back by the store loop
            if (my0 + my_step * u >= toks) break;
            float4* o = reinterpret_cast<float4*>(out + share_tok(u) * (kWRows + kOutPad) + r8);
            o[0] = make_float4(v[u][0], v[u][1], v[u][2], v[u][3]);
            o[1] = make_float4(v[u][4], v[u][5], v[u][6], v[u][7]);
        }
    }
    store_tokens(my0, my_step);
    MMA_TRACE(a, 12, global_ns());
    cluster_wait();  // the others have read this tile: its shared memory may go
    MMA_TRACE(a, 6, global_ns());
    MMA_TRACE(a, 9, clock64());
    MMA_TRACE(a, 7, sm_id());
#endif
}

// One code width's launch: the kernel of (x dtype, tile, x form) with the plan's cluster of K slices,
// as a programmatic dependent launch (launch_lut_wgmma has checked the arguments).
template <int BITS>
cudaError_t launch_wgmma_width(const MmaArgs& args, const WgmmaPlan& p, const CUtensorMap& xmap, unsigned blocks,
                               cudaStream_t stream) {
    cudaError_t err = cudaErrorInvalidValue;
    auto launch = [&](auto kernel, int smem) {
        err = allow_smem_once(reinterpret_cast<const void*>(kernel));
        if (err != cudaSuccess) return;
        // clusters of ksplit blocks (the grid is then a multiple of it: split_from % ksplit == 0)
        cudaLaunchConfig_t cfg{};
        cfg.gridDim = dim3(blocks);
        cfg.blockDim = dim3(kWThreads);
        cfg.dynamicSmemBytes = smem;
        cfg.stream = stream;
        // + a programmatic dependent launch: the kernel's prologue and code copies may overlap the
        // launch before it (the x permutation), whose results it waits for (griddepcontrol.wait);
        // with x as stored, the caller's launch, which it waits for before any global read
        cudaLaunchAttribute attr[2] = {};
        attr[0].id = cudaLaunchAttributeClusterDimension;
        attr[0].val.clusterDim.x = static_cast<unsigned>(p.ksplit);
        attr[0].val.clusterDim.y = attr[0].val.clusterDim.z = 1;
        attr[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[1].val.programmaticStreamSerializationAllowed = 1;
        cfg.attrs = attr;
        cfg.numAttrs = 2;
        err = cudaLaunchKernelEx(&cfg, kernel, args, p, xmap);
    };
    dispatch_act(args.x_dtype, [&](auto t) {
        using T = typename decltype(t)::type;
        auto by_tile = [&](auto nat) {
            constexpr bool X = decltype(nat)::value;
            if (p.bn == 256) launch(lut_wgmma_kernel<T, BITS, 256, X>, WPlan<BITS, 256>::kSmem);
            else if (p.bn == 128) launch(lut_wgmma_kernel<T, BITS, 128, X>, WPlan<BITS, 128>::kSmem);
            else if (p.bn == 64) launch(lut_wgmma_kernel<T, BITS, 64, X>, WPlan<BITS, 64>::kSmem);
        };
        if (args.x_natural) by_tile(std::true_type{});
        else by_tile(std::false_type{});
    });
    return err;
}

}  // namespace

// Defined by lut_wgmma_w{2,3,4}.cu (QUANTDLLM_WGMMA_WIDTH), called by launch_lut_wgmma.
template <int BITS>
cudaError_t launch_lut_wgmma_bits(const MmaArgs& args, const WgmmaPlan& p, const CUtensorMap& xmap, unsigned blocks,
                                  cudaStream_t stream);
#define QUANTDLLM_WGMMA_WIDTH(B)                                                                                   \
    template <>                                                                                                    \
    cudaError_t launch_lut_wgmma_bits<B>(const MmaArgs& args, const WgmmaPlan& p, const CUtensorMap& xmap,         \
                                         unsigned blocks, cudaStream_t stream) {                                  \
        return launch_wgmma_width<B>(args, p, xmap, blocks, stream);                                               \
    }
template <> cudaError_t launch_lut_wgmma_bits<2>(const MmaArgs&, const WgmmaPlan&, const CUtensorMap&, unsigned, cudaStream_t);
template <> cudaError_t launch_lut_wgmma_bits<3>(const MmaArgs&, const WgmmaPlan&, const CUtensorMap&, unsigned, cudaStream_t);
template <> cudaError_t launch_lut_wgmma_bits<4>(const MmaArgs&, const WgmmaPlan&, const CUtensorMap&, unsigned, cudaStream_t);

}  // namespace quantdllm
