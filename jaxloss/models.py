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

    Example:
        >>> init_fn, apply_fn = mlp([2, 16, 1])
        >>> params = init_fn(jax.random.key(0))
        >>> apply_fn(params, jnp.ones(2)).shape
        (1,)
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(
            f"jaxloss.mlp: `sizes` must list at least an input and an output size, all >= 1; "
            f"got {sizes}."
        )

    def init_fn(key: jax.Array) -> Params:
        keys = jax.random.split(key, len(sizes) - 1)
        return [
            _dense_init(k, fan_in, fan_out, dtype)
            for k, fan_in, fan_out in zip(keys, sizes[:-1], sizes[1:])
        ]

    def dense(layer: dict[str, jax.Array], x: jax.Array) -> jax.Array:
        # Explicit bias broadcast: a batch must work under jax_numpy_rank_promotion="raise".
        return x @ layer["w"] + jnp.expand_dims(layer["b"], tuple(range(x.ndim - 1)))

    def apply_fn(params: Params, x: jax.Array) -> jax.Array:
        for layer in params[:-1]:
            x = activation(dense(layer, x))
        return dense(params[-1], x)

    return init_fn, apply_fn


def linear(in_dim: int, out_dim: int, *, dtype: Any = jnp.float32) -> Model:
    """An affine model `x @ w + b`: `mlp([in_dim, out_dim])`."""
    return mlp([in_dim, out_dim], dtype=dtype)
