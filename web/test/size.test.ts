import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'

// The budget for the whole page-side bundle (libp2p, WebTransport,
// Noise, yamux and our code): 250 KB gzipped.
const BUDGET = 250 * 1024

test('bundle is one ESM file under the gzipped size budget', () => {
  const js = readFileSync(new URL('../../dist/sealmesh-web.js', import.meta.url))
  const gz = gzipSync(js, { level: 9 }).length
  console.log(`dist/sealmesh-web.js: ${js.length} bytes, ${gz} gzipped (budget ${BUDGET})`)
  assert.ok(gz <= BUDGET, `bundle is ${gz} bytes gzipped, over the ${BUDGET} budget`)
  assert.match(js.toString('utf8'), /export\s*\{/, 'bundle is an ES module')
})
