// webpeer.mjs: open one page in headless Chromium with QUIC enabled (WebTransport needs
// it) and print the page's window.__result as one JSON line.
//
//   node scripts/node/webpeer.mjs URL [timeoutMs=30000]
//
// Used by the browser-peer tests (internal/browserpeer): the page loads @sealmesh/web,
// dials a Go seed over WebTransport and reports what it got. Unlike play.mjs it does not
// pass --disable-quic. On a timeout it prints {"error": "timeout", "logs": [...]}; if
// Chromium cannot be started it prints {"harnessError": "..."} and exits 2.
import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const url = process.argv[2];
const timeoutMs = Number(process.argv[3] || 30000);
if (!url) {
  console.error('usage: node webpeer.mjs URL [timeoutMs]');
  process.exit(64);
}
const executablePath = process.env.SEALMESH_CHROMIUM || '/usr/bin/chromium';
const logs = [];
const log = (s) => { if (logs.length < 500) logs.push(String(s).slice(0, 2000)); };
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const profile = await mkdtemp(join(tmpdir(), 'sealmesh-webpeer-'));
let ctx;
let exitCode = 0;
try {
  try {
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      timeout: 60000,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  } catch (e) {
    emit({ harnessError: `launch ${executablePath}: ${e && e.message ? e.message : e}`, logs });
    exitCode = 2;
  }
  if (ctx) {
    const page = ctx.pages()[0] || (await ctx.newPage());
    page.on('console', (m) => log(`console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log(`pageerror: ${e.message}`));
    try {
      await page.goto(url, { timeout: timeoutMs });
      await page.waitForFunction(() => window.__result !== undefined, null, { timeout: timeoutMs, polling: 50 });
      emit({ ...(await page.evaluate(() => window.__result)), logs });
    } catch (e) {
      emit({ error: `timeout: ${e && e.message ? e.message : e}`, logs });
    }
  }
} finally {
  if (ctx) await ctx.close().catch(() => {});
  await rm(profile, { recursive: true, force: true }).catch(() => {});
}
process.exit(exitCode);
