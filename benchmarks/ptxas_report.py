"""Registers and spills of every kernel in csrc/, from ptxas (-Xptxas -v), for the notes' register
reports (results/ptxas_sNN.txt). Compiles each CUDA source for one architecture, no GPU needed.

    python3 benchmarks/ptxas_report.py [--arch sm_90a] [--jobs 2] > benchmarks/results/ptxas_sNN.txt
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_ENTRY = re.compile(r"Compiling entry function '(\S+)' for '(\w+)'")
_SPILL = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
_REGS = re.compile(r"Used (\d+) registers")


def compile_one(src: Path, arch: str) -> str:
    gencode = f"arch=compute_{arch[3:]},code={arch}"
    flags = ["-std=c++20", "-O3", f"-I{ROOT / 'csrc'}", "--expt-relaxed-constexpr", "-gencode", gencode, "-Xptxas", "-v"]
    if arch == "sm_90a":
        flags.append("-DQUANTDLLM_SM90A")
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(["nvcc", *flags, "-c", str(src), "-o", f"{tmp}/o.o"], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"nvcc failed on {src.name}:\n{r.stderr[-4000:]}")
    return r.stderr


def kernel_label(mangled: str) -> str:
    """``name<template args as mangled>`` of a ``*_kernel`` entry: the length-prefixed identifier
    that ends in ``_kernel`` and is followed by its template argument list (``I ... EE``)."""
    for m in re.finditer(r"\d+", mangled):
        digits = m.group(0)
        for i in range(len(digits)):  # the length prefix may follow other digits (anonymous namespaces)
            n, start = int(digits[i:]), m.end()
            name = mangled[start:start + n]
            if name.endswith("_kernel") and mangled[start + n:start + n + 1] == "I":
                args = re.match(r"I(\w+?)EE", mangled[start + n:])
                return f"{name}<{args.group(1) if args else '?'}>"
    return mangled[-60:]


def rows(src: Path, log: str):
    """(file, kernel<template args>, registers, spill stores, spill loads) per entry function."""
    entry = spill = None
    for line in log.splitlines():
        if m := _ENTRY.search(line):
            entry, spill = m.group(1), None
        elif (m := _SPILL.search(line)) and entry:
            spill = (int(m.group(1)), int(m.group(2)))
        elif (m := _REGS.search(line)) and entry:
            yield src.name, kernel_label(entry), int(m.group(1)), *(spill or (0, 0))
            entry = None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="sm_90a")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    sources = sorted((ROOT / "csrc").glob("*.cu"))
    with ThreadPoolExecutor(args.jobs) as pool:
        logs = list(pool.map(lambda s: compile_one(s, args.arch), sources))
    for src, log in zip(sources, logs):
        for f, kernel, regs, st, ld in rows(src, log):
            print(f"{f:<16} {kernel:<74} {regs:4d} regs  spill {st}/{ld}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
