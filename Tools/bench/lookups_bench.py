#!/usr/bin/env python3
"""Rows per second of n-gram embedding lookups: `folio bench lookups` against peers on the same
row ids, the same table shapes and the same machine, in one run.

    python3 Tools/bench/lookups_bench.py [--folio .build/release/folio] [--tables 12]
        [--rows 1000000] [--dim 256] [--tokens 200000] [--batch 1,256,10000] [--threads 1,2]
        [--zipf S] [--seed 0] [--scheme int8,int4] [--peers numpy-f32,numpy-int8,torch,mlx]
        [--workdir DIR] [--keep] [--skip-folio] [--no-probe] [--json]

Workload (LongCat-Flash-Lite's n-gram embeddings, scaled down so it fits in RAM): TABLES tables
of ROWS x DIM values; per token one row of every table is read, dequantized to float32 and the
TABLES rows are summed into one float32 vector. Tokens are processed in batches of BATCH and
every engine produces a float32 [batch, dim] array per batch.

Method, per scheme (int8, int4 = int4/g32, f32):
 1. Folio: `folio bench tables` writes the .folio file (kept and reused with --keep), `cat FILE >
    /dev/null` warms the page cache, then `folio bench lookups FILE --tokens N --threads T
    --batch B [--zipf S] --seed S --json --ids-out ids_T.npy` runs once per thread count. Its
    JSON figures are reported as printed. The row ids it used ([N, tables] int64) are the ids
    every other engine gathers. With --skip-folio (until `bench lookups` exists) the script
    draws the ids itself: uniform per table, or with --zipf S a bounded Zipf(S) over rank with
    ranks scattered over rows by a random permutation per table.
 2. Peers, on the same ids, with random data of their own (standard normal values, quantized
    as the engine does it; the values do not matter for speed). For each: one untimed warm-up
    batch, then all tokens timed batch by batch; rows/s = tokens x tables / total seconds.
    Index arrays are laid out per engine before timing (as Folio gets its ids in memory).
    Each run also records process CPU seconds / wall seconds, showing how many cores it used.
    - numpy-f32: per table a float32 [rows, dim] .npy opened with mmap_mode="r" (page cache,
      warmed by cat); out = sum over tables of take(tbl, ids[:, t]).
    - numpy-int8: per table an int8 [rows, dim] .npy and a float32 [rows] scale .npy (symmetric,
      one scale per row, like Folio's int8), memmapped; out += q[ids].astype(f32) * s[ids, None].
      numpy itself is single-threaded; for T > 1 the batch is split into T slices run on a
      thread pool (take and the ufuncs release the GIL).
    - torch (FBGEMM, anonymous memory): int8 = embedding_bag_byte_prepack layout (dim values, then
      float32 scale and bias per row), int4 = embedding_bag_4bit_prepack layout (dim/2 bytes,
      then float16 scale and bias per row), f32 = F.embedding_bag on a float tensor. All tables
      in one tensor. Three call patterns, each with torch.set_num_threads(T):
        fused:     one call per batch, one bag per token holding its TABLES rows (global ids)
        per_table: one call per table with offsets = arange(batch), results added
        pairs:     one call per batch, one bag per (token, table), then view + sum over tables
      Each pattern runs on up to 20 batches (best of --repeat); the fastest is then timed over all tokens and
      named in the report.
    - mlx (mlx.core on the CPU device, anonymous memory): float16 weights quantized with
      mx.quantize (int8: bits 8, group --mlx-group8 (64); int4: bits 4, group 32 with float16
      scale and bias, the same 160-byte record as Folio's int4/g32). Per batch mx.take of codes,
      scales and biases, dequantized to float32, summed over tables, mx.eval. Patterns: fused
      (one take of batch x tables rows, reshape, sum) or per_table (12 takes, added), with
      mx.dequantize, or with elementwise ops on a uint8 view of the codes (q * scale + bias;
      mx.dequantize on the CPU is several times slower than that), the latter also under
      mx.compile. Fastest kept, as for torch. MLX's CPU backend has no thread knob: it runs once
      and its figure stands for every thread count (flagged single_threaded; its CPU/wall
      ratio shows the cores it used).
    Every peer, and Folio, runs --repeat times (3) per thread count; the best run is kept.
    Folio runs its --repeat times twice, before the peers and again after them (a slow spell
    of this kind of shared machine can last minutes); the best of all its runs is kept.
 3. Ceiling probe (Tools/bench/probe.c, built here with gcc -O2 -pthread): for the same ids,
    touches one byte in each 64-byte cache line of each row's record in the .folio file, and
    does nothing else. Row layout from `folio inspect FILE --json` and Formats/FOLIO.md 7.2:
    record of row r at offset + (r / rows_per_page) * max(page_size, row_stride) +
    (r % rows_per_page) * row_stride, record size from the scheme (int8: dim + 4, int4/gN:
    4 * dim/N + dim/2, plain: dim * size). Modes: mmap (the file, 4 KiB pages of the page
    cache; first pass includes the minor faults of a fresh mapping, steady = best later pass),
    anon (private copy, MADV_NOHUGEPAGE) and huge (2 MiB-aligned private copy, MADV_HUGEPAGE:
    the 2 MiB-page ceiling; AnonHugePages shows whether the kernel gave huge pages).
 4. A table per scheme and thread count: rows/s and tokens/s of each engine, and Folio's rows/s
    as a ratio to each (Folio / engine > 1 means Folio is faster). --json prints one document.

Files (the .folio tables, the numpy .npy tables, ids, the probe binary) go to --workdir (default
a new temporary directory). Without --keep they are deleted at the end; with --keep they stay
and a later run with the same --workdir, --tables, --rows, --dim and --seed reuses them.

Measured on a 2-core machine other jobs share, single runs vary by 2x or more; --repeat keeps
the best of several, and the CPU/wall column shows when a run was starved.

Memory: before anything is written the script estimates the largest resident set (the .folio
file in the page cache plus the biggest peer: numpy-f32 at 4 bytes a value, MLX's build holding
two copies) and, if it exceeds --mem-fraction of MemAvailable, lowers --rows for every engine
(Folio included) and says so.
"""
import argparse
import gc
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PROBE_SRC = HERE / "probe.c"
PLAIN_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1}
CHUNK_ROWS = 65536


# ---------------------------------------------------------------------------------------------
# Folio layout (Formats/FOLIO.md 6.1, 7.2)

def record_size(dtype, dim):
    """Record size RS of one row of `dim` values stored as `dtype` (a header dtype)."""
    if dtype == "int8":
        return dim + 4
    m = re.fullmatch(r"(int8|int4|affine8)/g(\d+)", dtype)
    if m:
        kind, n = m.group(1), int(m.group(2))
        g = dim // n
        return {"int8": dim + 2 * g, "int4": 4 * g + dim // 2, "affine8": 4 * g + dim}[kind]
    if dtype in PLAIN_SIZES:
        return dim * PLAIN_SIZES[dtype]
    raise SystemExit(f"unknown dtype {dtype!r} in folio inspect output")


def folio_layout(folio, path, tables, rows, dim):
    """Per-table absolute offset, row_stride, rows_per_page, block and record size."""
    r = subprocess.run([folio, "inspect", str(path), "--json"], check=True, capture_output=True, text=True)
    info = json.loads(r.stdout)
    page = int(info["page_size"])
    found = {}
    for t in info["tensors"]:
        m = re.fullmatch(r"ngram_embeddings\.(\d+)\.weight", t["name"])
        if m:
            found[int(m.group(1))] = t
    if sorted(found) != list(range(tables)):
        raise SystemExit(f"{path}: expected tensors ngram_embeddings.0..{tables - 1}.weight, got {sorted(found)}")
    out = []
    for i in range(tables):
        t = found[i]
        if list(t["shape"]) != [rows, dim]:
            raise SystemExit(f"{path}: {t['name']} has shape {t['shape']}, expected {[rows, dim]}")
        if "row_stride" not in t:
            raise SystemExit(f"{path}: {t['name']} is not paged")
        rs = record_size(t["dtype"], dim)
        align = 4 if t["dtype"] not in PLAIN_SIZES else PLAIN_SIZES[t["dtype"]]
        a = -(-rs // align) * align
        stride, rpp = (a, page // a) if a <= page else (-(-rs // page) * page, 1)
        if (stride, rpp) != (t["row_stride"], t["rows_per_page"]):
            raise SystemExit(f"{path}: {t['name']}: row_stride/rows_per_page {t['row_stride']}/{t['rows_per_page']} "
                             f"!= computed {stride}/{rpp}")
        block = max(page, stride)
        nbytes = (rows - 1) // rpp * block + (rows - 1) % rpp * stride + rs if rows else 0
        if nbytes != t["nbytes"]:
            raise SystemExit(f"{path}: {t['name']}: nbytes {t['nbytes']} != computed {nbytes}")
        out.append(dict(offset=int(t["offset"]), row_stride=stride, rows_per_page=rpp, block=block,
                        record=rs, nbytes=nbytes, rows=rows, dtype=t["dtype"]))
    return page, out


def row_offset(tb, r):
    return tb["offset"] + (r // tb["rows_per_page"]) * tb["block"] + (r % tb["rows_per_page"]) * tb["row_stride"]


def decode_record(buf, dtype, dim):
    if dtype == "int8":
        return np.frombuffer(buf, np.float32, 1, 0)[0] * np.frombuffer(buf, np.int8, dim, 4).astype(np.float32)
    m = re.fullmatch(r"int4/g(\d+)", dtype)
    if m:
        n = int(m.group(1))
        g = dim // n
        sm = np.frombuffer(buf, np.float16, 2 * g, 0).astype(np.float32).reshape(g, 2)
        b = np.frombuffer(buf, np.uint8, dim // 2, 4 * g)
        q = np.stack([b & 15, b >> 4], 1).reshape(dim).astype(np.float32)
        return (q.reshape(g, n) * sm[:, :1] + sm[:, 1:]).reshape(dim)
    if dtype == "F32":
        return np.frombuffer(buf, np.float32, dim, 0).copy()
    return None


def check_layout(path, layout, dim, seed):
    """Decode a few rows at the computed offsets: values must look like N(0, 1) and the padding
    after each record must be zero. Catches a wrong offset or record size before the probe."""
    rng = np.random.default_rng(seed + 7)
    mm = np.memmap(path, np.uint8, "r")
    vals = []
    for tb in layout:
        for r in list(rng.integers(0, tb["rows"], 16)) + [0, tb["rows"] - 1]:
            o = row_offset(tb, int(r))
            pad_end = min(o + tb["row_stride"], tb["offset"] + tb["nbytes"])
            if np.any(mm[o + tb["record"]:pad_end]):
                raise SystemExit(f"{path}: non-zero padding after row {r}: layout misread")
            v = decode_record(bytes(mm[o:o + tb["record"]]), tb["dtype"], dim)
            if v is not None:
                vals.append(v)
    del mm
    if vals:
        v = np.concatenate(vals)
        if not (np.isfinite(v).all() and abs(v.mean()) < 0.1 and 0.8 < v.std() < 1.2):
            raise SystemExit(f"{path}: decoded rows do not look like N(0,1) (mean {v.mean():.3f}, std {v.std():.3f})")


def estimated_file_bytes(scheme, tables, rows, dim, page=4096):
    dtype = {"int8": "int8", "int4": "int4/g32", "f32": "F32", "f16": "F16", "bf16": "BF16"}.get(scheme, scheme)
    rs = record_size(dtype, dim)
    a = -(-rs // 4) * 4
    stride, rpp = (a, page // a) if a <= page else (-(-rs // page) * page, 1)
    return tables * (-(-rows // rpp)) * max(page, stride)


# ---------------------------------------------------------------------------------------------
# ids

def make_ids(tokens, tables, rows, zipf, seed):
    rng = np.random.default_rng(seed)
    if zipf is None:
        return rng.integers(0, rows, size=(tokens, tables), dtype=np.int64)
    cdf = np.cumsum(1.0 / np.arange(1, rows + 1, dtype=np.float64) ** zipf)
    cdf /= cdf[-1]
    ids = np.empty((tokens, tables), np.int64)
    for t in range(tables):
        rank = np.minimum(np.searchsorted(cdf, rng.random(tokens), side="right"), rows - 1)
        ids[:, t] = rng.permutation(rows)[rank]
    return ids


# ---------------------------------------------------------------------------------------------
# timing

def mem_available():
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def anon_huge_bytes():
    try:
        for line in open("/proc/self/smaps_rollup"):
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def cat(*paths):
    for p in paths:
        subprocess.run(f"cat {sh(str(p))} > /dev/null", shell=True, check=True)


def sh(s):
    return "'" + s.replace("'", "'\\''") + "'"


def timed_run(step, tokens, batch, tables, bytes_per_row, limit_batches=None, repeat=1):
    """step(lo, hi) -> float32 [hi - lo, dim] (already computed). Warm-up: the first batch (and
    the last when it is shorter, so shape-specialised code is ready), untimed. Then the batches
    [0, tokens) (or the first limit_batches of them) timed one by one; best of `repeat` runs."""
    step(0, min(batch, tokens))
    if tokens % batch and limit_batches is None:
        step(tokens - tokens % batch, tokens)
    starts = list(range(0, tokens, batch))
    if limit_batches is not None:
        starts = starts[:limit_batches]
    best, every = None, []
    for _ in range(repeat):
        times = []
        out = None
        c0, w0 = time.process_time(), time.perf_counter()
        for lo in starts:
            s = time.perf_counter()
            out = step(lo, min(lo + batch, tokens))
            times.append(time.perf_counter() - s)
        wall = time.perf_counter() - w0
        cpu = time.process_time() - c0
        n = min(starts[-1] + batch, tokens) if starts else 0
        rows = n * tables / wall
        r = dict(seconds=wall, tokens=n, tokens_per_second=n / wall, rows_per_second=rows,
                 bytes_per_second=rows * bytes_per_row, p50_batch_seconds=float(np.percentile(times, 50)),
                 p99_batch_seconds=float(np.percentile(times, 99)), cpu_per_wall=cpu / wall,
                 checksum_last_batch=float(np.asarray(out, dtype=np.float64).sum()))
        every.append(rows)
        if best is None or r["rows_per_second"] > best["rows_per_second"]:
            best = r
    best["all_rows_per_second"] = every
    return best


def best_pattern(patterns, tokens, batch, tables, bytes_per_row, repeat, log):
    """Calibrate each pattern on up to 20 batches (best of `repeat`), then time the fastest on all tokens."""
    cal = {}
    for name, step in patterns.items():
        cal[name] = timed_run(step, tokens, batch, tables, bytes_per_row, limit_batches=20,
                              repeat=repeat)["rows_per_second"]
    best = max(cal, key=cal.get)
    log(f"      patterns (rows/s on <=20 batches): " + ", ".join(f"{k} {v:,.0f}" for k, v in cal.items()) + f" -> {best}")
    r = timed_run(patterns[best], tokens, batch, tables, bytes_per_row, repeat=repeat)
    r["pattern"] = best
    r["pattern_calibration_rows_per_second"] = cal
    return r


def normal_chunks(rows, dim, seed):
    rng = np.random.default_rng(seed)
    for lo in range(0, rows, CHUNK_ROWS):
        hi = min(lo + CHUNK_ROWS, rows)
        yield lo, hi, rng.standard_normal((hi - lo, dim), dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# numpy peers

def numpy_files(workdir, tables, rows, dim, seed, want, created, log):
    """Per-table .npy files: f32 [rows, dim]; int8 [rows, dim] + f32 scale [rows]."""
    files = {"f32": [], "int8": []}
    for t in range(tables):
        tag = f"{t}_{rows}x{dim}_s{seed}"
        f32 = workdir / f"np_f32_{tag}.npy"
        q8, s8 = workdir / f"np_q8_{tag}.npy", workdir / f"np_s8_{tag}.npy"
        need32 = "numpy-f32" in want and not f32.exists()
        need8 = "numpy-int8" in want and not (q8.exists() and s8.exists())
        if need32 or need8:
            a32 = np.lib.format.open_memmap(str(f32) + ".tmp", "w+", np.float32, (rows, dim)) if need32 else None
            aq = np.lib.format.open_memmap(str(q8) + ".tmp", "w+", np.int8, (rows, dim)) if need8 else None
            as_ = np.lib.format.open_memmap(str(s8) + ".tmp", "w+", np.float32, (rows,)) if need8 else None
            for lo, hi, x in normal_chunks(rows, dim, seed * 1000 + 100 + t):
                if need32:
                    a32[lo:hi] = x
                if need8:
                    s = np.abs(x).max(1) / 127
                    s[s == 0] = 1
                    aq[lo:hi] = np.clip(np.rint(x / s[:, None]), -127, 127).astype(np.int8)
                    as_[lo:hi] = s
            for a, p in ((a32, f32), (aq, q8), (as_, s8)):
                if a is not None:
                    a.flush()
                    del a
                    os.replace(str(p) + ".tmp", p)
                    created.append(p)
            a32 = aq = as_ = None
        files["f32"].append(f32)
        files["int8"].append((q8, s8))
    log(f"  numpy tables ready in {workdir}")
    return files


def numpy_runs(files, ids, threads_list, batch, dim, want, repeat, log):
    tokens, tables = ids.shape
    idsT = np.ascontiguousarray(ids.T)
    res = {}
    for kind in ("f32", "int8"):
        name = f"numpy-{kind}"
        if name not in want:
            continue
        if kind == "f32":
            tbl = [np.load(p, mmap_mode="r") for p in files["f32"]]
            cat(*files["f32"])
            bpr = dim * 4
        else:
            tq = [np.load(q, mmap_mode="r") for q, _ in files["int8"]]
            ts = [np.load(s, mmap_mode="r") for _, s in files["int8"]]
            cat(*[p for pair in files["int8"] for p in pair])
            bpr = dim + 4
        for nthr in threads_list:
            out = np.empty((batch, dim), np.float32)
            bufs = [dict(f=np.empty((batch, dim), np.float32), q=np.empty((batch, dim), np.int8),
                         s=np.empty((batch,), np.float32)) for _ in range(nthr)]

            def part(k, lo, hi, base):
                b, n, o = bufs[k], hi - lo, out[lo - base:hi - base]
                for t in range(tables):
                    idx = idsT[t, lo:hi]
                    dst = o if t == 0 else b["f"][:n]
                    if kind == "f32":
                        np.take(tbl[t], idx, axis=0, out=dst, mode="clip")
                    else:
                        np.take(tq[t], idx, axis=0, out=b["q"][:n], mode="clip")
                        np.take(ts[t], idx, out=b["s"][:n], mode="clip")
                        np.multiply(b["q"][:n], b["s"][:n, None], out=dst)
                    if t:
                        np.add(o, dst, out=o)

            pool = ThreadPoolExecutor(nthr) if nthr > 1 else None

            def step(lo, hi):
                if pool is None:
                    part(0, lo, hi, lo)
                else:
                    cuts = [lo + (hi - lo) * k // nthr for k in range(nthr + 1)]
                    list(pool.map(lambda k: part(k, cuts[k], cuts[k + 1], lo), range(nthr)))
                return out[:hi - lo]

            if nthr == threads_list[0]:
                # correctness: first batch against a plain gather
                n = min(batch, tokens)
                got = step(0, n).copy()
                if kind == "f32":
                    ref = sum(np.asarray(tbl[t][idsT[t, :n]], np.float64) for t in range(tables))
                else:
                    ref = sum(np.asarray(tq[t][idsT[t, :n]], np.float64) * np.asarray(ts[t][idsT[t, :n]])[:, None]
                              for t in range(tables))
                assert np.allclose(got, ref, atol=1e-3), f"{name} gather mismatch"
            r = timed_run(step, tokens, batch, tables, bpr, repeat=repeat)
            r["pattern"] = "per_table" + (f" on {nthr} python threads" if nthr > 1 else "")
            res[(name, nthr)] = r
            log(f"    {name:11s} T={nthr}: {r['rows_per_second']:>13,.0f} rows/s  cpu/wall {r['cpu_per_wall']:.2f}")
            if pool:
                pool.shutdown()
    return res


# ---------------------------------------------------------------------------------------------
# torch (FBGEMM) peer

def torch_runs(scheme, ids, rows, dim, seed, threads_list, batch, repeat, log):
    import torch
    q = torch.ops.quantized
    tokens, tables = ids.shape
    if scheme == "int8":
        width, pack, unpack, op = dim + 8, q.embedding_bag_byte_prepack, q.embedding_bag_byte_unpack, \
            q.embedding_bag_byte_rowwise_offsets
        W = torch.empty((tables * rows, width), dtype=torch.uint8)
    elif scheme == "int4":
        width, pack, unpack, op = dim // 2 + 4, q.embedding_bag_4bit_prepack, q.embedding_bag_4bit_unpack, \
            q.embedding_bag_4bit_rowwise_offsets
        W = torch.empty((tables * rows, width), dtype=torch.uint8)
    elif scheme == "f32":
        width, pack, unpack, op = dim * 4, None, None, None
        W = torch.empty((tables * rows, dim), dtype=torch.float32)
    else:
        log(f"    torch: no peer for scheme {scheme}")
        return {}
    t0 = time.perf_counter()
    for t in range(tables):
        for lo, hi, x in normal_chunks(rows, dim, seed * 1000 + 200 + t):
            xt = torch.from_numpy(x)
            W[t * rows + lo:t * rows + hi] = pack(xt) if pack else xt
    log(f"    torch {scheme} weights {W.numel() * W.element_size() / 2**30:.2f} GiB built in "
        f"{time.perf_counter() - t0:.1f} s (AnonHugePages {anon_huge_bytes()})")
    views = [W[t * rows:(t + 1) * rows] for t in range(tables)]
    gflat = torch.from_numpy((ids + np.arange(tables, dtype=np.int64) * rows).reshape(-1).copy())
    idsT = torch.from_numpy(np.ascontiguousarray(ids.T))
    ar_pairs = torch.arange(batch * tables, dtype=torch.int64)
    ar_tok = torch.arange(batch, dtype=torch.int64)
    ar_fused = torch.arange(0, batch * tables, tables, dtype=torch.int64)
    F = torch.nn.functional

    def bag(w, idx, offs):
        if op is None:
            return F.embedding_bag(idx, w, offs, mode="sum")
        return op(w, idx, offs, False, 0, False, None, None, False)

    def fused(lo, hi):
        return bag(W, gflat[lo * tables:hi * tables], ar_fused[:hi - lo])

    def pairs(lo, hi):
        n = hi - lo
        return bag(W, gflat[lo * tables:hi * tables], ar_pairs[:n * tables]).view(n, tables, dim).sum(1)

    def per_table(lo, hi):
        n = hi - lo
        acc = bag(views[0], idsT[0, lo:hi], ar_tok[:n])
        for t in range(1, tables):
            acc += bag(views[t], idsT[t, lo:hi], ar_tok[:n])
        return acc

    n = min(batch, tokens)
    a, b, c = fused(0, n), pairs(0, n), per_table(0, n)
    rowsf = W[gflat[:n * tables]]
    ref = (unpack(rowsf) if unpack else rowsf).view(n, tables, dim).double().sum(1)
    for name, x in (("fused", a), ("pairs", b), ("per_table", c)):
        assert torch.allclose(x.double(), ref, atol=1e-2), f"torch {name} mismatch"
    res = {}
    prev = torch.get_num_threads()
    for nthr in threads_list:
        torch.set_num_threads(nthr)
        r = best_pattern(dict(fused=fused, per_table=per_table, pairs=pairs), tokens, batch, tables, width, repeat, log)
        r["torch_threads"] = torch.get_num_threads()
        res[("torch", nthr)] = r
        log(f"    torch       T={nthr}: {r['rows_per_second']:>13,.0f} rows/s  cpu/wall {r['cpu_per_wall']:.2f}  ({r['pattern']})")
    torch.set_num_threads(prev)
    del W, views
    gc.collect()
    return res


# ---------------------------------------------------------------------------------------------
# MLX peer

def mlx_runs(scheme, ids, rows, dim, seed, threads_list, batch, group8, repeat, log):
    import mlx.core as mx
    mx.set_default_device(mx.cpu)
    tokens, tables = ids.shape
    if scheme == "int8":
        bits, group = 8, group8
    elif scheme == "int4":
        bits, group = 4, 32
    elif scheme == "f32":
        bits, group = None, None
    else:
        log(f"    mlx: no peer for scheme {scheme}")
        return {}
    t0 = time.perf_counter()
    Q, S, B = [], [], []
    for t in range(tables):
        qs, ss, bs = [], [], []
        for lo, hi, x in normal_chunks(rows, dim, seed * 1000 + 300 + t):
            if bits is None:
                qs.append(mx.array(x))
            else:
                qq, s, b = mx.quantize(mx.array(x).astype(mx.float16), group_size=group, bits=bits)
                qs.append(qq), ss.append(s), bs.append(b)
            mx.eval(qs[-1], *(ss[-1:] + bs[-1:]))
        Q.append(mx.concatenate(qs))
        if bits is not None:
            S.append(mx.concatenate(ss))
            B.append(mx.concatenate(bs))
        mx.eval(Q[-1], *(S[-1:] + B[-1:]))
        del qs, ss, bs
    Qa = mx.concatenate(Q)
    Sa = mx.concatenate(S) if bits else None
    Ba = mx.concatenate(B) if bits else None
    mx.eval(*[a for a in (Qa, Sa, Ba) if a is not None])
    del Q, S, B
    gc.collect()
    bpr = Qa.nbytes // (tables * rows) + (2 * Sa.nbytes // (tables * rows) if bits else 0)
    log(f"    mlx {scheme} weights {bpr} bytes/row, built in {time.perf_counter() - t0:.1f} s")

    gids = (ids + np.arange(tables, dtype=np.int64) * rows).astype(np.int32)
    starts = list(range(0, tokens, batch))
    flat = {lo: mx.array(gids[lo:lo + batch].reshape(-1)) for lo in starts}
    cols = {lo: [mx.array(np.ascontiguousarray(gids[lo:lo + batch, t])) for t in range(tables)] for lo in starts}
    G = dim // group if bits else 0

    def deq_mx(idx):
        """mx.take of codes, scales, biases, then mx.dequantize (float32 out)."""
        if bits is None:
            return mx.take(Qa, idx, axis=0)
        return mx.dequantize(mx.take(Qa, idx, axis=0), mx.take(Sa, idx, axis=0), mx.take(Ba, idx, axis=0),
                             group_size=group, bits=bits, dtype=mx.float32)

    def deq_ops(idx):
        """Same gather, dequantized with elementwise ops on a uint8 view of the packed codes
        (MLX packs codes little-endian in uint32, low nibble first; value = q * scale + bias)."""
        if bits is None:
            return mx.take(Qa, idx, axis=0)
        u = mx.view(mx.take(Qa, idx, axis=0), mx.uint8)
        if bits == 4:
            u = mx.stack([u & 15, u >> 4], axis=-1)
        u = u.reshape(-1, G, group).astype(mx.float32)
        s = mx.take(Sa, idx, axis=0).astype(mx.float32)[..., None]
        b = mx.take(Ba, idx, axis=0).astype(mx.float32)[..., None]
        return (u * s + b).reshape(-1, dim)

    def fused_core(deq):
        return lambda idx: deq(idx).reshape(-1, tables, dim).sum(axis=1)

    def per_table_core(deq):
        def f(*idxs):
            acc = deq(idxs[0])
            for i in idxs[1:]:
                acc = acc + deq(i)
            return acc
        return f

    def fused_step(core):
        def step(lo, hi):
            out = core(flat[lo])
            mx.eval(out)
            return out
        return step

    def per_table_step(core):
        def step(lo, hi):
            out = core(*cols[lo])
            mx.eval(out)
            return out
        return step

    patterns = {
        "fused take+dequantize": fused_step(fused_core(deq_mx)),
        "per_table take+dequantize": per_table_step(per_table_core(deq_mx)),
        "fused take+ops": fused_step(fused_core(deq_ops)),
        "fused take+ops compiled": fused_step(mx.compile(fused_core(deq_ops))),
        "per_table take+ops compiled": per_table_step(mx.compile(per_table_core(deq_ops))),
    }
    if bits is None:
        patterns = {"fused take": patterns["fused take+dequantize"],
                    "per_table take": patterns["per_table take+dequantize"],
                    "fused take compiled": patterns["fused take+ops compiled"]}

    # correctness: every pattern agrees with a float64 sum of whole-row dequantizations
    n = min(batch, tokens)
    ref = np.zeros((n, dim))
    for t in range(tables):
        for k in range(n):
            r0 = int(gids[k, t])
            row = Qa[r0:r0 + 1] if bits is None else mx.dequantize(
                Qa[r0:r0 + 1], Sa[r0:r0 + 1], Ba[r0:r0 + 1], group_size=group, bits=bits, dtype=mx.float32)
            ref[k] += np.array(row, dtype=np.float64)[0]
            if k >= 7:
                break
    for name, step in patterns.items():
        got = np.array(step(0, n))[:8]
        assert np.allclose(got, ref[:8], atol=0.05), f"mlx {name} mismatch ({np.abs(got - ref[:8]).max()})"
    r = best_pattern(patterns, tokens, batch, tables, bpr, repeat, log)
    r["single_threaded"] = True
    r["mlx_bits"], r["mlx_group_size"] = bits, group
    log(f"    mlx         (no thread knob): {r['rows_per_second']:>13,.0f} rows/s  cpu/wall {r['cpu_per_wall']:.2f}  ({r['pattern']})")
    del Qa, Sa, Ba, flat, cols
    gc.collect()
    return {("mlx", nthr): r for nthr in threads_list}


# ---------------------------------------------------------------------------------------------
# probe

def build_probe(workdir, log):
    exe = workdir / "probe"
    if not exe.exists() or exe.stat().st_mtime < PROBE_SRC.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-pthread", "-o", str(exe), str(PROBE_SRC)], check=True)
        log(f"  built {exe}")
    return exe


def probe_runs(exe, path, layout, ids, threads_list, idsbin, log):
    ids.astype("<i8").tofile(idsbin)
    cmd = [str(exe), "--file", str(path), "--ids", str(idsbin), "--tokens", str(ids.shape[0]),
           "--threads", ",".join(map(str, threads_list)), "--modes", "mmap,anon,huge", "--passes", "5"]
    for tb in layout:
        cmd += ["--table", ":".join(str(tb[k]) for k in
                                    ("offset", "row_stride", "rows_per_page", "block", "record", "nbytes", "rows"))]
    r = subprocess.run(cmd, check=True, capture_output=True, text=True)
    res = {}
    for line in r.stdout.splitlines():
        d = json.loads(line)
        d["bytes_per_second"] = d["rows_per_second"] * layout[0]["record"]
        res[(f"probe-{d['mode']}", d["threads"])] = d
        extra = f"first pass {d['rows_per_second_first']:,.0f}" if d["mode"] == "mmap" else \
            f"AnonHugePages {d['anon_huge_kb'] / 1024:.0f} MiB"
        log(f"    probe-{d['mode']:5s} T={d['threads']}: {d['rows_per_second']:>13,.0f} rows/s  ({extra})")
    return res


# ---------------------------------------------------------------------------------------------
# folio

def folio_tables(folio, path, scheme, tables, rows, dim, seed, keep, created, log):
    if keep and path.exists():
        log(f"  reusing {path}")
        return
    t0 = time.perf_counter()
    subprocess.run([folio, "bench", "tables", str(path), "--tables", str(tables), "--rows", str(rows),
                    "--dim", str(dim), "--scheme", scheme, "--seed", str(seed)], check=True, stdout=subprocess.DEVNULL)
    created.append(path)
    log(f"  wrote {path} ({path.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - t0:.1f} s")


def folio_runs(args, path, threads_list, workdir, tag, log):
    res, ids = {}, None
    for nthr in threads_list:
        idp = workdir / f"ids_{tag}_T{nthr}.npy"
        cmd = [args.folio, "bench", "lookups", str(path), "--tokens", str(args.tokens), "--threads", str(nthr),
               "--batch", str(args.batch), "--seed", str(args.seed), "--json", "--ids-out", str(idp)]
        if args.zipf is not None:
            cmd += ["--zipf", str(args.zipf)]
        if args.resident:
            cmd += ["--resident"]
        runs = []
        for _ in range(args.repeat):
            r = subprocess.run(cmd, check=True, capture_output=True, text=True)
            text = r.stdout.strip()
            try:
                runs.append(json.loads(text))
            except json.JSONDecodeError:
                runs.append(json.loads(text.splitlines()[-1]))
        d = dict(max(runs, key=lambda x: x["rows_per_second"]))
        d["all_rows_per_second"] = [x["rows_per_second"] for x in runs]
        res[("folio", nthr)] = d
        got = np.load(idp)
        if got.shape != (args.tokens, args.tables) or got.dtype != np.int64:
            raise SystemExit(f"{idp}: shape {got.shape} dtype {got.dtype}, expected ({args.tokens}, {args.tables}) int64")
        if ids is None:
            ids = got
        elif not np.array_equal(ids, got):
            log(f"  note: folio used different ids with {nthr} threads; peers use the first run's ids")
        log(f"    folio       T={nthr}: {d['rows_per_second']:>13,.0f} rows/s  "
            f"(major faults {d.get('major_faults')}, minor {d.get('minor_faults')})")
    return res, ids


# ---------------------------------------------------------------------------------------------

def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folio", default=".build/release/folio")
    ap.add_argument("--tables", type=int, default=12)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--tokens", type=int, default=200_000)
    ap.add_argument("--batch", default="256",
                    help="tokens per batch; a comma list (1,256,10000) runs the whole comparison once per batch size, in one run")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--zipf", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scheme", default="int8,int4", help="comma list of int8, int4, f32")
    ap.add_argument("--peers", default="numpy-f32,numpy-int8,torch,mlx")
    ap.add_argument("--mlx-group8", type=int, default=64, help="MLX group size for the 8-bit peer (32, 64, 128)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true", help="keep generated files and reuse existing ones")
    ap.add_argument("--resident", action="store_true",
                    help="folio reads its file into 2 MiB-page memory (`bench lookups --resident`), as the peers hold theirs in RAM")
    ap.add_argument("--skip-folio", action="store_true", help="no `folio bench lookups`: draw ids with numpy")
    ap.add_argument("--no-probe", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per engine and thread count; best kept")
    ap.add_argument("--mem-fraction", type=float, default=0.8)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    batches = [int(x) for x in str(args.batch).split(",") if x]
    if len(batches) > 1:
        # One run per batch size, each its own process (so that memory is given back), in
        # this run; the tables file is written once and kept for all of them.
        import copy
        out, workdir = [], Path(args.workdir or tempfile.mkdtemp(prefix="folio-lookups-")).resolve()
        for b in batches:
            argv = [sys.executable, __file__] + [a for a in sys.argv[1:]]
            i = argv.index("--batch")
            argv[i + 1] = str(b)
            argv += ["--json", "--keep", "--workdir", str(workdir)]
            r = subprocess.run(argv, check=True, capture_output=True, text=True)
            sys.stderr.write(r.stderr)
            out.append(json.loads(r.stdout))
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        if args.json:
            print(json.dumps(dict(batches=out), indent=1))
            return
        print(f"{args.tables} tables x {out[0]['config']['rows']} rows x {args.dim}, {args.tokens} tokens; "
              f"{out[0]['machine']['cpus']} CPUs; {cpu_name()}")
        print(f"{'batch':>6s} {'scheme':6s} {'T':>2s}  {'engine':11s} {'rows/s':>14s} {'folio/x':>8s}")
        for b, doc in zip(batches, out):
            for r in doc["results"]:
                ratio = f"{r['folio_ratio']:.2f}" if r["folio_ratio"] else "-"
                print(f"{b:>6d} {r['scheme']:6s} {r['threads']:>2d}  {r['engine']:11s} {r['rows_per_second']:>14,.0f} {ratio:>8s}")
        return
    args.batch = batches[0]

    threads_list = [int(x) for x in args.threads.split(",") if x]
    schemes = [s for s in args.scheme.split(",") if s]
    want = set(p for p in args.peers.split(",") if p)
    for s in schemes:
        if s not in ("int8", "int4", "f32"):
            raise SystemExit(f"scheme {s}: only int8, int4, f32 have peers")
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else (lambda m: print(m, flush=True))

    # memory: the .folio file in the page cache plus the largest peer
    def peak(rows):
        p = 0
        for s in schemes:
            f = estimated_file_bytes(s, args.tables, rows, args.dim)
            per_row = {"int8": (args.dim + 8, 2 * (args.dim + 4 * args.dim // args.mlx_group8)),
                       "int4": (args.dim // 2 + 4, 2 * (args.dim // 2 + 4 * args.dim // 32)),
                       "f32": (4 * args.dim, 8 * args.dim)}[s]
            peers = [f]  # probe: a private copy of the file
            peers += [args.tables * rows * 4 * args.dim] if "numpy-f32" in want else []
            peers += [args.tables * rows * (args.dim + 4)] if "numpy-int8" in want else []
            peers += [args.tables * rows * per_row[0]] if "torch" in want else []
            peers += [args.tables * rows * per_row[1]] if "mlx" in want else []
            p = max(p, f + max(peers) + args.tokens * args.tables * 8 * 4)
        return p

    avail = mem_available()
    rows = args.rows
    while rows > 1000 and peak(rows) > args.mem_fraction * avail:
        rows = rows * 9 // 10 // 1000 * 1000
    if rows != args.rows:
        log(f"note: {args.rows} rows per table need ~{peak(args.rows) / 2**30:.1f} GiB, more than "
            f"{args.mem_fraction:.0%} of MemAvailable {avail / 2**30:.1f} GiB; using {rows} rows for every engine")
        args.rows = rows

    made_dir = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="folio-lookups-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    created = []
    if not args.skip_folio and not Path(args.folio).exists():
        raise SystemExit(f"{args.folio} not found (build it, or use --skip-folio)")

    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    machine = dict(cpus=os.cpu_count(), cpu=cpu_name(), mem_available_bytes=avail, kernel=platform.release(),
                   transparent_hugepage=thp.read_text().strip() if thp.exists() else None, numpy=np.__version__)
    log(f"{args.tables} tables x {args.rows} rows x {args.dim}, {args.tokens} tokens, batch {args.batch}, "
        f"threads {threads_list}, zipf {args.zipf}, workdir {workdir}")
    results = {}  # (scheme, engine, threads) -> dict
    np_cache = {}
    np_files = None
    try:
        probe = None if args.no_probe else build_probe(workdir, log)
        if probe is not None and not args.keep:
            created.append(probe)
        for scheme in schemes:
            log(f"scheme {scheme}")
            tag = f"{scheme}_{args.tables}x{args.rows}x{args.dim}_s{args.seed}"
            path = workdir / f"tables_{tag}.folio"
            folio_tables(args.folio, path, scheme, args.tables, args.rows, args.dim, args.seed, args.keep, created, log)
            page, layout = folio_layout(args.folio, path, args.tables, args.rows, args.dim)
            check_layout(path, layout, args.dim, args.seed)
            cat(path)
            if args.skip_folio:
                ids = make_ids(args.tokens, args.tables, args.rows, args.zipf, args.seed)
                res = {}
            else:
                res, ids = folio_runs(args, path, threads_list, workdir, tag, log)
                created += list(workdir.glob(f"ids_{tag}_T*.npy"))
            if probe is not None:
                idsbin = workdir / f"ids_{tag}.bin"
                res.update(probe_runs(probe, path, layout, ids, threads_list, idsbin, log))
                idsbin.unlink()
            if want & {"numpy-f32", "numpy-int8"}:
                key = hashlib.sha1(ids.tobytes()).hexdigest()
                if key not in np_cache:
                    if np_files is None:
                        np_files = numpy_files(workdir, args.tables, args.rows, args.dim, args.seed, want, created, log)
                    np_cache[key] = numpy_runs(np_files, ids, threads_list, args.batch, args.dim, want, args.repeat, log)
                else:
                    log("    numpy peers: same ids as an earlier scheme, figures reused")
                res.update(np_cache[key])
            if "torch" in want:
                res.update(torch_runs(scheme, ids, args.rows, args.dim, args.seed, threads_list, args.batch, args.repeat, log))
            if "mlx" in want:
                res.update(mlx_runs(scheme, ids, args.rows, args.dim, args.seed, threads_list, args.batch,
                                    args.mlx_group8, args.repeat, log))
            if not args.skip_folio:
                # Folio again after the peers, so that a slow spell of the machine during its
                # first runs does not decide its figure; the best of both passes is kept.
                log("    folio again, after the peers:")
                res2, ids2 = folio_runs(args, path, threads_list, workdir, tag, log)
                if not np.array_equal(ids, ids2):
                    raise SystemExit(f"{path}: folio's row ids differ between its two passes")
                for key, d in res2.items():
                    first = res[key]
                    both = first["all_rows_per_second"] + d["all_rows_per_second"]
                    res[key] = d if d["rows_per_second"] > first["rows_per_second"] else first
                    res[key]["all_rows_per_second"] = both
            for (engine, nthr), d in res.items():
                results[(scheme, engine, nthr)] = d
            if not args.keep and path in created:
                path.unlink()
    finally:
        if not args.keep:
            for p in created:
                Path(p).unlink(missing_ok=True)
            if made_dir:
                shutil.rmtree(workdir, ignore_errors=True)

    # report
    order = ["folio", "numpy-f32", "numpy-int8", "torch", "mlx", "probe-mmap", "probe-anon", "probe-huge"]
    rows_out = []
    for scheme in schemes:
        for nthr in threads_list:
            f = results.get((scheme, "folio", nthr))
            for engine in order:
                d = results.get((scheme, engine, nthr))
                if d is None:
                    continue
                rps = d["rows_per_second"]
                row = dict(scheme=scheme, threads=nthr, engine=engine, rows_per_second=rps,
                           tokens_per_second=d.get("tokens_per_second", rps / args.tables),
                           folio_ratio=(f["rows_per_second"] / rps) if f and engine != "folio" else None,
                           detail=d)
                if engine == "probe-mmap":
                    row["folio_ratio_first_pass"] = f["rows_per_second"] / d["rows_per_second_first"] if f else None
                rows_out.append(row)
    if args.json:
        print(json.dumps(dict(config=dict(vars(args), threads=threads_list, scheme=schemes), machine=machine,
                              results=rows_out), indent=1))
        return
    print()
    print(f"{args.tables} tables x {args.rows} rows x {args.dim}, {args.tokens} tokens, batch {args.batch}, "
          f"{'uniform' if args.zipf is None else f'zipf {args.zipf}'} ids; {machine['cpus']} CPUs, THP {machine['transparent_hugepage']}; {cpu_name()}")
    print(f"{'scheme':6s} {'T':>2s}  {'engine':11s} {'rows/s':>14s} {'tokens/s':>12s} {'folio/x':>8s}  note")
    for r in rows_out:
        d = r["detail"]
        note = d.get("pattern", "")
        if d.get("single_threaded"):
            note += ", single-threaded (same run for every T)"
        if "cpu_per_wall" in d:
            note += f", cpu/wall {d['cpu_per_wall']:.2f}"
        if r["engine"] == "probe-mmap":
            note = f"first pass (fresh mapping) {d['rows_per_second_first']:,.0f} rows/s"
            if r.get("folio_ratio_first_pass"):
                note += f", folio/first {r['folio_ratio_first_pass']:.2f}"
        if r["engine"] == "probe-huge":
            note = f"AnonHugePages {d['anon_huge_kb'] / 1024:.0f} MiB"
        if r["engine"] == "folio":
            note = f"faults major {d.get('major_faults')} minor {d.get('minor_faults')}"
            if args.resident and d.get("anon_huge_bytes", -1) >= 0:
                note += f", 2 MiB pages {d['anon_huge_bytes'] / 2**20:.0f} MiB"
        ratio = f"{r['folio_ratio']:.2f}" if r["folio_ratio"] else "-"
        print(f"{r['scheme']:6s} {r['threads']:>2d}  {r['engine']:11s} {r['rows_per_second']:>14,.0f} "
              f"{r['tokens_per_second']:>12,.0f} {ratio:>8s}  {note.lstrip(', ')}")


if __name__ == "__main__":
    main()
