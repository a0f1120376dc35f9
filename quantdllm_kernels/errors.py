"""Exception types, so callers can catch this package's failures precisely."""


class BackendUnavailableError(RuntimeError):
    """A kernel backend was asked for by name but cannot run here (not built, no GPU, unsupported input)."""


class CheckpointError(ValueError):
    """A quantized checkpoint is missing, truncated, of an unknown version, or does not match the model."""
