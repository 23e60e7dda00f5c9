"""How long the Python reader takes to open a Folio file, small against large.

    python3 Tools/bench/python_open_bench.py SMALL.folio LARGE.folio [--repeat 500]

Opening reads the preamble, the header and the last 8 bytes and maps the file (FOLIO.md 8.3),
so its cost should not depend on the file's size. Each repeat opens, lists the keys, reads one
row of the first tensor that has rows, and closes; the median and the 90th percentile of the
open alone are printed with the file sizes, warm page cache. Make a large file with e.g.
    folio bench tables /tmp/big.folio --tables 1 --rows 38461538 --dim 256 --scheme int8
"""

import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
import folio  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lookups_bench import cpu_name as cpu_model  # noqa: E402  (the same /proc/cpuinfo reading)


def measure(path, repeat):
    opens, rows = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f = folio.safe_open(path)
        t1 = time.perf_counter()
        names = f.keys()
        for n in names:
            if f.tensor_info(n)["shape"]:
                f.get_rows(n, [0])
                break
        t2 = time.perf_counter()
        f.close()
        opens.append(t1 - t0)
        rows.append(t2 - t1)
    opens.sort()
    return statistics.median(opens), opens[int(0.9 * (len(opens) - 1))], statistics.median(rows), len(names)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("files", nargs="+")
    p.add_argument("--repeat", type=int, default=500)
    a = p.parse_args()
    print(f"cpu: {cpu_model()}; python {platform.python_version()}; folio-reader {folio.__version__}")
    for path in a.files:
        size = os.path.getsize(path)
        med, p90, row, n = measure(path, a.repeat)
        print(f"{path}: {size:,} bytes, {n} tensors: open median {med * 1e6:.1f} us (p90 {p90 * 1e6:.1f}), "
              f"keys + one row {row * 1e6:.1f} us")


if __name__ == "__main__":
    main()
