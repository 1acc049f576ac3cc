# expect: fine_tuning fails (a calibration baseline): the base is unfrozen and its weights change, but Adam(0.1), a thousand times the reference's learning rate, destroys the pretrained features
def build_model(base):
    base.trainable = False
    return keras.Sequential([keras.Input(shape=(28, 28, 1)), base, layers.Dropout(0.3), layers.Dense(5, activation="softmax")])


def build_finetune_model(base):
    base.trainable = True
    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), base, layers.Dropout(0.3), layers.Dense(5, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
