"""Fashion-MNIST from Debian's package into the Keras cache, verified; bad files get one clear error."""

import gzip
import shutil

import pytest

from deepgrade.errors import GraderError
from deepgrade.grader import data


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras"


def test_install_copies_and_verifies_debian_files(keras_home):
    folder = data.install()
    assert folder == keras_home / "datasets" / "fashion-mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(data.FILES)
    assert data.problems(folder) == []


def test_stock_loader_reads_the_cache(keras_home):
    train, test = data.load()
    assert train.x.shape == (60000, 28, 28, 1) and test.x.shape == (10000, 28, 28, 1)
    assert train.x.dtype == "float32" and 0.0 <= train.x.min() and train.x.max() <= 1.0
    assert sorted(set(test.y.tolist())) == list(range(10))
    assert (test.y == 9).sum() == 1000  # the official test set: 1,000 images per class


def test_missing_source_is_one_clear_error(keras_home, tmp_path):
    with pytest.raises(GraderError) as info:
        data.install(source=tmp_path / "empty")
    text = str(info.value)
    assert "missing" in text and "apt-get install -y dataset-fashion-mnist" in text


def test_corrupt_file_is_detected_and_replaced(keras_home, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(data.DEBIAN_DIR, source)
    bad = source / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(bad.read_bytes()))
    content[100] ^= 1  # one flipped bit in one label
    bad.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(GraderError, match=r"t10k-labels-idx1-ubyte\.gz: corrupt"):
        data.install(source=source)
    # the good copy repairs the cache
    assert data.install() == keras_home / "datasets" / "fashion-mnist"


def test_truncated_file_is_unreadable_not_a_crash(keras_home):
    folder = data.install()
    path = folder / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    assert any("unreadable" in p for p in data.problems(folder))
