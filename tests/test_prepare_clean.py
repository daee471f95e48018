"""clean.py: every cleaning rule on a document it must remove and one it must keep; PII, Gutenberg, scripts."""
import numpy as np
import pytest

import clean

WORDS = ("the of and to in that have with be it for not on as he she they we you this but his her from by "
         "king queen lord lady night day heart blood love death crown sword castle river forest winter "
         "summer letter answer promise honour fortune father mother brother daughter servant soldier "
         "speaks walks waits hears thinks fears sleeps remembers forgets returns departs arrives").split()


def prose(n_words=300, seed=0, per_line=12):
    """Random English-looking prose: lines of 12 words, a blank line every 5 lines."""
    words = np.random.default_rng(seed).choice(WORDS, size=n_words).tolist()
    lines = [" ".join(words[i:i + per_line]) + "." for i in range(0, n_words, per_line)]
    return "\n".join(line + ("\n" if k % 5 == 4 else "") for k, line in enumerate(lines))


GOOD = prose()
BAD = {
    "word_count": "the king and the queen speak to the lord of the castle.",
    "mean_word_length": " ".join(["a b c d e f g h the of and"] * 10),
    "symbol_ratio": GOOD + "\n" + "# " * 60,
    "bullet_lines": "\n".join("- " + line for line in GOOD.splitlines() if line.strip()),
    "ellipsis_lines": "\n".join(line + " ..." for line in GOOD.splitlines() if line.strip()),
    "alpha_words": GOOD + "\n" + " ".join(str(i) for i in range(200)),
    "stop_words": " ".join(np.random.default_rng(1).choice(WORDS[30:], size=200)),
    "duplicate_lines": GOOD + "\n" + "\n".join(["the king speaks to the queen of the castle."] * 20),
    "duplicate_paragraphs": "\n\n".join([prose(60, seed=2)] * 4),
    "top_ngrams": GOOD + " " + " ".join(["honourable gentlemen"] * 60),
    "duplicate_ngrams": prose(200, seed=3) + " " + " ".join([prose(30, seed=4, per_line=30).rstrip(".")] * 3),
}


@pytest.mark.parametrize("rule", clean.QUALITY + clean.REPETITION, ids=lambda r: r.__name__)
def test_rule_removes_its_example_and_keeps_good_prose(rule):
    assert rule(clean.cut_up(BAD[rule.__name__])), f"{rule.__name__} missed its bad example"
    assert not rule(clean.cut_up(GOOD)), f"{rule.__name__} removed good prose"


def test_good_prose_passes_every_rule_and_is_unchanged():
    counters = clean.new_counters()
    assert clean.clean_document(GOOD, False, set(), counters) == GOOD
    assert all(c["docs"] == 0 for c in counters["rules"].values())


def test_removal_is_counted_once_and_skip_rule_keeps_the_document():
    counters = clean.new_counters()
    text = BAD["duplicate_lines"]
    assert clean.clean_document(text, False, set(), counters) is None
    assert counters["rules"]["duplicate_lines"] == {"docs": 1, "chars": len(text)}
    assert sum(c["docs"] for c in counters["rules"].values()) == 1
    counters = clean.new_counters()  # the repeated lines are also repeated n-grams: that rule fires next
    assert clean.clean_document(text, False, {"duplicate_lines"}, counters) is None
    assert counters["rules"]["duplicate_ngrams"]["docs"] == 1
    repetition = {r.__name__ for r in clean.REPETITION}
    assert clean.clean_document(text, False, repetition, clean.new_counters()) == text


def test_word_rules_skip_code_and_chinese_gets_the_character_rules():
    counters = clean.new_counters()
    assert clean.clean_document(BAD["bullet_lines"], True, set(), counters) == BAD["bullet_lines"]
    chinese = "数据清洗是预训练中最重要的工作之一。" * 3  # few "words", no stop words: Gopher's rules can't judge it
    assert clean.clean_document(chinese, False, set(), counters) is None  # clean_cjk's: 54 characters, too short
    assert counters["rules"]["cjk_too_short"]["docs"] == 1 and counters["scripts"]["cjk"] == len(chinese)
    news = ("新华社北京一月一日电。今天，首都各界人士在人民大会堂举行新年联欢会，共同庆祝一九九八年的到来。"
            "国家领导人同大家一起观看了演出，并向全国各族人民致以新年的祝贺。会场气氛热烈，"
            "文艺工作者表演了歌舞、戏曲和杂技等精彩节目。\n许多群众表示，新的一年里要努力工作，为国家的发展作出贡献。")
    assert clean.clean_document(news, False, set(), counters) == news  # real news passes them
    russian = "Привет, мир. " * 30  # no rules for Cyrillic yet: kept as it is, counted by script
    assert clean.clean_document(russian, False, set(), counters) == russian


@pytest.mark.parametrize("text,script", [("数据清洗很重要", "cjk"), ("The king is dead", "latin"),
                                         ("Привет, мир", "cyrillic"), ("12 + 34 = 46", "none")])
def test_detect_script(text, script):
    assert clean.detect_script(text) == script


@pytest.mark.parametrize("text,expected", [
    ("mail me at jane.doe+ml@example.co.uk today", "mail me at <EMAIL> today"),
    ("server 192.168.0.1, then 10.0.0.255.", "server <IP>, then <IP>."),
    ("call (555) 123-4567 or +1 555.123.4567", "call <PHONE> or <PHONE>"),
    ("London: +44 20 7946 0958", "London: <PHONE>"),
])
def test_pii_is_replaced(text, expected):
    counts = {}
    assert clean.scrub_pii(text, counts) == expected
    assert sum(counts[k] for k in ("email", "ipv4", "phone")) == expected.count("<")  # + phone_<format> detail


@pytest.mark.parametrize("text", ["version 1.2.3.4.5", "python 3.11.7", "on 2026-11-24 at 12:50",
                                  "999.999.999.999", "id 1234567890", "x = a@b", "see section 4.2.1"])
def test_pii_leaves_lookalikes_alone(text):
    assert clean.scrub_pii(text, {}) == text


def test_gutenberg_header_and_footer_are_stripped():
    body = "HAMLET\n\nTo be, or not to be."
    book = ("The Project Gutenberg EBook of Hamlet\nLicence text...\n"
            "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\n" + body +
            "\n*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\nMore licence text.\n")
    assert clean.strip_gutenberg(book) == body
    assert clean.strip_gutenberg(body) == body
    counters = clean.new_counters()
    clean.clean_document(book, True, set(), counters)
    assert counters["rules"]["gutenberg"] == {"docs": 1, "chars": len(book) - len(body)}


def test_ngram_fractions_by_hand():
    # "a b a b a b": the top 2-gram "a b" occurs 3 times, 2 characters each, of 6 characters -> 1.0
    doc = clean.cut_up("a b a b a b")
    assert clean.ngram_fractions(doc)[2] == pytest.approx(1.0)
    # 5 distinct words then the same 5 again: the second copy repeats the 5-gram: 5 of 10 characters
    doc = clean.cut_up("q w e r t q w e r t")
    assert clean.ngram_fractions(doc)[5] == pytest.approx(0.5)
