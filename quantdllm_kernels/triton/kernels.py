"""Triton kernels. One dequant routine (codes -> fp32 weights through the LUT) serves both paths:

* ``lut_gemv_kernel``: M <= 4 rows, no tensor cores; each program streams a (BLOCK_K x BLOCK_N)
  tile of codes per step and reduces ``x[:, :, None] * w[None]`` over K; split-K over programs.
* ``lut_gemm_kernel``: tiles of (BLOCK_M x BLOCK_N), dequantized (BLOCK_K x BLOCK_N) weight tile
  fed to ``tl.dot`` with fp32 accumulation; optional split-K for small M.
* ``lut_dequant_kernel``: W^T once into a scratch buffer, for cuBLAS at large M (the tuner
  picks it only where it measures faster).

A K tile never spans two groups: BLOCK_K divides group_size (or the weight has one group).
Split-K programs ``atomic_add`` fp32 partial sums into a zeroed fp32 buffer; the wrapper adds
the bias and casts. With SPLIT_K == 1 the bias is added and the output stored in the epilogue.
"""
import triton
import triton.language as tl


@triton.jit
def _unpack_plane(p_ptr, offs_k, offs_n, mask_n, N, Kp, B: tl.constexpr):
    """Codes of one bit plane at rows offs_k, columns offs_n. Each thread loads the word that holds
    its code (words repeat across PER consecutive k and are served from L1), so the tile comes out
    directly in a (BLOCK_K, BLOCK_N) blocked layout with no reshape or layout conversion."""
    PER: tl.constexpr = 32 // B
    words = tl.load(p_ptr + (offs_k // PER)[:, None] * N + offs_n[None, :],
                    mask=(offs_k[:, None] < Kp) & mask_n[None, :], other=0)
    return (words >> ((offs_k % PER) * B)[:, None]) & ((1 << B) - 1)


@triton.jit
def _dequant_tile(p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr, k0, offs_n, mask_n, N, Kp,
                  GROUP_SIZE, BITS: tl.constexpr, B0: tl.constexpr, B1: tl.constexpr,
                  LUT_MODE: tl.constexpr, HAS_ZERO: tl.constexpr, BLOCK_K: tl.constexpr,
                  BLOCK_N: tl.constexpr):
    """fp32 weights (BLOCK_K, BLOCK_N) of input rows k0.. and output columns offs_n."""
    offs_k = k0 + tl.arange(0, BLOCK_K)
    c = _unpack_plane(p0_ptr, offs_k, offs_n, mask_n, N, Kp, B0)
    if B1 > 0:
        c = c | (_unpack_plane(p1_ptr, offs_k, offs_n, mask_n, N, Kp, B1) << B0)
    g = k0 // GROUP_SIZE
    E: tl.constexpr = 1 << BITS
    if LUT_MODE == 3:  # table (G, N, E): gather from the group's row of entries
        w = tl.load(lut_ptr + (g * N + offs_n[None, :]) * E + c, mask=mask_n[None, :], other=0.0).to(tl.float32)
    elif LUT_MODE == 4:  # binary: mu + sum_i alpha_i * (2*bit_i - 1); mu is in the scale slot
        w = tl.zeros((BLOCK_K, BLOCK_N), dtype=tl.float32)
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
def _load_x(x_ptr, ins_ptr, offs_m, offs_k, M, K, stride_xm, HAS_IN_SCALE: tl.constexpr):
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
                    M, N, K, Kp, stride_xm, stride_ym, GROUP_SIZE,
                    BITS: tl.constexpr, B0: tl.constexpr, B1: tl.constexpr, LUT_MODE: tl.constexpr,
                    HAS_ZERO: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_IN_SCALE: tl.constexpr,
                    M_PAD: tl.constexpr, SPLIT_K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    offs_m = tl.arange(0, M_PAD)
    k_tiles = tl.cdiv(Kp, BLOCK_K)
    per_split = tl.cdiv(k_tiles, SPLIT_K)
    acc = tl.zeros((M_PAD, BLOCK_N), dtype=tl.float32)
    acc2 = tl.zeros((BLOCK_K, BLOCK_N), dtype=tl.float32)  # M_PAD == 1: reduce over K once, at the end
    for kt in range(pid_k * per_split, tl.minimum(k_tiles, (pid_k + 1) * per_split)):
        k0 = kt * BLOCK_K
        offs_k = k0 + tl.arange(0, BLOCK_K)
        x = _load_x(x_ptr, ins_ptr, offs_m, offs_k, M, K, stride_xm, HAS_IN_SCALE).to(tl.float32)
        w = _dequant_tile(p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr, k0, offs_n, mask_n, N, Kp,
                          GROUP_SIZE, BITS, B0, B1, LUT_MODE, HAS_ZERO, BLOCK_K, BLOCK_N)
        if M_PAD == 1:
            acc2 += tl.reshape(x, (BLOCK_K,))[:, None] * w
        else:
            acc += tl.sum(x[:, :, None] * w[None, :, :], axis=1)
    if M_PAD == 1:
        acc += tl.sum(acc2, axis=0)[None, :]
    _epilogue(acc, y_ptr, bias_ptr, offs_m, offs_n, M, N, stride_ym, HAS_BIAS, SPLIT_K)


@triton.jit
def lut_gemm_kernel(x_ptr, y_ptr, bias_ptr, ins_ptr, p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr,
                    M, N, K, Kp, stride_xm, stride_ym, GROUP_SIZE,
                    BITS: tl.constexpr, B0: tl.constexpr, B1: tl.constexpr, LUT_MODE: tl.constexpr,
                    HAS_ZERO: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_IN_SCALE: tl.constexpr,
                    SPLIT_K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                    GROUP_M: tl.constexpr, DOT_F32: tl.constexpr = False):
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
    k_tiles = tl.cdiv(Kp, BLOCK_K)
    per_split = tl.cdiv(k_tiles, SPLIT_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kt in range(pid_k * per_split, tl.minimum(k_tiles, (pid_k + 1) * per_split)):
        k0 = kt * BLOCK_K
        offs_k = k0 + tl.arange(0, BLOCK_K)
        x = _load_x(x_ptr, ins_ptr, offs_m, offs_k, M, K, stride_xm, HAS_IN_SCALE)
        w = _dequant_tile(p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr, k0, offs_n, mask_n, N, Kp,
                          GROUP_SIZE, BITS, B0, B1, LUT_MODE, HAS_ZERO, BLOCK_K, BLOCK_N)
        if DOT_F32:  # Triton's CPU interpreter computes bf16 dots wrongly: same roundings, fp32 dot
            acc = tl.dot(x.to(tl.float32), w.to(x.dtype).to(tl.float32), acc)
        else:
            acc = tl.dot(x, w.to(x.dtype), acc)
    _epilogue(acc, y_ptr, bias_ptr, offs_m, offs_n, M, N, stride_ym, HAS_BIAS, SPLIT_K)


@triton.jit
def lut_dequant_kernel(wt_ptr, ins_ptr, p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr, N, K, Kp, GROUP_SIZE,
                       BITS: tl.constexpr, B0: tl.constexpr, B1: tl.constexpr, LUT_MODE: tl.constexpr,
                       HAS_ZERO: tl.constexpr, HAS_IN_SCALE: tl.constexpr, BLOCK_N: tl.constexpr,
                       BLOCK_K: tl.constexpr):
    """W^T (K, N) in wt's dtype, in_scale folded in: for large M, one pass over the codes and then
    cuBLAS beats a fused kernel whose dequant is repeated for every M tile."""
    k0 = tl.program_id(0) * BLOCK_K
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    offs_k = k0 + tl.arange(0, BLOCK_K)
    w = _dequant_tile(p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr, k0, offs_n, mask_n, N, Kp,
                      GROUP_SIZE, BITS, B0, B1, LUT_MODE, HAS_ZERO, BLOCK_K, BLOCK_N)
    if HAS_IN_SCALE:
        w = w * tl.load(ins_ptr + offs_k, mask=offs_k < K, other=0.0)[:, None]
    tl.store(wt_ptr + offs_k[:, None] * N + offs_n[None, :], w.to(wt_ptr.dtype.element_ty),
             mask=(offs_k[:, None] < K) & mask_n[None, :])
