# expect: every check passes (functional API, separate Activation layers)
def build_model():
    inputs = keras.Input(shape=(28, 28, 1))
    x = layers.Activation("relu")(layers.Conv2D(64, (3, 3))(inputs))
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.2)(layers.Flatten()(x))
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x))


def build_strided_model():
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(4, 5, padding="same", activation="relu"),
        layers.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(12, 3, strides=(2, 2), padding="same", activation="relu"),
        layers.Flatten(),
        layers.Dense(200, activation="relu"),
        layers.Dense(10),
    ])
