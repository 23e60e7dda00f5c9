#!/usr/bin/env python3
"""Writes Tests/Fixtures/index: a small sharded Folio model (shards and model.folio.index.json,
made by `folio convert --max-shard-size` from a safetensors file built here) and malformed
copies of its index, corrupt-NAME.folio.index.json, one defect each, with expected.json
mapping each to a phrase its error must contain.

    python3 Tools/reference/make_index_fixtures.py [FOLIO_BINARY]
"""
import json
import os
import struct
import subprocess
import sys

OUT = "Tests/Fixtures/index"


def safetensors(path):
    # model.embed_tokens.weight [600, 64] f32 (values i % 17 - 8), norm [64] f32, ids [4] i64.
    emb = struct.pack("<%df" % (600 * 64), *[float(i % 17 - 8) for i in range(600 * 64)])
    norm = struct.pack("<64f", *[1.0] * 64)
    ids = struct.pack("<4q", 1, 2, 3, 4)
    header = {"__metadata__": {"format": "pt"},
              "model.embed_tokens.weight": {"dtype": "F32", "shape": [600, 64], "data_offsets": [0, len(emb)]},
              "model.norm.weight": {"dtype": "F32", "shape": [64], "data_offsets": [len(emb), len(emb) + 256]},
              "ids": {"dtype": "I64", "shape": [4], "data_offsets": [len(emb) + 256, len(emb) + 288]}}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + emb + norm + ids)


def main():
    folio = sys.argv[1] if len(sys.argv) > 1 else ".build/debug/folio"
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    src = "/tmp/folio-index-fixture.safetensors"
    safetensors(src)
    subprocess.run([folio, "convert", src, f"{OUT}/model.folio", "--embeddings", "int8", "--max-shard-size", "12KB"],
                   check=True, stdout=subprocess.DEVNULL)
    index = json.load(open(f"{OUT}/model.folio.index.json"))
    shards = index["shards"]

    def variant(mutate):
        doc = json.loads(json.dumps(index))
        mutate(doc)
        return json.dumps(doc, indent=2)

    emb = next(t for t in index["tensors"] if t["name"] == "model.embed_tokens.weight")
    cases = {
        "not-json": ("{\"format\": ", "JSON"),
        "wrong-format": (variant(lambda d: d.update(format="folio-idx")), "format"),
        "wrong-version": (variant(lambda d: d.update(version=2)), "version"),
        "no-shards": (variant(lambda d: d.update(shards=[])), "shards"),
        "shard-missing": (variant(lambda d: d["shards"].append("model-00009-of-00009.folio")), "model-00009-of-00009.folio"),
        "shard-escapes-folder": (variant(lambda d: d["shards"].__setitem__(0, "../" + shards[0])), "shards"),
        "shard-listed-twice": (variant(lambda d: d["shards"].append(shards[0])), "listed twice"),
        "part-shard-unknown": (variant(lambda d: d["tensors"][0]["parts"][0].update(shard="other.folio")), "not one of the listed shards"),
        "part-tensor-unknown": (variant(lambda d: d["tensors"][0]["parts"][0].update(tensor="nope")), "has no tensor"),
        "part-rows-gap": (variant(lambda d: next(t for t in d["tensors"] if t["name"] == emb["name"])["parts"][1]["rows"].__setitem__(0, emb["parts"][1]["rows"][0] + 1)), "rows"),
        "parts-do-not-cover": (variant(lambda d: next(t for t in d["tensors"] if t["name"] == emb["name"])["parts"].pop()), "cover rows"),
        "dtype-mismatch": (variant(lambda d: next(t for t in d["tensors"] if t["name"] == emb["name"]).update(dtype="int4/g32")), "the index says"),
        "unknown-dtype": (variant(lambda d: d["tensors"][0].update(dtype="Q4_K")), "unknown dtype"),
        "shape-overflow": (variant(lambda d: d["tensors"][0].update(shape=[2**40, 2**40])), "shape"),
        "duplicate-tensor": (variant(lambda d: d["tensors"].append(d["tensors"][0])), "duplicate"),
        "shard-tensor-unlisted": (variant(lambda d: d["tensors"].pop()), "is not listed in the index"),
        "metadata-not-strings": (variant(lambda d: d.update(metadata={"a": 1})), "metadata"),
    }
    expected = {}
    for name, (text, phrase) in cases.items():
        fname = f"corrupt-{name}.folio.index.json"
        with open(os.path.join(OUT, fname), "w") as f:
            f.write(text)
        expected[fname] = phrase
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(shards)} shards and {len(cases)} malformed indexes to {OUT}")


if __name__ == "__main__":
    main()
