"""
language.py: which language a document is written in, and the character counts CJK rules are built on.

    detect(text) -> (lang, confidence)   py3langid's naive Bayes over byte n-grams (model in the wheel, offline)
    parse_languages / check_language     the per-document `--languages zh,en` filter, counted per language
    cjk_count / cjk_share / char_kinds   how much of a text is Han, kana or Hangul, punctuation, symbols

Unlike clean.py's detect_script, which only asks which Unicode block most letters come from (a Japanese
or Cantonese text is "cjk" like Mandarin, French is "latin" like English), this names the language, with
a probability. Why py3langid: measured on our own sources (docs/chinese-and-web.md) it was as accurate as
lingua (100% on zh news/reviews and Shakespeare documents once Chinese varieties are folded, see below)
and 2-4x faster (660-890 docs/s on 2,000-character heads, 2 shared CPU cores) with a 4.5 MB model that
loads in 1-3 s, where lingua is 96 MB and loads in 11-34 s; langdetect and langid were 7-16x slower.
"""
import re
from functools import lru_cache

from common import UserError

SAMPLE_CHARS = 2000  # a document's language is settled within a paragraph: the head is enough, and fast
# py3langid 0.4 knows Wu (wuu) and Cantonese (yue) apart from Mandarin (zh), and short Mandarin often
# lands on them ("你好世界" -> yue 0.67, zh 0.25; 2-4% of our People's Daily paragraphs -> wuu). All three are
# written in the same characters and ISO 639-3 groups them in the macrolanguage "zh", which is what a
# user means by --languages zh: their probabilities are summed into it.
CHINESE_VARIETIES = {"zh", "wuu", "yue"}
UNDETERMINED = "und"  # ISO 639's code for "no language": a text without a single letter
# CCNet keeps a document when its language's probability is at least 0.5 (cc_net's mine.py, Config
# lang_threshold); FineWeb-2 tuned one per language (0.692 for Chinese, but for GlotLID's probabilities,
# not py3langid's). Every document of zh_news, zh_reviews and Shakespeare scores 0.998 or more.
MIN_CONFIDENCE = 0.5


# ---------------------------------------------------------------------------------------------------------
# Language identification

@lru_cache(maxsize=1)
def identifier():
    """The py3langid model, loaded once per process (0.8 s, ~130 MB), with probabilities normalised to 1."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


LETTER = re.compile(r"[^\W\d_]")


def detect(text):
    """text -> (ISO 639-1 code, probability), e.g. ("zh", 0.99), ("en", 1.0), or ("und", 0.0) for a text
    with no letter at all (the model would otherwise guess from nothing: "" -> Serbian, 1.4%)."""
    head = text[:SAMPLE_CHARS]
    if not LETTER.search(head):
        return UNDETERMINED, 0.0
    ranked = identifier().rank(head)  # [(lang, probability)], best first, all 142 languages
    chinese = sum(p for lang, p in ranked if lang in CHINESE_VARIETIES)
    lang, p = ranked[0]
    # zh if a variety is the best guess, or if together they hold a majority (yue 0.4 + zh 0.15 beats
    # ja 0.45). Not merely "more than the best": on a text like "ok", where the model knows nothing and
    # every language gets ~1%, three varieties would always outweigh one language.
    if lang in CHINESE_VARIETIES or chinese > 0.5:
        return "zh", float(chinese)
    return lang, float(p)


def parse_languages(spec):
    """'zh,en' -> {'zh', 'en'}; an empty spec keeps every language (returns None)."""
    if not spec:
        return None
    wanted = {code.strip().lower() for code in spec.split(",") if code.strip()}
    known = set(identifier().nb_classes) - (CHINESE_VARIETIES - {"zh"})
    unknown = sorted(wanted - known)
    if unknown:
        raise UserError(f"--languages {spec}: unknown code(s) {', '.join(unknown)}; use ISO 639-1 codes "
                        f"the model knows, e.g. zh, en, ja, ko, fr, de")
    return wanted


def check_language(text, languages, counts, min_confidence=MIN_CONFIDENCE):
    """One document: (keep, lang, confidence). Kept if its language is one of `languages` with at least
    min_confidence; languages=None keeps everything. counts[lang] = {"docs", "chars", "kept"}, so the
    report shows what each language weighed before and after the filter."""
    lang, confidence = detect(text)
    keep = languages is None or (lang in languages and confidence >= min_confidence)
    row = counts.setdefault(lang, {"docs": 0, "chars": 0, "kept": 0})
    row["docs"] += 1
    row["chars"] += len(text)
    row["kept"] += keep
    return keep, lang, confidence


# ---------------------------------------------------------------------------------------------------------
# CJK characters: what the character-based quality rules (clean_cjk.py) count

# Han ideographs (URO, extension A, compatibility), kana and Hangul: the letters of Chinese, Japanese and
# Korean. Extensions B+ (U+20000...) are outside the BMP and rare enough in web text to leave out.
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
# CJK punctuation (、。「」《》...) and the full-width forms of ASCII punctuation (，！？：；（）...).
CJK_PUNCT = r"\u3000-\u303f\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65"
KINDS = {
    "cjk": CJK,
    "latin": re.compile(r"[A-Za-z\u00c0-\u024f\uff21-\uff3a\uff41-\uff5a]"),  # with full-width ＡＢＣ
    "digit": re.compile(r"[0-9\uff10-\uff19]"),                               # with full-width １２３
    "punct": re.compile(rf"[!-/:-@\[-`{{-~\u2010-\u2027\u2030-\u205e{CJK_PUNCT}]"),
    "space": re.compile(r"\s"),
}


def cjk_count(text):
    return len(CJK.findall(text))


def cjk_share(text):
    """CJK characters / non-space characters: 0.0 for English, ~0.9 for Chinese news (its full-width
    digits and punctuation are the rest)."""
    visible = len(text) - len(KINDS["space"].findall(text))
    return cjk_count(text) / max(1, visible)


def char_kinds(text):
    """{kind: characters} for cjk, latin, digit, punct, space, and "other": whatever is left, i.e.
    symbols (emoji, ★, ◆, box drawing), other scripts, and U+FFFD replacement characters."""
    counts = {kind: len(pattern.findall(text)) for kind, pattern in KINDS.items()}
    counts["other"] = len(text) - sum(counts.values())
    return counts
