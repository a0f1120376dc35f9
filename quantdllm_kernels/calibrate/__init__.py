"""Data-aware calibration (issue 6, in progress): quantizers that minimise the calibration-weighted
error tr((W - W_hat) H (W - W_hat)^T) with H = X^T X from (masked) calibration activations.

Landed so far: the objective (``objective.py``) and DAQ, the any-order binary quantizer with
per-input-channel scaling (``daq.py``). The layer-by-layer pass, MCS data, GPTQ, ABMP and the
per-timestep bias correction are still to come.
"""
from .daq import daq_quantize
from .objective import damped_hessian, weighted_error

__all__ = ["daq_quantize", "damped_hessian", "weighted_error"]
