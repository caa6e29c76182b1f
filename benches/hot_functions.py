#!/usr/bin/env python3
"""Writes `benches/hot_functions.txt`, the functions a `convostat` process
runs, most shared first, which `build.rs` hands to the linker to place
together at the start of the executable's code (not part of the test
suite).

    cargo build --release
    python3 benches/compare_duckdb.py --more-writers   # makes the data sets, once
    python3 benches/hot_functions.py [--binary target/release/convostat]
        [--data target/bench-compare/10000000]

Why: the executable's code is 15 MB, and a short process (a flow, 1.5-3
ms) runs about 800 functions spread over 500 of its pages. Each first touch
of a page faults, and the kernel maps the 16 pages around it (fault-around)
one by one when the file's page cache holds them as single pages, as it
does for a file the linker wrote or one read back from disk; those
mappings cost again when the process exits. Placed together, the same
functions fill about 190 pages.

How: every run below is traced by valgrind's callgrind (`valgrind` must
be installed); a function's name is its symbol, as the linker knows it.
The file is ordered by how many of the runs call a function (start-up
code, which every run calls, first), then by when a run first called it.
Symbols of Rust functions carry a hash of their crate's build settings
and toolchain: after a dependency or toolchain update, names that no
longer match are ignored by the linker and this script should be run
again. A change to convostat's own code leaves the names as they were,
but for functions it adds, removes, or no longer calls on their own
(inlined): the crate is built as one codegen unit (Cargo.toml), whose
functions are not renamed with a suffix of the unit's hash.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "benches", "hot_functions.txt")

BOT = "bot-acme-support"
SPAN = ["--version", "LIVE", "--start", "2024-01-01", "--end", "2024-05-01"]


def flow(conversation):
    return ["flow", "--bot-id", BOT, "--conversation-id", conversation] + SPAN


SCANS = [
    ["conversations", "--bot-id", BOT] + SPAN + ["--bucket", "1d", "--group-by", "channel_type"],
    ["insights", "--bot-id", BOT] + SPAN + ["--bucket", "1d", "--stat", "duration_seconds",
                                            "--aggregate", "p95"],
    ["usage", "--team-id", "team-acme", "--start", "2024-01-01", "--end", "2024-05-01",
     "--bucket", "1d", "--group-by", "bot_id,channel_type"],
]


def runs(data):
    """The traced command lines: flows (the first conversation and one that
    starts mid-file) over every data set, the scans over one file, and
    `--version`. `interleaved-uuid` is left out: its conversations have
    other names, and its plain pages of ids are read as
    `interleaved-no-dictionary`'s are."""
    inputs = sorted(
        os.path.join(data, name)
        for name in os.listdir(data)
        if (name.endswith(".parquet") and name != "interleaved-uuid.parquet")
        or name == "hourly"
    )
    for path in inputs:
        for conversation in ("c1", "c2t49"):
            yield flow(conversation) + ["--input", path]
    scanned = os.path.join(data, "interleaved-duckdb.parquet")
    for scan in SCANS:
        yield scan + ["--input", scanned]
    yield ["--version"]


def traced_functions(binary, args):
    """The symbols of the functions `binary args` runs, in the order callgrind
    first names them."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--demangle=no", "--dump-instr=no",
             f"--callgrind-out-file={out}", binary] + args,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
            env=dict(os.environ, RAYON_NUM_THREADS="2"),
        )
        names = []
        for line in open(out):
            # `fn=(id) name` the first time a function is named; a suffix
            # `'N` marks a recursion depth.
            m = re.match(r"^c?fn=\(\d+\) (\S+)$", line.strip())
            if m:
                name = m.group(1).split("'")[0]
                if not name.startswith("0x") and name not in names:
                    names.append(name)
        return names


def with_native_variants(binary, order):
    """`order` with, after each of glibc's AVX2 string and memory functions,
    its EVEX and AVX-512 variants that `binary` holds. glibc picks a
    variant of each by the CPU's features when the process starts; under
    valgrind, which does not emulate AVX-512, it picks the AVX2 ones, so
    the traced runs name only those. A CPU with AVX-512 (this VM's) runs
    `__memmove_avx512_unaligned_erms`, `__strlen_evex` and the like, which
    were otherwise left at their place in the code: each a page fault of
    every process."""
    symbols = subprocess.run(["nm", "--defined-only", binary], capture_output=True,
                             text=True, check=True).stdout
    defined = {line.split()[-1] for line in symbols.splitlines() if line.split()}
    out, seen = [], set()
    for name in order:
        for candidate in [name] + [
            re.sub(r"^(__\w+?)_avx2?(?=_|$)", r"\1_" + isa, name)
            for isa in ("evex", "evex512", "avx512")
        ]:
            if candidate not in seen and (candidate == name or candidate in defined):
                seen.add(candidate)
                out.append(candidate)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "convostat"))
    parser.add_argument("--data", default=os.path.join(ROOT, "target", "bench-compare", "10000000"))
    options = parser.parse_args()
    counts, first_seen = {}, {}
    traced = list(runs(options.data))
    for i, args in enumerate(traced):
        print(f"[{i + 1}/{len(traced)}] {' '.join(args)}", file=sys.stderr)
        for position, name in enumerate(traced_functions(options.binary, args)):
            counts[name] = counts.get(name, 0) + 1
            first_seen.setdefault(name, (i, position))
    order = sorted(counts, key=lambda n: (-counts[n], first_seen[n]))
    order = with_native_variants(options.binary, order)
    with open(OUT, "w") as f:
        f.write("# The functions `convostat` runs, most shared first: the order in which\n")
        f.write("# the linker places them (build.rs). Written by benches/hot_functions.py\n")
        f.write(f"# from {len(traced)} traced runs; run it again after a toolchain or\n")
        f.write("# dependency update.\n")
        for name in order:
            f.write(name + "\n")
    print(f"{len(order)} functions -> {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
