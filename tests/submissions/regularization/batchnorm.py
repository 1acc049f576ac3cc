# expect: decided by the model (calibrated): the stub's batch normalization as written, after each hidden layer, alone
def build_model():
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Flatten(),
        layers.Dense(512, activation="relu"),
        layers.BatchNormalization(),
        layers.Dense(512, activation="relu"),
        layers.BatchNormalization(),
        layers.Dense(10, activation="softmax"),
    ])
