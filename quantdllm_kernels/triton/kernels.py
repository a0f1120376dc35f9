"""Triton kernels over the slab-interleaved layout (see ``layout.py``).

Every kernel walks K in tiles of one plane-0 block (BLOCK_K = 16 * 32 / B0: 128 for 4-bit,
256 for 2/3-bit, 512 for 1-bit). Per tile it loads a (16, BLOCK_N) tile of plane-0 words once
(plus plane-1 words for 3-bit), then for j = 0..PER-1 peels slab j -- the codes of 16 consecutive
k -- off by a shift, looks them up (``_lookup``), and uses them against a contiguous 16-wide
slice of x:

* ``lut_gemv_kernel`` (M = 1): ``acc2 (16, BLOCK_N) += x_slab[:, None] * w_slab``; one reduction
  over K at the end; split-K over programs.
* ``lut_gemm_kernel``: ``acc = tl.dot(x_slab (BLOCK_M, 16), w_slab (16, BLOCK_N), acc)``, fp32
  accumulation; optional split-K for small M.
* ``lut_dequant_kernel``: W^T (K, N) written once, for cuBLAS at large M (the tuner picks it only
  where it measures faster).

A slab never spans two groups (group sizes are multiples of 16). Split-K programs ``atomic_add``
fp32 partial sums into a zeroed fp32 buffer; the wrapper adds the bias and casts.
"""
import triton
import triton.language as tl


@triton.jit
def _lookup(c, g, offs_n, mask_n, scale_ptr, zero_ptr, lut_ptr, N, BITS: tl.constexpr,
            LUT_MODE: tl.constexpr, HAS_ZERO: tl.constexpr):
    """fp32 weights for codes ``c (rows, BLOCK_N)`` of group ``g`` and output columns offs_n."""
    E: tl.constexpr = 1 << BITS
    if LUT_MODE == 3:  # table (G, N, E): gather from the group's row of entries
        w = tl.load(lut_ptr + (g * N + offs_n[None, :]) * E + c, mask=mask_n[None, :], other=0.0).to(tl.float32)
    elif LUT_MODE == 4:  # binary: mu + sum_i alpha_i * (2*bit_i - 1); mu is in the scale slot
        w = tl.zeros(c.shape, dtype=tl.float32)
        w += tl.load(scale_ptr + g * N + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
        for i in tl.static_range(BITS):
            a = tl.load(lut_ptr + (g * BITS + i) * N + offs_n, mask=mask_n, other=0.0).to(tl.float32)
            w += tl.where(((c >> i) & 1) != 0, a[None, :], -a[None, :])
    else:
        s = tl.load(scale_ptr + g * N + offs_n, mask=mask_n, other=0.0).to(tl.float32)
        if LUT_MODE == 0:
            v = c.to(tl.float32)
        elif LUT_MODE == 1:
            v = tl.load(lut_ptr + c).to(tl.float32)
        else:
            v = tl.load(lut_ptr + offs_n[None, :] * E + c, mask=mask_n[None, :], other=0.0).to(tl.float32)
        w = v * s[None, :]
        if HAS_ZERO:
            w += tl.load(zero_ptr + g * N + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    return w


@triton.jit
def _load_words(p0_ptr, p1_ptr, k0, offs_n, mask_n, N, B0: tl.constexpr, B1: tl.constexpr):
    """The (16, BLOCK_N) plane-0 words of the block starting at k0 (and the plane-1 words for 3-bit)."""
    PER: tl.constexpr = 32 // B0
    r = tl.arange(0, 16)
    w0 = tl.load(p0_ptr + ((k0 // PER) + r)[:, None] * N + offs_n[None, :], mask=mask_n[None, :], other=0)
    w1 = w0
    if B1 > 0:  # plane 1 blocks are 512 wide: rows (k0 // 512) * 16 + r
        w1 = tl.load(p1_ptr + ((k0 // 512) * 16 + r)[:, None] * N + offs_n[None, :], mask=mask_n[None, :], other=0)
    return w0, w1


@triton.jit
def _slab(w0, w1, k0, j, B0: tl.constexpr, B1: tl.constexpr):
    """Codes (16, BLOCK_N) of k = k0 + 16*j + (0..15)."""
    c = (w0 >> (j * B0)) & ((1 << B0) - 1)
    if B1 > 0:
        c = c | (((w1 >> ((k0 % 512) // 16 + j)) & 1) << B0)
    return c


@triton.jit
def _x_slab(x_ptr, ins_ptr, offs_m, ks, M, K, stride_xm, HAS_IN_SCALE: tl.constexpr):
    offs_k = ks + tl.arange(0, 16)
    x = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :],
                mask=(offs_m[:, None] < M) & (offs_k[None, :] < K), other=0.0)
    if HAS_IN_SCALE:
        s = tl.load(ins_ptr + offs_k, mask=offs_k < K, other=0.0)
        x = (x.to(tl.float32) * s[None, :]).to(x.dtype)
    return x


@triton.jit
def _epilogue(acc, y_ptr, bias_ptr, offs_m, offs_n, M, N, stride_ym, HAS_BIAS: tl.constexpr,
              SPLIT_K: tl.constexpr):
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    ptrs = y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :]
    if SPLIT_K > 1:
        tl.atomic_add(ptrs, acc, mask=mask, sem="relaxed")
    else:
        if HAS_BIAS:
            acc += tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[None, :]
        tl.store(ptrs, acc.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def lut_gemv_kernel(x_ptr, y_ptr, bias_ptr, ins_ptr, p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr,
                    M, N, K, Kp, stride_xm, stride_ym, GROUP_SIZE, G,
                    BITS: tl.constexpr, B0: tl.constexpr, B1: tl.constexpr, LUT_MODE: tl.constexpr,
                    HAS_ZERO: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_IN_SCALE: tl.constexpr,
                    SPLIT_K: tl.constexpr, BLOCK_N: tl.constexpr):
    PER: tl.constexpr = 32 // B0
    BLOCK_K: tl.constexpr = 16 * PER
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    k_tiles = Kp // BLOCK_K
    per_split = tl.cdiv(k_tiles, SPLIT_K)
    acc2 = tl.zeros((16, BLOCK_N), dtype=tl.float32)
    for kt in range(pid_k * per_split, tl.minimum(k_tiles, (pid_k + 1) * per_split)):
        k0 = kt * BLOCK_K
        w0, w1 = _load_words(p0_ptr, p1_ptr, k0, offs_n, mask_n, N, B0, B1)
        for j in range(PER):  # a runtime loop: unrolling PER slabs made compiles ~10x slower
            ks = k0 + 16 * j
            c = _slab(w0, w1, k0, j, B0, B1)
            offs_k = ks + tl.arange(0, 16)
            xk = tl.load(x_ptr + offs_k, mask=offs_k < K, other=0.0).to(tl.float32)
            if HAS_IN_SCALE:
                xk = xk * tl.load(ins_ptr + offs_k, mask=offs_k < K, other=0.0)
            g = tl.minimum(ks // GROUP_SIZE, G - 1)
            acc2 += xk[:, None] * _lookup(c, g, offs_n, mask_n, scale_ptr, zero_ptr, lut_ptr, N, BITS, LUT_MODE,
                                          HAS_ZERO)
    acc = tl.sum(acc2, axis=0)[None, :]
    _epilogue(acc, y_ptr, bias_ptr, tl.arange(0, 1), offs_n, M, N, stride_ym, HAS_BIAS, SPLIT_K)


@triton.jit
def lut_gemm_kernel(x_ptr, y_ptr, bias_ptr, ins_ptr, p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr,
                    M, N, K, Kp, stride_xm, stride_ym, GROUP_SIZE, G,
                    BITS: tl.constexpr, B0: tl.constexpr, B1: tl.constexpr, LUT_MODE: tl.constexpr,
                    HAS_ZERO: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_IN_SCALE: tl.constexpr,
                    SPLIT_K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                    GROUP_M: tl.constexpr, DOT_F32: tl.constexpr = False):
    PER: tl.constexpr = 32 // B0
    BLOCK_K: tl.constexpr = 16 * PER
    pid = tl.program_id(0)
    pid_k = tl.program_id(1)
    # grouped ordering: GROUP_M row-tiles share each weight column-tile while it is in L2
    num_m = tl.cdiv(M, BLOCK_M)
    num_n = tl.cdiv(N, BLOCK_N)
    width = GROUP_M * num_n
    first_m = (pid // width) * GROUP_M
    gm = tl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % width) % gm
    pid_n = (pid % width) // gm
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    k_tiles = Kp // BLOCK_K
    per_split = tl.cdiv(k_tiles, SPLIT_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kt in range(pid_k * per_split, tl.minimum(k_tiles, (pid_k + 1) * per_split)):
        k0 = kt * BLOCK_K
        w0, w1 = _load_words(p0_ptr, p1_ptr, k0, offs_n, mask_n, N, B0, B1)
        for j in range(PER):  # a runtime loop: unrolling PER slabs made compiles ~10x slower
            ks = k0 + 16 * j
            x = _x_slab(x_ptr, ins_ptr, offs_m, ks, M, K, stride_xm, HAS_IN_SCALE)
            g = tl.minimum(ks // GROUP_SIZE, G - 1)
            w = _lookup(_slab(w0, w1, k0, j, B0, B1), g, offs_n, mask_n, scale_ptr, zero_ptr, lut_ptr, N, BITS,
                        LUT_MODE, HAS_ZERO)
            if DOT_F32:  # Triton's CPU interpreter computes bf16 dots wrongly: same roundings, fp32 dot
                acc = tl.dot(x.to(tl.float32), w.to(x.dtype).to(tl.float32), acc)
            else:
                acc = tl.dot(x, w.to(x.dtype), acc)
    _epilogue(acc, y_ptr, bias_ptr, offs_m, offs_n, M, N, stride_ym, HAS_BIAS, SPLIT_K)


@triton.jit
def lut_dequant_kernel(wt_ptr, ins_ptr, p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr, N, K, Kp, GROUP_SIZE, G,
                       BITS: tl.constexpr, B0: tl.constexpr, B1: tl.constexpr, LUT_MODE: tl.constexpr,
                       HAS_ZERO: tl.constexpr, HAS_IN_SCALE: tl.constexpr, BLOCK_N: tl.constexpr):
    """W^T (K, N) in wt's dtype, in_scale folded in, one plane-0 block of K per program."""
    PER: tl.constexpr = 32 // B0
    k0 = tl.program_id(0) * (16 * PER)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    w0, w1 = _load_words(p0_ptr, p1_ptr, k0, offs_n, mask_n, N, B0, B1)
    for j in range(PER):  # a runtime loop: unrolling PER slabs made compiles ~10x slower
        ks = k0 + 16 * j
        offs_k = ks + tl.arange(0, 16)
        g = tl.minimum(ks // GROUP_SIZE, G - 1)
        w = _lookup(_slab(w0, w1, k0, j, B0, B1), g, offs_n, mask_n, scale_ptr, zero_ptr, lut_ptr, N, BITS,
                    LUT_MODE, HAS_ZERO)
        if HAS_IN_SCALE:
            w = w * tl.load(ins_ptr + offs_k, mask=offs_k < K, other=0.0)[:, None]
        tl.store(wt_ptr + offs_k[:, None] * N + offs_n[None, :], w.to(wt_ptr.dtype.element_ty),
                 mask=(offs_k[:, None] < K) & mask_n[None, :])
