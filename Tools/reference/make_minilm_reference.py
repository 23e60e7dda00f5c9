#!/usr/bin/env python3
"""Reference data for Folio's sentence embeddings, from the libraries everyone uses
(sentence-transformers on torch CPU, Hugging Face tokenizers).

    python3 Tools/reference/make_minilm_reference.py [MODEL_DIR]

MODEL_DIR is the all-MiniLM-L6-v2 folder (Tools/fetch-minilm puts it in
~/.cache/folio/all-MiniLM-L6-v2). Writes under Tests/Fixtures/minilm:
- sentences.json: the test sentences (accents, CJK, emoji, numbers, code, long texts);
- token_ids.json: the ids sentence-transformers feeds the model for each sentence
  (truncated to max_seq_length), for the tokenizer test;
- embeddings.npy: float32 [N, 384], SentenceTransformer(MODEL_DIR).encode(sentences);
- tokenizer.json: the model's tokenizer, so the tokenizer test runs offline.
And Tests/Fixtures/tiny-bert: a 2-layer BERT with random weights (hidden 32, the real
vocabulary, embeddings in bf16 to stay small) in the sentence-transformers layout, with
its own embeddings.npy, so the model test runs offline.
"""
import json
import os
import shutil
import sys

import numpy as np
import torch

MODEL = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/folio/all-MiniLM-L6-v2")
OUT = "Tests/Fixtures/minilm"
TINY = "Tests/Fixtures/tiny-bert"

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar.",
    "Folio stores LLM weights in memory-mapped files.",
    "Café crème brûlée, naïve façade, Ångström, Straße.",
    "¿Dónde está la biblioteca? ¡Aquí!",
    "Les élèves étudient à l'université de Montréal.",
    "Ελληνικά: Η γρήγορη καφέ αλεπού πηδάει ΟΔΟΣ.",
    "Русский текст: Быстрая коричневая лиса.",
    "日本語の文章です。東京は大きな都市です。",
    "中文句子：我喜欢吃苹果和香蕉。",
    "한국어 문장입니다. 서울은 수도입니다.",
    "مرحبا بالعالم، هذا نص عربي.",
    "שלום עולם, זה טקסט בעברית.",
    "हिन्दी में एक वाक्य।",
    "ภาษาไทยเป็นภาษาที่สวยงาม",
    "Emoji time 😀🎉👍🏽 and 🇫🇷 flags, ❤️ hearts.",
    "Numbers: 3.14159, 2,718, -42, 1e-10, 0x1F, 1_000_000.",
    "Dates 2026-11-29 and times 12:34:56.789Z.",
    "def f(x):\n    return x ** 2 + 1  # square plus one",
    "for (int i = 0; i < n; i++) { sum += a[i]; }",
    "SELECT name, COUNT(*) FROM users WHERE age > 30 GROUP BY name;",
    "https://example.com/path?query=1&other=two#fragment",
    "user@example.org wrote: <b>bold</b> &amp; <i>italic</i>",
    "C++ vs. C# vs. F# -- which one?!",
    "tabs\tand\nnewlines\r\nand   multiple    spaces",
    "   leading and trailing spaces   ",
    "ALL CAPS SENTENCE WITH SHOUTING",
    "MiXeD CaSe WoRdS aNd StUfF",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "pneumonoultramicroscopicsilicovolcanoconiosis" * 3,
    "a",
    "",
    "?!.,;:",
    "[CLS] special tokens [SEP] in the [MASK] text [PAD] [UNK]",
    "zero\u200bwidth\u200cjoiners\u200d and soft\u00adhyphen",
    "control\u0007chars\u0000and\ufffdreplacement",
    "Ｆｕｌｌｗｉｄｔｈ ｌｅｔｔｅｒｓ ａｎｄ ＡＢＣ１２３",
    "ﬁ ligature and ℌ𝔢𝔩𝔩𝔬 math letters ① ② ③",
    "Combining: e\u0301 a\u0308 o\u0302 n\u0303",
    "Vietnamese: Tiếng Việt có dấu rất nhiều.",
    "Polish: Zażółć gęślą jaźń.",
    "Turkish: İstanbul ıstakoz Iğdır.",
    "Mixed 中文 and English 混合 text 123.",
    "The stock rose 5% to $123.45 (€110) on Monday.",
    "I can't believe it's not butter! Don't you think?",
    "Quotes: “smart quotes”, ‘single’, «guillemets», „low“.",
    "Dashes — em, – en, ‐ hyphen, − minus.",
    "The meaning of life is 42.",
    "Semantic search finds documents by meaning, not keywords.",
    "Sentence embeddings map text to vectors.",
    "How do I reset my password?",
    "What is the capital of France? Paris is the capital of France.",
    " ".join(["This is a long text that goes on and on to exceed the maximum sequence length."] * 30),
    " ".join(["word%d" % i for i in range(400)]),
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore.",
    "Short.",
    "Two sentences. Second one here.",
    "Ünïcödé everywhere: ÀÉÎÕÜ àéîõü ÇçÑñ",
]


def main():
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    model = SentenceTransformer(MODEL, device="cpu")
    ids = []
    for s in SENTENCES:
        features = model.tokenize([s])
        mask = features["attention_mask"][0].tolist()
        ids.append([int(t) for t, m in zip(features["input_ids"][0].tolist(), mask) if m])
    emb = model.encode(SENTENCES, batch_size=32, convert_to_numpy=True, normalize_embeddings=False)
    with open(os.path.join(OUT, "sentences.json"), "w") as f:
        json.dump(SENTENCES, f, ensure_ascii=False, indent=1)
    with open(os.path.join(OUT, "token_ids.json"), "w") as f:
        json.dump(ids, f)
    np.save(os.path.join(OUT, "embeddings.npy"), emb.astype(np.float32))
    shutil.copy(os.path.join(MODEL, "tokenizer.json"), os.path.join(OUT, "tokenizer.json"))
    print(f"{len(SENTENCES)} sentences, max tokens {max(len(i) for i in ids)}, embeddings {emb.shape}")

    # Tiny random BERT in the sentence-transformers layout.
    from transformers import BertConfig, BertModel
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12)
    bert = BertModel(config, add_pooling_layer=True).eval()
    with torch.no_grad():
        # bf16-representable word embeddings, so the committed bf16 file is exact.
        w = bert.embeddings.word_embeddings.weight
        w.copy_(w.to(torch.bfloat16).to(torch.float32))
    shutil.rmtree(TINY, ignore_errors=True)
    os.makedirs(TINY)
    bert.save_pretrained(TINY, safe_serialization=True)
    # Store the word embeddings as bf16 to keep the fixture small (values are exact).
    from safetensors.torch import load_file, save_file
    tensors = load_file(os.path.join(TINY, "model.safetensors"))
    tensors["embeddings.word_embeddings.weight"] = tensors["embeddings.word_embeddings.weight"].to(torch.bfloat16)
    save_file(tensors, os.path.join(TINY, "model.safetensors"), metadata={"format": "pt"})
    for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "modules.json", "sentence_bert_config.json"]:
        shutil.copy(os.path.join(MODEL, name), os.path.join(TINY, name))
    os.makedirs(os.path.join(TINY, "1_Pooling"))
    with open(os.path.join(TINY, "1_Pooling", "config.json"), "w") as f:
        json.dump({"word_embedding_dimension": 32, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
                   "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}, f, indent=2)
    os.remove(os.path.join(TINY, "vocab.txt"))
    tiny = SentenceTransformer(TINY, device="cpu")
    temb = tiny.encode(SENTENCES, batch_size=32, convert_to_numpy=True)
    np.save(os.path.join(TINY, "reference_embeddings.npy"), temb.astype(np.float32))
    print("tiny", temb.shape, sorted(os.listdir(TINY)))


if __name__ == "__main__":
    main()
