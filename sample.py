"""
sample.py — generate text from a checkpoint that train.py wrote, streaming tokens as they come.

    python sample.py --ckpt out/tiny                                   # newest checkpoint of the run
    python sample.py --ckpt out/tiny/best.pt --prompt "ROMEO:" --num-samples 3 --max-new-tokens 200
    python sample.py --ckpt out/tiny --prompt-file p.txt --temperature 0     # greedy: always the same text
    python sample.py --ckpt out/tiny --temperature 0.8 --top-k 50 --top-p 0.95 --seed 1

Everything the model needs is found through the checkpoint: its GPTConfig (ckpt["model_config"]) and the
tokenizer the run copied into out/RUN/tokenizer/, whose content hash must equal ckpt["tokenizer_hash"]
(the same ids with another tokenizer would decode to nonsense, silently).

Generation uses the model's KV cache (model.generate_tokens): the prompt is run once, then each step
feeds only the new token. A sample stops after --max-new-tokens or when the model writes <|endoftext|>,
its way of saying the document is over.
"""
import argparse
import codecs
import sys
from pathlib import Path

import torch

from checkpoint import find_checkpoint
from common import UserError, cli
from model import GPT, GPTConfig
from tokenizer import load_tokenizer, tokenizer_hash

# -----------------------------------------------------------------------------
# loading a run


def load_run(path, device="cpu"):
    """(model in eval mode on device, tiktoken Encoding, checkpoint dict) for a checkpoint file or run dir."""
    ckpt_path, ckpt = find_checkpoint(path)
    tok_dir = ckpt_path.parent / "tokenizer"
    if not (tok_dir / "tokenizer.json").is_file():
        raise UserError(f"{tok_dir}: missing; train.py copies the dataset's tokenizer there")
    try:
        found = tokenizer_hash(tok_dir)
        enc = load_tokenizer(tok_dir)
    except ValueError as error:
        raise UserError(str(error)) from None
    if found != ckpt["tokenizer_hash"]:
        raise UserError(f"{tok_dir}: tokenizer hash {found[:12]}... != the checkpoint's "
                         f"{ckpt['tokenizer_hash'][:12]}... ({ckpt_path} was trained with another tokenizer)")
    config = GPTConfig(**ckpt["model_config"])
    if torch.device(device).type != "cuda":
        config.kernels = "torch"  # the Triton kernels are for GPUs; the math is the same
    model = GPT(config)
    # torch.compile and DDP wrap the model and prefix its keys; the weights are the same
    state = {k.removeprefix("_orig_mod.").removeprefix("module."): v for k, v in ckpt["model"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise UserError(f"{ckpt_path}: weights do not fit its model_config ({str(error).splitlines()[0]})")
    ckpt["path"] = str(ckpt_path)
    return model.to(device).eval(), enc, ckpt


# -----------------------------------------------------------------------------
# generation, as text


def encode_prompt(enc, prompt):
    """Every training document is preceded by <|endoftext|>, so a prompt starts with it too: the model
    then continues the prompt as the beginning of a document. An empty prompt is just that token."""
    return [enc.eot_token] + enc.encode_ordinary(prompt)


def stream_text(model, enc, prompt, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None):
    """Yield the generated text piece by piece, one piece per token, until <|endoftext|> or the limit,
    then the decoder's final flush.

    A token is a run of bytes, not of characters: "é" is two bytes and may arrive in two tokens. An
    incremental UTF-8 decoder holds back an unfinished character until its last byte comes; a byte
    sequence that never becomes valid UTF-8 is shown as U+FFFD at the end."""
    device = next(model.parameters()).device
    idx = torch.tensor([encode_prompt(enc, prompt)], dtype=torch.long, device=device)  # (1, T)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for token in model.generate_tokens(idx, max_new_tokens, temperature, top_k, top_p, True, generator):
        token = token.item()
        if token == enc.eot_token:
            break
        # one piece per token (empty for an id of the padded embedding table beyond the tokenizer's)
        yield decoder.decode(enc.decode_single_token_bytes(token)) if token < enc.n_vocab else ""
    yield decoder.decode(b"", final=True)


def generate_text(model, enc, prompt, max_new_tokens, **options):
    """The whole continuation as one string (eval.py's fixed prompts, the tests)."""
    return "".join(stream_text(model, enc, prompt, max_new_tokens, **options))


# -----------------------------------------------------------------------------
# the command line


def main(argv=None):
    parser = argparse.ArgumentParser(description="Generate text from a train.py checkpoint.")
    parser.add_argument("--ckpt", required=True, help="a checkpoint file or a run dir (its newest checkpoint)")
    parser.add_argument("--prompt", action="append", help="text to continue (default: a new document); "
                        "repeat it for several prompts, --num-samples each")
    parser.add_argument("--prompt-file", help="read the prompt from this file instead")
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (always the argmax)")
    parser.add_argument("--top-k", type=int, default=None, help="sample only among the k likeliest tokens")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus: the fewest tokens with mass >= p")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.temperature < 0 or (args.top_p is not None and not 0 < args.top_p <= 1) or \
            (args.top_k is not None and args.top_k < 1):
        parser.error("want temperature >= 0, top_k >= 1, 0 < top_p <= 1")
    if args.max_new_tokens < 0 or args.num_samples < 0:
        parser.error("want --max-new-tokens >= 0 and --num-samples >= 0")
    prompts = args.prompt or [""]
    if args.prompt_file:
        try:
            prompts = [Path(args.prompt_file).read_text(encoding="utf-8")]
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"{args.prompt_file}: cannot read the prompt ({type(error).__name__})") from None
    # a terminal or pipe that cannot show some character gets "?" for it, not a UnicodeEncodeError mid-sample
    sys.stdout.reconfigure(errors="replace")

    model, enc, ckpt = load_run(args.ckpt, args.device)
    print(f"{ckpt['path']}: step {ckpt.get('step', '?')}, {model.num_params():,} parameters, "
          f"vocab {enc.n_vocab}", file=sys.stderr)
    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    for i, prompt in [(i, p) for p in prompts for i in range(args.num_samples)]:
        print(f"---------- sample {i + 1}, prompt {prompt!r}", file=sys.stderr, flush=True)
        print(prompt, end="", flush=True)
        pieces = 0  # one per generated token, plus the decoder's final flush
        for piece in stream_text(model, enc, prompt, args.max_new_tokens, args.temperature, args.top_k,
                                 args.top_p, generator):
            print(piece, end="", flush=True)
            pieces += 1
        print(flush=True)
        if pieces - 1 < args.max_new_tokens:  # an empty sample is a model that chose to end the document
            print(f"[<|endoftext|> after {pieces - 1} tokens]", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(cli(main))
