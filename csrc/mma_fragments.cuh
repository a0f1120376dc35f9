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
// masks: fp16 4-bit takes the odd nibbles in place (f = 16), 2-bit takes the odd rows' codes two bits
// up (f = 4), 3-bit three bits up (f = 8): its words hold 6-bit row pairs in four 12-bit blocks per
// chunk (block d: pair d & 1 of step d >> 1 at bit 0, of step (d >> 1) + 2 at bit 6 -- the data lane
// d of a quad needs when lut_wgmma reads x as stored; blocks 0-2 in words 3c + d, block 3 in their top
// nibbles, put together once per chunk: 3 shifts, 3 LOP3), so a register is one LOP3 of its block or
// of the block shifted by 6. 26 ALU instructions per 16-row tile and chunk, against 46 for the 2-bit +
// 1-bit planes it replaced (twenty-third session). The magic ORed into rows g + 8 (kMagicHi): after
// the mma (POST) the common one, 1024 + f*c, which the group's scale s/f undoes; before it magic/f,
// whose ulp is 1/f, so that (magic/f) | f*c reads magic/f + c exactly (f*c < 1024 in fp16; bf16: f*c
// < 128 at f = 4 and 8), and the pre-mma subtraction of magic/f leaves c: w = c*s + z as with f = 1,
// one shift fewer per k pair (twenty-first session; before it the pre-mma decode shifted each row).
template <typename T, int BITS, bool POST>
struct Decode {
    static constexpr bool kHiNibble = BITS == 4 && std::is_same_v<T, __half>;
    static constexpr int kShiftHi = kHiNibble ? 4 : BITS == 2 ? 2 : BITS == 3 ? 3 : 0;  // log2 f
    static constexpr float kFactorHi = static_cast<float>(1 << kShiftHi);  // f of rows g+8 (rows g: 1)
    static constexpr uint32_t kMagicHi = POST ? Pair<T>::kMagic : Pair<T>::kMagic - kShiftHi * Pair<T>::kExpOne;
    // 3-bit block d of chunk c (bits 0-11 of each half; 12-15 of blocks 0-2 hold block 3)
    static __device__ __forceinline__ uint32_t block(const uint32_t* w, int c, int d) {
        if (d < 3) return w[3 * c + d];
        const uint32_t f = (w[3 * c] >> 12) & 0x000F000Fu;
        return lop3_and_or(w[3 * c + 2] >> 4, 0x0F000F00u, lop3_and_or(w[3 * c + 1] >> 8, 0x00F000F0u, f));
    }
    // a 3-bit register from its block: rows g at bit 6 h, rows g + 8 three bits up
    static __device__ __forceinline__ uint32_t from_block(uint32_t v, int h, int odd) {
        return lop3_and_or(h ? v >> 6 : v, odd ? 0x00380038u : 0x00070007u, odd ? kMagicHi : Pair<T>::kMagic);
    }
    static __device__ __forceinline__ uint32_t a_reg(const uint32_t* w, int c, int s, int j) {
        const int jp = j >> 1, odd = j & 1;  // k pair, row g + 8
        const uint32_t magic = odd ? kMagicHi : Pair<T>::kMagic;
        if constexpr (kHiNibble) {
            const uint32_t v = jp ? w[s] >> 8 : w[s];
            return lop3_and_or(v, odd ? 0x00F000F0u : 0x000F000Fu, magic);
        } else if constexpr (BITS == 4) {
            return lop3_and_or(w[s] >> (4 * j), 0x000F000Fu, magic);
        } else if constexpr (BITS == 3) {
            return from_block(block(w, c, 2 * (s & 1) + jp), s >> 1, odd);
        } else {
            // rows g, g+8 of pair jp at bits 2*(4*(s & 1) + 2*jp) + {0, 2}
            const uint32_t lo = w[2 * c + (s >> 1)] >> (2 * (4 * (s & 1) + 2 * jp));
            return lop3_and_or(lo, odd ? 0x000C000Cu : 0x00030003u, magic);
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
