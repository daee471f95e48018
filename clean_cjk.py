"""
clean_cjk.py: quality and repetition rules for Chinese (CJK) documents, counted in characters, not words.

clean.py's Gopher rules split on whitespace; Chinese has no spaces, so a "word" there is a whole sentence
and every rule misfires. FineWeb-2 (Penedo et al. 2025, github.com/huggingface/fineweb-2) re-tuned the
same rules per language; its Chinese file, configs/cmn_Hani.yml, gives the thresholds used here. It counts
n-grams and stop words on *words* from a Chinese word segmenter; we have no segmenter, so we count
characters (a Chinese word is 1-2 characters, and every stop word on its list is one character).
Where a rule has no published Chinese threshold, it says so and gives the measurement it was set from.

Every rule is a function `name(doc) -> bool` (True = remove) over the text cut up once (cut_up), the
same shape as clean.py's, so clean.py can call `apply_cjk_rules` where it skips CJK documents today.
Measured on the built-in corpora (docs/chinese-and-web.md): they keep 2,641 of 2,696 zh_news articles (98%;
the rest are stock tables, name lists, poems and law clauses) and 1,349 of 1,353 zh_reviews documents.
"""
import re
from types import SimpleNamespace

import numpy as np

from language import char_kinds

# ---------------------------------------------------------------------------------------------------------
# A document cut up once: its lines, its visible characters, and what kind each character is


def cut_up(text):
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    visible = re.sub(r"\s+", "", text)
    return SimpleNamespace(text=text, lines=lines, visible=visible, kinds=char_kinds(visible), ngram_fractions=None)


# ---------------------------------------------------------------------------------------------------------
# Quality rules

MIN_CHARS = 100


def too_short(doc):          # fewer than 100 visible characters. No Chinese threshold is published; Gopher's
    return len(doc.visible) < MIN_CHARS  # "fewer than 50 words" is ~100 characters of Chinese (1-2 per word)


MIN_CJK_SHARE = 0.5


def low_cjk_share(doc):      # under half the visible characters are CJK: ours, not published; 7 of 2,696
    return doc.kinds["cjk"] < MIN_CJK_SHARE * max(1, len(doc.visible))  # zh_news articles, all tables of figures


# A "word" for this rule: one CJK character, or a run of Latin letters and digits ("iPhone", "１９９８", "9.73"),
# or one other character (punctuation, symbol). A number is one word, as in a segmenter's output.
WORD = re.compile(r"[0-9A-Za-z\u00c0-\u024f\uff10-\uff19\uff21-\uff3a\uff41-\uff5a.．%％]+|\S")
HAS_LETTER = re.compile(r"[^\W\d_]")
MIN_ALPHA_WORDS = 0.735


def non_letters(doc):        # FineWeb-2 cmn max_non_alpha_words_ratio 0.735: under 73.5% of words contain a letter
    words = WORD.findall(doc.visible)
    return sum(bool(HAS_LETTER.search(w)) for w in words) < MIN_ALPHA_WORDS * max(1, len(words))


MAX_SYMBOL_SHARE = 0.1


def symbol_ratio(doc):       # Gopher: "symbol-to-word ratio greater than 0.1"; per character here: emoji, ★, ◆,
    return doc.kinds["other"] > MAX_SYMBOL_SHARE * max(1, len(doc.visible))  # box drawing, U+FFFD mojibake


# FineWeb-2 configs/cmn_Hani.yml `stopwords`, its list for Chinese (simplified and traditional forms)
STOP_CHARS = set("的年在月是和日了於·為有被人中为他與後也而由")


def stop_chars(doc):         # FineWeb-2 with Gopher's min_stop_words=2: fewer than 2 of its Chinese stop words
    return len(STOP_CHARS & set(doc.visible)) < 2


# FineWeb's stop characters (. ' " ! ?) and their Chinese forms; a closing bracket ends the credit line that
# follows a sentence in news ("...。（新华社记者摄）").
LINE_END = ("。", "！", "？", "…", "”", "」", "』", "；", "）", ".", "!", "?", '"', "'", ")")
MIN_PUNCT_LINES = 0.106


def punct_lines(doc):        # FineWeb-2 cmn line_punct_thr 0.106: at most 10.6% of lines end in punctuation
    return sum(line.endswith(LINE_END) for line in doc.lines) <= MIN_PUNCT_LINES * max(1, len(doc.lines))


# ---------------------------------------------------------------------------------------------------------
# Repetition rules (FineWeb-2 cmn_Hani.yml; Gopher's table A1 for the definitions)

def duplicate_fraction(items):
    """(fraction of items that repeat an earlier item, fraction of characters in those repeats): lines or
    paragraphs, any script. clean.py's Gopher rules call it too."""
    seen, dup_items, dup_chars = set(), 0, 0
    for item in items:
        if item in seen:
            dup_items, dup_chars = dup_items + 1, dup_chars + len(item)
        seen.add(item)
    return dup_items / max(1, len(items)), dup_chars / max(1, sum(map(len, items)))


def duplicate_lines(doc):    # FineWeb-2 cmn dup_line_frac 0.287
    return duplicate_fraction(doc.lines)[0] > 0.287


def duplicate_line_chars(doc):  # FineWeb-2 char_duplicates_ratio 0.1 (the same for every language)
    return duplicate_fraction(doc.lines)[1] >= 0.1


# FineWeb-2 counts n-grams of *words*. A word of the People's Daily corpus is 1.76 characters on average
# (measured on its own segmentation: 948,400 words, punctuation aside), so a word n-gram spans about
# 1.76 n characters: each limit is applied to character n-grams of that span. Taken literally (5 characters
# for 5 words), the rule alone removed 81 zh_news articles (3.0%; scaled: 15), mostly laws and reports
# whose long names recur (中华人民共和国, 国家主席江泽民).
CHARS_PER_WORD = 1.76
FINEWEB2_TOP_NGRAMS = {2: 0.256, 3: 0.201, 4: 0.171}                                 # cmn top_n_grams
FINEWEB2_DUP_NGRAMS = {5: 0.198, 6: 0.182, 7: 0.167, 8: 0.154, 9: 0.14, 10: 0.127}  # cmn dup_n_grams
TOP_NGRAM_LIMITS = {round(n * CHARS_PER_WORD): limit for n, limit in FINEWEB2_TOP_NGRAMS.items()}
DUP_NGRAM_LIMITS = {round(n * CHARS_PER_WORD): limit for n, limit in FINEWEB2_DUP_NGRAMS.items()}


def ngram_ids(codes, sizes):
    """{n: (len - n + 1,) int64 ids} for each n in sizes: equal ids at two positions iff the character
    n-grams there are equal. Built one character at a time: the n-gram at i is the pair (id of the
    (n-1)-gram at i, character i + n - 1), renumbered by np.unique. Exact (no hash, so no collision), and
    every step sorts plain int64s."""
    ids, out = codes.astype(np.int64), {}
    for n in range(2, max(sizes) + 1):
        pair = ids[:-1] * 0x110000 + codes[n - 1:]  # 0x110000: one more than the largest code point
        _, ids = np.unique(pair, return_inverse=True)
        if n in sizes:
            out[n] = ids
    return out


def ngram_fractions(doc):
    """{n: fraction of characters}: for the TOP_NGRAM_LIMITS sizes, the share of the most frequent n-gram
    (count * n / total); for the DUP_NGRAM_LIMITS sizes, the share of characters covered by an n-gram that
    already occurred earlier in the document."""
    if doc.ngram_fractions is not None:
        return doc.ngram_fractions
    codes = np.frombuffer(doc.visible.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)  # 1 per character
    out = {n: 0.0 for n in [*TOP_NGRAM_LIMITS, *DUP_NGRAM_LIMITS]}
    for n, ids in ngram_ids(codes, set(out)).items():
        if len(ids) < 2:
            continue
        if n in TOP_NGRAM_LIMITS:
            top = np.bincount(ids).max()
            out[n] = top * n / len(codes) if top > 1 else 0.0
        else:
            order = np.argsort(ids, kind="stable")  # equal n-grams side by side, earliest first
            later = order[1:][ids[order[1:]] == ids[order[:-1]]]  # positions repeating an earlier n-gram
            starts = np.bincount(later, minlength=len(codes) + 1) - np.bincount(later + n, minlength=len(codes) + 1)
            out[n] = float((np.cumsum(starts[:-1]) > 0).mean())  # characters inside at least one repeat
    doc.ngram_fractions = out
    return out


def top_ngrams(doc):
    return any(ngram_fractions(doc)[n] > limit for n, limit in TOP_NGRAM_LIMITS.items())


def duplicate_ngrams(doc):
    return any(ngram_fractions(doc)[n] > limit for n, limit in DUP_NGRAM_LIMITS.items())


QUALITY = [too_short, low_cjk_share, non_letters, symbol_ratio, stop_chars, punct_lines]
REPETITION = [duplicate_lines, duplicate_line_chars, top_ngrams, duplicate_ngrams]
CJK_RULES = QUALITY + REPETITION
CJK_RULE_NAMES = ["cjk_" + rule.__name__ for rule in CJK_RULES]  # prefixed: clean.py has its own symbol_ratio ...


# ---------------------------------------------------------------------------------------------------------
# All rules on one document

def failed_rule(text, skip=()):
    """The name of the first rule that removes `text` ("cjk_too_short", ...), or None if it passes."""
    doc = cut_up(text)
    for rule, name in zip(CJK_RULES, CJK_RULE_NAMES):
        if name not in skip and rule(doc):
            return name
    return None


def apply_cjk_rules(text, skip, counters, name=None):
    """clean.py's contract for one CJK document: the text, or None if a rule removed it. counters is
    clean.new_counters()'s dict: the rule's {"docs", "chars"} row and up to 3 example names are updated
    (rows are created on first use, so clean.py's RULE_NAMES need not list them)."""
    rule = failed_rule(text, skip)
    if rule is None:
        return text
    row = counters["rules"].setdefault(rule, {"docs": 0, "chars": 0})
    row["docs"] += 1
    row["chars"] += len(text)
    examples = counters.setdefault("removed_examples", {}).setdefault(rule, [])
    if name is not None and len(examples) < 3:
        examples.append(name)
    return None
