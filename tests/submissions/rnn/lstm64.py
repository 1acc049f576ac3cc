# expect: recurrent fails (units=64), parameters fail naming the LSTM
def build_model():
    inputs = keras.Input(shape=(28, 28, 1))
    x = layers.Reshape((28, 28))(inputs)
    x = layers.LSTM(64)(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x))
