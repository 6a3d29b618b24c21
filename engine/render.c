// render.c — the static SVG/HTML picture of an attribution graph.  Layout and format in
// render.h.  Three steps: choose what is drawn (render_select), place the nodes
// (render_layout), stream the SVG through a big buffer (render_graph).
#include "engine/render.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

// ---- geometry constants (px) --------------------------------------------------------------------
#define HEADER_H 92.0f     // title, legend and scores above the bands
#define LEFT_W 64.0f       // layer labels
#define RIGHT_W 16.0f
#define LABEL_H 44.0f      // token labels under the embedding band
#define BOTTOM_W 10.0f
#define CELL_PAD 6.0f      // around the grid of a cell, horizontally
#define BAND_PAD 5.0f      // above and below the grid of a band
#define COL_MIN 76.0f      // narrowest column (room for a token label)
#define MIN_WIDTH 880.0f   // room for the header
#define CHAR_W 6.4f        // estimated width of one 11px character
#define LOGIT_CHARS 22     // longest logit label drawn, in characters
#define GRID_MAX 32        // widest cell grid, in nodes

void render_options_default(RenderOptions *o) {
    o->format = RENDER_SVG;
    o->select = RENDER_AUTO;
    o->max_nodes = 0;
}

// Importance in [0, 1] from the viewer's influence rank fraction (smaller = more important).
// A graph that was never pruned has every influence 0: all nodes get the middle size.
static float importance(const Graph *g, int i, int have_influence) {
    if (!have_influence) return 0.5f;
    float v = 1.0f - g->nodes[i].influence;
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

static int has_influence(const Graph *g) {
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].influence != 0.0f) return 1;
    return 0;
}

// ---- selection ----------------------------------------------------------------------------------
typedef struct Ranked {
    float key;   // influence rank fraction (smaller first)
    int idx;
} Ranked;

static int cmp_ranked(const void *a, const void *b) {
    const Ranked *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

int render_select(Graph *g, const RenderOptions *o, uint8_t *node_on, uint8_t *edge_on,
                  int *n_nodes, size_t *n_edges) {
    if (graph_build_sparse(g) != CT_OK) return ct_error_ctx("render");
    int N = g->n_nodes;
    int keep_flags = g->node_keep && g->sp_keep;
    int pruned = o->select == RENDER_PRUNED || (o->select == RENDER_AUTO && keep_flags);
    if (pruned && !keep_flags)
        return ct_error("render: --pruned asked for, but the graph has no keep flags (it was "
                        "never pruned, or saved without them); render it with --all");
    for (int i = 0; i < N; i++) node_on[i] = pruned ? g->node_keep[i] != 0 : 1;
    if (o->max_nodes > 0) {
        // Most influential feature/error nodes first; tokens and logits stay.
        Ranked *rk = malloc(((size_t)N + 1) * sizeof *rk);
        if (!rk) return ct_error("render: out of memory");
        int m = 0;
        for (int i = 0; i < N; i++) {
            int k = g->nodes[i].kind;
            if (node_on[i] && (k == NODE_FEATURE || k == NODE_ERROR))
                rk[m].key = g->nodes[i].influence, rk[m].idx = i, m++;
        }
        qsort(rk, (size_t)m, sizeof *rk, cmp_ranked);
        for (int j = o->max_nodes; j < m; j++) node_on[rk[j].idx] = 0;
        free(rk);
    }
    int nn = 0;
    for (int i = 0; i < N; i++) nn += node_on[i];
    size_t ne = 0;
    for (int t = 0; t < N; t++) {
        for (uint64_t k = g->sp_row[t]; k < g->sp_row[t + 1]; k++) {
            uint32_t s = g->sp_col[k];
            float w = g->sp_val[k];
            uint8_t on = node_on[t] && node_on[s] && w != 0.0f && isfinite(w) &&
                         (!pruned || g->sp_keep[k]);
            edge_on[k] = on;
            ne += on;
        }
    }
    *n_nodes = nn;
    *n_edges = ne;
    return CT_OK;
}

// ---- layout -------------------------------------------------------------------------------------
void render_layout_free(RenderLayout *lay) {
    if (!lay) return;
    free(lay->node), free(lay->x), free(lay->y), free(lay->r), free(lay->slot);
    free(lay->col_x0), free(lay->col_w), free(lay->band_y0), free(lay->band_h);
    memset(lay, 0, sizeof *lay);
}

// Layers spanned by the nodes: g->L, or more when the nodes say so (a JSON without dims).
static int layer_count(const Graph *g) {
    int L = g->L > 0 ? g->L : 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const GraphNode *nd = &g->nodes[i];
        if ((nd->kind == NODE_FEATURE || nd->kind == NODE_ERROR) && nd->layer + 1 > L) L = nd->layer + 1;
    }
    return L;
}

static int position_count(const Graph *g) {
    int T = g->T > 0 ? g->T : 1;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].pos + 1 > T) T = g->nodes[i].pos + 1;
    return T;
}

static int band_of(const GraphNode *nd, int L) {
    switch (nd->kind) {
    case NODE_TOKEN: return 0;
    case NODE_LOGIT: return L + 1;
    default: return nd->layer + 1;
    }
}

// Sort key inside a cell: kind (features before errors), then importance, then index.
typedef struct CellItem {
    int cell, kind;
    float key;   // features/errors: -importance; logits: -prob
    int idx;
} CellItem;

static int cmp_cell_item(const void *a, const void *b) {
    const CellItem *x = a, *y = b;
    if (x->cell != y->cell) return x->cell < y->cell ? -1 : 1;
    if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static size_t label_chars(const char *s);

// Width in characters of the logit label `"tok" 0.42`.
static size_t logit_label_chars(const Graph *g, int i) {
    int k = i - g->n_features - g->n_errors - g->n_tokens;
    const char *s = g->logit_strs && k >= 0 && k < g->n_logits ? g->logit_strs[k] : NULL;
    size_t n = s ? label_chars(s) : 6;
    n += 8;   // quotes, space, "0.123"
    return n > LOGIT_CHARS ? LOGIT_CHARS : n;
}

int render_layout(const Graph *g, const uint8_t *node_on, RenderLayout *lay) {
    memset(lay, 0, sizeof *lay);
    int N = g->n_nodes, L = layer_count(g), T = position_count(g), B = L + 2;
    for (int i = 0; i < N; i++)
        if (node_on[i] && (g->nodes[i].pos < 0 || ((g->nodes[i].kind == NODE_FEATURE || g->nodes[i].kind == NODE_ERROR) &&
                                                   g->nodes[i].layer < 0)))
            return ct_error("render: node %d (%s) has layer %d, position %d: expected both >= 0", i,
                            graph_kind_name(g->nodes[i].kind), g->nodes[i].layer, g->nodes[i].pos);
    size_t cells = (size_t)B * (size_t)T;
    int *count = calloc(cells, sizeof *count);
    CellItem *it = malloc(((size_t)N + 1) * sizeof *it);
    lay->slot = malloc(((size_t)N + 1) * sizeof *lay->slot);
    lay->col_x0 = calloc((size_t)T, sizeof(float)), lay->col_w = calloc((size_t)T, sizeof(float));
    lay->band_y0 = calloc((size_t)B, sizeof(float)), lay->band_h = calloc((size_t)B, sizeof(float));
    int *grid_k = calloc((size_t)T, sizeof *grid_k);
    int n = 0;
    for (int i = 0; i < N; i++) n += node_on[i] != 0;
    lay->node = malloc(((size_t)n + 1) * sizeof *lay->node);
    lay->x = malloc(((size_t)n + 1) * sizeof(float));
    lay->y = malloc(((size_t)n + 1) * sizeof(float));
    lay->r = malloc(((size_t)n + 1) * sizeof(float));
    if (!count || !it || !lay->slot || !lay->col_x0 || !lay->col_w || !lay->band_y0 || !lay->band_h ||
        !grid_k || !lay->node || !lay->x || !lay->y || !lay->r) {
        free(count), free(it), free(grid_k);
        render_layout_free(lay);
        return ct_error("render: out of memory laying out %d nodes", N);
    }
    lay->n = n, lay->T = T, lay->n_bands = B;
    int have_inf = has_influence(g);

    // 1. cells: (band, position) of every drawn node, sorted so each cell is a run.
    int m = 0;
    for (int i = 0; i < N; i++) {
        lay->slot[i] = -1;
        if (!node_on[i]) continue;
        const GraphNode *nd = &g->nodes[i];
        int b = band_of(nd, L), p = nd->pos;
        it[m].cell = b * T + p;
        it[m].kind = nd->kind;
        it[m].key = nd->kind == NODE_LOGIT ? -nd->prob : -importance(g, i, have_inf);
        it[m].idx = i;
        count[it[m].cell]++;
        m++;
    }
    qsort(it, (size_t)m, sizeof *it, cmp_cell_item);

    // 2. columns: grid width k_p from the busiest non-logit cell of the column (about twice as
    // wide as tall), width from k_p or from the logit labels.
    size_t logit_chars = 0;
    for (int i = 0; i < N; i++)
        if (node_on[i] && g->nodes[i].kind == NODE_LOGIT) {
            size_t c = logit_label_chars(g, i);
            if (c > logit_chars) logit_chars = c;
        }
    float total_w = 0;
    for (int p = 0; p < T; p++) {
        int busiest = 1, logits = 0;
        for (int b = 0; b < B - 1; b++) busiest = count[b * T + p] > busiest ? count[b * T + p] : busiest;
        logits = count[(B - 1) * T + p];
        int k = (int)ceil(sqrt(2.0 * busiest));
        k = k < 4 ? 4 : k > GRID_MAX ? GRID_MAX : k;
        grid_k[p] = k < busiest ? k : busiest;
        float w = (float)grid_k[p] * RENDER_PITCH + 2 * CELL_PAD;
        if (logits) {
            float lw = 2 * CELL_PAD + RENDER_PITCH + 4 + (float)logit_chars * CHAR_W;
            if (lw > w) w = lw;
        }
        lay->col_w[p] = w < COL_MIN ? COL_MIN : w;
        total_w += lay->col_w[p];
    }
    // Spread narrow pictures out to the header's width.
    if (LEFT_W + total_w + RIGHT_W < MIN_WIDTH) {
        float extra = (MIN_WIDTH - LEFT_W - RIGHT_W - total_w) / (float)T;
        for (int p = 0; p < T; p++) lay->col_w[p] += extra;
        total_w = MIN_WIDTH - LEFT_W - RIGHT_W;
    }
    float x = LEFT_W;
    for (int p = 0; p < T; p++) lay->col_x0[p] = x, x += lay->col_w[p];
    lay->width = x + RIGHT_W;

    // 3. bands: height from the most rows any cell of the band needs (logits: one per row).
    for (int b = 0; b < B; b++) {
        int rows = 1;
        for (int p = 0; p < T; p++) {
            int c = count[b * T + p];
            int r = b == B - 1 ? c : (c + grid_k[p] - 1) / grid_k[p];
            if (r > rows) rows = r;
        }
        lay->band_h[b] = (float)rows * RENDER_PITCH + 2 * BAND_PAD;
    }
    float y = HEADER_H;
    for (int b = B - 1; b >= 0; b--) lay->band_y0[b] = y, y += lay->band_h[b];
    lay->plot_x0 = LEFT_W, lay->plot_x1 = LEFT_W + total_w;
    lay->plot_y0 = HEADER_H, lay->plot_y1 = y;
    lay->height = y + LABEL_H + BOTTOM_W;

    // 4. nodes: row-major on the cell's grid, the grid centred in the cell.
    for (int a = 0; a < m;) {
        int cell = it[a].cell, e = a;
        while (e < m && it[e].cell == cell) e++;
        int b = cell / T, p = cell % T, c = e - a;
        int k = b == B - 1 ? 1 : grid_k[p];
        int cols = c < k ? c : k, rows = (c + k - 1) / k;
        int band_rows = (int)lroundf((lay->band_h[b] - 2 * BAND_PAD) / RENDER_PITCH);
        float gx0 = b == B - 1 ? lay->col_x0[p] + CELL_PAD
                               : lay->col_x0[p] + 0.5f * (lay->col_w[p] - (float)cols * RENDER_PITCH);
        float gy0 = lay->band_y0[b] + BAND_PAD + 0.5f * (float)(band_rows - rows) * RENDER_PITCH;
        for (int j = 0; j < c; j++) {
            int i = it[a + j].idx, s = a + j;
            const GraphNode *nd = &g->nodes[i];
            lay->node[s] = i;
            lay->slot[i] = s;
            lay->x[s] = gx0 + ((float)(j % k) + 0.5f) * RENDER_PITCH;
            lay->y[s] = gy0 + ((float)(j / k) + 0.5f) * RENDER_PITCH;
            lay->r[s] = nd->kind == NODE_TOKEN || nd->kind == NODE_LOGIT
                            ? RENDER_RMAX
                            : RENDER_RMIN + (RENDER_RMAX - RENDER_RMIN) * importance(g, i, have_inf);
        }
        a = e;
    }
    free(count), free(it), free(grid_k);
    return CT_OK;
}

// ---- buffered output --------------------------------------------------------------------------
// A 4 MiB buffer in front of the FILE: the SVG of a million edges is ~60 MB of small writes.
typedef struct Out {
    FILE *f;
    char *buf;
    size_t n, cap;
    int err;
} Out;

static void out_flush(Out *o) {
    if (o->n && fwrite(o->buf, 1, o->n, o->f) != o->n) o->err = errno ? errno : EIO;
    o->n = 0;
}

static inline void out_mem(Out *o, const char *s, size_t n) {
    if (o->n + n > o->cap) {
        out_flush(o);
        if (n > o->cap) {
            if (fwrite(s, 1, n, o->f) != n) o->err = errno ? errno : EIO;
            return;
        }
    }
    memcpy(o->buf + o->n, s, n);
    o->n += n;
}

static inline void out_str(Out *o, const char *s) { out_mem(o, s, strlen(s)); }

static void out_fmt(Out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_fmt(Out *o, const char *fmt, ...) {
    char b[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    if (k > 0) out_mem(o, b, (size_t)k < sizeof b ? (size_t)k : sizeof b - 1);
}

// Decimal of a non-negative or negative integer into b (no NUL); returns the length.
static int fmt_int(char *b, long long v) {
    char t[24];
    int n = 0, len = 0;
    unsigned long long u = v < 0 ? (unsigned long long)(-(v + 1)) + 1 : (unsigned long long)v;
    do t[n++] = (char)('0' + u % 10), u /= 10; while (u);
    if (v < 0) b[len++] = '-';
    while (n) b[len++] = t[--n];
    return len;
}

// A coordinate with one decimal ("12.5", "12"): exact enough for a picture and much faster
// than printf.
static int fmt_fix1(char *b, float v) {
    long long t = llrintf(v * 10.0f);
    int len = 0;
    if (t < 0) b[len++] = '-', t = -t;
    len += fmt_int(b + len, t / 10);
    if (t % 10) b[len++] = '.', b[len++] = (char)('0' + t % 10);
    return len;
}

static void out_fix1(Out *o, float v) {
    char b[32];
    out_mem(o, b, (size_t)fmt_fix1(b, v));
}

static void out_int(Out *o, long long v) {
    char b[24];
    out_mem(o, b, (size_t)fmt_int(b, v));
}


// Characters (code points, invalid bytes counting one each) of s.
static size_t label_chars(const char *s) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; n++) {
        int k = ct_utf8_len(p);
        p += k ? k : 1;
    }
    return n;
}

// s as XML text: markup characters escaped, invalid UTF-8 and control characters as U+FFFD
// (an SVG must be well-formed UTF-8), newlines as "⏎".  At most max characters; a longer
// string ends in "…".
static void out_xml(Out *o, const char *s, size_t max) {
    if (!s) return;
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        if (chars == max) {
            out_str(o, "\xE2\x80\xA6");
            return;
        }
        int k = ct_utf8_len(p);
        chars++;
        if (!k) {
            out_str(o, "\xEF\xBF\xBD"), p++;
            continue;
        }
        if (k > 1) {
            out_mem(o, (const char *)p, (size_t)k), p += k;
            continue;
        }
        switch (*p) {
        case '&': out_str(o, "&amp;"); break;
        case '<': out_str(o, "&lt;"); break;
        case '>': out_str(o, "&gt;"); break;
        case '"': out_str(o, "&quot;"); break;
        case '\'': out_str(o, "&#39;"); break;
        case '\n': out_str(o, "\xE2\x8F\x8E"); break;
        default:
            if (*p < 0x20 || *p == 0x7f) out_str(o, "\xEF\xBF\xBD");
            else out_mem(o, (const char *)p, 1);
        }
        p++;
    }
}

// ---- SVG pieces -------------------------------------------------------------------------------
static const char *const POS_RGB = "#2563eb", *const NEG_RGB = "#dc2626";

static void out_style(Out *o) {
    out_str(o, "<style>\n"
               "text{fill:#1f2937}\n"
               ".band0{fill:#f8fafc}.band1{fill:#ffffff}\n"
               ".sep{stroke:#e5e7eb;stroke-width:1}\n"
               ".lab{font-size:11px;fill:#4b5563}\n"
               ".halo{paint-order:stroke;stroke:#ffffff;stroke-width:3px;stroke-linejoin:round}\n"
               ".tok{font-size:12px;fill:#111827}\n"
               ".pos{font-size:9px;fill:#9ca3af}\n"
               ".lg{font-size:11px;fill:#374151}\n"
               ".nf{fill:#f59e0b;stroke:#b45309;stroke-width:0.8}\n"
               ".ne{fill:#cbd5e1;stroke:#64748b;stroke-width:0.8}\n"
               ".nt{fill:#6ee7b7;stroke:#047857;stroke-width:1}\n"
               ".nl{fill:#c4b5fd;stroke:#6d28d9;stroke-width:1}\n"
               ".n:hover{stroke:#111827;stroke-width:2}\n");
    // Edge buckets: width and opacity grow with the bucket; blue positive, red negative.
    // Opacity grows faster than linearly: a dense graph's many weak edges stay a light haze.
    for (int b = 0; b < RENDER_EDGE_BUCKETS; b++) {
        double f = (b + 0.5) / RENDER_EDGE_BUCKETS;
        double w = 0.3 + 2.7 * f, a = 0.05 + 0.80 * pow(f, 1.5);
        out_fmt(o, ".ep%d{stroke:%s;stroke-width:%.2f;stroke-opacity:%.2f}\n", b, POS_RGB, w, a);
        out_fmt(o, ".en%d{stroke:%s;stroke-width:%.2f;stroke-opacity:%.2f}\n", b, NEG_RGB, w, a);
    }
    out_str(o, "</style>\n");
}

static void out_score(Out *o, double v) {
    if (isfinite(v)) out_fmt(o, "%.3f", v);
    else out_str(o, "n/a");
}

// Title, legend (left) and scores (right) in the header.
static void out_header(Out *o, const Graph *g, const RenderLayout *lay, int n_nodes, size_t n_edges,
                       int pruned) {
    out_str(o, "<g id=\"header\">\n<text x=\"16\" y=\"24\" style=\"font-size:15px;font-weight:bold\">");
    out_str(o, "Attribution graph");
    if (g->slug && *g->slug) out_str(o, " \xE2\x80\x94 "), out_xml(o, g->slug, 60);
    out_str(o, "</text>\n<text x=\"16\" y=\"42\" class=\"lab\">prompt: \xE2\x80\x9C");
    out_xml(o, g->prompt, 110);
    out_str(o, "\xE2\x80\x9D</text>\n");
    // legend: four node shapes, two edge signs, the size rule
    float lx = 16, ly = 66;
    struct { const char *cls, *name; int rect; } kinds[4] = {
        {"nf", "feature", 0}, {"ne", "error", 1}, {"nt", "embedding", 1}, {"nl", "logit", 1}};
    for (int k = 0; k < 4; k++) {
        if (kinds[k].rect) {
            out_fmt(o, "<rect class=\"%s\" x=\"%.1f\" y=\"%.1f\" width=\"11\" height=\"11\"%s/>", kinds[k].cls,
                    lx, ly - 9.5, k == 2 ? " rx=\"3\"" : "");
        } else {
            out_fmt(o, "<circle class=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"5.5\"/>", kinds[k].cls, lx + 5.5, ly - 4);
        }
        out_fmt(o, "<text x=\"%.1f\" y=\"%.1f\" class=\"lg\">%s</text>\n", lx + 16, ly, kinds[k].name);
        lx += 28 + CHAR_W * (float)strlen(kinds[k].name);
    }
    lx += 10;
    out_fmt(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2.5\"/>"
               "<text x=\"%.1f\" y=\"%.1f\" class=\"lg\">positive</text>\n",
            lx, ly - 4, lx + 22, ly - 4, POS_RGB, lx + 28, ly);
    lx += 90;
    out_fmt(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2.5\"/>"
               "<text x=\"%.1f\" y=\"%.1f\" class=\"lg\">negative edge</text>\n",
            lx, ly - 4, lx + 22, ly - 4, NEG_RGB, lx + 28, ly);
    lx += 130;
    out_fmt(o, "<text x=\"%.1f\" y=\"%.1f\" class=\"lg\">size = influence, width = |weight|</text>\n", lx, ly);
    // scores, right-aligned
    float rx = lay->width - 16;
    out_fmt(o, "<text x=\"%.1f\" y=\"24\" class=\"lg\" text-anchor=\"end\">replacement ", rx);
    out_score(o, g->replacement_score);
    out_str(o, " \xC2\xB7 completeness ");
    out_score(o, g->completeness_score);
    out_str(o, "</text>\n");
    out_fmt(o, "<text x=\"%.1f\" y=\"42\" class=\"lg\" text-anchor=\"end\">pruned: replacement ", rx);
    out_score(o, g->pruned_replacement_score);
    out_str(o, " \xC2\xB7 completeness ");
    out_score(o, g->pruned_completeness_score);
    out_str(o, "</text>\n");
    out_fmt(o, "<text x=\"%.1f\" y=\"%.1f\" class=\"lg\" text-anchor=\"end\">%d nodes \xC2\xB7 %zu edges (%s)</text>\n",
            rx, ly, n_nodes, n_edges, pruned ? "pruned" : "all");
    out_str(o, "</g>\n");
}

// Band stripes, column separators, layer labels, token labels.
static void out_frame(Out *o, const Graph *g, const RenderLayout *lay) {
    int B = lay->n_bands, T = lay->T;
    out_str(o, "<g id=\"frame\">\n");
    for (int b = 0; b < B; b++) {
        out_fmt(o, "<rect class=\"band%d\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>", b & 1,
                lay->plot_x0, lay->band_y0[b], lay->plot_x1 - lay->plot_x0, lay->band_h[b]);
        char name[32];
        if (b == 0) snprintf(name, sizeof name, "emb");
        else if (b == B - 1) snprintf(name, sizeof name, "logit");
        else snprintf(name, sizeof name, "L%d", b - 1);
        out_fmt(o, "<text x=\"%.1f\" y=\"%.1f\" class=\"lab\" text-anchor=\"end\">%s</text>\n", LEFT_W - 8,
                lay->band_y0[b] + 0.5f * lay->band_h[b] + 4, name);
    }
    for (int p = 1; p < T; p++)
        out_fmt(o, "<line class=\"sep\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", lay->col_x0[p],
                lay->plot_y0, lay->col_x0[p], lay->plot_y1);
    for (int p = 0; p < T; p++) {
        float cx = lay->col_x0[p] + 0.5f * lay->col_w[p];
        size_t fit = (size_t)((lay->col_w[p] - 6) / (CHAR_W + 0.6f));
        out_fmt(o, "<text x=\"%.1f\" y=\"%.1f\" class=\"tok\" text-anchor=\"middle\" xml:space=\"preserve\">", cx,
                lay->plot_y1 + 17);
        const char *s = g->token_strs && p < g->T ? g->token_strs[p] : NULL;
        if (s) {
            // BOS decodes as "\n<s>\n": newlines at the ends of a label are dropped
            size_t a = 0, e = strlen(s);
            while (a < e && s[a] == '\n') a++;
            while (e > a && s[e - 1] == '\n') e--;
            char *t = strndup(s + a, e - a);
            out_xml(o, t ? t : s, fit < 2 ? 2 : fit - 1);
            free(t);
        }
        else if (g->tokens && p < g->T) out_int(o, g->tokens[p]);
        out_fmt(o, "</text><text x=\"%.1f\" y=\"%.1f\" class=\"pos\" text-anchor=\"middle\">%d</text>\n", cx,
                lay->plot_y1 + 32, p);
    }
    out_str(o, "</g>\n");
}

// "kind layer L pos P ..." as the node's tooltip.
static void out_node_title(Out *o, const Graph *g, int i, const char *id) {
    const GraphNode *nd = &g->nodes[i];
    out_str(o, "<title>");
    out_str(o, graph_kind_name(nd->kind));
    out_str(o, " ");
    out_xml(o, id, 64);
    if (nd->kind == NODE_FEATURE || nd->kind == NODE_ERROR) out_fmt(o, " (layer %d, pos %d)", nd->layer, nd->pos);
    else out_fmt(o, " (pos %d)", nd->pos);
    if (nd->kind == NODE_FEATURE) out_fmt(o, " feature %d, activation %.4g", nd->feature, (double)nd->activation);
    if (nd->kind == NODE_LOGIT) out_fmt(o, " logit %.4g, p=%.4f", (double)nd->activation, (double)nd->prob);
    out_fmt(o, ", influence %.4f", (double)nd->influence);
    const char *lab = NULL;
    if (nd->kind == NODE_FEATURE && g->node_labels) lab = g->node_labels[i];
    else if (nd->kind == NODE_TOKEN && g->token_strs && nd->pos < g->T) lab = g->token_strs[nd->pos];
    else if (nd->kind == NODE_LOGIT && g->logit_strs) lab = g->logit_strs[i - g->n_features - g->n_errors - g->n_tokens];
    if (lab && *lab) out_str(o, ": \xE2\x80\x9C"), out_xml(o, lab, 200), out_str(o, "\xE2\x80\x9D");
    out_str(o, "</title>");
}

static void out_nodes(Out *o, const Graph *g, const RenderLayout *lay) {
    out_str(o, "<g id=\"nodes\">\n");
    char id[64];
    for (int s = 0; s < lay->n; s++) {
        int i = lay->node[s];
        const GraphNode *nd = &g->nodes[i];
        graph_node_id(g, i, id, sizeof id);
        float x = lay->x[s], y = lay->y[s], r = lay->r[s];
        if (nd->kind == NODE_FEATURE) {
            out_str(o, "<circle class=\"n nf\" data-id=\"");
            out_int(o, i);
            out_str(o, "\" data-node=\"");
            out_xml(o, id, 64);
            out_str(o, "\" cx=\"");
            out_fix1(o, x), out_str(o, "\" cy=\""), out_fix1(o, y), out_str(o, "\" r=\""), out_fix1(o, r);
            out_str(o, "\">");
            out_node_title(o, g, i, id);
            out_str(o, "</circle>\n");
        } else {
            const char *cls = nd->kind == NODE_ERROR ? "ne" : nd->kind == NODE_TOKEN ? "nt" : "nl";
            out_fmt(o, "<rect class=\"n %s\" data-id=\"%d\" data-node=\"", cls, i);
            out_xml(o, id, 64);
            out_str(o, "\" x=\"");
            out_fix1(o, x - r), out_str(o, "\" y=\""), out_fix1(o, y - r);
            out_str(o, "\" width=\""), out_fix1(o, 2 * r), out_str(o, "\" height=\""), out_fix1(o, 2 * r);
            out_str(o, nd->kind == NODE_TOKEN ? "\" rx=\"3\">" : "\">");
            out_node_title(o, g, i, id);
            out_str(o, "</rect>\n");
        }
        if (nd->kind == NODE_LOGIT) {
            int k = i - g->n_features - g->n_errors - g->n_tokens;
            const char *tok = g->logit_strs ? g->logit_strs[k] : NULL;
            out_str(o, "<text class=\"lab halo\" xml:space=\"preserve\" x=\"");
            out_fix1(o, x + r + 5), out_str(o, "\" y=\""), out_fix1(o, y + 4);
            out_str(o, "\">\xE2\x80\x9C");
            if (tok) out_xml(o, tok, LOGIT_CHARS - 8);
            else out_int(o, nd->token);
            out_fmt(o, "\xE2\x80\x9D %.3f</text>\n", (double)nd->prob);
        }
    }
    out_str(o, "</g>\n");
}

// Edges bucketed by sign and sqrt(|w| / max|w|); each bucket one <g class>, weakest first so
// strong edges are drawn on top.  Node coordinates are formatted once ("x y") and copied.
static int out_edges(Out *o, const Graph *g, const RenderLayout *lay, const uint8_t *edge_on, size_t n_edges) {
    int N = g->n_nodes, NB = RENDER_EDGE_BUCKETS;
    float maxw = 0;
    for (int t = 0; t < N; t++)
        for (uint64_t k = g->sp_row[t]; k < g->sp_row[t + 1]; k++)
            if (edge_on[k] && fabsf(g->sp_val[k]) > maxw) maxw = fabsf(g->sp_val[k]);
    // Formatted "x y" of each drawn node, 24 bytes each, with its length; index strings too.
    char (*xy)[24] = malloc(((size_t)lay->n + 1) * sizeof *xy);
    uint8_t *xyn = malloc((size_t)lay->n + 1);
    char (*ids)[12] = malloc(((size_t)lay->n + 1) * sizeof *ids);
    uint8_t *idn = malloc((size_t)lay->n + 1);
    // Counting sort of the edge list by bucket: bucket b in [0, 2 NB) (even: negative).
    size_t *start = calloc((size_t)2 * NB + 1, sizeof *start);
    uint64_t *order = malloc((n_edges + 1) * sizeof *order);
    uint8_t *bk = malloc(g->sp_nnz + 1);
    if (!xy || !xyn || !ids || !idn || !start || !order || !bk) {
        free(xy), free(xyn), free(ids), free(idn), free(start), free(order), free(bk);
        return ct_error("render: out of memory for %zu edges", n_edges);
    }
    for (int s = 0; s < lay->n; s++) {
        int n = fmt_fix1(xy[s], lay->x[s]);
        xy[s][n++] = ' ';
        n += fmt_fix1(xy[s] + n, lay->y[s]);
        xyn[s] = (uint8_t)n;
        idn[s] = (uint8_t)fmt_int(ids[s], lay->node[s]);
    }
    for (int t = 0; t < N; t++)
        for (uint64_t k = g->sp_row[t]; k < g->sp_row[t + 1]; k++) {
            if (!edge_on[k]) continue;
            float w = g->sp_val[k];
            int b = (int)(sqrtf(fabsf(w) / maxw) * (float)NB);
            b = b >= NB ? NB - 1 : b;
            bk[k] = (uint8_t)(2 * b + (w > 0));
            start[bk[k] + 1]++;
        }
    for (int b = 0; b < 2 * NB; b++) start[b + 1] += start[b];
    size_t *fill = malloc((size_t)2 * NB * sizeof *fill);
    if (!fill) {
        free(xy), free(xyn), free(ids), free(idn), free(start), free(order), free(bk);
        return ct_error("render: out of memory");
    }
    memcpy(fill, start, (size_t)2 * NB * sizeof *fill);
    // order[] holds the CSR index of each edge in bucket order, tgt[] its target row.
    uint32_t *tgt = malloc((n_edges + 1) * sizeof *tgt);
    if (!tgt) {
        free(xy), free(xyn), free(ids), free(idn), free(start), free(order), free(bk), free(fill);
        return ct_error("render: out of memory");
    }
    for (int t = 0; t < N; t++)
        for (uint64_t k = g->sp_row[t]; k < g->sp_row[t + 1]; k++)
            if (edge_on[k]) {
                size_t at = fill[bk[k]]++;
                order[at] = k;
                tgt[at] = (uint32_t)t;
            }
    out_str(o, "<g id=\"edges\" fill=\"none\" stroke-linecap=\"round\">\n");
    char line[160];
    for (int b = 0; b < 2 * NB; b++) {
        if (start[b] == start[b + 1]) continue;
        out_fmt(o, "<g class=\"e%c%d\">\n", (b & 1) ? 'p' : 'n', b / 2);
        for (size_t e = start[b]; e < start[b + 1]; e++) {
            int ss = lay->slot[g->sp_col[order[e]]], st = lay->slot[tgt[e]];
            // <path data-id="s:t" d="Mx y Lx y"/>
            size_t n = 0;
            memcpy(line + n, "<path data-id=\"", 15), n += 15;
            memcpy(line + n, ids[ss], idn[ss]), n += idn[ss];
            line[n++] = ':';
            memcpy(line + n, ids[st], idn[st]), n += idn[st];
            memcpy(line + n, "\" d=\"M", 6), n += 6;
            memcpy(line + n, xy[ss], xyn[ss]), n += xyn[ss];
            line[n++] = 'L';
            memcpy(line + n, xy[st], xyn[st]), n += xyn[st];
            memcpy(line + n, "\"/>\n", 4), n += 4;
            out_mem(o, line, n);
        }
        out_str(o, "</g>\n");
    }
    out_str(o, "</g>\n");
    free(xy), free(xyn), free(ids), free(idn), free(start), free(order), free(bk), free(fill), free(tgt);
    return CT_OK;
}

int render_graph(Graph *g, const RenderOptions *o, FILE *f) {
    if (graph_check(g) != CT_OK) return ct_error_ctx("render");
    if (graph_build_sparse(g) != CT_OK) return ct_error_ctx("render");
    int N = g->n_nodes, n_nodes = 0, rc = CT_ERR;
    size_t n_edges = 0;
    uint8_t *node_on = malloc((size_t)N + 1), *edge_on = malloc(g->sp_nnz + 1);
    RenderLayout lay = {0};
    Out out = {.f = f, .cap = (size_t)4 << 20};
    out.buf = malloc(out.cap);
    if (!node_on || !edge_on || !out.buf) {
        ct_error("render: out of memory");
        goto done;
    }
    if (render_select(g, o, node_on, edge_on, &n_nodes, &n_edges) != CT_OK) goto done;
    if (render_layout(g, node_on, &lay) != CT_OK) goto done;
    int pruned = o->select == RENDER_PRUNED || (o->select == RENDER_AUTO && g->node_keep && g->sp_keep);
    if (o->format == RENDER_HTML) {
        out_str(&out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>");
        out_xml(&out, g->slug && *g->slug ? g->slug : "attribution graph", 80);
        out_str(&out, " \xE2\x80\x94 ctrace</title>\n<style>html,body{margin:0;background:#fff}"
                      "svg{display:block}</style>\n</head><body>\n");
    }
    out_fmt(&out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                  "viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" "
                  "font-size=\"11\">\n", ceil(lay.width), ceil(lay.height), ceil(lay.width), ceil(lay.height));
    out_style(&out);
    out_str(&out, "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
    out_frame(&out, g, &lay);
    if (out_edges(&out, g, &lay, edge_on, n_edges) != CT_OK) goto done;
    out_nodes(&out, g, &lay);
    out_header(&out, g, &lay, n_nodes, n_edges, pruned);
    out_str(&out, "</svg>\n");
    if (o->format == RENDER_HTML) out_str(&out, "</body></html>\n");
    out_flush(&out);
    if (out.err) {
        ct_error("render: write failed: %s", strerror(out.err));
        goto done;
    }
    rc = CT_OK;
done:
    free(node_on), free(edge_on), free(out.buf);
    render_layout_free(&lay);
    return rc;
}

int render_graph_file(Graph *g, const RenderOptions *o, const char *path) {
    AtomicFile af = {0};
    if (ct_atomic_open(&af, path) != CT_OK) return CT_ERR;
    if (render_graph(g, o, af.f) != CT_OK) {
        ct_atomic_abort(&af);
        return ct_error_ctx("writing %s", path);
    }
    return ct_atomic_commit(&af);
}
