#!/usr/bin/env python3
"""How far rounding choices alone can take int4/g32 word embeddings of all-MiniLM-L6-v2
(issue 5's bound: cosine at least 0.999 to sentence-transformers on every test sentence).

Reference tooling only: Folio never imports or runs this script. It quantizes only the word
embedding rows that the 58 test sentences (Tests/Fixtures/minilm/sentences.json) use, to
int4/g32 (float16 scale and min per group of 32, as Formats/FOLIO.md section 6), runs
sentence-transformers (torch, CPU) with them, and prints the per-sentence cosine to the
float model's embeddings (min and mean), for:

1. `search`: Folio's quantizer (section 6.6: 5 x 5 starting ranges, best 3 refined);
2. `H-aware, one H`: codes and (scale, min) chosen to minimise e^T H e for the row's error e
   (coordinate descent on the codes, weighted least squares for the pairs, float16 after
   each refit), where H = mean over calibration tokens of J^T (I - o o^T) J, J the Jacobian
   of the normalized sentence embedding o with respect to that token's input embedding;
3. `H-aware, per row`: the same, with each row's own H averaged over the calibration tokens
   that are that row (the one H for rows never seen);

with calibration sentences that share no sentence with the test (CALIBRATION below), and,
as an upper bound that no real quantizer has, with the test sentences themselves.

Usage: python3 Tools/reference/int4_sensitivity.py [--model DIR]   (about 20 minutes on 2 cores;
needs Tools/fetch-minilm first)
"""
import argparse
import json
import os

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from affine_search import FOLIO, f16, search_values

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CALIBRATION = [
    "The weather in Paris was cold and rainy last week.", "Ich habe heute keine Zeit für das Treffen.",
    "El perro corre rápido por el parque.", "東京は日本の首都です。", "Он читает книгу каждый вечер.",
    "print('hello world') if x > 3 else None", "The stock market fell 3.2% on Tuesday.",
    "🎉 Party tonight at 8pm! 🍕🍻", "Photosynthesis converts light energy into chemical energy.",
    "Quantum computers use qubits instead of bits.", "Mi nombre es Juan y vivo en México.",
    "SELECT * FROM users WHERE id = 42;", "الطقس جميل اليوم", "मैं हिंदी बोलता हूँ",
    "Τα παιδιά παίζουν στην αυλή.", "ＡＢＣ ｘｙｚ", "naïve façade résumé coöperate",
    "She sells sea shells by the sea shore.", "1, 2, 3, 4, 5, 6, 7, 8, 9, 10", "오늘 날씨가 좋네요",
    "The mitochondria is the powerhouse of the cell.", "A quick movement of the enemy will jeopardize six gunboats.",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit.", "git commit -m 'fix bug in parser'",
    "我喜欢吃苹果和香蕉。", "Bonjour, comment ça va aujourd'hui ?", "¿Dónde está la biblioteca?",
    "The cat sat on the mat.", "Neural networks learn representations from data.", "ｆｕｌｌ ｗｉｄｔｈ",
    "Ｈｅｌｌｏ ｗｏｒｌｄ １２３", "서울은 한국의 수도입니다.", "Привет, как дела?", "שלום לכולם", "مرحبا كيف حالك",
    "Version 2.0.1 released on 2025-03-14.", "x = [i**2 for i in range(10)]", "€100, £50, ¥1000", "Ünïcödé ÄÖÜ ß",
    "https://www.wikipedia.org/wiki/Main_Page", "The quick brown fox", "Email me at test@example.org",
    "CO2 + H2O -> C6H12O6", "日本語のテキストです。", "Tôi yêu Việt Nam", "ภาษาไทย", "Γειά σου κόσμε",
    "!!! ??? ... ---", "a b c d e f g", "UPPER CASE TEXT HERE",
]


class TestSet:
    """The 58 test sentences, sentence-transformers' float embeddings of them, and the rows of
    the word-embedding table they use (`used`; `w0` is the whole float table)."""

    def __init__(self, model_dir):
        torch.set_num_threads(os.cpu_count() or 1)
        self.sentences = json.load(open(os.path.join(ROOT, "Tests/Fixtures/minilm/sentences.json")))
        self.model = SentenceTransformer(model_dir, device="cpu")
        self.weight = self.model[0].auto_model.embeddings.word_embeddings.weight
        self.w0 = self.weight.detach().numpy().copy()
        self.ref = self.model.encode(self.sentences, batch_size=32, convert_to_numpy=True)
        tok, n = self.model.tokenizer, self.model.max_seq_length
        self.used = sorted({i for s in self.sentences for i in tok([s], truncation=True, max_length=n)["input_ids"][0]})
        self.dim = self.w0.shape[1]

    def cosines(self, rows):
        """Per-sentence cosine to the float embeddings with the used rows replaced by `rows`."""
        w = self.w0.copy()
        w[self.used] = np.asarray(rows).reshape(len(self.used), self.dim).astype(np.float32)
        with torch.no_grad():
            self.weight.copy_(torch.from_numpy(w))
        got = self.model.encode(self.sentences, batch_size=32, convert_to_numpy=True)
        with torch.no_grad():
            self.weight.copy_(torch.from_numpy(self.w0))
        return (got * self.ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(self.ref, axis=1)


def pooled(bert, z, mask):
    """all-MiniLM-L6-v2's normalized mean-pooled embedding of input embeddings z [1, T, C]."""
    out = bert(inputs_embeds=z, attention_mask=mask).last_hidden_state
    w = mask.unsqueeze(-1).float()
    return torch.nn.functional.normalize((out * w).sum(1) / w.sum(1), dim=-1)[0]


def search(g):
    """Folio's affine search (FOLIO.md 6.6) on groups g [n, 32]: dequantized values."""
    return search_values(g, *FOLIO)[0]


def h_aware(x, xh, h, g=32, top=15, rounds=4):
    """Row x [C], starting from its dequantized xh: codes and pairs minimising e^T h e."""
    c = x.size
    ng = c // g
    s = np.zeros(ng)
    m = np.zeros(ng)
    for k in range(ng):
        v = xh[k * g:(k + 1) * g]
        levels = np.unique(v)
        m[k] = levels[0]
        s[k] = np.min(np.diff(levels)) if levels.size > 1 else 1e-8
    s, m = f16(s), f16(m)
    q = np.clip(np.round((x - np.repeat(m, g)) / np.repeat(s, g)), 0, top)
    best_loss, best = (x - xh) @ h @ (x - xh), xh
    for _ in range(rounds):
        sv, mv = np.repeat(s, g), np.repeat(m, g)
        e = x - (sv * q + mv)
        he = h @ e
        for _ in range(20):
            changed = 0
            for j in range(c):
                d = np.clip(np.round(he[j] / (sv[j] * h[j, j])), -q[j], top - q[j])
                if d != 0:
                    q[j] += d
                    e[j] -= sv[j] * d
                    he -= sv[j] * d * h[:, j]
                    changed += 1
            if not changed:
                break
        loss = e @ h @ e
        if loss < best_loss:
            best_loss, best = loss, sv * q + mv
        a = np.zeros((c, 2 * ng))
        for k in range(ng):
            a[k * g:(k + 1) * g, k] = q[k * g:(k + 1) * g]
            a[k * g:(k + 1) * g, ng + k] = 1
        th = np.linalg.solve(a.T @ h @ a + 1e-12 * np.eye(2 * ng), a.T @ h @ x)
        s2, m2 = f16(th[:ng]), f16(th[ng:])
        if np.any(s2 <= 0) or not np.all(np.isfinite(th)):
            break
        s, m = s2, m2
        q = np.clip(np.round((x - np.repeat(m, g)) / np.repeat(s, g)), 0, top)
    return best


def sensitivities(model, sentences):
    """The one H (mean over tokens) and each row's own H (mean over its tokens)."""
    bert, tok = model[0].auto_model, model.tokenizer
    table = bert.embeddings.word_embeddings.weight.detach()
    dim = table.shape[1]

    def embed(z, mask):
        return pooled(bert, z, mask)

    total, per_row, counts, n = np.zeros((dim, dim)), {}, {}, 0
    for s in sentences:
        enc = tok([s], return_tensors="pt", truncation=True, max_length=model.max_seq_length)
        z, mask = table[enc["input_ids"]].clone(), enc["attention_mask"]
        with torch.no_grad():
            o = embed(z, mask).numpy()
        jac = torch.autograd.functional.jacobian(lambda v: embed(v, mask), z)[:, 0].permute(1, 0, 2).numpy()
        p = np.eye(dim) - np.outer(o, o)
        for t in range(jac.shape[0]):
            h = jac[t].T @ p @ jac[t]
            r = int(enc["input_ids"][0, t])
            total += h
            n += 1
            per_row[r] = per_row.get(r, 0) + h
            counts[r] = counts.get(r, 0) + 1
    return total / n, {r: h / counts[r] for r, h in per_row.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/folio/all-MiniLM-L6-v2"))
    ap.add_argument("--ridge", type=float, default=0.5, help="H + ridge * trace(H) / dim * I")
    args = ap.parse_args()
    t = TestSet(args.model)
    sentences, model, w0, used, dim = t.sentences, t.model, t.w0, t.used, t.dim
    assert not set(sentences) & set(CALIBRATION)
    base = search(w0[used].reshape(-1, 32).astype(np.float64)).reshape(len(used), dim)

    def report(name, rows):
        cos = t.cosines(rows)
        worst = np.argsort(cos)[:2]
        print(f"{name:58s} min {cos.min():.5f} mean {cos.mean():.5f}  worst: " + "; ".join(f"{cos[i]:.5f} {sentences[i][:24]!r}" for i in worst), flush=True)

    report("search (Folio's quantizer)", base)
    for label, calib in [("calibration sentences", CALIBRATION), ("the test sentences (upper bound)", sentences)]:
        one, own = sensitivities(model, calib)
        seen = sum(r in own for r in used)
        for mode in ["one H", "per row"]:
            rows = np.empty_like(base)
            for i, r in enumerate(used):
                h = own.get(r, one) if mode == "per row" else one
                h = h + args.ridge * np.trace(h) / dim * np.eye(dim)
                rows[i] = h_aware(w0[r].astype(np.float64), base[i], h)
            report(f"H-aware, {mode}, from {label}" + (f" ({seen}/{len(used)} rows seen)" if mode == "per row" else ""), rows)


if __name__ == "__main__":
    main()
