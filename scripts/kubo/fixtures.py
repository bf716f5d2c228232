#!/usr/bin/env python3
"""Materialise the deterministic UnixFS fixtures of testdata/unixfs/fixtures.json.

Usage:
    python3 scripts/kubo/fixtures.py OUTDIR [NAME...]
    python3 scripts/kubo/fixtures.py --list

Writes OUTDIR/NAME for every named fixture (a file, a directory tree, or a
symlink).  Without NAMEs it writes every fixture whose tags do not contain
"huge".  An existing OUTDIR/NAME is removed first.

Options:
    --fixtures PATH     fixtures.json to read (default: testdata/unixfs/fixtures.json
                        next to this repository's scripts/ directory)
    --skip-tag TAG      (repeatable) skip fixtures carrying TAG when no NAME is given
    --if-missing        do not rewrite OUTDIR/NAME when it already exists
    --list              print "name<TAB>kind<TAB>bytes<TAB>tags" for every fixture

The format is documented in testdata/unixfs/README.md.  Standard library only.
"""

import hashlib
import json
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FIXTURES = os.path.normpath(os.path.join(HERE, "..", "..", "testdata", "unixfs", "fixtures.json"))

SHA_PREFIX = b"vouch-fixture"
BLOCK = 32  # bytes per SHA-256 output


def load(path=DEFAULT_FIXTURES):
    with open(path, encoding="utf-8") as f:
        fixtures = json.load(f)
    by_name = {}
    for fx in fixtures:
        if fx["name"] in by_name:
            raise ValueError("duplicate fixture name %r" % fx["name"])
        by_name[fx["name"]] = fx
    return fixtures, by_name


def sha_stream(seed, length):
    """Yield the bytes of {"gen":"sha","seed":seed,"len":length} in pieces."""
    counter = 0
    remaining = length
    head = SHA_PREFIX + struct.pack("<Q", seed)
    piece = 1 << 20  # produce ~1 MiB at a time
    while remaining > 0:
        n = min(piece, remaining)
        nblocks = (n + BLOCK - 1) // BLOCK
        out = bytearray()
        for c in range(counter, counter + nblocks):
            out += hashlib.sha256(head + struct.pack("<Q", c)).digest()
        counter += nblocks
        yield bytes(out[:n])
        remaining -= n


def file_stream(spec):
    gen = spec["gen"]
    if gen == "sha":
        yield from sha_stream(int(spec["seed"]), int(spec["len"]))
    elif gen == "zeros":
        remaining = int(spec["len"])
        z = bytes(1 << 20)
        while remaining > 0:
            n = min(len(z), remaining)
            yield z[:n]
            remaining -= n
    elif gen == "text":
        yield spec["text"].encode("utf-8")
    else:
        raise ValueError("unknown gen %r" % gen)


def file_bytes(spec):
    """Whole content of a file spec (only for small files)."""
    return b"".join(file_stream(spec))


def file_len(spec):
    if spec["gen"] == "text":
        return len(spec["text"].encode("utf-8"))
    return int(spec["len"])


def dir_entries(spec):
    """Return {name: child_spec} for a directory spec ("dir" and/or "dir_gen")."""
    entries = {}
    gens = spec.get("dir_gen")
    if gens is not None:
        for g in (gens if isinstance(gens, list) else [gens]):
            f = g["file"] if "file" in g else g["entry"]
            for i in range(int(g["count"])):
                name = "%s%0*d" % (g["prefix"], int(g["width"]), i)
                if f.get("gen") == "sha" and "seed_base" in f:
                    child = {"gen": "sha", "seed": int(f["seed_base"]) + i, "len": int(f["len"])}
                else:
                    child = f  # any other spec is used as-is for every entry
                if name in entries:
                    raise ValueError("duplicate generated name %r" % name)
                entries[name] = child
    for name, child in spec.get("dir", {}).items():
        if name in entries:
            raise ValueError("duplicate name %r" % name)
        entries[name] = child
    for name in entries:
        if name in ("", ".", "..") or "/" in name or "\0" in name:
            raise ValueError("invalid entry name %r" % name)
    return entries


def kind(spec):
    if "gen" in spec:
        return "file"
    if "symlink" in spec:
        return "symlink"
    if "dir" in spec or "dir_gen" in spec:
        return "dir"
    raise ValueError("unknown spec %r" % (spec,))


def total_bytes(spec):
    k = kind(spec)
    if k == "file":
        return file_len(spec)
    if k == "symlink":
        return 0
    return sum(total_bytes(c) for c in dir_entries(spec).values())


def remove(path):
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def write(spec, path):
    k = kind(spec)
    if k == "file":
        with open(path, "wb") as f:
            for piece in file_stream(spec):
                f.write(piece)
    elif k == "symlink":
        os.symlink(spec["symlink"], path)
    else:
        os.mkdir(path)
        for name, child in sorted(dir_entries(spec).items()):
            write(child, os.path.join(path, name))


def materialise(outdir, names=None, fixtures_path=DEFAULT_FIXTURES, skip_tags=("huge",), if_missing=False):
    fixtures, by_name = load(fixtures_path)
    if names:
        missing = [n for n in names if n not in by_name]
        if missing:
            raise SystemExit("unknown fixture(s): %s" % ", ".join(missing))
        chosen = [by_name[n] for n in names]
    else:
        chosen = [fx for fx in fixtures if not set(fx.get("tags", [])) & set(skip_tags)]
    os.makedirs(outdir, exist_ok=True)
    written = []
    for fx in chosen:
        path = os.path.join(outdir, fx["name"])
        if if_missing and os.path.lexists(path):
            written.append(path)
            continue
        remove(path)
        tmp = path + ".tmp-fixture"
        remove(tmp)
        write(fx["spec"], tmp)
        os.rename(tmp, path)
        written.append(path)
    return written


def main(argv):
    args = list(argv)
    fixtures_path = DEFAULT_FIXTURES
    skip = ["huge"]
    if_missing = False
    positional = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--fixtures":
            fixtures_path = args[i + 1]; i += 2; continue
        if a == "--skip-tag":
            skip.append(args[i + 1]); i += 2; continue
        if a == "--if-missing":
            if_missing = True; i += 1; continue
        if a == "--list":
            fixtures, _ = load(fixtures_path)
            for fx in fixtures:
                print("%s\t%s\t%d\t%s" % (fx["name"], kind(fx["spec"]), total_bytes(fx["spec"]), ",".join(fx.get("tags", []))))
            return 0
        if a in ("-h", "--help"):
            print(__doc__)
            return 0
        positional.append(a); i += 1
    if not positional:
        print(__doc__, file=sys.stderr)
        return 2
    outdir, names = positional[0], positional[1:]
    for p in materialise(outdir, names, fixtures_path, skip, if_missing):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
