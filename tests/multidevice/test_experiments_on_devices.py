"""`--devices 8` in the experiment scripts (8 simulated CPU devices: this folder's session): the
main job (a sweep, then a Taylor check and an LR range test, data-parallel like the other scripts'
fits) gives the numbers of the same `--quick` run on one device, and really ran on 8 devices."""

import json
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxloss

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiment_runner import load  # noqa: E402

EIGHT = ["--devices", "8"]
# The training calls the scripts make, spied on to see where their data and parameters live.
TRAINING = ("sweep", "fit", "taylor_check", "lr_range_test")


def _placement(tree):
    """(devices, split) of a pytree's array leaves: how many devices hold them, and whether any
    leaf is split across them rather than copied; (1, False) for NumPy leaves or none."""
    arrays = [leaf for leaf in jax.tree.leaves(tree) if isinstance(leaf, jax.Array)]
    devices = max([len(leaf.sharding.device_set) for leaf in arrays], default=1)
    return devices, any(not leaf.sharding.is_fully_replicated for leaf in arrays)


def _spy(fn, seen):
    """`jaxloss.<fn>`, noting in `seen` the mesh it is given and where its data and parameters
    are."""
    real = getattr(jaxloss, fn)

    def spy(objective, params, inputs, targets, *args, **kwargs):
        seen.append((fn, kwargs.get("mesh"), _placement(params), _placement((inputs, targets))))
        return real(objective, params, inputs, targets, *args, **kwargs)

    return spy


def _run_both(name):
    """`run(args)` of `experiments/<name>.py --quick --no-progress`, without and with
    `--devices 8`: the two results and, per run, what each training call was given."""
    module = load(name)
    results, calls = [], []
    for devices in ([], EIGHT):
        seen = []
        with pytest.MonkeyPatch.context() as patch:
            for fn in TRAINING:
                patch.setattr(jaxloss, fn, _spy(fn, seen))
            results.append(module.run(module.parse_args(["--quick", "--no-progress", *devices])))
        calls.append(seen)
    return module, results, calls


def _check_placement(calls):
    """One device without `--devices`; with it, sweeps get the 8-device mesh (their runs split),
    every other training call data-parallel: data split over 8 devices, parameters on all 8."""
    single, eight = calls
    assert single and len(single) == len(eight)
    for fn, mesh, params, data in single:
        assert mesh is None and params == (1, False) and data == (1, False), fn
    for fn, mesh, params, data in eight:
        if fn == "sweep":
            assert mesh is not None and mesh.size == 8
        else:
            assert mesh is None and params == (8, False) and data == (8, True), fn


def _strict_json(result):
    return json.loads(json.dumps(result, allow_nan=False))


@pytest.fixture(scope="module")
def lr_comparison():
    return _run_both("lr_comparison")


def test_lr_comparison_on_8_devices_gives_the_one_device_numbers(lr_comparison):
    _, (one, eight), calls = lr_comparison
    assert [c[0] for c in calls[1]] == ["sweep", "taylor_check", "lr_range_test"]
    _check_placement(calls)
    assert _strict_json(eight)["args"]["devices"] == 8 and "mesh" not in eight["args"]
    assert one["args"]["devices"] is None
    # Run parallelism: each device runs whole runs of the one-device program.
    np.testing.assert_allclose(
        np.array(eight["final_losses"], np.float64),
        np.array(one["final_losses"], np.float64),
        rtol=1e-6,
    )
    assert eight["best_learning_rate"] == one["best_learning_rate"]
    assert eight["diverged_at"] == one["diverged_at"]
    # Data parallelism: the same sums in another order (float32 roundoff).
    for key in ("loss", "grad_norm_sq", "curvature", "increase_from", "predicted_increase_from"):
        assert eight["taylor_check"][key] == pytest.approx(one["taylor_check"][key], rel=1e-5)
    range_one, range_eight = one["lr_range_test"], eight["lr_range_test"]
    # The last steps, at η near 30, blow up and amplify any roundoff: compare the first half.
    half = len(range_one["losses"]) // 2
    np.testing.assert_allclose(range_eight["losses"][:half], range_one["losses"][:half], rtol=1e-5)
    assert range_eight["suggested_learning_rate"] == pytest.approx(
        range_one["suggested_learning_rate"], rel=1e-6
    )


def test_a_sample_count_the_devices_do_not_divide_names_the_option():
    module = load("mse_vs_cross_entropy")
    args = module.parse_args(["--samples", "500", *EIGHT])  # the default: 8 does not divide it
    with pytest.raises(ValueError, match=r"`--samples` must give a multiple of 8 samples; got 500"):
        module._common.place(args, np.zeros((500, 1), np.float32), option="--samples")


def test_scripts_that_train_nothing_take_the_option_and_ignore_it():
    module = load("loss_gallery")
    args = module.parse_args(EIGHT)
    assert args.mesh is None and args.devices == 8
    assert module._common.arguments(args)["devices"] == 8
