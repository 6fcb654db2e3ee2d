// Browser tests of the dashboard (web/), against the real gateway and simulator.
//
//   node --test tests/browser/        (tests/browser/run.sh installs what is missing)
//
// Starts build/dronegate (env DRONEGATE_BIN) on a free port with a temporary
// SQLite store and --web-root web/, starts build/dronegate-sim (env
// DRONEGATE_SIM) with 20 drones at 5 Hz, drives Debian's /usr/bin/chromium
// (env CHROMIUM) headless through playwright-core, and checks what an operator
// does: the page loads cleanly (no console errors, no failed or external
// requests), drones appear and move, a goto command sent from the form reaches
// the drone and turns `done`, a history track loads; saves a 1280x800
// screenshot (env DG_SCREENSHOT, default docs/dashboard.png); measures frame
// rate and long tasks with 1,000 more drones at 1 Hz; and, on a second gateway
// with auth on, checks the operator token from the URL (full and read-only
// scope, none) and the live stream's reconnect after a gateway restart.
//
// Every process started here is stopped in after() (and on exit). The file
// takes 80-100 s (drones climb for ~25 s before they fly); each step has its
// own timeout. Set DG_VERBOSE=1 for more timings, DG_KEEP_TMP=1 to keep logs.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const BIN = process.env.DRONEGATE_BIN || path.join(ROOT, 'build/dronegate');
const SIM = process.env.DRONEGATE_SIM || path.join(ROOT, 'build/dronegate-sim');
const WEB = process.env.DRONEGATE_WEB_ROOT || path.join(ROOT, 'web');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOT = path.resolve(ROOT, process.env.DG_SCREENSHOT || 'docs/dashboard.png');
const N_DRONES = 20, RATE = 5, N_LOAD = 1000;

const procs = new Set();       // child processes still running
let tmp, port, base, gateway, context, page, simStarted;
const allowedOrigins = new Set();  // the gateways started here
const problems = [];           // console errors, page errors, failed requests, HTTP >= 400
const log = (...a) => console.log('#', ...a);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

function start(name, cmd, args) {
  const out = fs.openSync(path.join(tmp, `${name}.log`), 'a');
  const p = spawn(cmd, args, { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  p.name = name;
  p.exited = new Promise((r) => p.on('exit', (code, sig) => { procs.delete(p); r({ code, sig }); }));
  p.on('error', (e) => log(`${name}: ${e.message}`));
  procs.add(p);
  return p;
}

async function stop(p, ms = 8000) {
  if (!p || !procs.has(p)) return p ? p.exited : undefined;
  const t0 = Date.now();
  p.kill('SIGTERM');
  const r = await Promise.race([p.exited, sleep(ms).then(() => null)]);
  if (process.env.DG_VERBOSE) log(`${p.name} stopped in ${Date.now() - t0} ms`);
  if (r) return r;
  log(`${p.name} did not stop within ${ms} ms: SIGKILL`);
  p.kill('SIGKILL');
  return p.exited;
}

process.on('exit', () => { for (const p of procs) { try { p.kill('SIGKILL'); } catch { /* gone */ } } });

function tail(name, n = 30) {
  try { return fs.readFileSync(path.join(tmp, `${name}.log`), 'utf8').split('\n').slice(-n).join('\n'); }
  catch { return ''; }
}

async function waitFor(what, fn, { timeout = 10000, every = 200 } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}` + (last instanceof Error ? `: ${last.message}` : ''));
    await sleep(every);
  }
}

// Click a drone's row in the (virtual) fleet list, where it is on screen, as a
// person does: the row must be shown and be what is under the pointer there.
// Done once the page has selected the drone: a list that re-rendered between
// finding the row and the click (a filter just typed moves rows; CI saw the
// click land on no row) gets the row found and clicked again.
async function clickRow(id) {
  await waitFor(`${id} selected by a click on its row`, async () => {
    await clickRowOnce(id);
    return page.evaluate((id) => new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(
      () => ok(window.__dg.selected === id)))), id);
  }, { timeout: 10000, every: 100 });
}

async function clickRowOnce(id) {
  const sel = `#fleet-scroll .row[data-id="${id}"]`;
  const at = await waitFor(`the row of ${id} on screen`, () => page.evaluate((sel) => {
    const r = document.querySelector(sel);
    if (!r || r.style.display === 'none') return null;
    const b = r.getBoundingClientRect(), x = b.left + b.width / 2, y = b.top + b.height / 2;
    const hit = document.elementFromPoint(x, y);
    return b.width > 0 && b.height > 0 && hit && r.contains(hit) ? { x, y } : null;
  }, sel), { timeout: 5000, every: 100 }).catch(async (e) => {
    const state = await page.evaluate(() => {
      const sc = document.getElementById('fleet-scroll');
      return `filter="${document.getElementById('filter').value}" scrollTop=${sc.scrollTop} clientHeight=${sc.clientHeight} ` +
        [...sc.querySelectorAll('.row')].filter((r) => r.style.display !== 'none').map((r) => {
          const b = r.getBoundingClientRect();
          return `${r.dataset.id || '-'}/${r.style.transform}/${Math.round(b.left)},${Math.round(b.top)},${Math.round(b.width)}x${Math.round(b.height)}/checkVisibility=${r.checkVisibility()}`;
        }).join(' ');
    });
    throw new Error(`${e.message}\nfleet list: ${state}`);
  });
  await page.mouse.click(at.x, at.y);
}

async function getJSON(p) {
  const r = await fetch(base + p);
  return { status: r.status, body: await r.json() };
}

before(async () => {
  for (const [what, f] of [['gateway (DRONEGATE_BIN)', BIN], ['simulator (DRONEGATE_SIM)', SIM], ['chromium (CHROMIUM)', CHROMIUM]]) {
    assert.ok(fs.existsSync(f), `${what} not found at ${f}: build with 'make build/dronegate build/dronegate-sim', install with tests/browser/run.sh`);
  }
  assert.ok(fs.existsSync(path.join(WEB, 'vendor/leaflet/leaflet.js')), `${WEB}/vendor is missing: run web/build.sh`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dg-browser-'));
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  gateway = start('gateway', BIN, ['--listen', `127.0.0.1:${port}`, '--store', `sqlite:${tmp}/dg.db`, '--web-root', WEB]);
  await waitFor('GET /healthz -> 200', async () => {
    if (!procs.has(gateway)) throw new Error(`gateway exited:\n${tail('gateway')}`);
    const r = await fetch(base + '/healthz').catch(() => null);
    return r && r.status === 200;
  }, { timeout: 15000, every: 100 });
  simStarted = Date.now();
  start('sim', SIM, ['--url', `ws://127.0.0.1:${port}`, '--drones', String(N_DRONES), '--rate', String(RATE),
    '--duration', '170', '--quiet']);

  context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 800 },
    timeout: 30000,
  });
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`); });
  // Only the gateway: any other host would be a CDN or tile server.
  allowedOrigins.add(base);
  await context.route((u) => u.protocol !== 'data:' && !allowedOrigins.has(u.origin), (route) => {
    problems.push(`external request: ${route.request().url()}`);
    return route.abort();
  });
});

after(async () => {
  if (context) await context.close().catch((e) => log(`closing chromium: ${e.message}`));
  for (const p of [...procs].filter((p) => p !== gateway)) await stop(p);
  if (gateway) {
    const r = await stop(gateway);
    if (r && r.code !== 0) log(`gateway exit ${JSON.stringify(r)}:\n${tail('gateway')}`);
  }
  if (tmp && !process.env.DG_KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
  else if (tmp) log(`logs kept in ${tmp}`);
});

test('the dashboard loads from the gateway with no console errors and goes live', async () => {
  const t0 = Date.now();
  const resp = await page.goto(base + '/', { waitUntil: 'load' });
  assert.equal(resp.status(), 200);
  assert.match(await page.title(), /dronegate/);
  await waitFor('the live stream to be open', () => page.evaluate(() => window.__dg && window.__dg.live), { timeout: 10000 });
  await waitFor('the header to say "live"', async () => (await page.textContent('#conn')).trim() === 'live');
  // the world outline is drawn from world-atlas (a canvas in the base pane)
  await waitFor('the basemap canvas', () => page.evaluate(() => !!document.querySelector('.leaflet-base-pane canvas')));
  log(`page live after ${Date.now() - t0} ms`);
  assert.deepEqual(problems, []);
});

test('simulated drones appear in the fleet list and their markers move', async () => {
  const n = await waitFor(`${N_DRONES} drones on the page`, async () => {
    const c = await page.evaluate(() => window.__dg.count);
    return c >= N_DRONES && c;
  }, { timeout: 15000 });
  assert.equal(n, N_DRONES);
  const summary = await page.textContent('#summary');
  assert.match(summary, new RegExp(`^${N_DRONES} drones · ${N_DRONES} online`));
  const rows = await page.$$eval('#fleet-scroll .row', (rs) => rs.filter((r) => r.style.display !== 'none').map((r) => ({
    id: r.dataset.id, cells: [...r.children].map((c) => c.textContent) })));
  assert.ok(rows.length >= 10, `only ${rows.length} rows visible`);
  assert.equal(rows[0].id, 'sim-0000');
  assert.match(rows[0].cells[2], /^\d+%$/, 'battery column');
  assert.match(rows[0].cells[3], /^\d+$/, 'altitude column');
  assert.match(rows[0].cells[5], /^\d+s$/, 'last seen column');

  // Drones take off vertically first (3 m/s to 60-120 m), so horizontal
  // movement starts some 20-45 s after the simulator; wait for it.
  const t0 = Date.now();
  const moved = await waitFor('markers to move on the map', async () => {
    const a = await page.evaluate(() => window.__dg.drones().map((d) => [d.id, d.lat, d.lon, window.__dg.point(d.id)]));
    // not a fixed pause: until about 8 new positions per drone have arrived
    const e0 = await page.evaluate(() => window.__dg.stats.telemetry);
    await waitFor('new positions', () => page.evaluate((n) => window.__dg.stats.telemetry >= n, e0 + 8 * N_DRONES),
      { timeout: 30000, every: 50 });
    const b = new Map(await page.evaluate(() => window.__dg.drones().map((d) => [d.id, [d.lat, d.lon, window.__dg.point(d.id)]])));
    const m = a.filter(([id, lat, lon, p]) => {
      const [lat2, lon2, p2] = b.get(id);
      const metres = Math.hypot((lat2 - lat) * 111195, (lon2 - lon) * 111195 * Math.cos(lat * Math.PI / 180));
      return metres > 5 && p && p2 && Math.hypot(p2.x - p.x, p2.y - p.y) > 0;
    });
    return m.length >= 3 && m.map((x) => x[0]);
  }, { timeout: 70000, every: 0 });
  log(`${moved.length} drones moved horizontally (first seen ${Date.now() - t0} ms into the wait)`);
  // and the map really is redrawn: the map's pixels change as they fly
  const shotA = await page.locator('#map').screenshot();
  await waitFor('the map to be redrawn with new positions', async () =>
    !shotA.equals(await page.locator('#map').screenshot()), { timeout: 15000, every: 100 });
  // a click on a marker selects that drone (centred first: clear of the map's controls)
  await page.evaluate((id) => { const d = window.__dg.drone(id); window.__dg.map.setView([d.lat, d.lon], 13, { animate: false }); }, moved[0]);
  const mp = await page.evaluate((id) => window.__dg.point(id), moved[0]);
  const mbox = await page.locator('#map').boundingBox();
  await page.mouse.click(mbox.x + mp.x, mbox.y + mp.y);
  assert.equal(await page.evaluate(() => window.__dg.selected), moved[0]);
  await waitFor('the detail panel', async () => (await page.textContent('#det-id')) === moved[0]);
  assert.equal(await page.inputValue('#cmd-drone'), moved[0]);
  const trail = await page.evaluate((id) => window.__dg.drone(id).trail, moved[0]);
  assert.ok(trail >= 2, `trail of ${moved[0]} has ${trail} points`);
  // the list follows too: the row of a moving drone shows fresh data
  await page.fill('#filter', moved[0]);
  await waitFor('the filtered row', () => page.$eval(`#fleet-scroll .row[data-id="${moved[0]}"]`, (r) => r.style.display !== 'none').catch(() => false));
  const row = await page.$eval(`#fleet-scroll .row[data-id="${moved[0]}"]`, (r) => [...r.children].map((c) => c.textContent));
  assert.ok(!['landed', 'offline'].includes(row[1]), `state column: ${row[1]}`);
  assert.ok(Number(row[4]) > 0, `speed column: ${row[4]}`);
  await page.fill('#filter', '');
  assert.deepEqual(problems, []);
});

test('a goto command sent from the form reaches the drone and its status turns done', async () => {
  // an error from the server is shown, not swallowed
  await page.fill('#cmd-drone', 'no-such-drone');
  await page.selectOption('#cmd-name', 'land');
  await page.click('#cmd-send');
  await waitFor('the error message', async () => (await page.textContent('#cmd-error')).trim());
  log(`command to an unknown drone: "${(await page.textContent('#cmd-error')).trim()}"`);
  // (the 404 of that POST is expected; nothing else)
  const unexpected = problems.filter((x) => !/HTTP 404: .*\/api\/v1\/drones\/no-such-drone\/commands$/.test(x) &&
    !/Failed to load resource: the server responded with a status of 404/.test(x));
  problems.length = 0;
  assert.deepEqual(unexpected, []);

  // an airborne drone (a landed one would take off first: too slow for a test)
  // (the one nearest the middle of the fleet: it is in the screenshot below)
  const id = await waitFor('an airborne drone', () => page.evaluate(() => {
    const all = window.__dg.drones().filter((x) => x.lat !== null);
    const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
    const clat = mean(all.map((x) => x.lat)), clon = mean(all.map((x) => x.lon));
    const d = all.filter((x) => x.status === 'airborne' && x.battery > 40)
      .sort((a, b) => Math.hypot(a.lat - clat, a.lon - clon) - Math.hypot(b.lat - clat, b.lon - clon));
    return d.length ? d[0].id : null;
  }), { timeout: 30000 });
  // select it in the list, the way an operator does
  await page.fill('#filter', id);
  await clickRow(id);
  assert.equal(await page.inputValue('#cmd-drone'), id);
  assert.equal(await page.evaluate(() => window.__dg.selected), id);
  await page.selectOption('#cmd-name', 'goto');

  // zoom in on the drone and click the map 60 px east of it: the target is
  // filled in from the click (about 50 m away at zoom 17)
  await page.evaluate((id) => { const d = window.__dg.drone(id); window.__dg.map.setView([d.lat, d.lon], 17, { animate: false }); }, id);
  // altitude left blank: the page sends the drone's current altitude
  const p = await page.evaluate((id) => window.__dg.point(id), id);
  const box = await page.locator('#map').boundingBox();
  await page.mouse.click(box.x + p.x + 60, box.y + p.y);
  const lat = Number(await page.inputValue('#cmd-lat')), lon = Number(await page.inputValue('#cmd-lon'));
  assert.ok(Number.isFinite(lat) && Number.isFinite(lon) && lat !== 0, `goto target from the map click: ${lat}, ${lon}`);
  const d0 = await page.evaluate((id) => window.__dg.drone(id), id);
  const dist0 = Math.hypot((lat - d0.lat) * 111195, (lon - d0.lon) * 111195 * Math.cos(lat * Math.PI / 180));
  assert.ok(dist0 > 10 && dist0 < 200, `target is ${dist0.toFixed(0)} m from the drone`);

  const t0 = Date.now();
  await page.click('#cmd-send');
  const li = await waitFor('the command in the list', async () => {
    const e = (await page.textContent('#cmd-error')).trim();
    if (e) throw new Error(`the page shows an error: ${e}`);
    return page.$('#cmd-list li[data-cmd-id]');
  });
  const cmdId = await li.getAttribute('data-cmd-id');
  assert.match(cmdId, /\S/);
  assert.equal(await page.textContent('#cmd-error'), '');
  const seen = [];
  await waitFor('the command status to turn done', async () => {
    const s = await li.getAttribute('data-status');
    if (seen[seen.length - 1] !== s) seen.push(s);
    if (['rejected', 'expired'].includes(s)) throw new Error(`command ${s}: ${await li.textContent()}`);
    return s === 'done';
  }, { timeout: 45000, every: 50 });
  log(`goto ${id} ${dist0.toFixed(0)} m: statuses seen on the page ${seen.join(' -> ')} in ${Date.now() - t0} ms`);
  assert.equal((await page.textContent(`#cmd-list li[data-cmd-id="${cmdId}"] .cmd-status`)).trim(), 'done');
  // the server agrees, and the drone is where it was sent
  const srv = await getJSON(`/api/v1/commands/${encodeURIComponent(cmdId)}`);
  assert.equal(srv.status, 200);
  assert.equal(srv.body.status, 'done');
  assert.equal(srv.body.drone_id, id);
  assert.equal(srv.body.name, 'goto');
  assert.ok(Math.abs(srv.body.args.lat - lat) < 1e-6 && Math.abs(srv.body.args.lon - lon) < 1e-6, JSON.stringify(srv.body.args));
  // the page shows the drone at the target (its next positions; no fixed pause)
  const missOf = (d1) => Math.hypot((lat - d1.lat) * 111195, (lon - d1.lon) * 111195 * Math.cos(lat * Math.PI / 180));
  await waitFor('the drone at the goto target on the page', async () =>
    missOf(await page.evaluate((id) => window.__dg.drone(id), id)) < 10, { timeout: 10000, every: 100 })
    .catch(async () => {
      const d1 = await page.evaluate((id) => window.__dg.drone(id), id);
      assert.fail(`drone is ${missOf(d1).toFixed(1)} m from the goto target`);
    });

});

test('the history track of a drone loads for a chosen time range', async () => {
  const id = await page.evaluate(() => window.__dg.selected);
  assert.ok(id);
  await page.selectOption('#hist-range', '300');   // last 5 minutes
  await page.click('#hist-load');
  await waitFor('the track info', async () => /points/.test(await page.textContent('#hist-info')));
  const info = await page.textContent('#hist-info');
  const pts = await page.evaluate(() => window.__dg.trackPoints);
  log(`history: ${info}`);
  assert.match(info, new RegExp(`^${id}: \\d+ points`));
  // the simulator has sent about RATE points a second since it started
  assert.ok(pts > 10 * RATE, `only ${pts} points in the track`);
  // the page asked with the range it shows, and gets the same as a direct query
  const from = new Date(await page.inputValue('#hist-from')).toISOString();
  const to = new Date(await page.inputValue('#hist-to')).toISOString();
  const direct = await getJSON(`/api/v1/drones/${id}/telemetry?format=geojson&limit=5000&from=${from}&to=${to}`);
  assert.equal(direct.status, 200);
  assert.ok(Math.abs(direct.body.features.length - pts) <= RATE * 2, `page ${pts}, direct ${direct.body.features.length}`);

  // screenshot: the fleet with the selected drone, its track and the command;
  // trails grow once the drones leave their take-off climb, so let them fly a while
  await page.fill('#filter', '');
  await waitFor('trails of 20+ points (a point a second) on 3 drones', () => page.evaluate(() =>
    window.__dg.drones().filter((d) => d.trail >= 20).length >= 3), { timeout: 60000, every: 500 });
  await page.evaluate(() => {
    const ds = window.__dg.drones().filter((d) => d.lat !== null);
    const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
    window.__dg.map.setView([mean(ds.map((d) => d.lat)), mean(ds.map((d) => d.lon))], 13, { animate: false });
  });
  // drawn at the new view: two animation frames after the move (not a pause)
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  fs.mkdirSync(path.dirname(SHOT), { recursive: true });
  await page.screenshot({ path: SHOT });
  log(`screenshot: ${SHOT}`);
  assert.deepEqual(problems, []);
});

test(`stays responsive with ${N_LOAD} more drones at 1 Hz`, async () => {
  // baseline on this machine, now: animation frames in 2 s with 20 drones
  const baseFps = await page.evaluate(() => new Promise((resolve) => {
    const t0 = performance.now(); let n = 0;
    const tick = (t) => { n++; if (t - t0 < 2000) requestAnimationFrame(tick); else resolve(n / ((t - t0) / 1000)); };
    requestAnimationFrame(tick);
  }));
  const load = start('sim-load', SIM, ['--url', `ws://127.0.0.1:${port}`, '--drones', String(N_LOAD), '--rate', '1',
    '--duration', '60', '--prefix', 'load-', '--quiet']);
  await page.evaluate(() => { window.__dg.map.setZoom(11, { animate: false }); });
  const t0 = Date.now();
  await waitFor(`${N_LOAD + N_DRONES} drones on the page`, async () => {
    if (!procs.has(load)) throw new Error(`simulator exited:\n${tail('sim-load')}`);
    return (await page.evaluate(() => window.__dg.count)) >= N_LOAD + N_DRONES;
  }, { timeout: 30000, every: 250 });
  log(`${N_LOAD + N_DRONES} drones on the page after ${Date.now() - t0} ms`);
  // settled: one more report of every load drone has arrived (1 Hz), not a pause
  const ev0 = await page.evaluate(() => window.__dg.stats.events);
  await waitFor('a round of live events', () => page.evaluate((n) => window.__dg.stats.events >= n, ev0 + N_LOAD),
    { timeout: 30000, every: 100 });
  // 6 s of measuring: frames (requestAnimationFrame), long tasks, draw times;
  // the map is panned during the middle two seconds (redraw on every frame)
  const box = await page.locator('#map').boundingBox();
  const measuring = page.evaluate(() => new Promise((resolve) => {
    const s0 = Object.assign({}, window.__dg.stats);
    const longTasks = [];
    const obs = new PerformanceObserver((l) => { for (const e of l.getEntries()) longTasks.push(e.duration); });
    try { obs.observe({ type: 'longtask' }); } catch { /* not supported */ }
    const frames = [];
    const t0 = performance.now();
    const tick = (t) => {
      frames.push(t);
      if (t - t0 < 6000) requestAnimationFrame(tick);
      else {
        obs.disconnect();
        const s1 = window.__dg.stats, gaps = frames.slice(1).map((f, i) => f - frames[i]);
        resolve({
          seconds: (t - t0) / 1000, frames: frames.length, fps: frames.length / ((t - t0) / 1000),
          worstFrameMs: Math.max(...gaps), framesOver50ms: gaps.filter((g) => g > 50).length,
          longTasks: longTasks.length, longTaskMs: longTasks.reduce((a, b) => a + b, 0), worstLongTaskMs: Math.max(0, ...longTasks),
          events: s1.events - s0.events, draws: s1.draws - s0.draws,
          drawMsAvg: (s1.drawMsTotal - s0.drawMsTotal) / Math.max(1, s1.draws - s0.draws), drawMsMax: s1.drawMsMax,
          listRenders: s1.listRenders - s0.listRenders,
          listMsAvg: (s1.listMsTotal - s0.listMsTotal) / Math.max(1, s1.listRenders - s0.listRenders),
          drones: window.__dg.count,
        });
      }
    };
    requestAnimationFrame(tick);
  }));
  await sleep(2000);
  const cx = box.x + box.width / 2, cy = box.y + box.height / 2;
  await page.mouse.move(cx, cy);
  await page.mouse.down();
  for (let i = 1; i <= 40; i++) { await page.mouse.move(cx - i * 5, cy - i * 2); await sleep(40); }
  await page.mouse.up();
  const r = await measuring;
  log(`1k drones: ${JSON.stringify(r, (k, v) => typeof v === 'number' ? Math.round(v * 10) / 10 : v)}`);
  // generous bounds for a shared 2-core machine that also runs the gateway
  // and 1,020 simulated drones; the numbers above are the report
  // (typical here: 45-55 frames/s, redraws of 3-6 ms, long tasks under 150 ms;
  // the bounds catch a page that stalls, e.g. one that rebuilds the DOM per message)
  // frames: relative to the baseline measured above on the same (shared,
  // 2-core) machine, not an absolute frame rate
  log(`baseline ${baseFps.toFixed(1)} frames/s with ${N_DRONES} drones`);
  assert.ok(r.fps >= baseFps / 4, `only ${r.fps.toFixed(1)} frames/s against a baseline of ${baseFps.toFixed(1)}`);
  assert.ok(r.drawMsAvg < 30, `a fleet redraw takes ${r.drawMsAvg.toFixed(1)} ms on average`);
  assert.ok(r.worstLongTaskMs < 750, `a long task of ${r.worstLongTaskMs.toFixed(0)} ms`);
  assert.ok(r.events > N_LOAD * 3, `only ${r.events} live events in ${r.seconds.toFixed(1)} s`);
  await stop(load);
  assert.deepEqual(problems, []);
});

test('with auth on, the page uses the operator token from its URL, and reconnects', async () => {
  const port2 = await freePort(), base2 = `http://127.0.0.1:${port2}`;
  allowedOrigins.add(base2);
  const gwArgs = ['--listen', `127.0.0.1:${port2}`, '--store', `sqlite:${tmp}/dg-auth.db`,
    '--web-root', WEB, '--auth-secret', 'browser-test-secret', '--operator-token', 'op-token-1', '--operator-read-token', 'read-token-1'];
  let gw2 = start('gateway-auth', BIN, gwArgs);
  try {
    await waitFor('the second gateway', async () => {
      if (!procs.has(gw2)) throw new Error(`gateway exited:\n${tail('gateway-auth')}`);
      const r = await fetch(base2 + '/healthz').catch(() => null);
      return r && r.status === 200;
    }, { timeout: 15000, every: 100 });
    const sim2 = start('sim-auth', SIM, ['--url', `ws://127.0.0.1:${port2}`, '--drones', '3', '--rate', '2',
      '--duration', '60', '--auth-secret', 'browser-test-secret', '--quiet']);
    const seen = [];
    const watch = (pg) => {
      pg.on('console', (m) => { if (m.type() === 'error') seen.push(m.text()); });
      pg.on('pageerror', (e) => seen.push(`page error: ${e.message}`));
    };
    // the operator token: REST and live work, the token leaves the address bar
    const p1 = await context.newPage();
    watch(p1);
    await p1.goto(`${base2}/?token=op-token-1`);
    await waitFor('3 drones, live', () => p1.evaluate(() => window.__dg.live && window.__dg.count >= 3), { timeout: 15000 });
    assert.equal(new URL(p1.url()).search, '', 'the token stays out of the address bar');
    assert.equal(await p1.evaluate(() => sessionStorage.getItem('dronegate.token')), 'op-token-1');
    assert.equal(await p1.isHidden('#banner'), true);
    assert.deepEqual(seen, []);

    // the live stream drops (gateway restarted on the same port): the page
    // says so, retries with backoff, and comes back live with its token
    await stop(gw2);
    await waitFor('the page to notice', async () => /offline|retry/.test(await p1.textContent('#conn')), { timeout: 10000 });
    const t0 = Date.now();
    gw2 = start('gateway-auth', BIN, gwArgs);
    await waitFor('live again', () => p1.evaluate(() => window.__dg.live), { timeout: 20000 });
    log(`live again ${Date.now() - t0} ms after the gateway restarted; stats ${JSON.stringify(await p1.evaluate(() => ({ reconnects: window.__dg.stats.reconnects, snapshots: window.__dg.stats.snapshots })))}`);
    assert.equal((await p1.textContent('#conn')).trim(), 'live');
    // while it was down: failed WebSocket handshakes and refused polls, nothing else
    assert.ok(seen.every((x) => /WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(x)), seen.join('\n'));
    seen.length = 0;
    await p1.close();

    // a read-only token: everything shows, a command is refused with the server's reason
    const p2 = await context.newPage();
    watch(p2);
    await p2.goto(`${base2}/?token=read-token-1`);
    await waitFor('3 drones, live (read token)', () => p2.evaluate(() => window.__dg.live && window.__dg.count >= 3), { timeout: 15000 });
    await p2.fill('#cmd-drone', 'sim-0000');
    await p2.selectOption('#cmd-name', 'land');
    await p2.click('#cmd-send');
    await waitFor('the 403 reason', async () => /read scope/.test(await p2.textContent('#cmd-error')));
    assert.ok(seen.every((x) => /status of 403/.test(x)), seen.join('\n'));
    seen.length = 0;
    await p2.close();

    // no token (a fresh tab: sessionStorage is per tab): refused, and the page says how to fix it
    const p3 = await context.newPage();
    watch(p3);
    await p3.goto(`${base2}/`);
    await waitFor('the banner', async () => /token/.test(await p3.textContent('#banner')) && !(await p3.isHidden('#banner')));
    assert.equal(await p3.evaluate(() => window.__dg.live), false);
    assert.equal(await p3.evaluate(() => window.__dg.count), 0);
    assert.ok(seen.length > 0 && seen.every((x) => /401|WebSocket/.test(x)), seen.join('\n'));
    await p3.close();
    await stop(sim2);
  } finally {
    await stop(gw2);
  }
  // this gateway's 401/403 are expected above; the main page saw nothing wrong
  assert.deepEqual(problems.filter((x) => !x.includes(base2)), []);
});
