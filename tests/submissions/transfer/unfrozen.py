# expect: base_frozen fails (the base is left trainable in build_model); fine_tuning fails: the fine-tuned base is frozen
def build_model(base):
    return keras.Sequential([keras.Input(shape=(28, 28, 1)), base, layers.Dense(5, activation="softmax")])


def build_finetune_model(base):
    base.trainable = False
    return keras.Sequential([keras.Input(shape=(28, 28, 1)), base, layers.Dense(5, activation="softmax")])
