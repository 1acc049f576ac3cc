# expect: recurrent fails (a GRU, not an LSTM); parameters fail at layer 2
def build_model():
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Reshape((28, 28)),
        layers.GRU(128),
        layers.Dense(10, activation="softmax"),
    ])
