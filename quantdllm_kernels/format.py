"""The canonical quantized-weight format (see DESIGN.md, "The canonical format").

``QuantizedWeight`` is device-independent and serialisable: calibration writes it,
checkpoints store it, and each kernel backend repacks it once into its own layout.
A weight ``W`` of shape ``(N, K)`` is ``W[n, k] = LUT(n, k // g)[code[n, k]] * in_scale[k]``,
where the group LUT is stored as one of three kinds:

* ``table``  : ``table (N, K/g, 2**b)`` -- any per-group codebook;
* ``scaled`` : ``codebook (N, 2**b) or (2**b,)``, ``scale (N, K/g)``, ``zero (N, K/g) or None``;
  ``w = codebook[code] * scale + zero``;
* ``binary`` : ``alpha (N, K/g, b)``, ``mu (N, K/g)``; ``w = mu + sum_i alpha_i * (2*bit_i(code) - 1)``
  with ``bit_i(code) = (code >> i) & 1``.

``MixedQuantizedWeight`` holds several of these over a permutation of input channels
(blockwise mixed precision): ``y = sum_s W_s @ x[..., perm_s]``.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch

from ._validate import check_finite, check_float_tensor, check_shape, check_tensor
from .packing import packed_words, unpack_codes
from .timestep_tables import TimestepTables

__all__ = ["QuantizedWeight", "MixedQuantizedWeight", "LUT_KINDS", "GROUP_SIZES", "FORMAT_VERSION"]

FORMAT_VERSION = 1
LUT_KINDS = ("table", "scaled", "binary")
GROUP_SIZES = (32, 64, 128, 256)  # plus group_size == in_features (one group per row)
_LUT_FIELDS = ("table", "codebook", "scale", "zero", "alpha", "mu")
_TENSOR_FIELDS = ("codes",) + _LUT_FIELDS + ("in_scale",)


def _tensor_bytes(t: Optional[torch.Tensor]) -> int:
    return 0 if t is None else t.numel() * t.element_size()


class QuantizedWeight:
    """One group-wise LUT-quantized weight of shape ``(out_features, in_features)``.

    The constructor validates every field (shapes, dtypes, device, finiteness) and raises
    ``TypeError``/``ValueError`` naming the field. Tensors are not copied.
    """

    FIELDS = ("bits", "group_size", "in_features", "lut_kind") + _TENSOR_FIELDS + ("timestep",)  # the constructor's
    __slots__ = FIELDS + ("kernel_packs",)

    def __init__(self, *, bits: int, group_size: int, in_features: int, codes: torch.Tensor,
                 lut_kind: str, table=None, codebook=None, scale=None, zero=None, alpha=None,
                 mu=None, in_scale=None, timestep: Optional[TimestepTables] = None,
                 validate: bool = True):
        self.bits, self.group_size, self.in_features, self.lut_kind = bits, group_size, in_features, lut_kind
        self.codes, self.table, self.codebook, self.scale, self.zero = codes, table, codebook, scale, zero
        self.alpha, self.mu, self.in_scale, self.timestep = alpha, mu, in_scale, timestep
        # backend layouts handed over by the owner of the tensors (QuantLinear); never copied or saved
        self.kernel_packs: Optional[dict] = None
        if validate:
            self._validate()

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        for name in ("bits", "group_size", "in_features"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        if self.bits not in (1, 2, 3, 4):
            raise ValueError(f"bits must be 1, 2, 3 or 4 (1 only inside mixed-precision segments), got {self.bits}")
        K = self.in_features
        if K < 1:
            raise ValueError(f"in_features must be positive, got {K}")
        g = self.group_size
        if g not in GROUP_SIZES and g != K:
            raise ValueError(f"group_size must be one of {GROUP_SIZES} or in_features ({K}), got {g}")
        if K % g:
            raise ValueError(f"in_features ({K}) must be divisible by group_size ({g})")
        if self.lut_kind not in LUT_KINDS:
            raise ValueError(f"lut_kind must be one of {LUT_KINDS}, got {self.lut_kind!r}")
        codes = check_tensor("codes", self.codes, ndim=2)
        if codes.dtype != torch.int32:
            raise TypeError(f"codes must be packed int32 words (see pack_codes), got {codes.dtype}")
        N = codes.shape[0]
        if N < 1:
            raise ValueError("codes must have at least one row (out_features >= 1)")
        check_shape("codes", codes, (N, packed_words(K, self.bits)))
        G, E, b = K // g, 1 << self.bits, self.bits

        required = {"table": ("table",), "scaled": ("codebook", "scale"), "binary": ("alpha", "mu")}[self.lut_kind]
        allowed = set(required) | ({"zero"} if self.lut_kind == "scaled" else set())
        for f in _LUT_FIELDS:
            t = getattr(self, f)
            if f in required and t is None:
                raise ValueError(f"lut_kind={self.lut_kind!r} requires field {f!r}")
            if f not in allowed and t is not None:
                raise ValueError(f"field {f!r} is not used by lut_kind={self.lut_kind!r}; pass None")
        lut_dtype = None
        for f in _LUT_FIELDS:
            t = getattr(self, f)
            if t is None:
                continue
            check_float_tensor(f, t)
            if lut_dtype is None:
                lut_dtype = t.dtype
            elif t.dtype != lut_dtype:
                raise TypeError(f"{f} has dtype {t.dtype}, but the LUT dtype of this weight is {lut_dtype}")
        if self.lut_kind == "table":
            check_shape("table", self.table, (N, G, E))
        elif self.lut_kind == "scaled":
            if self.codebook.shape not in ((E,), (N, E)):
                raise ValueError(f"codebook must have shape ({E},) or ({N}, {E}), got {tuple(self.codebook.shape)}")
            check_shape("scale", self.scale, (N, G))
            if self.zero is not None:
                check_shape("zero", self.zero, (N, G))
        else:
            check_shape("alpha", self.alpha, (N, G, b))
            check_shape("mu", self.mu, (N, G))
        if self.in_scale is not None:
            check_float_tensor("in_scale", self.in_scale)
            check_shape("in_scale", self.in_scale, (K,))
        for f in _TENSOR_FIELDS:
            t = getattr(self, f)
            if t is not None and t.device != codes.device:
                raise ValueError(f"{f} is on {t.device} but codes are on {codes.device}; all fields share one device")
        for f in _LUT_FIELDS + ("in_scale",):
            t = getattr(self, f)
            if t is not None:
                check_finite(f, t)
        if self.timestep is not None:
            self._validate_timestep(self.timestep)

    def _validate_timestep(self, ts) -> None:
        if not isinstance(ts, TimestepTables):
            raise TypeError(f"timestep must be a TimestepTables, got {type(ts).__name__}")
        N = self.out_features
        if ts.bias is not None and ts.bias.shape[1] != N:
            raise ValueError(f"timestep.bias must have shape ({ts.num_buckets}, {N}), got {tuple(ts.bias.shape)}")
        for name, t in (ts.luts or {}).items():
            base = getattr(self, name, None) if name in _LUT_FIELDS else None
            if base is None:
                raise ValueError(f"timestep.luts[{name!r}] names no LUT field of this {self.lut_kind!r} weight")
            if tuple(t.shape[1:]) != tuple(base.shape):
                raise ValueError(f"timestep.luts[{name!r}] must have shape (T, {', '.join(map(str, base.shape))}), "
                                 f"got {tuple(t.shape)}")
        for name, t in ts.tensors().items():
            if t.device != self.codes.device:
                raise ValueError(f"timestep.{name} is on {t.device} but codes are on {self.codes.device}")

    # ------------------------------------------------------------------ properties
    @property
    def out_features(self) -> int:
        return self.codes.shape[0]

    @property
    def shape(self) -> Tuple[int, int]:
        return (self.out_features, self.in_features)

    @property
    def num_groups(self) -> int:
        return self.in_features // self.group_size

    @property
    def device(self) -> torch.device:
        return self.codes.device

    @property
    def lut_dtype(self) -> torch.dtype:
        return next(getattr(self, f).dtype for f in _LUT_FIELDS if getattr(self, f) is not None)

    @property
    def nbytes(self) -> int:
        """Bytes of storage: packed codes + LUT fields + in_scale (+ timestep tables)."""
        n = sum(_tensor_bytes(getattr(self, f)) for f in _TENSOR_FIELDS)
        if self.timestep is not None:
            n += sum(_tensor_bytes(t) for t in self.timestep.tensors().values())
        return n

    @property
    def effective_bits(self) -> float:
        """Bits per weight of everything a kernel must read: codes, LUT, scales."""
        return 8.0 * self.nbytes / (self.out_features * self.in_features)

    # ------------------------------------------------------------------ conversion
    def _replace(self, validate=True, **changes) -> "QuantizedWeight":
        fields = {f: getattr(self, f) for f in self.FIELDS}
        fields.update(changes)
        return QuantizedWeight(validate=validate, **fields)

    def _apply(self, fn) -> "QuantizedWeight":
        """Apply ``fn`` to every tensor (codes excluded from dtype changes by the caller)."""
        ch = {f: (fn(getattr(self, f)) if getattr(self, f) is not None else None) for f in _TENSOR_FIELDS}
        ts = self.timestep._apply(fn) if self.timestep is not None else None
        return self._replace(validate=False, timestep=ts, **ch)

    def to(self, device) -> "QuantizedWeight":
        """A copy on ``device`` (dtypes unchanged)."""
        return self._apply(lambda t: t.to(device))

    def with_timestep_tables(self, tables: Optional[TimestepTables]) -> "QuantizedWeight":
        if tables is not None:
            self._validate_timestep(tables)
        return self._replace(validate=False, timestep=tables)

    def unpacked_codes(self) -> torch.Tensor:
        """Codes as int64 ``(N, K)``."""
        return unpack_codes(self.codes, self.bits, self.in_features)

    def group_tables(self, dtype=torch.float32, lut_fields: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
        """Every group's LUT expanded to ``(N, K/g, 2**bits)`` in ``dtype`` (fields may be overridden,
        e.g. by a timestep bucket's LUT set)."""
        f = {name: getattr(self, name) for name in _LUT_FIELDS}
        if lut_fields:
            f.update(lut_fields)
        E = 1 << self.bits
        if self.lut_kind == "table":
            return f["table"].to(dtype)
        if self.lut_kind == "scaled":
            cb = f["codebook"].to(dtype)
            cb = cb.view(1, 1, E) if cb.dim() == 1 else cb.unsqueeze(1)
            t = cb * f["scale"].to(dtype).unsqueeze(-1)
            if f["zero"] is not None:
                t = t + f["zero"].to(dtype).unsqueeze(-1)
            return t
        # binary: value(code) = mu + sum_i alpha_i * sign_i(code)
        code = torch.arange(E, device=self.device)
        signs = (((code.unsqueeze(1) >> torch.arange(self.bits, device=self.device)) & 1) * 2 - 1).to(dtype)  # (E, b)
        return f["mu"].to(dtype).unsqueeze(-1) + torch.einsum("ngb,eb->nge", f["alpha"].to(dtype), signs)

    def to_table(self) -> "QuantizedWeight":
        """The same weight as a ``table`` kind (exact in fp32 arithmetic, rounded to the LUT dtype);
        per-bucket LUT sets of timestep tables are expanded the same way."""
        table = self.group_tables(torch.float32).to(self.lut_dtype)
        ts = self.timestep
        if ts is not None and ts.luts:
            per_bucket = [self.group_tables(torch.float32, {k: v[b] for k, v in ts.luts.items()})
                          for b in range(ts.num_buckets)]
            ts = TimestepTables(ts.boundaries, ts.bias, {"table": torch.stack(per_bucket).to(self.lut_dtype)})
        return QuantizedWeight(bits=self.bits, group_size=self.group_size, in_features=self.in_features,
                               codes=self.codes, lut_kind="table", table=table, in_scale=self.in_scale,
                               timestep=ts)

    # ------------------------------------------------------------------ serialisation
    def meta(self) -> dict:
        return {"bits": self.bits, "group_size": self.group_size, "in_features": self.in_features,
                "out_features": self.out_features, "lut_kind": self.lut_kind}

    def tensors(self) -> Dict[str, torch.Tensor]:
        out = {f: getattr(self, f) for f in _TENSOR_FIELDS if getattr(self, f) is not None}
        if self.timestep is not None:
            out.update({f"timestep.{k}": v for k, v in self.timestep.tensors().items()})
        return out

    @classmethod
    def from_tensors(cls, meta: dict, tensors: Dict[str, torch.Tensor], validate: bool = True) -> "QuantizedWeight":
        ts = {k[len("timestep."):]: v for k, v in tensors.items() if k.startswith("timestep.")}
        unknown = set(tensors) - set(_TENSOR_FIELDS) - {f"timestep.{k}" for k in ts}
        if unknown:
            raise ValueError(f"unknown QuantizedWeight tensors: {sorted(unknown)}")
        if "codes" not in tensors:
            raise ValueError("missing tensor 'codes'")
        q = cls(bits=meta["bits"], group_size=meta["group_size"], in_features=meta["in_features"],
                lut_kind=meta["lut_kind"], timestep=TimestepTables.from_tensors(ts, validate) if ts else None,
                validate=validate, **{f: tensors.get(f) for f in _TENSOR_FIELDS})
        if q.out_features != meta.get("out_features", q.out_features):
            raise ValueError(f"codes have {q.out_features} rows, manifest says out_features={meta['out_features']}")
        return q

    def __repr__(self) -> str:
        N, K = self.shape
        return (f"QuantizedWeight(shape=({N}, {K}), bits={self.bits}, group_size={self.group_size}, "
                f"lut_kind={self.lut_kind!r}, lut_dtype={self.lut_dtype}, in_scale={self.in_scale is not None}, "
                f"timestep={self.timestep is not None}, effective_bits={self.effective_bits:.3f})")


class MixedQuantizedWeight:
    """Blockwise mixed precision: ``perm`` (K,) reorders input channels so that segment ``s`` sees
    ``x[..., perm[off_s : off_s + K_s]]``; ``y = sum_s W_s @ x[..., perm_s]``."""

    __slots__ = ("perm", "segments")

    def __init__(self, perm: torch.Tensor, segments: Sequence[QuantizedWeight], validate: bool = True):
        self.perm, self.segments = perm, tuple(segments)
        if validate:
            self._validate()

    def _validate(self) -> None:
        check_tensor("perm", self.perm, ndim=1)
        if self.perm.dtype != torch.int64:
            raise TypeError(f"perm must be int64, got {self.perm.dtype}")
        if not self.segments:
            raise ValueError("segments must hold at least one QuantizedWeight")
        for i, s in enumerate(self.segments):
            if not isinstance(s, QuantizedWeight):
                raise TypeError(f"segments[{i}] must be a QuantizedWeight, got {type(s).__name__}")
            if s.out_features != self.segments[0].out_features:
                raise ValueError(f"segments[{i}] has out_features {s.out_features}, "
                                 f"segments[0] has {self.segments[0].out_features}")
            if s.device != self.perm.device:
                raise ValueError(f"segments[{i}] is on {s.device} but perm is on {self.perm.device}")
            if s.timestep is not None and s.timestep.bias is not None and i > 0:
                raise ValueError(f"segments[{i}]: a timestep bias belongs on segments[0] only (it is added once)")
        K = sum(s.in_features for s in self.segments)
        if self.perm.numel() != K:
            raise ValueError(f"perm has {self.perm.numel()} entries, segments cover {K} input channels")
        if not torch.equal(torch.sort(self.perm).values, torch.arange(K, device=self.perm.device)):
            raise ValueError("perm must be a permutation of range(in_features)")

    @property
    def in_features(self) -> int:
        return self.perm.numel()

    @property
    def out_features(self) -> int:
        return self.segments[0].out_features

    @property
    def shape(self) -> Tuple[int, int]:
        return (self.out_features, self.in_features)

    @property
    def device(self) -> torch.device:
        return self.perm.device

    @property
    def bits(self) -> float:
        """Average code width over input channels."""
        return sum(s.bits * s.in_features for s in self.segments) / self.in_features

    @property
    def nbytes(self) -> int:
        return _tensor_bytes(self.perm) + sum(s.nbytes for s in self.segments)

    @property
    def effective_bits(self) -> float:
        return 8.0 * self.nbytes / (self.out_features * self.in_features)

    def segment_slices(self):
        """(segment, perm slice) pairs."""
        off = 0
        for s in self.segments:
            yield s, self.perm[off:off + s.in_features]
            off += s.in_features

    def _apply(self, fn) -> "MixedQuantizedWeight":
        return MixedQuantizedWeight(fn(self.perm), [s._apply(fn) for s in self.segments], validate=False)

    def to(self, device) -> "MixedQuantizedWeight":
        return self._apply(lambda t: t.to(device))

    def meta(self) -> dict:
        return {"mixed": True, "in_features": self.in_features, "out_features": self.out_features,
                "segments": [s.meta() for s in self.segments]}

    def tensors(self) -> Dict[str, torch.Tensor]:
        out = {"perm": self.perm}
        for i, s in enumerate(self.segments):
            out.update({f"seg{i}.{k}": v for k, v in s.tensors().items()})
        return out

    @classmethod
    def from_tensors(cls, meta: dict, tensors: Dict[str, torch.Tensor], validate: bool = True):
        if "perm" not in tensors:
            raise ValueError("missing tensor 'perm'")
        segs = []
        for i, m in enumerate(meta["segments"]):
            p = f"seg{i}."
            segs.append(QuantizedWeight.from_tensors(m, {k[len(p):]: v for k, v in tensors.items()
                                                         if k.startswith(p)}, validate))
        extra = [k for k in tensors if k != "perm" and not any(k.startswith(f"seg{i}.") for i in range(len(segs)))]
        if extra:
            raise ValueError(f"unknown MixedQuantizedWeight tensors: {sorted(extra)}")
        return cls(tensors["perm"], segs, validate)

    def __repr__(self) -> str:
        bits = "+".join(f"{s.bits}b x{s.in_features}" for s in self.segments)
        return (f"MixedQuantizedWeight(shape={self.shape}, segments=[{bits}], avg_bits={self.bits:.3f}, "
                f"effective_bits={self.effective_bits:.3f})")


def weight_from_tensors(meta: dict, tensors: Dict[str, torch.Tensor], validate: bool = True):
    """Rebuild a QuantizedWeight or MixedQuantizedWeight from :meth:`meta` and :meth:`tensors`."""
    cls = MixedQuantizedWeight if meta.get("mixed") else QuantizedWeight
    return cls.from_tensors(meta, tensors, validate)
