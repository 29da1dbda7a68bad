"""Loss functions: ``loss(logits, labels) -> per_example_loss`` (SPEC §1).

Parameterized losses take their parameters first: ``loss(theta, logits, labels)``.
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
