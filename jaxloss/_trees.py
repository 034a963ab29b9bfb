"""Pytrees of parameters, split into the leaves that train and the rest; results as strict JSON.

The split follows equinox's `filter` rule: a leaf trains when it is a floating-point array
(a `jax.Array`, a NumPy array or NumPy scalar of a float dtype, half precision included). Every
other leaf passes through unchanged: integer and boolean arrays (counters, masks) stay traced
arrays, anything else (a Python callable, a string, a Python number) is static, part of the
hashable `TreeSpec` that jit keys its compilations on.

    trainable, frozen, spec = partition("fit", "params", params)
    params_again = combine(spec, trainable, frozen)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

_TRAIN, _ARRAY, _STATIC = 0, 1, 2


def _is_array(leaf: Any) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic))


def is_trainable(leaf: Any) -> bool:
    """A floating-point array leaf: the leaves `fit`, `sweep`, `taylor_check` and co. train."""
    return _is_array(leaf) and jnp.issubdtype(leaf.dtype, jnp.floating)


class _Static:
    """A static leaf, compared by identity: hashable whatever it is (jit keys on it)."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _Static) and other.value is self.value


class TreeSpec(NamedTuple):
    """The static part of a partitioned pytree: hashable, so a jit static argument."""

    treedef: Any
    roles: tuple[int, ...]  # per leaf: _TRAIN, _ARRAY (frozen array) or _STATIC
    statics: tuple[_Static, ...]


def partition(fn: str, name: str, tree: Any) -> tuple[tuple[jax.Array, ...], tuple, TreeSpec]:
    """`(trainable, frozen, spec)`: the floating-point array leaves (as jax arrays), the other
    array leaves, and the rest of `tree` as a hashable spec. TypeError (naming `fn` and `name`)
    when no leaf is a floating-point array: there would be nothing to train."""
    leaves, treedef = jax.tree.flatten(tree)
    roles = tuple(
        _TRAIN if is_trainable(x) else _ARRAY if _is_array(x) else _STATIC for x in leaves
    )
    if _TRAIN not in roles:
        got = [str(jnp.result_type(x)) if _is_array(x) else type(x).__name__ for x in leaves]
        raise TypeError(
            f"jaxloss.{fn}: `{name}` must be a pytree with at least one floating-point array "
            f"leaf (the parameters to train; other leaves pass through unchanged); got leaves "
            f"of types {got}."
        )
    # Already jax arrays pass as they are (partition runs on every fit/sweep call), except
    # weakly typed ones (`jnp.full(.., -8.0)`): strong types, so that feeding a result's params
    # (always strong) back in does not compile again.
    trainable = tuple(
        x if isinstance(x, jax.Array) and not x.weak_type else jnp.asarray(x, jnp.result_type(x))
        for x, r in zip(leaves, roles)
        if r == _TRAIN
    )
    frozen = tuple(x for x, r in zip(leaves, roles) if r == _ARRAY)
    statics = tuple(_Static(x) for x, r in zip(leaves, roles) if r == _STATIC)
    return trainable, frozen, TreeSpec(treedef, roles, statics)


def trainable_positions(spec: TreeSpec) -> list[int]:
    """The indices, among the flattened leaves, of the leaves that train."""
    return [i for i, role in enumerate(spec.roles) if role == _TRAIN]


def combine(spec: TreeSpec, trainable: Any, frozen: Any) -> Any:
    """The pytree `partition` split, with `trainable` (and `frozen`) leaves put back in place."""
    sources = {_TRAIN: iter(trainable), _ARRAY: iter(frozen), _STATIC: iter(spec.statics)}
    leaves = [next(sources[r]) for r in spec.roles]
    leaves = [x.value if isinstance(x, _Static) else x for x in leaves]
    return spec.treedef.unflatten(leaves)


# ----------------------------------------------------------------------------- strict JSON


def to_json(value: Any) -> Any:
    """`value` as plain Python for `json.dumps(..., allow_nan=False)`: arrays and tuples become
    lists, NumPy/JAX scalars Python numbers, NaN and ±inf None; dicts and lists recursively."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if _is_array(value):
        array = np.asarray(value)
        if array.ndim:
            return [to_json(v) for v in array]
        value = array.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def from_json(value: Any, dtype: Any = np.float64) -> np.ndarray:
    """A NumPy array of `dtype` from `to_json`'s nested lists; None reads back as NaN."""

    def restore(v):
        if isinstance(v, list):
            return [restore(u) for u in v]
        return math.nan if v is None else v

    return np.asarray(restore(value), dtype=dtype)
