// Browser tests of the dashboard's basemap and of its "missing parts" messages
// (issue 14, items 1 and 2), against the real gateway and Debian's chromium.
//
//   node --test tests/browser/basemap.test.mjs   (tests/browser/run.sh runs every file)
//
// 1. --map-tiles: a tiny HTTP tile server started here (free port on
//    127.0.0.1) answers /tiles/{z}/{x}/{y}.png with a 256x256 PNG in one
//    colour; the gateway gets --map-tiles pointing at it. The page must
//    request tiles in the z/x/y scheme, show them (loaded <img> tiles whose
//    pixels are that colour), show the attribution as text (HTML escaped), and
//    its layer switch must go back to the offline world outline (tiles gone,
//    no new tile requests) and forth again.
// 2. Without --map-tiles: no tile requests, no layer switch, the outline.
// 3. A web root without vendor/: the page says in words that the map library
//    is missing (instead of a blank map). A web root without only
//    vendor/world-atlas: a note on the map says the outline is missing.
// Each gateway has its own temp dir; every process is stopped in after().

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const BIN = process.env.DRONEGATE_BIN || path.join(ROOT, 'build/dronegate');
const WEB = process.env.DRONEGATE_WEB_ROOT || path.join(ROOT, 'web');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TILE_RGB = [214, 32, 170];   // the tile colour the test looks for on the page

const procs = new Set();
let tmp, context, tileServer, tilePort;
const tileRequests = [];
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

async function waitFor(what, fn, { timeout = 10000, every = 100 } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}` + (last instanceof Error ? `: ${last.message}` : ''));
    await sleep(every);
  }
}

// A 256x256 RGB PNG in one colour (zlib from node: no image library needed).
function solidPNG([r, g, b]) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => { let c = 0xffffffff; for (const x of buf) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4); c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const W = 256, ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(W, 0); ihdr.writeUInt32BE(W, 4); ihdr[8] = 8; ihdr[9] = 2;
  const row = Buffer.alloc(1 + W * 3);
  for (let x = 0; x < W; x++) { row[1 + 3 * x] = r; row[2 + 3 * x] = g; row[3 + 3 * x] = b; }
  const raw = Buffer.concat(Array(W).fill(row));
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

function start(name, cmd, args) {
  const out = fs.openSync(path.join(tmp, `${name}.log`), 'a');
  const p = spawn(cmd, args, { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  p.name = name;
  p.exited = new Promise((r) => p.on('exit', (code, sig) => { procs.delete(p); r({ code, sig }); }));
  procs.add(p);
  return p;
}

async function stop(p, ms = 8000) {
  if (!procs.has(p)) return p.exited;
  p.kill('SIGTERM');
  const r = await Promise.race([p.exited, sleep(ms).then(() => null)]);
  if (r) return r;
  log(`${p.name} did not stop within ${ms} ms: SIGKILL`);
  p.kill('SIGKILL');
  return p.exited;
}
process.on('exit', () => { for (const p of procs) { try { p.kill('SIGKILL'); } catch { /* gone */ } } });

function tail(name) {
  try { return fs.readFileSync(path.join(tmp, `${name}.log`), 'utf8').split('\n').slice(-20).join('\n'); } catch { return ''; }
}

// Start a gateway with extra flags; resolves { base, proc } when /healthz answers.
async function gateway(name, args) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const proc = start(name, BIN, ['--listen', `127.0.0.1:${port}`, '--store', `sqlite:${tmp}/${name}.db`, ...args]);
  await waitFor(`${name}: GET /healthz -> 200`, async () => {
    if (!procs.has(proc)) throw new Error(`${name} exited:\n${tail(name)}`);
    const r = await fetch(base + '/healthz').catch(() => null);
    return r && r.status === 200;
  }, { timeout: 15000 });
  return { base, proc };
}

async function newPage(allowed) {
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  // only the gateway and the test's tile server: nothing from outside
  await page.route((u) => u.protocol !== 'data:' && !allowed.includes(u.origin), (route) => {
    page.errors.push(`external request: ${route.request().url()}`);
    return route.abort();
  });
  return page;
}

// A web root copied from web/ with some vendor/ parts left out.
function webRootWithout(name, omit) {
  const dst = path.join(tmp, name);
  fs.cpSync(WEB, dst, {
    recursive: true,
    filter: (src) => {
      const rel = path.relative(WEB, src);
      return !rel.startsWith('node_modules') && !omit.some((o) => rel === o || rel.startsWith(o + path.sep));
    },
  });
  return dst;
}

before(async () => {
  for (const [what, f] of [['gateway (DRONEGATE_BIN)', BIN], ['chromium (CHROMIUM)', CHROMIUM]])
    assert.ok(fs.existsSync(f), `${what} not found at ${f}`);
  assert.ok(fs.existsSync(path.join(WEB, 'vendor/leaflet/leaflet.js')), `${WEB}/vendor is missing: run web/build.sh`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dg-basemap-'));
  const png = solidPNG(TILE_RGB);
  tileServer = http.createServer((req, res) => {
    tileRequests.push(req.url);
    if (/^\/tiles\/\d+\/\d+\/\d+\.png$/.test(req.url)) {
      res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': png.length });
      res.end(png);
    } else {
      res.writeHead(404); res.end();
    }
  });
  await new Promise((r) => tileServer.listen(0, '127.0.0.1', r));
  tilePort = tileServer.address().port;
  context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
    executablePath: CHROMIUM, headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 800 }, timeout: 30000,
  });
});

after(async () => {
  if (context) await context.close().catch((e) => log(`closing chromium: ${e.message}`));
  for (const p of [...procs]) {
    const r = await stop(p);
    if (r && r.code !== 0) log(`${p.name} exit ${JSON.stringify(r)}:\n${tail(p.name)}`);
  }
  if (tileServer) tileServer.close();
  if (tmp && !process.env.DG_KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
});

// Tiles loaded (<img> complete) in the tile pane.
function loadedTiles(page) {
  return page.$$eval('.leaflet-tile-pane img.leaflet-tile-loaded', (imgs) => imgs.filter((i) => i.naturalWidth > 0).length);
}

// Colours at a few points inside the map, as shown on screen: a screenshot of
// #map (tiles from another origin cannot be read back from the page itself),
// decoded by the page from a data: URL.
async function mapColours(page) {
  const shot = await page.locator('#map').screenshot();
  return page.evaluate(async (b64) => {
    const img = new Image();
    img.src = 'data:image/png;base64,' + b64;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.width; c.height = img.height;
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    return [[0.3, 0.35], [0.5, 0.5], [0.65, 0.6], [0.45, 0.7]].map(([fx, fy]) =>
      [...ctx.getImageData(Math.round(fx * img.width), Math.round(fy * img.height), 1, 1).data.slice(0, 3)]);
  }, shot.toString('base64'));
}
const same = (a, b) => a.length === b.length && a.every((x, i) => Math.abs(x - b[i]) <= 2);

test('--map-tiles: the page requests and shows the tiles, with attribution and a layer switch', async () => {
  const tiles = `http://127.0.0.1:${tilePort}/tiles/{z}/{x}/{y}.png`;
  const { base } = await gateway('tiles', ['--web-root', WEB, '--map-tiles', tiles,
    '--map-attribution', 'Test tiles <b>bold</b> & co']);
  const page = await newPage([base, `http://127.0.0.1:${tilePort}`]);
  tileRequests.length = 0;
  assert.equal((await page.goto(base + '/', { waitUntil: 'load' })).status(), 200);
  await waitFor('the tile layer to be the base layer', () => page.evaluate(() => window.__dg && window.__dg.baseLayer === 'tiles'));
  await waitFor('loaded tiles on the page', async () => (await loadedTiles(page)) >= 4);
  // what the map shows is the tile server's colour
  let colours;
  await waitFor('the tiles\' colour on screen', async () => {
    colours = await mapColours(page);
    return colours.every((c) => same(c, TILE_RGB));
  }, { timeout: 5000 }).catch((e) => { throw new Error(`${e.message}; colours ${JSON.stringify(colours)}`); });
  assert.ok(tileRequests.length >= 4, `tile requests: ${tileRequests.join(' ')}`);
  const z = await page.evaluate(() => window.__dg.map.getZoom());
  for (const u of tileRequests) assert.match(u, new RegExp(`^/tiles/${z}/\\d+/\\d+\\.png$`));
  // the attribution is the operator's text, shown as text (not HTML)
  const attribution = await page.textContent('.leaflet-control-attribution');
  assert.ok(attribution.includes('Test tiles <b>bold</b> & co'), `attribution: ${attribution}`);
  // the switch: back to the offline outline
  const labels = await page.$$eval('.leaflet-control-layers-base label', (ls) => ls.map((l) => l.textContent.trim()));
  assert.deepEqual(labels, ['Map tiles', 'World outline (offline)']);
  await page.getByLabel('World outline (offline)').check();
  await waitFor('the outline base layer', () => page.evaluate(() => window.__dg.baseLayer === 'outline'));
  await waitFor('the tiles to leave the page', async () => (await page.$$('.leaflet-tile-pane img')).length === 0);
  await waitFor('the outline canvas', () => page.evaluate(() => !!document.querySelector('.leaflet-base-pane canvas')));
  assert.ok((await mapColours(page)).every((c) => !same(c, TILE_RGB)), 'tile colour still on screen');
  const before = tileRequests.length;
  await page.evaluate(() => { window.__dg.map.setZoom(window.__dg.map.getZoom() + 1, { animate: false }); });
  await sleep(300);
  assert.equal(tileRequests.length, before, 'tiles requested while the outline is selected');
  // and forth again
  await page.getByLabel('Map tiles').check();
  await waitFor('tiles again', async () => (await loadedTiles(page)) >= 4 &&
    (await mapColours(page)).every((c) => same(c, TILE_RGB)));
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('without --map-tiles: the offline outline only, no tile requests, no switch', async () => {
  const { base } = await gateway('plain', ['--web-root', WEB]);
  const page = await newPage([base]);
  tileRequests.length = 0;
  await page.goto(base + '/', { waitUntil: 'load' });
  await waitFor('the outline canvas', () => page.evaluate(() => !!document.querySelector('.leaflet-base-pane canvas')));
  await page.evaluate(() => window.__dg.configLoaded);
  assert.equal(await page.evaluate(() => window.__dg.baseLayer), 'outline');
  assert.equal(await page.$$eval('.leaflet-control-layers', (e) => e.length), 0);
  assert.equal(await page.$$eval('.leaflet-tile-pane img', (e) => e.length), 0);
  assert.equal(tileRequests.length, 0);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('a web root without vendor/: the page says the map library is missing, in words', async () => {
  const root = webRootWithout('web-novendor', ['vendor']);
  assert.ok(!fs.existsSync(path.join(root, 'vendor')));
  const { base } = await gateway('novendor', ['--web-root', root]);
  const page = await newPage([base]);
  await page.goto(base + '/', { waitUntil: 'load' });
  const msg = page.locator('#map[role="alert"]');
  await msg.waitFor({ state: 'visible' });
  const text = await msg.innerText();
  assert.match(text, /The map cannot be shown/);
  assert.match(text, /vendor\/leaflet\/leaflet\.js/);
  assert.match(text, /make run/);
  const box = await msg.boundingBox();
  assert.ok(box.width > 300 && box.height > 200, `message box ${JSON.stringify(box)}`);
  assert.equal((await page.textContent('#conn')).trim(), 'map library missing');
  assert.deepEqual(page.errors, [], 'no uncaught script errors');
  await page.close();
});

test('a web root without the world outline: a note on the map says so', async () => {
  const root = webRootWithout('web-noatlas', [path.join('vendor', 'world-atlas')]);
  const { base } = await gateway('noatlas', ['--web-root', root]);
  const page = await newPage([base]);
  await page.goto(base + '/', { waitUntil: 'load' });
  const note = page.locator('.map-note');
  await note.waitFor({ state: 'visible' });
  assert.match(await note.innerText(), /World outline not available.*web\/build\.sh/);
  assert.equal(await page.evaluate(() => window.__dg.mapMissing), undefined, 'the map itself works');
  assert.deepEqual(page.errors, []);
  await page.close();
});
