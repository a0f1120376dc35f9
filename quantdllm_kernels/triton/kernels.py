"""Triton kernels. One dequant routine (codes -> fp32 weights through the LUT) serves both paths:

* ``lut_gemv_kernel``: M = 1, no tensor cores; each program accumulates x * w over its K range in
  a 2-D tile that is reduced over K once at the end (affine weights: whole dequantized tiles;
  other modes: word rows peeled code by code); split-K over programs.
* ``lut_gemm_kernel``: tiles of (BLOCK_M x BLOCK_N), dequantized (BLOCK_K x BLOCK_N) weight tile
  fed to ``tl.dot`` with fp32 accumulation; optional split-K for small M.
* ``lut_dequant_kernel``: W once into a scratch buffer, as W (N, K) (``ROWS_NK``, the orientation
  cuBLAS runs fastest) or W^T (K, N), for cuBLAS at large M (the tuner picks it only where it
  measures faster); per-row timestep bias rides in the same GEMM as more K columns of W^T, written
  by extra programs of the same launch (``HAS_XCAT``).

A K tile never spans two groups: BLOCK_K divides group_size (or the weight has one group).
Split-K programs ``atomic_add`` fp32 partial sums into a zeroed fp32 buffer (the first K slice
adds the bias) and the wrapper casts; with SPLIT_K == 1 the epilogue adds the bias and stores.

Timestep tables: each row's bucket is counted from its t against the boundaries in the kernel;
bias rows join the epilogue, and a per-bucket LUT set is a pointer offset of the LUT slots.
"""
import triton
import triton.language as tl


@triton.jit
def _unpack_plane(p_ptr, k0, offs_n, mask_n, N, Kp, B: tl.constexpr, BLOCK_K: tl.constexpr,
                  BLOCK_N: tl.constexpr, EVEN_K: tl.constexpr):
    """Codes (BLOCK_K, BLOCK_N) of one bit plane, inputs k0.. and columns offs_n. The tile's packed
    words, (BLOCK_K/PER, BLOCK_N), are loaded once and each is peeled into its PER codes by a
    broadcast shift; row r*PER + j of the result is code j of word row r. An earlier version loaded
    the word of each code (PER loads of one word): per ptxas that pipelined PER times the bytes
    through shared memory and spilled at 255 registers on most GEMM tiles (NOTES, 2026-11-29)."""
    PER: tl.constexpr = 32 // B
    R: tl.constexpr = BLOCK_K // PER
    rows = k0 // PER + tl.arange(0, R)
    if EVEN_K:
        words = tl.load(p_ptr + rows[:, None] * N + offs_n[None, :], mask=mask_n[None, :], other=0)
    else:
        words = tl.load(p_ptr + rows[:, None] * N + offs_n[None, :],
                        mask=(rows[:, None] < Kp // PER) & mask_n[None, :], other=0)
    shifts = tl.arange(0, PER) * B
    codes = (words[:, None, :] >> shifts[None, :, None]) & ((1 << B) - 1)
    return tl.reshape(codes, (BLOCK_K, BLOCK_N))


@triton.jit
def _entry(row_ptr, i: tl.constexpr, mask_n):
    return tl.load(row_ptr + i, mask=mask_n, other=0.0).to(tl.float32)[None, :]


@triton.jit
def _select_entry(c, row_ptr, mask_n, BITS: tl.constexpr):
    """Entry c of each column's table row (``row_ptr``: (BLOCK_N,) pointers to entry 0) by a tree of
    2^b - 1 selects on the code bits, lowest bit first: no per-code gather, whose scattered loads
    occupy the load/store unit one sector per distinct address (NOTES, "select tree")."""
    b0 = (c & 1) != 0
    w = tl.where(b0, _entry(row_ptr, 1, mask_n), _entry(row_ptr, 0, mask_n))
    if BITS >= 2:
        b1 = (c & 2) != 0
        w23 = tl.where(b0, _entry(row_ptr, 3, mask_n), _entry(row_ptr, 2, mask_n))
        w = tl.where(b1, w23, w)
        if BITS == 3:
            w45 = tl.where(b0, _entry(row_ptr, 5, mask_n), _entry(row_ptr, 4, mask_n))
            w67 = tl.where(b0, _entry(row_ptr, 7, mask_n), _entry(row_ptr, 6, mask_n))
            w = tl.where((c & 4) != 0, tl.where(b1, w67, w45), w)
    return w


@triton.jit
def _lookup(c, g, offs_n, mask_n, scale_ptr, zero_ptr, lut_ptr, N, BITS: tl.constexpr,
            LUT_MODE: tl.constexpr, HAS_ZERO: tl.constexpr):
    """fp32 weights for codes ``c (rows, BLOCK_N)`` of group ``g`` and output columns offs_n."""
    E: tl.constexpr = 1 << BITS
    if LUT_MODE == 3:  # table (G, N, E): gather from the group's row of entries
        w = tl.load(lut_ptr + (g * N + offs_n[None, :]) * E + c, mask=mask_n[None, :], other=0.0).to(tl.float32)
    elif LUT_MODE == 5:  # table by a select tree: the 2^b entries loaded once per column, codes pick by bits
        w = _select_entry(c, lut_ptr + (g * N + offs_n) * E, mask_n, BITS)
    elif LUT_MODE == 4:  # binary: mu + sum_i alpha_i * (2*bit_i - 1); mu is in the scale slot
        w = tl.zeros(c.shape, dtype=tl.float32)
        w += tl.load(scale_ptr + g * N + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
        for i in tl.static_range(BITS):
            a = tl.load(lut_ptr + (g * BITS + i) * N + offs_n, mask=mask_n, other=0.0).to(tl.float32)
            w += tl.where(((c >> i) & 1) != 0, a[None, :], -a[None, :])
    else:
        s = tl.load(scale_ptr + g * N + offs_n, mask=mask_n, other=0.0).to(tl.float32)
        if LUT_MODE == 0:  # float(c) exactly, without a (quarter-rate) int->float conversion: 2^23 + c - 2^23
            v = (c | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0
        elif LUT_MODE == 1:
            v = tl.load(lut_ptr + c).to(tl.float32)
        else:
            v = tl.load(lut_ptr + offs_n[None, :] * E + c, mask=mask_n[None, :], other=0.0).to(tl.float32)
        w = v * s[None, :]
        if HAS_ZERO:
            w += tl.load(zero_ptr + g * N + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    return w


@triton.jit
def _dequant_tile(p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr, k0, offs_n, mask_n, N, Kp,
                  GROUP_SIZE, BITS: tl.constexpr, B0: tl.constexpr, B1: tl.constexpr,
                  LUT_MODE: tl.constexpr, HAS_ZERO: tl.constexpr, BLOCK_K: tl.constexpr,
                  BLOCK_N: tl.constexpr, EVEN_K: tl.constexpr):
    """fp32 weights (BLOCK_K, BLOCK_N) of input rows k0.. and output columns offs_n."""
    c = _unpack_plane(p0_ptr, k0, offs_n, mask_n, N, Kp, B0, BLOCK_K, BLOCK_N, EVEN_K)
    if B1 > 0:
        c = c | (_unpack_plane(p1_ptr, k0, offs_n, mask_n, N, Kp, B1, BLOCK_K, BLOCK_N, EVEN_K) << B0)
    return _lookup(c, k0 // GROUP_SIZE, offs_n, mask_n, scale_ptr, zero_ptr, lut_ptr, N, BITS, LUT_MODE, HAS_ZERO)


@triton.jit
def _load_x(x_ptr, ins_ptr, offs_m, rows, offs_k, K, stride_xm, HAS_IN_SCALE: tl.constexpr,
            EVEN_K: tl.constexpr):
    """x tile of rows offs_m (``rows``: which of them to read; the rest are 0) and inputs offs_k."""
    if EVEN_K:
        x = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :], mask=rows[:, None], other=0.0)
    else:
        x = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :],
                    mask=rows[:, None] & (offs_k[None, :] < K), other=0.0)
    if HAS_IN_SCALE:
        s = _load_k(ins_ptr, offs_k, K, EVEN_K)
        x = (x.to(tl.float32) * s[None, :]).to(x.dtype)
    return x


@triton.jit
def _n_mask(offs_n, N, BLOCK_N: tl.constexpr, EVEN_N: tl.constexpr):
    """Which columns exist; EVEN_N (every column tile whole): a constant, which folds out of every
    load it guards (the table GEMV: 13% fewer SASS instructions, Triton 3.6)."""
    if EVEN_N:
        m = tl.full((BLOCK_N,), 1, tl.int1)
    else:
        m = offs_n < N
    return m


@triton.jit
def _load_k(p_ptr, offs_k, K, EVEN_K: tl.constexpr):
    """p[offs_k] as fp32, 0 past K; EVEN_K (every K tile whole): no mask. The GEMV's per-code x
    loads with masks held ~90 predicates and spilled at 80 registers under Triton 3.6 (sm_90);
    unmasked, 40 registers and no spill (NOTES, 2026-11-29)."""
    if EVEN_K:
        v = tl.load(p_ptr + offs_k)
    else:
        v = tl.load(p_ptr + offs_k, mask=offs_k < K, other=0.0)
    return v.to(tl.float32)


@triton.jit
def _buckets(t_ptr, bounds_ptr, offs_m, M, NB, TS_PER_ROW: tl.constexpr):
    """Timestep bucket of each row: the number of boundaries <= t (searchsorted right), computed
    from t on the device (one t for every row unless TS_PER_ROW)."""
    if TS_PER_ROW:
        t = tl.load(t_ptr + offs_m, mask=offs_m < M, other=0.0)
    else:
        t = tl.load(t_ptr + offs_m * 0)
    bucket = tl.zeros_like(offs_m)
    # eight boundaries per vector load: one load per boundary, in a loop over a runtime count, went
    # one round trip after another (~+9% at M = 1 with LUT sets, where the bucket precedes every
    # weight load; the CUDA scan had the same cost, NOTES 2026-11-29)
    for i0 in range(0, NB, 8):
        offs_b = i0 + tl.arange(0, 8)
        bnd = tl.load(bounds_ptr + offs_b, mask=offs_b < NB, other=float("inf"))
        bucket += tl.sum((t[:, None] >= bnd[None, :]).to(bucket.dtype), axis=1)
    return bucket


@triton.jit
def _ts_rows(t_ptr, bounds_ptr, tb_ptr, offs_m, offs_n, M, N, NB, TS_PER_ROW: tl.constexpr):
    """(BLOCK_M, BLOCK_N) fp32 timestep-bias rows of each row's bucket."""
    bucket = _buckets(t_ptr, bounds_ptr, offs_m, M, NB, TS_PER_ROW)
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    return tl.load(tb_ptr + bucket[:, None] * N + offs_n[None, :], mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _bucket_slots(scale_ptr, zero_ptr, lut_ptr, bucket, SB_SCALE, SB_ZERO, SB_LUT):
    """The scale / zero / lut slot pointers of one timestep bucket's LUT set (stride 0: shared)."""
    b = bucket.to(tl.int64)
    return scale_ptr + b * SB_SCALE, zero_ptr + b * SB_ZERO, lut_ptr + b * SB_LUT


@triton.jit
def _epilogue(acc, y_ptr, bias_ptr, offs_m, offs_n, M, N, stride_ym, HAS_BIAS: tl.constexpr,
              SPLIT_K: tl.constexpr, pid_k, ts_t_ptr, ts_bounds_ptr, ts_bias_ptr, NB, HAS_TS: tl.constexpr,
              TS_PER_ROW: tl.constexpr):
    """Bias and the timestep-bias rows join the accumulator (under split-K, the first K slice's);
    then a store, or an atomic add into the fp32 split-K buffer."""
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    ptrs = y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :]
    if pid_k == 0:
        if HAS_BIAS:
            acc += tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[None, :]
        if HAS_TS:
            acc += _ts_rows(ts_t_ptr, ts_bounds_ptr, ts_bias_ptr, offs_m, offs_n, M, N, NB, TS_PER_ROW)
    if SPLIT_K > 1:
        tl.atomic_add(ptrs, acc, mask=mask, sem="relaxed")
    else:
        tl.store(ptrs, acc.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _onehot_cat_piece(p, x_ptr, xa_ptr, t_ptr, bounds_ptr, tb_ptr, wt_ptr, M, K, N, NB, T, TP, stride_xm, stride_am,
                      BLOCK: tl.constexpr):
    """Piece p of the per-row timestep extension, BLOCK elements: pieces of xa = [x, onehot(bucket(t))]
    (M rows of K + TP), then of W^T's rows K..K + TP (the bias table, zeros past T). One piece per
    program, so none holds a chain of round trips: a loop over a row per program (12 of them for a
    table row of N = 12288) made the launch 4.1 µs longer at M = 256 (H200, probe_ts_dequant)."""
    cx = tl.cdiv(K + TP, BLOCK)
    if p < M * cx:
        r = p // cx
        offs = (p - r * cx) * BLOCK + tl.arange(0, BLOCK)
        b = tl.max(_buckets(t_ptr, bounds_ptr, r + tl.arange(0, 1), M, NB, True), axis=0)
        x = tl.load(x_ptr + r.to(tl.int64) * stride_xm + offs, mask=offs < K, other=0.0)
        hot = tl.where(offs - K == b, 1.0, 0.0).to(x.dtype)   # via fp32: the interpreter botches bool -> bf16
        tl.store(xa_ptr + r.to(tl.int64) * stride_am + offs, tl.where(offs < K, x, hot), mask=offs < K + TP)
    else:
        cn = tl.cdiv(N, BLOCK)
        q = p - M * cx
        j = q // cn
        if j < TP:
            offs = (q - j * cn) * BLOCK + tl.arange(0, BLOCK)
            v = tl.load(tb_ptr + j * N + offs, mask=(offs < N) & (offs * 0 + j < T), other=0.0)
            tl.store(wt_ptr + (K + j).to(tl.int64) * N + offs, v.to(wt_ptr.dtype.element_ty), mask=offs < N)


@triton.jit
def lut_gemv_kernel(x_ptr, y_ptr, bias_ptr, ins_ptr, p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr,
                    ts_t_ptr, ts_bounds_ptr, ts_bias_ptr, NB, SB_SCALE, SB_ZERO, SB_LUT,
                    M, N, K, Kp, stride_xm, stride_ym, GROUP_SIZE,
                    BITS: tl.constexpr, B0: tl.constexpr, B1: tl.constexpr, LUT_MODE: tl.constexpr,
                    HAS_ZERO: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_IN_SCALE: tl.constexpr,
                    SPLIT_K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                    HAS_TS: tl.constexpr = False, TS_PER_ROW: tl.constexpr = False,
                    HAS_TS_LUTS: tl.constexpr = False, WORD_ROWS: tl.constexpr = False,
                    EVEN_K: tl.constexpr = False, EVEN_N: tl.constexpr = False):
    """y[0, n] = sum_k x[0, k] W[n, k], accumulated in a 2-D fp32 tile reduced over K once at the end.
    Affine weights: per K tile the dequantized (BLOCK_K, BLOCK_N) tile (the GEMM's ``_dequant_tile``)
    meets x[k0:k0+BLOCK_K], loaded once as a vector. Other LUT modes: each word row is peeled code
    by code, meeting x one value per code; that costs ~5 of ~11 instructions per code in x loads,
    but the affine form's (BLOCK_K, BLOCK_N) accumulator spills under the gathers of the other
    modes (ptxas, Triton 3.6; NOTES, 2026-11-29). WORD_ROWS takes the word-row form for affine
    weights too, so the tuner can measure both (the tile form's gain was predicted, not measured)."""
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    if HAS_TS_LUTS:  # one row: its bucket's LUT set for the whole launch
        b = tl.max(_buckets(ts_t_ptr, ts_bounds_ptr, tl.arange(0, 1), M, NB, TS_PER_ROW), axis=0)
        scale_ptr, zero_ptr, lut_ptr = _bucket_slots(scale_ptr, zero_ptr, lut_ptr, b, SB_SCALE, SB_ZERO, SB_LUT)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = _n_mask(offs_n, N, BLOCK_N, EVEN_N)
    k_tiles = tl.cdiv(Kp, BLOCK_K)
    per_split = tl.cdiv(k_tiles, SPLIT_K)
    if LUT_MODE == 0 and not WORD_ROWS:  # affine: whole dequantized tiles, x loaded once per tile
        acc2 = tl.zeros((BLOCK_K, BLOCK_N), dtype=tl.float32)
        for kt in range(pid_k * per_split, tl.minimum(k_tiles, (pid_k + 1) * per_split)):
            k0 = kt * BLOCK_K
            offs_k = k0 + tl.arange(0, BLOCK_K)
            xk = _load_k(x_ptr, offs_k, K, EVEN_K)
            if HAS_IN_SCALE:
                xk = xk * _load_k(ins_ptr, offs_k, K, EVEN_K)
            w = _dequant_tile(p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr, k0, offs_n, mask_n, N, Kp,
                              GROUP_SIZE, BITS, B0, B1, LUT_MODE, HAS_ZERO, BLOCK_K, BLOCK_N, EVEN_K)
            acc2 += xk[:, None] * w
    else:  # gathers: word rows peeled code by code into a small (R, BLOCK_N) accumulator
        PER: tl.constexpr = 32 // B0
        R: tl.constexpr = BLOCK_K // PER
        offs_r = tl.arange(0, R)
        acc2 = tl.zeros((R, BLOCK_N), dtype=tl.float32)
        for kt in range(pid_k * per_split, tl.minimum(k_tiles, (pid_k + 1) * per_split)):
            k0 = kt * BLOCK_K
            rows = k0 // PER + offs_r
            if EVEN_K:
                w0 = tl.load(p0_ptr + rows[:, None] * N + offs_n[None, :], mask=mask_n[None, :], other=0)
            else:
                w0 = tl.load(p0_ptr + rows[:, None] * N + offs_n[None, :],
                             mask=(rows[:, None] < Kp // PER) & mask_n[None, :], other=0)
            if B1 > 0:  # 3-bit: bit 2 lives in a 1-bit plane, 32 codes a word: word k // 32, shift k % 32
                rows1 = k0 // 32 + offs_r // (32 // PER)
                if EVEN_K:
                    w1 = tl.load(p1_ptr + rows1[:, None] * N + offs_n[None, :], mask=mask_n[None, :], other=0)
                else:
                    w1 = tl.load(p1_ptr + rows1[:, None] * N + offs_n[None, :],
                                 mask=(rows1[:, None] < Kp // 32) & mask_n[None, :], other=0)
                sh1 = (offs_r % (32 // PER)) * PER
            g = k0 // GROUP_SIZE
            for j in tl.static_range(PER):
                c = (w0 >> (j * B0)) & ((1 << B0) - 1)
                if B1 > 0:
                    c = c | (((w1 >> (sh1 + j)[:, None]) & 1) << B0)
                offs_k = k0 + offs_r * PER + j
                xk = _load_k(x_ptr, offs_k, K, EVEN_K)
                if HAS_IN_SCALE:
                    xk = xk * _load_k(ins_ptr, offs_k, K, EVEN_K)
                acc2 += xk[:, None] * _lookup(c, g, offs_n, mask_n, scale_ptr, zero_ptr, lut_ptr, N, BITS,
                                              LUT_MODE, HAS_ZERO)
    acc = tl.sum(acc2, axis=0)[None, :]
    _epilogue(acc, y_ptr, bias_ptr, tl.arange(0, 1), offs_n, M, N, stride_ym, HAS_BIAS, SPLIT_K, pid_k,
              ts_t_ptr, ts_bounds_ptr, ts_bias_ptr, NB, HAS_TS, TS_PER_ROW)


@triton.jit
def _gemm_k_range(acc, x_ptr, ins_ptr, p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr, offs_m, rows, offs_n, mask_n,
                  N, K, Kp, stride_xm, GROUP_SIZE, kt_begin, kt_end, BITS: tl.constexpr, B0: tl.constexpr,
                  B1: tl.constexpr, LUT_MODE: tl.constexpr, HAS_ZERO: tl.constexpr, HAS_IN_SCALE: tl.constexpr,
                  BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, DOT_F32: tl.constexpr, EVEN_K: tl.constexpr):
    """acc += x[rows, k] @ W[k, offs_n] over the K tiles [kt_begin, kt_end) (rows not in ``rows``
    read x = 0)."""
    for kt in range(kt_begin, kt_end):
        k0 = kt * BLOCK_K
        offs_k = k0 + tl.arange(0, BLOCK_K)
        x = _load_x(x_ptr, ins_ptr, offs_m, rows, offs_k, K, stride_xm, HAS_IN_SCALE, EVEN_K)
        w = _dequant_tile(p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr, k0, offs_n, mask_n, N, Kp,
                          GROUP_SIZE, BITS, B0, B1, LUT_MODE, HAS_ZERO, BLOCK_K, BLOCK_N, EVEN_K)
        if DOT_F32:  # Triton's CPU interpreter computes bf16 dots wrongly: same roundings, fp32 dot
            acc = tl.dot(x.to(tl.float32), w.to(x.dtype).to(tl.float32), acc)
        else:
            acc = tl.dot(x, w.to(x.dtype), acc)
    return acc


@triton.jit
def lut_gemm_kernel(x_ptr, y_ptr, bias_ptr, ins_ptr, p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr,
                    ts_t_ptr, ts_bounds_ptr, ts_bias_ptr, NB, SB_SCALE, SB_ZERO, SB_LUT,
                    M, N, K, Kp, stride_xm, stride_ym, GROUP_SIZE,
                    BITS: tl.constexpr, B0: tl.constexpr, B1: tl.constexpr, LUT_MODE: tl.constexpr,
                    HAS_ZERO: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_IN_SCALE: tl.constexpr,
                    SPLIT_K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                    GROUP_M: tl.constexpr, DOT_F32: tl.constexpr = False, HAS_TS: tl.constexpr = False,
                    TS_PER_ROW: tl.constexpr = False, HAS_TS_LUTS: tl.constexpr = False,
                    EVEN_K: tl.constexpr = False, EVEN_N: tl.constexpr = False):
    """Per-bucket LUT sets (HAS_TS_LUTS): one t offsets the LUT slots once and runs the plain K loop
    (inside the bucket loop below it cost +47% at M = 32, H200). Per-row t: the tile's rows are
    taken bucket by bucket, each bucket present among them dequantizing with its own LUT set and
    meeting only its rows' x; rows of one sequence share a t, so a tile usually holds one bucket."""
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
    mask_n = _n_mask(offs_n, N, BLOCK_N, EVEN_N)
    valid = offs_m < M
    k_tiles = tl.cdiv(Kp, BLOCK_K)
    per_split = tl.cdiv(k_tiles, SPLIT_K)
    kt_begin = pid_k * per_split
    kt_end = tl.minimum(k_tiles, (pid_k + 1) * per_split)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if HAS_TS_LUTS and not TS_PER_ROW:  # one t: its bucket's LUT set for the whole tile, the plain K loop
        b = tl.max(_buckets(ts_t_ptr, ts_bounds_ptr, tl.arange(0, 1), M, NB, False), axis=0)
        scale_ptr, zero_ptr, lut_ptr = _bucket_slots(scale_ptr, zero_ptr, lut_ptr, b, SB_SCALE, SB_ZERO, SB_LUT)
    if HAS_TS_LUTS and TS_PER_ROW:
        rb = _buckets(ts_t_ptr, ts_bounds_ptr, offs_m, M, NB, TS_PER_ROW)
        b_lo = tl.min(tl.where(valid, rb, NB), axis=0)
        b_hi = tl.max(tl.where(valid, rb, 0), axis=0)
        for i in range(0, b_hi - b_lo + 1):
            b = b_lo + i  # a tensor, not the loop counter (which the interpreter makes a Python int)
            rows = valid & (rb == b)
            if tl.sum(rows.to(tl.int32), axis=0) > 0:
                s_ptr, z_ptr, l_ptr = _bucket_slots(scale_ptr, zero_ptr, lut_ptr, b, SB_SCALE, SB_ZERO, SB_LUT)
                acc = _gemm_k_range(acc, x_ptr, ins_ptr, p0_ptr, p1_ptr, s_ptr, z_ptr, l_ptr, offs_m, rows,
                                    offs_n, mask_n, N, K, Kp, stride_xm, GROUP_SIZE, kt_begin, kt_end, BITS, B0,
                                    B1, LUT_MODE, HAS_ZERO, HAS_IN_SCALE, BLOCK_K, BLOCK_N, DOT_F32, EVEN_K)
    else:
        acc = _gemm_k_range(acc, x_ptr, ins_ptr, p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr, offs_m, valid,
                            offs_n, mask_n, N, K, Kp, stride_xm, GROUP_SIZE, kt_begin, kt_end, BITS, B0, B1,
                            LUT_MODE, HAS_ZERO, HAS_IN_SCALE, BLOCK_K, BLOCK_N, DOT_F32, EVEN_K)
    _epilogue(acc, y_ptr, bias_ptr, offs_m, offs_n, M, N, stride_ym, HAS_BIAS, SPLIT_K, pid_k,
              ts_t_ptr, ts_bounds_ptr, ts_bias_ptr, NB, HAS_TS, TS_PER_ROW)


@triton.jit
def _dequant_program(kt, wt_ptr, ins_ptr, p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr, ts_t_ptr, ts_bounds_ptr, NB,
                     SB_SCALE, SB_ZERO, SB_LUT, N, K, Kp, GROUP_SIZE,
                     BITS: tl.constexpr, B0: tl.constexpr, B1: tl.constexpr, LUT_MODE: tl.constexpr,
                     HAS_ZERO: tl.constexpr, HAS_IN_SCALE: tl.constexpr, BLOCK_N: tl.constexpr,
                     BLOCK_K: tl.constexpr, HAS_TS_LUTS: tl.constexpr, EVEN_K: tl.constexpr, EVEN_N: tl.constexpr,
                     ROWS_NK: tl.constexpr):
    """The (BLOCK_K, BLOCK_N) tile (kt, program_id(1)) of W^T, stored as W^T (K, N) or, ROWS_NK,
    transposed into W (N, K)."""
    if HAS_TS_LUTS:
        b = tl.max(_buckets(ts_t_ptr, ts_bounds_ptr, tl.arange(0, 1), 1, NB, False), axis=0)
        scale_ptr, zero_ptr, lut_ptr = _bucket_slots(scale_ptr, zero_ptr, lut_ptr, b, SB_SCALE, SB_ZERO, SB_LUT)
    k0 = kt * BLOCK_K
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = _n_mask(offs_n, N, BLOCK_N, EVEN_N)
    offs_k = k0 + tl.arange(0, BLOCK_K)
    w = _dequant_tile(p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr, k0, offs_n, mask_n, N, Kp,
                      GROUP_SIZE, BITS, B0, B1, LUT_MODE, HAS_ZERO, BLOCK_K, BLOCK_N, EVEN_K)
    if HAS_IN_SCALE:
        w = w * tl.load(ins_ptr + offs_k, mask=offs_k < K, other=0.0)[:, None]
    if ROWS_NK:  # W (N, K): the tile transposed, k fastest in registers and in memory
        tl.store(wt_ptr + offs_n[:, None].to(tl.int64) * K + offs_k[None, :], tl.trans(w).to(wt_ptr.dtype.element_ty),
                 mask=mask_n[:, None] & (offs_k[None, :] < K))
    else:
        tl.store(wt_ptr + offs_k[:, None] * N + offs_n[None, :], w.to(wt_ptr.dtype.element_ty),
                 mask=(offs_k[:, None] < K) & mask_n[None, :])


@triton.jit
def _bias_row_program(pid_n, t_ptr, bounds_ptr, NB, tb_ptr, bias_ptr, bvec_ptr, N, HAS_BIAS: tl.constexpr,
                      BLOCK_N: tl.constexpr):
    """Columns pid_n of ``bvec = table[bucket(t[0])] (+ bias)``, in fp32 then bvec's dtype: one timestep's
    bias row for cuBLAS's bias epilogue, gathered in the dequant launch (torch's searchsorted and
    index_select were two more launches ahead of the GEMM)."""
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = offs_n < N
    b = tl.max(_buckets(t_ptr, bounds_ptr, tl.arange(0, 1), 1, NB, False), axis=0)
    v = tl.load(tb_ptr + b.to(tl.int64) * N + offs_n, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        v += tl.load(bias_ptr + offs_n, mask=mask, other=0.0).to(tl.float32)
    tl.store(bvec_ptr + offs_n, v.to(bvec_ptr.dtype.element_ty), mask=mask)


@triton.jit
def lut_dequant_kernel(wt_ptr, ins_ptr, p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr, ts_t_ptr, ts_bounds_ptr, NB,
                       SB_SCALE, SB_ZERO, SB_LUT, N, K, Kp, GROUP_SIZE,
                       x_ptr, xa_ptr, tb_ptr, M, T, TP, NC, stride_xm, stride_am, bias_ptr, bvec_ptr,
                       BITS: tl.constexpr, B0: tl.constexpr, B1: tl.constexpr, LUT_MODE: tl.constexpr,
                       HAS_ZERO: tl.constexpr, HAS_IN_SCALE: tl.constexpr, BLOCK_N: tl.constexpr,
                       BLOCK_K: tl.constexpr, HAS_TS_LUTS: tl.constexpr = False, EVEN_K: tl.constexpr = False,
                       EVEN_N: tl.constexpr = False, HAS_XCAT: tl.constexpr = False, CAT_BLOCK: tl.constexpr = 1024,
                       ROWS_NK: tl.constexpr = False, HAS_BIAS_ROW: tl.constexpr = False,
                       HAS_BIAS: tl.constexpr = False):
    """W^T (K, N) in wt's dtype -- or, ROWS_NK, W (N, K), the orientation cuBLAS runs fastest
    (F.linear's) -- in_scale folded in: for large M, one pass over the codes and then
    cuBLAS beats a fused kernel whose dequant is repeated for every M tile. HAS_TS_LUTS: the LUT
    set of t[0]'s bucket (one timestep for the launch; per-row timesteps take the GEMM kernel).
    HAS_XCAT (per-row timestep bias): the first NC programs of each grid row write BLOCK-element
    pieces of xa = [x, onehot(bucket)] and W^T's rows K.. (``_onehot_cat_piece``, piece
    pid0 * grid1 + pid1) in this launch, not a second one; the rest dequantize K tile pid0 - NC.
    The pieces write W^T's rows K.. as (K + TP, N) rows: HAS_XCAT takes W^T (K, N) only.
    HAS_BIAS_ROW (one timestep, a bias table): the last grid row writes ``bvec``, the bucket's table
    row (+ bias when HAS_BIAS), for the GEMM's bias epilogue (``_bias_row_program``)."""
    if HAS_BIAS_ROW:  # (never with HAS_XCAT)
        if tl.program_id(0) == tl.num_programs(0) - 1:
            _bias_row_program(tl.program_id(1), ts_t_ptr, ts_bounds_ptr, NB, tb_ptr, bias_ptr, bvec_ptr, N, HAS_BIAS,
                              BLOCK_N)
        else:
            _dequant_program(tl.program_id(0), wt_ptr, ins_ptr, p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr, ts_t_ptr,
                             ts_bounds_ptr, NB, SB_SCALE, SB_ZERO, SB_LUT, N, K, Kp, GROUP_SIZE, BITS, B0, B1, LUT_MODE,
                             HAS_ZERO, HAS_IN_SCALE, BLOCK_N, BLOCK_K, HAS_TS_LUTS, EVEN_K, EVEN_N, ROWS_NK)
    elif HAS_XCAT:
        if tl.program_id(0) < NC:
            _onehot_cat_piece(tl.program_id(0) * tl.num_programs(1) + tl.program_id(1), x_ptr, xa_ptr, ts_t_ptr,
                              ts_bounds_ptr, tb_ptr, wt_ptr, M, K, N, NB, T, TP, stride_xm, stride_am, CAT_BLOCK)
        else:
            _dequant_program(tl.program_id(0) - NC, wt_ptr, ins_ptr, p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr,
                             ts_t_ptr, ts_bounds_ptr, NB, SB_SCALE, SB_ZERO, SB_LUT, N, K, Kp, GROUP_SIZE, BITS, B0,
                             B1, LUT_MODE, HAS_ZERO, HAS_IN_SCALE, BLOCK_N, BLOCK_K, HAS_TS_LUTS, EVEN_K, EVEN_N,
                             False)
    else:
        _dequant_program(tl.program_id(0), wt_ptr, ins_ptr, p0_ptr, p1_ptr, scale_ptr, zero_ptr, lut_ptr, ts_t_ptr,
                         ts_bounds_ptr, NB, SB_SCALE, SB_ZERO, SB_LUT, N, K, Kp, GROUP_SIZE,
                         BITS, B0, B1, LUT_MODE,
                         HAS_ZERO, HAS_IN_SCALE, BLOCK_N, BLOCK_K, HAS_TS_LUTS, EVEN_K, EVEN_N, ROWS_NK)
