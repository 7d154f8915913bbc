#!/usr/bin/env node
// page.mjs — open a Sluice status page in Debian's headless Chromium, driven
// by playwright-core, optionally play one channel with one of its buttons,
// and report what the page shows.
//
//   node web/test/page.mjs <status-page-url> <seconds> [<point> <dash|hls|mss>]
//
// The page is opened and, when a point and a kind are given, that point's
// play button for the kind is clicked; after <seconds> one JSON object is
// printed on stdout: {"text": the page's visible text, "readout": the player
// readout, "console": every console message and page error as "type: text"}.
// Exit status 0, or 2 when the browser could not run.
//
//   node web/test/page.mjs --pages <seconds> <url>=<screenshot.png> ...
//
// With --pages, every page is opened at once, each in its own tab of one
// browser (one browser start for several status pages), and after
// <seconds> a JSON array is printed: one report as above per page, in the
// order given, with its "url"; each page's screenshot is written to the
// path after its last "=" (SLUICE_SCREENSHOT is not used).
//
// Environment:
//   SLUICE_CHROMIUM       browser binary (default /usr/bin/chromium)
//   SLUICE_SCREENSHOT     write a PNG screenshot of the whole page here
//   SLUICE_CHROMIUM_ARGS  extra browser flags, separated by spaces
import { chromium } from 'playwright-core';

const usage = 'usage: node page.mjs <status-page-url> <seconds> [<point> <dash|hls|mss>]\n' +
  '       node page.mjs --pages <seconds> <url>=<screenshot.png> ...';
const multi = process.argv[2] === '--pages';
const [url, secs, point, kind] = multi ? [null, process.argv[3]] : process.argv.slice(2);
const pages = multi ? process.argv.slice(4).map((a) => {
  const i = a.lastIndexOf('=');
  return i > 0 ? { url: a.slice(0, i), shot: a.slice(i + 1) } : null;
}) : [];
if (multi ? (!secs || pages.length === 0 || pages.includes(null)) : (!url || !secs)) {
  console.error(usage);
  process.exit(2);
}
let browser;
try {
  browser = await chromium.launch({
    executablePath: process.env.SLUICE_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 60000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required', '--mute-audio',
      ...(process.env.SLUICE_CHROMIUM_ARGS || '').split(' ').filter(Boolean)],
  });
} catch (e) {
  console.error(`page.mjs: cannot start chromium: ${e.message}`);
  process.exit(2);
}
if (multi) {
  // Every page at once, each in its own tab; one report each.
  try {
    const reports = await Promise.all(pages.map(async (p) => {
      const r = { url: p.url, text: '', readout: '', console: [] };
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      page.on('console', (m) => r.console.push(`${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => r.console.push(`pageerror: ${e.message}`));
      await page.goto(p.url, { waitUntil: 'load', timeout: 60000 });
      await page.waitForTimeout(Number(secs) * 1000);
      r.text = await page.evaluate(() => document.body.innerText);
      r.readout = await page.evaluate(() => (document.getElementById('readout') || {}).innerText || '');
      await page.screenshot({ path: p.shot, fullPage: true });
      return r;
    }));
    await browser.close();
    console.log(JSON.stringify(reports));
  } catch (e) {
    console.error(`page.mjs: ${e.message}`);
    await browser.close();
    process.exit(2);
  }
  process.exit(0);
}
const out = { text: '', readout: '', console: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('console', (m) => out.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => out.console.push(`pageerror: ${e.message}`));
  await page.goto(url, { waitUntil: 'load', timeout: 60000 });
  if (point && kind) {
    await page.click(`button[data-kind="${kind}"][data-name="${point}"]`, { timeout: 30000 });
  }
  await page.waitForTimeout(Number(secs) * 1000);
  out.text = await page.evaluate(() => document.body.innerText);
  out.readout = await page.evaluate(() => (document.getElementById('readout') || {}).innerText || '');
  if (process.env.SLUICE_SCREENSHOT) {
    await page.screenshot({ path: process.env.SLUICE_SCREENSHOT, fullPage: true });
  }
} catch (e) {
  console.error(`page.mjs: ${e.message}`);
  await browser.close();
  process.exit(2);
}
await browser.close();
console.log(JSON.stringify(out));
