"""quality.py: the classifier separates two small planted sets on held-out documents, is deterministic,
saves and loads, and refuses a model built with other feature settings."""
import numpy as np
import pytest

import quality
from common import UserError

SENTENCES = [  # reference-like: edited prose, Chinese and English
    "新华社北京一月四日电，我国铁路营业里程已达六万四千公里，居亚洲第一。",
    "国务院侨务办公室主任今天通过新闻媒介，向海外同胞发表新年贺词。",
    "受暖湿气流影响，今天晚上到明天，贵州南部和江南地区将有小到中雨。",
    "会议强调，要继续深化改革，扩大开放，促进经济持续快速健康发展。",
    "Shall I compare thee to a summer's day? Thou art more lovely and more temperate.",
    "The committee met on Tuesday and agreed to publish its report before the end of the year.",
    "Rough winds do shake the darling buds of May, and summer's lease hath all too short a date.",
    "The railway now carries twice as many passengers as it did ten years ago, the ministry said.",
]


def reference_docs(n, seed=0):
    rng = np.random.default_rng(seed)
    return ["\n".join(rng.choice(SENTENCES, size=int(rng.integers(3, 8)))) for _ in range(n)]


def low_docs(n, seed=0):
    # ads, keyword stuffing, symbol soup: the three junk kinds that need no reference text
    return [t for k, t in enumerate(quality.planted_junk(SENTENCES, 4 * n // 3 + 3, seed)) if k % 4 != 3][:n]


@pytest.fixture(scope="module")
def data():
    texts = reference_docs(60) + low_docs(60)
    labels = np.array([1] * 60 + [0] * 60)
    test = quality.held_out([f"doc{k}" for k in range(len(texts))], share=0.25)
    return texts, labels, test


def test_separates_two_planted_sets_on_held_out_documents(data):
    texts, labels, test = data
    model = quality.train([t for t, h in zip(texts, test) if not h], labels[~test])
    held = [t for t, h in zip(texts, test) if h]
    assert 10 <= len(held) <= 50
    assert quality.accuracy(model, held, labels[test]) == 1.0
    scores = quality.score(model, held)
    assert scores[labels[test] == 1].min() > scores[labels[test] == 0].max()  # every reference above every junk


def test_training_is_deterministic(data):
    texts, labels, _ = data
    a, b = quality.train(texts, labels, seed=3), quality.train(texts, labels, seed=3)
    assert np.array_equal(a["w"], b["w"]) and a["b"] == b["b"]
    assert quality.planted_junk(SENTENCES, 8, seed=1) == quality.planted_junk(SENTENCES, 8, seed=1)


def test_threshold_api(data):
    texts, labels, _ = data
    model = quality.train(texts, labels)
    good, bad = reference_docs(1, seed=9)[0], low_docs(1, seed=9)[0]
    assert quality.passes(model, good) and not quality.passes(model, bad)
    assert not quality.passes(model, good, threshold=1.01)  # a threshold above every score keeps nothing
    assert quality.passes(model, bad, threshold=0.0)


def test_save_and_load_give_the_same_scores(data, tmp_path):
    texts, labels, _ = data
    model = quality.train(texts, labels)
    quality.save(model, tmp_path / "q.npz")
    again = quality.load(tmp_path / "q.npz")
    assert np.array_equal(quality.score(model, texts[:5]), quality.score(again, texts[:5]))


def test_load_refuses_other_settings_and_other_files(data, tmp_path, monkeypatch):
    texts, labels, _ = data
    quality.save(quality.train(texts[:20] + texts[-20:], [1] * 20 + [0] * 20), tmp_path / "q.npz")
    monkeypatch.setattr(quality, "CHAR_NGRAMS", (2, 3))
    with pytest.raises(UserError, match="other feature settings"):
        quality.load(tmp_path / "q.npz")
    (tmp_path / "x.npz").write_text("not numpy")
    with pytest.raises(UserError, match="not a quality model"):
        quality.load(tmp_path / "x.npz")


def test_one_class_is_refused():
    with pytest.raises(UserError, match="both classes"):
        quality.train(["a", "b"], [1, 1])


def test_features_are_stable_and_normalised():
    ids, values = quality.features("中文和English text")
    assert np.all(np.diff(ids) > 0)  # distinct, sorted
    assert np.sqrt((values.astype(np.float64) ** 2).sum()) == pytest.approx(1.0, rel=1e-5)
    assert np.array_equal(quality.features("中文和English text")[0], ids)  # no per-process hash seed
    assert quality.held_out(["a", "b", "c"]).tolist() == quality.held_out(["c", "b", "a"]).tolist()[::-1]
