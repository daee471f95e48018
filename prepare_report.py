"""
prepare_report.py: what prepare.py prints and writes about a dataset: the summary, report.md, the plots,
every number from meta.json, so the report can be rebuilt from it.
"""
from pathlib import Path

import numpy as np

import dedup
from common import write_atomic

LENGTH_BINS = np.linspace(0, 8, 65)  # log10 bytes per document: 1 byte to 100 MB, 8 bins per decade


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
    sizes = {int(k): v for k, v in d.get("cluster_sizes", {}).items()}
    lines += ["", "## Dedup", f"{d['docs']:,} docs: {d['exact_removed']:,} exact + {d['near_removed']:,} near "
              f"duplicates removed ({(d['exact_removed'] + d['near_removed']) / max(1, d['docs']):.1%}); "
              f"cluster sizes {dict(sorted(sizes.items()))}"]
    ld = meta["line_dedup"]
    lines += [f"line dedup: {ld['distinct_lines']:,} distinct lines (>= {ld['min_chars']} normalised characters) "
              f"occur in >= {ld['min_docs']} documents; {ld['lines_removed']:,} lines removed, "
              f"{ld['docs_emptied']:,} documents left empty and dropped" if ld["min_docs"] else "line dedup: off"]
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
    if meta.get("mix_note"):
        lines.append(meta["mix_note"])
    lines += ["", f"## Contamination ({meta['contamination']['n']}-gram overlap with train)"]
    for name, r in meta["contamination"].items():
        if name != "n":
            sample = f" (a random sample of {r['of']:,} documents)" if r.get("of", 0) > r["items"] else ""
            lines.append(f"{name}{sample}: {r['contaminated']}/{r['items']} items share a {meta['contamination']['n']}-gram "
                         f"with train; {r['ngram_overlap']:.2%} of their n-grams; worst {r['worst']}")
    lines += ["", f"raw text {raw_bytes / 1e6:.1f} MB -> bins in {meta['seconds']:.1f} s = {meta['raw_mb_per_s']} MB/s "
              "(stages reused from the cache are not recomputed)",
              f"{meta['shards']} shards, executor {meta['executor']}, {meta['workers']} workers",
              "stage               seconds   CPU s      MB   MB/s  shards reused   docs in  docs out  RSS MB (driver/worker)"]
    for k, v in meta["stages"].items():
        cpu = v.get("cpu_seconds", 0) + v.get("driver_cpu_seconds", 0)  # workers' + the driver's
        lines.append(f"{k:<18} {v['seconds']:>8.1f} {cpu:>7.1f} {v.get('mb', 0):>7.1f} {v.get('mb_per_s', 0):>6.1f} "
                     f"{v.get('shards', '-'):>7} {v.get('reused', '-'):>6} {v.get('docs_in', '-'):>9} "
                     f"{v.get('docs_out', '-'):>9}  {v['peak_rss_mb']:.0f}/{v.get('worker_peak_rss_mb', '-')}")
    return lines


def plots(out, meta, lengths):
    """PNG plots next to report.md; returns their file names. lengths: {source: documents per bin of
    LENGTH_BINS}, counted shard by shard (a histogram: the driver never holds one length per document).
    Matplotlib without a display (Agg); each PNG written atomically, as every output of prepare.py."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def bar(name, title, labels, values, xlabel):
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(labels) + 1.2))
        ax.barh(labels, values)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        fig.tight_layout()
        write_atomic(out / name, lambda f: fig.savefig(f, format="png", dpi=80))
        plt.close(fig)
        return name

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for s, counts in lengths.items():
        if counts.sum():
            ax.stairs(counts, LENGTH_BINS, fill=True, alpha=0.6, label=f"{s} ({counts.sum():,} docs)")
    ax.set_title("document length per source (in the bins)")
    ax.set_xlabel("log10 bytes")
    ax.legend()
    fig.tight_layout()
    write_atomic(out / "doc_lengths.png", lambda f: fig.savefig(f, format="png", dpi=80))
    plt.close(fig)
    c, d = meta["cleaning"], meta["dedup"]
    sizes = {int(k): v for k, v in d.get("cluster_sizes", {}).items()}
    return ["doc_lengths.png",
            bar("scripts.png", "script (share of characters)", list(c["scripts"]), list(c["scripts"].values()),
                "characters"),
            bar("rules.png", "documents removed or changed per rule", list(c["rules"]),
                [r["docs"] for r in c["rules"].values()], "documents"),
            bar("dup_clusters.png", "duplicate clusters by size", [str(k) for k in sorted(sizes)] or ["none"],
                [sizes[k] for k in sorted(sizes)] or [0], "clusters"),
            bar("tokens.png", "tokens per bin", list(meta["bins"]), [b["tokens"] for b in meta["bins"].values()],
                "tokens")]


def write_report(folder, meta, lengths, lines, name=None):
    """report.md (+ plots) into folder; `name` is the dataset's path as the title shows it."""
    images = plots(Path(folder), meta, lengths)
    text = "\n".join([f"# Dataset report: {name or folder}", "", f"`{meta['command']}`", "", "```"] + lines
                     + ["```", ""] + [f"![{i}]({i})" for i in images]) + "\n"
    write_atomic(Path(folder) / "report.md", text)
