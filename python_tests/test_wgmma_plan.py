"""wgmma_plan, lut_wgmma's launch plan (host code in csrc/lut_wgmma.cu), on the CPU: compiled with
nvcc into python_tests/cpp/wgmma_plan_cli.cu and run as a command. Checks the rules the launch
enforces (slices cover K, a tile's slices are one aligned cluster of at most 8, at most 2 unforced)
over a grid of shapes and SM counts, the plans measured on the H200 (eleventh session), and the
benchmark knobs. Skipped without nvcc."""
import glob
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    exe = str(tmp_path_factory.mktemp("plan") / "wgmma_plan_cli")
    cmd = ["nvcc", "-std=c++20", "-O1", "-I" + os.path.join(ROOT, "csrc"), "--expt-relaxed-constexpr",
           "-gencode", "arch=compute_80,code=sm_80", os.path.join(ROOT, "python_tests", "cpp", "wgmma_plan_cli.cu"),
           *sorted(glob.glob(os.path.join(ROOT, "csrc", "lut_wgmma*.cu"))), os.path.join(ROOT, "csrc", "lut_common.cu"),
           "-o", exe]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return exe


def plan(cli, M, N, K, sms=132, **knobs):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTDLLM_WGMMA_")}
    env.update({f"QUANTDLLM_WGMMA_{k.upper()}": str(v) for k, v in knobs.items()})
    out = subprocess.run([cli, str(M), str(N), str(K), str(sms)], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    return tuple(map(int, out.stdout.split()))


def test_every_plan_keeps_the_launch_rules(cli):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTDLLM_WGMMA_")}
    out = subprocess.run([cli, "sweep"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout[-2000:]
    assert " 0 bad" in out.stdout


def test_unforced_plans_use_at_most_two_slices(cli):
    # clusters of 3-4 blocks reached only 120-124 of the H200's 132 SMs (eleventh session)
    for M in (65, 128, 256, 512, 768, 1024, 4096):
        for N, K in ((4096, 4096), (12288, 4096), (4096, 12288), (126464, 4096)):
            assert plan(cli, M, N, K)[1] <= 2


def test_measured_plans(cli):
    # (4096, 12288) M = 512: 192 tiles of 256 tokens on 132 SMs -> 132 whole + 60 split in two
    assert plan(cli, 512, 12288, 4096)[:4] == (256, 2, 32, 132)
    # M = 1024 and 4096: waves full enough, no split
    assert plan(cli, 1024, 12288, 4096)[1] == 1
    assert plan(cli, 4096, 12288, 4096)[1] == 1
    # N = 4096 leaves SMs idle at M <= 512: every tile split in two, 128 blocks
    bn, ks, per, frm, _ = plan(cli, 256, 4096, 4096)
    assert ks == 2 and frm == 0 and 32 * (256 // bn) * ks == 128


def test_knobs_force_the_plan(cli):
    assert plan(cli, 512, 12288, 4096, bn=128)[0] == 128
    assert plan(cli, 256, 4096, 4096, ksplit=1)[1:] == (1, 64, 0, 0)
    # 20 chunks in 3 slices of 8 + 8 + 4; the first split tile rounded down to the cluster: 7 -> 6
    assert plan(cli, 300, 333, 1280, bn=64, ksplit=3, split_from=7)[:4] == (64, 3, 8, 6)
    # 8 slices of 4 chunks, every tile split
    assert plan(cli, 200, 300, 2048, bn=128, ksplit=8)[:4] == (128, 8, 4, 0)


def test_timestep_shift(cli):
    # what slice 0's timestep chunk adds (~0.8 µs) split evenly between the two slices: one chunk
    # (0.378-0.644 µs) at every tile; whole-K plans shift nothing
    assert plan(cli, 512, 12288, 4096)[4] == 1                      # 256 tokens, split tail
    assert plan(cli, 256, 4096, 4096, bn=128)[4] == 1
    assert plan(cli, 32, 4096, 4096, bn=64)[4] == 1
    assert plan(cli, 1024, 12288, 4096)[4] == 0                     # no split
    # the knob, clamped to the slice: slice 0 keeps one chunk
    assert plan(cli, 256, 4096, 4096, ts_shift=3)[4] == 3
    assert plan(cli, 256, 4096, 4096, bn=128, ts_shift=99)[4] == 31
    assert plan(cli, 256, 4096, 4096, ts_shift=0)[4] == 0
