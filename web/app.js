/* dronegate dashboard: live map, fleet list, history track, commands.
 *
 * Plain script, no bundler. Uses Leaflet (L) and topojson-client (topojson),
 * both served by the gateway from vendor/ (see build.sh). Nothing is loaded
 * from outside the gateway: the basemap is the world-atlas country outline
 * drawn as a GeoJSON layer.
 *
 * Performance with ~1,000 drones at 1-10 Hz:
 *  - the live WebSocket lives in a worker (live-worker.js) that parses every
 *    event and hands over batches (newest telemetry per drone) every 50 ms;
 *    an event only updates a plain object here (no DOM);
 *  - the whole fleet is drawn by two L.Canvas subclasses (so panning and
 *    zoom animation behave like any Leaflet canvas layer) instead of one
 *    Leaflet layer per drone: markers (pre-rendered sprites) at most ~20 times
 *    a second, trails at most once a second; positions are kept in zoom-0
 *    Web-Mercator pixels, so drawing is a multiply-add per point;
 *  - trails are ring buffers (at most TRAIL_MAX points, one per TRAIL_STEP_MS);
 *  - the fleet list is virtual: only visible rows exist, refreshed at most
 *    LIST_MS apart, and a cell is written only when its text changed.
 *
 * Test hook: window.__dg (read-only view of the state, see the end).
 */
(function () {
'use strict';

var TRAIL_MAX = 120;        // points kept per drone
var TRAIL_STEP_MS = 1000;   // one trail point per second (the markers draw the rest)
var DRAW_MS = 50;           // markers: data-driven redraws at most every 50 ms
var TRAIL_DRAW_MS = 1000;   // trails: at most once a second (a point a second)
var LIST_MS = 250;          // fleet list / detail refresh at most every 250 ms
var ROW_H = 22;             // px, must match .row height in app.css
var CMD_POLL_MS = 1500;     // fallback polling of GET /api/v1/commands/{id}
var CMD_KEEP = 12;          // commands shown in the list
var STATUS_RANK = { pending: 0, sent: 1, accepted: 2, done: 3, rejected: 3, expired: 3, failed: 3 };
var TERMINAL = { done: 1, rejected: 1, expired: 1, failed: 1 };

var STATUS_COLOR = {
  airborne: '#1a9e4b', takeoff: '#0891b2', landing: '#0e7490', returning: '#7c3aed',
  landed: '#1d4ed8', hold: '#65a30d'
};
var COLOR_OFFLINE = '#8a939e', COLOR_LOW = '#dc2626', COLOR_WARN = '#ea8a00', COLOR_OTHER = '#4b5563';

function $(id) { return document.getElementById(id); }

/* Without Leaflet (web/vendor/ not built: no npm, no network) there is no
 * map: say so in words, in the map's place, instead of a blank area. */
if (typeof L === 'undefined') {
  var box = $('map');
  box.classList.add('map-missing');
  box.setAttribute('role', 'alert');
  box.innerHTML = '<div><h2>The map cannot be shown</h2>' +
    '<p>Its library, <code>vendor/leaflet/leaflet.js</code>, is missing from this gateway\'s web root.</p>' +
    '<p>On the gateway machine, run <code>make run</code> (or <code>web/build.sh</code>: it needs ' +
    '<code>npm</code>, e.g. <code>apt-get install nodejs npm</code>, and access to registry.npmjs.org), ' +
    'then reload this page.</p>' +
    '<p>The REST API works without it: <a href="api/v1/drones">api/v1/drones</a>, ' +
    '<a href="metrics">metrics</a>.</p></div>';
  $('conn').textContent = 'map library missing';
  $('conn').className = 'conn conn-down';
  window.__dg = { version: 1, mapMissing: true };
  return;
}

/* ------------------------------------------------------------------ token */
var token = '';
(function () {
  var u = new URL(location.href);
  var t = u.searchParams.get('token');
  try {
    if (t) sessionStorage.setItem('dronegate.token', t);
    else t = sessionStorage.getItem('dronegate.token');
  } catch (e) { /* storage disabled: use the URL only */ }
  token = t || '';
  if (u.searchParams.has('token')) {            // keep the token out of the address bar
    u.searchParams.delete('token');
    history.replaceState(null, '', u.pathname + u.search + u.hash);
  }
})();

function apiURL(path) { return new URL(path, document.baseURI).toString(); }

function showBanner(text) {
  var b = $('banner');
  b.textContent = text || '';
  b.hidden = !text;
}

/* fetch JSON; resolves {status, body}; never rejects on HTTP errors. */
function api(path, opts) {
  opts = opts || {};
  var headers = { 'Accept': 'application/json' };
  if (token) headers['Authorization'] = 'Bearer ' + token;
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  return fetch(apiURL(path), {
    method: opts.method || 'GET', headers: headers, cache: 'no-store',
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined
  }).then(function (r) {
    return r.text().then(function (txt) {
      var body = null;
      try { body = txt ? JSON.parse(txt) : null; } catch (e) { body = { error: txt }; }
      if (r.status === 401) {
        showBanner(token ? 'the operator token was refused: open the dashboard as /?token=OPERATOR_TOKEN'
                         : 'authentication is on: open the dashboard as /?token=OPERATOR_TOKEN');
      }
      return { status: r.status, body: body };
    });
  });
}

/* ------------------------------------------------------------- projection */
/* Web-Mercator pixel at zoom 0 (what L.CRS.EPSG3857 gives, inlined). */
var MAXLAT = 85.0511287798;
function mx(lon) { return 256 * (0.5 + lon / 360); }
function my(lat) {
  if (lat > MAXLAT) lat = MAXLAT; else if (lat < -MAXLAT) lat = -MAXLAT;
  var s = Math.sin(lat * Math.PI / 180);
  return 256 * (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI));
}

/* ------------------------------------------------------------------ state */
var drones = new Map();     // id -> drone object
var order = [];             // ids shown in the list (filtered, sorted)
var selectedId = null;
var stats = { events: 0, telemetry: 0, snapshots: 0, draws: 0, drawMsTotal: 0, drawMsMax: 0,
              listRenders: 0, listMsTotal: 0, reconnects: 0, rate: 0 };
var fleetDirty = true, trailDirty = true, listDirty = true, listSetDirty = true, detailDirty = true;
var fitted = false;        // the view was fitted to the fleet at least once
var userMoved = false;     // the operator moved the map: stop auto-fitting
var fitCount = 0;          // drones with a position at the last fit

function num(v) { return typeof v === 'number' && isFinite(v) ? v : null; }
function parseTime(s) {
  if (typeof s === 'number') return s;
  if (!s) return null;
  var t = Date.parse(s);
  return isNaN(t) ? null : t;
}

function getDrone(id) {
  var d = drones.get(id);
  if (!d) {
    d = { id: id, online: false, lastSeen: null, seq: null, ts: null,
          lat: null, lon: null, alt: null, speed: null, heading: null, climb: null,
          battery: null, status: '', color: COLOR_OFFLINE, x: 0, y: 0, hasPos: false,
          // trail: ring of zoom-0 pixels; point number j (0-based, ever) is at
          // j % TRAIL_MAX; the last tLen of tTotal points are kept.
          trail: new Float64Array(TRAIL_MAX * 2), tTotal: 0, tLen: 0, tLast: 0,
          tDrawn: 0 };   // tTotal when the trail layer last drew this drone
    drones.set(id, d);
    listSetDirty = true;
  }
  return d;
}

/* Trail points are fixed once added (one per TRAIL_STEP_MS); the segment from
 * the newest point to the live position is drawn with the markers. */
function pushTrail(d, now) {
  if (d.tLen && now - d.tLast < TRAIL_STEP_MS) return;
  var i = d.tTotal % TRAIL_MAX;
  d.trail[2 * i] = d.x; d.trail[2 * i + 1] = d.y;
  d.tTotal++;
  if (d.tLen < TRAIL_MAX) d.tLen++;
  d.tLast = now;
  trailDirty = true;
}

function recolor(d) {
  var c = colorOf(d);
  if (c !== d.color) { d.color = c; trailDirty = true; }
}

/* Apply a telemetry-like object (REST drone, snapshot entry, live event). */
function applyState(d, o, live) {
  var seq = num(o.seq);
  if (seq !== null && d.seq !== null && seq < d.seq && !live) return false;   // older than what we have
  if (seq !== null) d.seq = seq;
  var lat = num(o.latitude), lon = num(o.longitude);
  if (o.timestamp !== undefined) d.ts = parseTime(o.timestamp);
  if (num(o.altitude) !== null) d.alt = o.altitude;
  d.speed = num(o.speed); d.heading = num(o.heading); d.climb = num(o.climb);
  d.battery = num(o.battery);
  d.status = typeof o.status === 'string' ? o.status : '';
  if (lat !== null && lon !== null) {
    d.lat = lat; d.lon = lon; d.x = mx(lon); d.y = my(lat); d.hasPos = true;
    pushTrail(d, Date.now());
  }
  return true;
}

function applyDroneList(list) {
  var sortBy = $('sort').value;
  for (var i = 0; i < list.length; i++) {
    var o = list[i];
    if (!o || typeof o.id !== 'string') continue;
    var d = getDrone(o.id);
    applyState(d, o, false);
    if (typeof o.online === 'boolean') d.online = o.online;
    recolor(d);
    var ls = parseTime(o.last_seen);
    if (ls !== null && (d.lastSeen === null || ls > d.lastSeen)) d.lastSeen = ls;
  }
  if (sortBy !== 'id') listSetDirty = true;
  fleetDirty = listDirty = detailDirty = true;
  maybeFit();
}

function onEvent(m) {
  switch (m.type) {
  case 'telemetry': {
    if (typeof m.drone_id !== 'string') return;
    var d = getDrone(m.drone_id);
    applyState(d, m, true);
    d.online = true;
    d.lastSeen = Date.now();
    recolor(d);
    fleetDirty = listDirty = true;
    if (d.id === selectedId) detailDirty = true;
    if (d.tTotal === 1 && !userMoved) maybeFitSoon();
    break;
  }
  case 'snapshot':
    stats.snapshots++;
    if (Array.isArray(m.drones)) applyDroneList(m.drones);
    break;
  case 'online':
  case 'offline': {
    if (typeof m.drone_id !== 'string') return;
    var e = getDrone(m.drone_id);
    e.online = m.type === 'online';
    recolor(e);
    var at = parseTime(m.at);
    if (at !== null && (e.lastSeen === null || at > e.lastSeen)) e.lastSeen = at;
    fleetDirty = listDirty = listSetDirty = true;
    if (e.id === selectedId) detailDirty = true;
    break;
  }
  case 'command':
    if (m.command && typeof m.command.id === 'string') updateCommand(m.command, true);
    break;
  }
}

/* -------------------------------------------------------------------- map */
var map = L.map('map', {
  center: [47.39, 8.54], zoom: 4, minZoom: 2, maxZoom: 19,
  worldCopyJump: false, attributionControl: false, preferCanvas: true
});
L.control.attribution({ prefix: 'Leaflet · Natural Earth (world-atlas)' }).addTo(map);
L.control.scale({ imperial: false }).addTo(map);
map.createPane('base').style.zIndex = 200;
map.createPane('fleet').style.zIndex = 450;
map.getPane('base').style.pointerEvents = 'none';

var baseRenderer = L.canvas({ pane: 'base', padding: 0.5 });
var trackRenderer = L.canvas({ padding: 0.5 });

/* Basemap: world outline from world-atlas (TopoJSON -> GeoJSON), offline.
 * A note on the map says so when it cannot be loaded. */
var outline = L.layerGroup().addTo(map);
var mapNote = L.control({ position: 'topright' });
mapNote.onAdd = function () { return L.DomUtil.create('div', 'map-note'); };
function noteOnMap(text) {
  if (!mapNote._map) mapNote.addTo(map);
  mapNote.getContainer().textContent = text;
}
fetch(apiURL('vendor/world-atlas/countries-50m.json')).then(function (r) {
  if (!r.ok) throw new Error('HTTP ' + r.status);
  if (typeof topojson === 'undefined') throw new Error('vendor/topojson-client is missing');
  return r.json();
}).then(function (topo) {
  var land = topojson.feature(topo, topo.objects.countries);
  L.geoJSON(land, {
    renderer: baseRenderer, interactive: false, pane: 'base',
    style: { color: '#8795a1', weight: 0.8, fillColor: '#eeeadf', fillOpacity: 1 }
  }).addTo(outline);
}).catch(function (e) {
  console.warn('dronegate: world outline not loaded (run web/build.sh):', e.message);
  noteOnMap('World outline not available (' + e.message + '): run web/build.sh on the gateway.');
});

/* Optional raster tiles (--map-tiles, GET /api/v1/config): the default base
 * layer when set, with a switch back to the offline outline. */
var tileLayer = null, baseName = 'outline';
function escapeHTML(t) {
  return String(t).replace(/[&<>"']/g, function (c) {
    return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
  });
}
var configLoaded = api('api/v1/config').then(function (r) {
  var cfg = r.status === 200 && r.body ? r.body : {};
  if (!cfg.map_tiles) return cfg;
  tileLayer = L.tileLayer(cfg.map_tiles, {
    maxZoom: 19, attribution: escapeHTML(cfg.map_attribution || '')
  });
  tileLayer.on('tileerror', function () { noteOnMap('Some map tiles failed to load (--map-tiles).'); });
  var bases = { 'Map tiles': tileLayer, 'World outline (offline)': outline };
  L.control.layers(bases, null, { position: 'topright', collapsed: false }).addTo(map);
  map.on('baselayerchange', function (e) {
    baseName = e.layer === tileLayer ? 'tiles' : 'outline';
    trails._redraw();
  });
  map.removeLayer(outline);
  tileLayer.addTo(map);
  baseName = 'tiles';
  return cfg;
});

function colorOf(d) {
  if (!d.online) return COLOR_OFFLINE;
  if (d.battery !== null && d.battery < 15) return COLOR_LOW;
  if (d.battery !== null && d.battery < 30) return COLOR_WARN;
  return STATUS_COLOR[d.status] || COLOR_OTHER;
}

/* Graticule spacing (degrees) so lines are >= ~90 px apart. */
var GRID_STEPS = [30, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005];

/* The fleet is drawn by two Leaflet canvas renderers (L.Canvas subclasses, so
 * panning and zoom animation work as for any canvas layer) that draw every
 * drone themselves instead of holding one Leaflet layer per drone:
 *  - trails (and the graticule): redrawn at most once a second, as trail
 *    points are added once a second;
 *  - markers (+ the trail's last stretch to the live position, the selection,
 *    labels, the goto target): redrawn at most every DRAW_MS when data came.
 * Markers are pre-rendered sprites (per colour, in 5-degree steps of heading):
 * drawImage is several times cheaper than filling paths in software canvas. */
function timed(f) {
  return function () {
    var t0 = performance.now();
    f(this._ctx, this._bounds, this._map, this._zoom);
    var dt = performance.now() - t0;
    stats.draws++; stats.drawMsTotal += dt; if (dt > stats.drawMsMax) stats.drawMsMax = dt;
  };
}
var TrailLayer = L.Canvas.extend({
  options: { pane: 'trails', padding: 0.1 },
  _draw: timed(function (ctx, b, m, zoom) { trailDirty = false; drawTrails(ctx, b, m, zoom); })
});
var FleetLayer = L.Canvas.extend({
  options: { pane: 'fleet', padding: 0.1 },
  _draw: timed(function (ctx, b, m, zoom) { fleetDirty = false; drawMarkers(ctx, b, m, zoom); })
});
map.createPane('trails').style.zIndex = 440;
var trails = new TrailLayer(), fleet = new FleetLayer();
trails.addTo(map);
fleet.addTo(map);
// clicks go to the map (hit test: droneAt), and through to the history track
trails._container.style.pointerEvents = 'none';
fleet._container.style.pointerEvents = 'none';

function trailRGBA(c) {
  var n = parseInt(c.slice(1), 16);
  return 'rgba(' + (n >> 16) + ',' + ((n >> 8) & 255) + ',' + (n & 255) + ',0.7)';
}
var trailStyle = {};

/* Out-codes of a point against the drawn area: a segment with both ends on
 * the same outer side is skipped. */
function outcode(x, y, x0, y0, x1, y1) {
  return (x < x0 ? 1 : x > x1 ? 2 : 0) | (y < y0 ? 4 : y > y1 ? 8 : 0);
}

function drawTrails(ctx, b, m, zoom) {
  if (!b) return;
  var k = m.getZoomScale(zoom, 0), o = m.getPixelOrigin(), ox = o.x, oy = o.y;
  var x0 = b.min.x - 2, y0 = b.min.y - 2, x1 = b.max.x + 2, y1 = b.max.y + 2;
  if (zoom >= 6 && baseName === 'outline') drawGrid(ctx, m, b, k, ox, oy);

  var groups = {}, keys = [];
  drones.forEach(function (d) {
    if (d.tLen < 2) { d.tDrawn = d.tTotal; return; }
    var g = groups[d.color];
    if (!g) { g = groups[d.color] = []; keys.push(d.color); }
    g.push(d);
  });
  ctx.lineWidth = 2; ctx.lineJoin = 'round';
  var cap = TRAIL_MAX;
  for (var gi = 0; gi < keys.length; gi++) {
    var list = groups[keys[gi]];
    ctx.strokeStyle = trailStyle[keys[gi]] || (trailStyle[keys[gi]] = trailRGBA(keys[gi]));
    ctx.beginPath();
    for (var n = 0; n < list.length; n++) {
      var d = list[n], tr = d.trail, end = d.tTotal, j = end - d.tLen;
      var i = j % cap;
      var lx = tr[2 * i] * k - ox, ly = tr[2 * i + 1] * k - oy, lc = outcode(lx, ly, x0, y0, x1, y1);
      var pen = false;
      for (j++; j < end; j++) {
        i = j % cap;
        var x = tr[2 * i] * k - ox, y = tr[2 * i + 1] * k - oy;
        // thin out: skip points closer than 2 px to the last drawn one (keep the newest)
        if (j < end - 1 && (x - lx < 2 && lx - x < 2) && (y - ly < 2 && ly - y < 2)) continue;
        var c = outcode(x, y, x0, y0, x1, y1);
        if ((lc & c) === 0) {
          if (!pen) { ctx.moveTo(lx, ly); pen = true; }
          ctx.lineTo(x, y);
        } else {
          pen = false;
        }
        lx = x; ly = y; lc = c;
      }
      d.tDrawn = end;
    }
    ctx.stroke();
  }
}

/* Marker sprites: one atlas canvas per colour and size, 73 frames (72
 * headings in 5-degree steps + a dot for "no heading"). */
var atlasCache = {};
function atlas(color, r) {
  var byR = atlasCache[r] || (atlasCache[r] = {}), a = byR[color];
  if (a) return a;
  var dpr = window.devicePixelRatio || 1, size = Math.ceil(r * 2.6 + 4), px = Math.ceil(size * dpr);
  var cv = document.createElement('canvas');
  cv.width = px * 73; cv.height = px;
  var c = cv.getContext('2d');
  c.fillStyle = color; c.strokeStyle = 'rgba(20,24,30,.85)'; c.lineWidth = 1; c.lineJoin = 'round';
  for (var f = 0; f < 73; f++) {
    c.setTransform(dpr, 0, 0, dpr, f * px + px / 2, px / 2);
    c.beginPath();
    if (f === 72) {
      c.arc(0, 0, r * 0.7, 0, 2 * Math.PI);
    } else {
      c.rotate(f * 5 * Math.PI / 180);      // heading 0 = north = up, clockwise
      c.moveTo(0, -r * 1.3); c.lineTo(r * 0.85, r); c.lineTo(0, r * 0.45); c.lineTo(-r * 0.85, r);
      c.closePath();
    }
    c.fill(); c.stroke();
  }
  a = byR[color] = { canvas: cv, px: px, size: size };
  return a;
}

function drawMarkers(ctx, b, m, zoom) {
  if (!b) return;
  var k = m.getZoomScale(zoom, 0), o = m.getPixelOrigin();
  var ox = o.x, oy = o.y, cap = TRAIL_MAX;
  var x0 = b.min.x - 12, y0 = b.min.y - 12, x1 = b.max.x + 12, y1 = b.max.y + 12;
  var R = zoom >= 14 ? 7 : zoom >= 11 ? 5.5 : 4.5;
  var vis = [], sel = null;
  drones.forEach(function (d) {
    if (!d.hasPos) return;
    if (d.id === selectedId) sel = d;
    var px = d.x * k - ox, py = d.y * k - oy;
    if (px < x0 || px > x1 || py < y0 || py > y1) return;
    vis.push(d);
  });

  // the trail's newest stretch: from the last point the trail layer drew to now
  var groups = {}, keys = [], n, d;
  for (n = 0; n < vis.length; n++) {
    d = vis[n];
    if (!d.tTotal) continue;
    var g = groups[d.color];
    if (!g) { g = groups[d.color] = []; keys.push(d.color); }
    g.push(d);
  }
  ctx.lineWidth = 2; ctx.lineJoin = 'round';
  for (var gi = 0; gi < keys.length; gi++) {
    var list = groups[keys[gi]];
    ctx.strokeStyle = trailStyle[keys[gi]] || (trailStyle[keys[gi]] = trailRGBA(keys[gi]));
    ctx.beginPath();
    for (n = 0; n < list.length; n++) {
      d = list[n];
      var j = Math.max(d.tDrawn - 1, d.tTotal - d.tLen), i = j % cap;
      ctx.moveTo(d.trail[2 * i] * k - ox, d.trail[2 * i + 1] * k - oy);
      for (j++; j < d.tTotal; j++) { i = j % cap; ctx.lineTo(d.trail[2 * i] * k - ox, d.trail[2 * i + 1] * k - oy); }
      ctx.lineTo(d.x * k - ox, d.y * k - oy);
    }
    ctx.stroke();
  }

  // markers
  for (n = 0; n < vis.length; n++) {
    d = vis[n];
    var at = atlas(d.color, R), f = d.heading === null ? 72 : Math.round(d.heading / 5) % 72;
    ctx.drawImage(at.canvas, f * at.px, 0, at.px, at.px,
                  Math.round(d.x * k - ox - at.size / 2), Math.round(d.y * k - oy - at.size / 2), at.size, at.size);
  }

  // labels when few drones are in view and the map is zoomed in
  ctx.font = '11px system-ui, sans-serif';
  ctx.textBaseline = 'middle';
  if (vis.length <= 60 && zoom >= 13) {
    ctx.fillStyle = 'rgba(20,24,30,.8)';
    for (n = 0; n < vis.length; n++) {
      d = vis[n];
      if (d !== sel) ctx.fillText(d.id, d.x * k - ox + R + 4, d.y * k - oy);
    }
  }
  // selected drone: ring + label
  if (sel) {
    var sx = sel.x * k - ox, sy = sel.y * k - oy;
    ctx.beginPath(); ctx.arc(sx, sy, R + 6, 0, 2 * Math.PI);
    ctx.lineWidth = 2.5; ctx.strokeStyle = '#111827'; ctx.stroke();
    ctx.lineWidth = 1; ctx.strokeStyle = '#fff';
    ctx.beginPath(); ctx.arc(sx, sy, R + 8, 0, 2 * Math.PI); ctx.stroke();
    var label = sel.id + (sel.online ? (sel.status ? ' · ' + sel.status : '') : ' · offline');
    var w = ctx.measureText(label).width;
    ctx.fillStyle = 'rgba(17,24,39,.85)';
    ctx.fillRect(sx + R + 10, sy - 9, w + 8, 18);
    ctx.fillStyle = '#fff';
    ctx.fillText(label, sx + R + 14, sy);
  }
  // goto target
  if (target) {
    var gx = mx(target.lon) * k - ox, gy = my(target.lat) * k - oy;
    ctx.strokeStyle = '#c2185b'; ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(gx - 8, gy); ctx.lineTo(gx + 8, gy); ctx.moveTo(gx, gy - 8); ctx.lineTo(gx, gy + 8);
    ctx.stroke();
    ctx.beginPath(); ctx.arc(gx, gy, 10, 0, 2 * Math.PI); ctx.stroke();
  }
}

function drawGrid(ctx, m, b, k, ox, oy) {
  var nw = m.unproject(L.point(b.min.x + ox, b.min.y + oy)),
      se = m.unproject(L.point(b.max.x + ox, b.max.y + oy));
  var spanLon = Math.abs(se.lng - nw.lng), width = b.max.x - b.min.x;
  var step = GRID_STEPS[0];
  for (var i = 0; i < GRID_STEPS.length; i++) {
    if (GRID_STEPS[i] * width / spanLon >= 90) step = GRID_STEPS[i]; else break;
  }
  var dec = step >= 1 ? 0 : Math.min(4, Math.ceil(-Math.log10(step) + 1e-9));
  ctx.save();
  ctx.strokeStyle = 'rgba(60,70,80,.18)'; ctx.lineWidth = 1;
  ctx.fillStyle = 'rgba(60,70,80,.65)'; ctx.font = '10px system-ui, sans-serif';
  ctx.beginPath();
  var lon, lat, x, y;
  for (lon = Math.ceil(nw.lng / step) * step; lon <= se.lng; lon += step) {
    x = Math.round(mx(lon) * k - ox) + 0.5;
    ctx.moveTo(x, b.min.y); ctx.lineTo(x, b.max.y);
  }
  for (lat = Math.ceil(se.lat / step) * step; lat <= nw.lat; lat += step) {
    y = Math.round(my(lat) * k - oy) + 0.5;
    ctx.moveTo(b.min.x, y); ctx.lineTo(b.max.x, y);
  }
  ctx.stroke();
  // labels along the visible top/left edges
  var vis = m.getPixelBounds(), top = vis.min.y - oy, left = vis.min.x - ox;
  ctx.textBaseline = 'top';
  for (lon = Math.ceil(nw.lng / step) * step; lon <= se.lng; lon += step) {
    ctx.fillText(lon.toFixed(dec) + '°', Math.round(mx(lon) * k - ox) + 3, top + 3);
  }
  ctx.textBaseline = 'bottom';
  for (lat = Math.ceil(se.lat / step) * step; lat <= nw.lat; lat += step) {
    ctx.fillText(lat.toFixed(dec) + '°', left + 3, Math.round(my(lat) * k - oy) - 2);
  }
  ctx.restore();
}

/* Fit the view to the fleet: at the first data, then again while new drones
 * come in during the first 30 s, until the operator moves the map. */
function maybeFit() {
  if (userMoved || (fitted && performance.now() > 30000)) return;
  var minLat = 90, maxLat = -90, minLon = 180, maxLon = -180, n = 0;
  drones.forEach(function (d) {
    if (!d.hasPos) return;
    n++;
    if (d.lat < minLat) minLat = d.lat; if (d.lat > maxLat) maxLat = d.lat;
    if (d.lon < minLon) minLon = d.lon; if (d.lon > maxLon) maxLon = d.lon;
  });
  if (!n || n === fitCount) return;
  fitted = true;
  fitCount = n;
  map.fitBounds([[minLat, minLon], [maxLat, maxLon]], { padding: [40, 40], maxZoom: 14, animate: false });
}

/* Nearest drone to a container point, within maxPx. */
function droneAt(containerPoint, maxPx) {
  var best = null, bestD = maxPx * maxPx;
  var z = map.getZoom(), k = map.getZoomScale(z, 0), pb = map.getPixelBounds();
  drones.forEach(function (d) {
    if (!d.hasPos) return;
    var dx = d.x * k - pb.min.x - containerPoint.x, dy = d.y * k - pb.min.y - containerPoint.y;
    var dd = dx * dx + dy * dy;
    if (dd <= bestD) { bestD = dd; best = d; }
  });
  return best;
}

var fitTimer = 0;
function maybeFitSoon() {
  if (!fitTimer) fitTimer = setTimeout(function () { fitTimer = 0; maybeFit(); }, 250);
}
['mousedown', 'wheel', 'touchstart', 'keydown'].forEach(function (t) {
  map.getContainer().addEventListener(t, function () { userMoved = true; }, { passive: true });
});

var target = null;    // goto target {lat, lon}
map.on('click', function (e) {
  var d = droneAt(e.containerPoint, 10);
  if (d) { select(d.id, false); return; }
  // empty spot: goto target
  setTarget(e.latlng.lat, e.latlng.lng);
  if ($('cmd-name').value !== 'goto') { $('cmd-name').value = 'goto'; onCmdName(); }
});

/* hover tooltip */
var tip = L.DomUtil.create('div', 'dg-tip', map.getContainer());
tip.style.display = 'none';
var hoverPt = null, hoverReq = 0;
map.on('mousemove', function (e) {
  hoverPt = e.containerPoint;
  if (!hoverReq) hoverReq = requestAnimationFrame(updateTip);
});
map.on('mouseout', function () { hoverPt = null; tip.style.display = 'none'; });
function updateTip() {
  hoverReq = 0;
  var d = hoverPt && droneAt(hoverPt, 8);
  if (!d) { tip.style.display = 'none'; map.getContainer().style.cursor = ''; return; }
  map.getContainer().style.cursor = 'pointer';
  tip.textContent = d.id + ' · ' + (d.online ? (d.status || 'online') : 'offline') +
    (d.battery !== null ? ' · ' + d.battery.toFixed(0) + '%' : '');
  tip.style.display = '';
  var w = tip.offsetWidth, mw = map.getSize().x;
  tip.style.left = (hoverPt.x + 12 + w > mw ? hoverPt.x - 12 - w : hoverPt.x + 12) + 'px';
  tip.style.top = Math.max(0, hoverPt.y - 24) + 'px';
}

/* legend */
var legend = L.control({ position: 'bottomleft' });
legend.onAdd = function () {
  var div = L.DomUtil.create('div', 'legend');
  var items = [['airborne', STATUS_COLOR.airborne], ['takeoff / landing', STATUS_COLOR.takeoff],
    ['returning', STATUS_COLOR.returning], ['landed', STATUS_COLOR.landed],
    ['battery < 30 %', COLOR_WARN], ['battery < 15 %', COLOR_LOW], ['offline', COLOR_OFFLINE]];
  items.forEach(function (it) {
    var row = document.createElement('div'), i = document.createElement('i');
    i.style.background = it[1];
    row.appendChild(i);
    row.appendChild(document.createTextNode(it[0]));
    div.appendChild(row);
  });
  return div;
};
legend.addTo(map);

/* ------------------------------------------------------------- scheduling */
var lastDraw = 0, lastDrawCost = 0, lastTrailDraw = 0, lastList = 0, lastSeenTick = 0, frameReq = 0;
function frame(now) {
  frameReq = requestAnimationFrame(frame);
  if (!map._animatingZoom) {
    if (trailDirty && now - lastTrailDraw >= TRAIL_DRAW_MS) {
      lastTrailDraw = now;
      trails._redraw();        // L.Canvas: clears and calls _draw (above)
      fleetDirty = true;       // the markers' trail stretch starts where the trail now ends
    }
    // markers: at most every DRAW_MS, and spend at most ~1/10 of the time drawing
    // (a 1,000-drone redraw costs a few ms; on a slow machine it backs off to 5 Hz)
    if (fleetDirty && now - lastDraw >= Math.min(200, Math.max(DRAW_MS, lastDrawCost * 10))) {
      lastDraw = now;
      var t0 = performance.now();
      fleet._redraw();
      lastDrawCost = performance.now() - t0;
    }
  }
  if (now - lastList >= LIST_MS) {
    // ages in the list change every second even without data
    if (now - lastSeenTick >= 1000) { lastSeenTick = now; listDirty = true; detailDirty = true; }
    if (listDirty || listSetDirty || detailDirty) {
      lastList = now;
      renderList();
      if (detailDirty) renderDetail();
      renderSummary();
    }
  }
}
frameReq = requestAnimationFrame(frame);

// message rate, once a second
var lastTelemetry = 0;
setInterval(function () {
  stats.rate = stats.telemetry - lastTelemetry;
  lastTelemetry = stats.telemetry;
  $('rate').textContent = stats.rate + ' msg/s';
}, 1000);

/* ------------------------------------------------------------- fleet list */
var scrollEl = $('fleet-scroll'), spacer = $('fleet-spacer');
var pool = [];

function fmtAge(ms) {
  if (ms === null) return '—';
  var s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm';
  if (s < 86400) return Math.floor(s / 3600) + 'h';
  return Math.floor(s / 86400) + 'd';
}
function fmtNum(v, digits) { return v === null ? '—' : v.toFixed(digits); }

function sortKey(d, by) {
  switch (by) {
  case 'battery': return d.battery === null ? 1e9 : d.battery;
  case 'altitude': return d.alt === null ? -1e9 : -d.alt;
  case 'speed': return d.speed === null ? 1e9 : -d.speed;
  case 'seen': return d.lastSeen === null ? 1e18 : -d.lastSeen;
  default: return 0;
  }
}

function rebuildOrder() {
  var f = $('filter').value.trim().toLowerCase(), by = $('sort').value;
  var arr = [];
  drones.forEach(function (d) {
    if (f && d.id.toLowerCase().indexOf(f) < 0 && (d.status || '').toLowerCase().indexOf(f) < 0 &&
        !(f === 'online' && d.online) && !(f === 'offline' && !d.online)) return;
    arr.push(d);
  });
  if (by === 'id') {
    arr.sort(function (a, b) { return a.id < b.id ? -1 : a.id > b.id ? 1 : 0; });
  } else if (by === 'status') {
    arr.sort(function (a, b) {
      var sa = (a.online ? '' : '~') + a.status, sb = (b.online ? '' : '~') + b.status;
      return sa < sb ? -1 : sa > sb ? 1 : (a.id < b.id ? -1 : 1);
    });
  } else {
    arr.sort(function (a, b) { return (sortKey(a, by) - sortKey(b, by)) || (a.id < b.id ? -1 : 1); });
  }
  order = arr.map(function (d) { return d.id; });
  spacer.style.height = (order.length * ROW_H) + 'px';
  listSetDirty = false;
}

function makeRow() {
  var row = document.createElement('div');
  row.className = 'row';
  row.innerHTML = '<span class="c-id"><i class="dot"></i><span></span></span><span></span>' +
    '<span class="num"></span><span class="num"></span><span class="num"></span><span class="num"></span>';
  var c = row.children;
  row._dot = c[0].firstChild; row._id = c[0].lastChild;
  row._cells = [c[1], c[2], c[3], c[4], c[5]];
  row._last = ['', '', '', '', '', '', ''];
  row.addEventListener('click', function () { if (row._droneId) select(row._droneId, true); });
  scrollEl.appendChild(row);
  return row;
}

function setText(row, i, el, text) {
  if (row._last[i] !== text) { row._last[i] = text; el.textContent = text; }
}

function renderList() {
  var t0 = performance.now();
  var by = $('sort').value;
  // sorted by a live value: re-sort on each (throttled) refresh
  if (listSetDirty || (by !== 'id' && listDirty)) rebuildOrder();
  var h = scrollEl.clientHeight || 300;
  var first = Math.max(0, Math.floor(scrollEl.scrollTop / ROW_H) - 2);
  var count = Math.ceil(h / ROW_H) + 4;
  while (pool.length < count) pool.push(makeRow());
  for (var j = 0; j < pool.length; j++) {
    var row = pool[j], i = first + j;
    if (j >= count || i >= order.length) {
      if (row._droneId !== null) {
        row.style.display = 'none'; row._droneId = null; row._top = -1;
        row.removeAttribute('data-id');
      }
      continue;
    }
    var d = drones.get(order[i]);
    if (row._droneId !== d.id || row._top !== i) {
      row.style.transform = 'translateY(' + (i * ROW_H) + 'px)';
      row.style.display = '';
      row._top = i;
    }
    if (row._droneId !== d.id) { row._droneId = d.id; row.dataset.id = d.id; }
    var sel = d.id === selectedId;
    if (row._sel !== sel) { row._sel = sel; row.classList.toggle('sel', sel); }
    var col = d.color;
    if (row._col !== col) { row._col = col; row._dot.style.background = col; }
    setText(row, 0, row._id, d.id);
    setText(row, 1, row._cells[0], d.online ? (d.status || 'online') : 'offline');
    if (row._off !== !d.online) { row._off = !d.online; row._cells[0].classList.toggle('off', !d.online); }
    setText(row, 2, row._cells[1], d.battery === null ? '—' : d.battery.toFixed(0) + '%');
    var low = d.battery !== null && d.battery < 15;
    if (row._low !== low) { row._low = low; row._cells[1].classList.toggle('low', low); }
    setText(row, 3, row._cells[2], fmtNum(d.alt, 0));
    setText(row, 4, row._cells[3], fmtNum(d.speed, 1));
    setText(row, 5, row._cells[4], fmtAge(d.lastSeen));
  }
  listDirty = false;
  var dt = performance.now() - t0;
  stats.listRenders++; stats.listMsTotal += dt;
}

scrollEl.addEventListener('scroll', function () { listDirty = true; lastList = 0; }, { passive: true });
$('filter').addEventListener('input', function () { listSetDirty = true; scrollEl.scrollTop = 0; });
$('sort').addEventListener('change', function () { listSetDirty = true; });
window.addEventListener('resize', function () { listDirty = true; });

function renderSummary() {
  var n = drones.size, on = 0;
  drones.forEach(function (d) { if (d.online) on++; });
  $('summary').textContent = n + ' drones · ' + on + ' online';
}

/* -------------------------------------------------------------- selection */
function select(id, pan) {
  if (selectedId !== id) backfillTrail(id);
  selectedId = id;
  var d = drones.get(id);
  $('cmd-drone').value = id;
  detailDirty = listDirty = fleetDirty = true;
  if (pan && d && d.hasPos && !map.getBounds().pad(-0.1).contains([d.lat, d.lon])) {
    map.panTo([d.lat, d.lon], { animate: false });
  }
  // bring the row into view when selected from the map
  var i = order.indexOf(id);
  if (i >= 0 && !pan) {
    var top = i * ROW_H;
    if (top < scrollEl.scrollTop || top + ROW_H > scrollEl.scrollTop + scrollEl.clientHeight) {
      scrollEl.scrollTop = Math.max(0, top - scrollEl.clientHeight / 2);
    }
  }
}

/* The page only sees live data since it was opened: on selection, fill the
 * drone's trail with the last TRAIL_MAX seconds from the history API. */
function backfillTrail(id) {
  var from = new Date(Date.now() - TRAIL_MAX * TRAIL_STEP_MS).toISOString();
  api('api/v1/drones/' + encodeURIComponent(id) + '/telemetry?format=json&limit=5000&from=' + encodeURIComponent(from))
    .then(function (r) {
      var d = drones.get(id);
      if (!d || r.status !== 200 || !r.body || !Array.isArray(r.body.telemetry)) return;
      var pts = [], last = -Infinity;
      r.body.telemetry.forEach(function (t) {
        var ts = parseTime(t.timestamp), lat = num(t.latitude), lon = num(t.longitude);
        if (ts === null || lat === null || lon === null || ts - last < TRAIL_STEP_MS) return;
        last = ts;
        pts.push(mx(lon), my(lat));
      });
      var n = Math.min(pts.length / 2, TRAIL_MAX);
      if (n <= d.tLen) return;                 // the live trail is already as long
      var off = pts.length / 2 - n;
      d.tTotal = 0; d.tLen = 0; d.tDrawn = 0;
      for (var i = 0; i < n; i++) {
        var j = d.tTotal % TRAIL_MAX;
        d.trail[2 * j] = pts[2 * (off + i)]; d.trail[2 * j + 1] = pts[2 * (off + i) + 1];
        d.tTotal++; d.tLen++;
      }
      d.tLast = Date.now();
      trailDirty = fleetDirty = true;
    }).catch(function () {});
}

function renderDetail() {
  detailDirty = false;
  var d = selectedId && drones.get(selectedId);
  $('det-id').textContent = selectedId || '—';
  var body = $('det-body');
  if (!d) return;
  var items = [
    ['state', d.online ? (d.status || 'online') : 'offline'],
    ['battery', d.battery === null ? '—' : d.battery.toFixed(1) + ' %'],
    ['seen', fmtAge(d.lastSeen) + ' ago'],
    ['lat', d.lat === null ? '—' : d.lat.toFixed(6)],
    ['lon', d.lon === null ? '—' : d.lon.toFixed(6)],
    ['alt', fmtNum(d.alt, 1) + ' m'],
    ['speed', fmtNum(d.speed, 1) + ' m/s'],
    ['heading', fmtNum(d.heading, 0) + '°'],
    ['climb', fmtNum(d.climb, 1) + ' m/s']
  ];
  if (!body._cells) {
    body.textContent = '';
    body._cells = items.map(function (it) {
      var div = document.createElement('div'), k = document.createElement('span'), v = document.createElement('b');
      k.className = 'k'; k.textContent = it[0] + ' ';
      div.appendChild(k); div.appendChild(v); body.appendChild(div);
      return v;
    });
  }
  items.forEach(function (it, i) {
    if (body._cells[i].textContent !== it[1]) body._cells[i].textContent = it[1];
  });
  if ($('follow').checked && d.hasPos) {
    var c = map.getCenter();
    if (Math.abs(c.lat - d.lat) > 1e-7 || Math.abs(c.lng - d.lon) > 1e-7) map.panTo([d.lat, d.lon], { animate: false });
  }
}

/* ---------------------------------------------------------------- history */
var trackLayer = null;

function toLocalInput(ms) {
  var d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}
function fromLocalInput(v) {
  if (!v) return null;
  var t = new Date(v).getTime();          // datetime-local is parsed as local time
  return isNaN(t) ? null : t;
}
function presetRange() {
  var p = $('hist-range').value;
  if (p === 'custom') return;
  var now = Date.now();
  $('hist-from').value = toLocalInput(now - Number(p) * 1000);
  $('hist-to').value = toLocalInput(now);
}
presetRange();
$('hist-range').addEventListener('change', presetRange);
['hist-from', 'hist-to'].forEach(function (id) {
  $(id).addEventListener('input', function () { $('hist-range').value = 'custom'; });
});

function loadHistory() {
  var id = selectedId || $('cmd-drone').value.trim();
  var info = $('hist-info');
  if (!id) { info.textContent = 'select a drone first'; return Promise.resolve(null); }
  presetRange();
  var from = fromLocalInput($('hist-from').value), to = fromLocalInput($('hist-to').value);
  var limit = Math.max(1, Math.min(100000, Number($('hist-limit').value) || 5000));
  var q = new URLSearchParams({ format: 'geojson', limit: String(limit) });
  if (from !== null) q.set('from', new Date(from).toISOString());
  if (to !== null) q.set('to', new Date(to).toISOString());
  info.textContent = 'loading…';
  return api('api/v1/drones/' + encodeURIComponent(id) + '/telemetry?' + q.toString()).then(function (r) {
    if (r.status !== 200 || !r.body || !Array.isArray(r.body.features)) {
      info.textContent = 'error: ' + ((r.body && r.body.error) || ('HTTP ' + r.status));
      return null;
    }
    var pts = [];
    r.body.features.forEach(function (f) {
      var c = f && f.geometry && f.geometry.coordinates;
      if (c && isFinite(c[0]) && isFinite(c[1])) pts.push([c[1], c[0]]);
    });
    clearHistory();
    var feats = r.body.features;
    if (!pts.length) { info.textContent = id + ': no points in range'; return { id: id, points: 0 }; }
    trackLayer = L.featureGroup([
      L.polyline(pts, { renderer: trackRenderer, color: '#c2185b', weight: 3, opacity: 0.85, interactive: false }),
      L.circleMarker(pts[0], { renderer: trackRenderer, radius: 5, color: '#fff', weight: 2, fillColor: '#16a34a', fillOpacity: 1 })
        .bindTooltip('start ' + ((feats[0].properties || {}).timestamp || '')),
      L.circleMarker(pts[pts.length - 1], { renderer: trackRenderer, radius: 5, color: '#fff', weight: 2, fillColor: '#c2185b', fillOpacity: 1 })
        .bindTooltip('end ' + ((feats[feats.length - 1].properties || {}).timestamp || ''))
    ]).addTo(map);
    map.fitBounds(trackLayer.getBounds(), { padding: [30, 30], maxZoom: 17, animate: false });
    $('follow').checked = false;
    var t0 = (feats[0].properties || {}).timestamp, t1 = (feats[feats.length - 1].properties || {}).timestamp;
    info.textContent = id + ': ' + pts.length + ' points' +
      (t0 ? ', ' + new Date(t0).toLocaleTimeString() + '–' + new Date(t1).toLocaleTimeString() : '') +
      (pts.length >= limit ? ' (limit)' : '');
    return { id: id, points: pts.length };
  }).catch(function (e) { info.textContent = 'error: ' + e.message; return null; });
}
function clearHistory() {
  if (trackLayer) { map.removeLayer(trackLayer); trackLayer = null; }
}
$('hist-load').addEventListener('click', loadHistory);
$('hist-clear').addEventListener('click', function () { clearHistory(); $('hist-info').textContent = ''; });

/* --------------------------------------------------------------- commands */
var commands = new Map();       // id -> {cmd, li, polling}
var cmdList = $('cmd-list');

function setTarget(lat, lon) {
  target = { lat: lat, lon: lon };
  $('cmd-lat').value = lat.toFixed(6);
  $('cmd-lon').value = lon.toFixed(6);
  fleetDirty = true;
}
function onCmdName() {
  var g = $('cmd-name').value === 'goto';
  $('goto-args').style.display = g ? '' : 'none';
  $('goto-hint').style.display = g ? '' : 'none';
}
$('cmd-name').addEventListener('change', onCmdName);
onCmdName();
['cmd-lat', 'cmd-lon'].forEach(function (id) {
  $(id).addEventListener('change', function () {
    var la = Number($('cmd-lat').value), lo = Number($('cmd-lon').value);
    if ($('cmd-lat').value && $('cmd-lon').value && isFinite(la) && isFinite(lo)) { target = { lat: la, lon: lo }; fleetDirty = true; }
  });
});

function updateCommand(c, fromLive) {
  var e = commands.get(c.id);
  if (!e) {
    if (!fromLive) return;
    e = addCommandRow(c.id, c.drone_id || '?', c.name || '?');
  }
  var old = e.cmd.status;
  // never go back (a slow poll answer may arrive after a newer live event)
  if (old && STATUS_RANK[c.status] !== undefined && STATUS_RANK[old] !== undefined &&
      STATUS_RANK[c.status] < STATUS_RANK[old]) return;
  for (var k in c) e.cmd[k] = c[k];
  renderCommand(e);
}

function addCommandRow(id, droneId, name) {
  var li = document.createElement('li');
  li.dataset.cmdId = id;
  li.innerHTML = '<span class="cmd-what"></span><span class="cmd-status"></span><span class="cmd-msg"></span>';
  cmdList.insertBefore(li, cmdList.firstChild);
  var e = { cmd: { id: id, drone_id: droneId, name: name, status: '' }, li: li, timer: 0, t0: Date.now() };
  commands.set(id, e);
  while (cmdList.children.length > CMD_KEEP) {
    var last = cmdList.lastChild, old = commands.get(last.dataset.cmdId);
    if (old) { clearTimeout(old.timer); commands.delete(old.cmd.id); }
    cmdList.removeChild(last);
  }
  return e;
}

function renderCommand(e) {
  var c = e.cmd, li = e.li;
  var when = parseTime(c.updated_at) || Date.now();
  li.querySelector('.cmd-what').textContent = c.name + ' → ' + c.drone_id + ' · ' + new Date(when).toLocaleTimeString();
  var st = li.querySelector('.cmd-status');
  st.textContent = c.status || '…';
  st.className = 'cmd-status st-' + (c.status || 'pending');
  li.dataset.status = c.status || '';
  li.querySelector('.cmd-msg').textContent = c.message || '';
  li.querySelector('.cmd-msg').style.display = c.message ? '' : 'none';
}

function pollCommand(e) {
  clearTimeout(e.timer);
  if (TERMINAL[e.cmd.status] || Date.now() - e.t0 > 10 * 60 * 1000) return;
  e.timer = setTimeout(function () {
    api('api/v1/commands/' + encodeURIComponent(e.cmd.id)).then(function (r) {
      if (r.status === 200 && r.body && r.body.id === e.cmd.id) updateCommand(r.body, false);
    }).catch(function () {}).then(function () {
      if (commands.get(e.cmd.id) === e) pollCommand(e);
    });
  }, CMD_POLL_MS);
}

function sendCommand(ev) {
  if (ev) ev.preventDefault();
  var err = $('cmd-error');
  err.textContent = '';
  var id = $('cmd-drone').value.trim(), name = $('cmd-name').value;
  if (!id) { err.textContent = 'choose a drone'; return Promise.resolve(null); }
  var body = { name: name };
  if (name === 'goto') {
    var lat = $('cmd-lat').value, lon = $('cmd-lon').value, alt = $('cmd-alt').value;
    if (lat === '' || lon === '') { err.textContent = 'goto: click the map or type lat/lon'; return Promise.resolve(null); }
    // the gateway needs an altitude: blank means "keep the current one"
    if (alt === '') {
      var cur = drones.get(id);
      if (!cur || cur.alt === null) { err.textContent = 'goto: type the altitude (m AMSL)'; return Promise.resolve(null); }
      alt = String(Math.round(cur.alt));
    }
    body.args = { lat: Number(lat), lon: Number(lon), alt: Number(alt) };
  } else {
    body.args = {};
  }
  $('cmd-send').disabled = true;
  return api('api/v1/drones/' + encodeURIComponent(id) + '/commands', { method: 'POST', body: body }).then(function (r) {
    if ((r.status === 202 || r.status === 200 || r.status === 201) && r.body && typeof r.body.id === 'string') {
      var e = commands.get(r.body.id) || addCommandRow(r.body.id, id, name);
      updateCommand({ id: r.body.id, drone_id: id, name: name, status: r.body.status || 'pending' }, false);
      pollCommand(e);
      return r.body.id;
    }
    err.textContent = (r.body && r.body.error) || ('HTTP ' + r.status);
    return null;
  }).catch(function (e) {
    err.textContent = 'error: ' + e.message;
    return null;
  }).then(function (res) { $('cmd-send').disabled = false; return res; });
}
$('cmd-form').addEventListener('submit', sendCommand);

/* ------------------------------------------------------------------- live */
var pollTimer = 0, liveOK = false;

function setConn(cls, text) {
  var c = $('conn');
  c.className = 'conn ' + cls;
  c.textContent = text;
}

function pollDrones(cursor) {
  // used at start and while the live stream is down; pages via next_cursor
  var q = 'api/v1/drones?limit=5000' + (typeof cursor === 'string' ? '&cursor=' + encodeURIComponent(cursor) : '');
  return api(q).then(function (r) {
    if (r.status === 200 && r.body && Array.isArray(r.body.drones)) {
      applyDroneList(r.body.drones);
      if (typeof r.body.next_cursor === 'string') return pollDrones(r.body.next_cursor);
    }
  }).catch(function () {});
}
function startPolling() {
  if (pollTimer) return;
  pollTimer = setInterval(pollDrones, 5000);
}
function stopPolling() { clearInterval(pollTimer); pollTimer = 0; }

/* The WebSocket lives in a worker (live-worker.js): it parses every event and
 * hands over batches (newest telemetry per drone) at most every 50 ms. */
var liveWorker = null;
function connectLive() {
  var u = new URL('api/v1/live', document.baseURI);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  if (token) u.searchParams.set('token', token);
  setConn('conn-wait', 'connecting…');
  liveWorker = new Worker(new URL('live-worker.js', document.baseURI).toString());
  liveWorker.onmessage = function (e) {
    var m = e.data;
    switch (m.kind) {
    case 'events':
      stats.events += m.total;
      stats.telemetry += m.telemetry;
      for (var i = 0; i < m.events.length; i++) onEvent(m.events[i]);
      break;
    case 'open':
      liveOK = true;
      setConn('conn-live', 'live');
      stopPolling();
      break;
    case 'closed':
      liveOK = false;
      stats.reconnects++;
      setConn('conn-down', 'offline · retry in ' + Math.ceil(m.retryMs / 1000) + 's');
      startPolling();
      break;
    }
  };
  liveWorker.onerror = function (e) {
    console.warn('dronegate: live worker failed:', e.message);
    setConn('conn-down', 'live stream unavailable');
    startPolling();
  };
  liveWorker.postMessage({ type: 'connect', url: u.toString() });
}

pollDrones();
connectLive();

/* ---------------------------------------------------------------- test hook */
window.__dg = {
  version: 1,
  map: map,
  stats: stats,
  get live() { return liveOK; },
  get selected() { return selectedId; },
  get count() { return drones.size; },
  drone: function (id) {
    var d = drones.get(id);
    return d ? { id: d.id, online: d.online, lat: d.lat, lon: d.lon, alt: d.alt, speed: d.speed,
                 heading: d.heading, battery: d.battery, status: d.status, seq: d.seq,
                 lastSeen: d.lastSeen, trail: d.tLen } : null;
  },
  drones: function () {
    var out = [];
    drones.forEach(function (d) {
      out.push({ id: d.id, online: d.online, lat: d.lat, lon: d.lon, alt: d.alt, status: d.status,
                 battery: d.battery, seq: d.seq, trail: d.tLen });
    });
    return out;
  },
  /* screen position (container px) of a drone, to click it in tests */
  point: function (id) {
    var d = drones.get(id);
    if (!d || !d.hasPos) return null;
    var p = map.latLngToContainerPoint([d.lat, d.lon]);
    return { x: p.x, y: p.y };
  },
  commands: function () {
    var out = [];
    commands.forEach(function (e) { out.push(Object.assign({}, e.cmd)); });
    return out;
  },
  select: select,
  loadHistory: loadHistory,
  get baseLayer() { return baseName; },
  configLoaded: configLoaded,
  get trackPoints() { return trackLayer ? trackLayer.getLayers()[0].getLatLngs().length : 0; }
};
})();
