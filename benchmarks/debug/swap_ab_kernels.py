"""Probe kernels (not the package's): the large-M fused GEMM with the operands swapped, y^T = W x^T,
so the dequantized W tile is wgmma's register A operand (Hopper) and x^T comes from shared memory.
4-bit affine (rtn) only; K a multiple of BLOCK_K, N of BLOCK_N. ``swap_gemm`` unpacks W as (BN, BK)
directly; ``swap_gemm_t`` transposes the plain (BK, BN) tile. Used by probe_fused_large_m.py
(H200: both 1.4-2x slower than dequantize + cuBLAS at M = 512-4096; NOTES, eighth session).
The two forms share one body since that run (same PTX shape: register-A wgmma, sm_90)."""
import triton
import triton.language as tl


@triton.jit
def _w_tile(p0_ptr, scale_ptr, zero_ptr, k0, offs_n, N, GROUP_SIZE, BITS: tl.constexpr, BLOCK_N: tl.constexpr,
            BLOCK_K: tl.constexpr, UNPACK_NK: tl.constexpr):
    """fp16 W[offs_n, k0:k0 + BLOCK_K] as (BLOCK_N, BLOCK_K): unpacked in that orientation
    (UNPACK_NK) or as the plain (BLOCK_K, BLOCK_N) tile, transposed."""
    PER: tl.constexpr = 32 // BITS
    R: tl.constexpr = BLOCK_K // PER
    rows = k0 // PER + tl.arange(0, R)
    shifts = tl.arange(0, PER) * BITS
    g = k0 // GROUP_SIZE
    s = tl.load(scale_ptr + g * N + offs_n).to(tl.float32)
    z = tl.load(zero_ptr + g * N + offs_n).to(tl.float32)
    if UNPACK_NK:
        words = tl.load(p0_ptr + rows[None, :] * N + offs_n[:, None])                 # (BN, R)
        c = (words[:, :, None] >> shifts[None, None, :]) & ((1 << BITS) - 1)          # (BN, R, PER)
        c = tl.reshape(c, (BLOCK_N, BLOCK_K))
        v = (c | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0
        w = (v * s[:, None] + z[:, None]).to(tl.float16)
    else:
        words = tl.load(p0_ptr + rows[:, None] * N + offs_n[None, :])                 # (R, BN)
        c = (words[:, None, :] >> shifts[None, :, None]) & ((1 << BITS) - 1)          # (R, PER, BN)
        c = tl.reshape(c, (BLOCK_K, BLOCK_N))
        v = (c | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0
        w = tl.trans((v * s[None, :] + z[None, :]).to(tl.float16))
    return w


@triton.jit
def _swap_body(x_ptr, y_ptr, p0_ptr, scale_ptr, zero_ptr, M, N, K, GROUP_SIZE, BITS: tl.constexpr,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, UNPACK_NK: tl.constexpr):
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    for kt in range(0, K // BLOCK_K):
        k0 = kt * BLOCK_K
        w = _w_tile(p0_ptr, scale_ptr, zero_ptr, k0, offs_n, N, GROUP_SIZE, BITS, BLOCK_N, BLOCK_K, UNPACK_NK)
        offs_k = k0 + tl.arange(0, BLOCK_K)
        xt = tl.load(x_ptr + offs_m[None, :] * K + offs_k[:, None], mask=offs_m[None, :] < M, other=0.0)  # (BK, BM)
        acc = tl.dot(w, xt, acc)
    tl.store(y_ptr + offs_m[None, :] * N + offs_n[:, None], acc.to(tl.float16), mask=(offs_m[None, :] < M))


@triton.jit
def swap_gemm(x_ptr, y_ptr, p0_ptr, scale_ptr, zero_ptr, lut_ptr, M, N, K, GROUP_SIZE,
              BITS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    _swap_body(x_ptr, y_ptr, p0_ptr, scale_ptr, zero_ptr, M, N, K, GROUP_SIZE, BITS, BLOCK_M, BLOCK_N, BLOCK_K, True)


@triton.jit
def swap_gemm_t(x_ptr, y_ptr, p0_ptr, scale_ptr, zero_ptr, lut_ptr, M, N, K, GROUP_SIZE,
                BITS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    _swap_body(x_ptr, y_ptr, p0_ptr, scale_ptr, zero_ptr, M, N, K, GROUP_SIZE, BITS, BLOCK_M, BLOCK_N, BLOCK_K, False)
