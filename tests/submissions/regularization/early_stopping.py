# expect: keeps_baseline passes; the grader holds out 400 images and stops early (a sample of early stopping alone: its gap is close to the threshold)
def build_model():
    return build_baseline()


def fit_options():
    return {"validation_split": 0.2,
            "early_stopping": {"monitor": "val_loss", "patience": 2, "restore_best_weights": True}}
