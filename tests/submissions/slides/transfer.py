# expect: base_used, base_frozen and head_new pass: seed 001's "TensorFlow Hub" model, a frozen feature extractor and one Dense softmax; build_finetune_model() is left as the stub (the slides show no fine-tuning code)
# Seed 001, "TensorFlow Hub"; Keras 3: hub.KerasLayer(url, trainable=False, ...) cannot go in a Keras 3 model, so the
# course's base, frozen, takes its place (28x28x1 images instead of 299x299x3); num_classes is the target task's 5.
from keras.layers import Dense
from keras.models import Sequential

num_classes = 5


def build_model(base):
    base.trainable = False
    hub_feature_extractor = base
    inception_model = Sequential(
        [keras.Input(shape=(28, 28, 1)), hub_feature_extractor, Dense(num_classes, activation='softmax')],
        name="inception_tf_hub")
    return inception_model
