"""Analysis functions take a loss spec string, as the binaries do."""

import numpy as np
import pytest

from glojax import losses
from glojax.analysis import plots, theory


def test_characteristic_curve_and_friends_accept_spec_strings(tmp_path):
  by_spec = theory.characteristic_curve("baikal", 10)
  by_fn = theory.characteristic_curve(losses.baikal, 10)
  np.testing.assert_allclose(by_spec.strength, by_fn.strength, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(by_spec.gamma_target, by_fn.gamma_target, rtol=1e-6)
  probs = np.full((4,), 0.25, np.float32)
  labels = np.eye(4, dtype=np.float32)[0]
  np.testing.assert_allclose(theory.gamma("cross_entropy", probs, labels),
                             theory.gamma(losses.cross_entropy, probs, labels), rtol=1e-6)
  assert theory.null_epoch("mse", 10) == theory.null_epoch(losses.mse, 10)
  assert theory.is_trainable_loss("baikal", 10)
  # -(1/n) Σ (-x log y) is minus cross-entropy: it drives the target logit down.
  assert not theory.is_trainable_loss("expr:-(x * log(y))", 10)
  figure = plots.plot_attraction_curves({"Baikal": "baikal", "CE": "cross_entropy"}, 10,
                                        tmp_path / "attraction.png")
  assert (tmp_path / "attraction.png").exists() and len(figure.axes[0].lines) >= 2


def test_a_bad_spec_names_the_function():
  with pytest.raises(ValueError, match="characteristic_curve: unknown loss 'baikl'"):
    theory.characteristic_curve("baikl", 10)
