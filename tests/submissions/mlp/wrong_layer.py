# expect: architecture fails at layer 3 (a Dense where Dropout belongs); parameters fail too
def build_model():
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Flatten(),
        layers.Dense(256, activation="relu"),
        layers.Dense(256, activation="relu"),
        layers.Dropout(0.4),
        layers.Dense(256, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
