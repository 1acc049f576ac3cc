# expect: every check passes: Dropout(0.3) after each hidden layer, and early stopping on the held-out loss as fit_options() suggests
def build_model():
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Flatten(),
        layers.Dense(512, activation="relu"),
        layers.Dropout(0.3),
        layers.Dense(512, activation="relu"),
        layers.Dropout(0.3),
        layers.Dense(10, activation="softmax"),
    ])


def fit_options():
    return {"validation_split": 0.2,
            "early_stopping": {"monitor": "val_loss", "patience": 3, "restore_best_weights": True}}
