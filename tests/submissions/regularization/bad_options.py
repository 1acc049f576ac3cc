# expect: accuracy and gap fail with a message naming the option: early stopping on val_loss without held-out images
def build_model():
    return build_baseline()


def fit_options():
    return {"early_stopping": {"monitor": "val_loss", "patience": -1}}
