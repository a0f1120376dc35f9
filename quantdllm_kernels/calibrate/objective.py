"""The calibration-weighted error that data-aware quantizers minimise."""
from __future__ import annotations

import torch


def damped_hessian(X: torch.Tensor, damp: float = 0.01) -> torch.Tensor:
    """H = X^T X (float64) + damp * mean(diag) * I, from activations ``X (..., K)``. The damping keeps
    H positive definite when some input channels are (nearly) constant, as GPTQ does."""
    X = X.reshape(-1, X.shape[-1]).double()
    return damp_(X.T @ X, damp)


def damp_(H: torch.Tensor, damp: float = 0.01) -> torch.Tensor:
    """H += damp * mean(diag(H)) * I, in place (see ``damped_hessian``)."""
    H.diagonal().add_(damp * H.diagonal().mean().clamp_min(1e-12))
    return H


def row_errors(W: torch.Tensor, W_hat: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """Per output row n: e_n H e_n^T with e = W - W_hat (float64)."""
    E = (W.double() - W_hat.double())
    return ((E @ H.double()) * E).sum(1)


def weighted_error(W: torch.Tensor, W_hat: torch.Tensor, H: torch.Tensor, relative: bool = True) -> float:
    """tr((W - W_hat) H (W - W_hat)^T), divided by tr(W H W^T) when ``relative``: the error of the
    layer's outputs on the calibration inputs, relative to the outputs themselves."""
    err = float(row_errors(W, W_hat, H).sum())
    if not relative:
        return err
    return err / max(float(row_errors(W, torch.zeros_like(W), H).sum()), 1e-300)
