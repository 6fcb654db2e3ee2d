/* dronegate dashboard: the live stream, off the page's main thread.
 *
 * A dedicated worker holds the WebSocket to /api/v1/live, parses every event
 * and hands the page batches at most every FLUSH_MS: within a batch only the
 * newest telemetry event of each drone is kept (the page draws at ~20 Hz, so
 * nothing visible is lost), while snapshot, online/offline and command events
 * are all passed on, in order. 1,000 drones at 10 Hz are 10,000 frames a
 * second here and ~20 messages a second on the page.
 *
 * Page -> worker: {type: "connect", url}.
 * Worker -> page: {kind: "open"}, {kind: "closed", retryMs},
 *                 {kind: "events", events: [...], telemetry: N, total: N}.
 * Reconnects with exponential backoff: 0.5 s doubling to 15 s, +-25 % jitter;
 * a complete snapshot (a healthy stream) resets it.
 *
 * The snapshot comes in chunks, in drone-id order: {"type":"snapshot",
 * "drones":[<= 1000],"final":false} ... {"final":true}; live events are
 * interleaved between chunks. Each chunk is handed over in order as a
 * snapshot event (the page merges drone lists, so a chunk needs nothing of
 * the others); an entry is newer than any telemetry delivered before its
 * chunk, so order alone keeps the newest state. `snapshotDone` turns true
 * at the final chunk (an older gateway sends one message without "final").
 */
'use strict';

var FLUSH_MS = 50;
var url = '', ws = null, attempts = 0, retryTimer = 0, flushTimer = 0;
var latest = new Map();       // drone id -> newest telemetry event not yet handed over
var queue = [];               // events to hand over, in order
var nTelemetry = 0, nTotal = 0, lastFlush = 0;
var snapshotDone = false;     // the final snapshot chunk of this connection arrived

self.onmessage = function (e) {
  if (e.data && e.data.type === 'connect') {
    url = e.data.url;
    connect();
  }
};

function flush() {
  clearTimeout(flushTimer);
  flushTimer = 0;
  lastFlush = performance.now();
  moveTelemetry();
  if (!queue.length && !nTotal) return;
  self.postMessage({ kind: 'events', events: queue, telemetry: nTelemetry, total: nTotal });
  queue = [];
  nTelemetry = nTotal = 0;
}

function moveTelemetry() {
  if (!latest.size) return;
  latest.forEach(function (m) { queue.push(m); });
  latest.clear();
}

function connect() {
  clearTimeout(retryTimer);
  var sock;
  try { sock = new WebSocket(url); } catch (e) { retry(); return; }
  ws = sock;
  snapshotDone = false;
  sock.onopen = function () {
    if (ws === sock) self.postMessage({ kind: 'open' });
  };
  sock.onmessage = function (ev) {
    if (ws !== sock || typeof ev.data !== 'string') return;
    var m;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    if (!m || typeof m !== 'object') return;
    nTotal++;
    if (m.type === 'telemetry' && typeof m.drone_id === 'string') {
      nTelemetry++;
      latest.set(m.drone_id, m);
    } else {
      if (m.type === 'snapshot' && m.final !== false) {
        attempts = 0;
        snapshotDone = true;
      }
      moveTelemetry();          // keep the order around non-telemetry events
      queue.push(m);
    }
    // flush on time from here too: under a steady stream, timers can starve
    var now = performance.now();
    if (now - lastFlush >= FLUSH_MS) flush();
    else if (!flushTimer) flushTimer = setTimeout(flush, FLUSH_MS);
  };
  sock.onclose = function () {
    if (ws !== sock) return;
    ws = null;
    flush();
    retry();
  };
  sock.onerror = function () { /* onclose follows */ };
}

function retry() {
  var base = Math.min(15000, 500 * Math.pow(2, attempts));
  var delay = Math.round(base * (0.75 + Math.random() * 0.5));
  attempts++;
  self.postMessage({ kind: 'closed', retryMs: delay });
  retryTimer = setTimeout(connect, delay);
}
