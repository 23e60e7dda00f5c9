#!/usr/bin/env python3
"""Loads a folder written by `folio convert X.folio out/` with transformers and compares its
float32 logits with a family fixture's reference logits (make_family_fixtures.py).

    folio convert Tests/Fixtures/families/qwen2 q.folio && folio convert q.folio out/
    python3 Tools/reference/check_hf_folder.py out/ Tests/Fixtures/families/qwen2
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM


def main():
    folder, fixture = sys.argv[1], Path(sys.argv[2])
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32).eval()
    worst = 0.0
    for p in json.loads((fixture / "reference.json").read_text())["prompts"]:
        with torch.no_grad():
            got = model(torch.tensor([p["ids"]])).logits[0].numpy()
        worst = max(worst, float(np.abs(got - np.load(fixture / p["logits"])).max()))
    print(json.dumps(dict(folder=folder, fixture=str(fixture), max_abs=worst)))


if __name__ == "__main__":
    main()
