"""Build script: the CUDA extension ``quantdllm_kernels._C`` when it can be built, pure Python otherwise.

QUANTDLLM_BUILD_EXT=1 forces the extension (and fails loudly if it cannot be built),
QUANTDLLM_BUILD_EXT=0 forces pure Python; unset, the extension is built when a CUDA build of
torch, nvcc and CUDA sources under csrc/ are all present. TORCH_CUDA_ARCH_LIST is respected
(default "8.0;9.0a"). Build against an installed torch with
``pip install --no-build-isolation -e .``.
"""
import glob
import os
import shutil
import sys

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _say(msg):
    print(f"[quantdllm_kernels setup] {msg}", file=sys.stderr)


def _extension_plan():
    """(ext_modules, cmdclass, reason)"""
    mode = os.environ.get("QUANTDLLM_BUILD_EXT", "auto").strip().lower()
    if mode not in ("auto", "0", "1"):
        raise SystemExit(f"QUANTDLLM_BUILD_EXT must be 0, 1 or unset, got {mode!r}")
    if mode == "0":
        return [], {}, "QUANTDLLM_BUILD_EXT=0"
    sources = sorted(glob.glob(os.path.join("csrc", "**", "*.cu"), recursive=True) +
                     glob.glob(os.path.join("csrc", "**", "*.cpp"), recursive=True))
    problems = []
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CUDAExtension
    except ImportError:
        torch = None
        problems.append("torch is not importable in the build environment (use --no-build-isolation)")
    if torch is not None:
        if torch.version.cuda is None:
            problems.append(f"torch {torch.__version__} is a CPU build")
        if CUDA_HOME is None and shutil.which("nvcc") is None:
            problems.append("nvcc / CUDA_HOME not found")
    if not sources:
        problems.append("csrc/ has no sources yet")
    if problems:
        if mode == "1":
            raise SystemExit("QUANTDLLM_BUILD_EXT=1 but the extension cannot be built: " + "; ".join(problems))
        return [], {}, "; ".join(problems)
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0a")
    # the wgmma kernel (csrc/lut_wgmma_kernel.cuh) exists only in sm_90a code: the host side is told
    sm90a = any(a.strip().lower().startswith("9.0a") for a in os.environ["TORCH_CUDA_ARCH_LIST"].replace(",", ";").split(";"))
    ext = CUDAExtension(
        name="quantdllm_kernels._C",
        sources=sources,
        include_dirs=[os.path.join(HERE, "csrc")],
        extra_compile_args={"cxx": ["-O3", "-std=c++20"],
                            "nvcc": ["-O3", "-std=c++20", "--use_fast_math", "-lineinfo",
                                     "--expt-relaxed-constexpr", "-Xptxas=-v"] + (["-DQUANTDLLM_SM90A"] if sm90a else [])},
    )
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}, ""


ext_modules, cmdclass, why_not = _extension_plan()
if ext_modules:
    _say(f"building the CUDA extension quantdllm_kernels._C for TORCH_CUDA_ARCH_LIST="
         f"{os.environ['TORCH_CUDA_ARCH_LIST']} with ninja")
else:
    _say(f"installing pure Python (no CUDA extension): {why_not}")

setup(ext_modules=ext_modules, cmdclass=cmdclass)
