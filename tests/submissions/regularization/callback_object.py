# expect: accuracy and gap fail with a message: fit_options() must return data, not a keras callback
def build_model():
    return build_baseline()


def fit_options():
    return {"early_stopping": keras.callbacks.EarlyStopping(patience=2)}
