#!/usr/bin/env python3
"""Train one of issue 17's models on the tokenized corpus, within a wall-clock budget, and
export it as a Hugging Face folder that `folio convert` accepts.

What it does
  * loads DATA/train.npy and DATA/val.npy (uint16 ids from tokenizer.py) onto the device;
  * builds --model (ngram | twin | ngram-tiny | twin-tiny; model.py), seeded init;
  * trains with random windows of --seq+1 tokens (uniform start positions, seeded),
    batches of --batch windows, bf16 autocast (on CUDA), torch.compile (unless
    --no-compile), AdamW (betas 0.9/0.95, weight decay on matrices only, fused on CUDA),
    gradient clipping 1.0, linear warm-up over --warmup steps and a cosine from --lr to
    --lr x --min-lr-frac driven by the fraction of the --minutes budget spent (the budget
    covers the training steps, the compilation in the first step included, not the
    evaluations; the cosine runs over what is left after the first step); the n-gram
    model's e_score_correction_bias is balanced without an auxiliary loss (each step:
    bias += --balance-rate x sign(mean pick share - share));
  * every --eval-every steps: validation loss on the first --eval-tokens of val.npy;
  * logs JSON lines (step, tokens, minutes, lr, train_loss, val_loss, tokens_per_s) to
    OUT/train_log.jsonl;
  * at the end: exports OUT/MODEL/ (config.json, generation_config.json, model.safetensors in
    --export-dtype, tokenizer.json, tokenizer_config.json), evaluates the EXPORTED weights
    in float32 (no autocast, no TF32) on non-overlapping --seq windows over the first
    --final-eval-tokens of val.npy (0: all of it; each window from a fresh state, every
    target counted), with bits per byte from each target token's byte length; writes
    OUT/summary_MODEL.json (also printed as one `{"summary": ...}` line) and, unless it
    exists, OUT/val_prompts.json (20 held-out prompts, see make_val_prompts).
  --probe-seconds S instead times S seconds of training steps after the compiled first
  step and prints tokens/s, without evaluating or exporting.

Run
  python3 Tools/train/train.py --model ngram --data DATA --out OUT --minutes 7
  python3 Tools/train/train.py --model ngram --data DATA --out OUT --probe-seconds 20
  CPU test: --model ngram-tiny --batch 4 --seq 64 --minutes 0.2 --no-compile
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402


def token_byte_lengths(tokenizer_json):
    """Bytes of each token id: the ByteLevel alphabet mapped back; special tokens by their text."""
    tok = json.load(open(tokenizer_json))
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_of = {chr(c): b for b, c in zip(bs, cs)}
    vocab = dict(tok["model"]["vocab"])
    for a in tok.get("added_tokens", []):
        vocab[a["content"]] = a["id"]
    lengths = np.zeros(max(vocab.values()) + 1, dtype=np.int64)
    specials = {a["content"] for a in tok.get("added_tokens", [])}
    for s, i in vocab.items():
        lengths[i] = len(s.encode()) if s in specials else len(s)
        if s not in specials:
            assert all(ch in byte_of for ch in s), s
    return lengths


def make_val_prompts(data, tokenizer_json, count=20, max_len=64, cont=128):
    """`count` prompts: top-level `def` lines of val.txt, evenly spaced over all of them (so
    from many files); each prompt is the def's text encoded on its own, cut to the longest
    length <= max_len whose decoded text encodes back to the same ids; `continuation_ids` the
    next `cont` ids of the same encoding (what the corpus continues with)."""
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tokenizer_json)
    text = open(os.path.join(data, "val.txt"), encoding="utf-8", newline="").read()
    docs = text.split("<|endoftext|>")[1:]
    cands = []
    for di, d in enumerate(docs):
        path = d[2:d.find("\n")]
        start = 0
        while True:
            i = d.find("\ndef ", start)
            if i < 0:
                break
            cands.append((di, i + 1, path))
            start = i + 1
    picked, out = [], []
    if cands:
        step = len(cands) / count
        picked = [cands[int(k * step)] for k in range(min(count, len(cands)))]
    for di, off, path in picked:
        seg = docs[di][off:off + 4000]
        ids = tok.encode(seg).ids
        for L in range(min(max_len, len(ids)), 0, -1):
            t = tok.decode(ids[:L])
            if tok.encode(t).ids == ids[:L]:
                break
        out.append({"file": path, "ids": ids[:L], "text": tok.decode(ids[:L]),
                    "continuation_ids": ids[L:L + cont], "continuation_text": tok.decode(ids[L:L + cont])})
    return {"what": "held-out prompts: top-level def lines of val.txt (packages never trained on), evenly spaced; "
                    "ids encode text exactly (no <|endoftext|> before them)", "prompts": out}


def param_groups(model, wd):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.dim() < 2 or name in ("tables",) or "embed_tokens" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def evaluate(model, data, seq, batch, max_tokens, device, autocast, byte_len=None):
    """Mean NLL (nats/token) over non-overlapping windows; (loss, tokens, bytes)."""
    n = data.numel() - 1
    if max_tokens:
        n = min(n, max_tokens)
    windows = n // seq
    total, count, nbytes = 0.0, 0, 0
    model.eval()
    for s in range(0, windows, batch):
        idx = torch.arange(s, min(windows, s + batch), device=device)[:, None] * seq + torch.arange(seq + 1, device=device)
        w = data[idx].long()
        x, y = w[:, :-1], w[:, 1:]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss, _ = model(x, y)
        total += float(loss) * y.numel()
        count += y.numel()
        if byte_len is not None:
            nbytes += int(byte_len[y].sum())
    model.train()
    return total / max(1, count), count, nbytes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, choices=list(M.CONFIGS))
    ap.add_argument("--data", required=True, help="folder with train.npy, val.npy, val.txt, tokenizer.json")
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=7.0)
    ap.add_argument("--probe-seconds", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--balance-rate", type=float, default=1e-3)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-tokens", type=int, default=1 << 19)
    ap.add_argument("--final-eval-tokens", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--print-all", action="store_true", help="print every log record (default: only those with val_loss)")
    ap.add_argument("--log", help="the JSON-lines log (default OUT/train_log.jsonl, OUT/probe_MODEL.jsonl)")
    ap.add_argument("--export-dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--compile-mode", default=None, help="torch.compile mode (default: its default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    t_start = time.time()
    os.makedirs(args.out, exist_ok=True)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.manual_seed(args.seed)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    kind = "ngram" if args.model.startswith("ngram") else "twin"
    tok_json = os.path.join(args.data, "tokenizer.json")

    train = torch.from_numpy(np.load(os.path.join(args.data, "train.npy")).astype(np.int32)).to(device)
    val = torch.from_numpy(np.load(os.path.join(args.data, "val.npy")).astype(np.int32)).to(device)
    byte_len = torch.from_numpy(token_byte_lengths(tok_json)).to(device)
    tokens_json = os.path.join(args.data, "tokens.json")
    data_hashes = None
    if os.path.exists(tokens_json):
        d = json.load(open(tokens_json))
        data_hashes = {"tokenizer_sha256": d["tokenizer_sha256"], "train_sha256": d["train"]["sha256"],
                       "val_sha256": d["val"]["sha256"]}

    c = dict(M.CONFIGS[args.model])
    c["max_position_embeddings"] = max(c["max_position_embeddings"], args.seq)
    model = M.build(args.model, c).init_weights(args.seed).to(device)
    counts = M.count_params(model)
    opt = torch.optim.AdamW(param_groups(model, args.wd), lr=args.lr, betas=(0.9, 0.95), eps=1e-8,
                            **({"fused": True} if cuda else {}))
    step_model = model if args.no_compile else torch.compile(model, mode=args.compile_mode)
    gen = torch.Generator(device=device).manual_seed(args.seed + 1)
    span = torch.arange(args.seq + 1, device=device)
    hi = train.numel() - args.seq - 1

    def batch():
        starts = torch.randint(0, hi, (args.batch, 1), device=device, generator=gen)
        w = train[starts + span].long()
        return w[:, :-1], w[:, 1:]

    log_path = args.log or os.path.join(args.out, "train_log.jsonl" if not args.probe_seconds else "probe_%s.jsonl" % args.model)
    log = open(log_path, "w")

    def emit(rec, show=True):
        log.write(json.dumps(rec) + "\n")
        log.flush()
        if args.print_all:
            print(json.dumps(rec), flush=True)
        elif show and "val_loss" in rec:
            print("step %6d  tokens %11d  min %6.2f  lr %.2e  train %.4f  val %.4f  tok/s %d" % (
                rec["step"], rec["tokens"], rec["minutes"], rec["lr"], rec["train_loss"], rec["val_loss"],
                rec["tokens_per_s"]), flush=True)
        elif show:
            print(json.dumps(rec), flush=True)

    emit({"start": {"model": args.model, "config": c, "params": counts, "args": vars(args),
                    "data": data_hashes,
                    "train_tokens": train.numel(), "val_tokens": val.numel(),
                    "device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__}}, show=False)
    print(json.dumps({"model": args.model, "params": counts, "train_tokens": train.numel(), "val_tokens": val.numel(),
                      "device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__}), flush=True)
    budget = args.minutes * 60
    step, tokens, train_time, eval_time = 0, 0, 0.0, 0.0
    loss_acc = torch.zeros((), device=device)
    loss_n = 0
    first_step_s = None
    t_loop = time.time()
    last_log_t, last_log_tokens = t_loop, 0
    while True:
        now = time.time()
        train_time = now - t_loop - eval_time
        if args.probe_seconds:
            if first_step_s is not None and now - t_probe >= args.probe_seconds:
                break
        elif train_time >= budget:
            break
        # the schedule runs over the budget left after the first (compiling) step
        if first_step_s is None or args.probe_seconds:
            progress = 0.0
        else:
            progress = min(1.0, (train_time - first_step_s) / max(1e-9, budget - first_step_s))
        lr = args.lr * min(1.0, (step + 1) / args.warmup)
        lr *= args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batch()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss, picked = step_model(x, y)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if picked is not None:
            model.balance(picked, args.balance_rate)
        loss_acc += loss.detach()
        loss_n += 1
        step += 1
        tokens += x.numel()
        if first_step_s is None:
            if cuda:
                torch.cuda.synchronize()
            first_step_s = time.time() - t_loop
            t_probe = time.time()
            probe_tokens0 = tokens
            emit({"first_step_seconds": round(first_step_s, 2), "note": "includes compilation"})
        if step % args.log_every == 0:
            if cuda:
                torch.cuda.synchronize()
            t = time.time()
            rec = {"step": step, "tokens": tokens, "minutes": round((t - t_loop - eval_time) / 60, 4), "lr": lr,
                   "train_loss": round(float(loss_acc) / loss_n, 5),
                   "tokens_per_s": round((tokens - last_log_tokens) / (t - last_log_t)),
                   "grad_norm": round(float(grad_norm), 4)}
            if picked is not None:  # share of tokens picking each expert (routed, then zero), per layer
                rec["moe_pick"] = [[round(v, 3) for v in row] for row in picked.tolist()]
            loss_acc.zero_()
            loss_n = 0
            last_log_t, last_log_tokens = t, tokens
            if not args.probe_seconds and args.eval_every and step % args.eval_every == 0:
                te = time.time()
                rec["val_loss"] = round(evaluate(model, val, args.seq, args.batch, args.eval_tokens, device, cuda)[0], 5)
                eval_time += time.time() - te
                last_log_t = time.time()
            emit(rec, show="val_loss" in rec)
    if cuda:
        torch.cuda.synchronize()
    if args.probe_seconds:
        el = time.time() - t_probe
        emit({"probe": {"model": args.model, "params": counts, "first_step_seconds": round(first_step_s, 2),
                        "steps": step - 1, "seconds": round(el, 2),
                        "tokens_per_s": round((tokens - probe_tokens0) / el),
                        "batch": args.batch, "seq": args.seq,
                        "max_memory_gb": round(torch.cuda.max_memory_allocated() / 2 ** 30, 2) if cuda else None}})
        return
    train_minutes = (time.time() - t_loop - eval_time) / 60

    # Export, then evaluate the exported weights in float32.
    export_dtype = torch.bfloat16 if args.export_dtype == "bf16" else torch.float32
    folder = os.path.join(args.out, kind)
    M.export_folder(model, folder, tok_json, dtype=export_dtype)
    master_loss = evaluate(model, val, args.seq, args.batch, args.final_eval_tokens, device, cuda)[0]
    exported = M.load_folder(args.model, folder).to(device)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    f32_loss, n_tok, n_bytes = evaluate(exported, val, args.seq, min(args.batch, 64), args.final_eval_tokens, device,
                                        False, byte_len)
    prompts_path = os.path.join(args.out, "val_prompts.json")
    if not os.path.exists(prompts_path):
        with open(prompts_path, "w") as f:
            json.dump(make_val_prompts(args.data, tok_json), f, indent=1)
            f.write("\n")
    summary = {"model": args.model, "params": counts, "steps": step, "tokens": tokens,
               "epochs": round(tokens / train.numel(), 3), "train_minutes": round(train_minutes, 3),
               "first_step_seconds": round(first_step_s, 2), "eval_minutes": round(eval_time / 60, 3),
               "tokens_per_s": round(tokens / (train_minutes * 60)),
               "final_val_loss_f32_exported": round(f32_loss, 5),
               "final_val_loss_bf16_autocast_master": round(master_loss, 5),
               "final_val_bits_per_byte": round(f32_loss * n_tok / math.log(2) / max(1, n_bytes), 5),
               "final_val_tokens": n_tok, "final_val_bytes": n_bytes, "export_dtype": args.export_dtype,
               "window": args.seq, "total_seconds": round(time.time() - t_start, 1),
               "moe_correction_bias": [[round(v, 4) for v in layer.mlp.e_score_correction_bias.tolist()]
                                       for layer in model.layers] if kind == "ngram" else None,
               "device": torch.cuda.get_device_name(0) if cuda else "cpu", "data": data_hashes}
    with open(os.path.join(args.out, "summary_%s.json" % kind), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    emit({"summary": summary})


if __name__ == "__main__":
    main()
