# expect: architecture and parameters pass (seed 001's MLP and its model.summary(): 269,322 parameters); accuracy fails in the smoke profile: the slides' own compile line, optimizer='sgd' (SGD at 0.01), learns slowly in 3 epochs, and the message names it
# Seed 001, "Explore MLPs" and "Keras model.compile()", as written; Keras 3 needs only the 28x28x1 Input and a Flatten
# where the slides feed flat vectors (input_shape=(784,)).
from keras.layers import Activation, Dense, Dropout, Flatten
from keras.models import Sequential


def build_model():
    model = Sequential()
    model.add(keras.Input(shape=(28, 28, 1)))
    model.add(Flatten())
    model.add(Dense(256))
    model.add(Activation('relu'))
    model.add(Dropout(0.4))
    model.add(Dense(256))
    model.add(Activation('relu'))
    model.add(Dropout(0.4))
    model.add(Dense(10))
    model.add(Activation('softmax'))
    model.compile(optimizer='sgd', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
    return model
