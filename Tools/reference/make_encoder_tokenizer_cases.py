#!/usr/bin/env python3
"""Writes Tests/Fixtures/encoders/tokenizer_cases.json: the ids each encoder fixture's tokenizer
gives (Hugging Face `tokenizers`, Tokenizer.from_file on the folder's tokenizer.json, with the
special tokens of its post-processor) for the 189 strings of Tests/Fixtures/sentencepiece/
cases.json (accents, CJK, emoji, code, whitespace runs, control characters, added tokens).
It also records whether transformers' AutoTokenizer of the folder (what sentence-transformers
uses) gives the same ids, string by string.

    python3 Tools/reference/make_encoder_tokenizer_cases.py

Needs tokenizers and transformers; the encoder fixtures must exist (make_encoder_fixtures.py).
"""
import json
from pathlib import Path

import tokenizers
import transformers
from tokenizers import Tokenizer
from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
FAMILIES = ["roberta", "xlm-roberta", "distilbert", "mpnet", "modernbert"]


def main():
    strings = json.loads((ROOT / "Tests/Fixtures/sentencepiece/cases.json").read_text())["strings"]
    out = dict(generator="Tools/reference/make_encoder_tokenizer_cases.py", strings_from="sentencepiece/cases.json",
               versions=dict(tokenizers=tokenizers.__version__, transformers=transformers.__version__), families={})
    for f in FAMILIES:
        folder = ROOT / "Tests/Fixtures/encoders" / f
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        auto = AutoTokenizer.from_pretrained(str(folder))
        ids = [tok.encode(s, add_special_tokens=True).ids for s in strings]
        same = [auto(s)["input_ids"] == i for s, i in zip(strings, ids)]
        out["families"][f] = dict(ids=ids, transformers_agrees=same)
        print(f, f"{sum(same)}/{len(same)} strings give the same ids through transformers")
    (ROOT / "Tests/Fixtures/encoders/tokenizer_cases.json").write_text(json.dumps(out, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
