"""The plain-PyTorch backend: the reference ops, on any device. Always available."""
from __future__ import annotations

from ..dispatch import Backend, register_backend
from ..reference import lut_matmul_reference


class TorchBackend(Backend):
    name = "torch"
    priority = 0  # the fallback: every other backend that can run is preferred

    def availability(self):
        return True, ""

    def can_implement(self, qw, x):
        return True, ""

    def lut_matmul(self, x, qw, bias=None, timestep=None):
        return lut_matmul_reference(x, qw, bias, timestep)


register_backend(TorchBackend())
