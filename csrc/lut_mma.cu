// Tensor-core LUT GEMM for affine `scaled` weights (w = code * s + z per (row, group); RTN and any
// codebook that is an arithmetic progression, folded at pack time), every M, one kernel.
//
// Y^T = W X^T with W as the mma A operand: a warp owns two 16-row tiles and runs
// mma.m16n8k16 with the tokens as the n dimension (8 per n-tile), so M = 1 wastes only tensor-core
// lanes, which are free when the kernel is memory-bound.
//
// Layout (written by quantdllm_kernels/backends/cuda_layout.py, checked there by emulation):
//  * Within each 64-code chunk, k is permuted so that lane q = lane % 4 of every warp owns the 16
//    consecutive k in [16q, 16q + 16): step s (0..3) of the chunk puts k = 16q + 4s + {0,1} in
//    fragment columns {2q, 2q+1} and 16q + 4s + {2,3} in {2q+8, 2q+9}. A and B are permuted alike,
//    so the product is unchanged, and each lane reads its x as two 16-byte loads.
//  * Codes are stored in fragment order: per (16-row tile, super-chunk) the lanes' 16-byte vectors,
//    vector-major (one for 2/4-bit, three for 3-bit: (tiles, supers, V, 32 lanes, 4 words)), so
//    each 16-byte load of a warp is one coalesced 512-byte run (3-bit lanes' 48 bytes side by side
//    made each load touch 12 lines: ncu's LG throttle, twentieth session). Inside a word, the two
//    halves of an A register sit 16 bits apart, so (word >> shift) & mask | magic is an fp16/bf16
//    pair (1024 + c or 128 + c): one LOP3 per two weights. 3-bit codes sit in 6-bit row pairs (rows
//    g and g + 8 of a k pair three bits apart, so one shift serves both) in four 12-bit blocks per
//    chunk, three in the low bits of three words, one in their top nibbles (Decode in mma_fragments.cuh).
//  * Scales: per (tile, group, row8) the four values (s_r, s_r+8, z_r, z_r+8) in 8 bytes.
//
// Scaling after the mma (M <= 8; groups of >= 64 codes, so each 16-k mma step lies in one group;
// larger M dequantizes before the mma, see kPost in the kernel): the mma
// multiplies the raw A = magic + f*c (rows g + 8: f = 16 for fp16 4-bit codes, their high nibble
// taken without a shift; f = 4 for 2-bit and 8 for 3-bit codes, which then share rows g's shift; else 1) into a
// per-group accumulator G = sum (magic + f*c) x, and one more mma with A = 1 gives X = sum x. At
// the group's end, per row, acc += (s/f) * G + (z - magic * s/f) * X: sum (c*s + z) x exactly, in
// fp32. The dequant is one LOP3 (plus a shift) per two weights instead
// of four ops, and the products are exact (w = c*s + z is never rounded to 16 bits).
//
// Reduction: warps of a block split K (wk) or N (wn); partial tiles meet in shared memory. Blocks
// split K (grid.z) when N alone cannot fill the GPU. On sm_90 a split of 2 slices is one
// thread-block cluster (more lost: kClusterSplitDefault): each slice leaves its fp32 partials in its
// shared memory, and after a cluster barrier each sums a share of the outputs over every slice's
// (distributed shared memory, slice order). Elsewhere each writes fp32 partials to a workspace, and
// the last block of a tile to arrive (a per-tile semaphore, reset by that block) sums them in a
// fixed order. Either way deterministic, one launch, no memset, graph-capturable. (The workspace
// form's tail -- a fence, the semaphore's atomic, the last block's re-read: three dependent L2
// round trips -- was ~2 µs of an M = 1 launch: seventh session, call 2.)
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>

#include "dispatch.cuh"
#include "lut_device.cuh"
#include "mma_fragments.cuh"

namespace quantdllm {
namespace {

constexpr int kMT = 2;        // 16-row tiles per warp
constexpr int kWarps = 4;
constexpr int kRowsShift = 5;  // log2(kMT * 16): a block's rows are kMT * 16 << log2(wn)
static_assert(kMT * 16 == 1 << kRowsShift && kWarps == 4, "the kernel's shifts");
constexpr int kThreads = kWarps * 32;
constexpr int kMaxClusterSplit = 8;  // the portable cluster size
// The largest K split that is a cluster by default. H200, flushed, w4, cluster / workspace µs (nineteenth
// session, calls 3-4): 2 slices won at 5 of 6 points ((4096, 4096) M = 8 12.5 / 14.2, (12288, 4096)
// M = 32 35.4 / 37.4, (4096, 12288) M = 8 17.9 / 19.4; (4096, 4096) M = 1 9.3, 10.4 / 10.4, 10.0);
// 3 won at M = 8 (18.6 / 20.5) but lost at M = 1 and 32 ((12288, 4096) M = 1 20.5 / 17.2, M = 32
// 49.1 / 36.8); 4, 5 and 8 lost ((4096, 4096) M = 1, 5 slices: 12.1-12.8 / 10.8-11.5; M = 8, 8:
// 16.4-16.9 / 12.8-13.4; (12288, 4096) M = 32, 4: 46.3 / 36.3).
constexpr int kClusterSplitDefault = 2;

using namespace frag;

// Per-warp ring of S stages, each one super-chunk: the codes of both tiles (1 KB for 2/4-bit, 3 KB
// for 3-bit) and, with 2/4-bit codes (kXRing), the chunk's x for the NT token tiles and the scales.
// x rode in registers at NT >= 2 (one chunk ahead at NT = 2/4, none at NT = 8): every chunk waited
// an L2 round trip, and M = 64 took 2x M = 32. In the ring it arrives with the codes, S - 1
// super-chunks ahead, and holds no registers while in flight. S is the most stages (<= 4) whose
// block fits the budget below (kRingBudget: two blocks per SM on sm_80's 164 KB, three on sm_90's
// 228 KB at NT = 4).
// A 3-bit super-chunk's x (4 chunks, 8 KB per warp at NT = 2) does not fit that budget, so at NT <=
// 2 3-bit codes take a second ring beside theirs (kXChunk): one slot per chunk of the super-chunk
// (x of the token tiles and the scales: 1.5 / 2.5 KB per warp at NT = 1 / 2), each filled 3 chunks
// ahead, with one cp.async group per chunk; the code ring then needs only 2 stages (one super-chunk
// = 4 chunks ahead): 12 / 16 KB per warp, 4 / 3 blocks per SM on sm_90. Before it, x and the scales
// came by registers (at NT = 2 one chunk ahead, and each chunk waited an L2 round trip -- ncu,
// twenty-first session: long scoreboard 1.50 stalls per issue against 4-bit's 0.75 at (4096, 4096)
// M = 16; at NT = 1 three ahead, in 4 register sets: 152-183 registers, now 112-144).
template <int BITS> constexpr int kVecs = Layout<BITS>::kWords / 4;  // 16-byte code vectors per lane per tile
constexpr int kRingBudget = 80 * 1024;
constexpr int stage_bytes(int bits, int nt, bool xring) {  // per warp
    const int ch = bits == 4 ? 1 : bits == 2 ? 2 : 4, v = bits * ch / 4;
    return (kMT * v + (xring ? 2 * ch * nt : 0)) * 32 * 16 + (xring ? kMT * ch * 32 * 8 : 0);
}
constexpr bool x_chunk_ring(int bits, int nt) { return bits == 3 && nt <= 2; }
constexpr int kChunkLead = 3;  // chunks between a slot's fill and its use (kXChunk): one slot per chunk of a super-chunk
constexpr int chunk_slot_bytes(int nt) { return (2 * nt + 1) * 32 * 16; }  // per warp: x of NT token tiles, the scales
constexpr int ring_stages(int bits, int nt, bool xring) {
    if (!xring) return x_chunk_ring(bits, nt) ? 2 : 3;  // 3-bit (3 KB stages): codes only
    // NT = 1 keeps its measured 48 KB; NT = 2 (110-123 registers: 4 blocks per SM) takes <= 56 KB so
    // that shared memory allows 4 blocks on sm_90 too
    const int budget = nt == 1 ? 48 * 1024 : nt == 2 ? 56 * 1024 : kRingBudget;
    for (int s = 4; s > 1; --s)
        if (kWarps * s * stage_bytes(bits, nt, true) <= budget) return s;
    return 0;
}
constexpr bool x_ring(int bits, int nt) { return bits != 3 && ring_stages(bits, nt, true) >= 2; }
constexpr int ring_bytes(int bits, int nt) {  // per block: both rings
    const bool xr = x_ring(bits, nt);
    const int chunk_slots = x_chunk_ring(bits, nt) ? (kChunkLead + 1) * chunk_slot_bytes(nt) : 0;
    return kWarps * (ring_stages(bits, nt, xr) * stage_bytes(bits, nt, xr) + chunk_slots);
}
template <int BITS, int NT> constexpr bool kXRing = x_ring(BITS, NT);
template <int BITS, int NT> constexpr bool kXChunk = x_chunk_ring(BITS, NT);
template <int BITS, int NT> constexpr int kStages = ring_stages(BITS, NT, kXRing<BITS, NT>);
static_assert(kStages<4, 1> == 4 && kStages<2, 1> == 3, "M <= 8 keeps its measured rings");
static_assert(kXRing<4, 4> && kXRing<2, 4> && !kXRing<3, 2>, "ring budget");
static_assert(kChunkLead + 1 == Layout<3>::kChunks && ring_bytes(3, 2) == 64 * 1024 && ring_bytes(3, 1) == 48 * 1024,
              "3 / 4 blocks per SM on sm_90 (228 KB)");

// Lane-private ring slots, warp-major: warp w's stages are contiguous, and each stage holds its
// codes (tile, vec), then x (chunk, token tile, half), then the scales (chunk; both tiles' 8 bytes
// side by side), each slot 32 lanes x 16 bytes. A lane reads back only what it copied itself (no
// barrier), a warp's 16-byte reads cover 512 contiguous bytes, and every slot is one per-lane base
// register plus a constant (the stage is a constant where the loop's body copies cycle through the
// stages): the slot arithmetic was ~10 instructions of a ~150-instruction chunk at M <= 8. With
// kXChunk, x and the scales sit past the warp's code stages in the same order, one region for the
// whole ring (chunk c of every super-chunk in slot c).
template <int BITS, int NT>
struct Ring {
    static constexpr int V = kVecs<BITS>, CH = Layout<BITS>::kChunks, S = kStages<BITS, NT>;
    static constexpr bool kChunkX = kXChunk<BITS, NT>;
    static constexpr uint32_t kStage = stage_bytes(BITS, NT, kXRing<BITS, NT>);  // per warp
    static constexpr uint32_t kXOff = kMT * V * 512, kSzOff = kXOff + 2 * CH * NT * 512;
    static_assert(kMT == 2 && kStage == (kXRing<BITS, NT> ? kSzOff + CH * 512 : kXOff), "stage_bytes");
    static constexpr uint32_t kChunkOff = S * kStage;  // kXChunk's region
    static constexpr uint32_t kWarpBytes = kChunkOff + (kChunkX ? CH * chunk_slot_bytes(NT) : 0);
    static_assert(kWarps * kWarpBytes == ring_bytes(BITS, NT), "ring_bytes");
    uint32_t base;  // this lane's 16 bytes of slot 0 of stage 0
    __device__ __forceinline__ Ring(uint32_t ring, int warp, int lane) : base(ring + warp * kWarpBytes + lane * 16) {}
    __device__ __forceinline__ uint32_t code(int stage, int i, int v) const { return base + stage * kStage + (i * V + v) * 512; }
    // kXChunk: x and the scales of chunk slot c at the warp's region past its code stages (stage unused)
    __device__ __forceinline__ uint32_t x(int stage, int c, int jn, int v) const {
        const uint32_t off = ((c * NT + jn) * 2 + v) * 512;
        return kChunkX ? base + kChunkOff + off : base + stage * kStage + kXOff + off;
    }
    __device__ __forceinline__ uint32_t sz(int stage, int i, int c) const {
        return kChunkX ? base + kChunkOff + (kSzOff - kXOff) + c * 512 + i * 8 : base + stage * kStage + kSzOff + c * 512 + i * 8;
    }
};

template <int BITS, int NT>
__device__ __forceinline__ void issue_codes(const int32_t* codes, int tile0, int U, int u, int lane, const Ring<BITS, NT>& ring,
                                            int stage) {
    constexpr int V = kVecs<BITS>;
#pragma unroll
    for (int i = 0; i < kMT; ++i) {
        const uint4* src = reinterpret_cast<const uint4*>(codes) + (static_cast<int64_t>(tile0 + i) * U + u) * V * 32 + lane;
#pragma unroll
        for (int v = 0; v < V; ++v) cp_async16(ring.code(stage, i, v), src + v * 32);
    }
}

template <int BITS, int NT>
__device__ __forceinline__ void read_codes(const Ring<BITS, NT>& ring, int stage, uint32_t (&w)[kMT][Layout<BITS>::kWords]) {
    constexpr int V = kVecs<BITS>;
#pragma unroll
    for (int i = 0; i < kMT; ++i)
#pragma unroll
        for (int v = 0; v < V; ++v) {
            uint32_t r0, r1, r2, r3;
            asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];"
                         : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                         : "r"(ring.code(stage, i, v)));
            w[i][4 * v] = r0; w[i][4 * v + 1] = r1; w[i][4 * v + 2] = r2; w[i][4 * v + 3] = r3;
        }
}

// What the ring copies for this lane (kXRing): both tiles' codes, x of every token tile and the
// scales, super-chunk by super-chunk, from source pointers carried from one issue to the next
// (advanced by a constant, the scales by the group delta) rather than recomputed from tile, token
// and group: SASS sm_90a per 64-code chunk at M <= 8, 4-bit, ~209 -> ~190 instructions. Tokens
// past M read row M - 1 (their columns are never stored).
template <int BITS, int NT, typename T>
struct RingFeed {
    static constexpr int V = kVecs<BITS>;
    const uint4* code[kMT];
    const T* xr[NT];
    const uint2* sz[kMT];  // tile i's scales of the group of k = kc
    int kc;  // first k of the super-chunk at the cursor
    __device__ __forceinline__ RingFeed(const MmaArgs& a, const T* x, const uint2* szp, int tile0, int U, int u,
                                        int m0, int lane) {
        kc = u * Layout<BITS>::kSuper;
#pragma unroll
        for (int i = 0; i < kMT; ++i) {
            code[i] = reinterpret_cast<const uint4*>(a.codes) + (static_cast<int64_t>(tile0 + i) * U + u) * V * 32 + lane;
            sz[i] = szp + (static_cast<int64_t>(i) * a.groups + (kc >> a.group_shift)) * 8;
        }
#pragma unroll
        for (int jn = 0; jn < NT; ++jn)
            xr[jn] = x + static_cast<int64_t>(min(m0 + jn * 8 + (lane >> 2), a.M - 1)) * a.K + kc + 16 * (lane & 3);
    }
    // The cursor's super-chunk into ring stage `stage`; then the cursor moves to the next one.
    __device__ __forceinline__ void issue(const MmaArgs& a, const Ring<BITS, NT>& ring, int stage) {
        const int g0 = kc >> a.group_shift;
#pragma unroll
        for (int i = 0; i < kMT; ++i) {
#pragma unroll
            for (int v = 0; v < V; ++v) cp_async16(ring.code(stage, i, v), code[i] + v * 32);
            code[i] += 32 * V;
        }
#pragma unroll
        for (int c = 0; c < Layout<BITS>::kChunks; ++c) {
            const int k = kc + c * 64;
            if (Layout<BITS>::kChunks > 1 && k >= a.K) break;  // K % 64 == 0
#pragma unroll
            for (int jn = 0; jn < NT; ++jn) {
                cp_async16_l1(ring.x(stage, c, jn, 0), xr[jn] + c * 64);
                cp_async16_l1(ring.x(stage, c, jn, 1), xr[jn] + c * 64 + 8);
            }
#pragma unroll
            for (int i = 0; i < kMT; ++i) cp_async8(ring.sz(stage, i, c), sz[i] + ((k >> a.group_shift) - g0) * 8);
        }
#pragma unroll
        for (int jn = 0; jn < NT; ++jn) xr[jn] += Layout<BITS>::kSuper;
        kc += Layout<BITS>::kSuper;
        const int dg = (kc >> a.group_shift) - g0;
#pragma unroll
        for (int i = 0; i < kMT; ++i) sz[i] += dg * 8;
    }
};

// What the chunk ring (kXChunk) copies for this lane: x of every token tile and both tiles' scales
// for the chunk at k = kc, into slot (kc / 64) % 4. Tokens past M read row M - 1.
template <int BITS, int NT, typename T>
struct ChunkFeed {
    const T* xr[NT];   // this lane's x at k = 16q of each token tile
    const uint2* szp;  // tile 0's scales of group 0 (tile 1's: + groups * 8)
    __device__ __forceinline__ ChunkFeed(const MmaArgs& a, const T* x, const uint2* sz, int m0, int lane) : szp(sz) {
#pragma unroll
        for (int jn = 0; jn < NT; ++jn)
            xr[jn] = x + static_cast<int64_t>(min(m0 + jn * 8 + (lane >> 2), a.M - 1)) * a.K + 16 * (lane & 3);
    }
    __device__ __forceinline__ void issue(const MmaArgs& a, const Ring<BITS, NT>& ring, int kc, int slot) const {
#pragma unroll
        for (int jn = 0; jn < NT; ++jn) {
            cp_async16_l1(ring.x(0, slot, jn, 0), xr[jn] + kc);
            cp_async16_l1(ring.x(0, slot, jn, 1), xr[jn] + kc + 8);
        }
        const int grp = kc >> a.group_shift;
#pragma unroll
        for (int i = 0; i < kMT; ++i) cp_async8(ring.sz(0, i, slot), szp + (static_cast<int64_t>(i) * a.groups + grp) * 8);
    }
};

template <int BITS, int NT>
__device__ __forceinline__ uint2 read_sz(const Ring<BITS, NT>& ring, int stage, int i, int c) {
    uint2 r;
    asm volatile("ld.shared.v2.u32 {%0,%1}, [%2];" : "=r"(r.x), "=r"(r.y) : "r"(ring.sz(stage, i, c)));
    return r;
}

template <int BITS, int NT>
__device__ __forceinline__ void read_x(const Ring<BITS, NT>& ring, int stage, int c, int jn, uint32_t (&xb)[8]) {
#pragma unroll
    for (int v = 0; v < 2; ++v)
        asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];"
                     : "=r"(xb[4 * v]), "=r"(xb[4 * v + 1]), "=r"(xb[4 * v + 2]), "=r"(xb[4 * v + 3])
                     : "r"(ring.x(stage, c, jn, v)));
}

__device__ __forceinline__ void unpack8(uint32_t (&d)[8], uint4 a, uint4 b) {
    d[0] = a.x; d[1] = a.y; d[2] = a.z; d[3] = a.w; d[4] = b.x; d[5] = b.y; d[6] = b.z; d[7] = b.w;
}

// x[tok][kc + 16q .. +16) of each n-tile's token for this lane: the B fragments of a chunk. Tokens
// past M read row M - 1 (their columns are never stored), so the loads need no predicate.
template <typename T, int NT>
__device__ __forceinline__ void load_x(const MmaArgs& a, const T* x, int m0, int kc, int g, int q,
                                       uint32_t (&xb)[NT][8]) {
#pragma unroll
    for (int jn = 0; jn < NT; ++jn) {
        const int tok = min(m0 + jn * 8 + g, a.M - 1);
        const uint4* xp = reinterpret_cast<const uint4*>(x + static_cast<int64_t>(tok) * a.K + kc + 16 * q);
        unpack8(xb[jn], __ldg(xp), __ldg(xp + 1));
    }
}

// What a chunk needs besides its codes, prefetched R - 1 chunks ahead into registers: the scales
// of both tiles, in_scale and x.
template <int NT, bool XAHEAD, bool SZREG, bool IS>
struct ChunkOps {
    static constexpr bool kXAhead = XAHEAD;  // else x comes from the ring (or, a wider NT, at chunk start)
    uint2 sz[SZREG ? kMT : 1];               // else the scales come from the ring
    uint32_t is[8];
    uint32_t x[kXAhead ? NT : 1][8];
    template <typename T>
    __device__ __forceinline__ void load(const MmaArgs& a, const T* xp, const uint2* szp, int m0, int kc, int g,
                                         int q) {
        if constexpr (SZREG) {
            const int grp = kc >> a.group_shift;  // groups of >= 64: one per chunk
#pragma unroll
            for (int i = 0; i < kMT; ++i) sz[i] = __ldg(szp + (static_cast<int64_t>(i) * a.groups + grp) * 8);
        }
        if (IS && a.in_scale) {
            const uint4* ip = reinterpret_cast<const uint4*>(static_cast<const T*>(a.in_scale) + kc + 16 * q);
            unpack8(is, __ldg(ip), __ldg(ip + 1));
        }
        if constexpr (kXAhead) load_x<T, NT>(a, xp, m0, kc, g, q, x);
    }
};

// Timestep bucket of the block's token threadIdx.x (threads < toks). Its loads (t and the first 8
// boundaries) are issued after the ring's first stages at NT >= 2 (before them at NT = 1, compared
// right after them: see the kernel); at NT >= 2 they are compared after the main
// loop, so no warp waits on them before its pipeline starts (a compare right after them made warp 0
// wait a round trip, and a block ends with its slowest warp). Sixth session, H200: the table's cost
// at M = 32 back to back fell from 1.04 to 0.36 µs on (4096, 12288). The buckets go to a table in
// dynamic shared memory past the reduction tile and the last-block flag (smem_bytes counts it):
// static shared memory would push the 2-bit M <= 8 ring past the limit a launch gets without the
// opt-in.
struct BucketLoads {
    float t = 0.f, bd[8];
};
__device__ __forceinline__ BucketLoads bucket_loads(const MmaArgs& a, int m0, int toks) {
    BucketLoads r;  // left undefined without a table (token_bucket does not read it): no live values in the plain path
    if (!a.ts_bias || static_cast<int>(threadIdx.x) >= toks) return r;
    r.t = __ldg(a.t + (a.t_numel == 1 ? 0 : min(m0 + static_cast<int>(threadIdx.x), a.M - 1)));
#pragma unroll
    for (int j = 0; j < 8; ++j) r.bd[j] = j < a.nbounds ? __ldg(a.bounds + j) : __int_as_float(0x7f800000);
    return r;
}
__device__ __forceinline__ int token_bucket(const MmaArgs& a, const BucketLoads& r, int toks) {
    if (!a.ts_bias || static_cast<int>(threadIdx.x) >= toks) return 0;
    int b = 0;
#pragma unroll
    for (int j = 0; j < 8; ++j) b += r.bd[j] <= r.t;
    return a.nbounds > 8 ? b + dev::bucket_of(r.t, a.bounds + 8, a.nbounds - 8) : b;
}

// IS = false: the launch has no in_scale (its loads, checks and multiplies compiled out: ~10
// instructions of a ~200-instruction chunk at M <= 8). NT >= 2 instantiates IS = true only and
// checks a.in_scale at run time.
// Blocks per SM asked of ptxas, so that registers do not lower what the rings' shared memory allows
// (4-bit / 2-bit on sm_90: NT = 1 5 / 4, NT = 2 5 / 4, NT = 4 3 / 2; left alone, ptxas took 153
// registers for 2-bit NT = 1, 3 blocks). 3-bit (x and scales in the chunk ring at NT <= 2): NT = 1
// 4 blocks (112 registers; with in_scale 3, 144), NT = 2 3 (138), NT = 4 2 (x in registers: 214);
// 2-bit NT = 1 with in_scale gets 3 (128 spilled).
template <int BITS, int NT, bool IS>
constexpr int kMinBlocks = NT == 4 ? (BITS == 4 ? 3 : 2)
                         : BITS == 3 ? (NT == 1 && !IS ? 4 : 3)
                         : NT == 1 && IS ? (BITS == 4 ? 4 : 3)
                         : (BITS == 4 && NT == 1) ? 5 : 4;


template <typename T, int BITS, int NT, bool IS>
__global__ void __launch_bounds__(kThreads, (kMinBlocks<BITS, NT, IS>)) lut_mma_kernel(const MmaArgs a, const int ksplit,
                                                                                    const int pdl_at) {
    using P = Pair<T>;
    using L = Layout<BITS>;
    extern __shared__ float red[];
    MMA_TRACE(a, 0, global_ns());
    MMA_TRACE(a, 1, clock64());
    // A programmatic dependent launch (launch_lut_mma): this one's prologue runs while the launch
    // before it finishes, up to pdl_wait below, ahead of its first global access; the next launch's
    // blocks may start once every block of this one has passed pdl_trigger (they wait for all of it
    // before reading anything). Where: after the main loop (pdl_at 1, the default). At entry
    // (pdl_at 0) the next launch's blocks took the free slots of SMs while this one ran and the rest
    // as its blocks left, unevenly: +3.1 µs per launch back to back on (4096, 12288) M = 1, -1.1
    // on (4096, 4096) (fifteenth session, call 2).
    if (pdl_at == 0) dev::pdl_trigger();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, q = lane & 3;
    // wn_count (1, 2 or 4) as a shift, and every other launch constant from the host: no division
    const int wn_count = 1 << a.wn_shift, wk_count = kWarps >> a.wn_shift;
    const int wn = warp & (wn_count - 1), wk = warp >> a.wn_shift;
    const int rows_shift = a.wn_shift + kRowsShift, rows = 1 << rows_shift, toks = NT * 8;
    const int tiles = (a.N + 31) / 32 * 2;
    // One grid dimension, token tiles fastest: the blocks that read the same codes for different
    // tokens run side by side, so the codes come from DRAM once and from L2 after (row blocks first
    // streamed a weight larger than L2 once per token tile: the LM head at M = 64).
    const int token_tiles = a.token_tiles;
    const int rb = token_tiles == 1 ? static_cast<int>(blockIdx.x) : static_cast<int>(blockIdx.x) / token_tiles;
    const int tb = blockIdx.x - rb * token_tiles;
    const int tile0 = (rb * wn_count + wn) * kMT;
    const int m0 = tb * toks;
    const int U = (a.K + L::kSuper - 1) / L::kSuper;
    // K: blocks split it (grid.z), then the block's warps take contiguous runs of super-chunks.
    const int per = a.per_split;
    const int ub = blockIdx.z * per, ue = min(U, ub + per);
    const int per_w = (ue - ub + wk_count - 1) >> (2 - a.wn_shift);  // / wk_count (kWarps = 4)
    const int u_begin = min(ue, ub + wk * per_w), u_end = min(ue, u_begin + per_w);
    const T* x = static_cast<const T*>(a.x);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const bool csum = a.cluster_sum != 0;  // the K slices are one cluster (launch_lut_mma)
#else
    const bool csum = false;  // no clusters here: the launcher never sets it for this code
#endif
    // M <= 8 (one token tile): scales after the mma, per group (header). Larger M: the mma count
    // grows with the token tiles while the dequant does not, so the extra mma for sum x and the fold
    // cost more than they save; there w = (magic + c - magic) * s + z is built before the mma (rows
    // g + 8 with magic/f: Decode).
    constexpr bool kPost = NT == 1;
    using D = Decode<T, BITS, kPost>;

    float acc[kMT][NT][4], gacc[kPost ? kMT : 1][NT][4], xs[NT][4];
#pragma unroll
    for (int i = 0; i < kMT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = gacc[kPost ? i : 0][j][e] = 0.f;
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) xs[j][e] = 0.f;

    // Software pipeline. Codes stream through a per-warp shared-memory ring of S stages filled by
    // cp.async (S - 1 super-chunks in flight per warp, no registers held); a chunk's scales,
    // in_scale and x are loaded into a ring of R register sets R - 1 chunks before it is computed
    // (M <= 8: R = 4, since its chunks are short and an L2 round trip is not). With 2/4-bit codes x
    // and the scales ride in the cp.async ring instead (kXRing), and with 3-bit codes at NT <= 2 in
    // the chunk ring (kXChunk); the register sets then carry only in_scale. The loop body is
    // instantiated V times so that every register-set index is a compile-time constant: a
    // register copy of a load in flight would stall until it arrived.
    constexpr int CH = L::kChunks, S = kStages<BITS, NT>;
    constexpr int R = NT == 1 ? 4 : 2, V = R / (CH < R ? CH : R);  // CH and R are powers of two
    const int kend = min(a.K, u_end * L::kSuper);
    const Ring<BITS, NT> ring(dev::smem_u32(red), warp, lane);
    const uint2* szp = static_cast<const uint2*>(a.sz) + static_cast<int64_t>(tile0) * a.groups * 8 + g;
    const typename P::T2 mg[2] = {P::bits(P::kMagic), P::bits(D::kMagicHi)};  // rows g, g + 8 (Decode)
    constexpr bool kRingX = kXRing<BITS, NT> || kXChunk<BITS, NT>;  // x and the scales from shared memory
    using Ops = ChunkOps<NT, !kRingX && NT <= 4, !kRingX, IS>;
    RingFeed<BITS, NT, T> feed(a, x, szp, tile0, U, u_begin, m0, lane);
    const ChunkFeed<BITS, NT, T> cfeed(a, x, szp, m0, lane);
    Ops ops[R];
    auto body = [&](auto variant, int u, int it) -> bool {
        constexpr int p = decltype(variant)::value;
        // the ring stage of this iteration: a constant when the V body copies cycle through the S
        // stages exactly (it is a multiple of V), which saves the slot addresses' arithmetic
        const int stage = V % S == 0 ? p % S : it % S;
        const bool more = u + 1 < u_end;
        if (u + S - 1 < u_end) {
            if constexpr (kXRing<BITS, NT>) feed.issue(a, ring, (stage + S - 1) % S);
            else issue_codes<BITS, NT>(a.codes, tile0, U, u + S - 1, lane, ring, (stage + S - 1) % S);
        }
        uint32_t cw[kMT][L::kWords];
        if constexpr (!kXChunk<BITS, NT>) {
            cp_async_commit();
            cp_async_wait<S - 1>();  // this iteration's stage has landed
            if (u == u_begin) MMA_TRACE(a, 3, clock64());
            read_codes<BITS, NT>(ring, stage, cw);
        }  // else per chunk, below (the codes are committed with chunk 0's group)
#pragma unroll
        for (int c = 0; c < CH; ++c) {
            const int oi = (p * CH + c) % R;  // compile-time after unrolling
            const int kc = u * L::kSuper + c * 64;
            if (CH > 1 && kc >= a.K) break;  // padded tail of the last super-chunk (warp-uniform; K % 64 == 0)
            if constexpr (kXChunk<BITS, NT>) {
                // one group per chunk: the one kChunkLead groups back holds this chunk's x and scales
                // (and, at c = 0, every group before it this super-chunk's codes)
                if (kc + kChunkLead * 64 < kend) cfeed.issue(a, ring, kc + kChunkLead * 64, (c + kChunkLead) % CH);
                cp_async_commit();
                cp_async_wait<kChunkLead>();
                if (c == 0) {
                    if (u == u_begin) MMA_TRACE(a, 3, clock64());
                    read_codes<BITS, NT>(ring, stage, cw);
                }
            }
            if (kc + (R - 1) * 64 < kend) ops[(oi + R - 1) % R].load(a, x, szp, m0, kc + (R - 1) * 64, g, q);
            Ops& cur = ops[oi];
            constexpr bool kXAhead = Ops::kXAhead;
            // x registers for the whole chunk: the NT = 1 ring (and an un-prefetched wider NT). With
            // NT >= 2 rings, each token tile's x is read from the ring just before its mmas.
            constexpr int XL = kXAhead || (kRingX && NT > 1) ? 1 : NT;
            uint32_t xl[XL][8];
            if constexpr (kRingX && NT == 1) read_x<BITS, NT>(ring, stage, c, 0, xl[0]);
            else if constexpr (!kXAhead && !kRingX) load_x<T, NT>(a, x, m0, kc, g, q, xl);
            uint32_t A[kMT][4][4];
            if constexpr (!kPost) {
#pragma unroll
                for (int i = 0; i < kMT; ++i) {
                    uint2 szv;
                    if constexpr (kRingX) szv = read_sz<BITS, NT>(ring, stage, i, c);
                    else szv = cur.sz[i];
                    const typename P::T2 sc[2] = {P::lo(szv.x), P::hi(szv.x)};
                    const typename P::T2 zr[2] = {P::lo(szv.y), P::hi(szv.y)};
#pragma unroll
                    for (int st = 0; st < 4; ++st)
#pragma unroll
                        for (int j = 0; j < 4; ++j)
                            A[i][st][j] = u32(__hfma2(__hsub2(P::bits(D::a_reg(cw[i], c, st, j)), mg[j & 1]), sc[j & 1], zr[j & 1]));
                }
            } else {
#pragma unroll
                for (int i = 0; i < kMT; ++i)
#pragma unroll
                    for (int st = 0; st < 4; ++st)
#pragma unroll
                        for (int j = 0; j < 4; ++j) A[i][st][j] = D::a_reg(cw[i], c, st, j);
            }
#pragma unroll
            for (int jn = 0; jn < NT; ++jn) {
                if (jn > 0 && m0 + jn * 8 >= a.M) continue;  // warp-uniform (token tile 0 is never empty)
                // in place: a copy of a loaded register (xb = x; if (in_scale) xb *= is) waits for the
                // load where it is written, which was ncu's top stall at M = 1
                uint32_t xr[8];
                if constexpr (kRingX && NT > 1) read_x<BITS, NT>(ring, stage, c, jn, xr);
                uint32_t (&xb)[8] = kXAhead ? cur.x[kXAhead ? jn : 0] : (kRingX && NT > 1) ? xr : xl[XL == 1 ? 0 : jn];
                if (IS && a.in_scale) {
#pragma unroll
                    for (int e = 0; e < 8; ++e) xb[e] = u32(__hmul2(P::bits(xb[e]), P::bits(cur.is[e])));
                }
#pragma unroll
                for (int st = 0; st < 4; ++st) {
#pragma unroll
                    for (int i = 0; i < kMT; ++i)
                        mma16816<T>(kPost ? gacc[kPost ? i : 0][jn] : acc[i][jn], A[i][st], xb[2 * st], xb[2 * st + 1]);
                    if constexpr (kPost) {
                        const uint32_t ones[4] = {P::kOnes, P::kOnes, P::kOnes, P::kOnes};
                        mma16816<T>(xs[jn], ones, xb[2 * st], xb[2 * st + 1]);
                    }
                }
            }
            const bool next_here = kc + 64 < a.K && (c + 1 < CH || more);
            if (kPost && (((kc + 64) & a.group_mask) == 0 || !next_here)) {  // the group ends here: scale into acc
#pragma unroll
                for (int i = 0; i < kMT; ++i) {
                    uint2 szv;
                    if constexpr (kRingX) szv = read_sz<BITS, NT>(ring, stage, i, c);
                    else szv = cur.sz[i];
                    const float2 sc = P::f2(szv.x), zr = P::f2(szv.y);
                    const float s_lo = sc.x, s_hi = sc.y * (1.f / D::kFactorHi);
                    const float z_lo = zr.x - P::kMagicF * s_lo, z_hi = zr.y - P::kMagicF * s_hi;
#pragma unroll
                    for (int jn = 0; jn < NT; ++jn)
#pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            const float sv = e < 2 ? s_lo : s_hi, zv = e < 2 ? z_lo : z_hi;
                            acc[i][jn][e] = fmaf(sv, gacc[kPost ? i : 0][jn][e], fmaf(zv, xs[jn][e], acc[i][jn][e]));
                            gacc[kPost ? i : 0][jn][e] = 0.f;
                        }
                }
#pragma unroll
                for (int jn = 0; jn < NT; ++jn)
#pragma unroll
                    for (int e = 0; e < 4; ++e) xs[jn][e] = 0.f;
            }
        }
        return more;
    };
    int u = u_begin;
    const bool work = tile0 < tiles && u < u_end;
    // M <= 8 (NT = 1) issues the bucket's loads (t and the first 8 boundaries) ahead of the ring's
    // first stages and compares after them (in program order, so ptxas keeps the compare behind the
    // copies): issued after the copies, the loads came back behind them and thread 0's compare held
    // warp 0 ~1.3 µs past the first stage's arrival (mma_phases, fourteenth session: first stage
    // wait 1.45 -> 2.80 µs with a table, (4096, 12288) M = 1, +0.45 µs per launch)
    dev::pdl_wait();  // everything above is arithmetic on the arguments: no global access
    BucketLoads bucket_in;
    if constexpr (NT == 1) bucket_in = bucket_loads(a, m0, toks);  // toks <= 8 < kThreads
    if (work) {
#pragma unroll
        for (int st = 0; st < S - 1; ++st) {
            if (u + st < u_end) {
                if constexpr (kXRing<BITS, NT>) feed.issue(a, ring, st);
                else issue_codes<BITS, NT>(a.codes, tile0, U, u + st, lane, ring, st);
            }
            cp_async_commit();
        }
        if constexpr (kXChunk<BITS, NT>) {  // the first kChunkLead chunks' x and scales, a group each
#pragma unroll
            for (int c = 0; c < kChunkLead; ++c) {
                if (u * L::kSuper + c * 64 < kend) cfeed.issue(a, ring, u * L::kSuper + c * 64, c);
                cp_async_commit();
            }
        }
    }
    MMA_TRACE(a, 2, clock64());
    // After the ring's first stages are issued, so the bucket's loads and compares overlap their
    // arrival (computed before them, SASS showed 1 + 16 LDG and their compares ahead of the first
    // LDGSTS). Measured (H200, fifth session): this, a block-wide table behind a barrier with each
    // thread's timestep rows preloaded before the main loop, per-thread buckets with the same
    // preload, and a batched epilogue all left a table's cost at 1.5-2.5 µs at M = 16-64 in the
    // benchmark (graph replay, L2 flushed); ncu timed the plain and +ts kernels equal at M = 32.
    // The loads are issued here (NT = 1: above); at NT >= 2 their compares wait for the end of the main loop.
    if constexpr (NT != 1) bucket_in = bucket_loads(a, m0, toks);  // toks <= 32 < kThreads
    // M <= 8 (NT = 1) compares here, before its loop: holding the loads across the loop cost 24-35
    // registers or spills; its loads were issued ahead of the ring's copies, so they have landed
    // about when the first stage does
    const int early_bucket = NT == 1 ? token_bucket(a, bucket_in, toks) : 0;
    if constexpr (NT == 1) {
        // the bucket's bias row for this block's rows, prefetched into L1 while the main loop runs:
        // loaded in the epilogue only, it was a dependent DRAM round trip after the loop (H200,
        // (4096, 12288) M = 1, L2 flushed: 16.4 µs with a table against 14.6 without)
        if (a.ts_bias && static_cast<int>(threadIdx.x) < min(toks, a.M - m0) && (ksplit == 1 || blockIdx.z == 0)) {
            const int n_first = rb << rows_shift, esz = a.ts_bias_dtype == DType::F32 ? 4 : 2;
            const char* row = static_cast<const char*>(a.ts_bias) + (static_cast<int64_t>(early_bucket) * a.N + n_first) * esz;
            const int bytes = max(0, min(rows, a.N - n_first)) * esz;
            for (int off = 0; off < bytes; off += 128) asm volatile("prefetch.global.L1 [%0];" ::"l"(row + off));
        }
    } else if (a.ts_bias && (ksplit == 1 || blockIdx.z == 0)) {
        // NT >= 2 compares its buckets after the loop: every bucket's rows of this block into L2 now,
        // so the epilogue's loads are not DRAM round trips after an L2 flush
        dev::prefetch_table_rows(a.ts_bias, dev::dtype_size(a.ts_bias_dtype), a.nbounds + 1, a.N, rb << rows_shift,
                                 rows, threadIdx.x, kThreads);
    }
    if (work) {
#pragma unroll
        for (int r = 0; r < R - 1; ++r)
            if (u * L::kSuper + r * 64 < kend) ops[r].load(a, x, szp, m0, u * L::kSuper + r * 64, g, q);
        [&]<int... I>(std::integer_sequence<int, I...>) {
            for (int it = 0; (body(IntTag<I>{}, u + I, it + I) && ...); it += V) u += V;
        }(std::make_integer_sequence<int, V>{});
    }
    cp_async_wait<0>();
    __syncthreads();  // the ring is reused for the reduction below
    MMA_TRACE(a, 4, clock64());
    if (pdl_at == 1) dev::pdl_trigger();

    // warps -> shared tile [wk][row][tok] (padded), summed over wk below
    const int tp = toks + 1;
    int* bucket = reinterpret_cast<int*>(red + wk_count * rows * tp) + 1;  // past the last-block flag
    if (static_cast<int>(threadIdx.x) < toks) bucket[threadIdx.x] = NT == 1 ? early_bucket : token_bucket(a, bucket_in, toks);  // ring free
#pragma unroll
    for (int i = 0; i < kMT; ++i)
#pragma unroll
        for (int jn = 0; jn < NT; ++jn)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int r = wn * kMT * 16 + i * 16 + g + 8 * (e >> 1);
                red[(wk * rows + r) * tp + jn * 8 + 2 * q + (e & 1)] = acc[i][jn][e];
            }
    __syncthreads();
    const int n0 = rb * rows;
    T* y = static_cast<T*>(a.y);
    // kB outputs at a time, their timestep-row loads issued together ahead of the first store (one
    // per output waited a dependent L2 round trip each: 8-16 per thread at NT = 2-4). v3's batch of
    // 16 with bias too cost 25 registers; 4 raw 16-bit values, timestep rows only, fit the main
    // loop's budget.
    constexpr int kB = NT == 1 ? 1 : 4;  // NT = 1 (M <= 8): 4 spilled 24-48 bytes (sm_90a)
    const bool terms = ksplit == 1 || blockIdx.z == 0;  // bias terms: once, with K slice 0
    // only the tile's real tokens (M = 1: 32 of 256 outputs), idx = token * rows + row by shifts
    const int outs = rows * min(toks, a.M - m0);
    for (int base = threadIdx.x; base < outs; base += kThreads * kB) {
        uint32_t ts[kB];
#pragma unroll
        for (int e = 0; e < kB; ++e) {
            const int idx = base + e * kThreads, tl = idx >> rows_shift, r = idx & (rows - 1);
            ts[e] = a.ts_bias && terms && idx < outs && n0 + r < a.N
                        ? dev::ld_raw(a.ts_bias, static_cast<int64_t>(bucket[tl]) * a.N + n0 + r, a.ts_bias_dtype)
                        : 0u;
        }
#pragma unroll
        for (int e = 0; e < kB; ++e) {
            const int idx = base + e * kThreads, tl = idx >> rows_shift, r = idx & (rows - 1);
            const int n = n0 + r, m = m0 + tl;
            if (idx >= outs || n >= a.N) continue;
            float v = 0.f;
#pragma unroll
            for (int w = 0; w < kWarps; ++w)  // the partial sums' loads side by side
                if (w < wk_count) v += red[(w * rows + r) * tp + tl];
            if (terms && a.bias) v += dev::ldf(a.bias, n, a.bias_dtype);
            if (terms && a.ts_bias) v += dev::raw_to_f(ts[e], a.ts_bias_dtype);
            const int64_t o = static_cast<int64_t>(m) * a.N + n;
            if (ksplit == 1) y[o] = dev::from_f<T>(v);
            else if (csum) red[r * tp + tl] = v;  // the (wk 0) cell this thread alone read: the slice's partial
            else a.workspace[static_cast<int64_t>(blockIdx.z) * a.M * a.N + o] = v;
        }
    }
    MMA_TRACE(a, 5, clock64());
    MMA_TRACE(a, 6, global_ns());
    MMA_TRACE(a, 7, sm_id());
    if (ksplit == 1) return;
    if (csum) {
        // Slice z (the block's rank in the cluster) sums outputs z * kThreads + tid, + ksplit *
        // kThreads, ... over every slice's partial, each slice's load issued before the first add
        dev::cluster_arrive();  // this slice's partials are in its shared memory
        dev::cluster_wait();
        const int z = blockIdx.z;
        auto each_share = [&](auto f) {
            for (int idx = z * kThreads + static_cast<int>(threadIdx.x); idx < outs; idx += ksplit * kThreads) {
                const int tl = idx >> rows_shift, r = idx & (rows - 1);
                if (n0 + r < a.N) f(tl, r);
            }
        };
        each_share([&](int tl, int r) {
            const uint32_t mine = dev::smem_u32(red + r * tp + tl);
            float part[kMaxClusterSplit];
#pragma unroll
            for (int zz = 0; zz < kMaxClusterSplit; ++zz)
                part[zz] = zz < ksplit ? dev::ld_cluster_f32(dev::cluster_map(mine, zz)) : 0.f;
            float v = 0.f;
#pragma unroll
            for (int zz = 0; zz < kMaxClusterSplit; ++zz) v += part[zz];
            red[r * tp + tl] = v;  // no other slice reads this cell (it is in this slice's share)
        });
        dev::cluster_arrive();  // done with the other slices' shared memory
        each_share([&](int tl, int r) { y[static_cast<int64_t>(m0 + tl) * a.N + n0 + r] = dev::from_f<T>(red[r * tp + tl]); });
        dev::cluster_wait();  // the others are done with this one's
        MMA_TRACE(a, 6, global_ns());  // the reduction's end
        return;
    }

    int& last = *reinterpret_cast<int*>(red + wk_count * rows * tp);  // past the reduction tile (smem_bytes)
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        int* sem = a.semaphores + blockIdx.x;
        last = atomicAdd(sem, 1) == ksplit - 1;
        if (last) atomicExch(sem, 0);  // every other split has arrived: ready for the next launch
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    for (int idx = threadIdx.x; idx < outs; idx += kThreads) {
        const int tl = idx >> rows_shift, r = idx & (rows - 1);
        const int n = n0 + r, m = m0 + tl;
        if (n >= a.N) continue;
        const int64_t o = static_cast<int64_t>(m) * a.N + n;
        float v = 0.f;
        for (int z = 0; z < ksplit; ++z) v += __ldcg(a.workspace + static_cast<int64_t>(z) * a.M * a.N + o);
        y[o] = dev::from_f<T>(v);  // bias terms came with slice 0
    }
    MMA_TRACE(a, 6, global_ns());  // the last block of a tile: its reduction's end
}

// Token tiles per block: 8 * nt tokens, nt <= 4; more M runs more grid.y tiles. One 64-token tile
// (nt = 8) lost to two 32-token tiles everywhere it was timed (H200, lut_mma v3: (4096, 12288) w4
// M = 64 64.1 vs 49.4 µs, (4096, 4096) 50.1 vs 32.4, w2 70.7 vs 31.1): its ring fits only 2 stages
// and 2 blocks per SM, and x is re-read by each tile either way. QUANTDLLM_MMA_MAX_NT (1 or 2) caps
// nt further, for benchmarks; 4 keeps 32-token tiles where mma_plan's rule would take 16.
// A benchmark knob: the environment variable's value if it is one of `allowed`, else 0.
int env_knob(const char* name, std::initializer_list<int> allowed) {
    const char* s = std::getenv(name);
    if (!s) return 0;
    const int v = std::atoi(s);
    return std::find(allowed.begin(), allowed.end(), v) != allowed.end() ? v : 0;
}

// Where lut_mma lets the next launch start (the kernel's pdl_at): QUANTDLLM_PDL_TRIGGER=entry for
// benchmarks, else after the main loop. Read once.
int pdl_trigger_at() {
    static const int at = [] {
        const char* s = std::getenv("QUANTDLLM_PDL_TRIGGER");
        return s && std::strcmp(s, "entry") == 0 ? 0 : 1;
    }();
    return at;
}

int nt_of(int M) {
    const int nt = M <= 8 ? 1 : M <= 16 ? 2 : 4;
    const int cap = env_knob("QUANTDLLM_MMA_MAX_NT", {1, 2, 4});  // 4: no cap, and no NT = 2 rule (mma_plan)
    return cap ? std::min(nt, cap) : nt;
}

}  // namespace

int mma_super_k(int bits) { return 64 * (bits == 4 ? 1 : bits == 2 ? 2 : 4); }

// Calls f(kernel) with the instantiation a (dtype, bits, nt, in_scale present) launch runs.
template <typename F>
bool with_kernel(DType dt, int bits, int nt, bool in_scale, F&& f) {
    bool ok = false;
    dispatch_act(dt, [&](auto t) {
        using T = typename decltype(t)::type;
        auto by_nt = [&](auto b) {
            constexpr int B = decltype(b)::value;
            ok = true;
            switch (nt) {
                case 1: in_scale ? f(lut_mma_kernel<T, B, 1, true>) : f(lut_mma_kernel<T, B, 1, false>); break;
                case 2: f(lut_mma_kernel<T, B, 2, true>); break;
                case 4: f(lut_mma_kernel<T, B, 4, true>); break;
                default: ok = false;
            }
        };
        dispatch_mma_bits(bits, by_nt);
    });
    return ok;
}

size_t smem_bytes(const MmaPlan& p, int bits) {
    const size_t red = static_cast<size_t>(p.wk) * p.wn * kMT * 16 * (p.nt * 8 + 1) * sizeof(float);
    const size_t ring = ring_bytes(bits, p.nt);
    // past the reduction tile: the last-block flag, then one timestep bucket per token
    return std::max(red + sizeof(int) * (1 + p.nt * 8), ring);
}

// Blocks of this plan's kernel resident per SM, asked of the runtime once per (device, dtype, bits,
// nt, wn, in_scale) and then cached: the query (and the shared-memory opt-in) cost a few µs of host time on
// every eager launch.
int resident_blocks(const MmaPlan& p, int bits, DType dt, bool in_scale) {
    static std::mutex mu;
    static std::map<std::tuple<int, int, int, int, int, bool>, int> cache;
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return 0;
    const auto key = std::make_tuple(dev, static_cast<int>(dt), bits, p.nt, p.wn, in_scale);
    {
        std::lock_guard<std::mutex> lock(mu);
        const auto it = cache.find(key);
        if (it != cache.end()) return it->second;
    }
    int per_sm = 0;
    with_kernel(dt, bits, p.nt, in_scale, [&](auto kernel) {
        if (allow_smem_once(reinterpret_cast<const void*>(kernel)) != cudaSuccess ||
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, smem_bytes(p, bits)) != cudaSuccess)
            per_sm = 0;
    });
    if (per_sm > 0) {
        std::lock_guard<std::mutex> lock(mu);
        cache[key] = per_sm;
    }
    return per_sm;
}

namespace {
// The plan at token tile nt; `waves`: rounds of resident slots its grid takes before any K split.
MmaPlan plan_at(int nt, int M, int N, int K, int bits, int num_sms, const MmaResidentFn& resident, long long& waves) {
    MmaPlan p;
    p.nt = nt;
    // Warps along N per block (the rest split the block's K range). Larger M: warps sharing a K range
    // share each x load through L1. QUANTDLLM_MMA_WN (1, 2, 4) overrides, for benchmarks (wn = 4 lost
    // everywhere it was timed: 62.1 vs 41.9 µs at M = 32 on (4096, 12288), H200).
    p.wn = env_knob("QUANTDLLM_MMA_WN", {1, 2, 4});
    if (!p.wn) p.wn = M <= 4 ? 1 : 2;
    p.wk = kWarps / p.wn;
    const int rows = p.wn * kMT * 16;
    p.grid_x = ((N + 31) / 32 * 32 + rows - 1) / rows;
    p.grid_y = (M + p.nt * 8 - 1) / (p.nt * 8);
    const int U = (K + mma_super_k(bits) - 1) / mma_super_k(bits);
    const long long blocks = static_cast<long long>(p.grid_x) * p.grid_y;
    // Split K so the grid fills the resident slots in one wave (a second, partial wave would
    // double the time of the SMs that run it), each warp keeping >= 2 super-chunks, and the fp32
    // partials (ksplit * M * N * 8 bytes written + read) under ~1/4 of the packed weight.
    const int per_sm = resident(p);
    const long long slots = static_cast<long long>(std::max(per_sm, 1)) * num_sms;
    waves = (blocks + slots - 1) / slots;
    long long ks = std::max<long long>(1, slots / blocks);
    ks = std::min<long long>(ks, std::max(1, U / (2 * p.wk)));
    ks = std::min<long long>(ks, std::max(1LL, static_cast<long long>(K) * bits / (256LL * M)));
    ks = std::max<long long>(ks, 1);
    // M <= 4 (one warp column): 2 slices once they cover every SM, not the one-wave fill. H200,
    // flushed, w4 (nineteenth session, call 4): (4096, 4096) M = 1, 2 slices 9.3-10.4 µs (cluster),
    // 10.0-10.4 (workspace), against 10.8-11.5 for the fill's 5; (12288, 4096) 16.3-16.8 against
    // 17.1-17.7. (The seventh session's rotating sweep had 2 ahead of 5 too: 7.96 vs 8.46.)
    if (p.wn == 1 && blocks * 2 >= num_sms) ks = std::min<long long>(ks, 2);
    // M = 5-16 (two warp columns) where a warp's share at 2 slices is <= 16 chunks (K <= 4096): 2
    // slices, one cluster, not the fill's 3-10 with the workspace's tail. H200, flushed, µs, fill ->
    // 2 (twenty-second session, call 3): (4096, 4096) M = 16 w3 18.6 (3 slices) -> 15.0, w4 15.5 ->
    // 14.4, M = 5 w4 13.4 -> 11.5; (4096, 12288) M = 8 w4 19.9 -> 16.7. Not 3-bit at M <= 8 (its x
    // in registers wants the warps more slices give: (4096, 4096) M = 5 12.4 -> 13.3), nor K = 12288
    // (48 chunks per warp: M = 5-8 +8 to +20%).
    if (p.wn == 2 && ks > 2 && K / 64 <= 16 * 2 * p.wk && !(bits == 3 && nt == 1)) ks = 2;
    if (const int forced = env_knob("QUANTDLLM_MMA_KSPLIT", {1, 2, 3, 4, 5, 6, 8})) ks = std::min(forced, U);
    const int per = static_cast<int>((U + ks - 1) / ks);
    p.ksplit = (U + per - 1) / per;
    // QUANTDLLM_MMA_CLUSTER (benchmarks): 0 never a cluster, 1 whenever the split fits one
    const char* cl = std::getenv("QUANTDLLM_MMA_CLUSTER");
    const int most = !cl ? kClusterSplitDefault : std::strcmp(cl, "0") == 0 ? 0 : kMaxClusterSplit;
    p.cluster = p.ksplit >= 2 && p.ksplit <= most;
    return p;
}
}  // namespace

MmaPlan mma_plan(int M, int N, int K, int bits, int num_sms, DType dt, bool in_scale) {
    return mma_plan_with(M, N, K, bits, num_sms, [&](const MmaPlan& p) { return resident_blocks(p, bits, dt, in_scale); });
}

MmaPlan mma_plan_with(int M, int N, int K, int bits, int num_sms, const MmaResidentFn& resident) {
    long long waves = 0, waves2 = 0;
    const MmaPlan p = plan_at(nt_of(M), M, N, K, bits, num_sms, resident, waves);
    if (p.nt != 4 || env_knob("QUANTDLLM_MMA_MAX_NT", {4})) return p;
    // M = 17-64: 16-token tiles whenever they take no more waves than 32-token ones. They read each
    // code twice (the second time mostly from L2) but skip the K split and its serial tail, and
    // hold 4 blocks per SM where NT = 4 holds 2-3. H200, w4 / w2 (µs, NT = 4 -> 2): (4096, 12288)
    // M = 32 41.9 -> 34.8 / 38.4 -> 32.6, w2 M = 64 71.0 -> 58.8; (4096, 4096) M = 32 31.5 -> 23.7,
    // M = 64 31.5 -> 26.7. (4096, 12288) w4 M = 64 takes 2 waves at NT = 2 and lost: 49.2 -> 61.8.
    const MmaPlan q = plan_at(2, M, N, K, bits, num_sms, resident, waves2);
    return waves2 <= waves ? q : p;
}

namespace {
// Dynamic shared memory for a launch of `blocks` blocks that needs `own` bytes each: with PDL, a
// grid of at most one wave asks for enough that no more of its blocks fit on an SM than an even
// spread puts there (ceil(blocks / SMs)). The next launch's blocks then find a slot only where one
// of this launch's blocks has left, one for one, and spread as evenly as this one's; with the free
// slots open, they filled those while this launch ran and the rest unevenly, and a memory-bound
// grid is as slow as its most loaded SM (fifteenth session, call 3: M = 32 on (4096, 12288) +3.2 µs
// per launch back to back, w2 M = 8 +1.7 in graph replay).
size_t launch_smem(const void* kernel, size_t own, long long blocks, int per_sm) {
    if (!pdl_for(kernel) || per_sm < 2) return own;
    struct Dev { int sms = 0, cap = 0, reserved = 0, optin = 0; };
    static std::mutex mu;
    static std::map<int, Dev> cache;
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return own;
    Dev d;
    {
        std::lock_guard<std::mutex> lock(mu);
        auto it = cache.find(dev);
        if (it == cache.end()) {
            if (cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
                cudaDeviceGetAttribute(&d.cap, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev) != cudaSuccess ||
                cudaDeviceGetAttribute(&d.reserved, cudaDevAttrReservedSharedMemoryPerBlock, dev) != cudaSuccess ||
                cudaDeviceGetAttribute(&d.optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess)
                d = Dev{};
            it = cache.emplace(dev, d).first;
        }
        d = it->second;
    }
    if (d.sms < 1 || blocks > static_cast<long long>(per_sm) * d.sms) return own;  // more than one wave
    const long long even = (blocks + d.sms - 1) / d.sms;
    if (even >= per_sm) return own;
    const size_t want = (static_cast<size_t>(d.cap / even - d.reserved)) & ~size_t{127};
    return std::max(own, std::min(want, static_cast<size_t>(d.optin)));
}
}  // namespace

cudaError_t launch_lut_mma(const MmaArgs& a, const MmaPlan& p, cudaStream_t stream) {
    if (a.M < 1 || a.N < 1 || a.K < 1 || a.K % 64 || !a.codes || !a.sz || !a.x || !a.y) return cudaErrorInvalidValue;
    if (a.bits < 2 || a.bits > 4 || p.wn < 1 || kWarps % p.wn || p.wk != kWarps / p.wn) return cudaErrorInvalidValue;
    if (p.ksplit > 1 && (!a.workspace || !a.semaphores)) return cudaErrorInvalidValue;
    if (a.ts_bias && (!a.t || (a.t_numel != 1 && a.t_numel != a.M))) return cudaErrorInvalidValue;
    if (static_cast<long long>(p.grid_x) * p.grid_y > 0x7FFFFFFF || p.ksplit < 1 || p.ksplit > 65535) return cudaErrorInvalidValue;
    const dim3 grid(p.grid_x * p.grid_y, 1, p.ksplit);  // token tiles fastest (kernel)
    cudaError_t err = cudaErrorInvalidValue;
    MmaArgs args = a;
    args.group_mask = a.group_shift >= 31 ? 0x7FFFFFFF : (1 << a.group_shift) - 1;
    args.wn_shift = p.wn == 1 ? 0 : p.wn == 2 ? 1 : 2;
    args.token_tiles = (a.M + p.nt * 8 - 1) / (p.nt * 8);
    const int U = (a.K + mma_super_k(a.bits) - 1) / mma_super_k(a.bits);
    args.per_split = (U + p.ksplit - 1) / p.ksplit;
    if (args.token_tiles != p.grid_y) return cudaErrorInvalidValue;
    with_kernel(a.x_dtype, a.bits, p.nt, a.in_scale != nullptr, [&](auto kernel) {
        err = allow_smem_once(reinterpret_cast<const void*>(kernel));  // rings of NT >= 2 pass 48 KB
        if (err != cudaSuccess) return;
        const long long blocks = static_cast<long long>(p.grid_x) * p.grid_y * p.ksplit;
        const size_t smem = launch_smem(reinterpret_cast<const void*>(kernel), smem_bytes(p, a.bits), blocks, resident_blocks(p, a.bits, a.x_dtype, a.in_scale != nullptr));
        // a K split as clusters of its slices (grid.z = ksplit: one cluster per tile)
        args.cluster_sum = p.cluster && clusters_for(reinterpret_cast<const void*>(kernel));
        const dim3 cluster(1, 1, args.cluster_sum ? p.ksplit : 1);
        err = launch_pdl_clustered(kernel, grid, cluster, dim3(kThreads), smem, stream, args, p.ksplit, pdl_trigger_at());
    });
    return err;
}

}  // namespace quantdllm
