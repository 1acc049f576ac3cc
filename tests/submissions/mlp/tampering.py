# expect: architecture and parameters fail; patching keras and deepgrade in the notebook earns nothing
import sys
import keras as _k

_k.Model.count_params = lambda self: 269322
try:
    import deepgrade.architecture as _a
    _a.check_architecture = lambda *args, **kwargs: "all good"
except ImportError:
    pass


def build_model():
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])
