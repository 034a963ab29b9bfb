"""Small seeded synthetic data sets, returned as arrays (float32 inputs, int32 class labels).

Every random data set takes `key`: a `jax.random` key or an int seed; the same key gives the same
arrays. Shapes fit `jaxloss.mlp` and `jaxloss.objective`: one row per sample.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _checks


def _uniform_parts(key: jax.Array, *shapes: tuple[int, ...]) -> list[jax.Array]:
    """Uniform [0, 1) float32 arrays of the given shapes, all cut from ONE flat threefry draw.

    XLA on CPU takes about a second to compile each threefry draw (more for multi-axis shapes), so
    every generator makes a single draw and transforms its parts.
    """
    sizes = [math.prod(shape) for shape in shapes]
    flat = jax.random.uniform(key, (sum(sizes),), jnp.float32)
    parts = jnp.split(flat, np.cumsum(sizes)[:-1].tolist())
    return [part.reshape(shape) for part, shape in zip(parts, shapes)]


def _as_normal(u: jax.Array) -> jax.Array:
    """N(0, 1) from U[0, 1) by the inverse CDF, √2·erfinv(2u − 1), as `jax.random.normal` does."""
    return math.sqrt(2) * jax.lax.erf_inv(jnp.maximum(2 * u - 1, _ABOVE_MINUS_ONE))


_ABOVE_MINUS_ONE = float(np.nextafter(np.float32(-1), np.float32(0)))  # erfinv(-1) = -inf


def xor(*, dtype: Any = jnp.float32) -> tuple[jax.Array, jax.Array]:
    """The XOR truth table: the smallest problem a linear model cannot fit.

    Returns:
      `(inputs, targets)`: inputs `(4, 2)` with rows 00, 01, 10, 11; targets `(4, 1)` = 0, 1, 1, 0
      as floats (one value per sample, the shape of `mlp([2, h, 1])`'s output, for MSE or sigmoid
      cross entropy; `targets[:, 0].astype(int)` gives integer labels).

    Example:
      >>> inputs, targets = jaxloss.xor()
      >>> targets[:, 0]
      Array([0., 1., 1., 0.], dtype=float32)

    Reference: Minsky & Papert, Perceptrons (1969).
    """
    inputs = jnp.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype)
    targets = jnp.array([[0], [1], [1], [0]], dtype)
    return inputs, targets


def spirals(
    n: int, *, classes: int = 2, noise: float = 0.1, turns: float = 1.0, key: Any
) -> tuple[jax.Array, jax.Array]:
    """Interleaved 2-D spirals, one arm per class: not linearly separable.

    Sample i belongs to class `i % classes` (so classes are balanced to within one sample) and
    lies at radius t ~ U(0, 1), angle `2π (class/classes + turns·t)`, plus N(0, noise²) on each
    coordinate.

    Args:
      n: number of samples (>= 1).
      classes: number of arms (>= 2).
      noise: standard deviation of the coordinate noise (>= 0); the spiral has radius 1.
      turns: how many full turns each arm makes (> 0).
      key: `jax.random` key or int seed.

    Returns:
      `(inputs, labels)`: float32 `(n, 2)` and int32 `(n,)` in [0, classes).

    Example:
      >>> x, y = jaxloss.spirals(300, classes=3, noise=0.05, key=0)
      >>> x.shape, y.shape
      ((300, 2), (300,))

    Reference: the CS231n spiral data set (Karpathy), with noise on the coordinates.
    """
    fn = "spirals"
    n = _checks.positive_int(fn, "n", n)
    classes = _checks.integer(fn, "classes", classes, low=2)
    _checks.in_range(fn, "noise", noise, low=0.0)
    _checks.in_range(fn, "turns", turns, low=0.0, low_inclusive=False)
    return _spirals(n, classes, noise, turns, _checks.prng_key(fn, "key", key))


# Each generator is one jitted program (sizes static): eager op-by-op dispatch compiles every
# small op separately and is many times slower for a fresh shape.
@functools.partial(jax.jit, static_argnums=(0, 1))
def _spirals(n, classes, noise, turns, key):
    t, u_noise = _uniform_parts(key, (n,), (n, 2))
    labels = jnp.arange(n, dtype=jnp.int32) % classes
    angle = 2 * jnp.pi * (labels.astype(jnp.float32) / classes + turns * t)
    inputs = jnp.stack([t * jnp.cos(angle), t * jnp.sin(angle)], axis=-1)
    inputs = inputs + noise * _as_normal(u_noise)
    return inputs.astype(jnp.float32), labels


def linear_regression(
    n: int, dim: int, *, noise: float = 0.1, key: Any
) -> tuple[jax.Array, jax.Array, list[dict[str, jax.Array]]]:
    """Samples of a random affine function with Gaussian noise: `y = x·w + b + ε`, ε ~ N(0, noise²).

    Least squares is the maximum-likelihood fit here, so `mse` recovers `w` and `b`.

    Args:
      n: number of samples (>= 1).
      dim: input dimension (>= 1).
      noise: standard deviation of ε (>= 0).
      key: `jax.random` key or int seed.

    Returns:
      `(inputs, targets, true_params)`: float32 inputs `(n, dim)` ~ N(0, 1), targets `(n, 1)`, and
      the true weights as `jaxloss.linear(dim, 1)` params, `[{"w": (dim, 1), "b": (1,)}]`, so
      `apply_fn(true_params, inputs)` is the noiseless target.

    Example:
      >>> x, y, true_params = jaxloss.linear_regression(100, 3, noise=0.1, key=0)
      >>> x.shape, y.shape, true_params[0]["w"].shape
      ((100, 3), (100, 1), (3, 1))
    """
    fn = "linear_regression"
    n = _checks.positive_int(fn, "n", n)
    dim = _checks.positive_int(fn, "dim", dim)
    _checks.in_range(fn, "noise", noise, low=0.0)
    return _linear_regression(n, dim, noise, _checks.prng_key(fn, "key", key))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _linear_regression(n, dim, noise, key):
    inputs, w, b, eps = map(_as_normal, _uniform_parts(key, (n, dim), (dim, 1), (1,), (n, 1)))
    targets = inputs @ w + b[None, :] + noise * eps
    return inputs, targets.astype(jnp.float32), [{"w": w, "b": b}]


def imbalanced_anchors(
    n_samples: int,
    n_anchors: int,
    *,
    positive_rate: float = 0.05,
    classes: int = 2,
    dim: int = 8,
    separation: float = 2.0,
    key: Any,
) -> tuple[jax.Array, jax.Array]:
    """Detection-like anchors: per-anchor features and labels where positives are rare.

    Each anchor is independently an object with probability `positive_rate` (class uniform in
    1..classes−1) and background (class 0) otherwise, so the number of positives per sample varies
    and may be 0. Its feature vector is its class centre plus N(0, 1) noise; the centres are
    N(0, separation²) per coordinate, so the classes overlap and some negatives are hard.

    Args:
      n_samples: number of samples (images), >= 1.
      n_anchors: anchors per sample, >= 1.
      positive_rate: probability that an anchor is an object, in [0, 1].
      classes: number of classes including background 0 (>= 2).
      dim: feature dimension (>= 1).
      separation: scale of the class centres (>= 0); larger is easier.
      key: `jax.random` key or int seed.

    Returns:
      `(features, labels)`: float32 `(n_samples, n_anchors, dim)` and int32
      `(n_samples, n_anchors)`, 0 = background. A per-anchor linear classifier
      `mlp([dim, classes])` maps a sample's features to `(n_anchors, classes)` logits for
      `jaxloss.mined_cross_entropy` or a focal loss.

    Example:
      >>> feats, labels = jaxloss.imbalanced_anchors(4, 100, positive_rate=0.05, classes=3, key=0)
      >>> feats.shape, labels.shape
      ((4, 100, 8), (4, 100))

    Reference: the 1:1000-ish foreground:background imbalance of SSD/RetinaNet anchors.
    """
    fn = "imbalanced_anchors"
    n_samples = _checks.positive_int(fn, "n_samples", n_samples)
    n_anchors = _checks.positive_int(fn, "n_anchors", n_anchors)
    classes = _checks.integer(fn, "classes", classes, low=2)
    dim = _checks.positive_int(fn, "dim", dim)
    _checks.in_range(fn, "positive_rate", positive_rate, low=0.0, high=1.0)
    _checks.in_range(fn, "separation", separation, low=0.0)
    return _imbalanced_anchors(
        n_samples,
        n_anchors,
        classes,
        dim,
        positive_rate,
        separation,
        _checks.prng_key(fn, "key", key),
    )


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _imbalanced_anchors(n_samples, n_anchors, classes, dim, positive_rate, separation, key):
    shape = (n_samples, n_anchors)
    u_pos, u_cls, u_centre, u_noise = _uniform_parts(
        key, shape, shape, (classes, dim), (*shape, dim)
    )
    is_object = u_pos < positive_rate
    # Uniform in 1..classes-1: floor of a uniform draw on [1, classes).
    object_class = jnp.minimum(jnp.floor(1 + (classes - 1) * u_cls), classes - 1)
    labels = jnp.where(is_object, object_class.astype(jnp.int32), 0)
    centres = separation * _as_normal(u_centre)
    features = centres[labels] + _as_normal(u_noise)
    return features, labels


def segmentation_blobs(
    n: int, size: int, *, max_blobs: int = 3, noise: float = 0.3, key: Any
) -> tuple[jax.Array, jax.Array]:
    """Noisy images of 0 to `max_blobs` discs and their binary masks (some masks are empty).

    Each image gets a number of discs uniform in {0, ..., max_blobs} (so about 1/(max_blobs+1) of
    the masks are empty: the case where dice is undefined without smoothing), with centres uniform
    in the image and radii uniform in [size/10, size/4] (at least 1 pixel). The image is the mask
    plus N(0, noise²) pixel noise.

    Args:
      n: number of images (>= 1).
      size: height = width in pixels (>= 4).
      max_blobs: largest number of discs per image (>= 1).
      noise: pixel noise standard deviation (>= 0).
      key: `jax.random` key or int seed.

    Returns:
      `(images, masks)`: float32 `(n, size, size)` each; masks hold 0.0 or 1.0.

    Example:
      >>> images, masks = jaxloss.segmentation_blobs(8, 16, key=0)
      >>> images.shape, masks.shape
      ((8, 16, 16), (8, 16, 16))
    """
    fn = "segmentation_blobs"
    n = _checks.positive_int(fn, "n", n)
    size = _checks.integer(fn, "size", size, low=4)
    max_blobs = _checks.positive_int(fn, "max_blobs", max_blobs)
    _checks.in_range(fn, "noise", noise, low=0.0)
    return _segmentation_blobs(n, size, max_blobs, noise, _checks.prng_key(fn, "key", key))


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _segmentation_blobs(n, size, max_blobs, noise, key):
    u_count, u_centre, u_radius, u_noise = _uniform_parts(
        key, (n,), (n, max_blobs, 2), (n, max_blobs), (n, size, size)
    )
    count = jnp.floor((max_blobs + 1) * u_count)
    # Static shapes: draw max_blobs discs per image and switch off those beyond its count.
    active = jnp.arange(max_blobs)[None, :] < count[:, None]  # (n, max_blobs)
    centres = size * u_centre
    r_low, r_high = max(1.0, size / 10), max(1.0, size / 4)
    radii = r_low + (r_high - r_low) * u_radius
    grid = jnp.arange(size, dtype=jnp.float32) + 0.5  # pixel centres
    dy = grid[None, None, :, None] - centres[:, :, 0, None, None]  # (n, max_blobs, size, 1)
    dx = grid[None, None, None, :] - centres[:, :, 1, None, None]  # (n, max_blobs, 1, size)
    inside = dy * dy + dx * dx <= jnp.square(radii)[:, :, None, None]
    masks = jnp.any(inside & active[:, :, None, None], axis=1).astype(jnp.float32)
    images = masks + noise * _as_normal(u_noise)
    return images, masks
