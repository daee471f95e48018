"""
tokenizer_compare.py: our BPE against sentencepiece, vocabulary size by vocabulary size, and our pure-Python
reference encoder against tiktoken in speed.

    python tokenizer_compare.py --input data/shakespeare --sizes 1024,4096,8192,16384,32768
    python tokenizer_compare.py --speed --tokenizer out/tok8k < some.txt   # tiktoken vs encode_reference

Unlike tokenizer.py, which trains and encodes, this file measures: bytes per token on held-out text (the
compression that decides how much compute a text costs) and training time, next to sentencepiece's BPE
and unigram models trained on the same text.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from common import peak_rss_mb
from tokenizer import (EOT, count_chunks, encode_reference, encoding_from_spec, read_documents, read_spec,
                       split_pattern, train_merges)

def encoding_speed(spec, text):
    """MB/s (best of 3) of tiktoken and of the reference encoder on the same text, and whether they agree."""
    enc, results = encoding_from_spec(spec), []
    for encode in (enc.encode_ordinary, lambda t: encode_reference(t, spec)):
        seconds = []
        for _ in range(3):
            start = time.perf_counter()
            ids = encode(text)
            seconds.append(time.perf_counter() - start)
        results.append((len(text.encode("utf-8")) / 1e6 / min(seconds), ids))
    return results[0][0], results[1][0], results[0][1] == results[1][1]


# The model's compute per token barely depends on the tokenizer, so the compute to read a text is
# proportional to its token count: 10% more bytes per token = 1/1.1 = 9% fewer tokens = 9% less compute
# (minus the cost of a larger embedding and output layer). BPE vocabularies nest (a smaller one is a prefix
# of a larger one's merges), so ours trains once at the largest size and reports the time to reach each.

def sentencepiece_row(kind, train_file, size, held_out, workdir, groups=None):
    """Train a sentencepiece model; return (tokens on held_out, seconds, {lang: tokens on its share}) or the
    reason it failed."""
    import sentencepiece as spm
    prefix, start = str(Path(workdir) / f"{kind}{size}"), time.perf_counter()
    try:  # byte_fallback: unknown characters become bytes, as in a byte-level BPE; identity: no rewriting
        spm.SentencePieceTrainer.train(input=train_file, model_prefix=prefix, vocab_size=size, model_type=kind,
                                       byte_fallback=True, character_coverage=0.9999, minloglevel=2,
                                       normalization_rule_name="identity", remove_extra_whitespaces=False,
                                       allow_whitespace_only_pieces=True, max_sentence_length=1 << 14,
                                       num_threads=os.cpu_count() or 1)
    except RuntimeError as e:
        return "sentencepiece: " + str(e).split("] ")[-1].split(". ")[0]  # e.g. "Vocabulary size too high (40000)"
    seconds = time.perf_counter() - start
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")

    def count(text):  # sentencepiece reads a line at a time, no newline piece: each "\n" costs a byte token
        lines = text.split("\n")
        return sum(len(ids) for ids in sp.encode(lines)) + len(lines) - 1
    return count(held_out), seconds, {lang: count(text) for lang, text in (groups or {}).items()}


def language_groups(held_out, min_share=0.01):
    """The held-out text's lines grouped by language (language.py's detector, one line at a time): what
    bytes/token and characters/token are per language. Languages under min_share of the characters go."""
    from language import detect
    groups = {}
    for line in held_out.split("\n"):
        if line.strip():
            groups.setdefault(detect(line)[0], []).append(line)
    total = sum(len(line) for lines in groups.values() for line in lines)
    return {lang: "\n".join(lines) for lang, lines in sorted(groups.items())
            if sum(map(len, lines)) >= min_share * total}


def print_per_language(per_language, groups):
    """bytes/token and characters/token of each tokenizer on each language's share of the held-out text."""
    print("\nper language (held-out lines grouped by language.py): bytes/token, characters/token")
    print(f"{'tokenizer':<22} {'vocab':>7} " + " ".join(f"{lang + ' B/t':>9} {lang + ' c/t':>9}" for lang in groups))
    for (name, size), counts in per_language.items():
        cells = [f"{len(groups[g].encode('utf-8')) / counts[g]:>9.3f} {len(groups[g]) / counts[g]:>9.3f}"
                 for g in groups]
        print(f"{name:<22} {size:>7,} " + " ".join(cells))


def compare(texts, sizes, out_dir, sentencepiece=True):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = "\n".join(texts)
    cut = text.find("\n", len(text) * 9 // 10) + 1 or len(text) * 9 // 10  # hold out the last ~10%
    train_text, held_out = text[:cut], text[cut:]
    n_bytes = len(held_out.encode("utf-8"))
    print(f"training text {len(train_text.encode('utf-8')) / 1e6:.2f} MB; held-out text (the last ~10%) "
          f"{n_bytes:,} bytes, {len(held_out):,} characters")
    start = time.perf_counter()
    pattern = split_pattern()
    chunks = count_chunks([train_text], pattern)
    split_s = time.perf_counter() - start
    merges, seconds = train_merges(chunks, max(sizes) - 257)
    rows, largest = [], None  # (tokenizer, vocab size, held-out tokens or reason, train seconds)
    groups, per_language = language_groups(held_out), {}  # {lang: its held-out lines}, {(name, size): {lang: tokens}}
    for size in sizes:
        n = size - 257
        if n < 0 or n > len(merges):
            reason = "below 257 (bytes + <|endoftext|>)" if n < 0 else f"text supports {257 + len(merges):,} at most"
            rows.append(("bpe (ours)", size, reason, None))
            continue
        largest = {"pattern": pattern, "merges": merges[:n], "special_tokens": {EOT: 256 + n}, "n_vocab": size,
                   "hash": f"compare{size}"}
        enc = encoding_from_spec(largest)
        tokens = len(enc.encode_ordinary(held_out))
        rows.append(("bpe (ours)", size, tokens, split_s + (seconds[n - 1] if n else 0)))
        per_language[("bpe (ours)", size)] = {g: len(enc.encode_ordinary(t)) for g, t in groups.items()}
    with tempfile.TemporaryDirectory() as workdir:  # sentencepiece reads a file and writes model files
        (Path(workdir) / "train.txt").write_text(train_text, encoding="utf-8")
        for kind, size in [(kind, size) for kind in ("bpe", "unigram") for size in sizes if sentencepiece]:
            result = sentencepiece_row(kind, str(Path(workdir) / "train.txt"), size, held_out, workdir, groups)
            rows.append((f"sentencepiece {kind}", size) + (result[:2] if isinstance(result, tuple) else (result, None)))
            if isinstance(result, tuple):
                per_language[(f"sentencepiece {kind}", size)] = result[2]
    print(f"{'tokenizer':<22} {'vocab':>7} {'bytes/token':>11} {'chars/token':>11} {'tokens':>11} "
          f"{'vs first':>8} {'train s':>8}")
    first = next((r[2] for r in rows if isinstance(r[2], int)), None)
    for name, size, tokens, secs in rows:
        if isinstance(tokens, str):
            print(f"{name:<22} {size:>7,} {tokens}")
            continue
        print(f"{name:<22} {size:>7,} {n_bytes / tokens:>11.3f} {len(held_out) / tokens:>11.3f} {tokens:>11,} "
              f"{tokens / first:>8.3f} {secs:>8.1f}")
    if len(groups) > 1:
        print_per_language(per_language, groups)
    if largest:  # how fast the trained merges encode, and a last check that both encoders agree
        fast, slow, same = encoding_speed(largest, held_out[:1_000_000])
        print(f"encoding with the {largest['n_vocab']:,}-token BPE: tiktoken {fast:.1f} MB/s, reference encoder "
              f"{slow:.2f} MB/s, identical ids: {same}")
    plot_compare(rows, n_bytes, out_dir / "compare.png")
    print(f"peak memory {peak_rss_mb():,.0f} MB; wrote {out_dir / 'compare.png'}")
    return rows, per_language, groups


def plot_compare(rows, n_bytes, path):
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r[0] for r in rows):
        points = [(size, n_bytes / tokens) for n, size, tokens, _ in rows if n == name and isinstance(tokens, int)]
        if points:
            ax.plot(*zip(*points), marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="vocabulary size", ylabel="held-out UTF-8 bytes per token")
    ax.legend()
    ax.grid(alpha=0.3)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)


def sizes_list(text):
    return sorted({int(size) for size in text.split(",")})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--input", nargs="+", help="text files and/or directories (read recursively)")
    p.add_argument("--sizes", type=sizes_list, default="1024,4096,8192,16384,32768", help="comma-separated")
    p.add_argument("--out", default="out/tokenizer_compare", help="where compare.png goes")
    p.add_argument("--no-sentencepiece", action="store_true", help="only our BPE")
    p.add_argument("--speed", action="store_true", help="time tiktoken vs the reference encoder on stdin")
    p.add_argument("--tokenizer", help="the tokenizer directory for --speed")
    args = p.parse_args(argv)
    try:
        if args.speed:
            fast, slow, same = encoding_speed(read_spec(args.tokenizer), sys.stdin.buffer.read().decode("utf-8"))
            print(f"tiktoken {fast:.1f} MB/s, reference encoder {slow:.2f} MB/s, identical ids: {same}")
            return None
        if not args.input:
            p.error("give --input FILES (or --speed --tokenizer DIR)")
        if args.sizes[-1] > 2 ** 16:
            print("note: vocabularies above 65,536 tokens do not fit the uint16 token bins prepare.py writes")
        texts, _ = read_documents(args.input)
        return compare(texts, args.sizes, args.out, sentencepiece=not args.no_sentencepiece)
    except (ValueError, OSError) as e:  # our errors name the file; OSError's messages do too
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
