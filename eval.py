"""
eval.py — how good is a checkpoint, and how do runs compare.

    python eval.py --ckpt out/tiny                       # val loss, perplexity, bits per byte, a few samples
    python eval.py --ckpt out/tiny --text notes.txt      # ... on any text file (or --bin FILE.bin)
    python eval.py --ckpt out/tiny --mc hellaswag_val.jsonl        # multiple choice: acc and acc_norm
    python eval.py --ckpt out/tiny --mc ARC-Easy-Test.jsonl --format arc
    python eval.py --export-hf out/tiny hf/tiny          # a Llama-style HuggingFace checkpoint
    python eval.py --compare out/lr_low out/lr_mid out/lr_high --out report/lr   # report.md + plots

Results of --ckpt go to out/RUN/eval.json (each mode updates its own key) and to the screen.

Three numbers for one thing. The loss is the mean negative log-likelihood in nats per token;
perplexity = exp(loss) is "as unsure as a uniform choice among that many tokens"; bits per byte =
loss * tokens / (bytes * ln 2) spreads the same total over the UTF-8 bytes of the text, so it compares
models whose tokenizers cut the text differently (a coarser tokenizer has fewer, harder tokens).
"""
import argparse
import json
import math
import os
import re
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

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
        w = torch.from_numpy(np.stack([np.asarray(tokens[s:s + length], dtype=np.int64) for s in rows]))
        x, y = w[:, :-1].to(device), w[:, 1:].to(device)  # (B, length - 1) each
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            logits, _ = model(x)
        total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum").item()
        count += y.numel()
    return total, count


def loss_report(total, count, tokens=None, n_bytes=None):
    """loss (nats/token), perplexity and bits per byte. bpb uses the contract's formula: the mean loss
    times the bin's tokens / (its bytes * ln 2); None when the byte count is unknown."""
    loss = total / count
    bpb = loss * tokens / (n_bytes * math.log(2)) if tokens and n_bytes else None
    return {"loss": loss, "perplexity": math.exp(min(loss, 700)), "bpb": bpb, "tokens_scored": count}


def dataset_dir(ckpt):
    name = ckpt.get("config", {}).get("dataset", "default")
    return Path(name) if "/" in name else Path("data") / name


def eval_dataset(model, ckpt, max_tokens=None):
    """Every val*.bin of the run's dataset (meta.json gives each bin's tokens and bytes)."""
    data_dir = dataset_dir(ckpt)
    meta_path = data_dir / "meta.json"
    if not meta_path.is_file():
        raise SystemExit(f"{meta_path}: the run's dataset is not here; pass --bin FILE or --text FILE")
    meta = json.loads(meta_path.read_text())
    if meta.get("tokenizer_hash", ckpt["tokenizer_hash"]) != ckpt["tokenizer_hash"]:
        raise SystemExit(f"{meta_path}: tokenized with another tokenizer than {ckpt['path']}")
    results = {}
    for name, info in sorted(meta["bins"].items()):
        if name.startswith("val") and (data_dir / name).is_file():
            tokens = np.memmap(data_dir / name, dtype=np.uint16, mode="r")
            results[name] = loss_report(*sum_nll(model, tokens, max_tokens=max_tokens), info["tokens"], info["bytes"])
    return results


def eval_file(model, enc, path, max_tokens=None):
    """A .bin of uint16 ids (bytes from a meta.json beside it, if it names the bin) or a UTF-8 text file."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"{path}: no such file")
    if path.suffix == ".bin":
        tokens = np.memmap(path, dtype=np.uint16, mode="r")
        if len(tokens) < 2:
            raise SystemExit(f"{path}: fewer than 2 tokens")
        meta = path.parent / "meta.json"
        info = json.loads(meta.read_text())["bins"].get(path.name, {}) if meta.is_file() else {}
        return loss_report(*sum_nll(model, tokens, max_tokens=max_tokens), info.get("tokens"), info.get("bytes"))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SystemExit(f"{path}: not UTF-8 text (give a .bin of token ids instead)") from None
    tokens = np.array([enc.eot_token] + enc.encode_ordinary(text))  # a document, preceded by <|endoftext|>
    if len(tokens) < 2:
        raise SystemExit(f"{path}: empty")
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
        raise SystemExit(f"{path}: no such file")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise SystemExit(f"{path}:{number}: not JSON ({error.msg})") from None
    if not rows:
        raise SystemExit(f"{path}: no items")
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
        raise SystemExit(f"{path}: not {fmt}-format jsonl ({type(error).__name__}: {error})") from None
    bad = [i for i, item in enumerate(items) if not 0 <= item["label"] < len(item["endings"])]
    if bad:
        raise SystemExit(f"{path}: item {bad[0] + 1} has label {items[bad[0]]['label']} outside its endings")
    return items


@torch.no_grad()
def ending_logprobs(model, context_ids, endings_ids):
    """Sum of log p(ending tokens | context) for each ending -> list of floats. The endings of an item
    run as one batch, right-padded (a causal model never looks right, so padding changes nothing);
    a row longer than block_size + 1 keeps its last block_size + 1 tokens."""
    device = next(model.parameters()).device
    rows = [(context_ids + e)[-(model.config.block_size + 1):] for e in endings_ids]
    width = max(len(r) for r in rows) - 1
    x = torch.zeros(len(rows), width, dtype=torch.long)
    y = torch.full((len(rows), width), -1, dtype=torch.long)  # -1: not scored
    for i, (row, ending) in enumerate(zip(rows, endings_ids)):
        x[i, :len(row) - 1] = torch.tensor(row[:-1])
        n = min(len(ending), len(row) - 1)                   # the ending's tokens are the row's last n
        if n:
            y[i, len(row) - 1 - n:len(row) - 1] = torch.tensor(row[-n:])
    logits, _ = model(x.to(device))
    logp = logits.float().log_softmax(-1).cpu()              # (E, width, vocab)
    picked = logp.gather(-1, y.clamp(min=0)[..., None])[..., 0]
    return (picked * (y >= 0)).sum(-1).tolist()


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
# HuggingFace export: our GPT is a Llama (RMSNorm, RoPE, SwiGLU, GQA, no biases), renamed


def hf_config(config, enc):
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": config.vocab_size,
            "hidden_size": config.n_embd, "intermediate_size": config.hidden, "num_hidden_layers": config.n_layer,
            "num_attention_heads": config.n_head, "num_key_value_heads": config.n_kv_head,
            "head_dim": config.n_embd // config.n_head, "hidden_act": "silu",
            "max_position_embeddings": config.block_size, "rms_norm_eps": config.norm_eps,
            "rope_theta": config.rope_theta, "rope_scaling": None, "tie_word_embeddings": config.tie_embeddings,
            "attention_bias": False, "mlp_bias": False, "attention_dropout": 0.0, "initializer_range": 0.02,
            "bos_token_id": enc.eot_token, "eos_token_id": enc.eot_token, "torch_dtype": "float32"}


def hf_state_dict(model):
    """Our names -> Llama's. Ours fuses q,k,v into c_attn and gate,up into c_fc; Llama keeps them apart.
    RoPE needs no permutation: model.py rotates the pairs (i, i + D/2), as HF's rotate_half does."""
    c, sd = model.config, model.state_dict()
    D, hidden = c.n_embd // c.n_head, c.hidden
    out = {"model.embed_tokens.weight": sd["transformer.wte.weight"], "model.norm.weight": sd["transformer.ln_f.weight"]}
    for i in range(c.n_layer):
        ours, hf = f"transformer.h.{i}.", f"model.layers.{i}."
        q, k, v = sd[ours + "attn.c_attn.weight"].split([c.n_head * D, c.n_kv_head * D, c.n_kv_head * D])
        gate, up = sd[ours + "mlp.c_fc.weight"].split([hidden, hidden])
        out.update({hf + "self_attn.q_proj.weight": q, hf + "self_attn.k_proj.weight": k,
                    hf + "self_attn.v_proj.weight": v, hf + "self_attn.o_proj.weight": sd[ours + "attn.c_proj.weight"],
                    hf + "mlp.gate_proj.weight": gate, hf + "mlp.up_proj.weight": up,
                    hf + "mlp.down_proj.weight": sd[ours + "mlp.c_proj.weight"],
                    hf + "input_layernorm.weight": sd[ours + "ln_1.weight"],
                    hf + "post_attention_layernorm.weight": sd[ours + "ln_2.weight"]})
    if not c.tie_embeddings:  # tied: HF ties lm_head to embed_tokens itself (safetensors has no aliasing)
        out["lm_head.weight"] = sd["lm_head.weight"]
    return out


# safetensors: 8 bytes little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
# then the raw tensors back to back (offsets relative to the end of the header)
SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def write_safetensors(tensors, path):
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, t in tensors.items():
        n = t.numel() * t.element_size()
        header[name] = {"dtype": SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the data starts 8-byte aligned
    tmp = Path(f"{path}.tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for t in tensors.values():  # as bytes: numpy has no bfloat16, a byte view has no dtype trouble
            f.write(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_safetensors(path):
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header, body = json.loads(data[8:8 + n]), data[8 + n:]
    dtypes = {v: k for k, v in SAFETENSORS_DTYPES.items()}
    return {name: torch.frombuffer(bytearray(body[a:b]), dtype=dtypes[h["dtype"]]).reshape(h["shape"])
            for name, h in header.items() if name != "__metadata__" for a, b in [h["data_offsets"]]}


def bytes_to_unicode():
    """GPT-2's map from the 256 bytes to printable characters, which HF byte-level BPE files use: printable
    bytes stand for themselves, the others (space, control bytes) take the characters from U+0100 up."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return {b: chr(b) if b in printable else chr(next(extra)) for b in range(256)}


def hf_tokenizer(tok_dir, enc):
    """Our BPE as a `tokenizers` tokenizer.json: the same split regex, then byte-level BPE with the merges in
    rank order. Merge rank = token id - 256, so HF's lowest-rank-pair-first equals tiktoken's encoding."""
    spec = json.loads((Path(tok_dir) / "tokenizer.json").read_text(encoding="utf-8"))
    show, eot = bytes_to_unicode(), enc.decode([enc.eot_token])
    pieces = ["".join(show[b] for b in enc.decode_single_token_bytes(i)) for i in range(256 + len(spec["merges"]))]
    specials = [{"id": i, "content": name, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": False, "special": True} for name, i in spec["special_tokens"].items()]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": specials, "normalizer": None,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": spec["pattern"]}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
            "post_processor": {"type": "TemplateProcessing",  # tokenizer(text) = <|endoftext|> + text, as in training
                               "single": [{"SpecialToken": {"id": eot, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                               "pair": [{"SpecialToken": {"id": eot, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                        {"Sequence": {"id": "B", "type_id": 1}}],
                               "special_tokens": {eot: {"id": eot, "ids": [enc.eot_token], "tokens": [eot]}}},
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": {p: i for i, p in enumerate(pieces)},
                      "merges": [f"{pieces[a]} {pieces[b]}" for a, b in spec["merges"]]}}


def write_json(path, obj):
    tmp = Path(f"{path}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def export_hf(run, out_dir):
    """config.json, model.safetensors, tokenizer.json (+ tokenizer_config.json) and our tokenizer files."""
    model, enc, ckpt = load_run(run)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", hf_config(model.config, enc))
    write_safetensors({k: v.float() for k, v in hf_state_dict(model).items()}, out / "model.safetensors")
    tok_dir = Path(ckpt["path"]).parent / "tokenizer"
    write_json(out / "tokenizer.json", hf_tokenizer(tok_dir, enc))
    eot = enc.decode([enc.eot_token])
    write_json(out / "tokenizer_config.json", {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": eot,
                                               "eos_token": eot, "model_max_length": model.config.block_size})
    shutil.copytree(tok_dir, out / "nanopretrain_tokenizer", dirs_exist_ok=True)  # for tokenizer.load_tokenizer
    return out


# -----------------------------------------------------------------------------
# comparing runs: the retrospective's curves and tables, from each run's config.json and metrics.jsonl


def read_run(run_dir):
    """(config dict, metrics records). A last line cut short by a killed run is dropped, others are errors."""
    run_dir = Path(run_dir)
    for path in (run_dir / "config.json", run_dir / "metrics.jsonl"):
        if not path.is_file():
            raise SystemExit(f"{path}: missing (is {run_dir} a train.py run directory?)")
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise SystemExit(f"{run_dir / 'metrics.jsonl'}:{number}: not JSON") from None
    return json.loads((run_dir / "config.json").read_text()), records


def outcomes(records):
    """The numbers a results table needs, each read straight off metrics.jsonl."""
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval" and r.get("val_loss") is not None]
    end = next((r for r in reversed(records) if r["kind"] == "end"), None)
    steady = train[1:] or train  # the first logged interval includes start-up (compilation, caches)
    speeds = [r["tokens_per_s"] for r in steady if r.get("tokens_per_s")]
    mfus = [r["mfu"] for r in steady if r.get("mfu") is not None]
    events = {}
    for r in records:
        if r["kind"] == "event":
            events[r["event"]] = events.get(r["event"], 0) + 1
    return {"final_val_loss": evals[-1]["val_loss"] if evals else None,
            "final_val_bpb": evals[-1].get("val_bpb") if evals else None,
            "best_val_loss": min(r["val_loss"] for r in evals) if evals else None,
            "final_train_loss": train[-1]["loss"] if train else None,
            "steps": max((r.get("step", 0) for r in records), default=0),
            "tokens": max((r.get("tokens", 0) for r in records), default=0),
            "tokens_per_s": float(np.median(speeds)) if speeds else None,  # the median: robust to hiccups
            "mfu": float(np.median(mfus)) if mfus else None,
            "wall_s": end["time_s"] if end else max((r.get("time_s", 0) for r in records), default=0),
            "status": end["status"] if end else "no end record (still running, or killed)", "events": events}


def config_diff(configs):
    """{key: [value per run]} for every key whose value is not the same in all runs (absent = None)."""
    keys = list(dict.fromkeys(k for c in configs for k in c))
    table = {k: [c.get(k) for c in configs] for k in keys}
    differs = {k: v for k, v in table.items() if any(json.dumps(x) != json.dumps(v[0]) for x in v)}
    return differs, {k: v[0] for k, v in table.items() if k not in differs}


def tokens_to_reach(records, target):
    """Tokens seen at the first evaluation whose val loss is <= target (None if never)."""
    return next((r["tokens"] for r in records if r["kind"] == "eval" and r.get("val_loss") is not None
                 and r["val_loss"] <= target), None)


PANELS = [  # (file, title, x key, y key, x label, y label)
    ("loss_vs_tokens", "loss vs tokens seen (thin: train, dots: val, red x: stability event)", "tokens", "loss",
     "tokens seen", "loss (nats/token)"),
    ("loss_vs_time", "loss vs wall-clock time (thin: train, dots: val)", "time_s", "loss", "seconds since start",
     "loss (nats/token)"),
    ("lr", "learning rate schedule", "step", "lr", "step", "learning rate"),
    ("grad_norm", "gradient norm before clipping (log scale)", "step", "grad_norm", "step", "global L2 norm"),
    ("tokens_per_s", "throughput", "step", "tokens_per_s", "step", "tokens / second"),
]


def draw_panel(ax, panel, runs):
    name, title, xkey, ykey, xlabel, ylabel = panel
    for color, run in zip(plt_colors(), runs):
        train = [r for r in run["records"] if r["kind"] == "train" and r.get(ykey) is not None]
        final = run["outcomes"]["final_val_loss"]
        ax.plot([r[xkey] for r in train], [r[ykey] for r in train], color=color, lw=1, alpha=0.6 if ykey == "loss" else 1,
                label=run["label"] + (f" -> val {final:.3f}" if ykey == "loss" and final is not None else ""))
        if ykey == "loss":
            evals = [r for r in run["records"] if r["kind"] == "eval" and r.get("val_loss") is not None]
            ax.plot([r[xkey] for r in evals], [r["val_loss"] for r in evals], "o-", color=color, lw=2, ms=4)
            for r in run["records"]:  # stability events (spike, nan, ...) as red crosses on the x axis
                if r["kind"] == "event" and r.get(xkey) is not None:
                    ax.plot(r[xkey], 0, "x", color="red", ms=8, transform=ax.get_xaxis_transform(), clip_on=False)
    if ykey == "grad_norm":
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def draw_outcome_bars(ax, runs):
    names = [r["name"] for r in runs]
    values = [r["outcomes"]["final_val_loss"] for r in runs]
    shown = [v if v is not None and math.isfinite(v) else 0 for v in values]
    bars = ax.bar(names, shown, color=plt_colors()[:len(runs)])
    for bar, v, run in zip(bars, values, runs):
        status = run["outcomes"]["status"]
        label = ("-" if v is None else f"{v:.3f}") + ("" if status == "finished" else f"\n({status.split()[0]})")
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
    ax.set(title="final val loss (lower is better)", ylabel="loss (nats/token)")
    ax.margins(y=0.15)
    ax.tick_params(axis="x", labelrotation=20)


def plt_colors():
    import matplotlib.pyplot as plt
    return plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4


def plot_runs(runs, out_dir, title):
    """overview.png (every panel: the picture to look at first), then one PNG per panel."""
    import matplotlib
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    files = []

    def save(fig, name):
        fig.tight_layout()
        path = Path(out_dir) / f"{name}.png"
        fig.savefig(path.with_suffix(".tmp.png"), dpi=90)
        os.replace(path.with_suffix(".tmp.png"), path)
        plt.close(fig)
        files.append(path.name)

    fig, axes = plt.subplots(2, 3, figsize=(18, 9.5))
    for ax, panel in zip(axes.flat, PANELS):
        draw_panel(ax, panel, runs)
    draw_outcome_bars(axes.flat[-1], runs)
    fig.suptitle(title, fontsize=14)
    save(fig, "overview")
    for panel in PANELS:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        draw_panel(ax, panel, runs)
        save(fig, panel[0])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    draw_outcome_bars(ax, runs)
    save(fig, "final_val_loss")
    return files


def fmt(value, spec=".4f"):
    """Outcomes with fixed decimals (spec); config values (spec=None) exactly as config.json has them."""
    return "—" if value is None else format(value, spec) if spec and not isinstance(value, str) else str(value)


def write_report(summary, runs, out_dir):
    names = [r["name"] for r in runs]
    o = [r["outcomes"] for r in runs]
    target = summary["target_val_loss"]
    lines = [f"# {summary['title']}", "", "![overview](overview.png)", "",
             "## Setup", "", *[f"- **{r['name']}**: `{r['dir']}`" for r in runs], "",
             f"Held fixed ({len(summary['held_fixed'])} keys): " +
             ", ".join(f"`{k}={fmt(v, None)}`" for k, v in summary["held_fixed"].items()), "",
             "## What differs", "", "| config key | " + " | ".join(names) + " |", "|---" * (len(runs) + 1) + "|",
             *[f"| `{k}` | " + " | ".join(f"`{fmt(v, None)}`" for v in values) + " |" for k, values in summary["config_diff"].items()],
             "", "## Outcomes", "",
             "| run | final val loss | val bits/byte | best val loss | tokens to val loss "
             f"{fmt(target)} | tokens seen | tokens/s | MFU | wall time (s) | status | stability events |",
             "|---" * 11 + "|"]
    for r, x in zip(runs, o):
        events = ", ".join(f"{k} x{n}" for k, n in x["events"].items()) or "none"
        mfu = None if x["mfu"] is None else f"{100 * x['mfu']:.1f}%"
        lines.append(f"| {r['name']} | {fmt(x['final_val_loss'])} | {fmt(x['final_val_bpb'])} | {fmt(x['best_val_loss'])} | "
                     f"{fmt(r['tokens_to_target'], ',')} | {fmt(x['tokens'], ',')} | {fmt(x['tokens_per_s'], ',.0f')} | "
                     f"{fmt(mfu, None)} | {fmt(x['wall_s'], ',.1f')} | {x['status']} | {events} |")
    lines += ["", "## Conclusion", "", summary["conclusion"], "",
              "Tokens/s and MFU are medians over the logged intervals after the first; MFU is '—' on a CPU. "
              f"'Tokens to val loss {fmt(target)}': the first evaluation at or below the loss every finished run "
              "reached (the worst run's best), i.e. how fast each got to the same quality.", "",
              "Plots: " + ", ".join(f"[{f}]({f})" for f in summary["plots"]), ""]
    path = Path(out_dir) / "report.md"
    path.with_suffix(".tmp").write_text("\n".join(lines))
    os.replace(path.with_suffix(".tmp"), path)
    return path


def conclude(runs):
    """One measured sentence or two: who won on val loss and by how much, who was fastest, what broke."""
    ok = [r for r in runs if r["outcomes"]["final_val_loss"] is not None and math.isfinite(r["outcomes"]["final_val_loss"])]
    if not ok:
        return "No run has a finite val loss: nothing to rank."
    ok.sort(key=lambda r: r["outcomes"]["final_val_loss"])
    best = ok[0]
    text = f"Lowest final val loss: **{best['name']}** ({best['outcomes']['final_val_loss']:.4f}"
    text += f", {best['outcomes']['final_val_bpb']:.4f} bits/byte)" if best["outcomes"]["final_val_bpb"] else ")"
    if len(ok) > 1:
        text += f", {ok[1]['outcomes']['final_val_loss'] - best['outcomes']['final_val_loss']:.4f} below the next ({ok[1]['name']})"
    fast = [r for r in runs if r["outcomes"]["tokens_per_s"]]
    if fast:
        top = max(fast, key=lambda r: r["outcomes"]["tokens_per_s"])
        text += f". Highest throughput: **{top['name']}** ({top['outcomes']['tokens_per_s']:,.0f} tokens/s)"
    broken = [f"{r['name']} ({r['outcomes']['status']})" for r in runs if r["outcomes"]["status"] != "finished"]
    return text + "." + (f" Did not finish normally: {', '.join(broken)}." if broken else "")


def compare_runs(run_dirs, out_dir, names=None, title=None):
    """Read each run, write out_dir/report.md + PNGs + summary.json; return the summary dict:
    {title, runs: [{name, dir, outcomes, tokens_to_target}], config_diff: {key: [values]}, held_fixed,
     target_val_loss, conclusion, plots, report}."""
    if names and len(names) != len(run_dirs):
        raise SystemExit(f"--names: {len(names)} names for {len(run_dirs)} runs")
    names = names or [Path(d).name for d in run_dirs]
    if len(set(names)) < len(names):
        names = [str(d) for d in run_dirs]
    runs = []
    for name, run_dir in zip(names, run_dirs):
        config, records = read_run(run_dir)
        runs.append({"name": name, "dir": str(run_dir), "config": config, "records": records,
                     "outcomes": outcomes(records)})
    diff, fixed = config_diff([r["config"] for r in runs])
    for i, r in enumerate(runs):  # legends say what differs: "b: learning_rate=0.003"
        shown = [f"{k}={v[i]}" for k, v in diff.items() if k != "out_dir"][:3]
        r["label"] = r["name"] + (": " + ", ".join(shown) if shown else "")
    bests = [r["outcomes"]["best_val_loss"] for r in runs if r["outcomes"]["status"] == "finished"
             and r["outcomes"]["best_val_loss"] is not None]
    target = max(bests) if bests else None
    for r in runs:
        r["tokens_to_target"] = tokens_to_reach(r["records"], target) if target is not None else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = title or "Comparison: " + " vs ".join(names)
    summary = {"title": title, "config_diff": diff, "held_fixed": fixed, "target_val_loss": target,
               "runs": [{k: r[k] for k in ("name", "dir", "outcomes", "tokens_to_target")} for r in runs],
               "conclusion": conclude(runs), "plots": plot_runs(runs, out, title)}
    summary["report"] = str(write_report(summary, runs, out))
    write_json(out / "summary.json", summary)
    return summary


# -----------------------------------------------------------------------------
# the command line


def update_eval_json(run_dir, key, value):
    path = Path(run_dir) / "eval.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = value
    write_json(path, data)
    return path


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
        out = export_hf(*args.export_hf)
        print(f"wrote {out}: config.json, model.safetensors, tokenizer.json (load with transformers' "
              f"AutoModelForCausalLM / AutoTokenizer.from_pretrained('{out}'))")
        return
    if not args.ckpt:
        parser.error("give --ckpt RUN, --export-hf RUN DIR or --compare RUN ...")
    model, enc, ckpt = load_run(args.ckpt, args.device)
    run_dir = Path(ckpt["path"]).parent
    if args.mc:
        items = load_mc(args.mc, args.format)[:args.limit]
        result = {"file": args.mc, **eval_mc(model, enc, items)}
        print(f"{args.mc}: {result['items']} items, acc {result['acc']:.4f}, acc_norm {result['acc_norm']:.4f} "
              f"(chance {result['chance']:.4f}, stderr <= {result['stderr']:.4f})")
        path = update_eval_json(run_dir, f"mc:{Path(args.mc).name}", result)
    else:
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
            for s in result["samples"]:
                print(f"--- {s['prompt']!r}\n{s['prompt']}{s['output']}")
        path = update_eval_json(run_dir, "loss" if not where else f"loss:{Path(where).name}", result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
