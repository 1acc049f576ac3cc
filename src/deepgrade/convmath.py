"""Convolution, pooling and parameter arithmetic: pure functions, one place for all of it.

Used by the quiz generators and cross-checked in tests against public Keras
layers. A configuration Keras refuses raises ``ValueError`` here too, worded
"expected ... Received: ...".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

Padding = Literal["valid", "same"]


def _positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"Received an invalid value for `{name}`, expected a positive integer. Received: {name}={value!r}")


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: Padding = "valid", dilation: int = 1) -> int:
    """Output length along one axis of a convolution or pooling window (Keras' rule)."""
    _positive(size=size, kernel=kernel, stride=stride, dilation=dilation)
    if padding not in ("valid", "same"):
        raise ValueError(f"Expected padding 'valid' or 'same'. Received: padding={padding!r}")
    if padding == "same":
        return math.ceil(size / stride)
    span = dilation * (kernel - 1) + 1
    if span > size:
        raise ValueError(
            f"A kernel spanning {span} pixels does not fit in an input of size {size} with padding='valid': "
            f"expected kernel span <= input size. Received: size={size}, kernel={kernel}, dilation={dilation}")
    return (size - span) // stride + 1


def pool_output_size(size: int, pool: int, stride: int | None = None, padding: Padding = "valid") -> int:
    """Pooling output length; the stride defaults to the pool size, as in Keras."""
    return conv_output_size(size, pool, stride or pool, padding)


def conv2d_params(in_channels: int, filters: int, kernel: int | tuple[int, int], use_bias: bool = True) -> int:
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    _positive(in_channels=in_channels, filters=filters, kernel_height=kh, kernel_width=kw)
    return kh * kw * in_channels * filters + (filters if use_bias else 0)


def dense_params(in_units: int, units: int, use_bias: bool = True) -> int:
    _positive(in_units=in_units, units=units)
    return in_units * units + (units if use_bias else 0)


def receptive_field(layers: Sequence[tuple[int, int, int]]) -> int:
    """Receptive field (in input pixels, along one axis) of a stack of (kernel, stride, dilation) layers."""
    field, jump = 1, 1
    for kernel, stride, dilation in layers:
        _positive(kernel=kernel, stride=stride, dilation=dilation)
        field += (kernel - 1) * dilation * jump
        jump *= stride
    return field


def convolve2d(image: np.ndarray, kernel: np.ndarray, stride: int = 1) -> np.ndarray:
    """'valid' cross-correlation of a 2-D image with a 2-D kernel, as a CNN layer computes it."""
    image, kernel = np.asarray(image), np.asarray(kernel)
    kh, kw = kernel.shape
    rows = conv_output_size(image.shape[0], kh, stride)
    cols = conv_output_size(image.shape[1], kw, stride)
    out = np.empty((rows, cols), dtype=np.result_type(image, kernel))
    for i in range(rows):
        for j in range(cols):
            out[i, j] = np.sum(image[i * stride:i * stride + kh, j * stride:j * stride + kw] * kernel)
    return out


def pool2d(x: np.ndarray, size: int, stride: int | None = None, mode: Literal["max", "average"] = "max") -> np.ndarray:
    """'valid' max or average pooling of a 2-D feature map."""
    x = np.asarray(x, dtype=float)
    stride = stride or size
    rows, cols = (conv_output_size(n, size, stride) for n in x.shape)
    reduce = np.max if mode == "max" else np.mean
    return np.array([[reduce(x[i * stride:i * stride + size, j * stride:j * stride + size]) for j in range(cols)]
                     for i in range(rows)])


def conv_stack_shapes(height: int, width: int, channels: int,
                      layers: Sequence[dict]) -> list[tuple[int, int, int]]:
    """Output shape (h, w, c) after each layer of a stack of Conv2D / pooling layers.

    Each layer is a dict: ``{"type": "conv", "filters", "kernel", "stride", "padding"}`` or
    ``{"type": "maxpool", "pool", "stride", "padding"}``.
    """
    shapes = []
    for layer in layers:
        if layer["type"] == "conv":
            k, s, p = layer["kernel"], layer.get("stride", 1), layer.get("padding", "valid")
            height, width = conv_output_size(height, k, s, p), conv_output_size(width, k, s, p)
            channels = layer["filters"]
        elif layer["type"] == "maxpool":
            k, s, p = layer["pool"], layer.get("stride"), layer.get("padding", "valid")
            height, width = pool_output_size(height, k, s, p), pool_output_size(width, k, s, p)
        else:
            raise ValueError(f"Expected a layer type 'conv' or 'maxpool'. Received: type={layer['type']!r}")
        shapes.append((height, width, channels))
    return shapes
