"""Data and run parallelism on 1, 2, 4 and 8 devices agree with one device (float32 tolerance).

The reference is the same call on unsharded arrays (one device); the sharded call differs only by
the order of the cross-device sums.
"""

import re
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

import jaxloss

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import device_agreement  # noqa: E402

DEVICE_COUNTS = (1, 2, 4, 8)

x, y = jaxloss.spirals(64, classes=3, key=0)
init_fn, apply_fn = jaxloss.mlp([2, 8, 3])
objective = jaxloss.objective(apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels)
params = init_fn(jax.random.key(0))


def sharded(devices):
    mesh = jaxloss.data_parallel_mesh(devices)
    return (jaxloss.replicate(mesh, params), *jaxloss.shard_batch(mesh, x, y))


# The largest |difference| a quantity may show against one device: float32 roundoff of sums
# over 64 samples taken in another order (grown over 50 steps for the runs); each device of a
# run-parallel sweep runs the one-device program, bit for bit.
TOLERANCE = {
    "objective": 1e-6,
    "gradient": 1e-6,
    "fit losses": 1e-5,
    "fit params": 1e-4,
    "fit minibatch losses": 1e-5,
    "sweep losses (data parallel)": 1e-4,  # η = 3 is barely stable: roundoff grows fastest
    "sweep losses (runs on devices)": 0.0,
    "taylor_check actual ΔL": 1e-6,  # a difference of two losses ~1.2, each rounded to ~1e-7
}


@pytest.fixture(scope="module")
def one_device():
    return device_agreement.quantities(None)


def test_the_session_has_eight_devices():
    assert jax.device_count() == 8


@pytest.mark.parametrize("devices", DEVICE_COUNTS)
def test_every_quantity_agrees_with_one_device(devices, one_device):
    p, xs, ys = sharded(devices)
    assert xs.sharding.spec == PartitionSpec("data") and len(xs.addressable_shards) == devices
    assert xs.addressable_shards[0].data.shape == (64 // devices, 2)
    values = device_agreement.quantities(jaxloss.data_parallel_mesh(devices))
    assert set(values) == set(TOLERANCE) == set(device_agreement.QUANTITIES)
    for name, tolerance in TOLERANCE.items():
        difference = device_agreement.max_abs_difference(values[name], one_device[name])
        assert difference <= tolerance, (name, difference)
    assert values["fit losses"][-1] < 0.9 * values["fit losses"][0]  # it trained
    assert int(np.sum(np.isfinite(values["sweep losses (runs on devices)"]))) > 0


def test_the_agreement_script_prints_its_table(capsys):
    table = device_agreement.main(["--devices", "2"])
    assert list(table) == [1, 2]
    out = capsys.readouterr().out
    assert "simulated" in out and "| taylor_check actual ΔL |" in out


def test_sweep_on_a_mesh_takes_optax_and_progress_with_more_devices_than_runs():
    import optax

    kwargs = {"learning_rates": [0.01, 0.1, 1.0], "steps": 10, "optimizer": optax.adam}
    ref = jaxloss.sweep(objective, params, x, y, **kwargs)
    mesh = jaxloss.data_parallel_mesh(8)  # 3 runs: five devices train copies, dropped
    result = jaxloss.sweep(objective, params, x, y, mesh=mesh, progress=True, **kwargs)
    np.testing.assert_array_equal(result.losses, ref.losses)
    assert device_agreement.max_abs_difference(result.opt_state, ref.opt_state) == 0.0


F32 = re.compile(r"f32\[([\d,]*)\]")


def all_reduces(compiled_text):
    return re.findall(r"^\s*%?\S+ = .* all-reduce(?:-start)?\(", compiled_text, re.MULTILINE)


@pytest.fixture
def optimised():
    """XLA's all-reduce combiner is an optimisation pass: compile as users do."""
    jax.config.update("jax_disable_most_optimizations", False)
    yield
    jax.config.update("jax_disable_most_optimizations", True)


def test_a_data_parallel_step_sums_the_gradient_across_devices_once(optimised):
    p, xs, ys = sharded(8)
    step = jax.jit(jaxloss.sgd_step, static_argnums=0)
    text = step.lower(objective, p, xs, ys, 0.1).compile().as_text()
    reductions = all_reduces(text)
    # One all-reduce carries every gradient leaf and the loss (XLA may hold a leaf transposed).
    assert len(reductions) == 1, reductions
    sizes = [np.prod([int(d) for d in dims.split(",") if d]) for dims in F32.findall(reductions[0])]
    assert sorted(sizes) == sorted([leaf.size for leaf in jax.tree.leaves(params)] + [1])
    # The data stay where they are: no device gathers the batch.
    assert "all-gather" not in text and "all-to-all" not in text


def test_sharded_data_of_the_same_shape_never_retrace():
    traces = []

    def counted(params, inputs, targets):
        traces.append(1)
        return objective(params, inputs, targets)

    mesh = jaxloss.data_parallel_mesh(4)
    p = jaxloss.replicate(mesh, params)
    for seed in (1, 2, 3):  # new data, same shapes and shardings
        xs, ys = jaxloss.shard_batch(mesh, *jaxloss.spirals(64, classes=3, key=seed))
        jaxloss.fit(counted, p, xs, ys, learning_rate=0.1, steps=5)
        jaxloss.taylor_check(counted, p, xs, ys, learning_rates=[0.1])
        if seed == 1:
            first = len(traces)
    assert len(traces) == first


# ------------------------------------------------------------- non-decomposable quantities


def mean_of_shards(fn, devices, *arrays):
    """What a naive per-device loss averaged over devices gives (not the batch's loss)."""
    shards = zip(*(np.split(np.asarray(a), devices) for a in arrays))
    return np.mean([fn(*shard) for shard in shards])


def non_decomposable(seed):
    keys = jax.random.split(jax.random.key(seed), 4)
    logits = jax.random.normal(keys[0], (8, 6, 6, 3))
    masks = jax.random.randint(keys[1], (8, 6, 6), 0, 3)
    predictions = jax.random.normal(keys[2], (8, 5))
    targets = predictions + jnp.arange(8.0)[:, None] * jax.random.normal(keys[3], (8, 5))
    return logits, masks, predictions, targets


@pytest.mark.parametrize("devices", (8,))
def test_dice_over_a_batch_and_rmse_of_a_data_set_are_exact_on_sharded_batches(devices):
    logits, masks, predictions, targets = non_decomposable(devices)
    mesh = jaxloss.data_parallel_mesh(devices)
    batch_dice = jax.jit(lambda p, t: jaxloss.dice_loss(p, t))
    batch_rmse = jax.jit(jaxloss.rmse)
    for fn, arrays in ((batch_dice, (logits, masks)), (batch_rmse, (predictions, targets))):
        whole = fn(*arrays)
        value = fn(*jaxloss.shard_batch(mesh, *arrays))
        np.testing.assert_allclose(value, whole, rtol=1e-6)
        # Per-device losses averaged would not be the batch's: the test can tell.
        assert abs(mean_of_shards(fn, devices, *arrays) - float(whole)) > 1e-3
        grads = jax.grad(fn)(*jaxloss.shard_batch(mesh, *arrays))
        np.testing.assert_allclose(grads, jax.grad(fn)(*arrays), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("devices", (2,))
def test_mined_cross_entropy_normalised_by_the_batchs_positives_is_exact_sharded(devices):
    # SSD's loss: Σ_i S_i / max(1, Σ_i P_i), a ratio of batch sums (jaxloss.mined_cross_entropy).
    loss_sum = jaxloss.objective(
        lambda w, anchors: anchors @ w,
        lambda lg, lb: jaxloss.mined_cross_entropy(lg, lb)[0],
        reduction="sum",
    )

    @jax.jit
    def ssd(w, anchors, labels):
        return loss_sum(w, anchors, labels) / jnp.maximum(jnp.sum(labels != 0), 1)

    keys = jax.random.split(jax.random.key(7), 3)
    anchors = jax.random.normal(keys[0], (8, 16, 4))
    # Positives only in the first two samples: per-device normalisers would differ wildly.
    labels = jnp.where(jnp.arange(8)[:, None] < 2, jax.random.randint(keys[1], (8, 16), 0, 3), 0)
    w = jax.random.normal(keys[2], (4, 3))
    mesh = jaxloss.data_parallel_mesh(devices)
    sharded_args = (jaxloss.replicate(mesh, w), *jaxloss.shard_batch(mesh, anchors, labels))
    value, grad = jax.value_and_grad(ssd)(*sharded_args)
    ref_value, ref_grad = jax.value_and_grad(ssd)(w, anchors, labels)
    np.testing.assert_allclose(value, ref_value, rtol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-7)
    per_device = mean_of_shards(lambda a, lb: ssd(w, a, lb), devices, anchors, labels)
    assert abs(per_device - float(ref_value)) > 1e-2


# ------------------------------------------------------------------------- the helpers


def test_mesh_shard_batch_and_replicate_place_the_arrays():
    mesh = jaxloss.data_parallel_mesh()
    assert mesh.axis_names == ("data",) and mesh.size == 8
    assert list(mesh.devices) == jax.devices()
    # The XLA flag of this session wins: two of its eight devices, no new backend.
    assert jaxloss.data_parallel_mesh(2, simulate_on_cpu=True).size == 2
    assert jax.device_count() == 8
    tree = {"image": jnp.ones((16, 3, 2)), "mask": jnp.zeros(16, bool)}
    placed = jaxloss.shard_batch(mesh, tree)
    assert placed["image"].sharding == NamedSharding(mesh, PartitionSpec("data"))
    assert {s.data.shape for s in placed["image"].addressable_shards} == {(2, 3, 2)}
    np.testing.assert_array_equal(placed["image"], tree["image"])
    replicated = jaxloss.replicate(mesh, {"w": np.ones(3, np.float32), "act": jnp.tanh})
    assert replicated["w"].sharding.is_fully_replicated and replicated["act"] is jnp.tanh
    assert len(replicated["w"].addressable_shards) == 8


def test_bad_devices_and_batches_say_what_to_do():
    with pytest.raises(ValueError, match=r"at most the 8 device\(s\).*jax_num_cpu_devices"):
        jaxloss.data_parallel_mesh(9)
    with pytest.raises(ValueError, match=r"num_devices.*\[1, inf\]; got 0"):
        jaxloss.data_parallel_mesh(0)
    mesh = jaxloss.data_parallel_mesh(8)
    with pytest.raises(
        ValueError,
        match=r"`arrays\[1\]` must be divisible by the 8 devices.*got 60 samples.*Drop the last "
        r"4 \(x\[:56\]\), pad to 64",
    ):
        jaxloss.shard_batch(mesh, jnp.ones((64, 2)), jnp.ones(60))
    with pytest.raises(ValueError, match=r"`arrays\[0\]\['b'\]` must have a leading sample axis"):
        jaxloss.shard_batch(mesh, {"a": jnp.ones(8), "b": jnp.float32(1.0)})
    with pytest.raises(TypeError, match=r"every leaf must be an array; `arrays\[0\]` is str"):
        jaxloss.shard_batch(mesh, "data")
    with pytest.raises(TypeError, match=r"jaxloss.sweep: `mesh` must be a jax.sharding.Mesh"):
        jaxloss.sweep(objective, params, x, y, learning_rates=[0.1], steps=1, mesh=8)
