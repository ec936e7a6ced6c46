import numpy as np
import pytest

from wsfm.config import DataConfig
from wsfm.data.datasets import load_dataset
from wsfm.data.words import decode


def test_words_dataset_is_codes_split_by_word():
    data = load_dataset(DataConfig(kind="words", top_n=1000))
    assert data.kind == "text" and data.dim == 12 and data.train.dtype == np.int64
    train, test = set(decode(data.train)), set(decode(data.test))
    assert len(train) + len(test) == 1000 and not train & test
    # Real words for the reference: drawn from every word, held-out ones included.
    ref = decode(data.reference)
    assert len(ref) == len(test) and set(ref) <= train | test and set(ref) & test
    # What downstream code knows about the codes comes from the data, not from constants.
    info = data.text
    assert (info.vocab, info.mask_id, info.seq_len) == (27, 27, 12)
    assert set(info.train_words) == train and set(info.test_words) == test
    assert info.decode(data.test) == decode(data.test)
    with pytest.raises(ValueError, match="must be integers"):
        info.decode(data.test.astype(np.float32))


def write(tmp_path, content: bytes):
    path = tmp_path / "lines.txt"
    path.write_bytes(content)
    return DataConfig(kind="text_lines", path=str(path))


def test_text_lines_become_words(tmp_path):
    words = [f"{a}{b}{c}" for a in "abc" for b in "xyz" for c in "mn"]  # 18 distinct
    cfg = write(tmp_path, ("\n".join(words + ["Hello", "", "world", "abxm"]) + "\n").encode())
    data = load_dataset(cfg)
    got = decode(np.concatenate([data.train, data.test]))
    assert sorted(got) == sorted(set(words) | {"hello", "world", "abxm"})


@pytest.mark.parametrize("content,message", [
    (b"good\n\xff\xfe bad\n", r"not UTF-8 text \(line 2"),
    ("ok\nnaïve\n".encode(), r"lines.txt:2: 'ï' is not a letter"),
    (b"abc\n" * 30, "1 distinct non-empty lines"),
    (b"x" * 13 + b"\n", "13 characters; max_len is 12"),
])
def test_text_lines_validation_names_file_and_line(tmp_path, content, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(write(tmp_path, content))


@pytest.mark.parametrize("fraction", [0.1, 0.25])
def test_words_hold_out_test_fraction_of_the_words(fraction):
    data = load_dataset(DataConfig(kind="words", top_n=1000, test_fraction=fraction))
    n = len(data.train) + len(data.test)
    assert len(data.test) == round(fraction * n)
    assert list(data.text.test_words) == decode(data.test)


def test_the_one_hot_form_of_words_is_a_vector_dataset_a_transformer_reads():
    from wsfm.components import net_spec
    from wsfm.config import ModelConfig
    from wsfm.data.text import one_hot_dataset
    from wsfm.data.words import from_one_hot
    from wsfm.models import build_model

    words = load_dataset(DataConfig(kind="words", top_n=1000))
    data = one_hot_dataset(words)
    assert data.kind == "vector" and data.text is None and data.shape == (12, 27)
    assert data.dim == 12 * 27 and data.train.dtype == np.float32
    for a, b in ((data.train, words.train), (data.test, words.test),
                 (data.reference, words.reference)):
        assert np.array_equal(from_one_hot(a), b)
    model = ModelConfig(kind="transformer", d_model=16, n_layers=1, n_heads=2, time_dim=8)
    spec = net_spec(model, data)
    assert (spec["seq_len"], spec["vocab"], spec["mode"]) == (12, 27, "continuous")
    assert net_spec(model, words)["mode"] == "discrete"
    kind = spec.pop("kind")
    import torch

    net = build_model(kind, dim=data.dim, **spec)
    out = net(torch.from_numpy(data.train[:4]), torch.rand(4))
    assert out.shape == (4, 12 * 27)
    with pytest.raises(ValueError, match="needs text data"):
        one_hot_dataset(load_dataset(DataConfig(kind="toy2d", n_train=20, n_test=10)))
    with pytest.raises(ValueError, match="one-hot sequences"):
        net_spec(model, load_dataset(DataConfig(kind="toy2d", n_train=20, n_test=10)))
