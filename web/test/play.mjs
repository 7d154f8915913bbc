#!/usr/bin/env node
// play.mjs — play one manifest in Debian's headless Chromium, driven by
// playwright-core, and report what the player did.
//
//   node web/test/play.mjs [--dash-settings=JSON] [--player-config=JSON] [--mse-types=JSON] [--until-ended] [--text-cues] [--markers] [--protocols] <page-or-manifest-url> <dash|mss|hls|shaka> <seconds> [min-advance]
//
// The first argument is either a Sluice /play page URL
// (http://host/play?kind=dash&url=/live.isml/manifest.mpd) or a manifest URL
// (http://host/live.isml/manifest.mpd), in which case the /play page of the
// same host is used, or the status page with a publishing point as the
// fragment (http://host/#live), in which case the point's play button for
// the player kind is clicked. After playback starts, currentTime is sampled every
// second for <seconds> seconds. One JSON object is printed on stdout; the
// exit status is 0 when currentTime advanced by at least min-advance seconds
// (default 80 % of <seconds>) and the player reported no error, 1 on a
// playback failure, 2 on bad usage or when the browser could not run.
//
// Environment:
//   SLUICE_CHROMIUM       browser binary (default /usr/bin/chromium)
//   SLUICE_SCREENSHOT     write a PNG screenshot of the page here at the end
//   SLUICE_STARTED_FILE   create this file (its content: the media time) the
//                         moment playback has started, so a test can act on it
//   SLUICE_STARTUP_SECS   how long to wait for playback to start (default 30)
//   SLUICE_PLAY_VERBOSE   1: copy the page's console to stderr
//   SLUICE_DASH_SETTINGS  extra dash.js settings (JSON), like --dash-settings
//   SLUICE_CHROMIUM_ARGS  extra browser flags, separated by spaces
//   SLUICE_RECORD         1: like --record
//
// --record: every media segment and init segment the page received from a
// Sluice sender (a /b/<token>/... URL answered 200) is listed in the
// result's "fetched" array as {url, size, sha256, t} (t: when it arrived,
// Unix ms) of its body, so that a
// test can compare what the player got with the origin's bytes.
//
// --dash-settings=JSON (or SLUICE_DASH_SETTINGS) is passed to
// player.updateSettings() of every dash.js player the page creates, right
// after create(), e.g. CMCD in header mode:
//   --dash-settings='{"streaming":{"cmcd":{"enabled":true,"mode":"headers"}}}'
// (dash.js 5.2.1 wants mode "headers"; "header" silently means query mode).
//
// --until-ended plays a finished recording to its end: sampling stops as soon
// as the media element fires 'ended' (result.ended), and playback that has
// not ended after <seconds> is a failure. min-advance still applies.
//
// --mse-types=JSON (an array of media types) asks the page's
// MediaSource.isTypeSupported() about each, right after the page loads; the
// answers are the result's "typeSupported" object ({"<type>": true|false}),
// e.g. --mse-types='["video/mp4; codecs=\"av01.0.04M.08\""]'.
//
// --player-config=JSON (or SLUICE_PLAYER_CONFIG) is set as
// window.sluicePlayerConfig before the page loads; the player glue passes it
// to the player it creates: new Hls(config) for hls.js, player.configure()
// for Shaka Player, updateSettings() for dash.js. E.g. a 6 s buffer:
//   hls.js  {"maxBufferLength":6,"maxMaxBufferLength":6}
//   Shaka   {"streaming":{"bufferingGoal":6}}
//   dash.js {"streaming":{"buffer":{"bufferTimeDefault":6,"bufferTimeAtTopQuality":6}}}
//
// --text-cues adds to the result, as "textTracks", the video element's
// text tracks at the end of sampling, each with its kind, label,
// language, mode and cues ({start, end, text}, null while the track is
// disabled), and "playingDate"/"playingTime": the presentation time
// (Unix ms) the player maps currentTime (playingTime) to at that moment
// (hls.js, and Shaka Player while live). Enabling a text track is the player configuration's job,
// e.g. --player-config='{"subtitlePreference":{"lang":"en"}}' (hls.js),
// '{"preferredText":[{"language":"en"}]}' (Shaka Player); dash.js enables
// the first text track by default.
//
// --markers adds to the result, as "markers", the ad marker and timed
// metadata callbacks the player fired: dash.js events of the schemes
// urn:scte:scte35:2014:xml+bin and https://aomedia.org/emsg/ID3 (mode
// onReceive), hls.js EXT-X-DATERANGE (LEVEL_LOADED) and ID3 samples
// (FRAG_PARSING_METADATA), Shaka Player 'timelineregionadded' and
// 'metadata'; each {player, ev, scheme, t (media time, s), id, data (the
// message in hex), at}.
//
// --protocols adds to the result, as "resources", every request the page
// made that completed (the page itself first), in the order they started:
// {u: the URL's path and query, p: the protocol it went over, s: the HTTP
// status}, the Resource Timing nextHopProtocol ("h2" for HTTP/2,
// "http/1.1") and responseStatus, e.g. to check that a player got every
// part over HTTP/2. A request the player aborted has neither ("", 0). The page's Resource
// Timing buffer is raised to 50 000 entries (the default, 250, fills in a
// minute of low-latency playback).
import { chromium } from 'playwright-core';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function usage(msg) {
  console.error(`play.mjs: ${msg}\nusage: node play.mjs [--dash-settings=JSON] [--player-config=JSON] [--mse-types=JSON] [--until-ended] [--text-cues] [--markers] [--protocols] <play-page|manifest|status-page#point URL> <dash|mss|hls|shaka> <seconds> [min-advance]`);
  process.exit(2);
}

let dashSettings = process.env.SLUICE_DASH_SETTINGS || null;
let playerConfig = process.env.SLUICE_PLAYER_CONFIG || null;
let record = process.env.SLUICE_RECORD === '1';
let untilEnded = false;
let mseTypes = null;
let textCues = false;
let markers = false;
let protocols = false;
const positional = [];
for (const a of process.argv.slice(2)) {
  if (a === '--until-ended') untilEnded = true;
  else if (a.startsWith('--dash-settings=')) dashSettings = a.slice('--dash-settings='.length);
  else if (a.startsWith('--player-config=')) playerConfig = a.slice('--player-config='.length);
  else if (a === '--record') record = true;
  else if (a.startsWith('--mse-types=')) {
    try {
      mseTypes = JSON.parse(a.slice('--mse-types='.length));
    } catch (e) {
      usage(`--mse-types is not JSON: ${e.message}`);
    }
    if (!Array.isArray(mseTypes)) usage('--mse-types is not an array');
  }
  else if (a === '--text-cues') textCues = true;
  else if (a === '--markers') markers = true;
  else if (a === '--protocols') protocols = true;
  else positional.push(a);
}
if (dashSettings !== null) {
  try {
    dashSettings = JSON.parse(dashSettings);
  } catch (e) {
    usage(`--dash-settings is not JSON: ${e.message}`);
  }
}
if (playerConfig !== null) {
  try {
    playerConfig = JSON.parse(playerConfig);
  } catch (e) {
    usage(`--player-config is not JSON: ${e.message}`);
  }
}
const [target, kind, secondsArg, minArg] = positional;
if (!target || !kind || !secondsArg) usage('missing arguments');
if (!['dash', 'mss', 'hls', 'shaka'].includes(kind)) usage(`unknown player kind ${kind}`);
const seconds = Number(secondsArg);
if (!(seconds > 0 && seconds <= 3600)) usage('seconds must be in (0, 3600]');
const minAdvance = minArg === undefined ? seconds * 0.8 : Number(minArg);
const startupSecs = Number(process.env.SLUICE_STARTUP_SECS || 30);
const executablePath = process.env.SLUICE_CHROMIUM || '/usr/bin/chromium';
const verbose = process.env.SLUICE_PLAY_VERBOSE === '1';

let pageURL;
let clickPoint = null;
try {
  const u = new URL(target);
  if (u.pathname === '/play') {
    pageURL = u.href;
  } else if (u.pathname === '/') {
    // The status page: click the play button of the point named in the hash.
    clickPoint = decodeURIComponent(u.hash.slice(1));
    if (!clickPoint) usage('a status page URL needs the publishing point as #name');
    u.hash = '';
    pageURL = u.href;
  } else {
    pageURL = `${u.origin}/play?kind=${encodeURIComponent(kind)}&url=${encodeURIComponent(u.pathname + u.search)}`;
  }
} catch (e) {
  usage(`bad URL ${target}: ${e.message}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const result = {
  kind, page: pageURL, ok: false, startupSeconds: null, startTime: null, endTime: null,
  advanced: 0, sampledSeconds: 0, stalls: 0, underruns: 0, errors: [], warnings: [], pageErrors: [],
  width: 0, height: 0, totalFrames: 0, droppedFrames: 0, bitrates: [], bufferMin: null, bufferMax: null,
  latency: null, samples: [], failure: null,
};
if (dashSettings !== null) result.dashSettings = dashSettings;
if (playerConfig !== null) result.playerConfig = playerConfig;
if (untilEnded) { result.ended = false; result.duration = null; }

// Hard stop: whatever happens, never outlive startup + seconds + a margin.
// finish prints the result and exits once stdout has taken it all: a pipe
// takes a large write in pieces, and process.exit() would cut it.
function finish(code) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
}

const deadline = setTimeout(() => {
  result.failure = 'play.mjs overall timeout';
  finish(1);
}, (startupSecs + seconds + 60) * 1000);

const userDataDir = mkdtempSync(join(tmpdir(), 'sluice-chromium-'));
let context;
let exitCode = 1;
try {
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      viewport: clickPoint !== null ? { width: 1100, height: 800 } : { width: 800, height: 480 },
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--autoplay-policy=no-user-gesture-required', '--mute-audio',
        ...(process.env.SLUICE_CHROMIUM_ARGS || '').split(' ').filter((a) => a !== ''),
      ],
      timeout: 60000,
    });
  } catch (e) {
    result.failure = `cannot launch ${executablePath}: ${e.message.split('\n')[0]}`;
    exitCode = 2;
    throw e;
  }
  if (textCues) await context.addInitScript(() => { window.sluiceTextCues = true; });
  if (markers) await context.addInitScript(() => { window.sluiceMarkers = true; });
  if (protocols) await context.addInitScript(() => { performance.setResourceTimingBufferSize(50000); });
  if (playerConfig !== null) {
    await context.addInitScript((cfg) => { window.sluicePlayerConfig = cfg; }, playerConfig);
  }
  if (dashSettings !== null) {
    // Wrap dashjs.MediaPlayer as the dash.js bundle defines window.dashjs,
    // so that every player it creates gets the extra settings first.
    await context.addInitScript((settings) => {
      let real;
      Object.defineProperty(window, 'dashjs', {
        configurable: true,
        get() { return real; },
        set(v) {
          real = v;
          if (!v || typeof v.MediaPlayer !== 'function' || v.MediaPlayer.__sluiceWrapped) return;
          const orig = v.MediaPlayer;
          const wrapped = function (...args) {
            const factory = orig.apply(this, args);
            const create = factory.create;
            factory.create = function (...cargs) {
              const player = create.apply(this, cargs);
              player.updateSettings(settings);
              return player;
            };
            return factory;
          };
          for (const k of Object.getOwnPropertyNames(orig)) {
            if (['length', 'name', 'prototype', 'arguments', 'caller'].includes(k)) continue;
            try { wrapped[k] = orig[k]; } catch (e) { /* read-only: skip */ }
          }
          wrapped.__sluiceWrapped = true;
          v.MediaPlayer = wrapped;
        },
      });
    }, dashSettings);
  }
  const page = context.pages()[0] || (await context.newPage());
  const recording = [];
  if (record) {
    result.fetched = [];
    page.on('response', (resp) => {
      const u = resp.url();
      if (resp.status() !== 200 || !/\/b\/[^/]+\/.+\/(init\.mp4|\d+\.m4s)(\?|$)/.test(u)) return;
      // When the response's headers reached the browser (its own clock, the
      // machine's), not when this event reached node: on a loaded machine
      // the event can lag by seconds.
      const tm = resp.request().timing();
      const at = tm && tm.startTime > 0 && tm.responseStart >= 0 ? Math.round(tm.startTime + tm.responseStart) : Date.now();
      recording.push(resp.body().then((b) => {
        result.fetched.push({ url: u, size: b.length, sha256: createHash('sha256').update(b).digest('hex'), t: at });
      }).catch((e) => { result.warnings.push({ src: 'record', url: u, message: String(e.message || e) }); }));
    });
  }
  page.on('pageerror', (e) => {
    const text = String(e.stack || e.message || e).slice(0, 1500);
    // A known Shaka Player 5.2 bug, not a failure of the stream: its
    // content-steering manager asks the player for a bandwidth estimate
    // (the _HLS_/_DASH_throughput query parameter) while load() has not
    // yet given the player its ABR manager, which a slow (loaded) machine
    // makes likely. The steering request is skipped; Shaka still fails over
    // by the other pathways' URIs of each segment. Kept as a warning.
    if (kind === 'shaka' && /reading 'getBandwidthEstimate'/.test(text) && /shaka-player/.test(text)) {
      result.warnings.push({ src: 'shaka (known bug: steering before the ABR manager exists)', message: text });
      return;
    }
    if (result.pageErrors.length < 50) result.pageErrors.push(text);
  });
  page.on('console', (m) => {
    if (verbose || m.type() === 'error') process.stderr.write(`[page ${m.type()}] ${m.text()}\n`);
  });
  const resp = await page.goto(pageURL, { waitUntil: 'load', timeout: 30000 });
  if (!resp || !resp.ok()) {
    result.failure = `page ${pageURL} answered ${resp ? resp.status() : 'nothing'}: ${resp ? (await resp.text()).slice(0, 300) : ''}`;
    throw new Error(result.failure);
  }
  if (mseTypes !== null) {
    result.typeSupported = await page.evaluate((ts) => Object.fromEntries(ts.map((t) => [t, MediaSource.isTypeSupported(t)])), mseTypes);
  }
  await page.waitForFunction(() => typeof window.sluicePlayer === 'object', null, { timeout: 10000 });
  if (clickPoint !== null) {
    const sel = `button[data-kind="${kind}"][data-name=${JSON.stringify(clickPoint)}]`;
    const btn = await page.$(sel);
    if (!btn) {
      result.failure = `the status page has no ${kind} play button for ${clickPoint} (players installed?)`;
      throw new Error(result.failure);
    }
    await btn.click();
  }
  const state = () => page.evaluate(() => window.sluicePlayer.state());

  // Wait for playback to start: currentTime moving with data.
  const t0 = Date.now();
  let s = await state();
  let first = null;
  while (Date.now() - t0 < startupSecs * 1000) {
    s = await state();
    if (s.errors.length > 0) break;
    if (!s.paused && s.readyState >= 3 && s.currentTime > 0) {
      if (first === null) first = s.currentTime;
      else if (s.currentTime > first) break;
    }
    await sleep(250);
  }
  if (s.errors.length > 0 || first === null || !(s.currentTime > first)) {
    result.failure = s.errors.length > 0 ? 'player error before playback started' : `playback did not start within ${startupSecs} s`;
  } else {
    result.startupSeconds = (Date.now() - t0) / 1000;
    result.startTime = s.currentTime;
    if (process.env.SLUICE_STARTED_FILE) writeFileSync(process.env.SLUICE_STARTED_FILE, String(s.currentTime));
    let prev = s.currentTime;
    const start = Date.now();
    for (let i = 1; i <= seconds; i++) {
      await sleep(Math.max(0, start + i * 1000 - Date.now()));
      s = await state();
      const adv = s.currentTime - prev;
      if (adv < 0.2) result.stalls++;
      // An underrun: no progress with (almost) nothing buffered ahead, the
      // player starved of data (a stall with a full buffer is the page
      // not getting the CPU).
      if (adv < 0.2 && (s.buffer || 0) < 0.5) result.underruns++;
      prev = s.currentTime;
      result.samples.push({ t: +s.currentTime.toFixed(3), buf: +(s.buffer || 0).toFixed(2), br: s.bitrate || 0, lat: s.latency == null ? null : +Number(s.latency).toFixed(3), rate: s.rate });
      if (s.bitrate && !result.bitrates.includes(s.bitrate)) result.bitrates.push(s.bitrate);
      result.bufferMin = result.bufferMin === null ? s.buffer : Math.min(result.bufferMin, s.buffer);
      result.bufferMax = result.bufferMax === null ? s.buffer : Math.max(result.bufferMax, s.buffer);
      if (s.errors.length > 0) break;
      if (untilEnded && s.ended) break;
    }
    result.sampledSeconds = (Date.now() - start) / 1000;
    result.endTime = s.currentTime;
    result.advanced = +(s.currentTime - result.startTime).toFixed(3);
  }
  result.errors = s.errors;
  result.warnings = s.warnings.concat(result.warnings);
  if (record) await Promise.allSettled(recording);
  result.events = s.events;
  result.width = s.width || 0;
  result.height = s.height || 0;
  result.totalFrames = s.totalFrames || 0;
  result.droppedFrames = s.droppedFrames || 0;
  result.latency = s.latency;
  result.waitingEvents = s.waiting;
  if (textCues) {
    result.textTracks = s.textTracks || [];
    result.playingDate = s.playingDate === undefined ? null : s.playingDate;
    result.playingTime = s.currentTime;
  }
  if (markers) result.markers = s.markers || [];
  if (protocols) {
    result.resources = await page.evaluate(() => {
      const path = (u) => { const x = new URL(u); return x.pathname + x.search; };
      return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))
        .map((e) => ({ u: path(e.name), p: e.nextHopProtocol, s: e.responseStatus || 0 }));
    });
  }
  if (untilEnded) {
    result.ended = !!s.ended;
    result.duration = s.duration;
  }
  if (process.env.SLUICE_SCREENSHOT) {
    try {
      await page.screenshot({ path: process.env.SLUICE_SCREENSHOT, fullPage: clickPoint !== null, timeout: 10000 });
      result.screenshot = process.env.SLUICE_SCREENSHOT;
    } catch (e) {
      result.warnings.push({ src: 'screenshot', message: e.message });
    }
  }
  if (!result.failure) {
    if (result.errors.length > 0) result.failure = `${result.errors.length} player error(s)`;
    else if (result.pageErrors.length > 0) result.failure = `${result.pageErrors.length} page error(s)`;
    else if (result.advanced < minAdvance) result.failure = `currentTime advanced ${result.advanced} s, want >= ${minAdvance} s`;
    else if (result.totalFrames === 0) result.failure = 'no video frame decoded';
    else if (untilEnded && !result.ended) result.failure = `did not reach 'ended': stopped at ${result.endTime} of ${result.duration} s`;
  }
  result.ok = !result.failure;
  exitCode = result.ok ? 0 : 1;
} catch (e) {
  if (!result.failure) result.failure = String(e.message || e).split('\n')[0];
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
  clearTimeout(deadline);
}
finish(exitCode);
