"""jaxloss: from a loss function to a parameter update, in pure JAX.

The public API; every name is re-exported here and listed in `__all__`.
"""

from jaxloss._checks import checked
from jaxloss.backprop import MLPCache, gradient_cost, mlp_backward, mlp_forward_with_cache
from jaxloss.classification import (
    poly_loss_cross_entropy,
    sigmoid_binary_cross_entropy,
    sigmoid_focal_loss,
    smooth_labels,
    softmax_cross_entropy,
    softmax_cross_entropy_with_integer_labels,
    softmax_focal_loss,
    softmax_focal_loss_with_integer_labels,
)
from jaxloss.datasets import (
    imbalanced_anchors,
    linear_regression,
    segmentation_blobs,
    spirals,
    xor,
)
from jaxloss.divergences import (
    convex_kl_divergence,
    generalized_kl_divergence,
    kl_divergence,
    kl_divergence_with_log_targets,
)
from jaxloss.likelihood import bernoulli_nll, categorical_nll, gaussian_nll, laplace_nll
from jaxloss.margin import (
    hinge_loss,
    multiclass_hinge_loss,
    multiclass_perceptron_loss,
    perceptron_loss,
)
from jaxloss.metric import ntxent, triplet_margin_loss
from jaxloss.mining import hard_negative_mask, mined_cross_entropy, ohem_mask
from jaxloss.models import linear, mlp
from jaxloss.objective import objective, per_sample_losses
from jaxloss.parallel import data_parallel_mesh, replicate, shard_batch
from jaxloss.ranking import ranking_softmax_loss
from jaxloss.regression import (
    absolute_error,
    cosine_distance,
    cosine_similarity,
    huber_loss,
    l2_loss,
    log_cosh,
    mae,
    mse,
    rmse,
    squared_error,
)
from jaxloss.segmentation import dice_loss, generalized_dice_loss, jaccard_loss, tversky_loss
from jaxloss.sequence import ctc_loss, ctc_loss_with_forward_probs
from jaxloss.sgd import (
    FitResult,
    LRRangeResult,
    Monitor,
    SweepResult,
    fit,
    lr_range_test,
    sgd_step,
    sweep,
)
from jaxloss.sparsemax import (
    make_fenchel_young_loss,
    multiclass_sparsemax_loss,
    sparsemax_loss,
)
from jaxloss.taylor import (
    TaylorReport,
    hessian_vector_product,
    taylor_check,
    top_hessian_eigenvalue,
)

__version__ = "0.1.0"

__all__ = [
    "checked",
    "linear",
    "mlp",
    # regression
    "absolute_error",
    "cosine_distance",
    "cosine_similarity",
    "huber_loss",
    "l2_loss",
    "log_cosh",
    "mae",
    "mse",
    "rmse",
    "squared_error",
    # classification
    "poly_loss_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "smooth_labels",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "softmax_focal_loss",
    "softmax_focal_loss_with_integer_labels",
    # divergences
    "convex_kl_divergence",
    "generalized_kl_divergence",
    "kl_divergence",
    "kl_divergence_with_log_targets",
    # margin / sparsemax
    "hinge_loss",
    "make_fenchel_young_loss",
    "multiclass_hinge_loss",
    "multiclass_perceptron_loss",
    "multiclass_sparsemax_loss",
    "perceptron_loss",
    "sparsemax_loss",
    # metric learning / ranking
    "ntxent",
    "ranking_softmax_loss",
    "triplet_margin_loss",
    # sequence
    "ctc_loss",
    "ctc_loss_with_forward_probs",
    # segmentation
    "dice_loss",
    "generalized_dice_loss",
    "jaccard_loss",
    "tversky_loss",
    # objective / sgd / taylor
    "objective",
    "per_sample_losses",
    "sgd_step",
    "fit",
    "sweep",
    "FitResult",
    "SweepResult",
    "Monitor",
    "lr_range_test",
    "LRRangeResult",
    "taylor_check",
    "TaylorReport",
    "hessian_vector_product",
    "top_hessian_eigenvalue",
    # many devices
    "data_parallel_mesh",
    "shard_batch",
    "replicate",
    # mining / likelihood / backprop / datasets
    "hard_negative_mask",
    "ohem_mask",
    "mined_cross_entropy",
    "gaussian_nll",
    "laplace_nll",
    "bernoulli_nll",
    "categorical_nll",
    "mlp_forward_with_cache",
    "mlp_backward",
    "MLPCache",
    "gradient_cost",
    "xor",
    "spirals",
    "linear_regression",
    "imbalanced_anchors",
    "segmentation_blobs",
]
