"""language.py: language ID on known sentences, the zh-variety folding, the --languages filter and its
counts, and the CJK character counts the quality rules use."""
import pytest

import language
from common import UserError

KNOWN = [
    ("我今天用Python写了一个爬虫，效果不错。", "zh"),
    ("價格實惠，送貨很快，包裝也很好。", "zh"),  # traditional characters are Chinese too
    ("新华社北京１月４日电，我国铁路营业里程已达六万四千公里，居亚洲第一。", "zh"),
    ("To be, or not to be, that is the question.", "en"),
    ("Please install numpy before running train.py on the cluster.", "en"),
    ("Le chat est sur la table, et il dort depuis ce matin.", "fr"),
    ("Der schnelle braune Fuchs springt über den faulen Hund.", "de"),
    ("今日はとても良い天気ですね。", "ja"),  # kana: Japanese, not Chinese, though clean.py's script is "cjk"
    ("오늘 날씨가 정말 좋네요.", "ko"),
]


@pytest.mark.parametrize("text,lang", KNOWN)
def test_known_sentences(text, lang):
    found, confidence = language.detect(text)
    assert found == lang and 0.5 < confidence <= 1.0


def test_short_mandarin_is_zh_not_a_variety():
    # the raw model says yue 0.67 / zh 0.25 for this; folded, it is zh with their sum
    assert language.detect("你好世界")[0] == "zh"
    assert language.detect("你好世界")[1] > 0.9


def test_no_letters_is_undetermined():
    assert language.detect("") == ("und", 0.0)
    assert language.detect("1234 -- !!! ２０２６") == ("und", 0.0)


def test_filter_keeps_chosen_languages_and_counts_each():
    wanted, counts = language.parse_languages("zh, en"), {}
    kept = [language.check_language(t, wanted, counts)[0] for t, _ in KNOWN]
    assert kept == [lang in ("zh", "en") for _, lang in KNOWN]
    assert counts["zh"]["docs"] == 3 and counts["zh"]["kept"] == 3 and counts["fr"]["kept"] == 0
    assert counts["en"]["chars"] == sum(len(t) for t, lang in KNOWN if lang == "en")


def test_an_unsure_guess_is_not_kept():
    # a two-letter text: the model guesses, with little confidence; CCNet's 0.5 keeps it out
    lang, confidence = language.detect("ok")
    assert confidence < language.MIN_CONFIDENCE
    assert not language.check_language("ok", {lang}, {})[0]
    assert language.check_language("ok", {lang}, {}, min_confidence=0.0)[0]


def test_no_filter_keeps_everything():
    assert language.parse_languages("") is None
    assert language.check_language("Bonjour tout le monde, comment allez-vous ?", None, {})[0]


def test_unknown_code_is_one_line_error():
    with pytest.raises(UserError, match="klingon"):
        language.parse_languages("zh,klingon")
    with pytest.raises(UserError, match="yue"):  # folded into zh: asking for it alone would keep nothing
        language.parse_languages("yue")


def test_char_kinds_count_full_width_forms_with_their_ascii_kind():
    kinds = language.char_kinds("１９９８年，中国ＡＢ abc ★😀\ufffd")
    assert kinds == {"cjk": 3, "latin": 5, "digit": 4, "punct": 1, "space": 2, "other": 3}
    assert sum(kinds.values()) == len("１９９８年，中国ＡＢ abc ★😀\ufffd")


def test_cjk_share_ignores_spaces():
    assert language.cjk_share("中国 ABC") == pytest.approx(2 / 5)
    assert language.cjk_share("the quick brown fox") == 0.0
    assert language.cjk_share("") == 0.0
    assert language.cjk_count("ひらがなカタカナ한국어漢字") == 13
