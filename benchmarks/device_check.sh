#!/usr/bin/env bash
# One check of jaxloss on this machine's accelerator: install with the CUDA extra into a fresh
# venv, print jax.devices(), run the test suite and the benchmark harness, and keep every output.
# Without a GPU it says "no GPU found: running the CPU parts" and runs the same CPU parts.
#
#   benchmarks/device_check.sh [OUTPUT_DIR]      # default: device_check_<UTC date>/ here
#
# Environment:
#   DEVICE_CHECK_SKIP_INSTALL=1   use the current `python` (already set up) instead of a new venv
#   DEVICE_CHECK_VENV=DIR         where the venv goes (default: $TMPDIR/jaxloss-device-check-venv)
#   DEVICE_CHECK_PYTEST_ARGS=...  arguments for pytest (default none: the README's whole `pytest`)
#   DEVICE_CHECK_BENCH_ARGS=...   more arguments for `benchmarks/run.py --quick` (e.g. --only fit)
#   DEVICE_CHECK_DEVICES=N        devices for the devices section (default: the GPUs when more
#                                 than one, else 8 CPU devices simulated)
# Outputs in OUTPUT_DIR: summary.txt, nvidia-smi.txt, install.txt, devices.txt, pytest.txt,
# bench_quick.{txt,json}, bench_devices.{txt,json} and, on a GPU, bench_training.{txt,json}.
# Exit status: 0 when every step passed, 1 otherwise (every step runs either way).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-device_check_$(date -u +%Y%m%d_%H%M%S)}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
cd "$root"
: >"$out/summary.txt"
failed=()

log() { echo "[device_check] $*" | tee -a "$out/summary.txt"; }

# step NAME COMMAND...: run it, its output to the terminal and to $out/NAME.txt; a failure is
# recorded, not fatal, so that one broken part does not hide the others.
step() {
    local name=$1 rc
    shift
    log "$name: $*"
    set +e
    "$@" 2>&1 | tee "$out/$name.txt"
    rc=${PIPESTATUS[0]}
    set -e
    if ((rc == 0)); then
        log "$name: ok"
    else
        log "$name: FAILED (exit $rc; see $name.txt)"
        failed+=("$name")
    fi
}

gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >"$out/nvidia-smi.txt" 2>&1; then
    gpu=1
else
    echo "nvidia-smi: not found or failing" >"$out/nvidia-smi.txt"
    log "no nvidia-smi: no GPU here"
fi

if [[ "${DEVICE_CHECK_SKIP_INSTALL:-0}" == 1 ]]; then
    python="$(command -v python || command -v python3)"
    log "install: skipped (DEVICE_CHECK_SKIP_INSTALL=1), using $python"
else
    venv="${DEVICE_CHECK_VENV:-${TMPDIR:-/tmp}/jaxloss-device-check-venv}"
    extras=dev
    ((gpu)) && extras=cuda,dev
    step install bash -c "python3 -m venv --clear '$venv' && '$venv/bin/pip' install -e '.[$extras]'"
    if ((${#failed[@]})); then
        log "done: FAILED: install (pip needs the network, or a local wheel index); outputs in $out"
        exit 1
    fi
    python="$venv/bin/python"
fi

show='import jax; jax.print_environment_info(); print("jax.devices():", jax.devices())'
show+='; print("default backend:", jax.default_backend()); print("device count:", jax.device_count())'
step devices "$python" -c "$show"
backend="$(sed -n 's/^default backend: //p' "$out/devices.txt")"
if ((gpu)) && [[ "$backend" != gpu ]]; then
    log "nvidia-smi sees a GPU but JAX does not (default backend: ${backend:-none})"
    gpu=0
fi
if ((gpu)); then
    gpus="$(sed -n 's/^device count: //p' "$out/devices.txt")"
    log "GPU found: $gpus device(s)"
else
    log "no GPU found: running the CPU parts"
fi

# The suite as the README runs it (`pytest`: tests, doctests, README blocks, xdist workers).
# Several workers share one GPU: no worker may take 75% of its memory up front.
read -ra pytest_args <<<"${DEVICE_CHECK_PYTEST_ARGS:-}"
step pytest env XLA_PYTHON_CLIENT_PREALLOCATE=false "$python" -m pytest "${pytest_args[@]}"

# Every row at tiny sizes, the sweep rows included (sweep against K sequential fit calls).
read -ra bench_args <<<"${DEVICE_CHECK_BENCH_ARGS:-}"
step bench_quick "$python" benchmarks/run.py --quick "${bench_args[@]}" \
    --json "$out/bench_quick.json"

# fit (data parallel) and sweep(mesh=...) on 1, 2, 4, ... devices: the GPUs when there are
# several, else CPU devices simulated (they share the cores: agreement, not speed).
devices="${DEVICE_CHECK_DEVICES:-}"
platform=()
if ((gpu)) && ((gpus > 1)); then
    devices="${devices:-$gpus}"
else
    devices="${devices:-8}"
    platform=(env JAX_PLATFORMS=cpu)
fi
step bench_devices "${platform[@]}" "$python" benchmarks/run.py --quick --devices "$devices" \
    --only devices --json "$out/bench_devices.json"

if ((gpu)); then
    # The training rows at full size (N=512, 300 steps, K=16): sweep against sequential fits.
    step bench_training "$python" benchmarks/run.py --only training \
        --json "$out/bench_training.json"
fi

if ((${#failed[@]})); then
    log "done: FAILED: ${failed[*]}; outputs in $out"
    exit 1
fi
log "done: every step passed; outputs in $out"
