"""Nothing in jaxloss assumes a backend: no host callbacks in the compiled programs (a GPU/TPU would
stop for the host every step), and bfloat16 data (TPU's native type) train as float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

x, y = jaxloss.spirals(64, classes=3, key=0)
init_fn, apply_fn = jaxloss.mlp([2, 8, 3])
objective = jaxloss.objective(apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels)
params = init_fn(jax.random.key(0))

# Every program a training loop compiles, lowered (not compiled) inside one jit each.
PROGRAMS = {
    "fit": lambda p, x, y: jaxloss.fit(objective, p, x, y, learning_rate=0.1, steps=3).losses,
    "fit minibatch, monitor": lambda p, x, y: (
        jaxloss.fit(
            objective, p, x, y, learning_rate=0.1, steps=3, batch_size=8, key=0, monitor_every=1
        ).losses
    ),
    "sweep": lambda p, x, y: (
        jaxloss.sweep(objective, p, x, y, learning_rates=[0.1, 1.0], steps=3, seeds=2).losses
    ),
    "sgd_step": lambda p, x, y: jaxloss.sgd_step(objective, p, x, y, 0.1)[1],
    "top_hessian_eigenvalue": lambda p, x, y: jaxloss.top_hessian_eigenvalue(
        objective, p, x, y, iters=3, key=0
    ),
}


@pytest.mark.parametrize("name", PROGRAMS)
def test_compiled_programs_never_call_back_to_the_host(name):
    text = jax.jit(PROGRAMS[name]).lower(params, x, y).as_text()
    assert "stablehlo.while" in text or name == "sgd_step"
    # Host callbacks lower to custom calls such as xla_python_cpu_callback / xla_ffi_python_*.
    assert "callback" not in text and "xla_ffi_python" not in text


def test_bfloat16_data_train_like_float32_data_rounded_to_bfloat16():
    # bfloat16 inputs meet float32 weights: the products promote to float32, so training on them
    # equals training on float32 copies of the same (rounded) values, bit for bit.
    x_bf16 = x.astype(jnp.bfloat16)
    ours = jaxloss.fit(objective, params, x_bf16, y, learning_rate=0.5, steps=20)
    reference = jaxloss.fit(
        objective, params, x_bf16.astype(jnp.float32), y, learning_rate=0.5, steps=20
    )
    assert ours.losses.dtype == jnp.float32
    np.testing.assert_array_equal(ours.losses, reference.losses)
    assert ours.losses[-1] < ours.losses[0]
    report = jaxloss.taylor_check(objective, params, x_bf16, y, learning_rates=[1e-2, 1e-1])
    assert report.dtype == "float32"
    np.testing.assert_allclose(report.ratio, [1.0, 1.0], atol=0.05)  # first-order regime
