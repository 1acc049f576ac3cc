# expect: part 1 passes; strided_shapes fails at layer 2 (valid padding gives 13x13x8); strided_parameters passes (layer 3 still gives 7x7x12)
def build_model():
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.2),
        layers.Dense(10, activation="softmax"),
    ])


def build_strided_model():
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(4, 5, padding="same", activation="relu"),
        layers.Conv2D(8, 3, strides=2, activation="relu"),
        layers.Conv2D(12, 3, strides=2, padding="same", activation="relu"),
        layers.Flatten(),
        layers.Dense(200, activation="relu"),
        layers.Dense(10),
    ])
