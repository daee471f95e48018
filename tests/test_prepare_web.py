"""prepare.py on the web-shaped inputs of the Chinese/web issue, end to end: an .html folder and a .warc.gz
crawl read through extract.py, Chinese pages judged by clean_cjk's rules, the --languages filter and the
--quality-model classifier, each removal counted in meta.json. Small: the stdlib code source (a few files)
gives the run enough documents to split; the web pages are the fixtures of tests/test_extract.py."""
import json
import shutil

import pytest

import prepare
import quality
from test_extract import FIXTURES, write_warc

ROOT_ARGS = ["--code-mb", "0.2", "--vocab-size", "300", "--workers", "1", "--line-dedup-docs", "0"]


@pytest.fixture
def web(tmp_path):
    pages = tmp_path / "pages"
    pages.mkdir()
    for page in FIXTURES.glob("*_page.html"):
        shutil.copy(page, pages / page.name)
    write_warc(tmp_path / "crawl.warc.gz")
    prose = ("Our bookshop on the corner of Mill Street has been selling second-hand novels, maps and old "
             "cookery books since the winter of 1952. The shelves are crowded, the floor creaks, and the owner "
             "still writes every price by hand in pencil on the first page. Children come for the comics on "
             "Saturday mornings, students for cheap editions of the classics, and collectors for the locked "
             "cabinet of first editions behind the counter. We buy whole libraries as well as single volumes, "
             "and we are happy to search for a title you have been missing for years")
    (pages / "contact.html").write_text(f"<html><body><article><p>{prose}. Call us on +1 (555) 123-4567 or "
                                        "2831823829, and we will be glad to help you.</p></article></body></html>")
    return tmp_path


def build(tmp_path, *extra):
    out = tmp_path / "data"
    prepare.main(["--input", "code", f"pages={tmp_path / 'pages'}", f"crawl={tmp_path / 'crawl.warc.gz'}",
                  "--mix", "code=0.8,pages=0.1,crawl=0.1", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                  *ROOT_ARGS, *extra])
    return json.loads((out / "meta.json").read_text())


def test_html_and_warc_inputs_become_documents(web):
    meta = build(web)
    assert meta["sources"]["pages"]["docs"] == 3  # the two fixture pages and the contact page
    assert meta["cleaning"]["pii_matches"]["phone"] == 2  # both formats masked (pii.py), counted per format
    assert sum(v for k, v in meta["cleaning"]["pii_matches"].items() if k.startswith("phone_")) == 2
    assert meta["sources"]["crawl"]["docs"] == 2  # the two HTML responses (not the image, not the 404)
    assert meta["bins"]["train.bin"]["tokens"] > 0


def test_the_language_filter_keeps_only_the_asked_languages(web):
    meta = build(web, "--languages", "en")
    removed = meta["cleaning"]["rules"]["language_filter"]["docs"]
    assert removed == 2  # the People's Daily page, in the folder and in the crawl
    assert meta["sources"]["pages"]["kept_docs"] == 2 and meta["sources"]["crawl"]["kept_docs"] == 1


def test_the_quality_classifier_removes_what_it_scores_low(web):
    reference = [(FIXTURES / "sonnets_page.expected.txt").read_text()] * 20
    model = quality.train(reference + quality.planted_junk(reference, 20), [1] * 20 + [0] * 20)
    quality.save(model, web / "quality.npz")
    meta = build(web, "--quality-model", str(web / "quality.npz"), "--quality-threshold", "0.999999")
    assert meta["cleaning"]["rules"]["quality_classifier"]["docs"] >= 1  # prose below the bar goes, counted
    with pytest.raises(SystemExit, match="--quality-threshold 2.0: needs --quality-model, and a score in"):
        build(web, "--quality-model", str(web / "quality.npz"), "--quality-threshold", "2")
