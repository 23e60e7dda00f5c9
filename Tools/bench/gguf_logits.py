#!/usr/bin/env python3
"""Logits of llama.cpp (llama-cpp-python) on a GGUF file against a `folio run --logits` .npy
of the same ids: min cosine and max |difference| over the positions, and how often the top
token agrees.

    folio convert model.gguf model.folio --keep-quantized
    folio run model.folio --tokens IDS --max-tokens 0 --logits folio.npy
    python3 Tools/bench/gguf_logits.py model.gguf folio.npy IDS

IDS is a comma-separated list of token ids (the same for both).
"""
import sys

import numpy as np
from llama_cpp import Llama


def main():
    path, folio_npy, ids = sys.argv[1], sys.argv[2], [int(x) for x in sys.argv[3].split(",")]
    llm = Llama(model_path=path, n_ctx=max(256, len(ids) + 8), n_threads=2, logits_all=True, verbose=False)
    llm.eval(ids)
    ref = np.array(llm.scores[:len(ids)], dtype=np.float64)
    got = np.load(folio_npy).astype(np.float64)
    cos = (ref * got).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
    print(f"min cosine {cos.min():.7f}, max |diff| {np.abs(ref - got).max():.4g} (logits std {ref.std():.3g}), "
          f"top-1 equal at {(ref.argmax(1) == got.argmax(1)).mean():.3f} of {len(ids)} positions")


if __name__ == "__main__":
    main()
