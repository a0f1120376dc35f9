"""mma_plan, lut_mma's launch plan (host code in csrc/lut_mma.cu), on the CPU: compiled with nvcc into
python_tests/cpp/mma_plan_cli.cu with the blocks resident per SM given (``mma_plan_with``), and run
as a command. Checks the rules the launch relies on (tiles cover M and N, no empty K slice, a K split
within one wave, a cluster exactly when 2 slices) over a grid of shapes, widths and SM counts, the
plans measured on the H200 (nineteenth and twenty-second sessions), and the benchmark knobs.
Skipped without nvcc."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")

# blocks resident per SM at 8 / 16 / 32-token tiles on an H200 (kMinBlocks in csrc/lut_mma.cu, which the
# occupancy query returns there: registers and the rings' shared memory allow them)
H200 = {2: (4, 4, 2), 3: (4, 3, 2), 4: (5, 5, 3)}


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    exe = str(tmp_path_factory.mktemp("plan") / "mma_plan_cli")
    cmd = ["nvcc", "-std=c++20", "-O1", "-I" + os.path.join(ROOT, "csrc"), "--expt-relaxed-constexpr",
           "-gencode", "arch=compute_80,code=sm_80", os.path.join(ROOT, "python_tests", "cpp", "mma_plan_cli.cu"),
           os.path.join(ROOT, "csrc", "lut_mma.cu"), os.path.join(ROOT, "csrc", "lut_common.cu"), "-o", exe]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return exe


def _env(knobs):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTDLLM_MMA_")}
    env.update({f"QUANTDLLM_MMA_{k.upper()}": str(v) for k, v in knobs.items()})
    return env


def plan(cli, M, N, K, bits, sms=132, **knobs):
    """(nt, wn, ksplit, cluster, grid_x, grid_y) of lut_mma at (M, N, K) with the H200's residency."""
    out = subprocess.run([cli, str(M), str(N), str(K), str(bits), str(sms), *map(str, H200[bits])],
                         capture_output=True, text=True, env=_env(knobs))
    assert out.returncode == 0, out.stdout + out.stderr
    return tuple(map(int, out.stdout.split()))


def test_every_plan_keeps_the_launch_rules(cli):
    out = subprocess.run([cli, "sweep"], capture_output=True, text=True, env=_env({}))
    assert out.returncode == 0, out.stdout[-2000:]
    assert " 0 bad" in out.stdout


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_m1_takes_two_slices_as_a_cluster(cli, bits):
    # one warp column; 2 slices once they cover every SM (nineteenth session: 9.3-10.4 µs against the
    # fill's 5 slices at 10.8-11.5 on (4096, 4096) w4); N = 12288 fills the GPU without a split
    assert plan(cli, 1, 4096, 4096, bits)[:4] == (1, 1, 2, 1)
    assert plan(cli, 1, 12288, 4096, bits)[2] == 1


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_m16_on_k4096_takes_two_slices(cli, bits):
    # twenty-second session, call 3: (K, N) = (4096, 4096) M = 16 w3 18.6 (3 slices) -> 15.0 µs, w4
    # 15.5 (4) -> 14.4 as one 2-slice cluster
    assert plan(cli, 16, 4096, 4096, bits)[:4] == (2, 2, 2, 1)


def test_split_rule_exceptions(cli):
    # M = 5-8 with 3-bit codes keeps the fill (12.4 against 13.3 µs at 2 slices, M = 5) ...
    assert plan(cli, 5, 4096, 4096, 3)[:4] == (1, 2, 4, 0)
    # ... and so does K = 12288 (48 chunks per warp at 2 slices: +8 to +20% at M = 5-8)
    assert plan(cli, 8, 4096, 12288, 4)[2] > 2
    # while 4-bit M = 8 on (K, N) = (4096, 12288) goes to 2 (19.9 -> 16.7 µs)
    assert plan(cli, 8, 12288, 4096, 4)[:4] == (1, 2, 2, 1)


def test_token_tiles(cli):
    assert plan(cli, 8, 4096, 4096, 4)[0] == 1
    assert plan(cli, 9, 4096, 4096, 4)[0] == 2
    assert plan(cli, 32, 4096, 4096, 3)[:3] == (2, 2, 1)  # 16-token tiles: no more waves than 32
    assert plan(cli, 64, 12288, 4096, 4)[0] == 4            # 2 waves at 16 tokens: 32-token tiles


def test_knobs(cli):
    assert plan(cli, 16, 4096, 4096, 3, ksplit=3)[2:4] == (3, 0)
    assert plan(cli, 16, 4096, 4096, 3, ksplit=3, cluster=1)[2:4] == (3, 1)
    assert plan(cli, 16, 4096, 4096, 3, cluster=0)[2:4] == (2, 0)
    assert plan(cli, 1, 4096, 4096, 4, wn=2)[1] == 2
    assert plan(cli, 32, 4096, 4096, 4, max_nt=1)[0] == 1
