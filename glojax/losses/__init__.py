"""Loss functions: ``loss(logits, labels) -> per_example_loss`` (``docs/losses.md``).

Parameterized losses take their parameters first: ``loss(theta, logits, labels)``.
Load any loss by its spec string with :func:`get` (``"baikal"``,
``"taylorglo(theta=[...])"``, ``"expr:log(y) - x / y"``, ...); :func:`names` lists the
registry; :func:`to_spec` writes a loss's spec; :func:`get_parameterized` gives the
``(loss_fn(params, logits, labels), params)`` form a trainer or search uses. The general
TaylorGLO builder is :func:`taylor_loss`. See ``docs/losses.md``.
"""

from glojax.losses.core import (
    CLASS_REDUCTIONS,
    TAYLORGLO_NUM_PARAMS,
    cross_entropy,
    taylorglo,
    taylorglo_spec,
    theta_from_eq57,
    theta_to_eq57,
)
from glojax.losses.registry import (
    Loss,
    LossEntry,
    Param,
    entry,
    get,
    get_parameterized,
    names,
    parse_spec,
    register,
    to_spec,
)
from glojax.losses.taylor import (
    TAYLOR_VARIABLES,
    TaylorLoss,
    multi_indices,
    num_params,
    taylor_loss,
)
from glojax.losses.zoo import (
    BAIKAL_CMA_COEFFICIENTS,
    NLFS_EPSILON,
    baikal,
    baikal_cma,
    bessel,
    fast_logit,
    label_smoothed_cross_entropy,
    mse,
    neuroloss1,
    neuroloss2,
    neuroloss3,
    polyloss,
)

# ``glojax.losses.list()`` reads naturally in notebooks; defined last so the builtin
# ``list`` stays usable above.
list = names  # noqa: A001
