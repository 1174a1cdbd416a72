"""Face-mask detection: dataset loading, frozen-backbone training, face detection and classification.

The top-level scripts (loader.py, train_model.py, detect_image.py, detect_webcam.py, ...) are thin
command lines over this package. Heavy libraries (TensorFlow) are imported inside functions so that
importing the package and ``--help`` stay fast.
"""

__version__ = "0.1.0"

INPUT_SIZE = 224  # classifier input: RGB uint8, INPUT_SIZE x INPUT_SIZE
