"""The shared argument checks: one rule for integers, seeds and keys everywhere."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxloss import _checks


@pytest.mark.parametrize("value", [3, np.int64(3), np.int32(3), np.array(3), jnp.int32(3)])
def test_integers_are_python_and_numpy_integers(value):
    assert _checks.positive_int("f", "n", value) == 3


@pytest.mark.parametrize(
    "value", [True, np.bool_(True), 3.0, np.float64(3.0), np.array([3]), "3", None, jnp.float32(3)]
)
def test_everything_else_is_a_type_error(value):
    with pytest.raises(TypeError, match=r"^jaxloss\.f: `n` must be an integer; got "):
        _checks.positive_int("f", "n", value)


def test_out_of_range_is_a_value_error():
    with pytest.raises(ValueError, match=r"^jaxloss\.f: `n` must lie in \[1, inf\]; got 0\."):
        _checks.positive_int("f", "n", 0)
    with pytest.raises(
        ValueError, match=r"must lie in \[-2147483648, 2147483647\]; got 2147483648"
    ):
        _checks.int32("f", "n", 2**31)


@pytest.mark.parametrize("seed", [0, 5, 2**32 - 1, 2**32, 2**40, 2**63 - 1, -1, -5, -(2**63)])
def test_seed_keys_are_jax_x64_keys_in_either_mode(seed):
    # The reference: what jax.random.key gives a 64-bit seed with x64 on.
    with jax.enable_x64(True):
        want = np.asarray(jax.random.key_data(jax.random.key(seed)))
    np.testing.assert_array_equal(jax.random.key_data(_checks.seed_key("f", "seed", seed)), want)
    with jax.enable_x64(True):
        np.testing.assert_array_equal(
            jax.random.key_data(_checks.seed_key("f", "seed", seed)), want
        )


def test_seeds_beyond_64_bits_raise():
    with pytest.raises(ValueError, match=r"`seed` must lie in \[-9223372036854775808"):
        _checks.seed_key("f", "seed", 2**63)


def test_keys_pass_and_floats_do_not():
    key = jax.random.key(7)
    assert _checks.prng_key("f", "key", key) is key
    legacy = jax.random.PRNGKey(7)
    assert _checks.prng_key("f", "key", legacy) is legacy
    np.testing.assert_array_equal(
        jax.random.key_data(_checks.prng_key("f", "key", 7)), jax.random.key_data(key)
    )
    for bad in (0.5, True, None, "7"):
        with pytest.raises(TypeError, match=r"`key` must be a jax.random key or an int seed"):
            _checks.prng_key("f", "key", bad)


def test_complex_is_not_real():
    with pytest.raises(TypeError, match=r"`targets` must be real; got dtype complex64"):
        _checks.float_pair("mse", "predictions", jnp.ones(2), "targets", jnp.ones(2) * 1j)


@pytest.mark.parametrize(
    ("shape", "axis", "match"),
    [
        ((0,), None, r"`x` must not be empty; got shape \(0,\)"),
        ((0, 2), 0, r"`x` must have at least one sample \(its leading axis\); got shape \(0, 2\)"),
        ((2, 0), -1, r"`x` must have at least one class \(its last axis\); got shape \(2, 0\)"),
    ],
)
def test_empty_arrays(shape, axis, match):
    with pytest.raises(ValueError, match=rf"^jaxloss\.f: {match}"):
        _checks.non_empty("f", "x", jnp.zeros(shape), axis=axis)
    _checks.non_empty("f", "x", jnp.zeros((2, 2)), axis=axis)
