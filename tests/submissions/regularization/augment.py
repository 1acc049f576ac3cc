# expect: decided by the model (calibrated): the stub's data augmentation as written, RandomTranslation(0.1, 0.1) before the network, alone
def build_model():
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.RandomTranslation(0.1, 0.1),
        layers.Flatten(),
        layers.Dense(512, activation="relu"),
        layers.Dense(512, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
