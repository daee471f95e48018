"""
extract.py: web pages -> main text. HTML files and WARC archives (Common Crawl's format) become documents
{"source", "name", "text"} holding only the page's main text; the boilerplate removed is counted.

A web page is mostly not its text: menus, cookie banners, share buttons, related links, footers. Common
Crawl's WET files keep all of it; FineWeb (and FineWeb-2, RefinedWeb) start from the WARC's raw HTML and
keep the main text only, with trafilatura. We do the same:
    html_to_text(html, stats)        one page -> its title and main text (trafilatura, favor_precision)
    html_documents(path, stats)      a .html/.htm file, or a folder of them
    warc_documents(path, stats)      the HTML responses of a .warc / .warc.gz (read with warcio)
Why trafilatura over resiliparse (measured on tests/fixtures/, docs/chinese-and-web.md): it kept no
boilerplate on either page (character precision 1.00, where resiliparse had 0.98 on the sonnets page and
0.79 on the Chinese news page: it kept the login bar, breadcrumb and editor line), at 15x less speed
(~200 vs ~3,000 pages/s): a crawl is read once, and what it leaves in is trained on every epoch.

Unlike sources.py, which reads text inputs, this file knows markup: what a page shows, what it means.
"""
import gzip
from pathlib import Path

from common import UserError

HTML_SUFFIXES = (".html", ".htm")
HTML_TYPES = ("text/html", "application/xhtml+xml")
# the text a browser shows: every text node of the body outside scripts, styles and templates
VISIBLE_TEXT = "//body//text()[not(ancestor::script or ancestor::style or ancestor::noscript or ancestor::template)]"


def bump(stats, key, n=1):
    stats[key] = stats.get(key, 0) + n


def visible_chars(tree):
    return sum(len("".join(t.split())) for t in tree.xpath(VISIBLE_TEXT))


def html_to_text(html, stats):
    """HTML (str, or bytes in any encoding: trafilatura detects it) -> the title and main text, one
    paragraph per line, or None for a page without any (an empty shell, a redirect, a media page).
    stats: pages, pages_without_text, visible_chars (what the page shows), main_chars (what we keep),
    boilerplate_chars (the difference); whitespace is not counted."""
    import trafilatura  # imported here: only web inputs need it (and it takes ~0.5 s to import)
    from trafilatura.metadata import extract_title
    bump(stats, "pages")
    tree = trafilatura.load_html(html)
    shown = visible_chars(tree) if tree is not None else 0
    # favor_precision: when unsure whether a block is content, leave it out (FineWeb's setting).
    # No metadata: its date parser costs ~3 s on a Chinese page; the title is all we want of it.
    result = trafilatura.bare_extraction(tree, favor_precision=True) if tree is not None else None
    lines = [line.strip() for line in (result.text or "").split("\n")] if result else []
    text = "\n".join(line for line in lines if line)  # a browser collapses the markup's indentation too
    bump(stats, "visible_chars", shown)
    if not text:
        bump(stats, "pages_without_text")
        bump(stats, "boilerplate_chars", shown)
        return None
    title = (extract_title(tree) or "").strip()
    if title and not text.startswith(title):
        text = f"{title}\n{text}"  # trafilatura keeps the headline apart from the text, as metadata
    kept = len("".join(text.split()))
    bump(stats, "main_chars", kept)
    bump(stats, "boilerplate_chars", max(0, shown - kept))
    return text


def html_documents(path, stats, source="html"):
    """A .html/.htm file, or every one under a folder (recursively, in name order), one document each."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix.lower() in HTML_SUFFIXES)
    for file in files:
        bump(stats, "files")
        text = html_to_text(file.read_bytes(), stats)
        if text:
            yield {"source": source, "name": str(file), "text": text}


def is_html_response(record):
    """A WARC 'response' record whose HTTP Content-Type is HTML (not an image, a PDF, a redirect)."""
    if record.rec_type != "response" or record.http_headers is None:
        return False
    if record.http_headers.get_statuscode() != "200":
        return False
    content_type = (record.http_headers.get_header("Content-Type") or "").lower()
    return content_type.startswith(HTML_TYPES)


def starts_like_warc(path):
    """A WARC file, plain or gzipped (member by member), begins with its version line, 'WARC/1.0'."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open if gzipped else open)(path, "rb") as f:
            return f.read(5) == b"WARC/"
    except (OSError, EOFError):
        return False


def warc_documents(path, stats, source="warc"):
    """Every HTML response of a .warc or .warc.gz file, one document each, named by its URL. warcio reads
    the records (gzip member by member, HTTP chunked and compressed bodies decoded): a format detail we
    would otherwise rewrite. A corrupt or cut archive is a one-line error naming the file: warcio itself
    reads a cut record as a shorter one, so each record's length is checked against its Content-Length."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed
    bump(stats, "files")
    if not starts_like_warc(path):  # warcio would read any text as one empty record, silently
        raise UserError(f"{path}: not a WARC file (it does not start with 'WARC/')")
    try:
        with open(path, "rb") as f:
            for record in ArchiveIterator(f):
                bump(stats, "warc_records")
                html = record.content_stream().read() if is_html_response(record) else None
                record.raw_stream.read()  # the rest of the record, so that a cut one is seen below
                if record.raw_stream.limit > 0:  # bytes its Content-Length promised and the file lacks
                    raise UserError(f"{path}: truncated (a record ends early); download it again")
                if html is None:
                    bump(stats, "warc_records_not_html")
                    continue
                text = html_to_text(html, stats)
                if text:
                    yield {"source": source, "name": record.rec_headers.get_header("WARC-Target-URI"), "text": text}
    except (ArchiveLoadFailed, EOFError, OSError, ValueError, AttributeError) as e:  # AttributeError: warcio's
        # way of failing on a record cut in its headers
        raise UserError(f"{path}: not a readable WARC file ({type(e).__name__}: {e})") from None
