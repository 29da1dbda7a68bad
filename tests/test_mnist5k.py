"""The embedded real-MNIST subset: sizes, stratification, scaling, determinism, errors."""

import numpy as np
import pytest

from glojax import data


def test_mnist5k_splits(mnist5k):
  ds = mnist5k
  assert (len(ds.train), len(ds.validation), len(ds.test)) == (4000, 500, 500)
  assert ds.image_shape == (28, 28, 1) and ds.num_classes == 10
  for split, per_class in ((ds.train, 400), (ds.validation, 50), (ds.test, 50)):
    assert split.images.dtype == np.float32 and split.labels.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(split.labels, minlength=10),
                                  [per_class] * 10)
  assert ds.train.images.min() == 0.0 and ds.train.images.max() == 1.0
  # The splits are disjoint: no image appears in two splits.
  flat = lambda s: {im.tobytes() for im in s.images}
  assert not (flat(ds.train) & flat(ds.test)) and not (flat(ds.validation) & flat(ds.test))


def test_mnist5k_seeded(mnist5k):
  again = data.load("mnist5k", seed=0)
  np.testing.assert_array_equal(again.test.labels, mnist5k.test.labels)
  np.testing.assert_array_equal(again.test.images, mnist5k.test.images)
  other = data.load("mnist5k", seed=1)
  assert not np.array_equal(other.test.images, mnist5k.test.images)


def test_unknown_dataset_lists_known():
  with pytest.raises(ValueError, match=r"unknown dataset 'mnist_typo'.*mnist5k"):
    data.load("mnist_typo")


def test_bad_fractions():
  with pytest.raises(ValueError, match="bad split fractions"):
    data.load("mnist5k", train_fraction=0.95, validation_fraction=0.1)
