#!/usr/bin/env node
// mse.mjs — ask Debian's headless Chromium, driven by playwright-core,
// which media types its Media Source Extensions accept.
//
//   node web/test/mse.mjs <page-url> <mime type> ...
//
// The page is opened (any page of the server under test, so that the
// question is asked in the context players run in) and
// MediaSource.isTypeSupported(type) is evaluated for every type, e.g.
// 'video/mp4; codecs="av01.0.00M.08"'. One JSON object is printed on
// stdout, {"<type>": true|false, ...}; exit status 0, or 2 when the browser
// could not run.
//
// Environment:
//   SLUICE_CHROMIUM       browser binary (default /usr/bin/chromium)
//   SLUICE_CHROMIUM_ARGS  extra browser flags, separated by spaces
import { chromium } from 'playwright-core';

const [url, ...types] = process.argv.slice(2);
if (!url || types.length === 0) {
  console.error('usage: node mse.mjs <page-url> <mime type> ...');
  process.exit(2);
}
let browser;
try {
  browser = await chromium.launch({
    executablePath: process.env.SLUICE_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      ...(process.env.SLUICE_CHROMIUM_ARGS || '').split(' ').filter((a) => a !== '')],
    timeout: 60000,
  });
  const page = await browser.newPage();
  await page.goto(url, { timeout: 60000 });
  const out = await page.evaluate((ts) => Object.fromEntries(ts.map((t) => [t, MediaSource.isTypeSupported(t)])), types);
  process.stdout.write(JSON.stringify(out) + '\n');
} catch (e) {
  console.error(`mse.mjs: ${e.message}`);
  process.exitCode = 2;
} finally {
  if (browser) await browser.close();
}
