"""
prepare_report.py: what prepare.py prints and writes about a dataset: the summary, report.md, the plots,
and the contamination check. Every number comes from meta.json, so the report can be rebuilt from it.
"""
import json
from collections import Counter
from pathlib import Path

import dedup


def strings_in(value):
    """All strings inside a JSON value, in order: a HellaSwag line's ctx and endings, an ARC question..."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


def contamination(train_texts, val_items, bench_files, n=13):
    """13-gram overlap of val documents with train, and of every benchmark item (one .jsonl line) with train."""
    result = {"n": n, "val": dedup.overlap(train_texts, val_items, n)}
    for path in bench_files:
        items = []
        with open(path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        items.append((f"{Path(path).name}:{lineno}", " ".join(strings_in(json.loads(line)))))
                    except json.JSONDecodeError:
                        raise SystemExit(f"{path}:{lineno}: not valid JSON (--contamination)") from None
        result[str(path)] = dedup.overlap(train_texts, items, n)
    return result


def summary(meta, shown_clusters, shown_near_misses, raw_bytes):
    """The lines prepare.py prints, also the body of report.md."""
    lines = ["## Sources", "source        files    docs    MB read   after clean  after dedup  val docs  main script"]
    for s, v in meta["sources"].items():
        scripts = v.get("scripts") or {"none": 1}
        main = max(scripts, key=scripts.get)
        lines.append(f"{s:<12} {v.get('files', 0):>6} {v.get('docs', 0):>7} {v.get('bytes', 0) / 1e6:>10.2f} "
                     f"{v.get('kept_docs', 0):>13} {v['after_dedup']:>12} {v['val_docs']:>9}  "
                     f"{main} {scripts[main] / sum(scripts.values()):.0%}")
        problems = {k: n for k, n in v.items() if k.startswith(("skipped", "invalid", "replaced", "bad", "no_text",
                                                                "huge")) and n}
        if problems:
            lines.append(f"  {s} input problems: {problems}")
    c = meta["cleaning"]
    lines += ["", "## Cleaning (documents removed or changed, characters)",
              f"skipped rules: {', '.join(c['skipped_rules']) or 'none'}"]
    lines += [f"{name:<22} {r['docs']:>6} docs {r['chars']:>12,} chars" for name, r in c["rules"].items()]
    lines += [f"  {name} removed e.g. {', '.join(names)}" for name, names in c["removed_examples"].items()]
    lines.append(f"PII replaced: {c['pii_matches']}")
    total_chars = max(1, sum(c["scripts"].values()))
    lines.append("scripts (share of characters): " +
                 ", ".join(f"{k} {v / total_chars:.1%}" for k, v in sorted(c["scripts"].items(), key=lambda x: -x[1])))
    d = meta["dedup"]
    sizes = Counter(len(cl) for cl in d.get("clusters", []))
    lines += ["", "## Dedup", f"{d['docs']:,} docs: {d['exact_removed']:,} exact + {d['near_removed']:,} near "
              f"duplicates removed ({(d['exact_removed'] + d['near_removed']) / max(1, d['docs']):.1%}); "
              f"cluster sizes {dict(sorted(sizes.items()))}"]
    if d.get("bands"):
        lines += [f"MinHash: word {dedup.NGRAM}-grams, {d['num_perm']} permutations, LSH {d['bands']} bands x "
                  f"{d['rows']} rows for Jaccard >= {d['threshold']}; {d['candidates']:,} candidates, "
                  f"{d['verified']:,} verified by signature"] + dedup.s_curve_table(d["bands"], d["rows"])
    lines += shown_clusters
    if shown_near_misses:
        lines += [f"closest pairs left in, per source (estimated Jaccard below {d['threshold']}; an exact J above it "
                  "is a pair MinHash missed):"]
        lines += ["  " + line for line in shown_near_misses]
    if shown_near_misses and "shakespeare" in meta["sources"]:
        lines += ["  (A play in modern and in First Folio spelling is the same text, yet scores ~0.15: one respelled",
                  "  word breaks all five 5-grams through it. Shingle-based dedup only sees copies, not versions.)"]
    lines += ["", "## Mix (tokens, <|endoftext|> included)", "split  source        asked  achieved     tokens  epochs"]
    for split_name, info in meta["mix"].items():
        lines += [f"{split_name:<6} {s:<12} {v['asked']:>6.1%} {v.get('achieved', 0):>9.1%} {v['tokens']:>10,} "
                  f"{v['epochs']:>7.2f}" for s, v in info.items()]
    lines += ["", "## Bins", "file                      tokens        bytes   docs  bytes/token"]
    lines += [f"{f:<22} {b['tokens']:>10,} {b['bytes']:>12,} {b['docs']:>6} {b['bytes'] / max(1, b['tokens']):>12.2f}"
              for f, b in meta["bins"].items()]
    lines += ["", f"## Contamination ({meta['contamination']['n']}-gram overlap with train)"]
    for name, r in meta["contamination"].items():
        if name != "n":
            lines.append(f"{name}: {r['contaminated']}/{r['items']} items share a {meta['contamination']['n']}-gram "
                         f"with train; {r['ngram_overlap']:.2%} of their n-grams; worst {r['worst']}")
    lines += ["", f"raw text {raw_bytes / 1e6:.1f} MB -> bins in {meta['seconds']:.1f} s = {meta['raw_mb_per_s']} MB/s "
              "(stages reused from the cache are not recomputed)",
              "seconds per stage: " + ", ".join(f"{k} {v:.1f}" for k, v in meta["stage_seconds"].items())]
    return lines


def plots(out, meta, docs):
    """PNG plots next to report.md; returns their file names. Matplotlib without a display (Agg); each
    PNG written atomically, as every output of prepare.py."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    import prepare  # for its atomic writer

    def bar(name, title, labels, values, xlabel):
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(labels) + 1.2))
        ax.barh(labels, values)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        fig.tight_layout()
        prepare.write_atomic(out / name, lambda f: fig.savefig(f, format="png", dpi=80))
        plt.close(fig)
        return name

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for s in meta["sources"]:
        lengths = [len(d["text"]) for d in docs if d["source"] == s]
        if lengths:
            ax.hist(np.log10(lengths), bins=40, alpha=0.6, label=f"{s} ({len(lengths)} docs)")
    ax.set_title("document length per source (after dedup)")
    ax.set_xlabel("log10 characters")
    ax.legend()
    fig.tight_layout()
    prepare.write_atomic(out / "doc_lengths.png", lambda f: fig.savefig(f, format="png", dpi=80))
    plt.close(fig)
    c, d = meta["cleaning"], meta["dedup"]
    sizes = Counter(len(cl) for cl in d.get("clusters", []))
    return ["doc_lengths.png",
            bar("scripts.png", "script (share of characters)", list(c["scripts"]), list(c["scripts"].values()),
                "characters"),
            bar("rules.png", "documents removed or changed per rule", list(c["rules"]),
                [r["docs"] for r in c["rules"].values()], "documents"),
            bar("dup_clusters.png", "duplicate clusters by size", [str(k) for k in sorted(sizes)] or ["none"],
                [sizes[k] for k in sorted(sizes)] or [0], "clusters"),
            bar("tokens.png", "tokens per bin", list(meta["bins"]), [b["tokens"] for b in meta["bins"].values()],
                "tokens")]


def write_report(out, meta, docs, lines):
    import prepare  # for its atomic writer
    images = plots(Path(out), meta, docs)
    text = "\n".join([f"# Dataset report: {out}", "", f"`{meta['command']}`", "", "```"] + lines + ["```", ""]
                     + [f"![{name}]({name})" for name in images]) + "\n"
    prepare.write_atomic(Path(out) / "report.md", lambda f: f.write(text.encode()))
