#!/usr/bin/env python3
"""Check that Folio's runner computes the same models as model.py (and the tokenizer).

What it does
  * random mode (default): for each model in --models (default ngram-tiny, ngram,
    twin-tiny, twin: model.py's configs, the full ones with the trained models' exact
    config), builds it with random weights (seeded; norms, router bias and logit scale
    perturbed so that every part matters), exports it with model.export_folder (float32,
    and bf16 for the full n-gram model), converts it with
    `folio convert DIR out.folio` and runs
    `folio run out.folio --tokens IDS --max-tokens 0 --logits l.npy` on fixed prompts of
    1 to 80 tokens, several containing the EOS id 0 (first, last, twice in a row, mid
    sequence), and compares with model.py's float32 logits: max abs must be <= --tol
    (1e-4).
  * --folder DIR --model ngram|twin: the same comparison for an exported (trained) folder,
    on the prompts of --prompts (val_prompts.json written by train.py, `ids` of each) or
    on the fixed prompts.
  * tokenizer: `folio run --prompt=TEXT --max-tokens 0 --json` must give the ids that the
    `tokenizers` library gives for a few code snippets (plus the first val prompts, when
    given, and 100 random chunks of --val-text).
  Prints one JSON line per model and a summary; exits 1 when a check fails.

Run (needs the built folio binary; CPU only)
  python3 Tools/train/check_folio.py [--tokenizer tokenizer.json] [--models ngram-tiny,twin-tiny]
  python3 Tools/train/check_folio.py --folder out/ngram --model ngram --prompts out/val_prompts.json
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402

FOLIO = os.environ.get("FOLIO", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".build", "debug", "folio"))

SNIPPETS = [
    "def f(x):",
    "def f(x):\n    return x * 2\n",
    "class Foo(object):\n\tdef __init__(self, a=1, *args, **kw):\n\t\tself.a = a  # comment\n",
    "    if   x  ==  'héllo wörld' and y != \"\\n\":\n        pass\n\n\n",
    "import numpy as np\nfrom . import (a, b)\nprint(f\"{x!r:>10}\")  # 日本語 ✓ 🐍\n",
    "x=1;y=2\r\nz = [i**2 for i in range(10)]   \n\t \n",
]


def fixed_prompts(vocab, seed=1):
    r = random.Random(seed)
    prompts = [[5], [0], [0, 17], [17, 0], [0, 0, 9, 0, 0, 4]]
    for length in (2, 3, 7, 16, 33, 80):
        prompts.append([r.randrange(1, vocab) for _ in range(length)])
    for length, eos_at in ((20, [0]), (40, [5, 6, 30]), (64, [63]), (80, [10, 11, 12, 50, 79])):
        p = [r.randrange(1, vocab) for _ in range(length)]
        for i in eos_at:
            p[i] = 0
        prompts.append(p)
    # a repeated n-gram across an EOS (history must not leak over it)
    prompts.append([11, 12, 13, 0, 11, 12, 13, 0, 12, 13])
    return prompts


def randomize(model, seed):
    """Random weights in which every part of the forward shows in the logits."""
    g = torch.Generator().manual_seed(seed)
    model.init_weights(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:  # norms
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("lm_head.weight"):
                p.normal_(0, 3.0 / p.shape[1] ** 0.5, generator=g)
            elif p.dim() >= 2 and "embed" not in name and name != "tables":
                p.mul_(3.0)
        if isinstance(model, M.NgramModel):
            for layer in model.layers:
                layer.mlp.e_score_correction_bias.copy_(0.05 * torch.randn(layer.mlp.e_score_correction_bias.shape, generator=g))
                layer.mlp.classifier.weight.normal_(0, 1.0 / model.c["hidden_size"] ** 0.5, generator=g)
    return model


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd[:3]), p.returncode, p.stderr.strip()[-2000:]))
    return p.stdout


def folio_logits(folio_file, ids, tmp, semantics="checkpoint"):
    out = os.path.join(tmp, "l.npy")
    run([FOLIO, "run", folio_file, "--tokens", ",".join(map(str, ids)), "--max-tokens", "0", "--logits", out,
         "--semantics", semantics])
    return np.load(out)


def semantics_controls(model, folio_file, prompts, tmp):
    """model.py with mlx-lm semantics against `folio run --semantics mlx-lm` (must agree), and
    against Folio's checkpoint semantics on the prompts holding an EOS after position 0 (must
    differ: the check sees the history reset)."""
    m = float64_copy(model).float().set_semantics("mlx-lm")
    agree, differ = 0.0, []
    for ids in prompts:
        x = torch.tensor([ids], dtype=torch.int64)
        with torch.no_grad():
            ref = m(x)[0].numpy()
        agree = max(agree, float(np.abs(folio_logits(folio_file, ids, tmp, "mlx-lm") - ref).max()))
        reset = M.ngram_ids(x, model.moduli, model.mults, model.eos_ids)
        if not torch.equal(reset, M.ngram_ids(x, m.moduli, m.mults, m.eos_ids)):  # the reset changes a row
            differ.append(float(np.abs(folio_logits(folio_file, ids, tmp) - ref).max()))
    return {"mlx_lm_semantics_max_abs": agree, "no_reset_vs_folio_checkpoint_min_of_max_abs": min(differ) if differ else None}


def float64_copy(model):
    import copy
    m = copy.deepcopy(model).double()
    for name in ("cos", "sin"):
        if hasattr(m, name):
            setattr(m, name, getattr(m, name).double())
    return m


def compare(model, folder, prompts, tmp, label, convert_args=()):
    """max |folio - model.py float32| over the prompts' logits; also both against float64."""
    folio_file = os.path.join(tmp, label + ".folio")
    run([FOLIO, "convert", folder, folio_file, *convert_args])
    model = model.float().eval()
    m64 = float64_copy(model)
    worst, per, t64, f64, scale = 0.0, [], 0.0, 0.0, 0.0
    for ids in prompts:
        x = torch.tensor([ids], dtype=torch.int64)
        with torch.no_grad():
            ref = model(x)[0].numpy()
            r64 = m64(x)[0].numpy()
        got = folio_logits(folio_file, ids, tmp)
        assert got.shape == ref.shape, (got.shape, ref.shape)
        d = float(np.abs(got - ref).max())
        per.append(round(d, 8))
        worst = max(worst, d)
        t64 = max(t64, float(np.abs(ref - r64).max()))
        f64 = max(f64, float(np.abs(got - r64).max()))
        scale = max(scale, float(np.abs(ref).max()))
    return folio_file, {"model": label, "convert": " ".join(convert_args) or "as stored", "prompts": len(prompts),
                        "lengths": [len(p) for p in prompts], "max_abs": worst, "per_prompt": per,
                        "torch_f32_vs_f64": t64, "folio_vs_f64": f64, "max_abs_logit": round(scale, 3)}


def check_tokenizer(folio_file, tokenizer_json, texts):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tokenizer_json)
    bad = []
    for t in texts:
        want = tok.encode(t).ids
        got = json.loads(run([FOLIO, "run", folio_file, "--prompt=" + t, "--max-tokens", "0", "--json"]))["prompt_tokens"]
        if got != want:
            bad.append({"text": t, "folio": got, "tokenizers": want})
    return {"tokenizer": tokenizer_json, "texts": len(texts), "mismatches": bad}


def scratch_tokenizer(path, vocab):
    """A throwaway byte-level BPE of the same recipe, trained on a few stdlib files."""
    import sysconfig
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    root = sysconfig.get_paths()["stdlib"]
    texts = []
    for f in sorted(os.listdir(root)):
        if f.endswith(".py"):
            try:
                texts.append(open(os.path.join(root, f), encoding="utf-8").read())
            except UnicodeDecodeError:
                pass
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"], show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(path)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--tokenizer", help="tokenizer.json (default: a scratch one of the same recipe)")
    ap.add_argument("--models", default="ngram-tiny,ngram,twin-tiny,twin")
    ap.add_argument("--folder", help="an exported model folder to check instead of random models")
    ap.add_argument("--model", choices=["ngram", "twin"], help="with --folder: its kind")
    ap.add_argument("--prompts", help="val_prompts.json (train.py): check on its `ids`")
    ap.add_argument("--max-prompts", type=int, default=10)
    ap.add_argument("--val-text", help="also check the tokenizer on 100 random chunks of this text (val.txt)")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    results, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = args.tokenizer or scratch_tokenizer(os.path.join(tmp, "tokenizer.json"), 8192)
        texts = list(SNIPPETS)
        if args.val_text:
            body = open(args.val_text, encoding="utf-8", newline="").read().replace("<|endoftext|>", "")
            r = random.Random(args.seed)
            for _ in range(100):
                s = r.randrange(max(1, len(body) - 1500))
                texts.append(body[s:s + r.randint(1, 1200)])
        if args.prompts:
            vp = json.load(open(args.prompts))
            texts += [p["text"] for p in vp["prompts"][:5]]
        if args.folder:
            m = M.load_folder(args.model, args.folder)
            if args.prompts:
                prompts = [p["ids"] for p in vp["prompts"][:args.max_prompts]]
            else:
                prompts = fixed_prompts(m.c["vocab_size"])
            bf16 = json.load(open(os.path.join(args.folder, "config.json"))).get("torch_dtype") == "bfloat16"
            # bf16 weights widened to float32 by the converter (exact): the float32 check
            f, r = compare(m, args.folder, prompts, tmp, args.model, ("--quantize", "*=f32") if bf16 else ())
            results.append(r)
            t = check_tokenizer(f, os.path.join(args.folder, "tokenizer.json"), texts)
            results.append(t)
        else:
            for i, name in enumerate(args.models.split(",")):
                m = randomize(M.build(name), args.seed + i)
                prompts = fixed_prompts(m.c["vocab_size"])
                dtypes = [torch.float32] + ([torch.bfloat16] if name == "ngram" else [])
                for dt in dtypes:
                    folder = os.path.join(tmp, name + "-" + str(dt).split(".")[-1])
                    M.export_folder(m, folder, tokenizer, dtype=dt)
                    # the reference sees the exported (possibly rounded) weights
                    ref = M.load_folder(name, folder)
                    label = os.path.basename(folder)
                    widen = ("--quantize", "*=f32") if dt == torch.bfloat16 else ()
                    f, r = compare(ref, folder, prompts, tmp, label, widen)
                    r["params"] = M.count_params(m)
                    results.append(r)
                    if dt == torch.bfloat16:
                        # informational: Folio's own bf16 kernels (activation split into two
                        # bf16 halves) on the same file, not held to the float32 tolerance
                        _, r2 = compare(ref, folder, prompts, tmp, label + "-native")
                        r2["informational"] = True
                        results.append(r2)
                    if i == 0 and dt == torch.float32:
                        results.append(check_tokenizer(f, tokenizer, texts))
                    if isinstance(ref, M.NgramModel) and dt == torch.float32:
                        ctl = semantics_controls(ref, f, prompts, tmp)
                        ctl["model"] = label + "-controls"
                        ctl["pass"] = ctl["mlx_lm_semantics_max_abs"] <= args.tol and (
                            ctl["no_reset_vs_folio_checkpoint_min_of_max_abs"] or 0) > 100 * args.tol
                        results.append(ctl)
    for r in results:
        if r.get("informational"):
            r["pass"] = None
        elif "mlx_lm_semantics_max_abs" in r:
            pass
        elif "max_abs" in r:
            r["pass"] = r["max_abs"] <= args.tol
        else:
            r["pass"] = not r["mismatches"]
        ok &= r["pass"] is not False
        print(json.dumps(r))
    def brief(r):
        if "max_abs" in r:
            return round(r["max_abs"], 8)
        if "texts" in r:
            return "%d/%d texts equal" % (r["texts"] - len(r["mismatches"]), r["texts"])
        return {k: v for k, v in r.items() if k not in ("model", "pass")}
    print(json.dumps({"summary": {r.get("model", "tokenizer"): brief(r) for r in results}, "tol": args.tol, "pass": ok}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
