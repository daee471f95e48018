"""
export_hf.py: a run's checkpoint as a Hugging Face Llama checkpoint, loadable with transformers.

    python export_hf.py out/tiny hf/tiny          # config.json, model.safetensors, tokenizer.json, ...
    python eval.py --export-hf out/tiny hf/tiny   # the same

What it adds over its neighbours: sample.py loads our checkpoint for our own code; this file renames it for
someone else's. Our GPT already is a Llama (RMSNorm, RoPE, SwiGLU, GQA, no biases): the export only splits
our fused projections and renames the weights (hf_state_dict), writes Llama's config (hf_config), and our
BPE as a `tokenizers` tokenizer.json (hf_tokenizer). The file format is the `safetensors` library's: the
format is not what a learner studies here, the mapping is.

An export is all or nothing: it is written into a temp directory beside OUT_DIR and swapped in when
complete (common.publish_dir), so a failure leaves the previous export, or none, and no temp directory.
"""
import json
import shutil
import sys
import tempfile
from pathlib import Path

from common import UserError, cli, publish_dir, write_atomic, write_json

# ---------------------------------------------------------------------------------------------------------
# 1. The model: our names -> Llama's


def hf_config(config, enc):
    """Llama's config.json for our GPTConfig: the same hyperparameters under transformers' names."""
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
    head_dim, hidden = c.n_embd // c.n_head, c.hidden
    out = {"model.embed_tokens.weight": sd["transformer.wte.weight"], "model.norm.weight": sd["transformer.ln_f.weight"]}
    for i in range(c.n_layer):
        ours, hf = f"transformer.h.{i}.", f"model.layers.{i}."
        # c_attn's rows: n_head query heads, then n_kv_head key heads, then n_kv_head value heads
        q, k, v = sd[ours + "attn.c_attn.weight"].split([c.n_head * head_dim, c.n_kv_head * head_dim,
                                                         c.n_kv_head * head_dim])
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


# ---------------------------------------------------------------------------------------------------------
# 2. The tokenizer: our BPE as a `tokenizers` tokenizer.json


def bytes_to_unicode():
    """GPT-2's map from the 256 bytes to printable characters, which HF byte-level BPE files use: printable
    bytes stand for themselves, the others (space, control bytes) take the characters from U+0100 up."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return {b: chr(b) if b in printable else chr(next(extra)) for b in range(256)}


def hf_tokenizer(tok_dir, enc):
    """Our BPE as a `tokenizers` tokenizer.json: the same split regex, then byte-level BPE with the merges in
    rank order. Merge rank = token id - 256, so HF's lowest-rank-pair-first equals tiktoken's encoding.
    Written by hand (a dict): the `tokenizers` library would build the same JSON from the same pieces."""
    spec = json.loads((Path(tok_dir) / "tokenizer.json").read_text(encoding="utf-8"))
    show, eot = bytes_to_unicode(), enc.decode([enc.eot_token])
    pieces = ["".join(show[b] for b in enc.decode_single_token_bytes(i)) for i in range(256 + len(spec["merges"]))]
    specials = [{"id": i, "content": name, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": False, "special": True} for name, i in spec["special_tokens"].items()]
    eot_first = [{"SpecialToken": {"id": eot, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": specials, "normalizer": None,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": spec["pattern"]}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
            "post_processor": {"type": "TemplateProcessing",  # tokenizer(text) = <|endoftext|> + text, as in training
                               "single": eot_first, "pair": eot_first + [{"Sequence": {"id": "B", "type_id": 1}}],
                               "special_tokens": {eot: {"id": eot, "ids": [enc.eot_token], "tokens": [eot]}}},
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": {p: i for i, p in enumerate(pieces)},
                      "merges": [f"{pieces[a]} {pieces[b]}" for a, b in spec["merges"]]}}


# ---------------------------------------------------------------------------------------------------------
# 3. The export: every file into a temp directory, then one swap


def write_export(folder, model, enc, tok_dir):
    """The export's files into `folder` (which exists and is empty)."""
    from safetensors.torch import save
    write_json(folder / "config.json", hf_config(model.config, enc))
    # clone(): safetensors refuses tensors that share memory, and q, k, v are views of one fused weight
    tensors = {name: t.detach().float().clone() for name, t in hf_state_dict(model).items()}
    write_atomic(folder / "model.safetensors", save(tensors, metadata={"format": "pt"}))
    write_json(folder / "tokenizer.json", hf_tokenizer(tok_dir, enc))
    eot = enc.decode([enc.eot_token])
    write_json(folder / "tokenizer_config.json", {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": eot,
                                                  "eos_token": eot, "model_max_length": model.config.block_size})
    for path in sorted(Path(tok_dir).iterdir()):  # our own files too, for tokenizer.load_tokenizer
        if path.is_file():
            write_atomic(folder / "nanopretrain_tokenizer" / path.name, path.read_bytes())


def export_hf(run, out_dir):
    """config.json, model.safetensors, tokenizer.json (+ tokenizer_config.json) and our tokenizer files in
    out_dir, all or nothing: a failure leaves out_dir as it was. Returns out_dir as a Path."""
    from sample import load_run
    model, enc, ckpt = load_run(run)
    tok_dir, out = Path(ckpt["path"]).parent / "tokenizer", Path(out_dir)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    except OSError as e:
        raise UserError(f"{out}: cannot write there ({e.strerror})") from None
    try:
        write_export(tmp, model, enc, tok_dir)
        publish_dir(tmp, out)
    except OSError as e:  # write_atomic has already named a full disk; this is any other refusal
        raise UserError(f"{out}: export failed ({e.strerror or e})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed export's half; gone already after a publish
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0].startswith("-"):
        raise UserError("usage: python export_hf.py RUN_DIR OUT_DIR")
    out = export_hf(*argv)
    print(f"wrote {out}: config.json, model.safetensors, tokenizer.json (load with transformers' "
          f"AutoModelForCausalLM / AutoTokenizer.from_pretrained('{out}'))")


if __name__ == "__main__":
    sys.exit(cli(main))
