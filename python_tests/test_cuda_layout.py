"""The CUDA tensor-core path's weight layout (backends/cuda_layout.py), checked on the CPU: the
kernel's arithmetic is replayed from the PTX mma fragment definitions (``emulate_lut_mma``) and
compared with the canonical format's reference. Runs in CI; the kernel itself is tested in
test_cuda.py on a GPU."""
import pytest
import torch

from quantdllm_kernels.backends.cuda_layout import (affine_codebook, bits_value, decode_factor, emulate_lut_mma,
                                                    lane_words, magic_bits, mma_support, pack_for_mma, quad_exchange,
                                                    super_k)
from quantdllm_kernels.quantizers import quantize_weight
from quantdllm_kernels.reference import dequantize
from quantdllm_kernels.testing import kernel_tolerance, random_qweight, rel_error


def affine_qweight(N, K, bits, group_size, gen, dtype=torch.float16, in_scale=False, step=1.0, cb0=0.0):
    qw = random_qweight(N, K, bits=bits, group_size=group_size, lut_dtype=dtype, in_scale=in_scale, generator=gen)
    return qw._replace(codebook=(torch.arange(1 << bits) * step + cb0).to(dtype))


def reference(x, qw):
    # the kernel scales after the mma, in fp32: the exact product (in_scale folded into W)
    return (x.double() @ dequantize(qw, torch.float64).T).float()


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("group_size", [64, 128, None])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("post", [True, False], ids=["post", "pre"])
def test_emulated_kernel_is_exact_on_rtn_codebooks(bits, group_size, dtype, post, gen):
    # N not a multiple of 32 (padded rows), K not a multiple of the 2/3-bit super-chunk (padded K);
    # both decodes: rows g + 8 at f = 4 / 16 (scaled after the mma) and at f = 1 (before it)
    K = 192 if group_size == 64 else 256
    qw = affine_qweight(40, K, bits, group_size, gen, dtype=dtype)
    x = torch.randn(3, K, generator=gen).to(dtype)
    y = emulate_lut_mma(pack_for_mma(qw, dtype), x, post=post)
    assert rel_error(y, reference(x, qw)) <= 1e-6


@pytest.mark.parametrize("bits", [2, 3])
@pytest.mark.parametrize("group_size", [64, None])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_emulated_x_as_stored_exchange_is_exact(bits, group_size, dtype, gen):
    # lut_wgmma reading x as stored: 2-bit the quad's bit exchange, 3-bit the quad's block gather,
    # then the natural decode
    K = 192 if group_size == 64 else 512
    qw = affine_qweight(40, K, bits, group_size, gen, dtype=dtype)
    x = torch.randn(3, K, generator=gen).to(dtype)
    mw = pack_for_mma(qw, dtype)
    assert rel_error(emulate_lut_mma(mw, x, post=False, x_natural=True), reference(x, qw)) <= 1e-6


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_pre_mma_magic_reads_the_code(dtype):
    # rows g + 8 before the mma: magic/f ORed with f*c is magic/f + c exactly, for every code, so
    # subtracting magic/f leaves the code (no s/f, whose fp16 rounding could bite)
    magic = 1024 if dtype == torch.float16 else 128
    for bits in (2, 3, 4):
        f = decode_factor(bits, dtype)
        codes = torch.arange(1 << bits)
        got = bits_value(magic_bits(dtype, f) | (f * codes), dtype)
        assert torch.equal(got, magic / f + codes.double()), (bits, f)
    assert magic_bits(torch.float16, 4) == 0x5C00 and magic_bits(torch.float16, 16) == 0x5400
    assert magic_bits(torch.bfloat16, 4) == 0x4200 and magic_bits(torch.bfloat16) == 0x4300
    assert magic_bits(torch.float16, 8) == 0x5800 and magic_bits(torch.bfloat16, 8) == 0x4180  # 3-bit: 128 / 16


def test_three_bit_row_pair_fields(gen):
    """The 3-bit layout's bit places, read back from a packed weight: lane l = 4g + q owns k = 16q + 4s +
    2jp + h of each chunk; row pair (s, jp) sits in block d = 2(s & 1) + jp at bit 6(s >> 1) (row g,
    then row g + 8 three bits up); blocks 0-2 in bits 0-11 of word 3c + d (+16 for h = 1), block 3 in
    the three words' top nibbles."""
    from quantdllm_kernels.packing import unpack_codes
    qw = affine_qweight(32, 256, 3, 64, gen)
    C = unpack_codes(qw.codes, 3, 256)  # (N, K) codes
    w = lane_words(pack_for_mma(qw, torch.float16).codes).to(torch.int64) & 0xFFFFFFFF  # (tiles, U, 32, 12)
    for lane in range(32):
        for c, s, jp, h, odd in [(0, 0, 0, 0, 0), (1, 2, 1, 1, 1), (3, 3, 1, 1, 1), (2, 1, 1, 0, 1), (0, 3, 0, 1, 0)]:
            g, q = lane // 4, lane % 4
            code = int(C[g + 8 * odd, 64 * c + 16 * q + 4 * s + 2 * jp + h])
            d, fb = 2 * (s & 1) + jp, 6 * (s >> 1) + 3 * odd
            got = 0
            for e in range(3):
                b = fb + e
                word, bit = (3 * c + d, b) if d < 3 else (3 * c + b // 4, 12 + b % 4)
                got |= int((w[0, 0, lane, word] >> (bit + 16 * h)) & 1) << e
            assert got == code, (lane, c, s, jp, h, odd)


def test_quad_exchange_moves_the_lane_bit(gen):
    # after a stage, position bit P of lane q's word holds the source lane's bit: a word whose bits are
    # all its lane's bit L comes back with position bit P = (position's source lane bit)
    lane = torch.arange(32)
    for lane_bit, pos_bit in [(0, 0), (0, 2), (1, 2), (1, 3)]:
        w = torch.randint(0, 2**32, (5, 32), generator=gen, dtype=torch.int64)
        out = quad_exchange(w, lane_bit, pos_bit)
        partner = lane ^ (1 << lane_bit)
        for p in range(32):
            own = ((lane % 4) >> lane_bit) & 1
            src_bit = (p >> pos_bit) & 1  # the source lane's bit L, now at position bit P
            src_lane = torch.where(src_bit == own, lane, partner)
            src_pos = p ^ ((src_bit ^ own) << pos_bit)  # a partner's bit sat at position bit P = own
            got = (out[:, lane] >> p) & 1
            want = (w[:, src_lane] >> src_pos) & 1
            assert torch.equal(got, want), (lane_bit, pos_bit, p)
    with pytest.raises(ValueError, match="x_natural"):
        emulate_lut_mma(pack_for_mma(affine_qweight(32, 128, 4, 64, gen), torch.float16), torch.zeros(1, 128).half(),
                        post=False, x_natural=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_one_bit_segments_take_the_two_bit_layout(dtype, gen):
    """A 1-bit affine weight (a mixed-precision segment) packs as 2-bit codes 0/1 with its own
    scale and zero, and the emulated kernel is exact on it."""
    qw = affine_qweight(40, 256, 1, 64, gen, dtype=dtype, step=2.0, cb0=-1.0)
    assert mma_support(qw)[0]
    mw = pack_for_mma(qw, dtype)
    assert mw.bits == 2
    x = torch.randn(5, 256, generator=gen).to(dtype)
    assert rel_error(emulate_lut_mma(mw, x), reference(x, qw)) <= kernel_tolerance(dtype, 256)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("bits", [3, 4])
def test_folded_progression_in_scale_and_dtype(bits, dtype, gen):
    # codebook cb0 + i*step is folded into (scale, zero): one more rounding per weight at most
    qw = affine_qweight(64, 256, bits, 64, gen, dtype=dtype, in_scale=True, step=0.25, cb0=-1.0)
    x = torch.randn(5, 256, generator=gen).to(dtype)
    y = emulate_lut_mma(pack_for_mma(qw, dtype), x)
    assert rel_error(y, reference(x, qw)) <= kernel_tolerance(dtype, 256)


def test_rtn_weights_are_taken_and_shapes(gen):
    W = torch.randn(72, 320, generator=gen)
    for bits in (2, 3, 4):
        qw = quantize_weight(W, bits=bits, group_size=64, method="rtn")
        assert mma_support(qw) == (True, "")
        mw = pack_for_mma(qw, torch.float16)
        sk = super_k(bits)
        assert mw.codes.shape == (96 // 16, -(-320 // sk), bits * sk // 256, 32, 4)
        assert mw.sz.shape == (6, 5, 8, 4) and mw.sz.dtype == torch.float16
        x = torch.randn(2, 320, generator=gen).half()
        assert rel_error(emulate_lut_mma(mw, x), reference(x, qw)) <= 1e-6


def test_unsupported_weights_say_why(gen):
    assert "not `table`" in mma_support(random_qweight(32, 128, lut_kind="table", generator=gen))[1]
    assert "arithmetic progression" in mma_support(random_qweight(32, 128, generator=gen))[1]  # jittered codebook
    assert affine_codebook(random_qweight(32, 128, per_row_codebook=True, generator=gen)) is None
    qw = quantize_weight(torch.randn(8, 96, generator=gen), bits=4, group_size=32, method="rtn")
    assert "multiple of 64" in mma_support(qw)[1]
    with pytest.raises(ValueError, match="multiple of 64"):
        pack_for_mma(qw, torch.float16)
    # groups smaller than a 64-code chunk: scales cannot be applied after the mma
    qw = quantize_weight(torch.randn(8, 128, generator=gen), bits=4, group_size=32, method="rtn")
    assert "power of two >= 64" in mma_support(qw)[1]


def test_per_row_affine_codebooks(gen):
    qw = affine_qweight(32, 128, 4, 128, gen)
    cb = torch.arange(16).float().unsqueeze(0) * torch.rand(32, 1, generator=gen) + torch.rand(32, 1, generator=gen)
    qw = qw._replace(codebook=cb.half().float().half())
    if affine_codebook(qw) is None:  # fp16 rounding broke the progression beyond tolerance
        pytest.skip("rounded codebook not affine")
    x = torch.randn(2, 128, generator=gen).half()
    y = emulate_lut_mma(pack_for_mma(qw, torch.float16), x)
    assert rel_error(y, reference(x, qw)) <= kernel_tolerance(torch.float16, 128)


def test_kernel_packs_are_not_copied(gen):
    qw = affine_qweight(32, 128, 4, 128, gen)
    qw.kernel_packs = {"mma": {}}
    assert qw._replace(validate=False).kernel_packs is None
    assert qw.to("cpu").kernel_packs is None
