# expect: decided by the model (calibrated): the stub's dropout and weight penalty combined as written, Dropout(0.5) and l2(1e-3) on each hidden layer
def build_model():
    l2 = keras.regularizers.l2(1e-3)
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Flatten(),
        layers.Dense(512, activation="relu", kernel_regularizer=l2),
        layers.Dropout(0.5),
        layers.Dense(512, activation="relu", kernel_regularizer=l2),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
