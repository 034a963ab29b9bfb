"""The benchmark harness `benchmarks/run.py` runs end to end on tiny sizes and writes every row.

Speed is measured by the harness, never asserted here: these tests check its plumbing (rows,
finite positive times, ratios that are the quotients of the times, the JSON and the table).
"""

import contextlib
import importlib.util
import io
import json
import math
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

import jaxloss

RUN_PY = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"

# The loss rows the issue asks for, one per public jaxloss loss (kept by hand: a new loss must get
# a row; `test_every_public_loss_has_a_row` catches one that does not), each with
# (has an optax or one-line jnp baseline, has a PyTorch equivalent).
LOSS_ROWS = {
    "sigmoid_binary_cross_entropy": (True, True),
    "sigmoid_focal_loss": (True, False),
    "softmax_cross_entropy": (True, True),
    "softmax_cross_entropy_with_integer_labels": (True, True),
    "integer_cross_entropy_smoothed_0.1": (True, True),
    "softmax_focal_loss": (False, False),
    "softmax_focal_loss_with_integer_labels": (False, False),
    "squared_error": (True, True),
    "mse": (True, True),
    "rmse": (True, True),
    "absolute_error": (True, True),
    "mae": (True, True),
    "huber_loss": (True, True),
    "dice_loss": (True, False),
    "tversky_loss": (True, False),
    "jaccard_loss": (True, False),
    "bernoulli_nll": (True, True),
    "categorical_nll": (True, True),
    "gaussian_nll": (False, True),
    "laplace_nll": (False, False),
    "mined_cross_entropy": (False, False),
    "poly_loss_cross_entropy": (True, False),
    "l2_loss": (True, True),
    "log_cosh": (True, False),
    "cosine_similarity": (True, True),
    "cosine_distance": (True, False),
    "generalized_dice_loss": (False, False),
}
FLOOR_ROWS = {"floor_sum", "floor_softmax"}
TRAINING_ROWS = {"fit", "sweep", "sweep_vmapped", "taylor_check"}
SIZE = "16x4"


def _load_harness():
    # benchmarks/ is not a package: load run.py from its path, as `python benchmarks/run.py` would.
    spec = importlib.util.spec_from_file_location("jaxloss_benchmarks_run", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# Session scope: the one --quick run is made once per worker, whatever order the tests run in.
@pytest.fixture(scope="session")
def harness():
    return _load_harness()


def _main(harness, argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = harness.main(argv)
    return result, out.getvalue()


@pytest.fixture(scope="session")
def quick(harness, tmp_path_factory):
    """One --quick run of every row at a tiny size: (returned dict, JSON on disk, printed text)."""
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    # Nothing is timed here, so let XLA skip most optimisations: it halves the compile time.
    previous = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        argv = ["--quick", "--sizes", SIZE, "--repeats", "2", "--json", str(path)]
        result, printed = _main(harness, argv)
    finally:
        jax.config.update("jax_disable_most_optimizations", previous)
    return result, json.loads(path.read_text()), printed


def _rows(data):
    return {row["name"]: row for row in data["rows"]}


def test_every_row_is_in_the_json(quick):
    result, data, _ = quick
    assert data == result  # what main returns is what it wrote
    rows = _rows(data)
    assert set(rows) == set(LOSS_ROWS) | FLOOR_ROWS | TRAINING_ROWS
    assert len(data["rows"]) == len(rows)  # one size, so one row per name
    for name in set(LOSS_ROWS) | FLOOR_ROWS:
        assert rows[name]["size"] == SIZE
    assert {r["group"] for r in data["rows"]} == {"losses", "floors", "training"}


def test_every_public_loss_has_a_row():
    loss_modules = {"jaxloss.regression", "jaxloss.classification", "jaxloss.segmentation"}
    loss_modules |= {"jaxloss.likelihood", "jaxloss.mining"}
    not_losses = {"smooth_labels", "hard_negative_mask", "ohem_mask"}
    public = {
        name
        for name in jaxloss.__all__
        if getattr(jaxloss, name).__module__ in loss_modules and name not in not_losses
    }
    assert public <= set(LOSS_ROWS)


def test_times_are_finite_and_positive(quick):
    _, data, _ = quick
    for row in data["rows"]:
        for what, value in [*row["ms"].items(), *row["compile_s"].items()]:
            assert math.isfinite(value) and value > 0, (row["name"], what, value)
        for what, value in row.get("temp_mib", {}).items():
            assert math.isfinite(value) and value >= 0, (row["name"], what, value)


def test_ratios_are_the_quotients_of_the_times(quick):
    _, data, _ = quick
    for row in data["rows"]:
        for key, value in row["ratios"].items():
            numerator, denominator = key.split("/")
            expected = row["ms"][numerator] / row["ms"][denominator]
            assert value == pytest.approx(expected, rel=1e-12), (row["name"], key)


def test_each_row_has_its_comparisons(quick, harness):
    _, data, _ = quick
    rows = _rows(data)
    torch_installed = harness.torch is not None
    for name, (with_baseline, with_torch) in LOSS_ROWS.items():
        row = rows[name]
        expected = {"jaxloss/floor"}
        if with_baseline:
            expected.add("baseline/jaxloss")
            assert set(row["temp_mib"]) == set(row["compile_s"]) == {"jaxloss", "baseline"}
        else:
            assert row["baseline"] == "—" and "baseline" not in row["ms"]
        if with_torch and torch_installed:
            expected.add("torch/jaxloss")
        elif with_torch:
            assert row["torch"] == "not installed" and "torch" not in row["ms"]
        else:
            assert row["torch"] == "—"
        assert set(row["ratios"]) == expected, name
        assert row["floor"] in {"sum", "softmax"}
    for name in TRAINING_ROWS:
        assert "baseline/jaxloss" in rows[name]["ratios"]
    assert ("torch/jaxloss" in rows["fit"]["ratios"]) == torch_installed


def test_meta_and_printed_table(quick):
    _, data, printed = quick
    meta = data["meta"]
    assert meta["jax"] == jax.__version__ and meta["repeats"] == 2 and meta["sizes"] == [SIZE]
    assert meta["cpu_count"] >= 1 and meta["backend"] == jax.default_backend()
    assert "--quick" in meta["command"]
    header, *body = printed.splitlines()
    assert header.startswith(f"jax {jax.__version__}, optax ")
    table = [line for line in body if line.startswith("| ")]
    assert len(table) == 1 + len(data["rows"])  # the column header, then one line per row
    for line, row in zip(table[1:], data["rows"]):
        assert line.startswith(f"| {row['name']} | {row['size']} |")


def test_only_selects_by_name_or_group(harness, tmp_path):
    path = tmp_path / "only.json"
    result, _ = _main(harness, ["--only", "floor_sum", "--sizes", "8x2", "--json", str(path)])
    assert [r["name"] for r in result["rows"]] == ["floor_sum"]
    assert harness._selected(["losses"], "losses", "mse")
    assert harness._selected(["softmax"], "losses", "softmax_focal_loss")
    assert not harness._selected(["training"], "losses", "mse")
    with pytest.raises(SystemExit, match="no row matches"):
        _main(harness, ["--only", "no-such-row", "--json", str(path)])


@pytest.mark.parametrize("sizes", ["4096", "4096x1", "ax3", "0x8"])
def test_bad_sizes_are_rejected(harness, sizes, capsys):
    with pytest.raises(SystemExit):
        harness.parse_args(["--sizes", sizes])
    assert "--sizes" in capsys.readouterr().err


def test_pairs_that_disagree_are_not_timed(harness):
    same = (np.float32(2.0), np.ones(3, np.float32))
    harness._agree("row", "optax", same, (2.0001, np.ones(3)), rtol=1e-3)
    with pytest.raises(AssertionError, match="row: jaxloss and optax disagree \\(gradient"):
        harness._agree("row", "optax", same, (2.0, np.zeros(3) + 0.5), rtol=1e-3)


# ------------------------------------------------------------------- devices and device_check.sh

DEVICE_CHECK = RUN_PY.parent / "device_check.sh"
DEVICE_ROWS = {"fit_data_parallel", "sweep_mesh"}
SIMULATED_2 = "simulated on CPU (2 devices share the host's cores: no speed-up expected)"


@pytest.fixture(scope="session")
def device_check(tmp_path_factory):
    """One run of benchmarks/device_check.sh in its cheapest form: the current python,
    `pytest --version` for the suite, one floor row, and the devices section on 2 simulated CPU
    devices (`--quick --devices 2 --only devices`, in its own process as it must be: the count is
    fixed when JAX starts). JAX_PLATFORMS=cpu hides any GPU, so the CPU path runs everywhere.
    Returns (completed process, output folder)."""
    out = tmp_path_factory.mktemp("device_check") / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        JAX_PLATFORMS="cpu",
        # Nothing is timed here: compile with most XLA optimisations off (half the time).
        JAX_DISABLE_MOST_OPTIMIZATIONS="1",
        DEVICE_CHECK_SKIP_INSTALL="1",
        # The pytest step's plumbing only (the suite is this session): `pytest --version`.
        DEVICE_CHECK_PYTEST_ARGS="--version",
        DEVICE_CHECK_BENCH_ARGS="--only floor_sum --sizes 8x2 --repeats 1",
        DEVICE_CHECK_DEVICES="2",
        PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
    )
    done = subprocess.run(
        [str(DEVICE_CHECK), str(out)],
        cwd=RUN_PY.parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done, out


def test_device_check_runs_the_cpu_parts_without_a_gpu(device_check):
    done, out = device_check
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    summary = (out / "summary.txt").read_text()
    assert "no GPU found: running the CPU parts" in summary
    for step in ("devices", "pytest", "bench_quick", "bench_devices"):
        assert f"{step}: ok" in summary, summary
        assert (out / f"{step}.txt").is_file()
    assert "bench_training" not in summary  # GPU only
    assert "default backend: cpu" in (out / "devices.txt").read_text()
    assert "pytest" in (out / "pytest.txt").read_text()
    quick_rows = json.loads((out / "bench_quick.json").read_text())["rows"]
    assert [(r["name"], r["size"]) for r in quick_rows] == [("floor_sum", "8x2")]


def test_devices_rows_run_and_agree(device_check):
    _, out = device_check
    data = json.loads((out / "bench_devices.json").read_text())
    meta = data["meta"]
    assert (meta["devices"], meta["device_count"], meta["backend"]) == (2, 2, "cpu")
    rows = {(r["name"], r["devices"]): r for r in data["rows"]}
    assert set(rows) == {(name, d) for name in DEVICE_ROWS for d in (1, 2)}
    for (name, d), row in rows.items():
        assert row["group"] == "devices"
        expected = SIMULATED_2 if d == 2 else "simulated on CPU (1 device: the reference)"
        assert row["where"] == expected, (name, d)
        # Float32 roundoff only: the same 20 steps (4 rates for the sweep) on 1 and 2 devices.
        assert row["agrees"] is not None and 0 <= row["agrees"] < 1e-5, (name, d, row["agrees"])
        ratio = row["ratios"]["baseline/jaxloss"]
        assert math.isfinite(ratio) and ratio > 0
        assert ratio == pytest.approx(row["ms"]["baseline"] / row["ms"]["jaxloss"], rel=1e-12)
        # The 1-device figure is the d = 1 row's own median, from the same round-robin.
        assert row["ms"]["baseline"] == rows[name, 1]["ms"]["jaxloss"]
        assert math.isfinite(row["compile_s"]["jaxloss"]) and row["compile_s"]["jaxloss"] > 0
    assert rows["fit_data_parallel", 1]["agrees"] == 0 and rows["sweep_mesh", 1]["ratios"] == {
        "baseline/jaxloss": 1.0
    }
    printed = (out / "bench_devices.txt").read_text()
    table = [line for line in printed.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| row | devices | size | ms | 1-device ms |")
    assert len(table) == 1 + len(data["rows"])
    assert sum(SIMULATED_2 in line for line in table) == 2


def test_device_counts_and_loss_differences(harness):
    assert harness._device_counts(1) == [1]
    assert harness._device_counts(8) == [1, 2, 4, 8]
    assert harness._device_counts(6) == [1, 2, 4, 6]
    nan = float("nan")
    assert harness._max_abs_difference([1.0, 2.0, nan], [1.5, 1.75, nan]) == 0.5
    assert harness._max_abs_difference([1.0, nan], [1.0, 3.0]) is None  # diverged in one only


def test_devices_option_is_checked(harness, capsys):
    with pytest.raises(SystemExit):  # 64 samples (--quick) do not split over 3 devices
        harness.parse_args(["--quick", "--devices", "3"])
    assert "--devices must divide the training problem's 64 samples" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="the devices rows need --devices N > 1"):
        _main(harness, ["--only", "devices"])
