# expect: decided by the model (calibrated): the stub's weight penalty as written, l2(1e-3) on each hidden layer, alone
def build_model():
    l2 = keras.regularizers.l2(1e-3)
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Flatten(),
        layers.Dense(512, activation="relu", kernel_regularizer=l2),
        layers.Dense(512, activation="relu", kernel_regularizer=l2),
        layers.Dense(10, activation="softmax"),
    ])
