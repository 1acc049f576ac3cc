# expect: base_used, base_frozen, head_new and gain fail; accuracy is measured: a CNN of the base's shape trained from scratch, the base ignored (a calibration baseline)
def build_model(base):
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(5, activation="softmax"),
    ])


def build_finetune_model(base):
    return build_model(base)
