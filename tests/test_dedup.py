"""dedup.py: exact and near duplicates found, distinct documents kept, the vectorised signature equals
datasketch's, the S-curve and band choice, and the jsonl command line keeps every other field."""
import json

import numpy as np
import pytest
from datasketch import MinHash

import contamination
import dedup


def to_letters(k):
    """0 -> 'a', 27 -> 'bb': synthetic words in letters, since normalize() turns every digit into 0."""
    out = ""
    while True:
        out = chr(ord("a") + k % 26) + out
        k = k // 26
        if k == 0:
            return out


VOCAB = [to_letters(k) for k in range(5000)]  # synthetic words: two random documents share almost no 5-gram


def random_doc(rng, n_words=400):
    return " ".join(rng.choice(VOCAB, size=n_words))


def edit(text, rng, n_changes):
    """Replace n_changes random words by fresh ones: each change breaks at most 5 of the word 5-grams."""
    words = text.split()
    for k in rng.choice(len(words), size=n_changes, replace=False):
        words[k] = "new" + to_letters(k)
    return " ".join(words)


def test_normalize_and_shingles():
    assert dedup.normalize("Hello, World 2024!\n\tHELLO") == ["hello", "world", "0000", "hello"]
    assert dedup.normalize("数据清洗") == ["数", "据", "清", "洗"]
    ids = dedup.word_ids("a b c d e f".split(), {})
    assert len(dedup.shingles32(ids)) == 2                    # 6 words -> 2 five-grams
    assert len(dedup.shingles32(ids[:3])) == 1                # shorter than 5 words: one shingle of all
    vocab = {}                                                # ids compare only within one shared vocab
    a, b = dedup.word_ids("a b c d e f".split(), vocab), dedup.word_ids("x a b c d e".split(), vocab)
    assert dedup.shingles32(a)[0] == dedup.shingles32(b)[1]   # "a b c d e" is the same shingle in both


def test_signature_equals_datasketch_minhash_bit_for_bit():
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 2**32, size=n, dtype=np.uint32) for n in (1, 7, 300, 20_000)]
    sig = dedup.signatures(docs, num_perm=128)                # (128, 4); 20,000 shingles span two blocks
    for k, shingles in enumerate(docs):
        m = MinHash(num_perm=128, seed=dedup.SEED, hashfunc=int)  # identity hash: the values are hashes
        m.update_batch(shingles.tolist())
        assert m.scheme == "affine32"
        np.testing.assert_array_equal(sig[:, k], m.hashvalues)


def test_signature_similarity_estimates_jaccard():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2**32, size=2000, dtype=np.uint32)
    other = np.concatenate([base[:1500], rng.integers(0, 2**32, size=500, dtype=np.uint32)])
    true = 1500 / 2500                                        # |A & B| / |A | B|
    sig = dedup.signatures([base, other])
    est = (sig[:, 0] == sig[:, 1]).mean()
    assert abs(est - true) < 4 * np.sqrt(true * (1 - true) / dedup.NUM_PERM)  # 4 standard deviations


def test_s_curve_and_band_choice():
    bands, rows = dedup.choose_bands(0.8)
    assert bands * rows <= dedup.NUM_PERM
    assert dedup.s_curve(0.95, bands, rows) > 0.99 and dedup.s_curve(0.5, bands, rows) < 0.05
    assert dedup.s_curve(0.8, 14, 8) == pytest.approx(1 - (1 - 0.8 ** 8) ** 14)   # FineWeb's setting
    lo_bands, lo_rows = dedup.choose_bands(0.5)               # a lower threshold moves the step left
    assert dedup.s_curve(0.5, lo_bands, lo_rows) > dedup.s_curve(0.5, bands, rows)


def test_dedup_removes_exact_and_near_duplicates_and_keeps_the_rest():
    rng = np.random.default_rng(2)
    originals = [random_doc(rng) for _ in range(30)]
    texts = list(originals)
    texts.append(originals[0].upper().replace(" ", "  ,"))   # exact after normalisation -> 30
    texts.append(edit(originals[1], rng, 4))                  # J ~ 0.9 -> 31
    texts.append(edit(originals[2], rng, 3))                  # J ~ 0.93 -> 32
    texts.append(edit(originals[3], rng, 40))                 # J ~ 0.4: related but not a duplicate -> 33
    keep, report = dedup.dedup(texts, threshold=0.8, verbose=False)
    assert dedup.exact_jaccard(texts[1], texts[31]) > 0.85 and dedup.exact_jaccard(texts[3], texts[33]) < 0.6
    assert report["exact_removed"] == 1 and report["near_removed"] == 2
    assert sorted(set(range(len(texts))) - set(keep)) == [30, 31, 32]
    assert sorted(map(sorted, report["clusters"])) == [[0, 30], [1, 31], [2, 32]]
    for (i, j), est in report["est_jaccard"].items():          # reported clusters agree with exact Jaccard
        assert abs(est - dedup.exact_jaccard(texts[i], texts[j])) < 0.1
    assert report["near_misses"][0][:2] == (3, 33)             # the closest pair left in is the J~0.4 one


def test_cluster_roots_agree_with_a_plain_union_find():
    """The array union-find against a dict one, on random pairs among 300 documents (long chains too)."""
    rng = np.random.default_rng(0)
    pairs = np.concatenate([rng.integers(0, 300, size=(200, 2)), np.stack([np.arange(250, 299), np.arange(251, 300)], 1)])
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    parent = {}

    def find(i):
        while parent.setdefault(i, i) != i:
            i = parent[i]
        return i
    for i, j in pairs.tolist():
        a, b = find(i), find(j)
        parent[max(a, b)] = min(a, b)
    nodes, root = dedup.cluster_roots(pairs)
    assert nodes.tolist() == sorted(parent) and root.tolist() == [find(i) for i in sorted(parent)]
    assert dedup.cluster_roots(np.zeros((0, 2), np.int64))[0].shape == (0,)


def test_clusters_are_transitive_and_keep_the_first():
    assert dedup.clusters_from_pairs(6, [(4, 5), (1, 4), (2, 3)]) == [[1, 4, 5], [2, 3]]


def test_cli_keeps_other_fields(tmp_path):
    rng = np.random.default_rng(3)
    a, b = random_doc(rng), random_doc(rng)
    rows = [{"id": "a", "text": a, "url": "http://x/a", "score": 0.5},
            {"id": "a2", "text": edit(a, rng, 2), "url": "http://x/a2", "score": 0.7},
            {"id": "b", "text": b, "meta": {"lang": "en"}}]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dedup.main([str(src), "--out", str(out), "--threshold", "0.8"])
    assert [json.loads(line) for line in out.read_text().splitlines()] == [rows[0], rows[2]]
    assert oct(out.stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize("content,error", [('{"text": "a"}\n{"text": \n', "in.jsonl:2: not valid JSON"),
                                           ('{"body": "a"}\n', "in.jsonl:1: no string field 'text'")])
def test_cli_bad_input_names_file_and_line(tmp_path, content, error):
    src = tmp_path / "in.jsonl"
    src.write_text(content)
    with pytest.raises(SystemExit, match=error):
        dedup.main([str(src), "--out", str(tmp_path / "out.jsonl")])
    assert not (tmp_path / "out.jsonl").exists()
    with pytest.raises(SystemExit, match="missing.jsonl: no such file"):
        dedup.main([str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "out.jsonl")])


def test_contamination_overlap():
    rng = np.random.default_rng(4)
    train = [random_doc(rng) for _ in range(3)]
    leaked = " ".join(train[1].split()[100:130])              # 30 words copied from train: 18 13-grams
    report = contamination.overlap(train, [("leak", leaked), ("clean", random_doc(rng, 50))], n=13)
    assert report["contaminated"] == 1 and report["worst"] == [("leak", 1.0)]
    assert report["ngram_overlap"] == pytest.approx(18 / (18 + 38))


def test_borderline_pairs_are_decided_by_the_exact_jaccard():
    """Within 3 standard deviations of the threshold the estimate is a coin toss: exact(i, j) decides."""
    exact = {(0, 1): 0.77, (0, 2): 0.81}.get
    assert not dedup.is_duplicate(0, 1, 0.82, 0.8, 256, lambda i, j: exact((i, j)))   # estimate high, truth low
    assert dedup.is_duplicate(0, 2, 0.78, 0.8, 256, lambda i, j: exact((i, j)))       # estimate low, truth high
    assert dedup.is_duplicate(0, 1, 0.95, 0.8, 256, None) and not dedup.is_duplicate(0, 1, 0.6, 0.8, 256, None)
    never = lambda i, j: pytest.fail("far from the threshold the estimate decides")   # noqa: E731
    assert dedup.is_duplicate(0, 1, 0.95, 0.8, 256, never) and not dedup.is_duplicate(0, 1, 0.6, 0.8, 256, never)
