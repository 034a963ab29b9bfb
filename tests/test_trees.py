"""The shared pytree split (`jaxloss._trees`): which leaves train, and the way back."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxloss import _trees


def _mixed_tree():
    return {
        "w": jnp.ones((2, 3)),
        "b": np.zeros(3, np.float32),
        "half": jnp.ones(2, jnp.bfloat16),
        "count": jnp.int32(7),
        "mask": np.array([True, False]),
        "activation": jnp.tanh,
        "name": "layer",
        "scale": 2.0,  # a Python float is static, as in equinox
    }


def test_partition_trains_float_arrays_only_and_combine_restores_every_leaf():
    tree = _mixed_tree()
    trainable, frozen, spec = _trees.partition("fit", "params", tree)
    # Flattened in sorted-key order: b, half, w train; count, mask are frozen arrays.
    assert [x.dtype for x in trainable] == [jnp.float32, jnp.bfloat16, jnp.float32]
    assert [np.asarray(x).dtype for x in frozen] == [np.int32, np.bool_]
    back = _trees.combine(spec, tuple(2 * x for x in trainable), frozen)
    np.testing.assert_array_equal(back["w"], 2 * np.ones((2, 3)))
    assert back["activation"] is jnp.tanh and back["name"] == "layer" and back["scale"] == 2.0
    assert int(back["count"]) == 7


def test_spec_is_a_static_jit_key_compared_by_identity():
    _, _, spec_a = _trees.partition("fit", "params", _mixed_tree())
    _, _, spec_b = _trees.partition("fit", "params", _mixed_tree())
    assert hash(spec_a) == hash(spec_b) and spec_a == spec_b  # same objects (tanh, "layer", 2.0)
    other = dict(_mixed_tree(), activation=jax.nn.relu)
    assert _trees.partition("fit", "params", other)[2] != spec_a

    @jax.jit
    def double(trainable, frozen):  # the spec is closed over: only arrays cross jit
        return _trees.combine(spec_a, tuple(2 * x for x in trainable), frozen)["w"]

    trainable, frozen, _ = _trees.partition("fit", "params", _mixed_tree())
    np.testing.assert_array_equal(double(trainable, frozen), 2 * np.ones((2, 3)))


def test_partition_without_a_float_leaf_names_the_caller():
    with pytest.raises(
        TypeError,
        match=r"jaxloss.sweep: `params` .* got leaves of types "
        r"\['int32', 'str'\]",
    ):
        _trees.partition("sweep", "params", [jnp.int32(1), "relu"])


def test_json_round_trip_is_strict_with_nan_and_inf_as_null():
    value = {"a": jnp.array([1.5, jnp.nan, jnp.inf]), "b": np.float32(2.0), "c": (1, "x")}
    text = json.dumps(_trees.to_json(value), allow_nan=False)
    assert json.loads(text) == {"a": [1.5, None, None], "b": 2.0, "c": [1, "x"]}
    back = _trees.from_json(json.loads(text)["a"])
    assert back.dtype == np.float64 and back[0] == 1.5 and math.isnan(back[1])
