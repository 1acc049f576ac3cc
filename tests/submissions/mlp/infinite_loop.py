# expect: 0 points, the time limit message
def build_model():
    while True:
        pass
