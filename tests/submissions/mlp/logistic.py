# expect: architecture and parameters fail; the naive baseline for calibration (logistic regression): accuracy must fail
def build_model():
    return keras.Sequential([keras.Input(shape=(28, 28, 1)), layers.Flatten(), layers.Dense(10, activation="softmax")])
