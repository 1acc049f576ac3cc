# expect: decided by the model (calibrated): RandomTranslation(0.1, 0.1) and Dropout(0.3) after each hidden layer
def build_model():
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.RandomTranslation(0.1, 0.1),
        layers.Flatten(),
        layers.Dense(512, activation="relu"),
        layers.Dropout(0.3),
        layers.Dense(512, activation="relu"),
        layers.Dropout(0.3),
        layers.Dense(10, activation="softmax"),
    ])
