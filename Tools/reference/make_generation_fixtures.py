#!/usr/bin/env python3
"""Writes Tests/Fixtures/generation/reference.json: what transformers' generate does with the
sampling settings `folio run` offers, on the qwen2 family fixture (Tests/Fixtures/families/qwen2,
made by make_family_fixtures.py), for the Swift Sampler and TextGenerator tests.

    python3 Tools/reference/make_generation_fixtures.py

Needs torch, transformers 5.x and numpy; no network. Records:
- processors: the logits processors generate builds for do_sample with every option set,
  in order (RepetitionPenalty, Temperature, TopK, TopP, MinP in transformers 5.25);
- logits: the row the distributions start from;
- distributions: for a logits row of the model (the flattest position of prompt 4, divided by 6) (last position of a prompt) and a history of
  ids, the tokens the processors leave (finite scores) and their softmax probabilities, for
  several settings. Settings whose cut lies within 1e-4 (relative) of a boundary are refused,
  so float32 against float64 arithmetic cannot move a token across it;
- penalized_greedy: 32 tokens of generate(do_sample=False, repetition_penalty=p) for p in
  (1.2, 2.0), with the smallest top-2 margin of the processed scores;
- perplexity: 200 seeded ids scored with the sliding-window recipe of transformers'
  perplexity guide (window 64, stride 24: labels -100 on each window's context part), the
  summed NLL in float64 from the float32 logits, and the same with one window (200).
"""
import json
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, GenerationConfig

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "Tests/Fixtures/families/qwen2"
OUT = ROOT / "Tests/Fixtures/generation"

SETTINGS = [
    dict(temperature=1.0),
    dict(temperature=0.7, top_k=5),
    dict(temperature=1.3, top_p=0.8),
    dict(temperature=1.0, min_p=0.02),
    dict(temperature=0.9, repetition_penalty=1.3),
    dict(temperature=0.9, repetition_penalty=0.7),
    dict(temperature=0.8, top_k=40, top_p=0.9, min_p=0.01, repetition_penalty=1.2),
    dict(temperature=2.0, top_k=100, top_p=0.95, min_p=0.05, repetition_penalty=1.5),
]


def processors(model, settings, prompt_len):
    # GenerationConfig's own defaults (top_k 50) are switched off: only the listed options act.
    kw = dict(top_k=None, top_p=None, temperature=None)
    kw.update(settings)
    gc = GenerationConfig(do_sample=True, **kw)
    return model._get_logits_processor(generation_config=gc, input_ids_seq_length=prompt_len,
                                       encoder_input_ids=None, prefix_allowed_tokens_fn=None,
                                       logits_processor=None, device="cpu")


def lp_for(model, s, history):
    return processors(model, s, len(history))


def near_top_p_cut(lp, logits, history, s):
    """Whether a cumulative probability (most likely first) of the scores top-p sees lies
    within 1e-5 of top_p."""
    names = [type(p).__name__ for p in lp]
    upto = names.index("TopPLogitsWarper")
    scores = logits[None].clone()
    for p in list(lp)[:upto]:
        scores = p(torch.tensor([history]), scores)
    probs = torch.softmax(scores[0].double(), dim=-1)
    cum = torch.cumsum(torch.sort(probs, descending=True).values, 0)
    return float(torch.min(torch.abs(cum - s["top_p"]))) < 1e-5


def main():
    torch.set_num_threads(2)
    model = AutoModelForCausalLM.from_pretrained(MODEL, attn_implementation="eager", dtype=torch.float32).eval()
    ref = json.loads((MODEL / "reference.json").read_text())
    full = ref["prompts"][4]["ids"]
    with torch.no_grad():
        rows = model(torch.tensor([full])).logits[0].float()
    # The position whose top two logits are closest, divided by 6, so that the distribution is
    # broad (these random models are peaked) and every cut keeps several tokens; the row is
    # recorded and the Swift test starts from it, with the ids up to it as the history.
    top2 = torch.topk(rows, 2).values
    pos = int(torch.argmin(top2[:, 0] - top2[:, 1]))
    history = full[:pos + 1]
    logits = rows[pos] / 6
    names = [type(p).__name__ for p in processors(model, SETTINGS[-1], len(history))]
    dists = []
    for s in SETTINGS:
        s = dict(s)
        # top-p: nudged up by 0.001 until no cumulative mass lies within 1e-5 of it.
        while "top_p" in s and near_top_p_cut(lp_for(model, s, history), logits, history, s):
            s["top_p"] = round(s["top_p"] + 0.001, 6)
        lp = lp_for(model, s, history)
        scores = lp(torch.tensor([history]), logits[None].clone())[0]
        keep = torch.isfinite(scores)
        probs = torch.softmax(scores.double(), dim=-1)
        ids = torch.nonzero(keep).flatten().tolist()
        ids.sort(key=lambda i: (-float(probs[i]), i))
        if "min_p" in s:
            # min-p: no probability within 1e-5 (relative) of the floor.
            sc = logits[None].clone()
            for proc in list(lp)[:-1]:
                sc = proc(torch.tensor([history]), sc)
            pm = torch.softmax(sc[0].double(), dim=-1)
            floor = s["min_p"] * float(pm.max())
            assert float(torch.min(torch.abs(pm[pm > 0] - floor))) > 1e-5 * floor, f"{s}: min-p cut too close"
        dists.append(dict(settings=s, ids=ids, probs=[float(probs[i]) for i in ids]))
        print(s, len(ids), "tokens kept")
    greedy = []
    prompt = ref["prompts"][2]["ids"]
    plain = next(g["tokens"] for g in ref["greedy"] if g["prompt_index"] == 2)
    for pen in (1.2, 2.0):
        with torch.no_grad():
            out = model.generate(torch.tensor([prompt]), max_new_tokens=32, do_sample=False, eos_token_id=None,
                                 pad_token_id=0, repetition_penalty=pen, output_scores=True,
                                 return_dict_in_generate=True, top_k=None, top_p=None, temperature=None)
        margins = [float(torch.sort(sc[0]).values[-1] - torch.sort(sc[0]).values[-2]) for sc in out.scores]
        assert min(margins) > 1e-3, f"penalty {pen}: near tie {min(margins)}"
        assert out.sequences[0, len(prompt):].tolist() != plain, f"penalty {pen} changes nothing"
        greedy.append(dict(repetition_penalty=pen, prompt=prompt, tokens=out.sequences[0, len(prompt):].tolist(),
                           min_top2_margin=min(margins)))
    rng = np.random.default_rng(7)
    ids = [1] + [int(x) for x in rng.integers(3, 256, size=199)]
    perplexity = []
    for window, stride in ((64, 24), (200, 200)):
        total, count, prev_end = 0.0, 0, 0
        for begin in range(0, len(ids), stride):
            end = min(begin + window, len(ids))
            target = end - prev_end
            x = torch.tensor([ids[begin:end]])
            with torch.no_grad():
                window_logits = model(x).logits[0].double()
            logp = torch.log_softmax(window_logits, dim=-1)
            for p in range(end - begin - target, end - begin):
                if begin + p == 0:
                    continue
                total -= float(logp[p - 1, ids[begin + p]])
                count += 1
            prev_end = end
            if end == len(ids):
                break
        perplexity.append(dict(window=window, stride=stride, scored=count, total_nll=total))
    OUT.mkdir(parents=True, exist_ok=True)
    doc = dict(generator="Tools/reference/make_generation_fixtures.py", model="families/qwen2",
               versions=dict(transformers=transformers.__version__, torch=torch.__version__),
               processors=names, history=history, perplexity_ids=ids, perplexity=perplexity, logits=[float(x) for x in logits], distributions=dists, penalized_greedy=greedy)
    (OUT / "reference.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
