#!/usr/bin/env node
// Write CARv1 files with @ipld/car's CarWriter (an implementation other than Vouch's):
//
//   testdata/car/js-written.car        the full DAG of fixture `nested` (Kubo defaults, CIDv0)
//   testdata/car/js-written-2roots.car two DAGs, two roots (a CIDv1 and a CIDv0 one)
//   testdata/car/js-written*.json      what they contain
//
//   node scripts/npm/car.mjs [--fixtures-dir target/fixtures]
//
// Blocks are written depth-first (pre-order: a node, then each of its links in link
// order, recursively), each block once, roots one after another.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { OPTION_SETS, KUBO_DEFAULTS, REPO_ROOT, TESTDATA, materialise, importFixture, dfsBlocks, collect, npmImport, npmVersions } from './lib.mjs'

const args = process.argv.slice(2)
let fixturesDir = path.join(REPO_ROOT, 'target', 'fixtures')
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--fixtures-dir') fixturesDir = path.resolve(args[++i])
  else throw new Error(`unknown argument ${args[i]}`)
}

const { CarWriter } = await npmImport('@ipld/car/writer')
const { CarReader } = await npmImport('@ipld/car/reader')
const { MemoryBlockstore } = await npmImport('blockstore-core/memory')

async function getter (bs) {
  return async (c) => {
    const v = await bs.get(c)
    return v instanceof Uint8Array ? v : Buffer.concat(await collect(v))
  }
}

async function writeCar (name, dags) {
  const bs = new MemoryBlockstore()
  const roots = []
  for (const d of dags) {
    const { cid } = await importFixture(fixturesDir, d.fixture, d.options, bs)
    if (d.expect != null && cid.toString() !== d.expect) throw new Error(`${d.fixture}: got ${cid}, expected ${d.expect}`)
    roots.push(cid)
    d.root = cid.toString()
  }
  const { writer, out } = CarWriter.create(roots)
  const bytesP = collect(out)
  const order = []
  const seen = new Set()
  const get = await getter(bs)
  for (const r of roots) {
    for await (const { cid, bytes } of dfsBlocks(r, get)) {
      if (seen.has(cid.toString())) continue
      seen.add(cid.toString())
      order.push(cid.toString())
      await writer.put({ cid, bytes })
    }
  }
  await writer.close()
  const car = Buffer.concat(await bytesP)
  const file = path.join(TESTDATA, 'car', name + '.car')
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, car)

  // read it back with the library's own reader as a sanity check
  const reader = await CarReader.fromBytes(car)
  const back = (await reader.getRoots()).map(String)
  if (JSON.stringify(back) !== JSON.stringify(roots.map(String))) throw new Error('roots did not round-trip')
  let n = 0
  for await (const _ of reader.blocks()) n++ // eslint-disable-line no-unused-vars
  if (n !== order.length) throw new Error('block count did not round-trip')

  const meta = {
    file: `testdata/car/${name}.car`,
    car_version: 1,
    bytes: car.length,
    roots: roots.map(String),
    blocks: order.length,
    block_order: 'dfs-preorder per root, roots in header order, duplicates skipped',
    block_cids: order,
    dags: dags.map(d => ({ fixture: d.fixture, set: d.set, options: d.options, root: d.root })),
    generator: 'scripts/npm/car.mjs',
    packages: npmVersions(['@ipld/car', 'ipfs-unixfs-importer', '@ipld/dag-pb', 'multiformats'])
  }
  fs.writeFileSync(path.join(TESTDATA, 'car', name + '.json'), JSON.stringify(meta, null, 1) + '\n')
  console.log(`${name}.car: ${car.length} bytes, ${order.length} blocks, roots ${meta.roots.join(' ')}`)
}

materialise(fixturesDir, ['nested', 'dir_two_files', 'small_3chunk'])
await writeCar('js-written', [
  { fixture: 'nested', set: 'kubo-defaults', options: OPTION_SETS['kubo-defaults'].options, expect: 'QmfGjnL1WBhpfCRzTgfaF3hoUBU6sry8qqST7HpqiHbqqb' }
])
await writeCar('js-written-2roots', [
  { fixture: 'dir_two_files', set: 'kubo-cid-v1', options: OPTION_SETS['kubo-cid-v1'].options },
  { fixture: 'small_3chunk', set: 'size-1000', options: { ...KUBO_DEFAULTS, chunker: 'size-1000' } }
])
