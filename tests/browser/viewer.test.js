// viewer.test.js — end-to-end test of `ctrace serve` in a real browser: Debian's chromium,
// headless, driven by playwright-core (no bundled browser is downloaded).
//
// Run by tests/cli/browser.sh, which writes the graphs, starts the server and passes:
//   CTRACE_URL   http://127.0.0.1:PORT   the running server
//   CTRACE_DIR   its directory            (graph files are read here to get the expected answers)
//   ARTIFACTS    where screenshots go     (build/browser)
//   BIG          1: also time the 10,000-node / 1,000,000-link graph "big" (< 3 s)
// Checks: the index lists the graphs; clicking a node highlights exactly its edges (degree in
// the JSON); pinning two nodes and grouping them into a supernode saves into the file's
// qParams; a reload shows the supernode again; no request leaves the server's origin; no
// page errors.  Prints the time to interactive of the big graph.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const BASE = process.env.CTRACE_URL;
const DIR = process.env.CTRACE_DIR;
const ART = process.env.ARTIFACTS || 'build/browser';
const BIG = process.env.BIG === '1';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!BASE || !DIR) { console.error('CTRACE_URL and CTRACE_DIR must be set'); process.exit(2); }

// The whole test may not hang: a watchdog ends it (the browser dies with us).
const watchdog = setTimeout(() => { console.error('FAIL: browser test timed out'); process.exit(1); }, 150000);

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  console.log('ok: ' + what);
}

// Degree of every node id in a graph JSON (ids are unique in the synthetic graphs).
function degrees(file) {
  const g = JSON.parse(fs.readFileSync(file, 'utf8'));
  const deg = new Map(g.nodes.map((n) => [n.node_id, 0]));
  for (const l of g.links) { deg.set(l.source, deg.get(l.source) + 1); deg.set(l.target, deg.get(l.target) + 1); }
  return { g, deg };
}

// The most connected feature nodes, most connected first.
function hubs(g, deg, n) {
  return g.nodes.filter((x) => x.feature_type === 'cross layer transcoder')
    .map((x) => x.node_id).sort((a, b) => deg.get(b) - deg.get(a)).slice(0, n);
}

async function openGraph(page, slug) {
  const t0 = Date.now();
  await page.goto(BASE + '/graph/' + slug, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('body[data-ready]', { timeout: 30000 });
  const ready = await page.evaluate(() => document.body.dataset.ready);
  if (ready !== '1') throw new Error('viewer failed: ' + await page.evaluate(() => window.ctrace.error));
  return Date.now() - t0;
}

// A real mouse click on the node (centred and zoomed first so it is big enough to hit).
async function clickNode(page, id, modifiers) {
  await page.evaluate((i) => window.ctrace.centerOn(i, 2.5), id);
  const p = await page.evaluate((i) => window.ctrace.nodeScreenPos(i), id);
  if (!p || !p.visible) throw new Error('node ' + id + ' not on screen');
  for (const m of modifiers || []) await page.keyboard.down(m);
  await page.mouse.click(p.x, p.y);
  for (const m of modifiers || []) await page.keyboard.up(m);
}

async function highlighted(page, id) {
  await page.waitForFunction((i) => {
    const c = document.getElementById('hl-count');
    return c && window.ctrace.selected >= 0 && window.ctrace.ids[window.ctrace.selected] === i;
  }, id, { timeout: 5000 });
  return +(await page.getAttribute('#hl-count', 'data-count'));
}

async function waitSaved(page, before) {
  await page.waitForFunction((b) => window.ctrace.saves > b && !window.ctrace.dirty && !window.ctrace.saving && !window.ctrace.saveAgain &&
    document.getElementById('status').textContent === 'saved', before, { timeout: 15000 });
}

async function main() {
  fs.mkdirSync(ART, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'ctrace-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--disable-quic'],
    viewport: { width: 1500, height: 900 },
    timeout: 30000,
  });
  const foreign = [], pageErrors = [];
  // Nothing may leave the server's origin: such requests are aborted and counted.
  await ctx.route('**/*', (route) => {
    const u = route.request().url();
    if (u.startsWith(BASE + '/')) return route.continue();
    foreign.push(u);
    return route.abort();
  });
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    page.setDefaultTimeout(20000);
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });

    // index
    await page.goto(BASE + '/');
    check(await page.locator('a[href="/graph/small"]').count() === 1, 'index lists the small graph');

    // small graph: click, highlight, pin, supernode, reload
    const small = degrees(path.join(DIR, 'small.json'));
    await openGraph(page, 'small');
    check(await page.evaluate(() => window.ctrace.N) === small.g.nodes.length, 'viewer holds every node');
    check(await page.evaluate(() => window.ctrace.M) === small.g.links.length, 'viewer holds every link');
    const [a, b] = hubs(small.g, small.deg, 2);
    await clickNode(page, a);
    const na = await highlighted(page, a);
    check(na === small.deg.get(a), `clicking ${a} highlights ${na} edges = its degree ${small.deg.get(a)}`);
    check((await page.textContent('#details')).includes(a), 'side panel shows the node id');
    check(await page.locator('#details h3 + ul li').count() > 0, 'side panel lists top inputs');
    // hover shows the tooltip
    const pa = await page.evaluate((i) => window.ctrace.nodeScreenPos(i), a);
    await page.mouse.move(pa.x + 1, pa.y);
    await page.waitForSelector('#tip:not([hidden])', { timeout: 5000 });
    check(true, 'hover shows a tooltip');
    await page.click('#pin-toggle');
    await clickNode(page, b, ['Shift']);
    await page.waitForFunction(() => window.ctrace.pinned.size === 2, null, { timeout: 5000 });
    check(true, 'pinned two nodes (button and shift-click)');
    const saves0 = await page.evaluate(() => window.ctrace.saves);
    await page.fill('#sn-name', 'test group');
    await page.click('#sn-make');
    await waitSaved(page, saves0);
    const q = JSON.parse(fs.readFileSync(path.join(DIR, 'small.json'), 'utf8')).qParams;
    const sn = q.supernodes.find((s) => s[0] === 'test group');
    check(sn && sn.length === 3 && sn.includes(a) && sn.includes(b), 'supernode saved in the file\'s qParams');
    check(q.pinnedIds.length === 2, 'pins saved in the file\'s qParams');
    await clickNode(page, a);
    await page.screenshot({ path: path.join(ART, 'viewer.png') });
    // the JSON path (the fallback when the packed graph is unavailable) reads the same graph
    await page.goto(BASE + '/graph/small?source=json');
    await page.waitForSelector('body[data-ready="1"]', { timeout: 30000 });
    check(await page.evaluate(() => [window.ctrace.N, window.ctrace.M].join()) ===
          [small.g.nodes.length, small.g.links.length].join(), 'JSON path: every node and link');
    await clickNode(page, b);
    check(await highlighted(page, b) === small.deg.get(b), 'JSON path: highlighted edges = degree');
    await page.goto(BASE + '/graph/small');
    await page.waitForSelector('body[data-ready="1"]', { timeout: 30000 });
    check(await page.locator('#sn-list li[data-name="test group"]').count() === 1, 'supernode shown after reload');
    check(await page.evaluate(() => window.ctrace.pinned.size) === 2, 'pins restored after reload');

    // big graph: time to interactive
    if (BIG) {
      const page2 = await ctx.newPage();
      page2.on('pageerror', (e) => pageErrors.push(String(e)));
      const wall = await openGraph(page2, 'big');
      const [tti, timing, nm] = await page2.evaluate(() => [window.ctrace.tti, window.ctrace.timing, [window.ctrace.N, window.ctrace.M]]);
      console.log(`big graph: ${nm[0]} nodes, ${nm[1]} links; time to interactive ${tti.toFixed(0)} ms ` +
                  `(navigation start to the first presented frame; phases ${JSON.stringify(timing)}), ` +
                  `${wall} ms from goto() until the test saw it`);
      check(nm[0] === 10000 && nm[1] === 1000000, 'big graph has 10,000 nodes and 1,000,000 links');
      check(tti < 3000, `big graph interactive in under 3 s (${tti.toFixed(0)} ms)`);
      // The most connected feature; its degree counted independently in the file's text.
      const h = await page2.evaluate(() => {
        const c = window.ctrace;
        let best = -1, bd = -1;
        for (let i = 0; i < c.N; i++) {
          const d = c.inStart[i + 1] - c.inStart[i] + c.outStart[i + 1] - c.outStart[i];
          if (c.kind[i] === 0 && d > bd) { bd = d; best = i; }
        }
        return c.ids[best];
      });
      const text = fs.readFileSync(path.join(DIR, 'big.json'), 'utf8');
      let deg = 0;
      for (const key of ['"source":"' + h + '"', '"target":"' + h + '"'])
        for (let at = text.indexOf(key); at >= 0; at = text.indexOf(key, at + 1)) deg++;
      const t1 = Date.now();
      await clickNode(page2, h);
      const nh = await highlighted(page2, h);
      console.log(`big graph: click to highlighted panel ${Date.now() - t1} ms`);
      check(nh === deg, `big graph: clicking ${h} highlights ${nh} edges = its degree in the file ${deg}`);
      await page2.keyboard.press('Escape');
      await page2.keyboard.press('f');
      await page2.mouse.move(5, 5);
      await page2.screenshot({ path: path.join(ART, 'viewer-big.png') });
    }
    check(foreign.length === 0, 'no request left the server (' + (foreign[0] || 'none') + ')');
    check(pageErrors.length === 0, 'no page errors' + (pageErrors.length ? ': ' + pageErrors.join('; ') : ''));
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().then(() => { clearTimeout(watchdog); console.log('browser test passed'); },
  (e) => { console.error('FAIL: ' + (e && e.stack || e)); process.exit(1); });
