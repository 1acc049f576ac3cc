# expect: every check passes: the unchanged baseline, stopped early on a held-out fifth of the images
def build_model():
    return build_baseline()


def fit_options():
    return {"validation_split": 0.2,
            "early_stopping": {"monitor": "val_loss", "patience": 2, "restore_best_weights": True}}
