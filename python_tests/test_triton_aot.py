"""Every Triton kernel lowered to PTX and a cubin for sm_80 and sm_90 on this machine (no GPU
needed): the interpreter tests run the kernels' semantics, this checks that they compile. It runs
in a child process, since this one may have imported Triton under TRITON_INTERPRET=1."""
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")


@pytest.mark.parametrize("cc", [80, 90])
def test_every_kernel_variant_compiles(cc):
    from quantdllm_kernels.triton.aot import AUX_KERNELS, VARIANTS
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    out = subprocess.run([sys.executable, "-m", "quantdllm_kernels.triton.aot", "--cc", str(cc)], env=env,
                         capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-4000:]
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith(f"sm_{cc} ")]
    assert len(lines) == len(VARIANTS) + len(AUX_KERNELS), out.stdout
    for ln in lines:   # ptxas' report, where Triton bundles a ptxas
        assert "| " in ln and ("registers" in ln or ln.endswith("| "))
