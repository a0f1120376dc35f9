"""Data-aware calibration: quantizers that minimise the calibration-weighted error
tr((W - W_hat) H (W - W_hat)^T), H = X^T X from masked calibration activations (MCS).

- ``mcs.py``: masked calibration batches, one timestep per sequence;
- ``pipeline.py``: the block-by-block pass (Grams, offload to the GPU, fp and quantized streams);
- ``layer.py``: config -> quantizer for one layer;
- ``daq.py`` (any-order binary, DAQ), ``gptq.py`` (GPTQ compensation for RTN / k-means),
  ``abmp.py`` (blockwise mixed precision, exact bit budget), ``timestep_bias.py`` (per-bucket
  bias correction), ``objective.py`` (the error they all measure).
"""
from .abmp import abmp_quantize, allocate_bits, block_sensitivity
from .daq import daq_quantize
from .gptq import gptq_quantize
from .layer import quantize_layer
from .objective import damped_hessian, weighted_error

__all__ = ["daq_quantize", "gptq_quantize", "abmp_quantize", "allocate_bits", "block_sensitivity",
           "quantize_layer", "damped_hessian", "weighted_error"]
