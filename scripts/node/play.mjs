// play.mjs: open one page in headless Chromium and report what the page decided.
//
//   node scripts/node/play.mjs URL [timeoutMs=40000]
//
// The page under test sets window.__result = {currentTime, decodedFrames, error, errorCode}
// when it is done (see internal/interop/pages.go). This script waits for that, then prints
// exactly one JSON line on stdout:
//
//   {"currentTime":5.01,"decodedFrames":121,"error":"","errorCode":0,"logs":["..."]}
//
// On a page-side timeout it still prints a line, with error set and whatever the <video>
// element reached. If Chromium itself cannot be started it prints {"harnessError": "..."}
// and exits 2, so callers can tell "the player failed" from "the kit is broken".
//
// Chromium is the system one (SEALMESH_CHROMIUM, default /usr/bin/chromium), never a
// browser that Playwright downloads. Each run gets a fresh, empty profile directory.
import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const url = process.argv[2];
const timeoutMs = Number(process.argv[3] || 40000);
if (!url) {
  console.error('usage: node play.mjs URL [timeoutMs]');
  process.exit(64);
}
const executablePath = process.env.SEALMESH_CHROMIUM || '/usr/bin/chromium';

const logs = [];
const log = (s) => { if (logs.length < 500) logs.push(String(s).slice(0, 2000)); };

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const profile = await mkdtemp(join(tmpdir(), 'sealmesh-chromium-'));
let ctx;
let exitCode = 0;
try {
  try {
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      timeout: 60000,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--autoplay-policy=no-user-gesture-required',
      ],
    });
  } catch (e) {
    emit({ harnessError: `launch ${executablePath}: ${e && e.message ? e.message : e}`, logs });
    exitCode = 2;
  }
  if (ctx) {
    const page = ctx.pages()[0] || (await ctx.newPage());
    page.on('console', (m) => log(`console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log(`pageerror: ${e.message}`));
    page.on('requestfailed', (r) => log(`requestfailed: ${r.method()} ${r.url()}: ${r.failure() && r.failure().errorText}`));
    page.on('response', (r) => { if (r.status() >= 400) log(`http ${r.status()}: ${r.request().method()} ${r.url()}`); });

    let result;
    try {
      await page.goto(url, { timeout: timeoutMs });
      await page.waitForFunction(() => window.__result !== undefined, null, { timeout: timeoutMs, polling: 100 });
      result = await page.evaluate(() => window.__result);
    } catch (e) {
      const state = await page.evaluate(() => {
        const v = document.querySelector('video');
        if (!v) return { currentTime: 0, decodedFrames: 0 };
        const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : { totalVideoFrames: 0 };
        return { currentTime: v.currentTime, decodedFrames: q.totalVideoFrames };
      }).catch(() => ({ currentTime: 0, decodedFrames: 0 }));
      result = { ...state, error: `play.mjs: no window.__result within ${timeoutMs} ms: ${e && e.message ? e.message.split('\n')[0] : e}`, errorCode: -3 };
    }
    emit({
      currentTime: Number(result.currentTime) || 0,
      decodedFrames: Number(result.decodedFrames) || 0,
      error: result.error ? String(result.error) : '',
      errorCode: Number(result.errorCode) || 0,
      logs,
    });
  }
} finally {
  if (ctx) await ctx.close().catch(() => {});
  await rm(profile, { recursive: true, force: true }).catch(() => {});
}
process.exit(exitCode);
