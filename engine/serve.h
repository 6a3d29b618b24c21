// serve.h — `ctrace serve`: a local HTTP server (libmicrohttpd) for the graphs of a directory.
//
// Routes (GET/HEAD unless noted; everything else 404, other methods 405):
//   /                          index: the graphs of DIR/graph-metadata.json (slug, prompt, scores)
//   /graph/<slug>              the interactive viewer page (web/viewer.html)
//   /data/<slug>.json          the graph file DIR/<slug>.json
//   /data/<slug>.bin           the same graph packed for the viewer (serve_pack_graph below)
//   /assets/<name>             viewer.js, viewer.css (embedded in the binary: engine/web_assets.c)
//   POST /api/qparams/<slug>   new pins and supernodes: {"pinnedIds": [id...], "supernodes":
//                              [[name, id...]...], "linkType", "clickedId", "sg_pos"} replaces the
//                              graph file's "qParams" value; every other byte stays as it was.
//
// Safety: only slugs listed in graph-metadata.json and made of [A-Za-z0-9._-] (not starting with
// '.') name files, so no request reaches outside DIR ("../", "%2e%2e", "%2f" are refused with
// 400).  Bound to loopback by default; on a loopback address the Host header must name
// loopback too (no DNS rebinding), and a POST must be application/json from the same origin.
// A POST is validated before anything is written (JSON shape, every id present in the graph,
// body at most SERVE_MAX_POST bytes — 413 above) and written through a temp file and a rename;
// saves are serialised by a mutex, so concurrent saves leave one of them, whole.
// SIGINT/SIGTERM stop the server cleanly (serve_run returns 0).
#pragma once
#include <stddef.h>

#define SERVE_MAX_POST (1u << 20)   // bytes of a qParams POST body

// Serve DIR on host:port (port 0: any free port; the URL is printed on stdout) until SIGINT or
// SIGTERM.  open_slug (or NULL): print that graph's URL, and open it with $BROWSER when set.
int serve_run(const char *dir, const char *host, int port, const char *open_slug);

// ---- pieces, exposed for tests -------------------------------------------------------------------
// Is s a slug that may name a file: 1-128 characters of [A-Za-z0-9._-], not starting with '.'?
int serve_slug_ok(const char *s);
// Replace the qParams of the graph JSON at path with body (validated: see above).  Returns 0,
// or an HTTP status (400, 404, 500) with a message in ct_errmsg().
int serve_save_qparams(const char *path, const char *body, size_t len);

// The viewer's packed form of the graph JSON at path, in *out (malloc'd, *n bytes):
//   "CTVIEW2\0", u32 N (nodes), u32 M (links), u32 J, u32 flags (1: 16-bit sources)   24 bytes
//   J bytes: {"metadata":...,"qParams":...,"nodes":[...]} (the file's own bytes), space-padded
//   to a multiple of 4
//   u32 row[N + 1]      links by target: row t's links are [row[t], row[t+1])
//   source[M]           u16 (flags & 1, when N <= 65535) or u32 node indices, then zero
//                       padding to a multiple of 4
//   f32 weight[M]
// Little-endian.  Within a row links keep their file order.  Links naming a node that is not
// in the file are dropped.
int serve_pack_graph(const char *path, char **out, size_t *n);
