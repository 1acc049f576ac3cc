# expect: base_frozen fails (build_model leaves the base trainable); fine_tuning fails (build_finetune_model keeps the base frozen, as load_base gives it)
def build_model(base):
    base.trainable = True
    return keras.Sequential([keras.Input(shape=(28, 28, 1)), base, layers.Dense(5, activation="softmax")])


def build_finetune_model(base):
    return keras.Sequential([keras.Input(shape=(28, 28, 1)), base, layers.Dense(5, activation="softmax")])
