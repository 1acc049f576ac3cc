# expect: keeps_baseline and accuracy pass; gap fails: the given baseline, unregularized, learns the 2,000 images by heart (a calibration baseline)
def build_model():
    return build_baseline()
