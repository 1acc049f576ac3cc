# expect: head_new fails: the head ends in 10 scores, the target task has 5 classes
def build_model(base):
    base.trainable = False
    return keras.Sequential([keras.Input(shape=(28, 28, 1)), base, layers.Dense(10, activation="softmax")])


def build_finetune_model(base):
    raise NotImplementedError
