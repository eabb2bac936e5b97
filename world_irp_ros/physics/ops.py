"""Tiny element-wise helpers that let one physics function run on two kinds of numbers.

Every function of ``world_irp_ros.physics.model`` is written with these helpers instead of Python's
``if``/``min``/``max`` on values, so that the same source

* compiles inside a numba kernel, where each argument is a float64 (or bool/int) scalar: the
  ``numba.extending.overload`` implementations below turn ``where(c, a, b)`` into ``a if c else b``,
  ``sqrt`` into ``math.sqrt`` and so on, and numba inlines them;
* runs as plain Python on torch tensors (CPU or CUDA), where ``where`` is ``torch.where`` etc.;
* and also runs as plain Python on ordinary floats/bools (handy in tests and docs).

Rules for code written on top of these helpers: no ``if``/``while`` on a per-rollout value except
``if any_(cond):`` or ``if any_cheap(cond):`` (which only skip work that the mask would discard
anyway); no ``and``/``or``/``not`` on per-rollout values (use ``&``, ``|``, ``not_``); no bool
arithmetic (use ``where(c, 1.0, 0.0)``).
"""
from __future__ import annotations

import contextlib
import math
import sys
import threading

from numba.extending import overload

_NUMBA_OPTS = {"fastmath": True, "error_model": "numpy"}


def _torch_if_tensor(*xs):
    """The torch module when any argument is a torch tensor, else None (torch is never imported here)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    for x in xs:
        if isinstance(x, torch.Tensor):
            return torch
    return None


# ----------------------------------------------------------------------------------- Python path
def where(c, a, b):
    """``a`` where ``c`` holds, else ``b`` (element-wise; ``c`` a bool or bool tensor)."""
    torch = _torch_if_tensor(c, a, b)
    if torch is None:
        return a if c else b
    if not isinstance(c, torch.Tensor):
        return a if c else b
    if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
        # Two Python numbers: a float64 fill on the device (no host-to-device copy, not float32).
        a = torch.full(c.shape, float(a), dtype=torch.float64, device=c.device)
    return torch.where(c, a, b)


def sqrt(x):
    """Square root."""
    torch = _torch_if_tensor(x)
    return math.sqrt(x) if torch is None else torch.sqrt(x)


def minimum(a, b):
    """Element-wise minimum (no NaN handling: the model never makes NaN)."""
    torch = _torch_if_tensor(a, b)
    if torch is None:
        return a if a < b else b
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return torch.minimum(a, b)
    if isinstance(a, torch.Tensor):
        return torch.clamp(a, max=b)
    return torch.clamp(b, max=a)


def maximum(a, b):
    """Element-wise maximum."""
    torch = _torch_if_tensor(a, b)
    if torch is None:
        return a if a > b else b
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return torch.maximum(a, b)
    if isinstance(a, torch.Tensor):
        return torch.clamp(a, min=b)
    return torch.clamp(b, min=a)


def clip(x, lo, hi):
    """``x`` limited to ``[lo, hi]`` (``lo`` and ``hi`` scalars or tensors)."""
    return minimum(maximum(x, lo), hi)


def not_(c):
    """Logical not."""
    torch = _torch_if_tensor(c)
    return (not c) if torch is None else torch.logical_not(c)


_SYNC = threading.local()


@contextlib.contextmanager
def without_device_sync():
    """Inside it ``any_`` on tensors is True without looking: the masked work is done instead of
    skipped, and no value is read back from the device, so the code can be captured into a CUDA
    graph (the results are the same: the work skipped otherwise is masked off)."""
    before = getattr(_SYNC, "off", False)
    _SYNC.off = True
    try:
        yield
    finally:
        _SYNC.off = before


def any_(c):
    """True when ``c`` holds anywhere: a Python bool, used only to skip work masked off anyway
    (always True on tensors inside ``without_device_sync``)."""
    torch = _torch_if_tensor(c)
    if torch is None:
        return bool(c)
    return True if getattr(_SYNC, "off", False) else bool(c.any())


def any_cheap(c):
    """``any_(c)`` where that costs nothing (a number, a numba scalar); always True on tensors, which
    then do the masked work rather than pay a device sync to skip it."""
    torch = _torch_if_tensor(c)
    return bool(c) if torch is None else True


def as_index(x):
    """A non-negative whole number stored as float, as an array index (int64 tensor or int)."""
    torch = _torch_if_tensor(x)
    return int(x) if torch is None else x.long()


# ------------------------------------------------------------------------------------ numba path
@overload(where, jit_options=_NUMBA_OPTS)
def _ov_where(c, a, b):
    def impl(c, a, b):
        return a if c else b
    return impl


@overload(sqrt, jit_options=_NUMBA_OPTS)
def _ov_sqrt(x):
    def impl(x):
        return math.sqrt(x)
    return impl


@overload(minimum, jit_options=_NUMBA_OPTS)
def _ov_minimum(a, b):
    def impl(a, b):
        return a if a < b else b
    return impl


@overload(maximum, jit_options=_NUMBA_OPTS)
def _ov_maximum(a, b):
    def impl(a, b):
        return a if a > b else b
    return impl


@overload(clip, jit_options=_NUMBA_OPTS)
def _ov_clip(x, lo, hi):
    def impl(x, lo, hi):
        y = x if x > lo else lo
        return y if y < hi else hi
    return impl


@overload(not_, jit_options=_NUMBA_OPTS)
def _ov_not(c):
    def impl(c):
        return not c
    return impl


@overload(any_, jit_options=_NUMBA_OPTS)
def _ov_any(c):
    def impl(c):
        return c
    return impl


@overload(any_cheap, jit_options=_NUMBA_OPTS)
def _ov_any_cheap(c):
    def impl(c):
        return c
    return impl


@overload(as_index, jit_options=_NUMBA_OPTS)
def _ov_as_index(x):
    def impl(x):
        return int(x)
    return impl


__all__ = ["where", "sqrt", "minimum", "maximum", "clip", "not_", "any_", "any_cheap", "as_index",
           "without_device_sync"]
