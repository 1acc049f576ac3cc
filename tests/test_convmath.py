"""The arithmetic behind quizzes, cross-checked against real Keras layers over many random configurations."""

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import impulse_receptive_field
from deepgrade import convmath

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def keras_conv_shape(size, kernel, stride, padding, dilation, filters=3, channels=2):
    layer = keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding, dilation_rate=dilation)
    return layer.compute_output_shape((None, size, size, channels))


@SETTINGS
@given(size=st.integers(1, 70), kernel=st.integers(1, 9), stride=st.integers(1, 5),
       padding=st.sampled_from(["valid", "same"]), dilation=st.integers(1, 4))
def test_conv_output_size_matches_keras_or_both_refuse(size, kernel, stride, padding, dilation):
    try:
        expected = keras_conv_shape(size, kernel, stride, padding, dilation)
    except ValueError:
        expected = None  # Keras refuses this configuration
    if expected is not None and (expected[1] is None or expected[1] <= 0):
        expected = None  # Keras computes an empty or negative size: no question may use it
    try:
        ours = convmath.conv_output_size(size, kernel, stride, padding, dilation)
    except ValueError:
        ours = None
    if expected is None:
        assert ours is None or (stride > 1 and dilation > 1), (size, kernel, stride, padding, dilation)
    else:
        assert ours == expected[1] == expected[2]


@SETTINGS
@given(size=st.integers(1, 40), pool=st.integers(1, 5), stride=st.one_of(st.none(), st.integers(1, 4)),
       padding=st.sampled_from(["valid", "same"]))
def test_pool_output_size_matches_keras(size, pool, stride, padding):
    layer = keras.layers.MaxPooling2D(pool, strides=stride, padding=padding)
    try:
        expected = layer.compute_output_shape((None, size, size, 1))[1]
    except ValueError:
        expected = None
    try:
        ours = convmath.pool_output_size(size, pool, stride, padding)
    except ValueError:
        ours = None
    if expected is not None and expected <= 0:
        expected = None
    assert ours == expected


@SETTINGS
@given(cin=st.integers(1, 64), filters=st.integers(1, 128), kh=st.integers(1, 7), kw=st.integers(1, 7),
       bias=st.booleans())
def test_conv_params_match_count_params(cin, filters, kh, kw, bias):
    layer = keras.layers.Conv2D(filters, (kh, kw), use_bias=bias)
    layer.build((None, 16, 16, cin))
    assert convmath.conv2d_params(cin, filters, (kh, kw), bias) == layer.count_params()


@SETTINGS
@given(n=st.integers(1, 5000), units=st.integers(1, 512), bias=st.booleans())
def test_dense_params_match_count_params(n, units, bias):
    layer = keras.layers.Dense(units, use_bias=bias)
    layer.build((None, n))
    assert convmath.dense_params(n, units, bias) == layer.count_params()


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_convolve2d_matches_keras_conv(data):
    size = data.draw(st.integers(3, 9))
    k = data.draw(st.integers(1, min(size, 4)))
    stride = data.draw(st.integers(1, 3))
    image = np.array(data.draw(st.lists(st.integers(-3, 5), min_size=size * size, max_size=size * size))).reshape(size, size)
    kernel = np.array(data.draw(st.lists(st.integers(-2, 3), min_size=k * k, max_size=k * k))).reshape(k, k)
    got = keras.ops.conv(image[None, :, :, None].astype("float32"), kernel[:, :, None, None].astype("float32"),
                         strides=stride, padding="valid")
    assert np.array_equal(convmath.convolve2d(image, kernel, stride), keras.ops.convert_to_numpy(got)[0, :, :, 0])


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_pool2d_matches_keras_pooling(data):
    size = data.draw(st.integers(2, 8))
    stride = data.draw(st.integers(1, 2))
    x = np.array(data.draw(st.lists(st.integers(0, 20), min_size=size * size, max_size=size * size))).reshape(size, size)
    batch = x[None, :, :, None].astype("float32")
    for mode, layer in (("max", keras.layers.MaxPooling2D(2, strides=stride)),
                        ("average", keras.layers.AveragePooling2D(2, strides=stride))):
        expected = keras.ops.convert_to_numpy(layer(batch))[0, :, :, 0]
        assert np.allclose(convmath.pool2d(x, 2, stride, mode), expected)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.integers(1, 2), st.just(1)), min_size=1, max_size=4)
       | st.lists(st.tuples(st.integers(1, 3), st.just(1), st.integers(1, 3)), min_size=1, max_size=3))
def test_receptive_field_matches_an_impulse_through_keras(layers):
    assert convmath.receptive_field(layers) == impulse_receptive_field(layers)


def test_seed_004_two_3x3_see_as_far_as_one_5x5():
    assert convmath.receptive_field([(3, 1, 1), (3, 1, 1)]) == convmath.receptive_field([(5, 1, 1)]) == 5


def test_stack_shapes_of_the_strided_mnist_cnn():
    layers = [dict(type="conv", filters=4, kernel=5, stride=1, padding="same"),
              dict(type="conv", filters=8, kernel=3, stride=2, padding="same"),
              dict(type="conv", filters=12, kernel=3, stride=2, padding="same")]
    assert convmath.conv_stack_shapes(28, 28, 1, layers) == [(28, 28, 4), (14, 14, 8), (7, 7, 12)]


def test_bad_configuration_message():
    with pytest.raises(ValueError, match=r"expected a positive integer\. Received: stride=0"):
        convmath.conv_output_size(10, 3, 0)
