"""jaxloss: from a loss function to a parameter update, in pure JAX.

The public API; every name is re-exported here and listed in `__all__`.
"""

from jaxloss._checks import checked
from jaxloss.models import linear, mlp

# --- regression ---

# --- classification ---

# --- segmentation ---

# --- objective / sgd / taylor ---

# --- mining / likelihood / backprop / datasets ---

__version__ = "0.1.0"

__all__ = [
    "checked",
    "linear",
    "mlp",
    # regression
    # classification
    # segmentation
    # objective / sgd / taylor
    # mining / likelihood / backprop / datasets
]
