#!/usr/bin/env python3
"""Remote reads, measured: n-gram lookups from nginx on loopback with 0, 1 and 10 ms of
latency added per request (Tools/bench/latency_proxy.py), without and with the prefetch of
the next batch's rows, and with the chunk cache warm; then `folio convert` of a remote
2 GB safetensors file to a local .folio against `curl` of the same file, in one run.

    python3 Tools/bench/remote_bench.py [--work /tmp/folio-remote-bench] [--folio .build/release/folio]

Builds its inputs on first use: 12 tables of 262,144 x 256 int8 with one-page chunks
(`folio bench tables ... --chunk-size 4096`, 859 MB) and a 2 GiB float32 safetensors file.
"""
import argparse
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on port {port}")


def start_nginx(work, root, port):
    conf = f"""daemon off; master_process off; worker_processes 1;
pid {work}/nginx.pid; error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; keepalive_requests 1000000; sendfile on;
  client_body_temp_path {work}/b; proxy_temp_path {work}/p; fastcgi_temp_path {work}/f; uwsgi_temp_path {work}/u; scgi_temp_path {work}/s;
  server {{ listen 127.0.0.1:{port}; root {root}; }} }}
"""
    with open(f"{work}/nginx.conf", "w") as f:
        f.write(conf)
    p = subprocess.Popen(["nginx", "-c", f"{work}/nginx.conf", "-p", work, "-e", f"{work}/nginx-error.log"])
    wait_port(port)
    return p


def make_safetensors(path, total=2 << 30, tensors=8):
    each = total // tensors // 4
    header = {f"layer.{i}.weight": {"dtype": "F32", "shape": [each // 4096, 4096], "data_offsets": [i * each * 4, (i + 1) * each * 4]}
              for i in range(tensors)}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    block = os.urandom(1 << 20)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for _ in range(each * 4 * tensors // len(block)):
            f.write(block)
    os.rename(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/folio-remote-bench")
    ap.add_argument("--folio", default=".build/release/folio")
    ap.add_argument("--rows", type=int, default=262144)
    ap.add_argument("--skip-convert", action="store_true")
    ap.add_argument("--skip-lookups", action="store_true")
    a = ap.parse_args()
    folio = os.path.abspath(a.folio)
    work = a.work
    root = f"{work}/srv"
    os.makedirs(root, exist_ok=True)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} CPUs")
    tables = f"{root}/tables.folio"
    if not os.path.exists(tables):
        subprocess.run([folio, "bench", "tables", tables, "--tables", "12", "--rows", str(a.rows), "--dim", "256",
                        "--scheme", "int8", "--chunk-size", "4096"], check=True)
    nginx = start_nginx(work, root, 18090)
    proxies = [subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "latency_proxy.py"),
                                 "--listen", str(port), "--upstream", "18090", "--delay-ms", str(ms)]) for port, ms in ((18091, 1), (18092, 10))]
    for port in (18091, 18092):
        wait_port(port)
    try:
        def lookups(url, tokens, extra, cache=None):
            env = dict(os.environ, FOLIO_CACHE=cache or "off")
            out = subprocess.run([folio, "bench", "lookups", url, "--tokens", str(tokens), "--json"] + extra,
                                 capture_output=True, text=True, env=env)
            if out.returncode != 0:
                sys.exit(out.stderr)
            return json.loads(out.stdout)

        if a.skip_lookups:
            pass
        else:
            lookup_table(lookups, tables, work)
        if not a.skip_convert:
            convert(folio, root, work)
            if os.path.isdir("/dev/shm"):
                # The same on tmpfs: no disk writeback, so fsync costs nothing and the
                # transfer itself is compared.
                print("outputs on /dev/shm (tmpfs):")
                convert(folio, root, "/dev/shm")
    finally:
        for p in proxies:
            p.kill()
        nginx.kill()


def lookup_table(lookups, tables, work):
    if True:
        local = lookups(tables, 20000, [])
        print(f"local mapped: {local['tokens_per_second']:.0f} tokens/s  checksum {local['checksum']}")
        print("latency | no prefetch tok/s (requests) | prefetch 1 batch ahead tok/s | cache warm tok/s | checksums equal")
        for name, port, tokens, conns in (("0 ms", 18090, 4000, 16), ("1 ms", 18091, 2000, 16), ("10 ms", 18092, 512, 16), ("10 ms", 18092, 1024, 64)):
            url = f"http://127.0.0.1:{port}/tables.folio"
            os.environ["FOLIO_HTTP_CONNECTIONS"] = str(conns)
            plain = lookups(url, tokens, [])
            pre = lookups(url, tokens, ["--willneed-ahead", "1"])
            cache = f"{work}/cache-{port}"
            shutil.rmtree(cache, ignore_errors=True)
            lookups(url, tokens, [], cache=cache)  # fills the cache
            warm = lookups(url, tokens, [], cache=cache)
            ref = lookups(tables, tokens, [])
            same = all(r["checksum"] == ref["checksum"] for r in (plain, pre, warm))
            print(f"{name:>5} | {plain['tokens_per_second']:8.0f} ({plain['http_requests']}) | {pre['tokens_per_second']:8.0f} ({pre['http_requests']})"
                  f" | {warm['tokens_per_second']:8.0f} ({warm['http_requests']}) | {same}  [{tokens} tokens, batch 256, 12 tables, {conns} connections]")
        os.environ.pop("FOLIO_HTTP_CONNECTIONS", None)


def convert(folio, root, out):
    work = out
    if True:
        if True:
            st = f"{root}/big.safetensors"
            if not os.path.exists(st):
                make_safetensors(st)
            os.makedirs(work, exist_ok=True)
            size = os.path.getsize(st)
            url = "http://127.0.0.1:18090/big.safetensors"
            rows = []
            for rnd in range(3):
                os.sync()
                t0 = time.time()
                subprocess.run(["curl", "-s", "-f", "-o", f"{work}/curl.out", url], check=True)
                tc = time.time() - t0
                # folio convert fsyncs its output before renaming it into place: the same
                # durability for curl is its file fsynced too.
                fd = os.open(f"{work}/curl.out", os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
                tcs = time.time() - t0
                os.remove(f"{work}/curl.out")
                os.sync()
                t0 = time.time()
                subprocess.run([folio, "convert", url, f"{work}/out.folio"], check=True, capture_output=True,
                               env=dict(os.environ, FOLIO_CACHE="off"))
                tf = time.time() - t0
                os.remove(f"{work}/out.folio")
                rows.append((tc, tcs, tf))
                print(f"convert round {rnd + 1}: curl {size / tc / 1e6:.0f} MB/s ({tc:.2f} s; {tcs:.2f} s with fsync), "
                      f"folio convert {size / tf / 1e6:.0f} MB/s ({tf:.2f} s): {tc / tf:.2f}x curl, {tcs / tf:.2f}x curl+fsync")
            plain = sorted(tc / tf for tc, _, tf in rows)
            synced = sorted(tcs / tf for _, tcs, tf in rows)
            print(f"convert: median {plain[1]:.2f}x curl (min {plain[0]:.2f}, max {plain[2]:.2f}), median {synced[1]:.2f}x curl+fsync "
                  f"(min {synced[0]:.2f}, max {synced[2]:.2f}) over 3 alternated rounds; {size} bytes")


if __name__ == "__main__":
    main()
