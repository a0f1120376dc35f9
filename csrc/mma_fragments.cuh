// Fragment-level pieces shared by the tensor-core kernels (lut_mma.cu: mma.sync, lut_wgmma_kernel.cuh: wgmma):
// the fragment-order code layout, fp16/bf16 pair arithmetic, the magic-number code decode into an
// A-operand register, and the asynchronous-copy wrappers. The layout itself is described at the top
// of lut_mma.cu and written by quantdllm_kernels/backends/cuda_layout.py.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "dispatch.cuh"

namespace quantdllm {
namespace frag {

template <int BITS>
struct Layout {
    static constexpr int kChunks = BITS == 4 ? 1 : BITS == 2 ? 2 : 4;  // 64-code chunks per super-chunk
    static constexpr int kSuper = 64 * kChunks;
    static constexpr int kWords = BITS * kChunks;                      // int32 words per lane per super
    static_assert(kWords % 4 == 0, "a lane's words are whole 16-byte loads");
};

// fp16 / bf16 pair arithmetic behind one interface.
template <typename T> struct Pair;
template <> struct Pair<__half> {
    using T2 = __half2;
    static constexpr uint32_t kMagic = 0x64006400u;  // 1024.0 | c = 1024 + c exactly (c < 1024)
    static constexpr uint32_t kExpOne = 0x04000400u;  // one in both halves' exponent fields (subtracted: halves both)
    static constexpr uint32_t kOnes = 0x3C003C00u;
    static constexpr float kMagicF = 1024.f;
    static __device__ __forceinline__ T2 lo(uint32_t v) { return __low2half2(bits(v)); }
    static __device__ __forceinline__ T2 hi(uint32_t v) { return __high2half2(bits(v)); }
    static __device__ __forceinline__ T2 bits(uint32_t v) { T2 r; memcpy(&r, &v, 4); return r; }
    static __device__ __forceinline__ float2 f2(uint32_t v) { return __half22float2(bits(v)); }
};
template <> struct Pair<__nv_bfloat16> {
    using T2 = __nv_bfloat162;
    static constexpr uint32_t kMagic = 0x43004300u;  // 128.0 | c = 128 + c exactly (c < 128)
    static constexpr uint32_t kExpOne = 0x00800080u;
    static constexpr uint32_t kOnes = 0x3F803F80u;
    static constexpr float kMagicF = 128.f;
    static __device__ __forceinline__ T2 lo(uint32_t v) { return __low2bfloat162(bits(v)); }
    static __device__ __forceinline__ T2 hi(uint32_t v) { return __high2bfloat162(bits(v)); }
    static __device__ __forceinline__ T2 bits(uint32_t v) { T2 r; memcpy(&r, &v, 4); return r; }
    static __device__ __forceinline__ float2 f2(uint32_t v) { return __bfloat1622float2(bits(v)); }
};
template <typename T2> __device__ __forceinline__ uint32_t u32(T2 v) {
    uint32_t r;
    memcpy(&r, &v, 4);
    return r;
}

__device__ __forceinline__ uint32_t lop3_and_or(uint32_t a, uint32_t b, uint32_t c) {  // (a & b) | c
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}

// A register `j` (rows g + 8*(j & 1)) of step `s` of chunk `c` as magic + f*code pairs (layout above).
// The rows g + 8 take f != 1, so that both rows of a k pair share one shift and differ in their
// masks: fp16 4-bit takes the odd nibbles in place (f = 16), 2- and 3-bit take the odd rows' codes two
// bits up (f = 4). 3-bit adds a 1-bit plane, laid out so that one shift of its word serves both rows:
// 2 LOP3 per register and one shift per plane and k pair (sm_90a, M <= 8: ~6 instructions per
// register before). The magic ORed into rows g + 8 (kMagicHi): after the mma (POST) the common one,
// 1024 + f*c, which the group's scale s/f undoes; before it magic/f, whose ulp is 1/f, so that
// (magic/f) | f*c reads magic/f + c exactly (f*c < 1024 in fp16; bf16 f = 4: 4*7 < 128), and the
// pre-mma subtraction of magic/f leaves c: w = c*s + z as with f = 1, one shift fewer per k pair
// (twenty-first session; before it the pre-mma decode shifted each row).
template <typename T, int BITS, bool POST>
struct Decode {
    static constexpr bool kHiNibble = BITS == 4 && std::is_same_v<T, __half>;
    static constexpr bool kHiQuad = BITS == 2 || BITS == 3;
    static constexpr float kFactorHi = kHiNibble ? 16.f : kHiQuad ? 4.f : 1.f;  // f of rows g+8 (rows g: 1)
    static constexpr uint32_t kMagicHi = POST ? Pair<T>::kMagic : Pair<T>::kMagic - (kHiNibble ? 4 : kHiQuad ? 2 : 0) * Pair<T>::kExpOne;
    static __device__ __forceinline__ uint32_t shr(uint32_t v, int n) { return n >= 0 ? v >> n : v << -n; }
    static __device__ __forceinline__ uint32_t a_reg(const uint32_t* w, int c, int s, int j) {
        const int jp = j >> 1, odd = j & 1;  // k pair, row g + 8
        const uint32_t magic = odd ? kMagicHi : Pair<T>::kMagic;
        if constexpr (kHiNibble) {
            const uint32_t v = jp ? w[s] >> 8 : w[s];
            return lop3_and_or(v, odd ? 0x00F000F0u : 0x000F000Fu, magic);
        } else if constexpr (BITS == 4) {
            return lop3_and_or(w[s] >> (4 * j), 0x000F000Fu, magic);
        } else {
            // 2-bit plane: rows g, g+8 of pair jp at bits 2*(4*(s & 1) + 2*jp) + {0, 2}
            const uint32_t lo = w[2 * c + (s >> 1)] >> (2 * (4 * (s & 1) + 2 * jp));
            const uint32_t mask = odd ? 0x000C000Cu : 0x00030003u;
            if constexpr (BITS == 2) return lop3_and_or(lo, mask, magic);
            // 1-bit plane (word 8 + c): rows g, g+8 of pair jp at bits 8*(s & 1) + 4*jp + (s >> 1) +
            // {0, 2}, moved to bits 2 / 4 (f = 4). (Bits 2 and 3 of the position are then the quad
            // index of the lane that needs them when lut_wgmma reads x as stored, as in the 2-bit
            // plane: one exchange for both, QuadSwap.)
            const uint32_t hi = shr(w[8 + c], 8 * (s & 1) + 4 * jp + (s >> 1) - 2);
            return lop3_and_or(lo, mask, lop3_and_or(hi, odd ? 0x00100010u : 0x00040004u, magic));
        }
    }
};

template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    if constexpr (std::is_same_v<T, __half>) {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
}

// Asynchronous 16-byte global -> shared copies (sm_80+): the code ring below costs no registers.
__device__ __forceinline__ void cp_async16(uint32_t smem, const void* gmem) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(smem), "l"(gmem));
}
// Cached in L1 (.ca): every block reads the same x, which L1 then serves (.cg went to the same
// few L2 lines from every SM and ran 5x slower).
__device__ __forceinline__ void cp_async16_l1(uint32_t smem, const void* gmem) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 16;" ::"r"(smem), "l"(gmem));
}
__device__ __forceinline__ void cp_async8(uint32_t smem, const void* gmem) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8;" ::"r"(smem), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N)); }

}  // namespace frag
}  // namespace quantdllm
