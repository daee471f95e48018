"""
tokenizer.py: a byte-level BPE tokenizer, trained from scratch, encoded with tiktoken.

    python tokenizer.py train   --input data/shakespeare --vocab-size 8192 --out out/tok8k
    python tokenizer.py encode  --tokenizer out/tok8k --show  < some.txt    # ids (and the pieces)
    python tokenizer.py decode  --tokenizer out/tok8k          < ids.txt     # text

The lesson, top to bottom:
  1. split text into chunks with a GPT-4-style regex (merges never cross a chunk boundary)
  2. start from the 256 byte values, so every string is representable: there is no unknown token
  3. repeatedly merge the most frequent adjacent pair into a new token (train_naive: the textbook loop;
     train_merges: the same result, counted incrementally so 8k merges on 10 MB take seconds, not hours)
  4. save merges in rank order (tokenizer.json) and every token's bytes (vocab.txt)
  5. encode with tiktoken (fast) or encode_reference (pure Python); both agree; encode_iterable streams.
"""
import argparse
import functools
import hashlib
import heapq
import json
import os
import re
import sys
import time
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import tiktoken
from tqdm import tqdm

from common import peak_rss_mb, write_atomic

EOT = "<|endoftext|>"

# ---------------------------------------------------------------------------------------------------------
# 1. Pre-tokenization: the split pattern
#
# GPT-4's (cl100k) pattern, with one change: runs of Chinese/Japanese characters are their own chunks, so
# "Python编程" splits as "Python", "编程" and Latin-script merges stay reusable. What each branch does:
#   's 't 're 've 'm 'll 'd          English contractions stay separate pieces
#   [^\r\n L N]?L+                  a word with one optional leading space/punctuation ("_name", " the")
#    ?CJK+                           a run of Chinese/Japanese characters (no spaces between words), which
#                                    takes a leading space but not punctuation: "，" stays its own token
#   N{1,3}                           numbers in groups of at most three digits (no 6-digit tokens)
#    ?[^\s L N]+[\r\n]*              a run of punctuation/operators, e.g. " ==", "):\n" (code-friendly)
#   \s*[\r\n]+                       line breaks together with the spaces before them
#   \s+(?!\S) | \s+                  indentation; the last space is left to join the next word
# tiktoken runs this pattern with Rust's regex engine, our reference encoder with Python's `re`. `re` has no
# \p{L}, and the two engines also disagree on details (Python's \s includes \x1c-\x1f, Unicode versions
# differ), so the saved pattern spells every class out as explicit characters: both engines then split
# every string identically, whatever Unicode tables they ship.
PATTERN_TEMPLATE = (r"'(?:[sdmtSDMT]|[lL][lL]|[vV][eE]|[rR][eE])"
                    r"|[^\r\n{L}{CJK}{N}]?[{L}]+"
                    r"| ?[{CJK}]+"
                    r"|[{N}]{{1,3}}"
                    r"| ?[^{S}{L}{CJK}{N}]+[\r\n]*"
                    r"|[{S}]*[\r\n]+"
                    r"|[{S}]+(?![^{S}])"
                    r"|[{S}]+")
CJK_BLOCKS = [(0x3040, 0x30FF), (0x31F0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
              (0x20000, 0x3FFFF)]  # kana, CJK ideographs and their extensions
WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + \
             "\u2028\u2029\u202f\u205f\u3000"  # Unicode White_Space, what Rust's \s means


def char_class(codepoints):
    """Sorted code points -> the inside of a [...] class with ranges, e.g. [65..90, 97] -> 'A-Za'."""
    out, i = [], 0
    while i < len(codepoints):
        j = i
        while j + 1 < len(codepoints) and codepoints[j + 1] == codepoints[j] + 1:
            j += 1
        lo, hi = (re.sub(r"([\\\]\[^\-&~])", r"\\\1", chr(c)) for c in (codepoints[i], codepoints[j]))
        out.append(lo if i == j else f"{lo}-{hi}")
        i = j + 1
    return "".join(out)


@functools.lru_cache(maxsize=1)
def split_pattern():
    """The exact pattern (about 6,400 characters) built from this Python's Unicode tables; it is saved with the merges."""
    letters, cjk, numbers = [], [], []
    for c in range(0x110000):
        cat = unicodedata.category(chr(c))
        if cat[0] == "L":
            (cjk if any(lo <= c <= hi for lo, hi in CJK_BLOCKS) else letters).append(c)
        elif cat[0] == "N":
            numbers.append(c)
    return PATTERN_TEMPLATE.format(L=char_class(letters), CJK=char_class(cjk), N=char_class(numbers),
                                   S=char_class(sorted(map(ord, WHITESPACE))))


def clean_surrogates(text):
    """Lone surrogates (U+D800-DFFF, e.g. from a bad decode) are not characters and have no UTF-8 bytes.
    Policy, the same as tiktoken's: a high+low pair becomes the character it spells, any other surrogate
    becomes U+FFFD. So decode(encode(s)) == clean_surrogates(s), which is s for all real text."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def count_chunks(texts, pattern, progress=False):
    """Documents -> {chunk bytes: how often it occurs}. Training only ever sees these unique chunks."""
    split, counts = re.compile(pattern), Counter()
    for text in tqdm(texts, desc="tokenizer: split", unit=" docs", disable=not progress, leave=False):
        counts.update(split.findall(clean_surrogates(text)))
    return {chunk.encode("utf-8"): n for chunk, n in counts.items()}


# ---------------------------------------------------------------------------------------------------------
# 2. Training: the textbook loop first, then the fast one. Both return the same merges.
#
# Tie-breaking (so training is deterministic): the most frequent pair wins; among equal counts the pair
# with the smallest (left id, right id). Should a merge's bytes already exist as a token ("a"+"bc" after
# "ab"+"c"; we have never seen it happen), the existing token is reused: tiktoken cannot load duplicates.

def merge(ids, pair, new_id):
    """Replace every occurrence of pair, left to right: ([1, 2, 3, 1, 2], (1, 2), 4) -> [4, 3, 4]."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def mint(pair, token_bytes, ids_of, merges):
    """The id for the merged pair: an existing token with the same bytes, else a new one."""
    merged = token_bytes[pair[0]] + token_bytes[pair[1]]
    if merged not in ids_of:
        ids_of[merged] = len(token_bytes)
        token_bytes.append(merged)
        merges.append(pair)
    return ids_of[merged]


def train_naive(chunk_counts, n_merges):
    """Recount every pair after every merge: O(merges x corpus). Clear, and the check for train_merges."""
    words = [(list(chunk), n) for chunk, n in chunk_counts.items()]
    token_bytes, merges = [bytes([b]) for b in range(256)], []
    ids_of = {b: i for i, b in enumerate(token_bytes)}
    while len(merges) < n_merges:
        stats = Counter()  # pair -> occurrences, e.g. [1, 2, 3, 1, 2] x1 -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}
        for ids, n in words:
            for pair in zip(ids, ids[1:]):
                stats[pair] += n
        if not stats:
            break  # every chunk is a single token: the text supports no more merges
        pair = min(stats, key=lambda p: (-stats[p], p))
        new_id = mint(pair, token_bytes, ids_of, merges)
        words = [(merge(ids, pair, new_id), n) for ids, n in words]
    return merges


def merge_counting(ids, pair, new_id, n, counts, fresh):
    """merge() that also updates the pair counts of a chunk seen n times. Only the neighbours of each
    occurrence change: x a b y -> x N y takes n from (x, a) and (b, y) and gives it to (x, N) and (N, y).
    The left neighbour is read from the output, so in "a b a b" the second (a, b) sees N on its left.
    Pairs that gain are added to fresh."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            if out:
                counts[out[-1], pair[0]] -= n
                counts[out[-1], new_id] += n
                fresh.add((out[-1], new_id))
            if i + 2 < len(ids):
                counts[pair[1], ids[i + 2]] -= n
                counts[new_id, ids[i + 2]] += n
                fresh.add((new_id, ids[i + 2]))
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_merges(chunk_counts, n_merges, log=None):
    """The same merges as train_naive, with incremental counts. Three structures:
    counts[pair]  occurrences of the pair, weighted by chunk frequency
    where[pair]   ids of the chunks that contain it: a merge rewrites only those chunks
    heap          (-count, pair) entries. A count only ever falls, except for pairs that contain the new
                  token (those are pushed fresh), so a popped entry whose count is out of date is pushed back
                  with the right count ("lazy invalidation") and the first up-to-date entry is the true max.
    Returns (merges, seconds): seconds[i] = time from the call until merge i was done."""
    start = time.perf_counter()
    words = [list(chunk) for chunk in chunk_counts]
    freqs = list(chunk_counts.values())
    counts, where = defaultdict(int), defaultdict(set)
    for w, ids in enumerate(words):
        for pair in zip(ids, ids[1:]):
            counts[pair] += freqs[w]
            where[pair].add(w)
    heap = [(-n, pair) for pair, n in counts.items()]
    heapq.heapify(heap)
    token_bytes, merges, seconds = [bytes([b]) for b in range(256)], [], []
    ids_of = {b: i for i, b in enumerate(token_bytes)}
    while len(merges) < n_merges and heap:
        neg, pair = heapq.heappop(heap)
        if counts.get(pair, 0) != -neg:  # stale entry
            if counts.get(pair, 0) > 0:
                heapq.heappush(heap, (-counts[pair], pair))
            continue
        new_id = mint(pair, token_bytes, ids_of, merges)
        fresh = set()  # pairs containing new_id: the only counts that rise
        for w in where.pop(pair):
            new_fresh = set()
            words[w] = merge_counting(words[w], pair, new_id, freqs[w], counts, new_fresh)
            for p in new_fresh:
                where[p].add(w)
            fresh |= new_fresh
        del counts[pair]  # every occurrence is merged (stale chunk ids in where[...] are harmless)
        for p in sorted(fresh):
            if counts[p] > 0:  # (N, a) in "a b a b" was made and unmade again
                heapq.heappush(heap, (-counts[p], p))
        if len(merges) > len(seconds):
            seconds.append(time.perf_counter() - start)
            if log:
                log(len(merges), pair, new_id, -neg, token_bytes)
    return merges, seconds


# ---------------------------------------------------------------------------------------------------------
# 3. Saving and loading. tokenizer.json is the machine file, vocab.txt the one to read.

def token_bytes_of(merges):
    """Merges in rank order -> the bytes of every token id: 256 single bytes, then one per merge."""
    vocab = [bytes([b]) for b in range(256)]
    for left, right in merges:
        vocab.append(vocab[left] + vocab[right])
    return vocab


def content_hash(pattern, merges, special_tokens):
    blob = json.dumps({"pattern": pattern, "merges": merges, "special_tokens": special_tokens},
                      sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def show(b):
    """Token bytes, readable: valid UTF-8 as text, other bytes as \\xNN, invisible characters escaped."""
    out = []
    for c in b.decode("utf-8", errors="surrogateescape"):
        if 0xDC80 <= ord(c) <= 0xDCFF:  # surrogateescape's stand-in for a byte that is not valid UTF-8
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        else:
            out.append(c if c.isprintable() and c != "\\" else c.encode("unicode_escape").decode())
    return "".join(out)


def save_tokenizer(out_dir, pattern, merges, special_names=(EOT,), stats=None):
    """Write tokenizer.json (+ vocab.txt). Specials take the ids after the merges. Returns the path."""
    out_dir, merges = Path(out_dir), [list(m) for m in merges]
    out_dir.mkdir(parents=True, exist_ok=True)
    specials = {name: 256 + len(merges) + i for i, name in enumerate(special_names)}
    spec = {"format": "nanopretrain-bpe", "version": 1, "n_vocab": 256 + len(merges) + len(specials),
            "hash": content_hash(pattern, merges, specials), "special_tokens": specials,
            "pattern_template": PATTERN_TEMPLATE, "unicode_version": unicodedata.unidata_version,
            "training": stats or {}, "pattern": pattern}
    vocab = token_bytes_of(merges)
    lines = [f"[{show(vocab[i])}] {i}" for i in range(256)]
    lines += [f"[{show(vocab[a])}][{show(vocab[b])}] -> [{show(vocab[256 + i])}] {256 + i}"
              for i, (a, b) in enumerate(merges)]
    lines += [f"{name} {i} (special)" for name, i in specials.items()]
    write_atomic(out_dir / "vocab.txt", "\n".join(lines) + "\n")
    head = json.dumps(spec, ensure_ascii=False, indent=1)[:-2]  # without the closing "\n}"
    body = ",\n".join(f"  [{a}, {b}]" for a, b in merges)  # one merge per line, in rank order
    write_atomic(out_dir / "tokenizer.json", f'{head},\n "merges": [\n{body}\n ]\n}}\n')
    return out_dir / "tokenizer.json"


def read_spec(path):
    """A tokenizer dir or its tokenizer.json -> the checked dict (the hash must match the content)."""
    path = Path(path)
    file = path / "tokenizer.json" if path.is_dir() else path
    try:
        spec = json.loads(file.read_text(encoding="utf-8"))
        actual, stored = content_hash(spec["pattern"], spec["merges"], spec["special_tokens"]), spec["hash"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{file}: not a readable tokenizer.json ({type(e).__name__}: {e})") from None
    if actual != stored:
        raise ValueError(f"{file}: content hash {actual[:12]} does not match the stored {stored[:12]} (edited?)")
    return {**spec, "merges": [tuple(m) for m in spec["merges"]]}


def encoding_from_spec(spec):
    vocab = token_bytes_of(spec["merges"])
    return tiktoken.Encoding(name=f"nanopretrain-{spec['hash'][:12]}", pat_str=spec["pattern"],
                             mergeable_ranks={b: i for i, b in enumerate(vocab)},
                             special_tokens=spec["special_tokens"], explicit_n_vocab=spec["n_vocab"])


def load_tokenizer(path_or_name):
    """A tokenizer dir / tokenizer.json, or a published tiktoken name ("gpt2", "cl100k_base") -> Encoding."""
    if Path(path_or_name).exists():
        return encoding_from_spec(read_spec(path_or_name))
    if str(path_or_name) in tiktoken.list_encoding_names():
        try:
            return tiktoken.get_encoding(str(path_or_name))
        except Exception as e:  # tiktoken downloads the published merges once, then caches them
            raise ValueError(f"{path_or_name}: could not fetch the published encoding (offline? "
                             f"{type(e).__name__}); it needs internet the first time") from None
    raise ValueError(f"{path_or_name}: no such tokenizer directory, and not a published encoding "
                     f"({', '.join(tiktoken.list_encoding_names())})")


def tokenizer_hash(path):
    """The content hash (sha256 hex of pattern + merges + specials) stored in tokenizer.json."""
    return read_spec(path)["hash"]


def check_fits_uint16(n_vocab, where="tokenizer"):
    """Token bins are uint16: ids 0..65,535, so at most 65,536 tokens. Raise a clear error otherwise."""
    if n_vocab > 2 ** 16:
        raise ValueError(f"{where}: a vocabulary of {n_vocab:,} tokens has ids up to {n_vocab - 1:,}, which "
                         "do not fit uint16 token bins (max 65,535); train a smaller vocabulary")


# ---------------------------------------------------------------------------------------------------------
# 4. The reference encoder: what tiktoken does, in plain Python.
#
# tiktoken does not replay the merge list: inside a chunk it repeatedly merges the adjacent pair whose
# concatenated bytes have the lowest rank (= token id), leftmost first on ties, and a chunk that is a whole
# token is looked up directly. We follow the same rule, so the two agree token for token.

def encode_chunk(chunk, ranks):
    if chunk in ranks:
        return [ranks[chunk]]
    parts = [chunk[i:i + 1] for i in range(len(chunk))]
    while len(parts) > 1:
        merged = [ranks.get(a + b, float("inf")) for a, b in zip(parts, parts[1:])]
        best = min(range(len(merged)), key=merged.__getitem__)
        if merged[best] == float("inf"):
            break
        parts[best:best + 2] = [parts[best] + parts[best + 1]]
    return [ranks[p] for p in parts]


def encode_reference(text, spec):
    """Pure-Python equivalent of enc.encode_ordinary(text) for a loaded spec (special text stays text)."""
    ranks = {b: i for i, b in enumerate(token_bytes_of(spec["merges"]))}
    cache, ids = {}, []
    for chunk in re.findall(spec["pattern"], clean_surrogates(text)):
        if chunk not in cache:
            cache[chunk] = encode_chunk(chunk.encode("utf-8"), ranks)
        ids.extend(cache[chunk])
    return ids


def decode_reference(ids, spec):
    vocab = token_bytes_of(spec["merges"]) + [name.encode() for name in spec["special_tokens"]]
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------------------------------
# 4b. Streaming: text too large to hold whole (a 10 GB file read line by line) -> ids, in constant memory

def encode_iterable(enc, pieces, hold=2):
    """Strings -> token ids, as enc.encode_ordinary("".join(pieces)), in the memory of about one piece. Text is
    encoded up to a chunk boundary that more text cannot move: not in the last `hold` chunks ("hel" | "lo"),
    not next to a space ("  1" is " "+" 1" but "  " alone is one chunk). Our tokenizers (Python's re)."""
    split = re.compile(enc._pat_str)
    buffer = ""
    for piece in pieces:
        buffer += clean_surrogates(piece)
        ends = [m.end() for m in split.finditer(buffer)][:-hold]
        cut = next((e for e in reversed(ends) if not (buffer[e - 1].isspace() or buffer[e].isspace())), 0)
        if cut:
            yield from enc.encode_ordinary(buffer[:cut])
            buffer = buffer[cut:]
    if buffer:
        yield from enc.encode_ordinary(buffer)


# ---------------------------------------------------------------------------------------------------------
# 5. Training from files

def read_text_file(path):
    """One UTF-8 text file -> str, or ValueError naming the file (empty, binary, not UTF-8)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror})") from None
    if not data.strip():
        raise ValueError(f"{path}: empty file, nothing to train on")
    if b"\0" in data:
        raise ValueError(f"{path}: looks binary (contains NUL bytes); the tokenizer trains on UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None


def read_documents(inputs):
    """Files and directories -> (texts, skipped). Each file is one document. A file named on the command
    line must be good text; inside a directory (read recursively, sorted, hidden files and __pycache__
    skipped) files that are binary, empty or not UTF-8 are skipped and counted."""
    texts, skipped = [], 0
    for name in inputs:
        path = Path(name)
        if not path.exists():
            raise ValueError(f"{path}: no such file or directory")
        if path.is_file():
            texts.append(read_text_file(path))
            continue
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            if any(part.startswith(".") or part == "__pycache__" for part in file.relative_to(path).parts):
                continue
            try:
                texts.append(read_text_file(file))
            except ValueError:
                skipped += 1
    if not texts:
        raise ValueError(f"{', '.join(map(str, inputs))}: no UTF-8 text files found")
    return texts, skipped


def train_tokenizer(texts, vocab_size, out_dir, special_tokens=(EOT,), verbose=True, log=None):
    """Documents -> a byte-level BPE of vocab_size tokens (256 bytes + merges + specials) saved in out_dir;
    returns the loaded tiktoken.Encoding. Fewer tokens if the text cannot support that many merges."""
    n_merges = vocab_size - 256 - len(special_tokens)
    if n_merges < 0:
        raise ValueError(f"vocab size {vocab_size} is below the {256 + len(special_tokens)} byte and special tokens")
    if verbose and vocab_size > 2 ** 16:
        print(f"warning: {vocab_size:,} tokens do not fit the uint16 token bins prepare.py writes (max 65,536)")
    start, start_cpu = time.perf_counter(), time.process_time()
    pattern = split_pattern()
    chunks = count_chunks(texts, pattern, progress=verbose)  # the regex split: most of the training time
    split_s = time.perf_counter() - start
    merges, _ = train_merges(chunks, n_merges, log=log)
    seconds, cpu_s = time.perf_counter() - start, time.process_time() - start_cpu
    stats = {"chunks": sum(chunks.values()), "unique_chunks": len(chunks), "seconds": round(seconds, 2),
             "cpu_seconds": round(cpu_s, 2), "split_seconds": round(split_s, 2), "peak_memory_mb": round(peak_rss_mb())}
    path = save_tokenizer(out_dir, pattern, merges, special_tokens, stats)
    enc = load_tokenizer(path)
    if verbose:
        fewer = f" (the text supports only that many merges, not {n_merges:,})" if len(merges) < n_merges else ""
        print(f"tokenizer: {enc.n_vocab:,} tokens ({len(merges):,} merges{fewer}) from {stats['chunks']:,} chunks "
              f"({len(chunks):,} unique) in {seconds:.1f} s (split {split_s:.1f} s; CPU {cpu_s:.1f} s), "
              f"peak memory {stats['peak_memory_mb']:,} MB -> {out_dir}")
    return enc


# ---------------------------------------------------------------------------------------------------------
# 6. The command line

def cmd_train(args):
    texts, skipped = read_documents(args.input)
    print(f"read {len(texts):,} files, {sum(len(t.encode('utf-8')) for t in texts) / 1e6:.2f} MB"
          + (f" (skipped {skipped} empty or not UTF-8)" if skipped else ""))

    def log(i, pair, new_id, count, token_bytes):
        if i <= 10 or i % 1000 == 0:
            left, right, new = (show(token_bytes[j]) for j in (*pair, new_id))
            print(f"merge {i:>6,}: [{left}][{right}] -> [{new}] id {new_id}, count {count:,}")
    enc = train_tokenizer(texts, args.vocab_size, args.out, log=log)
    print(f"wrote {Path(args.out) / 'tokenizer.json'} and vocab.txt, hash {tokenizer_hash(args.out)[:12]}; try:\n"
          f"  echo 'Hello world!' | python tokenizer.py encode --tokenizer {args.out} --show")
    return enc


def read_stdin():
    try:
        return sys.stdin.buffer.read().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"stdin: not UTF-8 text (offset {e.start})") from None


def cmd_encode(args):
    enc = load_tokenizer(args.tokenizer)
    text = read_stdin()
    ids = enc.encode(text, allowed_special="all") if args.special else enc.encode_ordinary(text)
    print(" ".join(map(str, ids)))
    if args.show:
        print("".join(f"[{show(enc.decode_single_token_bytes(i))}]" for i in ids))
    n = len(text.encode("utf-8"))
    print(f"{len(ids):,} tokens for {n:,} bytes ({n / max(len(ids), 1):.2f} bytes/token)", file=sys.stderr)


def cmd_decode(args):
    enc = load_tokenizer(args.tokenizer)
    words = read_stdin().split()
    bad = next((w for w in words if not w.isdigit() or int(w) >= enc.n_vocab), None)
    if bad is not None:
        raise ValueError(f"stdin: {bad!r} is not a token id of this tokenizer (0..{enc.n_vocab - 1})")
    sys.stdout.write(enc.decode([int(w) for w in words]))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:  # now tokenizer_compare.py (it imports this file, so hand over the process)
        os.execv(sys.executable, [sys.executable, str(Path(__file__).with_name("tokenizer_compare.py")), *argv[1:]])
    parser = argparse.ArgumentParser(description="Train and inspect byte-level BPE tokenizers.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a BPE and save it to a directory")
    p.add_argument("--input", nargs="+", required=True, help="text files and/or directories (read recursively)")
    p.add_argument("--vocab-size", type=int, required=True, help="total tokens: 256 bytes + merges + specials")
    p.add_argument("--out", required=True, help="directory for tokenizer.json and vocab.txt")
    for name in ("encode", "decode"):
        p = sub.add_parser(name, help=f"{name} stdin")
        p.add_argument("--tokenizer", required=True, help="a tokenizer dir, or gpt2 / cl100k_base (online)")
        if name == "encode":
            p.add_argument("--show", action="store_true", help="also print each token's bytes")
            p.add_argument("--special", action="store_true", help="read <|endoftext|> in the text as the token")
    args = parser.parse_args(argv)
    try:
        return {"train": cmd_train, "encode": cmd_encode, "decode": cmd_decode}[args.command](args)
    except (ValueError, OSError) as e:  # our errors name the file; OSError's messages do too
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
