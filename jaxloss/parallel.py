"""Data parallelism with JAX's own engine: a 1-D device mesh, a batch split across it, parameters
replicated on it (`jax.sharding`; XLA's SPMD partitioner does the rest).

The lecture's identity makes this exact: the objective is a sum of per-sample losses, so the sum
over devices of per-device sums is the total, and so is the gradient. Nothing else changes:
`objective`, `jax.grad`, `sgd_step`, `fit`, `sweep` and `taylor_check` take sharded arrays as they
are, and the compiled step gains one cross-device sum (all-reduce) of the gradient.

    mesh = jaxloss.data_parallel_mesh()                   # every device, axis "data"
    inputs, targets = jaxloss.shard_batch(mesh, inputs, targets)
    params = jaxloss.replicate(mesh, params)
    result = jaxloss.fit(f, params, inputs, targets, learning_rate=0.1, steps=100)

Quantities that do not split into per-sample sums (dice over a batch, an RMSE, mined cross entropy
normalised by the batch's positives) stay exact too: under `jax.jit` the partitioner sums their
statistics (intersections, squared errors, positives) across devices, never per-device losses.

On a CPU, simulate devices for a test: `jax.config.update("jax_num_cpu_devices", 8)` (or
`XLA_FLAGS=--xla_force_host_platform_device_count=8`) before the first JAX computation. Across
hosts: call `jax.distributed.initialize()` first; the mesh then spans every host's devices and
`shard_batch` takes each process's own slice of the batch.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxloss import _checks

DATA_AXIS = "data"
_SIMULATED_FLAG = "--xla_force_host_platform_device_count"


def data_parallel_mesh(num_devices: int | None = None, *, simulate_on_cpu: bool = False) -> Mesh:
    """A 1-D `jax.sharding.Mesh` over the first `num_devices` devices, its axis named `"data"`.

    Args:
        num_devices: how many of `jax.devices()` (the default backend's, every host's) to use, an
            integer in [1, jax.device_count()]; None (default) uses them all.
        simulate_on_cpu: if JAX has not computed anything yet, first ask for `num_devices` CPU
            devices (`jax_num_cpu_devices`; they share the host's cores: for trying code meant for
            many devices, not for speed). They are what you get when the CPU is JAX's platform
            (no accelerator, or `JAX_PLATFORMS=cpu`). Ignored once JAX has started, or when
            `XLA_FLAGS` already sets `--xla_force_host_platform_device_count`.

    Returns:
        `Mesh(devices, ("data",))`, with JAX's automatic (GSPMD) sharding propagation.

    Raises:
        ValueError: if `num_devices` is out of range (the message says how to get more CPU
            devices).

    Example:
        >>> mesh = jaxloss.data_parallel_mesh(1)
        >>> mesh.axis_names, mesh.size
        (('data',), 1)
    """
    if simulate_on_cpu and num_devices is not None:
        _ask_for_cpu_devices(num_devices)
    available = jax.device_count()
    if num_devices is None:
        num_devices = available
    num_devices = _checks.integer("data_parallel_mesh", "num_devices", num_devices, low=1)
    if num_devices > available:
        raise ValueError(
            f"jaxloss.data_parallel_mesh: `num_devices` must be at most the {available} "
            f"device(s) JAX sees ({jax.devices()}); got {num_devices}. On a CPU, simulate more "
            f'with jax.config.update("jax_num_cpu_devices", {num_devices}) (or XLA_FLAGS='
            f"--xla_force_host_platform_device_count={num_devices}) before JAX's first "
            "computation."
        )
    return Mesh(np.asarray(jax.devices()[:num_devices]), (DATA_AXIS,))


def _ask_for_cpu_devices(num_devices: int) -> None:
    if _SIMULATED_FLAG in os.environ.get("XLA_FLAGS", "") or jax.config.jax_num_cpu_devices > 0:
        return
    try:
        jax.config.update("jax_num_cpu_devices", num_devices)
    except RuntimeError:  # JAX has started: the devices it has are the ones to use
        pass


def _mesh(fn: str, mesh: Any) -> Mesh:
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"jaxloss.{fn}: `mesh` must be a jax.sharding.Mesh (e.g. jaxloss.data_parallel_mesh()"
            f"); got {type(mesh).__name__}."
        )
    return mesh


def _batch_axis(mesh: Mesh) -> str | tuple[str, ...]:
    """The mesh axis (or axes) the batch is split over: "data" if the mesh has it, else all."""
    if DATA_AXIS in mesh.axis_names:
        return DATA_AXIS
    return mesh.axis_names if len(mesh.axis_names) > 1 else mesh.axis_names[0]


def _shard_count(mesh: Mesh) -> int:
    axis = _batch_axis(mesh)
    names = axis if isinstance(axis, tuple) else (axis,)
    return int(np.prod([mesh.shape[name] for name in names]))


def shard_batch(mesh: Mesh, *arrays: Any) -> Any:
    """The arrays (or pytrees of arrays) with their leading (sample) axis split across `mesh`.

    Device d of D holds samples `[d·N/D, (d+1)·N/D)` of every leaf (a `NamedSharding` with
    `PartitionSpec("data")`). With several processes (`jax.distributed`), each passes its own
    slice of the batch and gets back the global array.

    Args:
        mesh: from `data_parallel_mesh` (or any mesh: the batch is split over its "data" axis,
            or over all its axes when it has none of that name).
        *arrays: arrays or pytrees of arrays, each leaf with a leading axis N divisible by the
            number of devices.

    Returns:
        The one sharded array (pytree) for one argument; a tuple of them for several.

    Raises:
        ValueError: if a leaf has no leading axis or its length is not divisible by the device
            count (the message says how to fix it); TypeError for a non-array leaf.

    Example:
        >>> mesh = jaxloss.data_parallel_mesh(1)
        >>> x, y = jaxloss.shard_batch(mesh, jnp.ones((4, 2)), jnp.arange(4))
        >>> x.sharding.spec
        P('data',)
    """
    mesh = _mesh("shard_batch", mesh)
    if not arrays:
        raise ValueError("jaxloss.shard_batch: give at least one array to shard; got none.")
    devices = _shard_count(mesh)
    sharding = NamedSharding(mesh, PartitionSpec(_batch_axis(mesh)))
    local = jax.process_count() > 1

    def put(path, leaf):
        name = f"arrays[{path[0].idx}]" + jax.tree_util.keystr(path[1:])
        if not _is_array_like(leaf):
            raise TypeError(
                f"jaxloss.shard_batch: every leaf must be an array; `{name}` is "
                f"{type(leaf).__name__}."
            )
        shape = np.shape(leaf)
        if not shape:
            raise ValueError(
                f"jaxloss.shard_batch: `{name}` must have a leading sample axis to split; got a "
                "scalar."
            )
        if shape[0] % (1 if local else devices):
            fit = shape[0] - shape[0] % devices
            raise ValueError(
                f"jaxloss.shard_batch: the leading axis of `{name}` must be divisible by the "
                f"{devices} devices of the mesh; got {shape[0]} samples. Drop the last "
                f"{shape[0] % devices} (x[:{fit}]), pad to {fit + devices}, or use a mesh of a "
                f"divisor of {shape[0]} devices."
            )
        if local:
            return jax.make_array_from_process_local_data(sharding, np.asarray(leaf))
        return jax.device_put(leaf, sharding)

    placed = jax.tree_util.tree_map_with_path(put, arrays)
    return placed[0] if len(arrays) == 1 else placed


def replicate(mesh: Mesh, params: Any) -> Any:
    """`params` with every array leaf copied to every device of `mesh` (`PartitionSpec()`);
    other leaves (Python callables, numbers) unchanged.

    Example:
        >>> params = jaxloss.replicate(jaxloss.data_parallel_mesh(1), {"w": jnp.ones(3)})
        >>> params["w"].sharding.is_fully_replicated
        True
    """
    mesh = _mesh("replicate", mesh)
    sharding = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(
        lambda leaf: jax.device_put(leaf, sharding) if _is_array_like(leaf) else leaf, params
    )


def _is_array_like(leaf: Any) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic))


def _minibatch_sharding(inputs: Any, targets: Any, batch_size: int | None) -> NamedSharding | None:
    """The sharding a minibatch of `batch_size` drawn from `inputs`/`targets` keeps, so that the
    gradient of each step is computed data-parallel: the leading-axis sharding every leaf shares,
    when `batch_size` divides among its devices; else None (the minibatch is then replicated)."""
    if batch_size is None:
        return None
    found = set()
    for leaf in jax.tree_util.tree_leaves((inputs, targets)):
        sharding = getattr(leaf, "sharding", None)
        if not isinstance(sharding, NamedSharding) or not sharding.spec or not sharding.spec[0]:
            return None
        found.add((sharding.mesh, sharding.spec[0]))
    if len(found) != 1:
        return None
    mesh, axis = found.pop()
    names = axis if isinstance(axis, tuple) else (axis,)
    devices = int(np.prod([mesh.shape[name] for name in names]))
    if batch_size % devices:
        return None
    return NamedSharding(mesh, PartitionSpec(axis))
