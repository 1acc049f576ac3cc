# expect: recurrent and parameters pass; accuracy fails: the right LSTM compiled with plain SGD at a small learning rate barely learns in the budget (a calibration baseline)
def build_model():
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Reshape((28, 28)),
        layers.LSTM(128),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="sparse_categorical_crossentropy")
    return model
