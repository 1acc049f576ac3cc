"""Fashion-MNIST through the stock ``keras.datasets.fashion_mnist.load_data()``.

Offline, Debian's ``dataset-fashion-mnist`` package ships the four files Keras
downloads; :func:`install` copies them into the Keras cache so the stock loader
finds them. Files are verified by the sha256 of their *decompressed* bytes, so
Debian's copies and Keras' own downloads (gzipped differently) both pass.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import GraderError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
SUBDIR = Path("datasets") / "fashion-mnist"
VERIFIED_ENV = "DEEPGRADE_DATA_VERIFIED"  # set by the grader's worker for its jail, which it bound verified files into

# sha256 of the decompressed idx files (the official Fashion-MNIST release).
FILES = {
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
}

HOW_TO_FIX = (
    "Install Debian's copy and place it in the Keras cache:\n"
    "  apt-get update && apt-get install -y dataset-fashion-mnist && deepgrade data\n"
    "or, with a network, delete the bad file and let keras.datasets.fashion_mnist.load_data() download it."
)

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def keras_home() -> Path:
    """The Keras cache folder, resolved exactly as Keras resolves it."""
    if "KERAS_HOME" in os.environ:
        return Path(os.environ["KERAS_HOME"])
    home = Path(os.path.expanduser("~"))
    return (home if os.access(home, os.W_OK) else Path("/tmp")) / ".keras"


def cache_dir() -> Path:
    return keras_home() / SUBDIR


def file_digest(path: Path) -> str:
    """sha256 of the decompressed content of a .gz file."""
    h = hashlib.sha256()
    with gzip.open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _problem(path: Path, expected: str) -> str | None:
    """What is wrong with one file, or None when it is good."""
    if not path.is_file():
        return f"{path}: missing"
    try:
        digest = file_digest(path)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        return f"{path}: unreadable ({exc})"
    if digest != expected:
        return f"{path}: corrupt (sha256 of its content is {digest[:12]}..., expected {expected[:12]}...)"
    return None


def problems(folder: Path) -> list[str]:
    """What is wrong with the four files in ``folder``; empty when all are good."""
    return [p for name, expected in FILES.items() if (p := _problem(folder / name, expected))]


def install(source: Path = DEBIAN_DIR) -> Path:
    """Make the Keras cache hold verified files, copying from ``source`` where needed. Returns the cache folder."""
    target = cache_dir()
    bad = []
    for name, expected in FILES.items():
        dst = target / name
        if _problem(dst, expected) is None:
            continue
        if (source / name).is_file():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, dst)
        if problem := _problem(dst, expected):
            bad.append(problem)
    if bad:
        raise GraderError(
            "Fashion-MNIST is not available offline: expected the four verified files in "
            f"{target}. Received:\n  " + "\n  ".join(bad),
            tip=HOW_TO_FIX,
        )
    return target


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # float32, (N, 28, 28, 1), in [0, 1]
    y: np.ndarray  # int64 labels 0..9

    def __len__(self) -> int:
        return len(self.y)


@functools.cache
def load() -> tuple[Split, Split]:
    """(train, test) as float32 images in [0, 1] of shape (28, 28, 1), through the stock Keras loader.

    Verified and read once per process: a grader that grades many submissions pays for it once. The arrays
    are read-only; take copies (fancy indexing does) before changing them. In the grader's jail, whose worker
    verified the files just before binding them read-only (``$DEEPGRADE_DATA_VERIFIED``), they are not hashed
    a second time.
    """
    if os.environ.get(VERIFIED_ENV) != "1":
        install()
    import keras

    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    return _prepare(x_train, y_train), _prepare(x_test, y_test)


def _prepare(x: np.ndarray, y: np.ndarray) -> Split:
    images, labels = (x.astype("float32") / 255.0)[..., None], y.astype("int64")
    images.flags.writeable = labels.flags.writeable = False
    return Split(images, labels)
