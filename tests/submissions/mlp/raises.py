# expect: 0 points, "build_model() raised ValueError"
def build_model():
    model = keras.Sequential([layers.Flatten(), layers.Dense(256, activation="relu")])
    raise ValueError("I am not sure how many units the last layer needs")
