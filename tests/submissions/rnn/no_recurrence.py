# expect: recurrent fails (no recurrent layer at all)
def build_model():
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])
