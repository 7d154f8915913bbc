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
// Environment:
//   SLUICE_CHROMIUM       browser binary (default /usr/bin/chromium)
//   SLUICE_SCREENSHOT     write a PNG screenshot of the whole page here
//   SLUICE_CHROMIUM_ARGS  extra browser flags, separated by spaces
import { chromium } from 'playwright-core';

const [url, secs, point, kind] = process.argv.slice(2);
if (!url || !secs) {
  console.error('usage: node page.mjs <status-page-url> <seconds> [<point> <dash|hls|mss>]');
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
