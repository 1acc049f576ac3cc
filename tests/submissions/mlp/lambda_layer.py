# expect: 0 points, the Lambda layer is refused without being executed
def build_model():
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Lambda(lambda x: x * 2.0),
        layers.Flatten(),
        layers.Dense(256, activation="relu"),
        layers.Dropout(0.4),
        layers.Dense(256, activation="relu"),
        layers.Dropout(0.4),
        layers.Dense(10, activation="softmax"),
    ])
