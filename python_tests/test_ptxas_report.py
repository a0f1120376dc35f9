"""benchmarks/ptxas_report.py's parsing, on the CPU (no nvcc): the kernel labels of the register
reports and the rows read from a ptxas log."""
import os
from pathlib import Path

import pytest


@pytest.fixture
def report(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import ptxas_report
    return ptxas_report


@pytest.mark.parametrize("mangled, label", [
    # the length prefix right after the anonymous namespace's digits (16 = len("lut_wgmma_kernel"))
    ("_ZN9quantdllm54_GLOBAL__N__6593ccda_15_lut_wgmma_w3_cu_b19e329c_1404216lut_wgmma_kernelI6__halfLi3ELi64ELb0EEEvNS_7MmaArgs",
     "lut_wgmma_kernel<6__halfLi3ELi64ELb0>"),
    ("_ZN9quantdllm43_GLOBAL__N__bb883ea4_10_lut_mma_cu_b2baaee014lut_mma_kernelI6__halfLi3ELi4ELb1EEEvNS_7MmaArgsEii",
     "lut_mma_kernel<6__halfLi3ELi4ELb1>"),
    ("_ZN9quantdllm44_GLOBAL__N__c4dd39da_11_lut_gemv_cu_f3ad1e1515lut_gemv_kernelI13__nv_bfloat16Li4ELNS_7LutKindE2ELi4EEEvNS",
     "lut_gemv_kernel<13__nv_bfloat16Li4ELNS_7LutKindE2ELi4>"),
])
def test_kernel_labels(report, mangled, label):
    assert report.kernel_label(mangled) == label


def test_rows_from_a_ptxas_log(report):
    log = """ptxas info    : Compiling entry function '_ZN9quantdllm12_GLOBAL__N_114lut_mma_kernelI6__halfLi3ELi1ELb0EEEvNS_7MmaArgsEii' for 'sm_90a'
ptxas info    : Function properties for _ZN9quantdllm12_GLOBAL__N_114lut_mma_kernelI6__halfLi3ELi1ELb0EEEvNS_7MmaArgsEii
    0 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 113 registers, used 1 barriers
ptxas info    : Compiling entry function '_ZN9quantdllm16permute_x_kernelEv' for 'sm_90a'
ptxas info    : Used 20 registers"""
    rows = list(report.rows(Path("lut_mma.cu"), log))  # a kernel without template arguments keeps its mangled name
    assert rows == [("lut_mma.cu", "lut_mma_kernel<6__halfLi3ELi1ELb0>", 113, 8, 4),
                    ("lut_mma.cu", "_ZN9quantdllm16permute_x_kernelEv", 20, 0, 0)]
