# expect: base_used, base_frozen and head_new pass: the base called in a functional model, training=False
def build_model(base):
    base.trainable = False
    inputs = keras.Input(shape=(28, 28, 1))
    x = base(inputs, training=False)
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(5, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def build_finetune_model(base):
    raise NotImplementedError
