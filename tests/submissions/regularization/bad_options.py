# expect: accuracy and gap fail with a message: early stopping on val_loss needs held-out images (validation_split)
def build_model():
    return build_baseline()


def fit_options():
    return {"early_stopping": {"monitor": "val_loss", "patience": 3}}
