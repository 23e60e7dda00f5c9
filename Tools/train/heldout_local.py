#!/usr/bin/env python3
"""A held-out text for the trained pair, built on any machine from the packages the training
corpus kept for validation (Tools/train/runs/manifest.json: split "val", whole packages never
in train.txt), so perplexity can be measured on more than the 3,860 tokens of
Tests/Fixtures/trained/heldout_ids.txt without the device.

    pip download --no-deps einops==0.8.2 portalocker==4.4.2 contourpy==1.3.3 coverage==7.18.0 -d WHEELS
    python3 Tools/train/heldout_local.py WHEELS OUT.txt [--max-kb 400]

The README's table-quantization figures used --max-kb 250 with setuptools 84.2.1 installed
(Python 3.11.7): 256,000 bytes, 38 documents, sha256
2dd599e2f7c96f826ebe42ac5efb560d884599fdbe8ae1650d8d2d523299c93e (printed by this script).

Documents, as corpus.py writes them: "<|endoftext|># PATH\\n" + source (+ "\\n"), PATH relative
to the package root. Taken, in this order, each file sorted by path: the .py files of the
wheels in WHEELS whose distribution is a validation package (the versions here are not the
device's; the text is still from packages the models never saw), this machine's setuptools
(validation; its _vendor folder left out, since vendored copies of train packages live there),
and the standard-library modules the manifest lists as validation, from this Python. Files as
corpus.py filters them (at most 1 MB, UTF-8, no NUL, no "<|endoftext|>"). Stops at --max-kb.
"""
import argparse
import glob
import hashlib
import json
import os
import sys
import sysconfig
import zipfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EOT = "<|endoftext|>"


def usable(data):
    if not data or len(data) > 1 << 20 or b"\0" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if EOT in text else text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("wheels")
    ap.add_argument("out")
    ap.add_argument("--max-kb", type=int, default=400)
    a = ap.parse_args()
    manifest = json.load(open(os.path.join(ROOT, "Tools", "train", "runs", "manifest.json")))
    val = {p["name"].lower().replace("_", "-") for p in manifest["packages"] if p["split"] == "val"}
    docs = []
    for wheel in sorted(glob.glob(os.path.join(a.wheels, "*.whl"))):
        dist = os.path.basename(wheel).split("-")[0].lower().replace("_", "-")
        if dist not in val:
            continue
        with zipfile.ZipFile(wheel) as z:
            for name in sorted(z.namelist()):
                if name.endswith(".py") and ".dist-info/" not in name:
                    text = usable(z.read(name))
                    if text is not None:
                        docs.append((f"wheel {os.path.basename(wheel)}", name, text))
    purelib = sysconfig.get_paths()["purelib"]
    if "setuptools" in val:
        base = os.path.join(purelib, "setuptools")
        for path in sorted(glob.glob(os.path.join(base, "**", "*.py"), recursive=True)):
            rel = os.path.relpath(path, purelib)
            if "/_vendor/" in rel or "/tests/" in rel:
                continue
            text = usable(open(path, "rb").read())
            if text is not None:
                docs.append(("setuptools (this machine)", rel, text))
    stdlib = sysconfig.get_paths()["stdlib"]
    for name in sorted(n[len("stdlib/"):] for n in val if n.startswith("stdlib/")):
        path = os.path.join(stdlib, name + ".py")
        if os.path.exists(path):
            text = usable(open(path, "rb").read())
            if text is not None:
                docs.append((f"stdlib (Python {sys.version.split()[0]})", name + ".py", text))
    out, used, sources = [], 0, {}
    for source, rel, text in docs:
        doc = EOT + "# " + rel + "\n" + text + ("" if text.endswith("\n") else "\n")
        size = len(doc.encode())
        if used + size > a.max_kb * 1024:
            continue
        out.append(doc)
        used += size
        sources[source] = sources.get(source, 0) + 1
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("".join(out))
    digest = hashlib.sha256("".join(out).encode()).hexdigest()
    print(f"{a.out}: {used} bytes, {len(out)} documents, sha256 {digest}: " + ", ".join(f"{k} {v}" for k, v in sources.items()))


if __name__ == "__main__":
    main()
