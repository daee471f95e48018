"""
quality.py: a model-based quality filter, trained here in seconds: fastText's idea in a page of numpy.

The rule lists (clean.py, clean_cjk.py) remove what is obviously broken. DCLM and FineWeb-Edu go further:
they train a classifier to tell "reference" text (what we want more of) from ordinary web text, and keep
the documents it scores highly. This is that recipe in miniature:
    features(text)      hashed character 1-3-grams (Chinese has no spaces: its characters are its words)
                        and Latin word 1-2-grams, as counts, L2-normalised: a bag of n-grams
    train(texts, labels)  logistic regression by plain SGD, one document at a time, lr decaying to 0
                        (fastText's optimiser; fastText's hidden layer, for two classes, only factors
                        this same linear model)
    score(model, texts)   P(reference) per text;  passes(model, text, threshold): prepare's --quality-threshold
    save / load           one .npz (weights, bias, the feature settings)
    planted_junk(...)     low-quality text we write ourselves: spam, keyword stuffing, shuffled characters
What it learns is whatever separates the two sets, genre and topic included; and a bag of n-grams is blind
to order: news with its characters shuffled still scores ~0.8 (docs/chinese-and-web.md has the numbers).
"""
import io
import re
import zlib

import numpy as np

from common import UserError, write_atomic

BUCKETS = 1 << 20  # hashed feature space: 1 M weights (4 MB); collisions are rare enough at this size
CHAR_NGRAMS = (1, 2, 3)
MAX_CHARS = 20_000  # a longer document is scored on its head: enough to judge, and cost stays bounded
LATIN_WORD = re.compile(r"[a-z0-9']+")

# ---------------------------------------------------------------------------------------------------------
# Features: a text -> (feature ids, values), the sparse row of a bag-of-n-grams matrix


def char_ngram_ids(text, n):
    """(len - n + 1,) bucket ids of every character n-gram: a polynomial hash of the code points,
    computed for all positions at once (uint64 wrap-around is the modulus), tagged with n."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(codes) < n:
        return np.zeros(0, dtype=np.int64)
    count = len(codes) - n + 1
    h = np.full(count, n, dtype=np.uint64)  # the tag: "ab" as a 2-gram differs from "ab" inside a 3-gram
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * np.uint64(0x100000001B3) + codes[j:j + count]
        h ^= h >> np.uint64(29)  # mix the high bits down before taking the low ones
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
    return (h % np.uint64(BUCKETS)).astype(np.int64)


def word_ngram_ids(text):
    """Bucket ids of Latin words and word pairs (crc32: stable across runs, unlike Python's hash())."""
    words = LATIN_WORD.findall(text)
    grams = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
    return np.array([zlib.crc32(g.encode()) % BUCKETS for g in grams], dtype=np.int64)


def features(text):
    """text -> (ids, values): each distinct feature once, its count divided by the row's L2 norm, so a
    long and a short document of the same kind land at the same scale."""
    text = " ".join(text[:MAX_CHARS].lower().split())  # case and line breaks carry no quality here
    ids = np.concatenate([char_ngram_ids(text, n) for n in CHAR_NGRAMS] + [word_ngram_ids(text)])
    ids, counts = np.unique(ids, return_counts=True)
    return ids, (counts / max(1e-9, np.sqrt((counts.astype(np.float64) ** 2).sum()))).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# The model: z = w . x + b, P(reference) = sigmoid(z)

def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def train(texts, labels, epochs=5, lr=0.5, l2=1e-6, seed=0):
    """Logistic regression by SGD over documents in a seeded random order, lr falling linearly to 0 as
    in fastText. labels: 1 = reference quality, 0 = low quality. Deterministic for a given seed.
    Returns the model: {"w": (BUCKETS,) float32, "b": float, "threshold": 0.5}."""
    if len(set(labels)) != 2:
        raise UserError("quality: training needs documents of both classes (reference and low quality)")
    rows = [features(t) for t in texts]
    y = np.asarray(labels, dtype=np.float32)
    w, b = np.zeros(BUCKETS, dtype=np.float32), 0.0
    order_rng = np.random.default_rng(seed)
    steps, step = epochs * len(rows), 0
    for _ in range(epochs):
        for i in order_rng.permutation(len(rows)):
            ids, values = rows[i]
            rate = lr * (1 - step / steps)
            g = sigmoid(w[ids] @ values + b) - y[i]  # d(log loss)/dz
            w[ids] -= rate * (g * values + l2 * w[ids])  # ids are distinct: plain indexing is exact
            b -= rate * g
            step += 1
    return {"w": w, "b": float(b), "threshold": 0.5}


def score(model, texts):
    """(n,) P(reference quality) for each text."""
    return np.array([sigmoid(model["w"][ids] @ values + model["b"]) for ids, values in map(features, texts)])


def passes(model, text, threshold=None):
    """The per-document filter: keep the text if its score reaches the threshold (prepare's
    --quality-threshold; the model's own 0.5 when none is given)."""
    return float(score(model, [text])[0]) >= (model["threshold"] if threshold is None else threshold)


def save(model, path):
    """One .npz: the weights (compressed: most buckets stay 0), bias, threshold and feature settings,
    so a model trained with other settings is refused at load instead of scoring nonsense."""
    def write(f):
        buffer = io.BytesIO()
        np.savez_compressed(buffer, w=model["w"], b=model["b"], threshold=model["threshold"],
                            buckets=BUCKETS, char_ngrams=np.array(CHAR_NGRAMS))
        f.write(buffer.getvalue())
    write_atomic(path, write)


def load(path):
    try:
        with np.load(path) as f:
            if int(f["buckets"]) != BUCKETS or tuple(f["char_ngrams"]) != CHAR_NGRAMS:
                raise UserError(f"{path}: trained with other feature settings; train it again")
            return {"w": f["w"], "b": float(f["b"]), "threshold": float(f["threshold"])}
    except (OSError, KeyError, ValueError) as e:
        raise UserError(f"{path}: not a quality model ({type(e).__name__}: {e})") from None


# ---------------------------------------------------------------------------------------------------------
# Data: low-quality text we plant ourselves, and a held-out split

AD_LINES = ["【限时特价】全场包邮，点击领取优惠券", "加微信免费领取资料，名额有限", "代开各类发票，电话咨询",
            "正品行货，假一赔十，欢迎选购", "Cheap flights and hotels, book now and save 40%!",
            "Click here to claim your free prize", "Best price guaranteed, limited offer, buy two get one free",
            "Work from home and earn $5000 a week"]
STUFFING = ("免费 下载 高清 在线 观看 最新 电影 电视剧 小说 破解版 手机版 官网 cheap free download online "
            "best price hotel flights casino bonus loan crypto deal").split()
SYMBOLS = list("★☆◆◇■□●○▲△※→←↑↓♥♦♣♠#@$%&*|~^")


def planted_junk(reference_texts, n, seed=0):
    """n low-quality documents, four kinds in turn: ads repeated, keyword stuffing, symbol soup, and
    a reference text with its characters shuffled (the same letters, no language: what a perplexity
    filter catches). Seeded: the same reference texts give the same junk."""
    rng = np.random.default_rng(seed)
    docs = []
    for k in range(n):
        kind = k % 4
        if kind == 0:
            docs.append("\n".join(rng.choice(AD_LINES, size=int(rng.integers(8, 30)))))
        elif kind == 1:
            docs.append(" ".join(rng.choice(STUFFING, size=int(rng.integers(50, 300)))))
        elif kind == 2:
            docs.append("".join(rng.choice(SYMBOLS + list("的一是在了有和人中大"), size=int(rng.integers(100, 800)))))
        else:
            chars = list(reference_texts[k % len(reference_texts)][:2000])
            rng.shuffle(chars)
            docs.append("".join(chars))
    return docs


def held_out(names, share=0.2):
    """A stable split by document name (crc32 of the name): the same document is always on the same
    side, whatever else is in the set or its order. Returns a boolean mask: True = held out."""
    return np.array([zlib.crc32(str(name).encode()) % 1000 < share * 1000 for name in names])


def accuracy(model, texts, labels, threshold=0.5):
    return float(((score(model, texts) >= threshold) == np.asarray(labels, dtype=bool)).mean())


def score_table(model, groups, threshold=0.5):
    """{source: {"docs", "p10", "p50", "p90", "kept"}}: the score distribution of each named group of
    texts and the share the threshold keeps, for the report."""
    table = {}
    for source, texts in groups.items():
        s = score(model, texts)
        p10, p50, p90 = np.percentile(s, [10, 50, 90])
        table[source] = {"docs": len(texts), "p10": round(float(p10), 3), "p50": round(float(p50), 3),
                         "p90": round(float(p90), 3), "kept": round(float((s >= threshold).mean()), 3)}
    return table


if __name__ == "__main__":  # train on the built-in Chinese corpora: news = reference; reviews + junk = low
    import json
    import time
    import zh_corpus
    news = list(zh_corpus.zh_news_docs("data/cache", {}))
    reviews = list(zh_corpus.zh_reviews_docs("data/cache", {}))
    junk = [{"source": "junk", "name": f"junk#{k}", "text": t}
            for k, t in enumerate(planted_junk([d["text"] for d in news], 400))]
    docs = news + reviews + junk
    labels = np.array([d["source"] == "zh_news" for d in docs], dtype=np.int64)
    test = held_out([d["name"] for d in docs])
    t0 = time.perf_counter()
    model = train([d["text"] for d, t in zip(docs, test) if not t], labels[~test])
    print(f"trained on {int((~test).sum())} documents in {time.perf_counter() - t0:.1f} s")
    held = [d["text"] for d, t in zip(docs, test) if t]
    print(f"held-out accuracy {accuracy(model, held, labels[test]):.3f} on {len(held)} documents")
    groups = {s: [d["text"] for d, t in zip(docs, test) if t and d["source"] == s] for s in ("zh_news", "zh_reviews", "junk")}
    print(json.dumps(score_table(model, groups), indent=1))
    save(model, "data/quality.npz")
    print("saved data/quality.npz")
