// serve.c — the local graph viewer's HTTP server (routes and rules in serve.h).
//
// libmicrohttpd runs the connections on a small thread pool; this file only answers requests:
// parse the route, check the slug against graph-metadata.json, answer from the embedded
// assets, from the graph file (by fd, no copy), or save new qParams into it.
#include "engine/serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/common.h"
#include "engine/web_assets.h"

extern char **environ;

// A packed graph (serve_pack_graph) kept for the next request while its file is unchanged.
// refs: the cache's own reference plus one per response still sending it.
typedef struct Packed {
    struct Packed *next;
    char *slug;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    char *buf;
    size_t n;
    int refs;
} Packed;

typedef struct Server {
    char *dir;
    int port;               // the bound port
    int loopback;           // bound to a loopback address: Host must name loopback
    pthread_mutex_t save;   // one qParams save at a time
    pthread_mutex_t cache;  // guards packed and every Packed.refs
    Packed *packed;
    atomic_int stopping;    // tells the warm-up thread to finish
} Server;

// Per-request state: the POST body as it arrives.
typedef struct Request {
    char *body;
    size_t len, cap;
    int too_big;
} Request;

// ---- small helpers -------------------------------------------------------------------------------
int serve_slug_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 128 || s[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

// A growable string for generated pages.
typedef struct Buf {
    char *s;
    size_t n, cap;
    int oom;
} Buf;

static void buf_add(Buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *t = realloc(b->s, cap);
        if (!t) {
            b->oom = 1;
            return;
        }
        b->s = t, b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void buf_str(Buf *b, const char *s) { buf_add(b, s, strlen(s)); }
static void buf_fmt(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_fmt(Buf *b, const char *fmt, ...) {
    char t[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t, sizeof t, fmt, ap);
    va_end(ap);
    if (k > 0) buf_add(b, t, (size_t)k < sizeof t ? (size_t)k : sizeof t - 1);
}
// Text escaped for HTML (jansson strings are valid UTF-8 already).
static void buf_html(Buf *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': buf_str(b, "&amp;"); break;
        case '<': buf_str(b, "&lt;"); break;
        case '>': buf_str(b, "&gt;"); break;
        case '"': buf_str(b, "&quot;"); break;
        case '\'': buf_str(b, "&#39;"); break;
        default: buf_add(b, s, 1);
        }
    }
}

// DIR/graph-metadata.json, or NULL (message in ct_errmsg()).
static json_t *load_index(const Server *sv) {
    size_t n = strlen(sv->dir) + 32;
    char *path = malloc(n);
    if (!path) return NULL;
    snprintf(path, n, "%s/graph-metadata.json", sv->dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) ct_error("%s: %s (line %d)", path, je.text, je.line);
    else if (!json_is_array(json_object_get(root, "graphs"))) {
        ct_error("%s: expected {\"graphs\": [...]}", path);
        json_decref(root);
        root = NULL;
    }
    free(path);
    return root;
}

// Is slug a valid slug listed in graph-metadata.json?
static int slug_listed(const Server *sv, const char *slug) {
    if (!serve_slug_ok(slug)) return 0;
    json_t *root = load_index(sv);
    if (!root) return 0;
    json_t *graphs = json_object_get(root, "graphs");
    int found = 0;
    for (size_t i = 0; i < json_array_size(graphs) && !found; i++) {
        const char *s = json_string_value(json_object_get(json_array_get(graphs, i), "slug"));
        found = s && !strcmp(s, slug);
    }
    json_decref(root);
    return found;
}

static char *graph_path(const Server *sv, const char *slug) {
    size_t n = strlen(sv->dir) + strlen(slug) + 8;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s.json", sv->dir, slug);
    return p;
}

// ---- responses -----------------------------------------------------------------------------------
static const char *CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                         "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

static enum MHD_Result send_response(struct MHD_Connection *c, unsigned status, const char *type,
                                     struct MHD_Response *r) {
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    if (!strncmp(type, "text/html", 9)) {
        MHD_add_response_header(r, "Content-Security-Policy", CSP);
        MHD_add_response_header(r, "X-Frame-Options", "DENY");
    }
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_copy(struct MHD_Connection *c, unsigned status, const char *type, const char *data,
                                 size_t n) {
    return send_response(c, status, type,
                         MHD_create_response_from_buffer(n, (void *)data, MHD_RESPMEM_MUST_COPY));
}

static enum MHD_Result send_static(struct MHD_Connection *c, const WebAsset *a) {
    return send_response(c, MHD_HTTP_OK, a->type,
                         MHD_create_response_from_buffer(a->size, (void *)a->data, MHD_RESPMEM_PERSISTENT));
}

// A JSON error body {"error": msg} with the given status.
static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *msg) {
    json_t *o = json_pack("{s:s,s:i}", "error", msg, "status", (int)status);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    enum MHD_Result r = send_copy(c, status, "application/json; charset=utf-8", s ? s : "{}", s ? strlen(s) : 2);
    free(s);
    return r;
}

// ---- pages ---------------------------------------------------------------------------------------
static void score_cell(Buf *b, json_t *sc, const char *part, const char *key) {
    json_t *v = json_object_get(json_object_get(sc, part), key);
    if (json_is_number(v)) buf_fmt(b, "<td class=\"num\">%.3f</td>", json_number_value(v));
    else buf_str(b, "<td class=\"num\">\xE2\x80\x94</td>");
}

static enum MHD_Result page_index(struct MHD_Connection *c, const Server *sv) {
    Buf b = {0};
    buf_str(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                "<title>ctrace graphs</title><link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/assets/viewer.css\"></head>\n"
                "<body class=\"index\"><main><h1>Attribution graphs</h1>\n");
    json_t *root = load_index(sv);
    if (!root) {
        buf_str(&b, "<p class=\"warn\">No graph list: ");
        buf_html(&b, ct_errmsg());
        buf_str(&b, "</p><p>Write graphs with <code>ctrace attribute ... -o DIR/NAME.json</code>; it keeps "
                    "DIR/graph-metadata.json up to date.</p>\n");
    } else {
        json_t *graphs = json_object_get(root, "graphs");
        buf_fmt(&b, "<p class=\"sub\">%zu graph%s in <code>", json_array_size(graphs),
                json_array_size(graphs) == 1 ? "" : "s");
        buf_html(&b, sv->dir);
        buf_str(&b, "</code></p>\n<table id=\"graphs\"><thead><tr><th>slug</th><th>prompt</th><th>scan</th>"
                    "<th>nodes</th><th>edges</th><th>replacement</th><th>completeness</th>"
                    "<th>pruned repl.</th><th>pruned compl.</th></tr></thead><tbody>\n");
        for (size_t i = 0; i < json_array_size(graphs); i++) {
            json_t *m = json_array_get(graphs, i), *info = json_object_get(m, "info");
            json_t *sc = json_object_get(info, "scores");
            const char *slug = json_string_value(json_object_get(m, "slug"));
            buf_str(&b, "<tr><td>");
            if (slug && serve_slug_ok(slug)) {
                buf_fmt(&b, "<a href=\"/graph/%s\">", slug);   // slug chars are URL- and HTML-safe
                buf_html(&b, slug);
                buf_str(&b, "</a>");
            } else {
                buf_html(&b, slug ? slug : "(no slug)");
                buf_str(&b, " <span class=\"warn\">(not servable: a slug names the file &lt;slug&gt;.json)</span>");
            }
            buf_str(&b, "</td><td class=\"prompt\">");
            buf_html(&b, json_string_value(json_object_get(m, "prompt")));
            buf_str(&b, "</td><td>");
            buf_html(&b, json_string_value(json_object_get(m, "scan")));
            buf_str(&b, "</td>");
            json_t *nn = json_object_get(info, "n_kept_nodes"), *ne = json_object_get(info, "n_kept_edges");
            if (json_is_true(json_object_get(info, "full_graph")))
                nn = json_object_get(info, "n_nodes"), ne = json_object_get(info, "n_edges");
            if (json_is_integer(nn)) buf_fmt(&b, "<td class=\"num\">%lld</td>", (long long)json_integer_value(nn));
            else buf_str(&b, "<td></td>");
            if (json_is_integer(ne)) buf_fmt(&b, "<td class=\"num\">%lld</td>", (long long)json_integer_value(ne));
            else buf_str(&b, "<td></td>");
            score_cell(&b, sc, "full", "replacement");
            score_cell(&b, sc, "full", "completeness");
            score_cell(&b, sc, "pruned", "replacement");
            score_cell(&b, sc, "pruned", "completeness");
            buf_str(&b, "</tr>\n");
        }
        buf_str(&b, "</tbody></table>\n");
        json_decref(root);
    }
    buf_str(&b, "<p class=\"foot\">served by ctrace \xC2\xB7 nothing here comes from the network</p></main></body></html>\n");
    if (b.oom) {
        free(b.s);
        return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    enum MHD_Result r = send_copy(c, MHD_HTTP_OK, "text/html; charset=utf-8", b.s, b.n);
    free(b.s);
    return r;
}

static enum MHD_Result send_graph_file(struct MHD_Connection *c, const Server *sv, const char *slug) {
    char *path = graph_path(sv, slug);
    if (!path) return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    struct stat st;
    if (fd < 0) return send_error(c, MHD_HTTP_NOT_FOUND, "graph file missing");
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return send_error(c, MHD_HTTP_NOT_FOUND, "graph file missing");
    }
    // MHD owns fd from here (closes it with the response); a later save renames a new file in,
    // this response keeps reading the old one.
    struct MHD_Response *r = MHD_create_response_from_fd64((uint64_t)st.st_size, fd);
    if (!r) {
        close(fd);
        return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot answer");
    }
    return send_response(c, MHD_HTTP_OK, "application/json; charset=utf-8", r);
}

// ---- qParams save --------------------------------------------------------------------------------
// A minimal scanner over the top level of the graph JSON: the byte spans of the values of
// "qParams" and "nodes".  Values are skipped by bracket depth with strings honoured; the file
// was written by graph_write_json and the nodes span is parsed with jansson afterwards.
typedef struct Span {
    size_t a, b;   // [a, b), b == 0: absent
} Span;

static size_t skip_ws(const char *s, size_t n, size_t i) {
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++;
    return i;
}

static int skip_string(const char *s, size_t n, size_t *i) {
    size_t j = *i + 1;
    while (j < n && s[j] != '"') j += s[j] == '\\' ? 2 : 1;
    if (j >= n) return -1;
    *i = j + 1;
    return 0;
}

static int skip_value(const char *s, size_t n, size_t *i) {
    size_t j = *i;
    if (j >= n) return -1;
    if (s[j] == '"') return skip_string(s, n, i);
    if (s[j] == '{' || s[j] == '[') {
        long depth = 0;
        while (j < n) {
            char ch = s[j];
            if (ch == '"') {
                if (skip_string(s, n, &j) != 0) return -1;
                continue;
            }
            if (ch == '{' || ch == '[') depth++;
            else if (ch == '}' || ch == ']') {
                if (--depth == 0) {
                    *i = j + 1;
                    return 0;
                }
            }
            j++;
        }
        return -1;
    }
    while (j < n && !strchr(",}] \t\r\n", s[j])) j++;
    if (j == *i) return -1;
    *i = j;
    return 0;
}

static int scan_top(const char *s, size_t n, Span *qp, Span *nodes, size_t *open_brace) {
    qp->b = nodes->b = 0;
    size_t i = skip_ws(s, n, 0);
    if (i >= n || s[i] != '{') return -1;
    *open_brace = i++;
    for (;;) {
        i = skip_ws(s, n, i);
        if (i < n && s[i] == '}') return 0;
        if (i >= n || s[i] != '"') return -1;
        size_t k0 = i;
        if (skip_string(s, n, &i) != 0) return -1;
        size_t klen = i - k0;
        i = skip_ws(s, n, i);
        if (i >= n || s[i] != ':') return -1;
        i = skip_ws(s, n, i + 1);
        size_t v0 = i;
        if (skip_value(s, n, &i) != 0) return -1;
        if (klen == 9 && !memcmp(s + k0, "\"qParams\"", 9)) qp->a = v0, qp->b = i;
        if (klen == 7 && !memcmp(s + k0, "\"nodes\"", 7)) nodes->a = v0, nodes->b = i;
        i = skip_ws(s, n, i);
        if (i < n && s[i] == ',') {
            i++;
            continue;
        }
        if (i < n && s[i] == '}') return 0;
        return -1;
    }
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int id_known(char **ids, size_t n, const char *id) {
    return bsearch(&id, ids, n, sizeof *ids, cmp_str) != NULL;
}

// The new qParams object from the body, every id checked against ids; NULL (400) otherwise.
static json_t *build_qparams(json_t *in, char **ids, size_t n_ids) {
    if (!json_is_object(in)) {
        ct_error("expected a JSON object");
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(in, key, v) {
        if (strcmp(key, "pinnedIds") && strcmp(key, "supernodes") && strcmp(key, "linkType") &&
            strcmp(key, "clickedId") && strcmp(key, "sg_pos")) {
            ct_error("unknown key '%.40s' (expected pinnedIds, supernodes, linkType, clickedId, sg_pos)", key);
            return NULL;
        }
    }
    json_t *pins = json_object_get(in, "pinnedIds"), *sns = json_object_get(in, "supernodes");
    json_t *lt = json_object_get(in, "linkType"), *ck = json_object_get(in, "clickedId");
    json_t *sg = json_object_get(in, "sg_pos");
    if (!json_is_array(pins) || !json_is_array(sns)) {
        ct_error("pinnedIds and supernodes: expected arrays");
        return NULL;
    }
    if (json_array_size(pins) > 100000 || json_array_size(sns) > 10000) {
        ct_error("too many pins (%zu) or supernodes (%zu)", json_array_size(pins), json_array_size(sns));
        return NULL;
    }
    size_t i;
    json_array_foreach(pins, i, v) {
        if (!json_is_string(v) || !id_known(ids, n_ids, json_string_value(v))) {
            ct_error("pinnedIds[%zu]: expected the id of a node of this graph, got %s", i,
                     json_is_string(v) ? json_string_value(v) : "a non-string");
            return NULL;
        }
    }
    json_array_foreach(sns, i, v) {
        if (!json_is_array(v) || json_array_size(v) < 2 || !json_is_string(json_array_get(v, 0))) {
            ct_error("supernodes[%zu]: expected [name, node id, ...]", i);
            return NULL;
        }
        size_t nl = strlen(json_string_value(json_array_get(v, 0)));
        if (nl == 0 || nl > 200) {
            ct_error("supernodes[%zu]: name expected 1-200 bytes, got %zu", i, nl);
            return NULL;
        }
        for (size_t j = 1; j < json_array_size(v); j++) {
            json_t *id = json_array_get(v, j);
            if (!json_is_string(id) || !id_known(ids, n_ids, json_string_value(id))) {
                ct_error("supernodes[%zu][%zu]: expected the id of a node of this graph, got %s", i, j,
                         json_is_string(id) ? json_string_value(id) : "a non-string");
                return NULL;
            }
        }
    }
    const char *lts = lt ? json_string_value(lt) : "both";
    if (!lts || (strcmp(lts, "both") && strcmp(lts, "input") && strcmp(lts, "output"))) {
        ct_error("linkType: expected \"both\", \"input\" or \"output\"");
        return NULL;
    }
    const char *cks = ck ? json_string_value(ck) : "";
    if (!cks || (*cks && !id_known(ids, n_ids, cks))) {
        ct_error("clickedId: expected \"\" or the id of a node of this graph");
        return NULL;
    }
    const char *sgs = sg ? json_string_value(sg) : "";
    if (!sgs || strlen(sgs) > 65536) {
        ct_error("sg_pos: expected a string of at most 65536 bytes");
        return NULL;
    }
    return json_pack("{s:O,s:O,s:s,s:s,s:s}", "pinnedIds", pins, "supernodes", sns, "linkType", lts,
                     "clickedId", cks, "sg_pos", sgs);
}

int serve_save_qparams(const char *path, const char *body, size_t len) {
    int status = 500;
    MappedFile mf = {0};
    json_t *in = NULL, *nodes = NULL, *qp = NULL;
    char **ids = NULL, *text = NULL;
    if (len > SERVE_MAX_POST) {
        ct_error("body of %zu bytes, more than %u", len, SERVE_MAX_POST);
        return 413;
    }
    json_error_t je;
    if (!(in = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je))) {
        ct_error("body is not valid JSON: %s (column %d)", je.text, je.column);
        return 400;
    }
    if (ct_map_file(&mf, path) != CT_OK) {
        status = 404;
        goto done;
    }
    const char *s = (const char *)mf.data;
    Span sq = {0, 0}, sn = {0, 0};
    size_t brace = 0;
    if (scan_top(s, mf.size, &sq, &sn, &brace) != 0 || !sn.b) {
        ct_error("%s: not a graph JSON (no top-level \"nodes\" found)", path);
        goto done;
    }
    if (!(nodes = json_loadb(s + sn.a, sn.b - sn.a, 0, &je)) || !json_is_array(nodes)) {
        ct_error("%s: \"nodes\" is not a valid array: %s", path, je.text);
        goto done;
    }
    size_t n_ids = json_array_size(nodes);
    if (!(ids = malloc((n_ids + 1) * sizeof *ids))) {
        ct_error("out of memory");
        goto done;
    }
    size_t m = 0;
    for (size_t i = 0; i < n_ids; i++) {
        const char *id = json_string_value(json_object_get(json_array_get(nodes, i), "node_id"));
        if (id) ids[m++] = (char *)id;
    }
    qsort(ids, m, sizeof *ids, cmp_str);
    if (!(qp = build_qparams(in, ids, m))) {
        status = 400;
        goto done;
    }
    if (!(text = json_dumps(qp, JSON_COMPACT))) {
        ct_error("out of memory");
        goto done;
    }
    // prefix | new qParams | suffix (or, without a qParams key, inserted after the brace)
    AtomicFile af = {0};
    if (ct_atomic_open(&af, path) != CT_OK) goto done;
    int bad = 0;
    if (sq.b) {
        bad |= fwrite(s, 1, sq.a, af.f) != sq.a;
        bad |= fputs(text, af.f) < 0;
        bad |= fwrite(s + sq.b, 1, mf.size - sq.b, af.f) != mf.size - sq.b;
    } else {
        bad |= fwrite(s, 1, brace + 1, af.f) != brace + 1;
        bad |= fprintf(af.f, "\"qParams\":%s,", text) < 0;
        bad |= fwrite(s + brace + 1, 1, mf.size - brace - 1, af.f) != mf.size - brace - 1;
    }
    if (bad) {
        ct_atomic_abort(&af);
        ct_error("%s: write failed: %s", path, strerror(errno));
        goto done;
    }
    if (ct_atomic_commit(&af) != CT_OK) goto done;
    status = 0;
done:
    free(ids), free(text);
    json_decref(in), json_decref(nodes), json_decref(qp);
    ct_unmap_file(&mf);
    return status;
}

// ---- packed graph for the viewer ---------------------------------------------------------------
// A million links as JSON objects cost the browser seconds to parse; the same links as three
// typed arrays cost nothing.  The links are read here with a byte scanner (ids matched through a
// hash table of the node ids, weights by strtof) — a fraction of a second for a million.
typedef struct IdTable {
    size_t mask;
    int32_t *slot;         // node index + 1, 0 = empty
    uint32_t *slot_hash;   // the id hash of the slot's node (most probes end here)
    char *bytes;           // every id, back to back (one cache-friendly block)
    size_t *off;           // (N + 1) id i is bytes[off[i] .. off[i+1])
    const char **type;     // feature_type (borrowed from the parsed nodes)
} IdTable;

// FNV-1a: ids are a few bytes long, a call into a general hash costs more than the hashing.
static inline uint32_t id_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h ^ (h >> 15);
}

static inline int bytes_eq(const char *a, const char *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

static int32_t id_find(const IdTable *t, const char *s, size_t n, const char *type, size_t tn) {
    uint32_t hv = id_hash(s, n);
    for (size_t h = hv & t->mask;; h = (h + 1) & t->mask) {
        int32_t v = t->slot[h];
        if (!v) return -1;
        v--;
        if (t->slot_hash[h] == hv && t->off[v + 1] - t->off[v] == n && bytes_eq(t->bytes + t->off[v], s, n) &&
            (!type || (strlen(t->type[v]) == tn && bytes_eq(t->type[v], type, tn))))
            return v;
    }
}

static void idtable_free(IdTable *t) {
    free(t->slot), free(t->slot_hash), free(t->bytes), free(t->off), free(t->type);
}

// The id table of a parsed "nodes" array.
static int idtable_build(IdTable *t, json_t *nodes) {
    size_t N = json_array_size(nodes), cap = 16, total = 0;
    while (cap < 4 * N) cap *= 2;
    t->mask = cap - 1;
    t->slot = calloc(cap, sizeof *t->slot);
    t->slot_hash = calloc(cap, sizeof *t->slot_hash);
    t->off = calloc(N + 1, sizeof *t->off);
    t->type = calloc(N + 1, sizeof *t->type);
    if (!t->slot || !t->slot_hash || !t->off || !t->type) return ct_error("out of memory");
    for (size_t i = 0; i < N; i++) {
        json_t *o = json_array_get(nodes, i);
        const char *id = json_string_value(json_object_get(o, "node_id"));
        if (!id) return ct_error("nodes[%zu]: no node_id", i);
        total += strlen(id);
        t->off[i + 1] = total;
        t->type[i] = json_string_value(json_object_get(o, "feature_type"));
        if (!t->type[i]) t->type[i] = "";
    }
    if (!(t->bytes = malloc(total + 1))) return ct_error("out of memory");
    for (size_t i = 0; i < N; i++) {
        const char *id = json_string_value(json_object_get(json_array_get(nodes, i), "node_id"));
        size_t len = t->off[i + 1] - t->off[i];
        memcpy(t->bytes + t->off[i], id, len);
        uint32_t hv = id_hash(id, len);
        size_t h = hv & t->mask;
        while (t->slot[h]) h = (h + 1) & t->mask;
        t->slot[h] = (int32_t)i + 1;
        t->slot_hash[h] = hv;
    }
    return CT_OK;
}

// A JSON string without escapes at s[*i] (the quote): its bytes [*a, *a + *len).
static inline int plain_string(const char *s, size_t n, size_t *i, size_t *a, size_t *len) {
    if (*i >= n || s[*i] != '"') return -1;
    size_t j = *i + 1;
    while (j < n && s[j] != '"') {
        if (s[j] == '\\') return -1;
        j++;
    }
    if (j >= n) return -1;
    *a = *i + 1, *len = j - *i - 1, *i = j + 1;
    return 0;
}

// A JSON number as a float.  Fast path: at most 15 significant digits and a power of ten
// within 10^+-22, where mantissa and power are exact doubles and one division or product
// rounds once; the float is that double rounded (the viewer draws it, nothing computes with
// it).  Anything else goes through strtof.
static int parse_weight(const char *s, size_t n, size_t *pi, float *out) {
    static const double P10[23] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    size_t i = *pi, i0 = i;
    int neg = 0, digits = 0, e10 = 0, any = 0;
    uint64_t mant = 0;
    if (i < n && s[i] == '-') neg = 1, i++;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, any = 1) {
        if (mant || s[i] != '0') digits++;
        mant = mant * 10 + (uint64_t)(s[i] - '0');
        if (digits > 15) goto slow;
    }
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, any = 1) {
            if (mant || s[i] != '0') digits++;
            mant = mant * 10 + (uint64_t)(s[i] - '0');
            e10--;
            if (digits > 15) goto slow;
        }
    if (!any) return -1;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        int es = 1, ev = 0;
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+')) es = s[i] == '-' ? -1 : 1, i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return -1;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            ev = ev * 10 + (s[i] - '0');
            if (ev > 400) goto slow;
        }
        e10 += es * ev;
    }
    if (e10 < -22 || e10 > 22) goto slow;
    double v = e10 < 0 ? (double)mant / P10[-e10] : (double)mant * P10[e10];
    *out = (float)(neg ? -v : v);
    *pi = i;
    return 0;
slow:;
    char num[64];
    size_t j = i0;
    while (j < n && j - i0 < sizeof num - 1 &&
           ((s[j] >= '0' && s[j] <= '9') || s[j] == '-' || s[j] == '+' || s[j] == '.' || s[j] == 'e' || s[j] == 'E'))
        j++;
    memcpy(num, s + i0, j - i0);
    num[j - i0] = 0;
    char *end;
    *out = strtof(num, &end);
    if (end == num || *end) return -1;
    *pi = j;
    return 0;
}

typedef struct Links {
    int32_t *src, *dst;
    float *w;
    size_t n, cap;
    size_t want;   // first allocation: the expected count (about one link per 50 bytes)
} Links;

static int links_push(Links *L, int32_t u, int32_t v, float w) {
    if (L->n == L->cap) {
        size_t cap = L->cap ? 2 * L->cap : 1024;
        if (L->want > cap) cap = L->want;
        int32_t *s2 = realloc(L->src, cap * sizeof *s2);
        if (!s2) return -1;
        L->src = s2;
        int32_t *d2 = realloc(L->dst, cap * sizeof *d2);
        if (!d2) return -1;
        L->dst = d2;
        float *w2 = realloc(L->w, cap * sizeof *w2);
        if (!w2) return -1;
        L->w = w2, L->cap = cap;
    }
    L->src[L->n] = u, L->dst[L->n] = v, L->w[L->n] = w, L->n++;
    return 0;
}

// The links array at s[*i]: [{"source": id, "target": id, "weight": x, ["source_type"/
// "target_type": feature_type]}, ...]; *i moves past it.  Links naming a node that is not in
// the table are dropped (as the viewer's JSON reader does).
static int read_links(const char *s, size_t n, size_t *pi, const IdTable *t, Links *L) {
    size_t i = skip_ws(s, n, *pi);
    if (i >= n || s[i] != '[') return -1;
    L->want = (n - i) / 50 + 16;
    i = skip_ws(s, n, i + 1);
    if (i < n && s[i] == ']') {
        *pi = i + 1;
        return 0;
    }
    for (;;) {
        if (i >= n || s[i] != '{') return -1;
        i++;
        size_t a[4] = {0, 0, 0, 0}, l[4] = {0, 0, 0, 0};   // source, target, source_type, target_type
        int have[4] = {0, 0, 0, 0}, have_w = 0;
        float wt = 0;
        for (;;) {
            i = skip_ws(s, n, i);
            size_t ka, kl;
            if (plain_string(s, n, &i, &ka, &kl) != 0) return -1;
            i = skip_ws(s, n, i);
            if (i >= n || s[i] != ':') return -1;
            i = skip_ws(s, n, i + 1);
            const char *k = s + ka;
            int slot = -1, is_w = 0;
            if (kl == 6) {
                if (k[0] == 's' && bytes_eq(k, "source", 6)) slot = 0;
                else if (k[0] == 't' && bytes_eq(k, "target", 6)) slot = 1;
                else if (k[0] == 'w' && bytes_eq(k, "weight", 6)) is_w = 1;
            } else if (kl == 11) {
                if (bytes_eq(k, "source_type", 11)) slot = 2;
                else if (bytes_eq(k, "target_type", 11)) slot = 3;
            }
            if (slot >= 0) {
                if (plain_string(s, n, &i, &a[slot], &l[slot]) != 0) return -1;
                have[slot] = 1;
            } else if (is_w) {
                if (parse_weight(s, n, &i, &wt) != 0) return -1;
                have_w = 1;
            } else if (skip_value(s, n, &i) != 0) {
                return -1;
            }
            i = skip_ws(s, n, i);
            if (i < n && s[i] == ',') {
                i++;
                continue;
            }
            if (i < n && s[i] == '}') {
                i++;
                break;
            }
            return -1;
        }
        if (!have[0] || !have[1] || !have_w) return -1;
        int32_t u = id_find(t, s + a[0], l[0], have[2] ? s + a[2] : NULL, l[2]);
        int32_t v = id_find(t, s + a[1], l[1], have[3] ? s + a[3] : NULL, l[3]);
        if (u >= 0 && v >= 0 && links_push(L, u, v, wt) != 0) return -2;
        i = skip_ws(s, n, i);
        if (i < n && s[i] == ',') {
            i = skip_ws(s, n, i + 1);
            continue;
        }
        if (i < n && s[i] == ']') {
            *pi = i + 1;
            return 0;
        }
        return -1;
    }
}

int serve_pack_graph(const char *path, char **out, size_t *out_n) {
    json_t *nodes = NULL;
    IdTable t = {0};
    Links L = {0};
    int rc = CT_ERR, r;
    *out = NULL;
    // The whole file is read: map it with its pages populated up front (one call instead of a
    // page fault per 4 KiB).
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) return ct_error("cannot open %s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || st.st_size == 0) {
        close(fd);
        return ct_error("%s: empty or unreadable", path);
    }
    size_t n = (size_t)st.st_size;
    void *map = mmap(NULL, n, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return ct_error("cannot map %s: %s", path, strerror(errno));
    const char *s = map;
    Span sq = {0, 0}, sn = {0, 0}, sm = {0, 0}, sl = {0, 0};
    int links_read = 0;
    // Top level: remember the spans of metadata, qParams and nodes; read the links in place
    // when the nodes came first (graph_write_json's order), else on a second visit.
    size_t i = skip_ws(s, n, 0);
    if (i >= n || s[i] != '{') goto bad;
    i++;
    for (;;) {
        i = skip_ws(s, n, i);
        if (i < n && s[i] == '}') break;
        size_t k0, kl;
        if (plain_string(s, n, &i, &k0, &kl) != 0) goto bad;
        i = skip_ws(s, n, i);
        if (i >= n || s[i] != ':') goto bad;
        i = skip_ws(s, n, i + 1);
        size_t v0 = i;
        const char *k = s + k0;
        if (kl == 5 && bytes_eq(k, "links", 5) && t.slot) {
            if ((r = read_links(s, n, &i, &t, &L)) == -2) goto oom;
            if (r != 0) goto bad;
            links_read = 1;
        } else if (skip_value(s, n, &i) != 0) {
            goto bad;
        }
        Span *sp = kl == 8 && bytes_eq(k, "metadata", 8) ? &sm
                   : kl == 7 && bytes_eq(k, "qParams", 7) ? &sq
                   : kl == 5 && bytes_eq(k, "nodes", 5)   ? &sn
                   : kl == 5 && bytes_eq(k, "links", 5)   ? &sl : NULL;
        if (sp) sp->a = v0, sp->b = i;
        if (sp == &sn) {
            json_error_t je;
            if (!(nodes = json_loadb(s + sn.a, sn.b - sn.a, 0, &je)) || !json_is_array(nodes)) goto bad;
            if (idtable_build(&t, nodes) != CT_OK) goto bad;
        }
        i = skip_ws(s, n, i);
        if (i < n && s[i] == ',') {
            i++;
            continue;
        }
        if (i < n && s[i] == '}') break;
        goto bad;
    }
    if (!sn.b || !sl.b) goto bad;
    if (!links_read) {
        size_t j = sl.a;
        if ((r = read_links(s, n, &j, &t, &L)) == -2) goto oom;
        if (r != 0) goto bad;
    }
    // header | {"metadata":..,"qParams":..,"nodes":..} padded to 4 bytes | CSR by target
    size_t N = json_array_size(nodes), M = L.n;
    int narrow = N <= 65535;   // sources fit in u16: a million links in 6 MB instead of 8
    size_t isz = narrow ? 2 : 4;
    size_t jl = 48 + (sm.b - sm.a) + (sq.b - sq.a) + (sn.b - sn.a);
    size_t total = 24 + jl + 3 + 4 * (N + 1) + isz * M + 3 + 4 * M;
    char *o = malloc(total);
    if (!o) goto oom;
    size_t k = 24;
#define PUT(str, len) (memcpy(o + k, (str), (len)), k += (len))
    PUT("{\"metadata\":", 12);
    if (sm.b) PUT(s + sm.a, sm.b - sm.a);
    else PUT("{}", 2);
    PUT(",\"qParams\":", 11);
    if (sq.b) PUT(s + sq.a, sq.b - sq.a);
    else PUT("{}", 2);
    PUT(",\"nodes\":", 9);
    PUT(s + sn.a, sn.b - sn.a);
    PUT("}", 1);
    while (k % 4) o[k++] = ' ';
    uint32_t hdr[4] = {(uint32_t)N, (uint32_t)M, (uint32_t)(k - 24), narrow ? 1u : 0u};
    memcpy(o, "CTVIEW2", 8);
    memcpy(o + 8, hdr, sizeof hdr);
    // counting sort by target, stable (file order within a row)
    uint32_t *row = (uint32_t *)(o + k);
    memset(row, 0, 4 * (N + 1));
    for (size_t e = 0; e < M; e++) row[L.dst[e] + 1]++;
    for (size_t q = 0; q < N; q++) row[q + 1] += row[q];
    k += 4 * (N + 1);
    char *srcb = o + k;
    size_t wk = k + isz * M;
    while (wk % 4) o[wk++] = 0;
    float *wv = (float *)(o + wk);
    uint32_t *fill = malloc((N + 1) * sizeof *fill);
    if (!fill) {
        free(o);
        goto oom;
    }
    memcpy(fill, row, N * sizeof *fill);
    for (size_t e = 0; e < M; e++) {
        uint32_t at = fill[L.dst[e]]++;
        if (narrow) {
            uint16_t v = (uint16_t)L.src[e];
            memcpy(srcb + 2 * (size_t)at, &v, 2);
        } else {
            memcpy(srcb + 4 * (size_t)at, &L.src[e], 4);
        }
        wv[at] = L.w[e];
    }
    free(fill);
    k = wk + 4 * M;
#undef PUT
    *out = o, *out_n = k;
    rc = CT_OK;
    goto done;
bad:
    ct_error("%s: not a graph JSON this server can pack (the viewer falls back to the JSON)", path);
    goto done;
oom:
    ct_error("%s: out of memory packing the graph", path);
done:
    idtable_free(&t);
    free(L.src), free(L.dst), free(L.w);
    json_decref(nodes);
    munmap(map, n);
    return rc;
}

static void packed_release(Server *sv, Packed *p) {
    pthread_mutex_lock(&sv->cache);
    int last = --p->refs == 0;
    pthread_mutex_unlock(&sv->cache);
    if (last) free(p->buf), free(p->slug), free(p);
}

// The packed form of slug, from the cache when the file is unchanged (same inode, size and
// mtime), else packed now and cached.  The caller holds a reference (packed_release).
static Packed *get_packed(Server *sv, const char *slug, double *took) {
    char *path = graph_path(sv, slug);
    struct stat st;
    *took = 0;
    if (!path || stat(path, &st) != 0) {
        ct_error("%s: %s", path ? path : slug, strerror(errno));
        free(path);
        return NULL;
    }
    pthread_mutex_lock(&sv->cache);
    for (Packed *p = sv->packed; p; p = p->next)
        if (!strcmp(p->slug, slug) && p->dev == st.st_dev && p->ino == st.st_ino && p->size == st.st_size &&
            p->mtime.tv_sec == st.st_mtim.tv_sec && p->mtime.tv_nsec == st.st_mtim.tv_nsec) {
            p->refs++;
            pthread_mutex_unlock(&sv->cache);
            free(path);
            return p;
        }
    pthread_mutex_unlock(&sv->cache);
    double t0 = ct_now();
    Packed *p = calloc(1, sizeof *p);
    if (!p || !(p->slug = strdup(slug)) || serve_pack_graph(path, &p->buf, &p->n) != CT_OK) {
        if (p) free(p->slug), free(p);
        free(path);
        return NULL;
    }
    free(path);
    *took = ct_now() - t0;
    p->dev = st.st_dev, p->ino = st.st_ino, p->size = st.st_size, p->mtime = st.st_mtim;
    p->refs = 2;   // the cache's and the caller's
    pthread_mutex_lock(&sv->cache);
    Packed **pp = &sv->packed, *old = NULL;
    for (; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->slug, slug)) {
            old = *pp;
            *pp = old->next;
            break;
        }
    p->next = sv->packed;
    sv->packed = p;
    pthread_mutex_unlock(&sv->cache);
    if (old) packed_release(sv, old);
    return p;
}

// MHD's free callback gets one pointer: a small box holding the server and the entry.
typedef struct PackedRef {
    Server *sv;
    Packed *p;
} PackedRef;

static void packed_ref_free(void *cls) {
    PackedRef *r = cls;
    packed_release(r->sv, r->p);
    free(r);
}

static enum MHD_Result send_packed(struct MHD_Connection *c, Server *sv, const char *slug) {
    double took;
    Packed *p = get_packed(sv, slug, &took);
    if (!p) return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, ct_errmsg());
    PackedRef *r = malloc(sizeof *r);
    if (!r) {
        packed_release(sv, p);
        return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    r->sv = sv, r->p = p;
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback_cls(p->n, p->buf, packed_ref_free, r);
    if (!resp) {
        packed_ref_free(r);
        return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot answer");
    }
    return send_response(c, MHD_HTTP_OK, "application/octet-stream", resp);
}

// Pack every listed graph once at start-up, so the first open of a big graph does not wait
// for it.  Stops early when the server does.
static void *warm_up(void *arg) {
    Server *sv = arg;
    json_t *root = load_index(sv);
    json_t *graphs = root ? json_object_get(root, "graphs") : NULL;
    for (size_t i = 0; i < json_array_size(graphs) && !atomic_load(&sv->stopping); i++) {
        const char *slug = json_string_value(json_object_get(json_array_get(graphs, i), "slug"));
        if (!slug || !serve_slug_ok(slug)) continue;
        double took;
        Packed *p = get_packed(sv, slug, &took);
        if (!p) continue;   // the request will say why
        uint32_t hdr[2];
        memcpy(hdr, p->buf + 8, sizeof hdr);
        printf("  packed %s: %u nodes, %u links in %.2f s\n", slug, hdr[0], hdr[1], took);
        fflush(stdout);
        packed_release(sv, p);
    }
    json_decref(root);
    return NULL;
}

// ---- routing -------------------------------------------------------------------------------------
// Host header names loopback (when bound to loopback): defeats DNS rebinding.
static int host_ok(struct MHD_Connection *c, const Server *sv) {
    if (!sv->loopback) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (!h) return 1;   // HTTP/1.0 without Host
    size_t n = strlen(h);
    const char *colon = h[0] == '[' ? strstr(h, "]:") : strrchr(h, ':');
    if (colon) n = (size_t)(colon - h) + (h[0] == '[');
    return (n == 9 && !strncmp(h, "127.0.0.1", 9)) || (n == 9 && !strncasecmp(h, "localhost", 9)) ||
           (n == 5 && !strncmp(h, "[::1]", 5));
}

// A cross-site page may POST to loopback; the browser then sends its Origin, which must be ours.
static int origin_ok(struct MHD_Connection *c) {
    const char *o = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (!o) return 1;
    if (!h || strncmp(o, "http://", 7)) return 0;
    return !strcmp(o + 7, h);
}

static enum MHD_Result route_get(struct MHD_Connection *c, Server *sv, const char *url) {
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) return page_index(c, sv);
    if (!strncmp(url, "/assets/", 8)) {
        const WebAsset *a = web_asset_find(url + 8);
        if (!a || !strcmp(url + 8, "viewer.html")) return send_error(c, MHD_HTTP_NOT_FOUND, "no such asset");
        return send_static(c, a);
    }
    if (!strncmp(url, "/graph/", 7)) {
        const char *slug = url + 7;
        if (!serve_slug_ok(slug)) return send_error(c, MHD_HTTP_BAD_REQUEST, "bad graph name");
        if (!slug_listed(sv, slug)) return send_error(c, MHD_HTTP_NOT_FOUND, "no such graph in graph-metadata.json");
        const WebAsset *a = web_asset_find("viewer.html");
        if (!a) return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "viewer page missing");
        return send_static(c, a);
    }
    if (!strncmp(url, "/data/", 6)) {
        const char *name = url + 6;
        size_t n = strlen(name);
        int packed = n > 4 && !strcmp(name + n - 4, ".bin");
        if (packed) n++;   // same slug arithmetic as ".json"
        else if (n <= 5 || strcmp(name + n - 5, ".json")) return send_error(c, MHD_HTTP_NOT_FOUND, "no such file");
        char slug[160];
        if (n - 5 >= sizeof slug) return send_error(c, MHD_HTTP_BAD_REQUEST, "bad graph name");
        memcpy(slug, name, n - 5);
        slug[n - 5] = 0;
        if (!serve_slug_ok(slug)) return send_error(c, MHD_HTTP_BAD_REQUEST, "bad graph name");
        if (!slug_listed(sv, slug)) return send_error(c, MHD_HTTP_NOT_FOUND, "no such graph in graph-metadata.json");
        return packed ? send_packed(c, sv, slug) : send_graph_file(c, sv, slug);
    }
    return send_error(c, MHD_HTTP_NOT_FOUND, "not found");
}

static enum MHD_Result route_post(struct MHD_Connection *c, Server *sv, const char *url, Request *rq) {
    if (strncmp(url, "/api/qparams/", 13)) return send_error(c, MHD_HTTP_NOT_FOUND, "not found");
    const char *slug = url + 13;
    if (!serve_slug_ok(slug)) return send_error(c, MHD_HTTP_BAD_REQUEST, "bad graph name");
    if (rq->too_big) return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "body too large");
    if (!origin_ok(c)) return send_error(c, MHD_HTTP_FORBIDDEN, "cross-origin request refused");
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct || strncasecmp(ct, "application/json", 16))
        return send_error(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "expected Content-Type: application/json");
    if (!slug_listed(sv, slug)) return send_error(c, MHD_HTTP_NOT_FOUND, "no such graph in graph-metadata.json");
    char *path = graph_path(sv, slug);
    if (!path) return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    pthread_mutex_lock(&sv->save);
    int st = serve_save_qparams(path, rq->body ? rq->body : "", rq->len);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", st ? ct_errmsg() : "");
    pthread_mutex_unlock(&sv->save);
    free(path);
    if (st) return send_error(c, (unsigned)st, msg);
    const char *ok = "{\"ok\":true}";
    return send_copy(c, MHD_HTTP_OK, "application/json; charset=utf-8", ok, strlen(ok));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **state) {
    Server *sv = cls;
    int is_post = !strcmp(method, MHD_HTTP_METHOD_POST);
    if (!*state) {
        // First call: headers only.  Refuse an oversized body before reading it.
        Request *rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        *state = rq;
        if (is_post) {
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl && strtoull(cl, NULL, 10) > SERVE_MAX_POST) {
                rq->too_big = 1;   // answered now; libmicrohttpd then closes without reading it
                return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "body too large");
            }
        }
        return MHD_YES;
    }
    Request *rq = *state;
    if (*upload_size) {
        if (!is_post || rq->too_big || rq->len + *upload_size > SERVE_MAX_POST) {
            rq->too_big = 1;   // drop the rest; answered 413 (or 405) at the end
        } else {
            if (rq->len + *upload_size + 1 > rq->cap) {
                size_t cap = rq->cap ? rq->cap : 4096;
                while (cap < rq->len + *upload_size + 1) cap *= 2;
                char *t = realloc(rq->body, cap);
                if (!t) return MHD_NO;
                rq->body = t, rq->cap = cap;
            }
            memcpy(rq->body + rq->len, upload, *upload_size);
            rq->len += *upload_size;
            rq->body[rq->len] = 0;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (!host_ok(c, sv)) return send_error(c, MHD_HTTP_FORBIDDEN, "Host header does not name this server");
    // Anything that could step outside DIR is refused before routing (the url is already
    // percent-decoded by libmicrohttpd, so "%2e%2e%2f" arrives here as "../").
    if (strstr(url, "..") || strstr(url, "//") || strchr(url, '\\') || url[0] != '/')
        return send_error(c, MHD_HTTP_BAD_REQUEST, "bad path");
    if (!strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD)) return route_get(c, sv, url);
    if (is_post) return route_post(c, sv, url, rq);
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (r) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD, POST");
    return send_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode t) {
    Request *rq = *state;
    if (rq) free(rq->body), free(rq);
    *state = NULL;
}

// ---- the loop ------------------------------------------------------------------------------------
static int count_graphs(const Server *sv) {
    json_t *root = load_index(sv);
    int n = root ? (int)json_array_size(json_object_get(root, "graphs")) : -1;
    json_decref(root);
    return n;
}

int serve_run(const char *dir, const char *host, int port, const char *open_slug) {
    struct stat st;
    if (stat(dir, &st) != 0)
        return ct_error("%s: expected a directory holding graph-metadata.json (%s)", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return ct_error("%s: expected a directory holding graph-metadata.json, got a file", dir);
    if (port < 0 || port > 65535) return ct_error("--port expected 0-65535, got %d", port);
    if (open_slug && !serve_slug_ok(open_slug))
        return ct_error("graph name '%s' cannot name a file (expected [A-Za-z0-9._-], not starting with '.')",
                        open_slug);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    Server sv = {0};
    const char *h = !strcmp(host, "localhost") ? "127.0.0.1" : host;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, h, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sv.loopback = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    } else if (inet_pton(AF_INET6, h, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sv.loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
        flags |= MHD_USE_IPv6;
    } else {
        return ct_error("--host '%s': expected an IP address (127.0.0.1, ::1, 0.0.0.0) or localhost", host);
    }
    if (!(sv.dir = strdup(dir))) return ct_error("out of memory");
    pthread_mutex_init(&sv.save, NULL);
    pthread_mutex_init(&sv.cache, NULL);
    // Block SIGINT/SIGTERM before the server threads start (they inherit the mask), then wait
    // for one here: the stop is an ordinary return on this thread.
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, &sv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_THREAD_POOL_SIZE, 4u,
        MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    if (!d) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_mutex_destroy(&sv.save);
        pthread_mutex_destroy(&sv.cache);
        free(sv.dir);
        return ct_error("cannot listen on %s port %d: %s (port in use? try --port 0)", host, port,
                        errno ? strerror(errno) : "libmicrohttpd failed to start");
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    sv.port = di ? di->port : port;
    char base[128];
    snprintf(base, sizeof base, "http://%s%s%s:%d", strchr(h, ':') ? "[" : "", h, strchr(h, ':') ? "]" : "", sv.port);
    int n = count_graphs(&sv);
    printf("serving %s/ (%d graph%s from %s/graph-metadata.json; Ctrl-C stops)\n", base, n < 0 ? 0 : n,
           n == 1 ? "" : "s", dir);
    if (n < 0) printf("  note: %s\n", ct_errmsg());
    if (!sv.loopback) printf("  warning: listening on %s, reachable from other machines\n", host);
    if (open_slug) {
        char url[512];
        snprintf(url, sizeof url, "%s/graph/%s", base, open_slug);
        printf("open %s\n", url);
        const char *br = getenv("BROWSER");
        if (br && *br) {
            posix_spawnattr_t at;
            posix_spawnattr_init(&at);
            posix_spawnattr_setsigmask(&at, &old);
            posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
            pid_t pid;
            char *args[] = {(char *)br, url, NULL};
            if (posix_spawnp(&pid, br, NULL, &at, args, environ) != 0)
                fprintf(stderr, "serve: could not start $BROWSER (%s)\n", br);
            posix_spawnattr_destroy(&at);
        }
    }
    fflush(stdout);
    pthread_t warm;
    int warming = pthread_create(&warm, NULL, warm_up, &sv) == 0;
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {
    }
    atomic_store(&sv.stopping, 1);
    MHD_stop_daemon(d);   // every response is finished and freed here
    if (warming) pthread_join(warm, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    while (sv.packed) {
        Packed *p = sv.packed;
        sv.packed = p->next;
        free(p->buf), free(p->slug), free(p);
    }
    pthread_mutex_destroy(&sv.save);
    pthread_mutex_destroy(&sv.cache);
    free(sv.dir);
    printf("serve: stopped (%s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    fflush(stdout);
    return CT_OK;
}
