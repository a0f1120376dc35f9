"""Kernel backends. Each module defines one :class:`~quantdllm_kernels.dispatch.Backend` and
registers it; the dispatcher in :mod:`quantdllm_kernels.dispatch` picks among them."""
