"""Triton LUT dequant-GEMM kernels: layout (``layout.py``), kernels (``kernels.py``), launch and
tuning (``ops.py``). Importing this package needs Triton; the backend module guards that."""
