# expect: keeps_baseline passes; gap fails on what the model is (no regularization added: its gap earns nothing on any seed, and it is never trained twice); the given baseline, unregularized, learns the 2,000 images by heart (a calibration baseline)
def build_model():
    return build_baseline()
