// render.h — a static picture of an attribution graph: SVG (or an HTML page holding the SVG).
//
// The picture is layered like the paper's figures:
//
//        +------------------------------------------------------------------+
//        | title (prompt)              legend                       scores  |   header
//  logit |                                                   [] "tok" 0.42  |   band K
//  L{L-1}|   o o o        o o            o o o o               o o          |
//   ...  |   o o  #       o  #           o o #                 o #          |   bands, one per layer
//  L0    |   o o o #      o o o #        o o #                 o o #        |
//  emb   |   [tok]        [tok]          [tok]                 [tok]        |   band 0
//        |  "Once"       " upon"        " a"                  " time"       |   token labels
//        +------------------------------------------------------------------+
//             pos 0         pos 1          pos 2                 pos T-1
//
// x = prompt position (one column per position), y = band (embeddings at the bottom, layers,
// logits at the top).  Nodes of one (band, position) cell sit on a grid of fixed pitch
// (RENDER_PITCH), so boxes never overlap; a node's half-size r <= RENDER_RMAX grows with its
// importance (1 - influence rank fraction).  Column widths and band heights follow the
// busiest cell.  Logits stack vertically in their cell, each with its label and probability.
//
// Shapes: feature = circle, error = grey square, embedding = green rounded square, logit =
// purple square.  Edges are straight lines from source to target centre, blue for positive
// and red for negative weights; width and opacity grow with sqrt(|w| / max |w|), in
// RENDER_EDGE_BUCKETS steps per sign (one <g class> per step, drawn weakest first).
//
// Every drawn node and edge carries a data-id, and every node its geometry, so tests can
// parse the SVG back:
//   node: <circle data-id="i" data-node="node_id" cx cy r>  or  <rect data-id="i" ... x y width height>
//   edge: <path data-id="s:t" d="Mx1 y1Lx2 y2"/>           (s, t: Graph node indices)
// Output is streamed through a large buffer with hand-written number formatting: a
// 10,000-node, 1,000,000-edge graph renders in well under a second.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/graph.h"

#define RENDER_PITCH 16.0f     // grid step inside a cell (px)
#define RENDER_RMAX 6.5f       // largest node half-size (px); RENDER_PITCH - 2 RMAX is the gap
#define RENDER_RMIN 2.5f       // smallest node half-size
#define RENDER_EDGE_BUCKETS 8  // width/opacity steps per sign

typedef enum { RENDER_SVG = 0, RENDER_HTML = 1 } RenderFormat;
typedef enum { RENDER_AUTO = 0, RENDER_PRUNED = 1, RENDER_ALL = 2 } RenderSelect;

typedef struct RenderOptions {
    int format;       // RenderFormat
    int select;       // RENDER_AUTO: pruned when the graph has keep flags, else all
    int max_nodes;    // > 0: at most this many feature/error nodes (most influential first);
                      // tokens and logits are always drawn.  0: no limit
} RenderOptions;

void render_options_default(RenderOptions *o);

// Positions of the drawn nodes (also what the SVG holds).
typedef struct RenderLayout {
    int n;             // nodes drawn
    int32_t *node;     // (n) Graph node index, in drawing order
    float *x, *y, *r;  // (n) centre and half-size: the node's box is [x-r, x+r] x [y-r, y+r]
    int32_t *slot;     // (N) position in node[] of each Graph node, -1 when not drawn
    int T, n_bands;    // columns (positions) and bands (L + 2)
    float *col_x0, *col_w;    // (T) column left edge and width
    float *band_y0, *band_h;  // (n_bands) band top edge and height; band 0 = embeddings
    float width, height;      // whole picture
    float plot_x0, plot_y0, plot_x1, plot_y1;  // the area of the bands
} RenderLayout;

// Which nodes and edges are drawn under the options: node_on (N), edge_on (g->sp_nnz; the CSR
// is built when missing).  Both are caller-allocated.  Counts returned in *n_nodes, *n_edges.
int render_select(Graph *g, const RenderOptions *o, uint8_t *node_on, uint8_t *edge_on,
                  int *n_nodes, size_t *n_edges);

// Place the nodes with node_on[i] set.  render_layout_free releases the arrays.
int render_layout(const Graph *g, const uint8_t *node_on, RenderLayout *lay);
void render_layout_free(RenderLayout *lay);

// Write the picture to f (SVG, or an HTML page holding it).  Builds g's CSR when missing.
int render_graph(Graph *g, const RenderOptions *o, FILE *f);
// The same into path, atomically (temp + rename).
int render_graph_file(Graph *g, const RenderOptions *o, const char *path);
