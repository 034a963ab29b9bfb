"""Overlap losses for segmentation masks: dice, Tversky, Jaccard and generalised dice.

A sample is an array `(..., C)` of per-position class scores (class axis last); the loss reduces the
whole sample to a scalar. Every sum runs over all axes but the last, so a whole batch passed as one
"sample" gives the batch dice (one ratio over the batch); `jax.vmap` over the batch gives one loss
per sample, whose mean is MONAI's default (`batch=False`, `reduction="mean"`).

`dice_loss`, `jaccard_loss` and `tversky_loss` are the mean of per-class ratios (one
implementation, `tversky_loss` with fixed α, β); `generalized_dice_loss` pools the classes,
weighted by their inverse target volume, into a single ratio (Sudre et al. 2017, as MONAI).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _checks

_ACTIVATIONS = ("softmax", "sigmoid")


def _checked_predictions(
    fn: str, predictions: Any, from_logits: bool, activation: str, include_background: bool
) -> tuple[jax.Array, bool, bool]:
    """Static checks shared by every overlap loss: predictions, activation and the bool options."""
    predictions = _checks.as_logits(fn, "predictions", predictions)
    _checks.has_class_axis(fn, "predictions", predictions)
    # No class or no position: the mean over classes, or every ratio, would be 0/0.
    _checks.non_empty(fn, "predictions", predictions, axis=-1)
    _checks.non_empty(fn, "predictions", predictions)
    num_classes = predictions.shape[-1]
    from_logits = _checks.flag(fn, "from_logits", from_logits)
    include_background = _checks.flag(fn, "include_background", include_background)
    _checks.one_of(fn, "activation", activation, _ACTIVATIONS)
    if from_logits and activation == "softmax" and num_classes < 2:
        raise ValueError(
            f"jaxloss.{fn}: `activation='softmax'` needs at least 2 classes (a softmax over one "
            f"class is always 1); got predictions.shape[-1] = {num_classes}. Use "
            "activation='sigmoid' for a single foreground channel."
        )
    if not include_background and num_classes < 2:
        raise ValueError(
            f"jaxloss.{fn}: `include_background=False` needs at least 2 classes (class 0 is "
            f"dropped); got predictions.shape[-1] = {num_classes}."
        )
    return predictions, from_logits, include_background


def _probabilities_and_targets(
    fn: str, predictions: jax.Array, targets: Any, *, from_logits: bool, activation: str
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(probabilities, float targets of their shape, valid): checks the targets, applies the
    activation, one-hot encodes integer targets; valid is False where a value is out of range."""
    num_classes = predictions.shape[-1]
    targets = _checks.real(fn, "targets", targets)
    integer_targets = jnp.issubdtype(targets.dtype, jnp.integer)
    if integer_targets:
        if targets.shape == predictions.shape:
            raise TypeError(
                f"jaxloss.{fn}: integer `targets` are class indices of shape "
                f"predictions.shape[:-1] = {predictions.shape[:-1]}; got an integer array of the "
                f"predictions' shape {targets.shape}. Pass a one-hot mask as a float or bool array."
            )
        _checks.integer_labels_shape(
            fn, predictions, targets, logits_name="predictions", labels_name="targets"
        )
        in_bounds = (targets >= 0) & (targets < num_classes)
        _checks.runtime_check(
            fn, in_bounds, f"`targets` has class indices outside [0, {num_classes})."
        )
        valid = jnp.all(in_bounds)
    else:
        predictions, targets = _checks.float_pair(
            fn, "predictions", predictions, "targets", targets
        )
        _checks.probabilities(fn, "targets", targets)
        valid = jnp.all((targets >= 0) & (targets <= 1))

    if not from_logits:
        probs = predictions
        _checks.probabilities(fn, "predictions", probs)
        valid &= jnp.all((probs >= 0) & (probs <= 1))
    elif activation == "softmax":
        _checks.softmax_logits(fn, "predictions", predictions)
        probs = jax.nn.softmax(predictions, axis=-1)
    else:
        _checks.not_nan(fn, "predictions", predictions)
        probs = jax.nn.sigmoid(predictions)
    if integer_targets:
        # One-hot keeps a single code path; it costs one array the size of the probabilities.
        targets = jax.nn.one_hot(targets, num_classes, dtype=probs.dtype)
    return probs, targets, valid


def _overlap_sums(
    probs: jax.Array, targets: jax.Array, squared: bool
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per-class (I, FP, FN) summed over every axis but the last: I = Σpt, FP = Σp^k − I,
    FN = Σt^k − I (MONAI's tp/fp/fn, k = 2 if squared)."""
    axes = tuple(range(probs.ndim - 1))
    intersection = jnp.sum(probs * targets, axis=axes)
    # FP and FN summed in a form that avoids cancellation, so a near-perfect prediction keeps its
    # small loss.
    excess_p = probs if squared else jnp.ones_like(probs)
    excess_t = targets if squared else jnp.ones_like(targets)
    false_pos = jnp.sum(probs * (excess_p - targets), axis=axes)
    false_neg = jnp.sum(targets * (excess_t - probs), axis=axes)
    return intersection, false_pos, false_neg


def _ratio(mismatch: jax.Array, denominator: jax.Array) -> jax.Array:
    """mismatch/denominator with 0/0 (empty masks, s = 0) defined as loss 0 with zero gradient."""
    empty = denominator == 0
    return jnp.where(empty, 0.0, mismatch / jnp.where(empty, 1.0, denominator))


def _overlap_loss(
    fn: str,
    predictions: Any,
    targets: Any,
    *,
    from_logits: bool,
    activation: str,
    smooth: Any,
    squared: bool,
    class_weights: Any,
    include_background: bool,
    alpha: Any,
    beta: Any,
) -> jax.Array:
    """The one implementation behind dice_loss, jaccard_loss and tversky_loss (see tversky_loss)."""
    predictions, from_logits, include_background = _checked_predictions(
        fn, predictions, from_logits, activation, include_background
    )
    num_classes = predictions.shape[-1]
    squared = _checks.flag(fn, "squared", squared)
    # Hyperparameters may be traced (vmapped over): out of range then gives NaN.
    valid = True
    for name, value in (("smooth", smooth), ("alpha", alpha), ("beta", beta)):
        _checks.scalar(fn, name, value)
        valid &= _checks.hyperparameter_ok(fn, name, value, low=0.0)
    if class_weights is not None:
        class_weights = _checks.as_float(fn, "class_weights", class_weights)
        _checks.class_vector_shape(fn, "class_weights", class_weights, num_classes)
        valid &= _checks.hyperparameter_ok(fn, "class_weights", class_weights, low=0.0)
    probs, targets, targets_valid = _probabilities_and_targets(
        fn, predictions, targets, from_logits=from_logits, activation=activation
    )
    valid &= targets_valid

    intersection, false_pos, false_neg = _overlap_sums(probs, targets, squared)
    mismatch = 2 * alpha * false_pos + 2 * beta * false_neg
    # 1 − (2I + s)/den = mismatch/den; den = 0 only for empty masks with s = 0: loss 0, zero grad.
    per_class = _ratio(mismatch, 2 * intersection + mismatch + smooth)

    if class_weights is not None:
        per_class = per_class * class_weights.astype(per_class.dtype)
    if not include_background:
        per_class = per_class[1:]
    return jnp.where(valid, jnp.mean(per_class), jnp.nan)


def tversky_loss(
    predictions: Any,
    targets: Any,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    from_logits: bool = True,
    activation: str = "softmax",
    smooth: float = 1.0,
    squared: bool = False,
    class_weights: Any = None,
    include_background: bool = True,
) -> jax.Array:
    r"""Tversky loss of one segmentation sample: overlap with weighted false positives/negatives.

    Per class c, with p the predicted probabilities, t the targets and sums over all positions::

        I = Σ p t,   FP = Σ p^k − I,   FN = Σ t^k − I    (k = 2 if squared else 1)
        L_c = 1 − (2 I + s) / (2 I + 2α FP + 2β FN + s)
        loss = Σ_c w_c L_c / C'      (w_c = class_weights or 1; C' classes kept)

    α = β = 0.5 is `dice_loss`, α = β = 1 is `jaccard_loss`. The smoothing `s` is written for
    dice, so this equals MONAI's `TverskyLoss(alpha, beta, smooth_nr=s/2, smooth_dr=s/2)`
    (which writes `(I + s')/(I + α FP + β FN + s')`). With `squared=True` and |√α − √β| > 1 the
    denominator can turn negative; `squared` is meant for dice and Jaccard.

    Empty masks, per class, shown for dice (for Tversky read P as 2αP and T as 2βT):

    - empty target, empty prediction (T = P = 0): s > 0 gives 0 (a perfect match); s = 0 is
      0/0, defined as loss 0 with zero gradient.
    - false positives on an empty target (T = 0 < P): 1 − s/(P + s); with s = 1, P = 3 → 0.75;
      with s = 0 → 1.
    - empty prediction on a non-empty target, all missed (P = 0 < T): 1 − s/(T + s); s = 0 → 1.
    - both non-empty: 1 − (2I + s)/(P + T + s); s = 0 is the plain dice 1 − 2I/(P + T).

    A softmax never gives an exactly empty prediction, so with s = 0 a class absent from the target
    costs 1 whatever its probabilities; s = 1 makes that cost P/(P + 1).

    Args:
        predictions: `(..., C)` floating logits (`from_logits=True`) or probabilities in [0, 1].
            float16/bfloat16 are computed in float32.
        targets: `(..., C)` one-hot masks or probabilities in [0, 1] (float or bool), or integer
            class indices in [0, C) of shape `predictions.shape[:-1]`.
        alpha: weight of false positives, ≥ 0.
        beta: weight of false negatives, ≥ 0.
        from_logits: apply `activation` to `predictions` first.
        activation: `"softmax"` (mutually exclusive classes, C ≥ 2) or `"sigmoid"` (independent
            channels, multi-label).
        smooth: scalar s ≥ 0, added to numerator and denominator.
        squared: Σp² + Σt² in place of Σp + Σt (MONAI's `squared_pred`).
        class_weights: `(C,)` non-negative weights multiplying the per-class losses, then the
            mean over classes as MONAI's `weight` does (not divided by Σw). Always one per class:
            `class_weights[0]` is unused with `include_background=False` (MONAI then takes C − 1
            weights), and applied with C = 1 (MONAI ignores `weight` there).
        include_background: with False, class 0 is left out (MONAI's `include_background`).

    Returns:
        A scalar. NaN if a probability is outside [0, 1], a class index outside [0, C) or a
        traced hyperparameter negative; `jaxloss.checked` raises there. The sums run over every
        axis but the last, so a batch `(B, ..., C)` passed whole gives batch dice (MONAI
        `batch=True`); `jax.vmap` gives one loss per sample. Under `jax.jit` pass the string and
        bool options statically (`functools.partial` or `static_argnames`); `smooth`, `alpha`,
        `beta` and `class_weights` may be traced.

    Raises:
        ValueError: at trace time for an empty sample (no class, C = 0, or no position), a
            concrete hyperparameter out of range or a shape mismatch.
        TypeError: for complex or non-numeric inputs, integer logits, a non-scalar `smooth`,
            `alpha` or `beta`, and `from_logits`, `squared` or `include_background` not a bool.

    Example:
        >>> logits = jnp.zeros((4, 4, 3)); labels = jnp.zeros((4, 4), jnp.int32)
        >>> jaxloss.tversky_loss(logits, labels, alpha=0.3, beta=0.7)
        Array(0.6950..., dtype=float32)

    Reference: Salehi et al. 2017, "Tversky loss function for image segmentation using 3D fully
    convolutional deep networks"; matches `monai.losses.TverskyLoss` as above.
    """
    return _overlap_loss(
        "tversky_loss",
        predictions,
        targets,
        from_logits=from_logits,
        activation=activation,
        smooth=smooth,
        squared=squared,
        class_weights=class_weights,
        include_background=include_background,
        alpha=alpha,
        beta=beta,
    )


def dice_loss(
    predictions: Any,
    targets: Any,
    *,
    from_logits: bool = True,
    activation: str = "softmax",
    smooth: float = 1.0,
    squared: bool = False,
    class_weights: Any = None,
    include_background: bool = True,
) -> jax.Array:
    r"""Soft dice loss of one segmentation sample: one minus the dice overlap, mean over classes.

    Per class c, with p the predicted probabilities, t the targets and sums over all positions::

        L_c = 1 − (2 Σ p t + s) / (Σ p + Σ t + s)     (Σp², Σt² if squared)
        loss = Σ_c w_c L_c / C'

    `tversky_loss` with α = β = 0.5; its docstring lists every option and the four empty-mask
    cases: empty target and prediction give 0 (with s = 0: 0/0 defined as 0, zero gradient);
    false positives on an empty target give 1 − s/(P + s) (1 with s = 0); an empty prediction on a
    non-empty target gives 1 − s/(T + s) (1 with s = 0); otherwise the formula above.

    Args:
        predictions: `(..., C)` floating logits (`from_logits=True`) or probabilities in [0, 1].
        targets: `(..., C)` one-hot masks/probabilities, or integer class indices of shape
            `predictions.shape[:-1]`.
        from_logits: apply `activation` (`"softmax"` or `"sigmoid"`) to `predictions` first.
        activation: `"softmax"` or `"sigmoid"`.
        smooth: s ≥ 0 in numerator and denominator (MONAI's `smooth_nr = smooth_dr = s`).
        squared: MONAI's `squared_pred`.
        class_weights: `(C,)` non-negative per-class weights, as MONAI's `weight`.
        include_background: with False, class 0 is left out.

    Returns:
        A scalar; a whole batch passed as one sample gives batch dice (MONAI `batch=True`).

    Example:
        >>> logits = jnp.array([[2.0, -1.0], [0.0, 1.0]]); labels = jnp.array([0, 1])
        >>> jaxloss.dice_loss(logits, labels)
        Array(0.1060..., dtype=float32)

    Reference: Milletari et al. 2016 (V-Net); equals `monai.losses.DiceLoss(smooth_nr=s,
    smooth_dr=s)` per sample (`batch=False`, mean over classes).
    """
    return _overlap_loss(
        "dice_loss",
        predictions,
        targets,
        from_logits=from_logits,
        activation=activation,
        smooth=smooth,
        squared=squared,
        class_weights=class_weights,
        include_background=include_background,
        alpha=0.5,
        beta=0.5,
    )


def jaccard_loss(
    predictions: Any,
    targets: Any,
    *,
    from_logits: bool = True,
    activation: str = "softmax",
    smooth: float = 1.0,
    squared: bool = False,
    class_weights: Any = None,
    include_background: bool = True,
) -> jax.Array:
    r"""Soft Jaccard (IoU) loss of one segmentation sample, mean over classes.

    Per class c, with p the predicted probabilities, t the targets and sums over all positions::

        L_c = 1 − (2 Σ p t + s) / (2 (Σ p + Σ t − Σ p t) + s)     (Σp², Σt² if squared)

    i.e. 1 − (I + s/2)/(U + s/2) with U the soft union. `tversky_loss` with α = β = 1; options and
    empty-mask cases as there (empty target and prediction → 0; one of them empty → 1 − s/(2P + s)
    or 1 − s/(2T + s)).

    Args:
        predictions: `(..., C)` floating logits (`from_logits=True`) or probabilities in [0, 1].
        targets: `(..., C)` one-hot masks/probabilities, or integer class indices of shape
            `predictions.shape[:-1]`.
        from_logits, activation, smooth, squared, class_weights, include_background: as in
            `dice_loss`.

    Returns:
        A scalar.

    Example:
        >>> logits = jnp.array([[2.0, -1.0], [0.0, 1.0]]); labels = jnp.array([0, 1])
        >>> jaxloss.jaccard_loss(logits, labels)
        Array(0.1916..., dtype=float32)

    Reference: Rahman & Wang 2016, "Optimizing intersection-over-union in deep neural networks
    for image segmentation"; equals `monai.losses.DiceLoss(jaccard=True, smooth_nr=s,
    smooth_dr=s)` per sample.
    """
    return _overlap_loss(
        "jaccard_loss",
        predictions,
        targets,
        from_logits=from_logits,
        activation=activation,
        smooth=smooth,
        squared=squared,
        class_weights=class_weights,
        include_background=include_background,
        alpha=1.0,
        beta=1.0,
    )


_WEIGHT_POWERS = {"square": 2, "simple": 1, "uniform": 0}


def generalized_dice_loss(
    predictions: Any,
    targets: Any,
    *,
    w_type: str = "square",
    from_logits: bool = True,
    activation: str = "softmax",
    smooth: float = 1e-5,
    include_background: bool = True,
) -> jax.Array:
    r"""Generalised dice loss of one segmentation sample (Sudre et al. 2017): one weighted ratio.

    With p the predicted probabilities, g the targets, sums over all positions i and classes c::

        G_c = Σ_i g_ci,   w_c = 1 / G_c^2 ("square"),  1 / G_c ("simple"),  1 ("uniform")
        loss = 1 − (2 Σ_c w_c Σ_i p_ci g_ci + s) / (Σ_c w_c Σ_i (p_ci + g_ci) + s)

    The classes are pooled into one ratio before dividing: with square weights a small structure
    counts as much as a large one, and an empty class needs no ratio of its own. A class absent
    from the target (G_c = 0, an infinite weight) gets the largest weight of the present classes,
    as MONAI does; if no class is present, every weight is 0 (MONAI) and the loss is 1 − s/s = 0,
    whatever the predictions (with s = 0 that 0/0 is defined as 0, zero gradient).
    `w_type="uniform"` pools without weights: 1 − (2 Σ I + s)/(Σ P + Σ T + s).

    Not optax's `multiclass_generalized_dice_loss`, which is a weighted *mean of per-class dice
    losses* Σ_c w_c L_c / Σ_c w_c (w_c = 1/(G_c² + 1e-7), smoothing per class). The paper's
    ratio (s = 0) is a mean of per-class dice too, but weighted by w_c (P_c + G_c): the two agree
    for one class or equal per-class dice only, and optax gives an absent class the weight 1e7,
    which makes its loss that class's dice loss alone.

    The weights are computed as ratios (G_min/G_c)^k of the smallest present G (numerator,
    denominator and s scaled by G_min^k, the same loss): they never overflow, where MONAI's
    float32 1/G_c² ("square") is infinite for G_c < 5.4e-20, a class it then treats as absent.

    Args:
        predictions: `(..., C)` floating logits (`from_logits=True`) or probabilities in [0, 1].
            float16/bfloat16 are computed in float32.
        targets: `(..., C)` one-hot masks or probabilities in [0, 1] (float or bool), or integer
            class indices in [0, C) of shape `predictions.shape[:-1]`.
        w_type: `"square"` (the paper's), `"simple"` or `"uniform"`, as MONAI's `w_type`.
        from_logits: apply `activation` to `predictions` first.
        activation: `"softmax"` (mutually exclusive classes, C ≥ 2) or `"sigmoid"` (independent
            channels, multi-label).
        smooth: scalar s ≥ 0 added to numerator and denominator (MONAI's `smooth_nr = smooth_dr
            = s`; default MONAI's 1e-5: the weighted sums are of order 1/G, so `dice_loss`'s
            s = 1 would swamp them).
        include_background: with False, class 0 is left out, before the weights are computed.

    Returns:
        A scalar in [0, 1]. NaN if a probability is outside [0, 1], a class index outside
        [0, C) or a traced `smooth` negative; `jaxloss.checked` raises there. The sums run over
        every axis but the last, so a batch `(B, ..., C)` passed whole gives MONAI's
        `batch=True`; `jax.vmap` gives one loss per sample. Under `jax.jit` pass the string and
        bool options statically; `smooth` may be traced.

    Raises:
        ValueError: at trace time for an empty sample, an unknown `w_type` or `activation`, a
            non-scalar or concrete negative `smooth`, or a shape mismatch.
        TypeError: for complex or non-numeric inputs (`smooth` too), integer logits, and
            `from_logits` or `include_background` not a bool.

    Example:
        >>> logits = jnp.array([[2.0, -1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
        >>> labels = jnp.array([0, 1, 1])
        >>> jaxloss.generalized_dice_loss(logits, labels)
        Array(0.5007..., dtype=float32)

    Reference: Sudre et al. 2017, "Generalised dice overlap as a deep learning loss function for
    highly unbalanced segmentations"; equals `monai.losses.GeneralizedDiceLoss(w_type,
    smooth_nr=s, smooth_dr=s)` per sample (`batch=False`, `soft_label=False`).
    """
    fn = "generalized_dice_loss"
    _checks.one_of(fn, "w_type", w_type, _WEIGHT_POWERS)
    power = _WEIGHT_POWERS[w_type]
    predictions, from_logits, include_background = _checked_predictions(
        fn, predictions, from_logits, activation, include_background
    )
    _checks.scalar(fn, "smooth", smooth)
    valid = _checks.hyperparameter_ok(fn, "smooth", smooth, low=0.0)
    probs, targets, targets_valid = _probabilities_and_targets(
        fn, predictions, targets, from_logits=from_logits, activation=activation
    )
    valid &= targets_valid
    if not include_background:
        probs, targets = probs[..., 1:], targets[..., 1:]

    intersection, false_pos, false_neg = _overlap_sums(probs, targets, squared=False)
    volume = jnp.sum(targets, axis=tuple(range(targets.ndim - 1)))  # G_c, exact for masks
    if power:
        present = volume > 0
        any_present = jnp.any(present)
        # w_c / max w = (G_min / G_c)^k for present classes, 1 (the max) for absent ones, all 0
        # with none present; the double where keeps the gradient finite at G_c = 0.
        smallest = jnp.min(jnp.where(present, volume, jnp.inf))
        smallest = jnp.where(any_present, smallest, 1.0)
        ratio = smallest / jnp.where(present, volume, 1.0)
        weights = jnp.where(present, ratio**power, any_present.astype(ratio.dtype))
        smooth = smooth * smallest**power  # s scaled as the weights were: divided by max w
    else:
        weights = jnp.ones_like(volume)
    mismatch = jnp.sum(weights * (false_pos + false_neg))
    denominator = jnp.sum(weights * (2 * intersection + false_pos + false_neg)) + smooth
    # 1 − (2 Σ w I + s)/den = Σ w (FP + FN)/den, without cancellation.
    return jnp.where(valid, _ratio(mismatch, denominator), jnp.nan)
