# expect: decided by the model (calibrated): the smallest head, Dense(5) alone on the frozen base; fine-tuning with Adam(1e-4)
def build_model(base):
    base.trainable = False
    return keras.Sequential([keras.Input(shape=(28, 28, 1)), base, layers.Dense(5, activation="softmax")])


def build_finetune_model(base):
    base.trainable = True
    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), base, layers.Dense(5, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
