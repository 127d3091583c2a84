#!/usr/bin/env python3
"""Build benchmark/data/corpus.txt: a few thousand lines of real English text
for tokenizer / text-pipeline benchmarks.

Sources (all present on a Debian bookworm machine with Python 3.11):
  1. every non-empty line of /usr/share/common-licenses/* (regular files, not
     the GPL/LGPL/GFDL symlinks), files in sorted order;
  2. pydoc plain-text documentation (pydoc.render_doc with pydoc.plaintext)
     of a few standard-library modules (PYDOC_MODULES; the first
     PYDOC_MAX_LINES kept lines of each), lines mentioning the
     local install path or an object address ("at 0x...") dropped;
  3. the first COPYRIGHT_MAX_LINES non-empty lines of
     /usr/share/doc/<pkg>/copyright for the packages in COPYRIGHT_PACKAGES,
until TARGET_LINES lines are collected. Empty / whitespace-only lines are
skipped, trailing whitespace is stripped, leading indentation is kept, tabs
are kept. The output uses '\n' line endings and ends with a newline.

Standard library only. The result depends on the machine's files, so the
corpus is committed rather than rebuilt in CI; rebuilding on the same Debian
+ Python version gives byte-identical output.

Usage:
    python3 scripts/make_bench_corpus.py
"""

from __future__ import annotations

import importlib
import re
import os
import pydoc
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "benchmark", "data", "corpus.txt")

LICENSES_DIR = "/usr/share/common-licenses"
PYDOC_MODULES = ["json", "textwrap", "heapq", "bisect", "functools", "itertools", "statistics"]
COPYRIGHT_PACKAGES = ["base-files", "bash", "coreutils", "dpkg", "apt", "tar", "gzip",
                      "sed", "grep", "findutils", "diffutils", "git"]
COPYRIGHT_MAX_LINES = 60
PYDOC_MAX_LINES = 100  # per module
TARGET_LINES = 5000
MAX_BYTES = 1_000_000


def clean(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.rstrip()
        if line.strip():
            out.append(line)
    return out


def license_lines() -> list[str]:
    out = []
    for name in sorted(os.listdir(LICENSES_DIR)):
        path = os.path.join(LICENSES_DIR, name)
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            out += clean(f.read())
    return out


def pydoc_lines() -> list[str]:
    out = []
    local = {sys.prefix, sys.base_prefix, os.path.dirname(os.__file__)}
    for modname in PYDOC_MODULES:
        mod = importlib.import_module(modname)
        text = pydoc.render_doc(mod, renderer=pydoc.plaintext)
        kept = 0
        for line in clean(text):
            if kept >= PYDOC_MAX_LINES:
                break
            if any(p and p in line for p in local):
                continue
            if re.search(r" at 0x[0-9a-fA-F]+", line):  # object reprs (addresses vary per run)
                continue
            out.append(line)
            kept += 1
    return out


def copyright_lines() -> list[str]:
    out = []
    for pkg in COPYRIGHT_PACKAGES:
        path = os.path.join("/usr/share/doc", pkg, "copyright")
        if not os.path.isfile(path):
            print(f"skip (missing): {path}")
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            out += clean(f.read())[:COPYRIGHT_MAX_LINES]
    return out


def main() -> None:
    parts = [("common-licenses", license_lines()), ("pydoc", pydoc_lines()),
             ("copyright", copyright_lines())]
    lines: list[str] = []
    for name, src in parts:
        take = src[: max(0, TARGET_LINES - len(lines))]
        lines += take
        print(f"{name}: {len(take)} lines")
    data = ("\n".join(lines) + "\n").encode("utf-8")
    assert 3000 <= len(lines) <= 5000, len(lines)
    assert len(data) < MAX_BYTES, len(data)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as f:
        f.write(data)
    print(f"{os.path.relpath(OUT, ROOT)}: {len(lines)} lines, {len(data)} bytes")


if __name__ == "__main__":
    main()
