"""deepgrade: auto-graded exercises and quizzes for a hands-on TensorFlow/Keras course."""

__version__ = "0.1.0"
