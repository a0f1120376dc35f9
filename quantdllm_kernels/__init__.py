"""quantdllm_kernels: 2/3/4-bit group-wise lookup-table weights for diffusion LLMs.

Canonical format (:class:`QuantizedWeight`), reference ops, kernel dispatch, ``QuantLinear``,
whole-model quantization and checkpoints. See README.md and DESIGN.md.
"""
from .checkpoint import load_quantized, save_quantized
from .dispatch import available_backends, load_dispatch_table, lut_matmul
from .errors import BackendUnavailableError, CheckpointError
from .generate import generate
from .llada import LLaDAConfig, LLaDAModelLM
from .format import FORMAT_VERSION, MixedQuantizedWeight, QuantizedWeight
from .linear import QuantLinear
from .model import QuantConfig, quantize_model
from .packing import pack_codes, unpack_codes
from .quantizers import quantize_weight
from .reference import dequantize
from .ops import timestep_lookup
from .timestep_context import current_timestep, set_timestep, timestep
from .timestep_tables import TimestepTables

__version__ = "0.1.0"

__all__ = [
    "QuantizedWeight", "MixedQuantizedWeight", "TimestepTables", "FORMAT_VERSION",
    "pack_codes", "unpack_codes", "dequantize", "lut_matmul", "available_backends", "load_dispatch_table",
    "quantize_weight", "QuantLinear", "QuantConfig", "quantize_model",
    "save_quantized", "load_quantized", "BackendUnavailableError", "CheckpointError", "__version__",
    "timestep", "set_timestep", "current_timestep", "timestep_lookup",
    "generate", "LLaDAConfig", "LLaDAModelLM",
]
