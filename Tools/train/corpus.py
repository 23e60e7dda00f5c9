#!/usr/bin/env python3
"""Build a Python-source code corpus from the Python installation this runs under.

What it does
  Walks, in sorted path order, the standard library (sysconfig "stdlib", without any
  site-packages / dist-packages folder inside it) and every site-packages / dist-packages
  folder of sys.prefix (site.getsitepackages(), sysconfig purelib/platlib), and reads every
  `.py` file that is a regular file (no symbolic links, nothing under __pycache__), not
  empty, at most 1 MB, valid UTF-8, without NUL bytes, and without the literal text
  `<|endoftext|>` (it would read as the end-of-text token). Identical file contents are
  kept once (the first in package-name order).

  Files are grouped into packages:
    * site-packages: the installed distribution that lists the file in its RECORD
      (name and version from importlib.metadata), else the top-level folder or module
      name ("site/NAME", version "unknown");
    * standard library: one package per top-level module, "stdlib/NAME", version = the
      Python version.

  Validation split, by whole package (no file of a validation package is in train.txt):
    h(name) = int(sha256(name.encode()).hexdigest(), 16)
    a package is validation when h(name) % 16 is in R, where R starts as {0} and grows by
    1, 2, ... until validation holds at least 2 % of the corpus bytes; packages holding
    more than 5 % of the corpus bytes are always training. Validation files whose content
    also occurs in training are dropped (vendored copies), so val is never seen in train.

  Size cap (--max-mb): packages are taken in the order of h(name) (a fixed shuffle), each
  whole package only if it still fits under the cap, before the split.

Output (in --out):
  train.txt, val.txt   documents joined as  "<|endoftext|># PATH\\n" + source (+ "\\n" when
                       the file does not end in one); PATH is relative to its root
                       (site-packages or the standard library folder). Every document,
                       the first one too, follows an <|endoftext|>.
  manifest.json        roots, Python version, the rule, every package (name, version,
                       split, files, bytes, sha256 of its documents), the byte counts and
                       sha256 of both splits, and the counts of skipped files by reason.
  The text files are rebuilt bit for bit by running this again on the same installation
  with the same arguments; manifest.json is what gets committed.

Run
  python3 Tools/train/corpus.py --out DIR [--max-mb 400]
"""
import argparse
import hashlib
import importlib.metadata as metadata
import json
import os
import site
import sys
import sysconfig
import time

EOT = "<|endoftext|>"
MAX_FILE = 1 << 20


def name_hash(name):
    return int(hashlib.sha256(name.encode()).hexdigest(), 16)


def roots():
    """(kind, path) pairs: the standard library, then each site-packages folder."""
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    sites = []
    candidates = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    candidates += [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    for p in candidates:
        rp = os.path.realpath(p)
        if os.path.isdir(rp) and rp not in sites:
            sites.append(rp)
    return stdlib, sorted(sites)


def distribution_map(sites):
    """realpath of an installed file -> (distribution name, version)."""
    out = {}
    for dist in sorted(metadata.distributions(), key=lambda d: (str(d.metadata["Name"]), str(d.version))):
        name = dist.metadata["Name"]
        if not name or not dist.files:
            continue
        for f in dist.files:
            if not str(f).endswith(".py"):
                continue
            p = os.path.realpath(str(dist.locate_file(f)))
            if any(p.startswith(s + os.sep) for s in sites):
                out.setdefault(p, (str(name), str(dist.version)))
    return out


def walk(root, skip_dirs, skip_names=("__pycache__",)):
    """Sorted relative paths of .py regular files under root."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames
                             if d not in skip_names and os.path.realpath(os.path.join(dirpath, d)) not in skip_dirs
                             and not os.path.islink(os.path.join(dirpath, d)))
        for f in filenames:
            if f.endswith(".py"):
                full = os.path.join(dirpath, f)
                if not os.path.islink(full) and os.path.isfile(full):
                    found.append(os.path.relpath(full, root))
    return sorted(found)


def read_source(path, skipped):
    size = os.path.getsize(path)
    if size > MAX_FILE:
        skipped["over_1mb"] += 1
        return None
    if size == 0:
        skipped["empty"] += 1
        return None
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        skipped["not_utf8"] += 1
        return None
    if "\x00" in text:
        skipped["nul_byte"] += 1
        return None
    if EOT in text:
        skipped["contains_eot"] += 1
        return None
    return text


def document(relpath, text):
    return EOT + "# " + relpath + "\n" + text + ("" if text.endswith("\n") else "\n")


def collect():
    stdlib, sites = roots()
    dists = distribution_map(sites)
    pyver = "%d.%d.%d" % sys.version_info[:3]
    skipped = {k: 0 for k in ("over_1mb", "empty", "not_utf8", "nul_byte", "contains_eot", "duplicate")}
    packages = {}  # name -> dict(version, root, docs=[(relpath, doc)])

    def add(pkg, version, root, rel, full):
        text = read_source(full, skipped)
        if text is None:
            return
        entry = packages.setdefault(pkg, {"version": version, "root": root, "docs": []})
        entry["docs"].append((rel, document(rel, text), hashlib.sha256(text.encode()).hexdigest()))

    site_set = set(sites)
    # (a base installation's site-packages inside the stdlib folder is not stdlib)
    for rel in walk(stdlib, site_set, ("__pycache__", "site-packages", "dist-packages")):
        top = rel.split(os.sep)[0]
        top = top[:-3] if top.endswith(".py") else top
        add("stdlib/" + top, pyver, stdlib, rel, os.path.join(stdlib, rel))
    for s in sites:
        for rel in walk(s, site_set - {s}):
            full = os.path.realpath(os.path.join(s, rel))
            if full in dists:
                name, version = dists[full]
            else:
                top = rel.split(os.sep)[0]
                top = top[:-3] if top.endswith(".py") else top
                name, version = "site/" + top, "unknown"
            add(name, version, s, rel, full)
    return stdlib, sites, pyver, packages, skipped


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-mb", type=float, default=400.0, help="cap on the corpus size in MB (10^6 bytes)")
    ap.add_argument("--val-min-fraction", type=float, default=0.02)
    ap.add_argument("--val-max-package-fraction", type=float, default=0.05)
    args = ap.parse_args()
    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)
    stdlib, sites, pyver, packages, skipped = collect()

    # Exact duplicates: first occurrence in package-name order wins.
    seen = set()
    for name in sorted(packages):
        kept = []
        for rel, doc, h in packages[name]["docs"]:
            if h in seen:
                skipped["duplicate"] += 1
                continue
            seen.add(h)
            kept.append((rel, doc, h))
        packages[name]["docs"] = kept
        packages[name]["bytes"] = sum(len(d.encode()) for _, d, _ in kept)
    packages = {k: v for k, v in packages.items() if v["docs"]}

    # Cap: whole packages in the order of their name hash.
    cap = int(args.max_mb * 1e6)
    chosen, total = [], 0
    for name in sorted(packages, key=lambda n: (name_hash(n), n)):
        b = packages[name]["bytes"]
        if total + b <= cap:
            chosen.append(name)
            total += b
    chosen.sort()

    # Validation rule.
    big = {n for n in chosen if packages[n]["bytes"] > args.val_max_package_fraction * total}
    residues = []
    val = set()
    for r in range(16):
        residues.append(r)
        val = {n for n in chosen if n not in big and name_hash(n) % 16 in residues}
        if sum(packages[n]["bytes"] for n in val) >= args.val_min_fraction * total:
            break

    train_hashes = {h for n in chosen if n not in val for _, _, h in packages[n]["docs"]}
    dropped_val = 0
    splits = {"train": hashlib.sha256(), "val": hashlib.sha256()}
    sizes = {"train": 0, "val": 0}
    files = {"train": 0, "val": 0}
    records = []
    outs = {s: open(os.path.join(args.out, s + ".txt"), "wb") for s in splits}
    for name in chosen:
        split = "val" if name in val else "train"
        p = packages[name]
        h = hashlib.sha256()
        nfiles = nbytes = 0
        for rel, doc, fh in p["docs"]:
            if split == "val" and fh in train_hashes:
                dropped_val += 1
                continue
            b = doc.encode()
            outs[split].write(b)
            splits[split].update(b)
            h.update(b)
            nfiles += 1
            nbytes += len(b)
        sizes[split] += nbytes
        files[split] += nfiles
        records.append({"name": name, "version": p["version"], "root": p["root"], "split": split,
                        "files": nfiles, "bytes": nbytes, "sha256": h.hexdigest(),
                        "name_hash_mod16": name_hash(name) % 16})
    for f in outs.values():
        f.close()
    skipped["val_duplicate_of_train"] = dropped_val
    manifest = {
        "what": "Python sources of one installation; documents '<|endoftext|># PATH\\n' + source",
        "python": pyver,
        "executable": sys.executable,
        "stdlib_root": stdlib,
        "site_roots": sites,
        "max_mb": args.max_mb,
        "max_file_bytes": MAX_FILE,
        "rule": ("val = packages with int(sha256(name).hexdigest(),16) %% 16 in %s (residues added from 0 until val >= %.0f%% "
                 "of bytes), excluding packages over %.0f%% of the bytes; val files whose content is also in train dropped; "
                 "cap: whole packages in name-hash order while they fit") % (residues, 100 * args.val_min_fraction,
                                                                           100 * args.val_max_package_fraction),
        "val_residues": residues,
        "splits": {s: {"files": files[s], "bytes": sizes[s], "sha256": splits[s].hexdigest(),
                       "packages": sum(1 for r in records if r["split"] == s)} for s in splits},
        "val_fraction": sizes["val"] / max(1, sizes["train"] + sizes["val"]),
        "skipped": skipped,
        "packages_not_taken_by_cap": sorted(set(packages) - set(chosen)),
        "packages": records,
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=False)
        f.write("\n")
    print(json.dumps({"corpus": args.out, "seconds": round(time.time() - t0, 1),
                      "train_mb": round(sizes["train"] / 1e6, 2), "val_mb": round(sizes["val"] / 1e6, 2),
                      "val_fraction": round(manifest["val_fraction"], 4), "val_residues": residues,
                      "packages": len(records), "val_packages": manifest["splits"]["val"]["packages"],
                      "skipped": skipped}))


if __name__ == "__main__":
    main()
