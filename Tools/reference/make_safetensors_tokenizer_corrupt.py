#!/usr/bin/env python3
"""Malformed safetensors files (Tests/Fixtures/safetensors/corrupt) and tokenizer.json files
(Tests/Fixtures/tokenizer/corrupt), one defect each, with expected.json giving the phrase
each one's error must contain. The safetensors cases walk the structure: header size
(0, past the end, over the cap), header text, every entry field, offsets (gaps, overlaps,
past the end, reversed), shape products that overflow, dtypes, duplicates, metadata."""
import json
import os
import struct


def st(header, data=b"", raw_header=None, size=None):
    text = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    n = len(text) if size is None else size
    return struct.pack("<Q", n) + text + data


def main():
    out = "Tests/Fixtures/safetensors/corrupt"
    t = lambda d, s, o: {"dtype": d, "shape": s, "data_offsets": o}
    cases = {
        "empty-file.safetensors": (b"", "truncated"),
        "short-size.safetensors": (b"\x08\x00\x00", "truncated"),
        "header-size-zero.safetensors": (st(None, raw_header=b"", size=0), "'{'"),
        "header-size-past-end.safetensors": (st({"a": t("U8", [1], [0, 1])}, b"\x01", size=4096), "past the end"),
        "header-size-over-cap.safetensors": (st({}, size=200_000_000), "exceeds"),
        "header-size-max.safetensors": (st({}, size=2**64 - 1), "exceeds"),
        "header-not-object.safetensors": (st(None, raw_header=b"[1,2]"), "'{'"),
        "header-invalid-json.safetensors": (st(None, raw_header=b'{"a":'), "JSON"),
        "header-invalid-utf8.safetensors": (st(None, raw_header=b'{"\xff":1}'), "JSON"),
        "duplicate-name.safetensors": (st(None, raw_header=b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', data=b"\x01\x02"), "duplicate"),
        "entry-not-object.safetensors": (st({"a": 5}), "not an object"),
        "missing-dtype.safetensors": (st({"a": {"shape": [1], "data_offsets": [0, 1]}}, b"\x01"), "missing dtype"),
        "unknown-dtype.safetensors": (st({"a": t("Q4", [1], [0, 1])}, b"\x01"), "unknown dtype"),
        "sub-byte-dtype.safetensors": (st({"a": t("F4", [2], [0, 1])}, b"\x01"), "not supported"),
        "missing-shape.safetensors": (st({"a": {"dtype": "U8", "data_offsets": [0, 1]}}, b"\x01"), "missing shape"),
        "negative-dim.safetensors": (st({"a": t("U8", [-1], [0, 1])}, b"\x01"), "shape"),
        "fractional-dim.safetensors": (st({"a": t("U8", [1.5], [0, 1])}, b"\x01"), "shape"),
        "shape-overflow.safetensors": (st({"a": t("F32", [2**32, 2**32, 16], [0, 4])}, b"\0" * 4), "overflow"),
        "shape-product-mismatch.safetensors": (st({"a": t("F32", [3], [0, 8])}, b"\0" * 8), "expected"),
        "offsets-missing.safetensors": (st({"a": {"dtype": "U8", "shape": [1]}}, b"\x01"), "data_offsets"),
        "offsets-one-value.safetensors": (st({"a": t("U8", [1], [0])}, b"\x01"), "data_offsets"),
        "offsets-reversed.safetensors": (st({"a": t("U8", [0], [1, 0])}, b"\x01"), "end before"),
        "offsets-huge.safetensors": (st({"a": t("U8", [1], [2**64 - 2, 2**64 - 1])}, b"\x01"), "data_offsets"),
        "offsets-gap.safetensors": (st({"a": t("U8", [1], [1, 2])}, b"\x01\x02"), "gap"),
        "offsets-overlap.safetensors": (st({"a": t("U8", [2], [0, 2]), "b": t("U8", [1], [1, 2])}, b"\x01\x02"), "overlap"),
        "data-truncated.safetensors": (st({"a": t("U8", [4], [0, 4])}, b"\x01\x02"), "truncated"),
        "data-trailing.safetensors": (st({"a": t("U8", [1], [0, 1])}, b"\x01\x02"), "not covered"),
        "unknown-entry-field.safetensors": (st({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1], "crc": 3}}, b"\x01"), "unknown field"),
        "metadata-not-object.safetensors": (st({"__metadata__": [1]}), "__metadata__"),
        "metadata-not-string.safetensors": (st({"__metadata__": {"a": 1}}), "__metadata__"),
        "nesting-too-deep.safetensors": (st(None, raw_header=b'{"a":' + b"[" * 100 + b"]" * 100 + b"}"), "JSON"),
    }
    write(out, cases)

    tok = {"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "a": 3}},
           "normalizer": {"type": "BertNormalizer"}, "pre_tokenizer": {"type": "BertPreTokenizer"}}

    def with_(**kw):
        d = json.loads(json.dumps(tok))
        for k, v in kw.items():
            if v is None:
                d.pop(k)
            else:
                d[k] = v
        return json.dumps(d).encode()

    tcases = {
        "not-json.json": (b"{", "not valid JSON"),
        "bpe-model.json": (with_(model={"type": "BPE", "vocab": {}, "merges": []}), "BPE"),
        "no-model.json": (with_(model=None), "missing"),
        "no-vocab.json": (with_(model={"type": "WordPiece"}), "model.vocab"),
        "vocab-not-ids.json": (with_(model={"type": "WordPiece", "vocab": {"a": "x"}}), "not a token id"),
        # BERT's template names [CLS] and [SEP], which this vocabulary lacks.
        "no-cls-sep.json": (with_(model={"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0}},
                                  post_processor={"type": "TemplateProcessing",
                                                  "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                                             {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                                                  "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [101], "tokens": ["[CLS]"]},
                                                                     "[SEP]": {"id": "[SEP]", "ids": [102], "tokens": ["[SEP]"]}}}), "[CLS]"),
        "unk-not-in-vocab.json": (with_(model={"type": "WordPiece", "unk_token": "<unk>", "vocab": {"[CLS]": 1, "[SEP]": 2}}), "unk_token"),
        "other-normalizer.json": (with_(normalizer={"type": "NFKC"}), "normalizer NFKC"),
        "other-pre-tokenizer.json": (with_(pre_tokenizer={"type": "ByteLevel"}), "ByteLevel"),
    }
    write("Tests/Fixtures/tokenizer/corrupt", tcases)


def write(out, cases):
    os.makedirs(out, exist_ok=True)
    expected = {}
    for name, (data, phrase) in cases.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        expected[name] = phrase
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(cases)} files to {out}")


if __name__ == "__main__":
    main()
