# expect: decided by the model (calibrated): a ten times stronger weight penalty, l2(1e-2) on each hidden layer, alone
def build_model():
    l2 = keras.regularizers.l2(1e-2)
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Flatten(),
        layers.Dense(512, activation="relu", kernel_regularizer=l2),
        layers.Dense(512, activation="relu", kernel_regularizer=l2),
        layers.Dense(10, activation="softmax"),
    ])
