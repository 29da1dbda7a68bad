"""Analysis of losses and the networks they train: ch. 6 theory, plots, statistics.

* :mod:`glojax.analysis.theory` — γ decomposition (eq. 6.3), TaylorGLO c-coefficients,
  zero-error and null-epoch behaviour, the trainability invariant (theorem 6.5.1), label
  smoothing as a reparameterization (§6.7), attraction to zero training error (eq. 6.51).
* :mod:`glojax.analysis.plots` — attraction curves, true-class histograms, weight histograms,
  accuracy basins, per-generation fitness curves.
* :mod:`glojax.analysis.stats` — Welch's t-test and the papers' table rows.
* :mod:`glojax.analysis.scale` — the effective learning rate of a loss (its gradient scale
  relative to cross-entropy, ch. 6's γ view).
"""

from glojax.analysis import plots, scale, stats, theory
from glojax.analysis.scale import effective_learning_rate, gradient_norm_ratio
from glojax.analysis.stats import WelchResult, format_table_row, significance_stars, welch_ttest
from glojax.analysis.theory import (
    CCoefficients,
    CharacteristicCurve,
    NullEpoch,
    ZeroErrorCoefficients,
    attraction,
    c_coefficients,
    centre_gamma,
    characteristic_curve,
    gamma,
    is_trainable,
    is_trainable_loss,
    label_smoothing_theta,
    label_smoothing_theta_inverse,
    null_epoch,
    theta_from_c_coefficients,
    zero_error_coefficients,
)
from glojax.analysis.phenotype import (  # noqa: F401
    binary_logits,
    binary_phenotype,
    format_probability,
    phenotype_figure,
    plot_binary_phenotypes,
)
