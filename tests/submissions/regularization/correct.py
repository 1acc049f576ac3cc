# expect: every check passes: dropout and an L2 weight penalty on the baseline's layers
def build_model():
    l2 = keras.regularizers.l2(1e-3)
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Flatten(),
        layers.Dropout(0.2),
        layers.Dense(512, activation="relu", kernel_regularizer=l2),
        layers.Dropout(0.5),
        layers.Dense(512, activation="relu", kernel_regularizer=l2),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
