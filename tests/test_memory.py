"""What makes the classification losses fast, asserted (speed itself is the benchmark's job):
the temporaries of each loss's compiled value_and_grad are at most optax's for the same maths.

On large arrays the number of N x C buffers decides the time (a fresh buffer costs page faults
about as much as the arithmetic), so a regression here is a regression in speed.
"""

import functools

import jax
import jax.numpy as jnp
import optax
import pytest

import jaxloss

N, C = 2048, 512  # 4 MiB per N x C float32 buffer: large enough for XLA's real fusion decisions

CASES = {  # name: (jaxloss, optax), both f(logits, labels); labels kind
    "softmax_ce_integer": (
        jaxloss.softmax_cross_entropy_with_integer_labels,
        optax.softmax_cross_entropy_with_integer_labels,
        "int",
    ),
    "softmax_ce_probabilities": (
        jaxloss.softmax_cross_entropy,
        optax.softmax_cross_entropy,
        "prob",
    ),
    "softmax_ce_integer_smoothed": (
        lambda x, lab: jaxloss.softmax_cross_entropy_with_integer_labels(
            x, lab, label_smoothing=0.1
        ),
        lambda x, lab: optax.softmax_cross_entropy(
            x, optax.smooth_labels(jax.nn.one_hot(lab, C), 0.1)
        ),
        "int",
    ),
    "sigmoid_bce": (
        jaxloss.sigmoid_binary_cross_entropy,
        optax.sigmoid_binary_cross_entropy,
        "prob",
    ),
    "sigmoid_focal": (
        lambda x, y: jaxloss.sigmoid_focal_loss(x, y, gamma=2.0, alpha=0.25),
        lambda x, y: optax.sigmoid_focal_loss(x, y, gamma=2.0, alpha=0.25),
        "prob",
    ),
}


X = jax.ShapeDtypeStruct((N, C), jnp.float32)  # compiled only, never run
LABELS = {"int": jax.ShapeDtypeStruct((N,), jnp.int32), "prob": X}


@functools.cache  # a loss compiled once for all the tests that ask (each compile takes ~1 s)
def temporaries(f, kind):
    """Bytes of temporary buffers of jit(value_and_grad(sum of f)) w.r.t. the logits, for
    (N, C) logits and `kind` labels."""
    g = jax.jit(jax.value_and_grad(lambda x, y: f(x, y).sum()))
    return g.lower(X, LABELS[kind]).compile().memory_analysis().temp_size_in_bytes


@pytest.mark.parametrize("name", sorted(CASES))
def test_temporaries_at_most_optax(name):
    ours, theirs, kind = CASES[name]
    mine, optax_bytes = temporaries(ours, kind), temporaries(theirs, kind)
    # N-sized vectors (a few KiB) are noise; an extra N x C buffer is 4 MiB.
    assert mine <= optax_bytes + 64 * 1024, (name, mine / 2**20, optax_bytes / 2**20)


def test_integer_cross_entropy_has_no_n_by_c_temporary():
    variants = {  # the first two are CASES' functions, so their compilations are shared
        "plain": CASES["softmax_ce_integer"][0],
        "label_smoothing=0.1": CASES["softmax_ce_integer_smoothed"][0],
        "ignore_index=-1": lambda x, y: jaxloss.softmax_cross_entropy_with_integer_labels(
            x, y, ignore_index=-1
        ),
    }
    for name, f in variants.items():
        # Below a quarter of one N x C buffer: only N-sized vectors.
        assert temporaries(f, "int") < N * C, name


@pytest.mark.parametrize("name", ["sigmoid_bce", "sigmoid_focal"])
def test_sigmoid_losses_store_at_most_their_value(name):
    """The elementwise value (what the user's sum reads) is the only N x C temporary: a term
    added or multiplied outside the loss's core would be a second one (optax has three)."""
    assert temporaries(CASES[name][0], "prob") <= N * C * 4 + 64 * 1024, name
