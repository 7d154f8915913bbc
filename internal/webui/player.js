// Sluice player glue, inlined into the status page and the /play page.
// window.sluicePlayer.start(kind, url, video) plays url with dash.js ("dash"),
// dash.js + its MSS module ("mss"), hls.js ("hls") or Shaka Player ("shaka",
// DASH or HLS, whichever the manifest is); state() returns a
// snapshot that the page readout and the browser test both read.
(function () {
  'use strict';
  var S = {
    kind: null, url: null, video: null, dash: null, hls: null, shaka: null,
    started: 0, firstPlaying: -1, errors: [], warnings: [], events: [], waiting: 0, markers: []
  };

  function now() { return (performance.now() - S.started) / 1000; }

  function note(list, entry) {
    entry.at = Math.round(now() * 1000) / 1000;
    if (list.length < 200) list.push(entry);
  }

  function stop() {
    if (S.dash) { try { S.dash.reset(); } catch (e) {} S.dash = null; }
    if (S.hls) { try { S.hls.destroy(); } catch (e) {} S.hls = null; }
    if (S.shaka) { try { S.shaka.destroy(); } catch (e) {} S.shaka = null; }
    if (S.video) {
      S.video.removeEventListener('error', onVideoError);
      S.video.removeEventListener('waiting', onWaiting);
      S.video.removeEventListener('playing', onPlaying);
      S.video.removeEventListener('ended', onEnded);
      S.video.removeAttribute('src');
      try { S.video.load(); } catch (e) {}
    }
    S.kind = null; S.url = null;
  }

  function onVideoError() {
    var e = S.video && S.video.error;
    note(S.errors, { src: 'video', code: e ? e.code : 0, message: e ? e.message : 'media element error' });
  }
  function onWaiting() { S.waiting++; note(S.events, { ev: 'waiting', t: S.video.currentTime }); }
  function onEnded() { note(S.events, { ev: 'ended', t: S.video.currentTime }); }
  function onPlaying() {
    if (S.firstPlaying < 0) S.firstPlaying = now();
    note(S.events, { ev: 'playing', t: S.video.currentTime });
  }

  // config is the optional player configuration a test set as
  // window.sluicePlayerConfig (web/test/play.mjs --player-config).
  function config() {
    var c = window.sluicePlayerConfig;
    return c && typeof c === 'object' ? c : null;
  }

  function start(kind, url, video) {
    stop();
    // An absolute URL: dash.js resolves segment URLs with new URL(base),
    // which throws "Invalid URL" for a path.
    url = new URL(url, location.href).href;
    S.kind = kind; S.url = url; S.video = video;
    S.started = performance.now(); S.firstPlaying = -1;
    S.errors = []; S.warnings = []; S.events = []; S.waiting = 0; S.markers = [];
    video.muted = true;
    video.addEventListener('error', onVideoError);
    video.addEventListener('waiting', onWaiting);
    video.addEventListener('playing', onPlaying);
    video.addEventListener('ended', onEnded);
    try {
      if (kind === 'dash' || kind === 'mss') {
        if (typeof dashjs === 'undefined') throw new Error('dash.js is not loaded');
        if (kind === 'mss' && typeof dashjs.MssHandler !== 'function') throw new Error('the dash.js MSS module is not loaded');
        var p = dashjs.MediaPlayer().create();
        p.updateSettings({ debug: { logLevel: dashjs.Debug.LOG_LEVEL_WARNING } });
        if (config()) p.updateSettings(config());
        var ev = dashjs.MediaPlayer.events;
        p.on(ev.ERROR, function (e) {
          var er = e && e.error ? e.error : e;
          var entry = { src: 'dash.js', code: er && er.code, message: String(er && er.message || er) };
          // A segment download that failed at every retry, for a URL under a
          // BaseURL with a serviceLocation: dash.js (5.x) blacklists that
          // serviceLocation and requests the segment again from the next
          // BaseURL (StreamProcessor's fragment-loading error handling), so
          // the error is not fatal. Anything else is.
          var req = er && er.data && er.data.request;
          if (req && req.serviceLocation && (er.code === 27 || er.code === 28) &&
              (req.type === 'MediaSegment' || req.type === 'InitializationSegment')) {
            entry.failover = req.serviceLocation;
            entry.url = String(req.url || '').slice(0, 300);
            note(S.warnings, entry);
            return;
          }
          note(S.errors, entry);
        });
        p.on(ev.PLAYBACK_ERROR, function (e) {
          var er = e && e.error ? e.error : e;
          note(S.errors, { src: 'dash.js playback', code: er && er.code, message: String(er && er.message || er) });
        });
        p.on(ev.STREAM_INITIALIZED, function () { note(S.events, { ev: 'stream initialized', dynamic: p.isDynamic() }); });
        p.on(ev.QUALITY_CHANGE_RENDERED, function (e) {
          note(S.events, { ev: 'quality', type: e.mediaType, to: e.newRepresentation && e.newRepresentation.bandwidth });
        });
        S.dash = p;
        if (window.sluiceMarkers) dashMarkers(p);
        // The network may be closed: never ask dash.js' default time server
        // (time.akamai.com). DASH manifests from Sluice carry UTCTiming;
        // otherwise dash.js falls back to the manifest's Date header.
        p.initialize(video, undefined, true);
        p.clearDefaultUTCTimingSources();
        p.attachSource(url);
      } else if (kind === 'hls') {
        if (typeof Hls === 'undefined') throw new Error('hls.js is not loaded');
        if (!Hls.isSupported()) throw new Error('hls.js: MediaSource is not supported here');
        var hc = { debug: false };
        if (config()) for (var k in config()) hc[k] = config()[k];
        var h = new Hls(hc);
        h.on(Hls.Events.ERROR, function (name, d) {
          var entry = {
            src: 'hls.js', fatal: !!d.fatal, type: d.type, details: d.details,
            message: d.error ? String(d.error.message || d.error) : (d.reason || ''),
            url: d.frag ? d.frag.url : (d.url || (d.context && d.context.url) || ''),
            status: d.response ? d.response.code : undefined
          };
          note(d.fatal ? S.errors : S.warnings, entry);
        });
        h.on(Hls.Events.MANIFEST_PARSED, function (name, d) {
          note(S.events, { ev: 'manifest parsed', levels: d.levels.length });
          var pr = video.play();
          if (pr && pr.catch) pr.catch(function (e) { note(S.errors, { src: 'play()', message: String(e) }); });
        });
        h.on(Hls.Events.LEVEL_SWITCHED, function (name, d) {
          var l = h.levels[d.level];
          note(S.events, { ev: 'quality', type: 'video', to: l && l.bitrate });
        });
        S.hls = h;
        if (window.sluiceMarkers) hlsMarkers(h);
        h.loadSource(url);
        h.attachMedia(video);
      } else if (kind === 'shaka') {
        if (typeof shaka === 'undefined') throw new Error('Shaka Player is not loaded');
        shaka.polyfill.installAll();
        if (!shaka.Player.isBrowserSupported()) throw new Error('Shaka Player: this browser is not supported');
        var sp = new shaka.Player();
        S.shaka = sp;
        if (config()) sp.configure(config());
        if (window.sluiceMarkers) shakaMarkers(sp);
        // Shaka reports every problem as an 'error' event with a
        // shaka.util.Error; severity 2 (CRITICAL) stops playback, 1
        // (RECOVERABLE) is a warning (a retried request, say).
        sp.addEventListener('error', function (ev) {
          var er = ev.detail || {};
          var entry = {
            src: 'shaka', code: er.code, category: er.category, severity: er.severity,
            message: String(er.message || ('shaka error ' + er.code)),
            data: (er.data || []).slice(0, 3).map(function (d) { return String(d && d.uri ? d.uri : d).slice(0, 200); })
          };
          note(er.severity === 2 ? S.errors : S.warnings, entry);
        });
        sp.addEventListener('variantchanged', function () {
          var t = sp.getVariantTracks().filter(function (x) { return x.active; })[0];
          note(S.events, { ev: 'quality', type: 'video', to: t && t.bandwidth });
        });
        sp.attach(video).then(function () {
          return sp.load(url);
        }).then(function () {
          note(S.events, { ev: 'manifest parsed', live: sp.isLive() });
          var pr = video.play();
          if (pr && pr.catch) pr.catch(function (e) { note(S.errors, { src: 'play()', message: String(e) }); });
        }).catch(function (er) {
          note(S.errors, {
            src: 'shaka load', code: er && er.code, message: String(er && er.message || ('shaka error ' + (er && er.code))),
            stack: String(er && er.stack || '').slice(0, 800)
          });
        });
      } else {
        throw new Error('unknown player kind ' + kind);
      }
    } catch (e) {
      note(S.errors, { src: 'setup', message: String(e && e.message || e) });
    }
  }

  // The marker hooks (web/test/play.mjs --markers) record every ad marker
  // and timed metadata callback of the player in S.markers: {player, ev,
  // scheme, t (media time, s), data (the message in hex)}.
  function hex(d) {
    if (d === undefined || d === null) return '';
    if (typeof d === 'string') {
      var s = d.trim();
      if (/^0x[0-9a-f]*$/i.test(s)) return s.slice(2).toLowerCase();
      try { d = Uint8Array.from(atob(s), function (c) { return c.charCodeAt(0); }); } catch (e) { return s; }
    }
    if (d instanceof ArrayBuffer) d = new Uint8Array(d);
    if (!(d instanceof Uint8Array)) return String(d);
    var out = '';
    for (var i = 0; i < d.length; i++) out += (d[i] < 16 ? '0' : '') + d[i].toString(16);
    return out;
  }
  function marker(m) { if (S.markers.length < 200) { m.at = Math.round(now() * 1000) / 1000; S.markers.push(m); } }
  function dashMarkers(p) {
    ['urn:scte:scte35:2014:xml+bin', 'https://aomedia.org/emsg/ID3'].forEach(function (scheme) {
      p.on(scheme, function (e) {
        var x = e && e.event || {};
        var t = x.calculatedPresentationTime;
        if (t === undefined || t === null) t = x.presentationTime;
        marker({ player: 'dash', ev: e.type, scheme: scheme, t: t, id: x.id, data: hex(x.messageData) });
      }, null, { mode: 'eventModeOnReceive' });
    });
  }
  function hlsMarkers(h) {
    var seen = {};
    h.on(Hls.Events.LEVEL_LOADED, function (name, d) {
      var drs = d.details && d.details.dateRanges || {};
      // One marker per SCTE-35 attribute: a break's return shares its
      // out's ID (RFC 8216 4.4.5.1.1) and lies at the range's end.
      Object.keys(drs).forEach(function (id) {
        var dr = drs[id], a = dr.attr || {};
        ['SCTE35-OUT', 'SCTE35-IN', 'SCTE35-CMD'].forEach(function (k) {
          if (!a[k] || seen[id + k]) return;
          seen[id + k] = true;
          var t = dr.startTime;
          if (k === 'SCTE35-IN' && typeof dr.duration === 'number' && isFinite(dr.duration)) t += dr.duration;
          marker({ player: 'hls', ev: 'daterange', scheme: 'scte35', key: k, t: t, id: id, data: hex(a[k]),
            date: dr.startDate && dr.startDate.getTime() });
        });
      });
    });
    h.on(Hls.Events.FRAG_PARSING_METADATA, function (name, d) {
      (d.samples || []).forEach(function (x) {
        marker({ player: 'hls', ev: 'metadata', scheme: 'id3', t: x.pts, data: hex(x.data) });
      });
    });
  }
  function textOf(n) {
    if (n === null || n === undefined) return '';
    if (typeof n === 'string') return n;
    if (n.textContent !== undefined && n.nodeType) return n.textContent;
    return (n.children || []).map(textOf).join('');
  }
  function shakaMarkers(sp) {
    sp.addEventListener('timelineregionadded', function (e) {
      var r = e.detail || {};
      marker({ player: 'shaka', ev: 'timelineregionadded', scheme: r.schemeIdUri, t: r.startTime, id: r.id,
        data: hex(textOf(r.eventNode || r.eventElement)) });
    });
    sp.addEventListener('metadata', function (e) {
      var p = e.payload || {};
      marker({ player: 'shaka', ev: 'metadata', scheme: e.metadataType, t: e.startTime, key: p.key,
        data: hex(p.data) });
    });
  }

  // bufferAhead is the seconds buffered from currentTime on.
  function bufferAhead(v) {
    var b = v.buffered, t = v.currentTime;
    for (var i = 0; i < b.length; i++) {
      if (b.start(i) <= t + 0.1 && t < b.end(i)) return b.end(i) - t;
    }
    return 0;
  }

  function state() {
    var v = S.video;
    var st = {
      kind: S.kind, url: S.url, errors: S.errors.slice(), warnings: S.warnings.slice(),
      events: S.events.slice(), waiting: S.waiting, firstPlaying: S.firstPlaying, clock: now()
    };
    if (!v) return st;
    st.currentTime = v.currentTime;
    st.paused = v.paused;
    st.rate = v.playbackRate;
    st.ended = v.ended;
    st.duration = v.duration;
    st.readyState = v.readyState;
    st.buffer = bufferAhead(v);
    st.width = v.videoWidth;
    st.height = v.videoHeight;
    if (v.getVideoPlaybackQuality) {
      var q = v.getVideoPlaybackQuality();
      st.totalFrames = q.totalVideoFrames;
      st.droppedFrames = q.droppedVideoFrames;
    }
    st.bitrate = 0;
    st.latency = null;
    try {
      if (S.dash) {
        var r = S.dash.getCurrentRepresentationForType('video');
        if (r) st.bitrate = r.bandwidth || 0;
        // Smooth manifests have no availabilityStartTime: no latency there.
        if (S.kind === 'dash' && S.dash.isDynamic()) st.latency = S.dash.getCurrentLiveLatency();
      } else if (S.hls) {
        var l = S.hls.levels && S.hls.levels[S.hls.currentLevel];
        if (l) st.bitrate = l.bitrate || 0;
        // Latency: the wall clock minus the program date time of the
        // frame shown (hls.js' own figure is relative to its live edge).
        var hd = S.hls.playingDate;
        st.latency = hd ? (Date.now() - hd.getTime()) / 1000 : S.hls.latency;
      } else if (S.shaka) {
        var vt = S.shaka.getVariantTracks().filter(function (x) { return x.active; })[0];
        if (vt) st.bitrate = vt.videoBandwidth || vt.bandwidth || 0;
        if (S.shaka.isLive()) {
          // Latency: the wall clock minus the presentation time being shown.
          var pd = S.shaka.getPlayheadTimeAsDate();
          if (pd) st.latency = (Date.now() - pd.getTime()) / 1000;
        }
      }
    } catch (e) {}
    if (window.sluiceTextCues) textState(st, v);
    if (window.sluiceMarkers) st.markers = S.markers.slice();
    return st;
  }

  // textState adds, for web/test/play.mjs --text-cues, the text tracks of
  // the video element with their cues (at most 200 each), and the
  // presentation time the player maps currentTime to (playingDate, Unix
  // ms: hls.js from the HLS program date times, Shaka Player while live;
  // dash.js's currentTime of a live MPD from Sluice is the media time
  // itself), taken at the same moment.
  function textState(st, v) {
    st.textTracks = [];
    for (var i = 0; i < v.textTracks.length; i++) {
      var tt = v.textTracks[i], cues = null;
      if (tt.cues) {
        cues = [];
        for (var k = 0; k < tt.cues.length && k < 200; k++) {
          var c = tt.cues[k];
          cues.push({ start: c.startTime, end: c.endTime, text: String(c.text || '') });
        }
      }
      st.textTracks.push({ kind: tt.kind, label: tt.label, language: tt.language, mode: tt.mode, cues: cues });
    }
    st.playingDate = null;
    try {
      if (S.hls && S.hls.playingDate) st.playingDate = S.hls.playingDate.getTime();
      else if (S.shaka && S.shaka.isLive() && S.shaka.getPlayheadTimeAsDate()) st.playingDate = S.shaka.getPlayheadTimeAsDate().getTime();
    } catch (e) {}
  }

  window.sluicePlayer = { start: start, stop: stop, state: state };
})();
