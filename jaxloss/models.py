"""Tiny functional models: `(init_fn(key) -> params, apply_fn(params, x) -> y)` pairs.

Params are plain pytrees (a list of `{"w": (in, out), "b": (out,)}` dicts, one per layer), so they
work with `jaxloss.objective`, `jax.grad` and optax directly. `apply_fn` sees one sample `x` of
shape `(in_dim,)`; it also works on a batch `(N, in_dim)` since it is a matrix product.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _checks

Params = list[dict[str, jax.Array]]
Model = tuple[Callable[[jax.Array], Params], Callable[[Params, jax.Array], jax.Array]]


def _dense_init(key: jax.Array, in_dim: int, out_dim: int, dtype: Any) -> dict[str, jax.Array]:
    # LeCun-normal weights keep tanh layers in their linear range at initialisation.
    w = jax.random.normal(key, (in_dim, out_dim), dtype) / jnp.sqrt(jnp.asarray(in_dim, dtype))
    return {"w": w, "b": jnp.zeros((out_dim,), dtype)}


def mlp(
    sizes: Sequence[int],
    *,
    activation: Callable[[jax.Array], jax.Array] = jax.nn.tanh,
    dtype: Any = jnp.float32,
) -> Model:
    """A multilayer perceptron `sizes[0] -> sizes[1] -> ... -> sizes[-1]`.

    `activation` follows every layer but the last (the output is linear: logits or a regression
    value). `sizes=[in, out]` is a linear model.

    Args:
        sizes: at least two integer layer widths ≥ 1 (Python or NumPy ints; a float or a bool is
            a TypeError rather than silently truncated).
        activation: elementwise function after every hidden layer.
        dtype: a floating dtype for the parameters (an integer dtype is a TypeError: they must
            be differentiable).

    Returns:
        `(init_fn, apply_fn)`: `init_fn(key) -> params` (a key or an int seed), and
        `apply_fn(params, x)` for `x` of shape `(..., sizes[0])` (another last axis is a
        ValueError).

    Example:
        >>> init_fn, apply_fn = jaxloss.mlp([2, 16, 1])
        >>> params = init_fn(jax.random.key(0))
        >>> apply_fn(params, jnp.ones(2)).shape
        (1,)
    """
    return _mlp("mlp", sizes, activation, dtype)


def _mlp(fn: str, sizes: Sequence[int], activation: Any, dtype: Any) -> Model:
    if (
        isinstance(sizes, (str, bytes))
        or not isinstance(sizes, (Sequence, np.ndarray))
        or np.ndim(sizes) != 1
    ):
        raise TypeError(f"jaxloss.{fn}: `sizes` must be a sequence of integers; got {sizes!r}.")
    sizes = [_checks.integer(fn, f"sizes[{i}]", s, low=1) for i, s in enumerate(sizes)]
    if len(sizes) < 2:
        raise ValueError(
            f"jaxloss.{fn}: `sizes` must list at least an input and an output size; got {sizes}."
        )
    try:
        floating = jnp.issubdtype(jnp.dtype(dtype), jnp.floating)
    except TypeError:
        floating = False
    if not floating:
        raise TypeError(
            f"jaxloss.{fn}: `dtype` must be a floating dtype (parameters are differentiated); got "
            f"{dtype!r}."
        )
    width = sizes[0]

    def init_fn(key: jax.Array) -> Params:
        keys = jax.random.split(_checks.prng_key(fn, "key", key), len(sizes) - 1)
        return [
            _dense_init(k, fan_in, fan_out, dtype)
            for k, fan_in, fan_out in zip(keys, sizes[:-1], sizes[1:])
        ]

    def dense(layer: dict[str, jax.Array], x: jax.Array) -> jax.Array:
        # Explicit bias broadcast: a batch must work under jax_numpy_rank_promotion="raise".
        return x @ layer["w"] + jnp.expand_dims(layer["b"], tuple(range(x.ndim - 1)))

    def apply_fn(params: Params, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        if x.ndim < 1 or x.shape[-1] != width:
            raise ValueError(
                f"jaxloss.{fn}: apply_fn's `x` must have shape (..., {width}) (one sample of "
                f"width {width}, or a batch of them); got {x.shape}."
            )
        for layer in params[:-1]:
            x = activation(dense(layer, x))
        return dense(params[-1], x)

    return init_fn, apply_fn


def linear(in_dim: int, out_dim: int, *, dtype: Any = jnp.float32) -> Model:
    """An affine model `x @ w + b`: `mlp([in_dim, out_dim])` (same checks, errors name `linear`).

    Example:
        >>> init_fn, apply_fn = jaxloss.linear(3, 2)
        >>> apply_fn(init_fn(0), jnp.ones((5, 3))).shape
        (5, 2)
    """
    in_dim = _checks.positive_int("linear", "in_dim", in_dim)
    out_dim = _checks.positive_int("linear", "out_dim", out_dim)
    return _mlp("linear", [in_dim, out_dim], None, dtype)
