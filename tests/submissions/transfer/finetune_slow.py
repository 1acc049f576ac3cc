# expect: decided by the model (calibrated): the reference's head; fine-tuning with Adam(1e-5), the small end of the usual range
def build_model(base):
    base.trainable = False
    return keras.Sequential([keras.Input(shape=(28, 28, 1)), base, layers.Dropout(0.3),
                             layers.Dense(5, activation="softmax")])


def build_finetune_model(base):
    base.trainable = True
    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), base, layers.Dropout(0.3),
                              layers.Dense(5, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
