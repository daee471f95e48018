"""
eval.py: how good is a checkpoint. Metrics and benchmarks; the command line also reaches the export and
the run comparison, which live in their own files.

    python eval.py --ckpt out/tiny                       # val loss, perplexity, bits per byte, a few samples
    python eval.py --ckpt out/tiny --text notes.txt      # ... on any text file (or --bin FILE.bin)
    python eval.py --ckpt out/tiny --mc hellaswag_val.jsonl        # multiple choice: acc and acc_norm
    python eval.py --ckpt out/tiny --mc ARC-Easy-Test.jsonl --format arc
    python eval.py --export-hf out/tiny hf/tiny          # export_hf.py: a Llama-style HuggingFace checkpoint
    python eval.py --compare out/lr_low out/lr_high --out report/lr   # runs.compare_runs: report.md + plots

What it adds over its neighbours: train.py estimates the val loss on a few random batches to watch a run;
this file scores a finished checkpoint on every token of a file, in the units that compare across
tokenizers, and on multiple-choice benchmarks. runs.py compares runs by their logs, not their weights.
Results of --ckpt go to out/RUN/eval.json (each mode updates its own key) and to the screen.

Three numbers for one thing. The loss is the mean negative log-likelihood in nats per token;
perplexity = exp(loss) is "as unsure as a uniform choice among that many tokens"; bits per byte =
loss * tokens / (bytes * ln 2) spreads the same total over the UTF-8 bytes of the text, so it compares
models whose tokenizers cut the text differently (a coarser tokenizer has fewer, harder tokens).
"""
import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import export_hf
from common import UserError, cli, dataset_path, write_json
from runs import compare_runs
from sample import generate_text, load_run

# -----------------------------------------------------------------------------
# loss, perplexity and bits per byte


@torch.no_grad()
def sum_nll(model, tokens, batch_size=8, max_tokens=None):
    """(sum of -log p(token | the tokens before it), tokens predicted) over a 1-D array of token ids.

    The array is cut into consecutive windows of block_size + 1 tokens overlapping by one, so every token
    but the first is predicted exactly once, seeing the tokens before it in its window (on average half a
    block of context; a sliding window would give each token more, at block_size times the cost)."""
    T = model.config.block_size
    device = next(model.parameters()).device
    n = len(tokens) if max_tokens is None else min(len(tokens), max_tokens + 1)
    starts = list(range(0, n - 1, T))
    full = [s for s in starts if s + T + 1 <= n]
    batches = [full[i:i + batch_size] for i in range(0, len(full), batch_size)]
    batches += [[s] for s in starts if s + T + 1 > n]  # the last, shorter window on its own: no padding
    total, count = 0.0, 0
    for rows in batches:
        length = min(T + 1, n - rows[0])
        w = torch.from_numpy(np.stack([np.asarray(tokens[s:s + length], dtype=np.int64) for s in rows]))  # (B, T + 1)
        x, y = w[:, :-1].to(device), w[:, 1:].to(device)  # (B, T) each; T = length - 1 <= block_size
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            logits, _ = model(x)                          # (B, T, vocab)
        total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum").item()
        count += y.numel()
    return total, count


def loss_report(total, count, tokens=None, n_bytes=None):
    """loss (nats/token), perplexity and bits per byte. bpb uses the contract's formula: the mean loss
    times the bin's tokens / (its bytes * ln 2); None when the byte count is unknown."""
    loss = total / count
    bpb = loss * tokens / (n_bytes * math.log(2)) if tokens and n_bytes else None
    return {"loss": loss, "perplexity": math.exp(min(loss, 700)), "bpb": bpb, "tokens_scored": count}


def eval_dataset(model, ckpt, max_tokens=None):
    """Every val*.bin of the run's dataset (meta.json gives each bin's tokens and bytes)."""
    data_dir = dataset_path(ckpt.get("config", {}).get("dataset", "default"))
    meta_path = data_dir / "meta.json"
    if not meta_path.is_file():
        raise UserError(f"{meta_path}: the run's dataset is not here; pass --bin FILE or --text FILE")
    meta = json.loads(meta_path.read_text())
    if meta.get("tokenizer_hash", ckpt["tokenizer_hash"]) != ckpt["tokenizer_hash"]:
        raise UserError(f"{meta_path}: tokenized with another tokenizer than {ckpt['path']}")
    results = {}
    for name, info in sorted(meta["bins"].items()):
        if name.startswith("val") and (data_dir / name).is_file():
            tokens = np.memmap(data_dir / name, dtype=np.uint16, mode="r")  # (N,) token ids
            results[name] = loss_report(*sum_nll(model, tokens, max_tokens=max_tokens), info["tokens"], info["bytes"])
    return results


def eval_file(model, enc, path, max_tokens=None):
    """A .bin of uint16 ids (bytes from a meta.json beside it, if it names the bin) or a UTF-8 text file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if path.suffix == ".bin":
        if path.stat().st_size % 2:
            raise UserError(f"{path}: {path.stat().st_size} bytes, not a whole number of uint16 token ids")
        tokens = np.memmap(path, dtype=np.uint16, mode="r")  # (N,) token ids
        if len(tokens) < 2:
            raise UserError(f"{path}: fewer than 2 tokens")
        if int(tokens.max()) >= model.config.vocab_size:  # the embedding lookup would fail deep in torch
            raise UserError(f"{path}: token id {int(tokens.max())} >= the model's vocab_size "
                            f"{model.config.vocab_size} (a bin made with another tokenizer?)")
        meta = path.parent / "meta.json"
        info = json.loads(meta.read_text())["bins"].get(path.name, {}) if meta.is_file() else {}
        return loss_report(*sum_nll(model, tokens, max_tokens=max_tokens), info.get("tokens"), info.get("bytes"))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text (give a .bin of token ids instead)") from None
    tokens = np.array([enc.eot_token] + enc.encode_ordinary(text))  # (N,): a document after <|endoftext|>
    if len(tokens) < 2:
        raise UserError(f"{path}: empty")
    return loss_report(*sum_nll(model, tokens, max_tokens=max_tokens), len(tokens), len(text.encode("utf-8")))


# a few fixed prompts, continued with a fixed seed: the same checkpoint always writes the same text
PROMPTS = ["\n", "ROMEO:\n", "def "]
SAMPLING = {"max_new_tokens": 64, "temperature": 0.8, "top_k": 50, "seed": 1337}


def sample_prompts(model, enc):
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(SAMPLING["seed"])
    return [{"prompt": p, "output": generate_text(model, enc, p, SAMPLING["max_new_tokens"], generator=generator,
                                                  temperature=SAMPLING["temperature"], top_k=SAMPLING["top_k"])}
            for p in PROMPTS]


# -----------------------------------------------------------------------------
# multiple-choice benchmarks: which ending does the model find likeliest?


def read_jsonl(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise UserError(f"{path}:{number}: not JSON ({error.msg})") from None
    if not rows:
        raise UserError(f"{path}: no items")
    return rows


def hellaswag_text(text):
    """lm-evaluation-harness's HellaSwag preprocessing: the WikiHow items carry markers like [title] and
    [header]; [title] becomes a sentence break, the others are dropped, double spaces closed."""
    text = text.strip().replace(" [title]", ". ")
    return re.sub(r"\[.*?\]", "", text).replace("  ", " ")


def load_hellaswag(path):
    """Official HellaSwag jsonl: activity_label, ctx_a, ctx_b, endings (4), label (an int)."""
    items = []
    for row in read_jsonl(path):
        ctx = row["ctx_a"] + " " + row["ctx_b"].capitalize() if "ctx_a" in row else row["ctx"]
        items.append({"context": hellaswag_text(row["activity_label"] + ": " + ctx),
                      "endings": [" " + hellaswag_text(e) for e in row["endings"]], "label": int(row["label"])})
    return items


def load_arc(path):
    """Official ARC jsonl: question.stem, question.choices [{text, label}], answerKey ("A".."E" or "1".."5").
    Asked as lm-evaluation-harness does: "Question: ...\\nAnswer:" continued by each choice's text."""
    items = []
    for row in read_jsonl(path):
        choices = row["question"]["choices"]
        labels = [c["label"] for c in choices]
        items.append({"context": f"Question: {row['question']['stem']}\nAnswer:",
                      "endings": [" " + c["text"] for c in choices], "label": labels.index(row["answerKey"])})
    return items


def load_generic(path):
    """{"context": str, "endings": [str, ...], "label": int}; endings are appended exactly as written."""
    return [{"context": r["context"], "endings": list(r["endings"]), "label": int(r["label"])} for r in read_jsonl(path)]


def load_mc(path, fmt="auto"):
    if fmt == "auto":
        first = read_jsonl(path)[0]
        fmt = "hellaswag" if "ctx" in first or "ctx_a" in first else "arc" if "question" in first else "generic"
    loader = {"hellaswag": load_hellaswag, "arc": load_arc, "generic": load_generic}[fmt]
    try:
        items = loader(path)
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"{path}: not {fmt}-format jsonl ({type(error).__name__}: {error})") from None
    bad = [i for i, item in enumerate(items) if not 0 <= item["label"] < len(item["endings"])]
    if bad:
        raise UserError(f"{path}: item {bad[0] + 1} has label {items[bad[0]]['label']} outside its endings")
    return items


@torch.no_grad()
def ending_logprobs(model, context_ids, endings_ids):
    """Sum of log p(ending tokens | context) for each ending -> list of floats. The endings of an item
    run as one batch, right-padded (a causal model never looks right, so padding changes nothing);
    a row longer than block_size + 1 keeps its last block_size + 1 tokens."""
    device = next(model.parameters()).device
    rows = [(context_ids + e)[-(model.config.block_size + 1):] for e in endings_ids]
    width = max(len(r) for r in rows) - 1
    x = torch.zeros(len(rows), width, dtype=torch.long)        # (E, width): one row per ending
    y = torch.full((len(rows), width), -1, dtype=torch.long)  # (E, width); -1: not scored
    for i, (row, ending) in enumerate(zip(rows, endings_ids)):
        x[i, :len(row) - 1] = torch.tensor(row[:-1])
        n = min(len(ending), len(row) - 1)                   # the ending's tokens are the row's last n
        if n:
            y[i, len(row) - 1 - n:len(row) - 1] = torch.tensor(row[-n:])
    logits, _ = model(x.to(device))                          # (E, width, vocab)
    logp = logits.float().log_softmax(-1).cpu()              # (E, width, vocab)
    picked = logp.gather(-1, y.clamp(min=0)[..., None])[..., 0]  # (E, width): log p of each target token
    return (picked * (y >= 0)).sum(-1).tolist()              # (E,)


def eval_mc(model, enc, items):
    """acc: the ending with the highest summed log-likelihood. acc_norm: the highest log-likelihood per
    character of the ending, not counting the space that joins it to the context (lm-evaluation-harness's
    acc_norm): long endings no longer lose merely for having more tokens to pay for.
    chance = the mean of 1 / number of endings."""
    correct = correct_norm = 0
    for item in items:
        context = [enc.eot_token] + enc.encode_ordinary(item["context"])
        scores = ending_logprobs(model, context, [enc.encode_ordinary(e) for e in item["endings"]])
        per_char = [s / max(len(e.lstrip(" ")), 1) for s, e in zip(scores, item["endings"])]
        correct += int(np.argmax(scores)) == item["label"]
        correct_norm += int(np.argmax(per_char)) == item["label"]
    n = len(items)
    return {"items": n, "acc": correct / n, "acc_norm": correct_norm / n,
            "chance": sum(1 / len(i["endings"]) for i in items) / n,
            "stderr": math.sqrt(0.25 / n)}  # binomial standard error at its largest (p = 0.5)


# -----------------------------------------------------------------------------
# the command line


def update_eval_json(run_dir, key, value):
    path = Path(run_dir) / "eval.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = value
    write_json(path, data)
    return path


def multiple_choice(model, enc, args):
    """--mc FILE: acc and acc_norm over its items, printed and returned."""
    items = load_mc(args.mc, args.format)[:args.limit]
    result = {"file": args.mc, **eval_mc(model, enc, items)}
    print(f"{args.mc}: {result['items']} items, acc {result['acc']:.4f}, acc_norm {result['acc_norm']:.4f} "
          f"(chance {result['chance']:.4f}, stderr <= {result['stderr']:.4f})")
    return result


def loss_and_samples(model, enc, ckpt, args):
    """Loss, perplexity and bits per byte of --bin / --text, or of every val bin of the run's dataset; then
    the fixed prompts' continuations unless --no-samples. Printed and returned."""
    where = args.bin or args.text
    bins = {Path(where).name: eval_file(model, enc, where, args.max_tokens)} if where else \
        eval_dataset(model, ckpt, args.max_tokens)
    for name, r in bins.items():
        bpb = "-" if r["bpb"] is None else f"{r['bpb']:.4f}"
        print(f"{name:24s} loss {r['loss']:.4f}  perplexity {r['perplexity']:9.2f}  bits/byte {bpb}  "
              f"({r['tokens_scored']:,} tokens)")
    result = {"checkpoint": ckpt["path"], "step": ckpt.get("step"), "bins": bins}
    if not args.no_samples:
        result["samples"], result["sampling"] = sample_prompts(model, enc), SAMPLING
        for sample in result["samples"]:
            print(f"--- {sample['prompt']!r}\n{sample['prompt']}{sample['output']}")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description="Evaluate checkpoints, export them, compare runs.")
    parser.add_argument("--ckpt", help="a run dir or checkpoint file")
    parser.add_argument("--bin", help="evaluate this uint16 token file instead of the dataset's val bins")
    parser.add_argument("--text", help="evaluate this UTF-8 text file instead")
    parser.add_argument("--max-tokens", type=int, help="score at most this many tokens per bin")
    parser.add_argument("--no-samples", action="store_true", help="skip the fixed prompts' generations")
    parser.add_argument("--mc", help="a multiple-choice jsonl file (HellaSwag, ARC or generic)")
    parser.add_argument("--format", default="auto", choices=["auto", "hellaswag", "arc", "generic"])
    parser.add_argument("--limit", type=int, help="score only the first N multiple-choice items")
    parser.add_argument("--export-hf", nargs=2, metavar=("RUN", "DIR"), help="write a HuggingFace Llama checkpoint")
    parser.add_argument("--compare", nargs="+", metavar="RUN", help="run dirs to compare")
    parser.add_argument("--out", help="report directory for --compare (default report/compare)")
    parser.add_argument("--names", nargs="+", help="a short name per compared run")
    parser.add_argument("--title", help="the comparison report's title")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    if args.compare:
        summary = compare_runs(args.compare, args.out or "report/compare", args.names, args.title)
        print(Path(summary["report"]).read_text())
        return
    if args.export_hf:
        return export_hf.main(args.export_hf)
    if not args.ckpt:
        parser.error("give --ckpt RUN, --export-hf RUN DIR or --compare RUN ...")
    model, enc, ckpt = load_run(args.ckpt, args.device)
    run_dir = Path(ckpt["path"]).parent
    if args.mc:
        path = update_eval_json(run_dir, f"mc:{Path(args.mc).name}", multiple_choice(model, enc, args))
    else:
        where = args.bin or args.text
        path = update_eval_json(run_dir, f"loss:{Path(where).name}" if where else "loss",
                                loss_and_samples(model, enc, ckpt, args))
    print(f"wrote {path}")

if __name__ == "__main__":
    sys.exit(cli(main))
