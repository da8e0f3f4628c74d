import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'

import { fromHex, hex, utf8 } from '../src/bytes.js'
import { IntegrityError, ManifestError, checkFile, envelopeSpans, haveDigest, verifyManifest } from '../src/manifest.js'

// The fixture is written by segment.SignManifest (go run ./web/testdata/gen).
const dir = new URL('../../testdata/manifest/', import.meta.url)
const data = new Uint8Array(readFileSync(new URL('sealmesh.json', dir)))
const key = JSON.parse(readFileSync(new URL('key.json', dir), 'utf8')) as { key_id: string, public_hex: string, digest: string, have_digest: string }
const trusted = { [key.key_id]: fromHex(key.public_hex) }

test('a Go-signed manifest verifies over its exact bytes, with Go\'s digests', async () => {
  const m = await verifyManifest(data, trusted)
  assert.equal(m.body.content_id, 'web-fixture')
  assert.equal(m.digest, key.digest, 'SHA-256 of the signed bytes, as segment.Manifest.Digest')
  assert.equal(hex(await haveDigest(m)), key.have_digest, 'have-protocol digest, as transport computes it')
  assert.deepEqual(m.files.map(f => f.path), ['v0/init.mp4', 'v0/seg-1.m4s', 'v0/seg-2.m4s'])
  for (const f of m.files) {
    const bytes = new Uint8Array(readFileSync(new URL(f.path, dir)))
    await checkFile(f, bytes)
    const flipped = bytes.slice()
    flipped[flipped.length - 1] = (flipped[flipped.length - 1] ?? 0) ^ 1
    await assert.rejects(checkFile(f, flipped), IntegrityError, 'flipped bit')
    await assert.rejects(checkFile(f, bytes.subarray(1)), IntegrityError, 'short')
  }
})

test('JSON.parse loses the signed bytes: a re-encoded manifest does not verify', async () => {
  const reencoded = utf8.encode(JSON.stringify(JSON.parse(new TextDecoder().decode(data)), null, 2))
  await assert.rejects(verifyManifest(reencoded, trusted), (e: unknown) => e instanceof ManifestError && e.kind === 'signature')
})

test('tampered, untrusted or odd envelopes are refused', async () => {
  const text = new TextDecoder().decode(data)
  const sub = (from: string, to: string): Uint8Array => {
    assert.ok(text.includes(from), from)
    return utf8.encode(text.replace(from, to))
  }
  const cases: Array<[string, Uint8Array, 'malformed' | 'signature']> = [
    ['size changed', sub('"size": 70000', '"size": 70001'), 'signature'],
    ['hash changed', sub('"sha256": "', '"sha256": "0'), 'signature'],
    ['whitespace inside the body', sub('"version": 1', '"version":  1'), 'signature'],
    ['untrusted key ID', sub(`"key_id": "${key.key_id}"`, '"key_id": "other"'), 'signature'],
    ['prototype key ID', sub(`"key_id": "${key.key_id}"`, '"key_id": "__proto__"'), 'signature'],
    ['extra member', sub('{\n  "manifest"', '{\n  "extra": 1,\n  "manifest"'), 'malformed'],
    ['duplicate member', sub('{\n  "manifest"', '{\n  "key_id": "x",\n  "manifest"'), 'malformed'],
    ['trailing data', utf8.encode(text + '{}'), 'malformed'],
    ['not JSON', utf8.encode('nope'), 'malformed'],
    ['truncated', data.subarray(0, data.length - 10), 'malformed'],
    ['bad signature encoding', sub('"signature": "', '"signature": "!'), 'malformed']
  ]
  for (const [name, d, kind] of cases) {
    await assert.rejects(verifyManifest(d, trusted), (e: unknown) => {
      assert.ok(e instanceof ManifestError, `${name}: ${String(e)}`)
      assert.equal(e.kind, kind, `${name}: ${e.message}`)
      return true
    }, name)
  }
  await assert.rejects(verifyManifest(data, {}), ManifestError, 'no trusted keys')
})

test('the scanner finds member spans across nesting and escapes', () => {
  const s = utf8.encode(' {"a" : {"x":["}",{"y":"\\"]"}]} , "b":1 ,"c":"\\u0041"} ')
  const spans = envelopeSpans(s)
  const at = (k: string): string => { const [a, b] = spans.get(k) ?? [0, 0]; return new TextDecoder().decode(s.subarray(a, b)) }
  assert.equal(at('a'), '{"x":["}",{"y":"\\"]"}]}')
  assert.equal(at('b'), '1')
  assert.equal(at('c'), '"\\u0041"')
  for (const bad of ['{"a":[}', '{"a":1', '{"a" 1}', '{}', '{"a":1,}', '[1]']) {
    assert.throws(() => envelopeSpans(utf8.encode(bad)), ManifestError, bad)
  }
})

test('a validly signed body is still validated', async () => {
  const kp = await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']) as CryptoKeyPair
  const pub = new Uint8Array(await crypto.subtle.exportKey('raw', kp.publicKey))
  const sign = async (body: string, keyID: string): Promise<Uint8Array> => {
    const msg = utf8.encode('sealmesh manifest v1\x00' + body)
    const sig = Buffer.from(await crypto.subtle.sign({ name: 'Ed25519' }, kp.privateKey, msg)).toString('base64')
    return utf8.encode(`{"manifest":${body},"key_id":${JSON.stringify(keyID)},"signature":"${sig}"}`)
  }
  const file = (p: string): string => `{"path":"${p}","kind":"media","period":0,"size":1,"sha256":"${'a'.repeat(64)}"}`
  const body = (over: Record<string, unknown>): string => JSON.stringify({ version: 1, content_id: 'c', signing_key_id: 'k', renditions: [{ id: 'v', type: 'video', files: [JSON.parse(file('v/1'))] }], ...over })
  const ok = await verifyManifest(await sign(body({}), 'k'), { k: pub })
  assert.equal(ok.files.length, 1)
  const bad: Array<[string, string]> = [
    ['key ID inside differs', body({ signing_key_id: 'other' })],
    ['bad content ID', body({ content_id: '../c' })],
    ['no renditions', body({ renditions: [] })],
    ['path escapes', body({ renditions: [{ id: 'v', files: [JSON.parse(file('../x'))] }] })],
    ['path twice', body({ renditions: [{ id: 'v', files: [JSON.parse(file('a')), JSON.parse(file('a'))] }] })],
    ['not an object', '[1]']
  ]
  for (const [name, b] of bad) {
    await assert.rejects(verifyManifest(await sign(b, 'k'), { k: pub }), (e: unknown) => e instanceof ManifestError && e.kind === 'malformed', name)
  }
})
