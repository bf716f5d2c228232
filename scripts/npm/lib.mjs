// Shared helpers for scripts/npm/*.mjs.
//
// The npm packages live in target/npm/node_modules (installed by scripts/npm/setup.sh),
// not next to these scripts, so bare imports cannot be used: npmImport() resolves a
// package subpath through that package's "exports" map and imports the file directly.
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

export const SCRIPTS_DIR = path.dirname(fileURLToPath(import.meta.url))
export const REPO_ROOT = path.resolve(SCRIPTS_DIR, '..', '..')
export const NPM_DIR = process.env.VOUCH_NPM_DIR ?? path.join(REPO_ROOT, 'target', 'npm')
export const TESTDATA = path.join(REPO_ROOT, 'testdata')
export const FIXTURES_JSON = path.join(TESTDATA, 'unixfs', 'fixtures.json')

function pickTarget (t) {
  if (typeof t === 'string') return t
  if (t == null) return undefined
  return pickTarget(t.node) ?? pickTarget(t.import) ?? pickTarget(t.default)
}

export async function npmImport (spec) {
  const parts = spec.split('/')
  const n = spec.startsWith('@') ? 2 : 1
  const pkg = parts.slice(0, n).join('/')
  const sub = parts.length > n ? './' + parts.slice(n).join('/') : '.'
  const pkgDir = path.join(NPM_DIR, 'node_modules', pkg)
  const pj = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'))
  let target
  if (pj.exports != null) {
    const subpathMap = typeof pj.exports === 'object' && Object.keys(pj.exports).some(k => k.startsWith('.'))
    if (subpathMap) target = pickTarget(pj.exports[sub])
    else if (sub === '.') target = pickTarget(pj.exports)
  }
  if (target == null && sub === '.') target = pj.module ?? pj.main ?? 'index.js'
  if (target == null) throw new Error(`cannot resolve ${spec} in ${pkgDir} (run scripts/npm/setup.sh)`)
  return import(pathToFileURL(path.join(pkgDir, target)).href)
}

export function npmVersions (names) {
  const out = {}
  for (const n of names) {
    out[n] = JSON.parse(fs.readFileSync(path.join(NPM_DIR, 'node_modules', n, 'package.json'), 'utf8')).version
  }
  return out
}

export function loadFixtures () {
  return JSON.parse(fs.readFileSync(FIXTURES_JSON, 'utf8'))
}

/** Materialise fixtures (if missing) with the one reference generator, scripts/kubo/fixtures.py. */
export function materialise (dir, names) {
  execFileSync('python3', [path.join(REPO_ROOT, 'scripts', 'kubo', 'fixtures.py'), '--if-missing', dir, ...names], { stdio: ['ignore', 'ignore', 'inherit'] })
}

async function * readFile (p) {
  // fs streams yield Buffers (Uint8Array subclasses) of 64 KiB
  for await (const chunk of fs.createReadStream(p, { highWaterMark: 1 << 20 })) yield chunk
}

/**
 * Import candidates for fixture NAME materialised under DIR, exactly as Kubo's
 * files.NewSerialFile(path, hidden=true) walks it: every entry (hidden ones too),
 * symlinks recorded as symlinks (never followed), empty directories kept.
 * The top-level path is followed if it is a symlink (like AddFile's os.Open).
 */
export function * candidates (dir, name) {
  const top = path.join(dir, name)
  const st = fs.statSync(top)
  if (!st.isDirectory()) {
    yield { path: name, content: readFile(top) }
    return
  }
  function * walk (rel) {
    const abs = path.join(dir, rel)
    yield { path: rel }
    const names = fs.readdirSync(abs).sort()
    for (const n of names) {
      const r = rel + '/' + n
      const a = path.join(dir, r)
      const l = fs.lstatSync(a)
      if (l.isSymbolicLink()) yield { path: r, link: fs.readlinkSync(a) }
      else if (l.isDirectory()) yield * walk(r)
      else if (l.isFile()) yield { path: r, content: readFile(a) }
      else throw new Error(`unsupported file type: ${a}`)
    }
  }
  yield * walk(name)
}

/** A write-only blockstore that keeps nothing (for CID-only runs of big fixtures). */
export const nullBlockstore = { put: async (cid) => cid }

/**
 * Named option sets.  `options` is what gets recorded in the JSON (importer option
 * names; `chunker` as a Kubo chunker string, `maxChildrenPerNode` for the balanced
 * layout); build(mods) turns it into real ipfs-unixfs-importer options.
 */
export const KUBO_DEFAULTS = {
  cidVersion: 0,
  rawLeaves: false,
  chunker: 'size-262144',
  layout: 'balanced',
  maxChildrenPerNode: 174,
  shardSplitThresholdBytes: 262144,
  shardSplitStrategy: 'links-bytes',
  wrapWithDirectory: false
}

export const OPTION_SETS = {
  // (a) plain `ipfs add` (Kubo defaults, CIDv0)
  'kubo-defaults': { kubo: 'ipfs add', options: { ...KUBO_DEFAULTS } },
  // (b) `ipfs add --cid-version 1` (implies --raw-leaves)
  'kubo-cid-v1': { kubo: 'ipfs add --cid-version 1', options: { ...KUBO_DEFAULTS, cidVersion: 1, rawLeaves: true } },
  // (c) `ipfs add --raw-leaves` (CIDv0 nodes, CIDv1 raw leaves)
  'kubo-raw-leaves': { kubo: 'ipfs add --raw-leaves', options: { ...KUBO_DEFAULTS, rawLeaves: true } },
  // (d) `ipfs add --chunker size-1048576`
  'kubo-chunker-1mib': { kubo: 'ipfs add --chunker size-1048576', options: { ...KUBO_DEFAULTS, chunker: 'size-1048576' } },
  // (e) IPIP-499 profiles, exactly as the importer implements them
  'profile-unixfs-v0-2015': { kubo: null, options: { profile: 'unixfs-v0-2015' } },
  'profile-unixfs-v1-2025': { kubo: null, options: { profile: 'unixfs-v1-2025' } },
  // (f) `ipfs add -w` / `ipfs add -r -w`
  'kubo-wrap': { kubo: 'ipfs add -w', options: { ...KUBO_DEFAULTS, wrapWithDirectory: true } }
}

export async function buildImporterOptions (recorded) {
  const { fixedSize } = await npmImport('ipfs-unixfs-importer/chunker')
  const { balanced } = await npmImport('ipfs-unixfs-importer/layout')
  const o = { ...recorded }
  if (typeof o.chunker === 'string') {
    const m = /^size-(\d+)$/.exec(o.chunker)
    if (m == null) throw new Error(`unsupported chunker ${o.chunker}`)
    o.chunker = fixedSize({ chunkSize: Number(m[1]) })
  }
  if (o.layout === 'balanced') {
    o.layout = balanced({ maxChildrenPerNode: o.maxChildrenPerNode ?? 174 })
  } else if (o.layout != null) {
    throw new Error(`unsupported layout ${o.layout}`)
  }
  delete o.maxChildrenPerNode
  // deterministic: import one file at a time (the result does not depend on it, but
  // it keeps memory flat for the big fixtures)
  o.fileImportConcurrency = 1
  return o
}

/** Import fixture NAME from DIR; returns { cid, size, entries }. */
export async function importFixture (dir, name, recordedOptions, blockstore = nullBlockstore) {
  const { importer } = await npmImport('ipfs-unixfs-importer')
  const opts = await buildImporterOptions(recordedOptions)
  const entries = []
  for await (const e of importer(candidates(dir, name), blockstore, opts)) entries.push(e)
  const want = opts.wrapWithDirectory === true ? '' : name
  const roots = entries.filter(e => (e.path ?? '') === want)
  if (roots.length !== 1) throw new Error(`${name}: expected one root entry with path ${JSON.stringify(want)}, got ${JSON.stringify(entries.map(e => e.path).slice(-5))}`)
  return { cid: roots[0].cid, size: roots[0].size, entries }
}

/** Every block of the DAG under root, depth-first pre-order, each block once. */
export async function * dfsBlocks (root, get) {
  const dagPb = await npmImport('@ipld/dag-pb')
  const seen = new Set()
  async function * visit (cid) {
    const key = cid.toString()
    if (seen.has(key)) return
    seen.add(key)
    const bytes = await get(cid)
    yield { cid, bytes }
    if (cid.code === dagPb.code) {
      for (const l of dagPb.decode(bytes).Links) yield * visit(l.Hash)
    }
  }
  yield * visit(root)
}

export function toHex (u8) {
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString('hex')
}

export async function collect (it) {
  const out = []
  for await (const x of it) out.push(x)
  return out
}
