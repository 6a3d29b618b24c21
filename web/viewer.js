// viewer.js — ctrace's interactive graph viewer (served by `ctrace serve`, no network needed).
//
// Data flow: fetch /data/<slug>.json -> typed arrays (nodes, links) and adjacency lists (CSR of
// edge indices by source and by target) -> the same layered layout as `ctrace render`
// (x = prompt position, y = layer) -> one <canvas>, redrawn on demand.  Only the strongest
// edges are drawn by default (the "edges" slider), bucketed by sign and |weight| so a frame is
// a few dozen stroke() calls; a selected or hovered node's own edges are always drawn.
// Pins and supernodes are saved back into the graph's qParams with a POST.
'use strict';
(function () {
  // ---- constants (px, world units; as engine/render.c) --------------------------------------
  const PITCH = 16, RMAX = 6.5, RMIN = 2.5, CELL_PAD = 6, BAND_PAD = 5, COL_MIN = 76, GRID_MAX = 32;
  const LEFT = 64, TOP = 24, BOTTOM = 48, RIGHT = 16, CHAR_W = 6.4, LOGIT_CHARS = 22;
  const NB = 8;                       // |weight| buckets per sign
  const DEFAULT_EDGES = 4000;       // edges drawn before the user asks for more
  const KIND = { 'cross layer transcoder': 0, 'mlp reconstruction error': 1, 'embedding': 2, 'logit': 3 };
  const KIND_NAME = ['feature', 'error', 'embedding', 'logit'];
  const FILL = ['#f59e0b', '#cbd5e1', '#6ee7b7', '#c4b5fd'];
  const STROKE = ['#b45309', '#64748b', '#047857', '#6d28d9'];
  const POS_RGB = '37,99,235', NEG_RGB = '220,38,38';

  const $ = (id) => document.getElementById(id);
  const slug = decodeURIComponent(location.pathname.replace(/^\/graph\//, ''));
  const cv = $('cv'), ctx = cv.getContext('2d');

  // Everything the page knows; window.ctrace exposes it to tests.
  const S = {
    ready: false, error: null, tti: 0, slug,
    N: 0, M: 0,
    kind: null, layer: null, pos: null, infl: null, act: null, prob: null, feat: null,
    ids: [], labels: [], tokens: [], meta: {},
    src: null, dst: null, w: null, absW: null, absHist: null, maxAbs: 1,
    outStart: null, outList: null, inStart: null, inList: null, rowByTarget: null,
    x: null, y: null, r: null, worldW: 1, worldH: 1, colX: [], colW: [], bandY: [], bandH: [], L: 0, T: 1,
    vis: null, pruneAt: 1, edgeCount: 0, edgeMin: 0, buckets: [], drawn: 0,
    k: 1, tx: 0, ty: 0, dpr: 1,
    selected: -1, hover: -1, hl: [], pinned: new Set(), supernodes: [], snFocus: -1,
    grid: new Map(),
    saves: 0, saving: false, saveAgain: false, saveTimer: 0, dirty: false,
  };
  window.ctrace = S;

  // ---- loading ---------------------------------------------------------------------------------
  async function load() {
    const T = S.timing = {};
    let t = performance.now();
    const lap = (name) => { const n = performance.now(); T[name] = Math.round(n - t); t = n; };
    // ?source=json reads the JSON itself (the fallback path), for tests and for comparison.
    const packed = new URLSearchParams(location.search).get('source') !== 'json';
    let g = !packed ? null : await fetchPacked().catch((err) => {
      console.warn('ctrace: packed graph unavailable (' + err.message + '); reading the JSON');
      return null;
    });
    lap('fetch');
    if (!g) g = await fetchJson();
    lap('parse');
    build(g);
    lap('build');
    layout();
    lap('layout');
    setupSliders();
    computeVisibility();
    lap('visibility');
    restore(g.qParams || {});
    fit();
    hookEvents();
    paint();
    lap('paint');
    // Ready once the first frame has been rasterised and presented (two animation frames on),
    // not merely recorded: with software rasterisation that is where edges cost.
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    lap('frame');
    S.ready = true;
    S.tti = performance.now();
    S.readyAt = Date.now();
    document.body.dataset.ready = '1';
    $('loading').remove();
    console.log('ctrace: ' + S.N + ' nodes, ' + S.M + ' links interactive after ' + S.tti.toFixed(0) + ' ms ' +
      JSON.stringify(T));
  }

  // The server's packed form (engine/serve.h): the JSON without its links, then the links as
  // a CSR by target (row offsets, u16 or u32 sources, f32 weights) — no parsing at all.
  async function fetchPacked() {
    const res = await fetch('/data/' + encodeURIComponent(slug) + '.bin', { cache: 'no-store' });
    if (!res.ok) throw new Error('HTTP ' + res.status);
    const buf = await readBody(res);
    if (buf.byteLength < 24) throw new Error('short packed graph');
    const magic = new TextDecoder().decode(new Uint8Array(buf, 0, 7));
    const dv = new DataView(buf);
    const N = dv.getUint32(8, true), M = dv.getUint32(12, true), jl = dv.getUint32(16, true);
    const narrow = dv.getUint32(20, true) & 1, isz = narrow ? 2 : 4;
    const off = 24 + jl, soff = off + 4 * (N + 1), woff = soff + Math.ceil(isz * M / 4) * 4;
    if (magic !== 'CTVIEW2' || jl % 4 || woff + 4 * M !== buf.byteLength) throw new Error('bad packed graph');
    const g = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 24, jl)));
    if (!Array.isArray(g.nodes) || g.nodes.length !== N) throw new Error('packed graph: node count');
    nodeTables(g.nodes);
    const row = new Uint32Array(buf, off, N + 1);
    if (row[0] !== 0 || row[N] !== M) throw new Error('packed graph: row offsets');
    const src = narrow ? new Uint16Array(buf, soff, M) : new Uint32Array(buf, soff, M);
    const dst = new Int32Array(M);
    for (let t = 0; t < N; t++) {
      const a = row[t], b = row[t + 1];
      if (b < a || b > M) throw new Error('packed graph: row ' + t);
      dst.fill(t, a, b);
    }
    for (let e = 0; e < M; e++) if (src[e] >= N) throw new Error('packed graph: link ' + e);
    setLinks(src, dst, new Float32Array(buf, woff, M), M);
    S.rowByTarget = row;
    return g;
  }

  // The body into one ArrayBuffer as the chunks arrive (sized by Content-Length), which is
  // faster than res.arrayBuffer() for tens of megabytes.
  async function readBody(res) {
    const len = +res.headers.get('Content-Length');
    if (!res.body || !(len > 0)) return res.arrayBuffer();
    const out = new Uint8Array(len), rd = res.body.getReader();
    let at = 0;
    for (;;) {
      const { done, value } = await rd.read();
      if (done) break;
      if (at + value.length > len) throw new Error('body longer than Content-Length');
      out.set(value, at);
      at += value.length;
    }
    if (at !== len) throw new Error('body shorter than Content-Length');
    return out.buffer;
  }

  async function fetchJson() {
    const res = await fetch('/data/' + encodeURIComponent(slug) + '.json', { cache: 'no-store' });
    if (!res.ok) throw new Error('GET /data/' + slug + '.json: HTTP ' + res.status);
    const bytes = new Uint8Array(await readBody(res));
    try {
      return parseFast(bytes);
    } catch (err) {
      // Not the layout graph_write_json writes (or not JSON at all): the general parser
      // either copes or says what is wrong.
      console.warn('ctrace: fast parse failed (' + err.message + '); using JSON.parse');
      const g = JSON.parse(new TextDecoder().decode(bytes));
      nodeTables(g.nodes || []);
      linksFromObjects(g.links || []);
      return g;
    }
  }

  // Node fields into typed arrays.
  function nodeTables(nodes) {
    const N = nodes.length;
    S.N = N;
    S.kind = new Uint8Array(N); S.layer = new Int32Array(N); S.pos = new Int32Array(N);
    S.infl = new Float32Array(N); S.act = new Float32Array(N); S.prob = new Float32Array(N);
    S.feat = new Int32Array(N); S.ids = new Array(N); S.labels = new Array(N); S.ftype = new Array(N);
    for (let i = 0; i < N; i++) {
      const n = nodes[i];
      const k = KIND[n.feature_type] !== undefined ? KIND[n.feature_type] : 0;
      S.kind[i] = k;
      S.ftype[i] = String(n.feature_type);
      S.layer[i] = k === 2 ? -1 : parseInt(n.layer, 10) || 0;
      S.pos[i] = n.ctx_idx | 0;
      S.infl[i] = +n.influence || 0;
      S.act[i] = n.activation == null ? NaN : +n.activation;
      S.prob[i] = +n.token_prob || 0;
      S.ids[i] = String(n.node_id);
      S.labels[i] = n.clerp ? String(n.clerp) : '';
      S.feat[i] = k === 0 ? parseInt(S.ids[i].split('_')[1], 10) : k === 3 ? (n.feature | 0) : -1;
    }
  }

  function setLinks(src, dst, w, M) {
    S.M = M;
    S.src = src.subarray(0, M); S.dst = dst.subarray(0, M); S.w = w.subarray(0, M);
  }

  // Links given as objects (the JSON.parse path): ends by node_id, or by node_id and
  // feature_type when the link carries source_type/target_type (an error id can equal a
  // layer-0 feature id).
  function linksFromObjects(links) {
    const byId = new Map(), byTyped = new Map();
    for (let i = 0; i < S.N; i++) {
      if (!byId.has(S.ids[i])) byId.set(S.ids[i], i);
      byTyped.set(S.ids[i] + '\u0001' + S.ftype[i], i);
    }
    let M = 0;
    const src = new Int32Array(links.length), dst = new Int32Array(links.length), w = new Float32Array(links.length);
    for (let e = 0; e < links.length; e++) {
      const l = links[e];
      const s = l.source_type ? byTyped.get(l.source + '\u0001' + l.source_type) : byId.get(l.source);
      const t = l.target_type ? byTyped.get(l.target + '\u0001' + l.target_type) : byId.get(l.target);
      if (s === undefined || t === undefined) continue;   // a link to a node not in the file
      src[M] = s; dst[M] = t; w[M] = +l.weight; M++;
    }
    setLinks(src, dst, w, M);
  }

  // ---- the fast path: a byte-level reader for the links -----------------------------------------
  // JSON.parse of a million link objects costs seconds and a big GC.  Here the top level is
  // walked over the bytes; "metadata", "qParams" and "nodes" (small) go through JSON.parse, and
  // the links array is read in place: ids are matched as byte strings against a hash table of
  // the node ids (no string per link), weights parsed from their digits.  Anything unexpected
  // (an escape inside an id, a value of the wrong type) throws, and load() falls back.
  function parseFast(b) {
    const n = b.length;
    let i = 0;
    const ws = () => { while (i < n && (b[i] === 32 || b[i] === 10 || b[i] === 13 || b[i] === 9)) i++; };
    const fail = (what) => { throw new Error(what + ' at byte ' + i); };
    const skipString = () => {   // b[i] is the opening quote
      i++;
      while (i < n && b[i] !== 34) i += b[i] === 92 ? 2 : 1;
      if (i >= n) fail('unterminated string');
      i++;
    };
    const skipValue = () => {
      const c = b[i];
      if (c === 34) { skipString(); return; }
      if (c === 123 || c === 91) {
        let depth = 0;
        while (i < n) {
          const d = b[i];
          if (d === 34) { skipString(); continue; }
          if (d === 123 || d === 91) depth++;
          else if ((d === 125 || d === 93) && --depth === 0) { i++; return; }
          i++;
        }
        fail('unterminated value');
      }
      const s0 = i;
      while (i < n && b[i] !== 44 && b[i] !== 125 && b[i] !== 93 && b[i] !== 32 && b[i] !== 10 && b[i] !== 13 && b[i] !== 9) i++;
      if (i === s0) fail('value expected');
    };
    const dec = new TextDecoder();
    const spans = {};
    let nodes = null, nodesDone = false;
    ws();
    if (b[i] !== 123) fail('object expected');
    i++;
    for (;;) {
      ws();
      if (b[i] === 125) break;
      if (b[i] !== 34) fail('key expected');
      const k0 = i + 1;
      skipString();
      const key = dec.decode(b.subarray(k0, i - 1));
      ws();
      if (b[i] !== 58) fail('colon expected');
      i++;
      ws();
      const v0 = i;
      if (key === 'links' && nodesDone) i = readLinks(b, i, n);   // the usual order: read in place
      else skipValue();
      spans[key] = [v0, i];
      if (key === 'nodes') {
        nodes = JSON.parse(dec.decode(b.subarray(v0, i)));
        if (!Array.isArray(nodes)) fail('nodes array expected');
        nodeTables(nodes);
        nodesDone = true;
      }
      ws();
      if (b[i] === 44) { i++; continue; }
      if (b[i] === 125) break;
      fail('comma expected');
    }
    if (!spans.nodes || !spans.links) fail('nodes and links expected');
    if (S.src === null) readLinks(b, spans.links[0], spans.links[1]);   // links came before nodes
    const part = (k) => spans[k] ? JSON.parse(dec.decode(b.subarray(spans[k][0], spans[k][1]))) : undefined;
    return { metadata: part('metadata') || {}, qParams: part('qParams') || {}, nodes };
  }

  function readLinks(b, start, end) {
    const N = S.N, enc = new TextEncoder();
    // node ids as bytes: one buffer + offsets; open addressing table of node index + 1
    const idb = [], off = new Int32Array(N + 1);
    let tot = 0;
    for (let i = 0; i < N; i++) { const e = enc.encode(S.ids[i]); idb.push(e); off[i] = tot; tot += e.length; }
    off[N] = tot;
    const all = new Uint8Array(tot);
    for (let i = 0; i < N; i++) all.set(idb[i], off[i]);
    let cap = 16;
    while (cap < 4 * N) cap *= 2;
    const table = new Int32Array(cap), mask = cap - 1;
    const hashOf = (a, s, e) => { let h = 0x811c9dc5; for (let j = s; j < e; j++) h = Math.imul(h ^ a[j], 16777619); return h >>> 0; };
    for (let i = 0; i < N; i++) {
      let h = hashOf(all, off[i], off[i + 1]) & mask;
      while (table[h]) h = (h + 1) & mask;
      table[h] = i + 1;
    }
    const same = (i, s, e) => {
      const a = off[i], len = off[i + 1] - a;
      if (len !== e - s) return false;
      for (let j = 0; j < len; j++) if (all[a + j] !== b[s + j]) return false;
      return true;
    };
    // type: undefined (first node with this id) or a feature_type string
    const find = (s, e, type) => {
      let h = hashOf(b, s, e) & mask;
      for (;;) {
        const v = table[h];
        if (!v) return -1;
        if (same(v - 1, s, e) && (type === undefined || S.ftype[v - 1] === type)) return v - 1;
        h = (h + 1) & mask;
      }
    };
    const POW = new Float64Array(309);
    for (let k = 0; k < 309; k++) POW[k] = Number('1e' + k);
    // Capacity: about one link per 50 bytes, grown by doubling when a file packs them tighter.
    let cap2 = Math.max(16, Math.ceil((end - start) / 50));
    let src = new Int32Array(cap2), dst = new Int32Array(cap2), w = new Float32Array(cap2);
    const grow = () => {
      cap2 *= 2;
      const s2 = new Int32Array(cap2), d2 = new Int32Array(cap2), w2 = new Float32Array(cap2);
      s2.set(src); d2.set(dst); w2.set(w);
      src = s2; dst = d2; w = w2;
    };
    const dec = new TextDecoder();
    let i = start, M = 0;
    const fail = (what) => { throw new Error('links: ' + what + ' at byte ' + i); };
    const ws = () => { while (b[i] === 32 || b[i] === 10 || b[i] === 13 || b[i] === 9) i++; };
    // a string without escapes: returns its [start, end) and moves past it
    let s0 = 0, s1 = 0;
    const str = () => {
      if (b[i] !== 34) fail('string expected');
      s0 = ++i;
      while (i < end && b[i] !== 34) { if (b[i] === 92) fail('escape in an id'); i++; }
      s1 = i++;
    };
    const num = () => {
      let neg = false, mant = 0, digits = 0, e10 = 0, any = false;
      if (b[i] === 45) { neg = true; i++; }
      while (b[i] >= 48 && b[i] <= 57) { if (digits < 17) { mant = mant * 10 + (b[i] - 48); if (mant) digits++; } else e10++; i++; any = true; }
      if (b[i] === 46) {
        i++;
        while (b[i] >= 48 && b[i] <= 57) { if (digits < 17) { mant = mant * 10 + (b[i] - 48); if (mant) digits++; e10--; } i++; any = true; }
      }
      if (!any) fail('number expected');
      if (b[i] === 101 || b[i] === 69) {
        i++;
        let es = 1, ev = 0;
        if (b[i] === 45) { es = -1; i++; } else if (b[i] === 43) i++;
        while (b[i] >= 48 && b[i] <= 57) { ev = ev * 10 + (b[i] - 48); i++; }
        e10 += es * ev;
      }
      let v = mant;
      if (e10 > 0) v = e10 > 308 ? Infinity : v * POW[e10];
      else if (e10 < 0) v = e10 < -308 ? v / POW[308] / POW[Math.min(308, -e10 - 308)] : v / POW[-e10];
      return neg ? -v : v;
    };
    ws();
    if (b[i] !== 91) fail('array expected');
    i++;
    ws();
    if (b[i] === 93) { setLinks(src, dst, w, 0); return i + 1; }
    for (;;) {
      ws();
      if (b[i] !== 123) fail('object expected');
      i++;
      let a0 = -1, a1 = -1, t0 = -1, t1 = -1, wt = NaN, st, tt;
      for (;;) {
        ws();
        str();
        const k0 = s0, klen = s1 - s0;
        ws();
        if (b[i] !== 58) fail('colon expected');
        i++;
        ws();
        // keys by length and first letters: source(6) target(6) weight(6) source_type(11) target_type(11)
        const c0 = b[k0];
        if (klen === 6 && c0 === 115 && b[k0 + 1] === 111) { str(); a0 = s0; a1 = s1; }        // source
        else if (klen === 6 && c0 === 116) { str(); t0 = s0; t1 = s1; }                        // target
        else if (klen === 6 && c0 === 119) { wt = num(); }                                     // weight
        else if (klen === 11 && c0 === 115) { str(); st = dec.decode(b.subarray(s0, s1)); }    // source_type
        else if (klen === 11 && c0 === 116) { str(); tt = dec.decode(b.subarray(s0, s1)); }    // target_type
        else {   // any other key: skip its value
          let depth = 0;
          for (; i < end; i++) {
            const d = b[i];
            if (d === 34) { i++; while (i < end && b[i] !== 34) i += b[i] === 92 ? 2 : 1; continue; }
            if (d === 123 || d === 91) depth++;
            else if (d === 125 || d === 93) { if (depth === 0) break; depth--; }
            else if (d === 44 && depth === 0) break;
          }
        }
        ws();
        if (b[i] === 44) { i++; continue; }
        if (b[i] === 125) { i++; break; }
        fail('comma or } expected');
      }
      if (a0 < 0 || t0 < 0 || Number.isNaN(wt)) fail('source, target and weight expected');
      const s = find(a0, a1, st), t = find(t0, t1, tt);
      if (s >= 0 && t >= 0) {
        if (M === cap2) grow();
        src[M] = s; dst[M] = t; w[M] = wt; M++;
      }
      ws();
      if (b[i] === 44) { i++; continue; }
      if (b[i] === 93) break;
      fail(', or ] expected');
    }
    setLinks(src, dst, w, M);
    return i + 1;
  }

  // Derived tables: |w|, its sorted copy, adjacency lists; the title.
  function build(g) {
    const N = S.N, M = S.M;
    S.meta = g.metadata || {};
    S.tokens = Array.isArray(S.meta.prompt_tokens) ? S.meta.prompt_tokens.map(String) : [];
    // |w|, and its histogram on the float's top 16 bits (exponent and 7 mantissa bits: bins
    // under 1% wide): the "strongest n edges" threshold without sorting a million weights.
    S.absW = new Float32Array(M);
    const bits = new Uint32Array(S.absW.buffer, 0, M), wbits = new Uint32Array(S.w.buffer, S.w.byteOffset, M);
    S.absHist = new Int32Array(32768);
    let maxBits = 0;
    for (let e = 0; e < M; e++) {
      const v = wbits[e] & 0x7fffffff;   // clearing the sign bit is |w|
      bits[e] = v;
      S.absHist[v >>> 16]++;
      if (v > maxBits) maxBits = v;
    }
    S.maxAbs = M ? Math.max(new Float32Array(new Uint32Array([maxBits]).buffer)[0], 1e-30) : 1;
    // adjacency: edge indices grouped by source (outputs) and by target (inputs)
    const csr = (ends) => {
      const start = new Int32Array(N + 1), list = new Int32Array(M);
      for (let e = 0; e < M; e++) start[ends[e] + 1]++;
      for (let i = 0; i < N; i++) start[i + 1] += start[i];
      const fill = start.slice(0, N);
      for (let e = 0; e < M; e++) list[fill[ends[e]]++] = e;
      return [start, list];
    };
    [S.outStart, S.outList] = csr(S.src);
    if (S.rowByTarget) {   // the packed graph is already grouped by target
      S.inStart = S.rowByTarget;
      S.inList = new Int32Array(M);
      for (let e = 0; e < M; e++) S.inList[e] = e;
    } else {
      [S.inStart, S.inList] = csr(S.dst);
    }
    const title = (S.meta.slug || slug) + (S.meta.prompt ? ' \u2014 \u201c' + S.meta.prompt + '\u201d' : '');
    $('title').textContent = title;
    $('title').title = title;
    document.title = (S.meta.slug || slug) + ' \u2014 ctrace';
  }

  // ---- layout (engine/render.c's, in world px) ---------------------------------------------
  function layout() {
    const N = S.N;
    let L = (S.meta.info && S.meta.info.n_layers) | 0, T = Math.max(S.tokens.length, 1);
    for (let i = 0; i < N; i++) {
      if (S.kind[i] <= 1) L = Math.max(L, S.layer[i] + 1);
      T = Math.max(T, S.pos[i] + 1);
    }
    const B = L + 2;
    S.L = L; S.T = T;
    const band = (i) => S.kind[i] === 2 ? 0 : S.kind[i] === 3 ? B - 1 : S.layer[i] + 1;
    const count = new Int32Array(B * T);
    const cellOf = new Int32Array(N);
    for (let i = 0; i < N; i++) { cellOf[i] = band(i) * T + S.pos[i]; count[cellOf[i]]++; }
    const imp = (i) => Math.min(1, Math.max(0, 1 - S.infl[i]));
    let logitChars = 0;
    for (let i = 0; i < N; i++) if (S.kind[i] === 3) logitChars = Math.max(logitChars, Math.min(LOGIT_CHARS, logitText(i).length));
    const gridK = new Int32Array(T);
    S.colW = new Array(T); S.colX = new Array(T);
    let x = LEFT;
    for (let p = 0; p < T; p++) {
      let busiest = 1;
      for (let b = 0; b < B - 1; b++) busiest = Math.max(busiest, count[b * T + p]);
      let k = Math.min(GRID_MAX, Math.max(4, Math.ceil(Math.sqrt(2 * busiest))));
      gridK[p] = Math.min(k, busiest);
      let w = gridK[p] * PITCH + 2 * CELL_PAD;
      if (count[(B - 1) * T + p]) w = Math.max(w, 2 * CELL_PAD + PITCH + 4 + logitChars * CHAR_W);
      S.colW[p] = Math.max(COL_MIN, w);
      S.colX[p] = x; x += S.colW[p];
    }
    S.worldW = x + RIGHT;
    S.bandH = new Array(B); S.bandY = new Array(B);
    for (let b = 0; b < B; b++) {
      let rows = 1;
      for (let p = 0; p < T; p++) {
        const c = count[b * T + p];
        rows = Math.max(rows, b === B - 1 ? c : Math.ceil(c / gridK[p]));
      }
      S.bandH[b] = rows * PITCH + 2 * BAND_PAD;
    }
    let y = TOP;
    for (let b = B - 1; b >= 0; b--) { S.bandY[b] = y; y += S.bandH[b]; }
    S.plotY1 = y;
    S.worldH = y + BOTTOM;
    // nodes of a cell: features before errors, most important first (logits: most probable)
    const order = Array.from({ length: N }, (_, i) => i);
    const key = new Float32Array(N);
    for (let i = 0; i < N; i++) key[i] = S.kind[i] === 3 ? -S.prob[i] : -imp(i);
    order.sort((a, b) => cellOf[a] - cellOf[b] || S.kind[a] - S.kind[b] || key[a] - key[b] || a - b);
    S.x = new Float32Array(N); S.y = new Float32Array(N); S.r = new Float32Array(N);
    for (let a = 0; a < N;) {
      const cell = cellOf[order[a]];
      let e = a;
      while (e < N && cellOf[order[e]] === cell) e++;
      const b = Math.floor(cell / T), p = cell % T, c = e - a;
      const k = b === B - 1 ? 1 : gridK[p];
      const cols = Math.min(c, k), rows = Math.ceil(c / k);
      const bandRows = Math.round((S.bandH[b] - 2 * BAND_PAD) / PITCH);
      const gx0 = b === B - 1 ? S.colX[p] + CELL_PAD : S.colX[p] + 0.5 * (S.colW[p] - cols * PITCH);
      const gy0 = S.bandY[b] + BAND_PAD + 0.5 * (bandRows - rows) * PITCH;
      for (let j = 0; j < c; j++) {
        const i = order[a + j];
        S.x[i] = gx0 + ((j % k) + 0.5) * PITCH;
        S.y[i] = gy0 + (Math.floor(j / k) + 0.5) * PITCH;
        S.r[i] = S.kind[i] >= 2 ? RMAX : RMIN + (RMAX - RMIN) * imp(i);
      }
      a = e;
    }
    // hit-test grid: one bucket per PITCH square
    S.grid = new Map();
    for (let i = 0; i < N; i++) {
      const key2 = Math.floor(S.y[i] / PITCH) * 65536 + Math.floor(S.x[i] / PITCH);
      const l = S.grid.get(key2);
      if (l) l.push(i); else S.grid.set(key2, [i]);
    }
  }

  // ---- what is shown ----------------------------------------------------------------------------
  function setupSliders() {
    const es = $('edges');
    const nmin = Math.min(S.M, 50);
    S.edgeSlider = (v) => S.M <= nmin ? S.M : Math.round(nmin * Math.pow(S.M / nmin, v / 1000));
    const want = Math.min(S.M, DEFAULT_EDGES);
    es.value = S.M <= nmin ? 1000 : Math.round(1000 * Math.log(want / nmin) / Math.log(S.M / nmin));
    S.edgeCount = S.edgeSlider(+es.value);
    es.addEventListener('input', () => { S.edgeCount = S.edgeSlider(+es.value); computeVisibility(); draw(); });
    const ps = $('prune');
    ps.addEventListener('input', () => { S.pruneAt = +ps.value; computeVisibility(); refreshPanel(); draw(); });
  }

  // Nodes: tokens and logits always, the others when influence <= pruneAt.  Edges: both ends
  // visible and |w| among the edgeCount strongest; bucketed for drawing.
  function computeVisibility() {
    const N = S.N, M = S.M;
    S.vis = S.vis || new Uint8Array(N);
    let nv = 0;
    for (let i = 0; i < N; i++) { S.vis[i] = S.kind[i] >= 2 || S.infl[i] <= S.pruneAt + 1e-9 ? 1 : 0; nv += S.vis[i]; }
    S.edgeMin = absThreshold(Math.max(1, S.edgeCount));
    const counts = new Int32Array(2 * NB);
    const bucketOf = (e) => 2 * Math.min(NB - 1, Math.floor(Math.sqrt(S.absW[e] / S.maxAbs) * NB)) + (S.w[e] > 0 ? 1 : 0);
    const sel = [];
    for (let e = 0; e < M; e++) {
      if (S.absW[e] < S.edgeMin || !S.vis[S.src[e]] || !S.vis[S.dst[e]]) continue;
      sel.push(e);
    }
    for (const e of sel) counts[bucketOf(e)]++;
    S.buckets = [];
    for (let b = 0; b < 2 * NB; b++) S.buckets.push(new Int32Array(counts[b]));
    const fill = new Int32Array(2 * NB);
    for (const e of sel) { const b = bucketOf(e); S.buckets[b][fill[b]++] = e; }
    S.drawn = sel.length;
    S.visibleNodes = nv;
    $('prune-val').textContent = S.pruneAt.toFixed(2);
    $('edges-val').textContent = '\u2265 ' + fmtW(S.edgeMin) + ' (' + thousands(sel.length) + ')';
    $('stats').textContent = thousands(nv) + ' / ' + thousands(N) + ' nodes \u00b7 ' +
      thousands(M) + ' links';
    if (S.selected >= 0) S.hl = highlightEdges(S.selected);
  }

  // The lower edge of the histogram bin where the n strongest edges end (at least n pass).
  function absThreshold(n) {
    let c = 0;
    for (let b = 32767; b >= 0; b--) {
      c += S.absHist[b];
      if (c >= n) return new Float32Array(new Uint32Array([b << 16]).buffer)[0];
    }
    return 0;
  }

  // The edges of node i whose other end is visible (all of them when nothing is pruned).
  function highlightEdges(i) {
    const out = [];
    for (let j = S.inStart[i]; j < S.inStart[i + 1]; j++) { const e = S.inList[j]; if (S.vis[S.src[e]]) out.push(e); }
    for (let j = S.outStart[i]; j < S.outStart[i + 1]; j++) { const e = S.outList[j]; if (S.vis[S.dst[e]]) out.push(e); }
    return out;
  }

  // ---- drawing ---------------------------------------------------------------------------------
  let frame = 0;
  function draw() { if (!frame) frame = requestAnimationFrame(paint); }

  function resize() {
    const r = cv.getBoundingClientRect();
    S.dpr = window.devicePixelRatio || 1;
    cv.width = Math.max(1, Math.round(r.width * S.dpr));
    cv.height = Math.max(1, Math.round(r.height * S.dpr));
    S.cw = r.width; S.ch = r.height;
  }

  function fit() {
    resize();
    const k = Math.min(S.cw / S.worldW, S.ch / S.worldH) * 0.98;
    S.k = Math.min(Math.max(k, 0.02), 2.5);
    S.tx = (S.cw - S.worldW * S.k) / 2;
    S.ty = Math.max(0, (S.ch - S.worldH * S.k) / 2);
    draw();
  }

  function paint() {
    frame = 0;
    const k = S.k, d = S.dpr;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, cv.width, cv.height);
    ctx.setTransform(d * k, 0, 0, d * k, d * S.tx, d * S.ty);
    // bands and column separators
    const B = S.L + 2, x0 = LEFT, x1 = S.worldW - RIGHT;
    for (let b = 0; b < B; b++) {
      ctx.fillStyle = b & 1 ? '#ffffff' : '#f8fafc';
      ctx.fillRect(x0, S.bandY[b], x1 - x0, S.bandH[b]);
    }
    ctx.strokeStyle = '#e5e7eb';
    ctx.lineWidth = 1 / k;
    ctx.beginPath();
    for (let p = 1; p < S.T; p++) { ctx.moveTo(S.colX[p], TOP); ctx.lineTo(S.colX[p], S.plotY1); }
    ctx.stroke();
    const focus = S.hover >= 0 ? S.hover : S.selected;
    // edges, weakest buckets first; faded when a node is in focus
    const fade = focus >= 0 ? 0.18 : 1;
    for (let b = 0; b < 2 * NB; b++) {
      const list = S.buckets[b];
      if (!list || !list.length) continue;
      const f = (Math.floor(b / 2) + 0.5) / NB;
      ctx.strokeStyle = 'rgba(' + (b & 1 ? POS_RGB : NEG_RGB) + ',' + ((0.10 + 0.65 * f) * fade).toFixed(3) + ')';
      ctx.lineWidth = (0.35 + 2.4 * f) / k;
      ctx.beginPath();
      for (let j = 0; j < list.length; j++) {
        const e = list[j], s = S.src[e], t = S.dst[e];
        ctx.moveTo(S.x[s], S.y[s]); ctx.lineTo(S.x[t], S.y[t]);
      }
      ctx.stroke();
    }
    let hl = null, near = null;
    if (focus >= 0) {
      hl = focus === S.selected ? S.hl : highlightEdges(focus);
      near = new Set([focus]);
      for (const e of hl) {
        const s = S.src[e], t = S.dst[e], f = Math.sqrt(S.absW[e] / S.maxAbs);
        near.add(s); near.add(t);
        ctx.strokeStyle = 'rgba(' + (S.w[e] > 0 ? POS_RGB : NEG_RGB) + ',' + (0.35 + 0.6 * f).toFixed(3) + ')';
        ctx.lineWidth = (0.8 + 3.2 * f) / k;
        ctx.beginPath(); ctx.moveTo(S.x[s], S.y[s]); ctx.lineTo(S.x[t], S.y[t]); ctx.stroke();
      }
    }
    // nodes: one path per kind; dimmed when something else is in focus
    drawNodes(near ? 0.3 : 1, null);
    if (near) drawNodes(1, near);
    // rings: pinned, supernode members, selection
    ctx.lineWidth = 2 / k;
    ctx.strokeStyle = '#111827';
    ctx.beginPath();
    for (const i of S.pinned) if (S.vis[i]) { ctx.moveTo(S.x[i] + S.r[i] + 2.5, S.y[i]); ctx.arc(S.x[i], S.y[i], S.r[i] + 2.5, 0, 2 * Math.PI); }
    ctx.stroke();
    drawSupernodes();
    if (S.selected >= 0) {
      const i = S.selected;
      ctx.lineWidth = 3 / k;
      ctx.strokeStyle = '#dc2626';
      ctx.beginPath(); ctx.arc(S.x[i], S.y[i], S.r[i] + 4, 0, 2 * Math.PI); ctx.stroke();
    }
    // screen-space text: layer names, tokens, logit labels, weights of the focus's edges
    ctx.setTransform(d, 0, 0, d, 0, 0);
    drawText(focus, hl);
  }

  function drawNodes(alpha, only) {
    const k = S.k;
    ctx.globalAlpha = alpha;
    for (let kind = 0; kind < 4; kind++) {
      ctx.fillStyle = FILL[kind];
      ctx.strokeStyle = STROKE[kind];
      ctx.lineWidth = 0.9 / k;
      ctx.beginPath();
      // Zoomed far out a node is a few pixels: squares look the same and raster much faster.
      const tiny = S.k * RMAX < 3;
      const add = (i) => {
        if (S.kind[i] !== kind || !S.vis[i]) return;
        const x = S.x[i], y = S.y[i], r = S.r[i];
        if (kind === 0 && !tiny) { ctx.moveTo(x + r, y); ctx.arc(x, y, r, 0, 2 * Math.PI); }
        else if (kind === 2 && ctx.roundRect) ctx.roundRect(x - r, y - r, 2 * r, 2 * r, 3);
        else ctx.rect(x - r, y - r, 2 * r, 2 * r);
      };
      if (only) { for (const i of only) add(i); } else { for (let i = 0; i < S.N; i++) add(i); }
      ctx.fill();
      if (!tiny || only) ctx.stroke();
    }
    ctx.globalAlpha = 1;
  }

  function drawSupernodes() {
    const k = S.k;
    S.supernodes.forEach((sn, si) => {
      let ax = Infinity, ay = Infinity, bx = -Infinity, by = -Infinity;
      for (const i of sn.members) {
        ax = Math.min(ax, S.x[i] - S.r[i]); bx = Math.max(bx, S.x[i] + S.r[i]);
        ay = Math.min(ay, S.y[i] - S.r[i]); by = Math.max(by, S.y[i] + S.r[i]);
      }
      if (!isFinite(ax)) return;
      ctx.setLineDash([5 / k, 3 / k]);
      ctx.lineWidth = (si === S.snFocus ? 3 : 1.6) / k;
      ctx.strokeStyle = '#7c3aed';
      ctx.strokeRect(ax - 5, ay - 5, bx - ax + 10, by - ay + 10);
      ctx.setLineDash([]);
      sn.box = [ax - 5, ay - 5];
    });
  }

  function toScreen(x, y) { return [x * S.k + S.tx, y * S.k + S.ty]; }

  function drawText(focus, hl) {
    ctx.textBaseline = 'middle';
    ctx.font = '11px "DejaVu Sans", Helvetica, Arial, sans-serif';
    // layer names stick to the left edge
    ctx.fillStyle = '#4b5563';
    ctx.strokeStyle = 'rgba(255,255,255,0.9)';
    ctx.lineWidth = 3;
    ctx.lineJoin = 'round';
    ctx.textAlign = 'right';
    const B = S.L + 2;
    for (let b = 0; b < B; b++) {
      const [sx, sy] = toScreen(LEFT - 8, S.bandY[b] + S.bandH[b] / 2);
      if (S.bandH[b] * S.k < 9) continue;
      const name = b === 0 ? 'emb' : b === B - 1 ? 'logit' : 'L' + (b - 1), lx = Math.max(sx, 34);
      ctx.strokeText(name, lx, sy);   // white halo: readable over nodes when panned
      ctx.fillText(name, lx, sy);
    }
    // tokens under their columns
    ctx.textAlign = 'center';
    ctx.font = '12px "DejaVu Sans", Helvetica, Arial, sans-serif';
    for (let p = 0; p < S.T; p++) {
      const w = S.colW[p] * S.k;
      if (w < 18) continue;
      const [sx, sy] = toScreen(S.colX[p] + S.colW[p] / 2, S.plotY1 + 16);
      ctx.fillStyle = '#111827';
      ctx.fillText(clip(S.tokens[p] !== undefined ? S.tokens[p] : '', Math.floor(w / 7.5)), sx, sy);
      ctx.fillStyle = '#9ca3af';
      ctx.font = '9px "DejaVu Sans", Helvetica, Arial, sans-serif';
      ctx.fillText(String(p), sx, sy + 14);
      ctx.font = '12px "DejaVu Sans", Helvetica, Arial, sans-serif';
    }
    // logit labels
    ctx.textAlign = 'left';
    ctx.font = '11px "DejaVu Sans", Helvetica, Arial, sans-serif';
    ctx.fillStyle = '#374151';
    if (S.k > 0.45) {
      for (let i = 0; i < S.N; i++) {
        if (S.kind[i] !== 3 || !S.vis[i]) continue;
        const [sx, sy] = toScreen(S.x[i] + S.r[i] + 5, S.y[i]);
        ctx.strokeText(logitText(i), sx, sy);
        ctx.fillText(logitText(i), sx, sy);
      }
    }
    // supernode names
    ctx.fillStyle = '#6d28d9';
    ctx.font = 'bold 11px "DejaVu Sans", Helvetica, Arial, sans-serif';
    for (const sn of S.supernodes) {
      if (!sn.box) continue;
      const [sx, sy] = toScreen(sn.box[0], sn.box[1]);
      ctx.fillText(sn.name, sx, sy - 8);
    }
    // weights of the focus's strongest edges next to the other end
    if (focus >= 0 && hl) {
      const top = hl.slice().sort((a, b) => S.absW[b] - S.absW[a]).slice(0, 24);
      ctx.font = '10px "DejaVu Sans", Helvetica, Arial, sans-serif';
      const placed = [];   // label boxes drawn so far: a label that would overlap one is skipped
      for (const e of top) {
        const o = S.src[e] === focus ? S.dst[e] : S.src[e];
        const [ox, sy] = toScreen(S.x[o], S.y[o]);
        const t = fmtW(S.w[e], true);
        const bw = ctx.measureText(t).width + 4;
        // a logit's label is on its right: its weight goes on the left
        const sx = S.kind[o] === 3 ? ox - S.r[o] * S.k - 12 - bw : ox;
        const box = [sx + 6, sy - 14, sx + 6 + bw, sy - 2];
        if (placed.some((p) => box[0] < p[2] && p[0] < box[2] && box[1] < p[3] && p[1] < box[3])) continue;
        placed.push(box);
        ctx.fillStyle = 'rgba(255,255,255,0.85)';
        ctx.fillRect(sx + 6, sy - 14, bw, 12);
        ctx.fillStyle = S.w[e] > 0 ? 'rgb(' + POS_RGB + ')' : 'rgb(' + NEG_RGB + ')';
        ctx.fillText(t, sx + 8, sy - 8);
      }
    }
  }

  // ---- text helpers ----------------------------------------------------------------------------
  function thousands(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ','); }
  function clip(s, n) { return s.length > n ? s.slice(0, Math.max(1, n - 1)) + '\u2026' : s; }
  function fmtW(v, signed) {
    const a = Math.abs(v);
    const s = a === 0 ? '0' : a >= 100 || a < 0.001 ? a.toExponential(2) : a.toPrecision(3);
    return (signed ? (v > 0 ? '+' : v < 0 ? '\u2212' : '') : v < 0 ? '\u2212' : '') + s;
  }
  function logitText(i) {
    const m = /^Output "(.*)" \(p=/.exec(S.labels[i] || '');
    return clip('\u201c' + (m ? m[1] : S.ids[i]) + '\u201d ' + S.prob[i].toFixed(3), LOGIT_CHARS);
  }
  function nodeName(i) {
    const k = S.kind[i];
    if (k === 0) return S.labels[i] || 'feature L' + S.layer[i] + ' #' + S.feat[i] + ' @' + S.pos[i];
    if (k === 1) return 'error L' + S.layer[i] + ' @' + S.pos[i];
    if (k === 2) return 'token \u201c' + (S.labels[i] || S.tokens[S.pos[i]] || '') + '\u201d @' + S.pos[i];
    return S.labels[i] || S.ids[i];
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // ---- side panel ------------------------------------------------------------------------------
  function select(i) {
    S.selected = i;
    S.hl = i >= 0 ? highlightEdges(i) : [];
    refreshPanel();
    draw();
  }

  function refreshPanel() {
    const box = $('details');
    box.replaceChildren(el('h2', null, 'Node'));
    const i = S.selected;
    if (i < 0) {
      box.append(el('p', 'hint', 'Click a node to see its details and its strongest inputs and outputs. Drag to pan, wheel to zoom.'));
      return;
    }
    S.hl = highlightEdges(i);
    const k = S.kind[i];
    box.append(el('div', 'label', nodeName(i)));
    const dl = el('dl', 'kv');
    const row = (a, b) => { dl.append(el('dt', null, a), el('dd', null, b)); };
    row('kind', KIND_NAME[k]);
    row('node id', S.ids[i]);
    row('layer', k === 2 ? 'embedding' : k === 3 ? 'logit (' + S.layer[i] + ')' : String(S.layer[i]));
    row('position', S.pos[i] + (S.tokens[S.pos[i]] !== undefined ? '  \u201c' + S.tokens[S.pos[i]] + '\u201d' : ''));
    if (k === 0) row('feature', String(S.feat[i]));
    if (k === 3) row('token id', String(S.feat[i]));
    row('activation', isNaN(S.act[i]) ? '\u2014' : S.act[i].toPrecision(4));
    if (k === 3) row('probability', S.prob[i].toFixed(4));
    row('influence', S.infl[i].toFixed(4) + ' (cumulative rank)');
    row('label', S.labels[i] || '\u2014');
    const nin = S.inStart[i + 1] - S.inStart[i], nout = S.outStart[i + 1] - S.outStart[i];
    row('degree', nin + ' in, ' + nout + ' out');
    box.append(dl);
    const hc = el('p', 'hint', S.hl.length + ' highlighted edges');
    hc.id = 'hl-count';
    hc.dataset.count = String(S.hl.length);
    box.append(hc);
    const pin = el('button', null, S.pinned.has(i) ? 'unpin' : 'pin');
    pin.type = 'button';
    pin.id = 'pin-toggle';
    pin.addEventListener('click', () => togglePin(i));
    box.append(pin);
    box.append(el('h3', null, 'Top inputs'), edgeList(S.inStart, S.inList, i, S.src));
    box.append(el('h3', null, 'Top outputs'), edgeList(S.outStart, S.outList, i, S.dst));
  }

  // The 12 strongest edges of one direction, each a row: weight, bar, the other end.
  function edgeList(start, list, i, other) {
    const ul = el('ul', 'list');
    const es = Array.from(list.subarray(start[i], start[i + 1]));
    es.sort((a, b) => S.absW[b] - S.absW[a]);
    if (!es.length) ul.append(el('li', 'hint', 'none'));
    for (const e of es.slice(0, 12)) {
      const o = other[e], sign = S.w[e] > 0 ? 'pos' : 'neg';
      const li = el('li');
      const bar = el('span', 'bar ' + sign);
      bar.style.width = Math.max(2, Math.round(40 * Math.sqrt(S.absW[e] / S.maxAbs))) + 'px';
      li.append(el('span', 'w ' + sign, fmtW(S.w[e], true)), bar, el('span', 't', nodeName(o)));
      li.title = S.ids[o];
      li.addEventListener('click', () => select(o));
      ul.append(li);
    }
    return ul;
  }

  function refreshPins() {
    const ul = $('pin-list');
    ul.replaceChildren();
    for (const i of S.pinned) {
      const li = el('li');
      li.append(el('span', 'swatch'), el('span', 't', nodeName(i)));
      li.firstChild.style.background = FILL[S.kind[i]];
      const x = el('span', 'x', '\u00d7');
      x.title = 'unpin';
      x.addEventListener('click', (ev) => { ev.stopPropagation(); togglePin(i); });
      li.append(x);
      li.addEventListener('click', () => select(i));
      ul.append(li);
    }
    $('pin-count').textContent = String(S.pinned.size);
    const sl = $('sn-list');
    sl.replaceChildren();
    S.supernodes.forEach((sn, si) => {
      const li = el('li');
      li.dataset.name = sn.name;
      li.append(el('span', 't', sn.name + ' (' + sn.members.length + ')'));
      const x = el('span', 'x', '\u00d7');
      x.title = 'delete supernode';
      x.addEventListener('click', (ev) => { ev.stopPropagation(); S.supernodes.splice(si, 1); S.snFocus = -1; changed(); });
      li.append(x);
      li.addEventListener('click', () => { S.snFocus = si === S.snFocus ? -1 : si; draw(); });
      sl.append(li);
    });
    $('sn-count').textContent = String(S.supernodes.length);
  }

  function togglePin(i) {
    if (S.pinned.has(i)) S.pinned.delete(i); else S.pinned.add(i);
    if (i === S.selected) refreshPanel();
    changed();
  }

  function makeSupernode() {
    const members = Array.from(S.pinned);
    if (!members.length) { status('pin some nodes first', 'err'); return; }
    let name = $('sn-name').value.trim();
    if (!name) name = 'supernode ' + (S.supernodes.length + 1);
    S.supernodes.push({ name: name.slice(0, 200), members });
    $('sn-name').value = '';
    changed();
  }

  // ---- saving (qParams) ------------------------------------------------------------------------
  function restore(q) {
    const byId = new Map();
    for (let i = 0; i < S.N; i++) if (!byId.has(S.ids[i])) byId.set(S.ids[i], i);
    for (const id of Array.isArray(q.pinnedIds) ? q.pinnedIds : []) if (byId.has(id)) S.pinned.add(byId.get(id));
    for (const sn of Array.isArray(q.supernodes) ? q.supernodes : []) {
      if (!Array.isArray(sn) || typeof sn[0] !== 'string') continue;
      const members = sn.slice(1).filter((id) => byId.has(id)).map((id) => byId.get(id));
      if (members.length) S.supernodes.push({ name: sn[0], members });
    }
    refreshPins();
    if (q.clickedId && byId.has(q.clickedId)) select(byId.get(q.clickedId));
  }

  function changed() {
    refreshPins();
    draw();
    S.dirty = true;   // a save is due (tests wait for !dirty && !saving)
    clearTimeout(S.saveTimer);
    S.saveTimer = setTimeout(save, 250);
  }

  function status(text, cls) {
    const s = $('status');
    s.textContent = text;
    s.className = cls || '';
  }

  async function save() {
    if (S.saving) { S.saveAgain = true; return; }
    S.saving = true;
    S.dirty = false;
    status('saving\u2026');
    const body = {
      pinnedIds: Array.from(S.pinned, (i) => S.ids[i]),
      supernodes: S.supernodes.map((sn) => [sn.name].concat(sn.members.map((i) => S.ids[i]))),
      linkType: 'both',
      clickedId: S.selected >= 0 ? S.ids[S.selected] : '',
      sg_pos: '',
    };
    try {
      const res = await fetch('/api/qparams/' + encodeURIComponent(slug), {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
      });
      const j = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error(j.error || 'HTTP ' + res.status);
      S.saves++;
      $('status').dataset.saves = String(S.saves);
      status('saved', 'ok');
    } catch (err) {
      status('save failed: ' + err.message, 'err');
    }
    S.saving = false;
    if (S.saveAgain) { S.saveAgain = false; save(); }
  }

  // ---- interaction -----------------------------------------------------------------------------
  function hit(mx, my) {
    const wx = (mx - S.tx) / S.k, wy = (my - S.ty) / S.k;
    const cx = Math.floor(wx / PITCH), cy = Math.floor(wy / PITCH);
    let best = -1, bd = Infinity;
    for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
      const l = S.grid.get((cy + dy) * 65536 + cx + dx);
      if (!l) continue;
      for (const i of l) {
        if (!S.vis[i]) continue;
        const d = Math.hypot(S.x[i] - wx, S.y[i] - wy);
        if (d <= S.r[i] + 3 / S.k && d < bd) { bd = d; best = i; }
      }
    }
    return best;
  }

  function showTip(i, mx, my) {
    const tip = $('tip');
    if (i < 0) { tip.hidden = true; return; }
    const nin = S.inStart[i + 1] - S.inStart[i], nout = S.outStart[i + 1] - S.outStart[i];
    tip.textContent = nodeName(i) + '\n' + KIND_NAME[S.kind[i]] + ' ' + S.ids[i] + ' \u00b7 influence ' +
      S.infl[i].toFixed(3) + '\n' + nin + ' inputs, ' + nout + ' outputs';
    tip.hidden = false;
    tip.style.left = Math.min(mx + 14, S.cw - 240) + 'px';
    tip.style.top = (my + 14) + 'px';
  }

  function hookEvents() {
    let drag = null;
    cv.addEventListener('pointerdown', (e) => {
      drag = { x: e.clientX, y: e.clientY, moved: 0 };
      cv.setPointerCapture(e.pointerId);
    });
    cv.addEventListener('pointermove', (e) => {
      const r = cv.getBoundingClientRect(), mx = e.clientX - r.left, my = e.clientY - r.top;
      if (drag && (e.buttons & 1)) {
        const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
        drag.moved += Math.abs(dx) + Math.abs(dy);
        drag.x = e.clientX; drag.y = e.clientY;
        if (drag.moved > 4) cv.classList.add('dragging');
        S.tx += dx; S.ty += dy;
        draw();
        return;
      }
      const i = hit(mx, my);
      cv.classList.toggle('over', i >= 0);
      if (i !== S.hover) { S.hover = i; draw(); }
      showTip(i, mx, my);
    });
    cv.addEventListener('pointerup', (e) => {
      cv.classList.remove('dragging');
      if (drag && drag.moved <= 4) {
        const r = cv.getBoundingClientRect();
        const i = hit(e.clientX - r.left, e.clientY - r.top);
        if (i >= 0 && e.shiftKey) togglePin(i);
        else select(i);
      }
      drag = null;
    });
    cv.addEventListener('pointerleave', () => { if (S.hover >= 0) { S.hover = -1; draw(); } showTip(-1); });
    cv.addEventListener('wheel', (e) => {
      e.preventDefault();
      const r = cv.getBoundingClientRect(), mx = e.clientX - r.left, my = e.clientY - r.top;
      const k2 = Math.min(40, Math.max(0.02, S.k * Math.exp(-e.deltaY * 0.0015)));
      S.tx = mx - (mx - S.tx) * k2 / S.k;
      S.ty = my - (my - S.ty) * k2 / S.k;
      S.k = k2;
      draw();
    }, { passive: false });
    window.addEventListener('keydown', (e) => {
      if (e.target && (e.target.tagName === 'INPUT' || e.target.tagName === 'TEXTAREA')) return;
      if (e.key === 'Escape') select(-1);
      else if (e.key === 'p' && S.selected >= 0) togglePin(S.selected);
      else if (e.key === 'f') fit();
    });
    new ResizeObserver(() => { resize(); draw(); }).observe($('stage'));
    $('fit').addEventListener('click', fit);
    $('sn-make').addEventListener('click', makeSupernode);
    $('sn-name').addEventListener('keydown', (e) => { if (e.key === 'Enter') makeSupernode(); });
    $('pin-clear').addEventListener('click', () => { S.pinned.clear(); if (S.selected >= 0) refreshPanel(); changed(); });
  }

  // ---- test hooks ------------------------------------------------------------------------------
  // Screen position (page coordinates) of a node by id, for a real mouse click in tests.
  S.nodeScreenPos = (id) => {
    const i = S.ids.indexOf(id);
    if (i < 0) return null;
    const r = cv.getBoundingClientRect();
    const [sx, sy] = toScreen(S.x[i], S.y[i]);
    return { x: r.left + sx, y: r.top + sy, visible: sx >= 0 && sy >= 0 && sx <= S.cw && sy <= S.ch };
  };
  S.centerOn = (id, zoom) => {
    const i = S.ids.indexOf(id);
    if (i < 0) return false;
    S.k = zoom || S.k;
    S.tx = S.cw / 2 - S.x[i] * S.k;
    S.ty = S.ch / 2 - S.y[i] * S.k;
    paint();
    return true;
  };

  load().catch((err) => {
    S.error = String(err && err.message || err);
    const l = $('loading');
    if (l) { l.textContent = 'could not load the graph: ' + S.error; l.className = 'err'; }
    document.body.dataset.ready = 'error';
    console.error(err);
  });
})();
