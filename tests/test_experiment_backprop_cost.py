"""experiments/backprop_cost.py --quick: reverse mode against forward mode and finite differences
as the MLP grows; the claim is that forward / reverse grows with the parameter count."""

import numpy as np
import pytest
from experiment_runner import quick_run

KEYS = ("parameters", "reverse_seconds", "forward_seconds", "finite_difference_seconds")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return quick_run("backprop_cost", tmp_path_factory)


def test_keys_and_parameter_counts(quick):
    module, result, _ = quick
    widths = module.QUICK["widths"]
    assert result["widths"] == widths
    for key in (*KEYS, "forward_over_reverse", "finite_difference_over_reverse"):
        assert len(result[key]) == len(widths), key
    # Every quick size is small enough for all three methods: no missing time.
    for key in KEYS[1:]:
        assert all(s is not None and s > 0 for s in result[key]), key
    # MLP [2, H, H, 1]: each layer has (fan_in + 1) * fan_out parameters (weights and biases).
    for width, count in zip(widths, result["parameters"]):
        sizes = [2, width, width, 1]
        assert count == sum((i + 1) * o for i, o in zip(sizes[:-1], sizes[1:]))
    assert result["parameters"][-1] == 32 * 32 + 5 * 32 + 1  # H² + 5H + 1 at H = 32


def test_forward_over_reverse_grows_with_parameters(quick):
    _, result, _ = quick
    ratio = np.asarray(result["forward_over_reverse"])
    np.testing.assert_allclose(
        ratio, np.divide(result["forward_seconds"], result["reverse_seconds"]), rtol=1e-12
    )
    assert ratio[-1] > ratio[0]
    # At P = 1185, P tangents cost far more than one backward pass.
    assert ratio[-1] > 1


def test_the_three_gradients_agree(quick):
    _, result, _ = quick
    # Forward mode is exact up to float32 rounding; central differences with h ≈ 5e-3 are not.
    assert max(result["max_abs_diff"]["forward"]) < 1e-5
    assert max(result["max_abs_diff"]["finite_difference"]) < 1e-2


def test_table(quick):
    module, result, _ = quick
    text = module.table(result)
    assert "parameters" in text and "fwd/rev" in text
    assert len(text.splitlines()) == len(result["widths"]) + 2
