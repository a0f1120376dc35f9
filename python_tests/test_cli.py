import subprocess
import sys

import pytest

pytest.importorskip("transformers")


def test_main_job_small():
    out = subprocess.run([sys.executable, "-m", "quantdllm_kernels", "--hidden", "128", "--layers", "1",
                          "--seq", "8", "--bits", "4", "2"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = [l.split() for l in out.stdout.splitlines() if l.split() and l.split()[0] in ("rtn", "kmeans", "binary")]
    assert len(rows) == 6
    for r in rows:
        assert 2 <= float(r[2]) <= 8 and 0 < float(r[5]) < 5  # effective bits, relative error


def test_backends_command():
    out = subprocess.run([sys.executable, "-m", "quantdllm_kernels", "backends"], capture_output=True, text=True)
    assert out.returncode == 0 and "torch" in out.stdout
