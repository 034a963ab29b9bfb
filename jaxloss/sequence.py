"""Sequence losses: connectionist temporal classification (CTC).

CTC scores a label sequence against per-frame class scores without a given alignment: it sums the
probability of every frame-by-frame path that reads as the labels once repeats are merged and
blanks dropped (Graves et al. 2006). Unlike jaxloss's one-sample losses, CTC takes optax's batched
shapes, (B, T, K) logits with (B, T) paddings and (B, N) labels with (B, N) paddings, so that code
written for `optax.ctc_loss` runs unchanged; one unbatched sequence, (T, K) logits with (T,)
paddings and (N,) labels, works too (and so under `jax.vmap`).

Impossible alignments (labels that need more frames than there are) have probability 0: torch
returns inf (or 0 with `zero_infinity=True`); jaxloss, like optax, replaces log(0) by
`log_epsilon` (default -1e5), so the loss is finite, about -log_epsilon, and so is its gradient
(that of the cheapest path breaking the rules).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxloss import _checks

# ------------------------------------------------------------------------------- input checks


def _paddings(fn: str, name: str, x: Any, shape: tuple[int, ...], expected: str) -> jax.Array:
    """A padding indicator array of exactly `shape` (1 = padded, 0 = real); bool, int or float."""
    x = _checks.real(fn, name, x)
    if x.shape != shape:
        raise ValueError(
            f"jaxloss.{fn}: `{name}` must have shape {expected} = {shape} (one 0/1 indicator "
            f"per entry); got {x.shape}."
        )
    return x


def _labels(fn: str, labels: Any, logits: jax.Array) -> jax.Array:
    arr = _checks.real(fn, "labels", labels)
    if not jnp.issubdtype(arr.dtype, jnp.integer):
        raise TypeError(
            f"jaxloss.{fn}: `labels` must be an integer array of class indices; got dtype "
            f"{arr.dtype}."
        )
    if logits.ndim == 3:
        expected, ok = "(B, N) with B = logits.shape[0]", arr.ndim == 2
        ok = ok and arr.shape[0] == logits.shape[0]
    else:
        expected, ok = "(N,) for (T, K) logits", arr.ndim == 1
    if not ok:
        raise ValueError(
            f"jaxloss.{fn}: `labels` must have shape {expected}; got {arr.shape} with logits "
            f"of shape {logits.shape}."
        )
    return arr


def _log_epsilon(fn: str, value: Any) -> jax.Array:
    """log_epsilon, a real scalar; known at trace time, it must lie in (-inf, 0) (a traced one
    out of range gives NaN, see `_core`)."""
    v = _checks.scalar(fn, "log_epsilon", value)
    concrete = _checks._concrete(value)
    if concrete is not None and not (np.isfinite(concrete) and concrete < 0):
        raise ValueError(f"jaxloss.{fn}: {_LOG_EPS_MESSAGE}; got {value!r}.")
    return v


_LOG_EPS_MESSAGE = "`log_epsilon` must be a finite negative number (the stand-in for log 0)"


def _ctc(fn, logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon):
    """The static checks, then `_core`, then the run-time checks on the validity flags it
    returns (outside `_core`, whose compiled version is cached without them)."""
    logits = _checks.as_logits(fn, "logits", logits)
    if logits.ndim not in (2, 3):
        raise ValueError(
            f"jaxloss.{fn}: `logits` must have shape (B, T, K) (a batch, as optax) or (T, K) "
            f"(one sequence); got shape {logits.shape}."
        )
    _checks.non_empty(fn, "logits", logits, axis=-1)
    if logits.shape[-2] == 0:
        raise ValueError(
            f"jaxloss.{fn}: `logits` must have at least one frame (axis -2); got shape "
            f"{logits.shape}. Mark frames as padding with `logit_paddings` instead."
        )
    logit_paddings = _paddings(
        fn, "logit_paddings", logit_paddings, logits.shape[:-1], "logits.shape[:-1]"
    )
    labels = _labels(fn, labels, logits)
    label_paddings = _paddings(fn, "label_paddings", label_paddings, labels.shape, "labels.shape")
    num_classes = logits.shape[-1]
    blank_id = _checks.integer(fn, "blank_id", blank_id, low=0, high=num_classes - 1)
    log_eps = _log_epsilon(fn, log_epsilon)

    out, ok = _core(logits, logit_paddings, labels, label_paddings, log_eps, blank_id=blank_id)
    check = _checks.runtime_check
    check(fn, ok["log_epsilon"], f"{_LOG_EPS_MESSAGE}.")
    check(fn, ok["logit_paddings"], "`logit_paddings` must be 0 (a frame) or 1 (padding).")
    check(
        fn,
        ok["label_paddings"],
        "`label_paddings` must be 0 (a label) or 1 (padding), and right-padded (its 1s last).",
    )
    check(
        fn,
        ok["labels"],
        f"`labels` must lie in [0, {num_classes}) and differ from blank_id = {blank_id} where "
        "not padded.",
    )
    check(fn, ok["logits"], "`logits` contains NaN or +inf.")
    return out


# One compiled program for everything after the static checks: called un-jitted, the loss then
# compiles once instead of op by op (inside a user's jit it is inlined as usual).
@functools.partial(jax.jit, static_argnames=("blank_id",))
def _core(logits, logit_paddings, labels, label_paddings, log_eps, *, blank_id):
    """Loss and alphas (NaN for a sequence with a bad value) and the validity flags."""
    batched = logits.ndim == 3
    if not batched:
        logits, logit_paddings = logits[None], logit_paddings[None]
        labels, label_paddings = labels[None], label_paddings[None]
    num_classes = logits.shape[-1]
    eps_ok = jnp.isfinite(log_eps) & (log_eps < 0)
    log_eps = jnp.where(eps_ok, log_eps, jnp.nan).astype(logits.dtype)
    pad_ok = (logit_paddings == 0) | (logit_paddings == 1)
    lab_pad = label_paddings == 1
    # 0 or 1, and never a real label after a padded one.
    lab_pad_ok = ((label_paddings == 0) | lab_pad) & jnp.concatenate(
        [jnp.ones_like(lab_pad[:, :1]), ~lab_pad[:, :-1] | lab_pad[:, 1:]], axis=1
    )
    label_ok = lab_pad | ((labels >= 0) & (labels < num_classes) & (labels != blank_id))
    pad = logit_paddings == 1
    # Padded frames are ignored outright: their logits (even NaN or inf) reach neither the value
    # nor the gradient (optax mixes them in as 0 * x, so a NaN there makes the loss NaN).
    logits = jnp.where(pad[..., None], 0, logits)
    logits_ok = jnp.all(logits < jnp.inf, axis=-1)  # False for NaN and +inf
    bad = ~(pad_ok.all(1) & lab_pad_ok.all(1) & label_ok.all(1) & eps_ok)
    safe_labels = jnp.where(label_ok, labels, 0)
    loss, alpha_blank, alpha_label = _forward(logits, pad, safe_labels, lab_pad, blank_id, log_eps)
    out = (
        jnp.where(bad, jnp.nan, loss),
        jnp.where(bad[:, None], jnp.nan, alpha_blank),
        jnp.where(bad[:, None], jnp.nan, alpha_label),
    )
    if not batched:
        out = (out[0][0], out[1][:, 0], out[2][:, 0])
    ok = {
        "log_epsilon": eps_ok,
        "logit_paddings": pad_ok,
        "label_paddings": lab_pad_ok,
        "labels": label_ok,
        "logits": logits_ok,
    }
    return out, ok


# ------------------------------------------------------------------------------- the recursion


def _forward(logits, pad, labels, lab_pad, blank_id, log_eps):
    """Loss (B,) and log alphas (T, B, N+1) blank / (T, B, N) label states, optax's layout.

    blank[n]: the path has emitted labels 1..n and its last frame is a blank (n = 0..N);
    label[n]: its last frame emits label n+1 (n = 0..N-1). Before frame 0 only blank[0] holds
    (log 1 = 0); every other state starts at log_epsilon, optax's stand-in for log 0.
    """
    batch, _, _ = logits.shape
    num_labels = labels.shape[1]
    # log probabilities floored at log_epsilon: a switched-off class (-inf logit) is then as
    # unlikely as an impossible transition, and no state is -inf (jnp.logaddexp's derivative at
    # -inf is wrong, and -inf - -inf is NaN), so every finite loss has a finite gradient.
    logp = jnp.maximum(jax.nn.log_softmax(logits), log_eps)
    lp_blank = jnp.moveaxis(logp[..., blank_id], 1, 0)  # (T, B)
    lp_label = jnp.moveaxis(jnp.take_along_axis(logp, labels[:, None, :], axis=2), 1, 0)
    # A label equal to the one before cannot follow it directly: a blank must come between.
    repeat = labels[:, 1:] == labels[:, :-1]  # (B, N-1)
    skip_cost = jnp.where(repeat, log_eps, 0)

    def end_states(blank, label):
        # blank[n] or label[n-1] (having emitted n labels); blank[0] has no label before it.
        return jnp.concatenate([blank[:, :1], jnp.logaddexp(blank[:, 1:], label)], axis=1)

    def step(carry, frame):
        blank, label = carry
        lpb, lpl, padded = frame
        new_blank = end_states(blank, label) + lpb[:, None]
        stay = jnp.logaddexp(label, blank[:, :-1])  # label n from itself or from blank n
        move = jnp.logaddexp(stay[:, 1:], label[:, :-1] + skip_cost)  # or from label n-1
        new_label = jnp.concatenate([stay[:, :1], move], axis=1) + lpl
        new = (
            jnp.where(padded[:, None], blank, new_blank),
            jnp.where(padded[:, None], label, new_label),
        )
        return new, new

    start = (
        jnp.full((batch, num_labels + 1), log_eps).at[:, 0].set(0),
        jnp.full((batch, num_labels), log_eps),
    )
    (blank, label), (alpha_blank, alpha_label) = lax.scan(
        step, start, (lp_blank, lp_label, jnp.moveaxis(pad, 1, 0))
    )
    final = end_states(blank, label)  # (B, N+1)
    length = num_labels - jnp.sum(lab_pad, axis=1)
    loss = -jnp.take_along_axis(final, length[:, None], axis=1)[:, 0]
    return loss, alpha_blank.at[-1].set(final), alpha_label


# ------------------------------------------------------------------------------- public API


def ctc_loss_with_forward_probs(
    logits: Any,
    logit_paddings: Any,
    labels: Any,
    label_paddings: Any,
    *,
    blank_id: int = 0,
    log_epsilon: Any = -1e5,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """CTC loss and the forward (alpha) log probabilities of every state at every frame.

    `loss = -log sum_{pi in B^-1(y)} prod_t softmax(logits_t)[pi_t]`, the sum over the paths pi
    of the real frames that read as the real labels y after merging repeats and dropping blanks
    (B^-1 of Graves et al.); computed by the forward recursion in log space, log 0 replaced by
    `log_epsilon`.

    The forward variables, as in optax: `log_alpha_blank[t, b, n]` is the log probability of
    frames 0..t having emitted labels 1..n and ending on a blank; `log_alpha_label[t, b, n]` of
    frames 0..t ending on label n+1. A padded frame keeps the previous frame's values. The last
    row of `log_alpha_blank` is replaced by the probability of having emitted exactly n labels
    (blank or label end), so `loss[b] = -log_alpha_blank[-1, b, N_b]` with N_b the real labels.

    Args:
      logits: float array (B, T, K) of class scores for T frames (K classes, blank included), or
        (T, K) for one sequence. -inf is a switched-off class; NaN or +inf in a real frame gives
        NaN; a padded frame's values are ignored (optax lets a NaN there through).
      logit_paddings: (B, T) (or (T,)) array, 1 for a padded frame, 0 for a real one (bool, int
        or float); padded frames may lie anywhere. Other values give NaN.
      labels: integer array (B, N) (or (N,)) of label sequences; real labels in [0, K) and not
        `blank_id` (anything else gives NaN; optax reads an out-of-range label as probability 1).
      label_paddings: (B, N) (or (N,)), 1 for a padded label, 0 for a real one; right-padded
        (its 1s after its 0s); otherwise NaN (optax silently takes the first labels).
      blank_id: the blank class, a Python int in [0, K).
      log_epsilon: finite negative number standing in for log 0 (optax's default -1e5). Log
        probabilities below it count as it.

    Returns:
      `(loss, log_alpha_blank, log_alpha_label)`: loss (B,) (a scalar for one sequence);
      log_alpha_blank (T, B, N+1) and log_alpha_label (T, B, N) ((T, N+1), (T, N) for one
      sequence); float32 for half-precision logits. An impossible alignment gives a finite loss
      of about `-log_epsilon` (the cheapest path that breaks the rules once, or a few times),
      with a finite gradient; torch gives inf.

    Example:
      >>> import jax.numpy as jnp, jaxloss
      >>> jnp.set_printoptions(precision=4)
      >>> logits = jnp.zeros((3, 2, 4))  # 3 sequences, 2 frames, blank + 3 classes
      >>> labels = jnp.array([[1, 2], [3, 3], [1, 0]])
      >>> label_paddings = jnp.array([[0, 0], [0, 0], [0, 1]])  # the last has one label
      >>> loss, blank, label = jaxloss.ctc_loss_with_forward_probs(
      ...     logits, jnp.zeros((3, 2)), labels, label_paddings)
      >>> print(blank.shape, label.shape)  # (T, B, N + 1), (T, B, N)
      (2, 3, 3) (2, 3, 2)
      >>> print(jnp.exp(blank[-1, 0]))  # P(exactly 0, 1, 2 labels emitted); the last is exp(-loss)
      [0.0625 0.1875 0.0625]

    Reference: Graves et al., "Connectionist temporal classification: labelling unsegmented
    sequence data with recurrent neural networks", ICML 2006. Matches `optax.ctc_loss_with_
    forward_probs` (same shapes and values) and `torch.nn.functional.ctc_loss(log_probs,
    targets, input_lengths, target_lengths, reduction='none')` for possible alignments.
    """
    fn = "ctc_loss_with_forward_probs"
    return _ctc(fn, logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon)


def ctc_loss(
    logits: Any,
    logit_paddings: Any,
    labels: Any,
    label_paddings: Any,
    *,
    blank_id: int = 0,
    log_epsilon: Any = -1e5,
) -> jax.Array:
    """CTC loss: minus the log probability of the labels summed over all frame alignments.

    `loss = -log sum_{pi in B^-1(y)} prod_t softmax(logits_t)[pi_t]`; see
    `jaxloss.ctc_loss_with_forward_probs` for the details and the forward probabilities.

    Args:
      logits: float array (B, T, K) (a batch, as optax; K classes including the blank) or
        (T, K) (one sequence). Padded frames' values are ignored.
      logit_paddings: (B, T) (or (T,)), 1 for a padded frame, 0 for a real one.
      labels: integer array (B, N) (or (N,)); real labels in [0, K) and not `blank_id`.
      label_paddings: (B, N) (or (N,)), 1 for a padded label, right-padded.
      blank_id: the blank class, a Python int in [0, K).
      log_epsilon: finite negative stand-in for log 0 (default -1e5, as optax).

    Returns:
      loss (B,) (a scalar for one sequence); float32 for half-precision logits. Bad values
      (paddings not 0/1, labels out of range or blank) give NaN for that sequence, which
      `jaxloss.checked` raises. An impossible alignment gives a large finite loss (torch: inf).

    Example:
      >>> import jax.numpy as jnp, jaxloss
      >>> jnp.set_printoptions(precision=4)
      >>> logits = jnp.zeros((3, 2, 4))  # 3 sequences, 2 frames, blank + 3 classes
      >>> labels = jnp.array([[1, 2], [3, 3], [1, 0]])  # 3, 3 needs a blank between them
      >>> label_paddings = jnp.array([[0, 0], [0, 0], [0, 1]])  # the last has one label
      >>> print(jaxloss.ctc_loss(logits, jnp.zeros((3, 2)), labels, label_paddings))
      [2.7726e+00 1.0000e+05 1.6740e+00]

    Reference: Graves et al., ICML 2006. Matches `optax.ctc_loss` and
    `torch.nn.functional.ctc_loss(..., reduction='none')` for possible alignments.
    """
    args = (logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon)
    return _ctc("ctc_loss", *args)[0]
