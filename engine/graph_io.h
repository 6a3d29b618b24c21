// graph_io.h — attribution graph files: the viewer JSON (METHOD §4, Neuronpedia / circuit-
// tracer schema_version 1), the graph-metadata.json index, and the raw binary graph (.ctg).
// Every writer goes through a temp file and a rename (AtomicFile).
//
// ---- JSON ---------------------------------------------------------------------------------
//   {"metadata":{...},
//   "qParams":{"pinnedIds":[],"supernodes":[],"linkType":"both","clickedId":"","sg_pos":""},
//   "nodes":[
//   {node}, ...
//   ],
//   "links":[
//   {"source":id,"target":id,"weight":A[target,source]}, ...
//   ]}
// One node or link per line, compact otherwise.  metadata: slug, scan, transcoder_list [],
// prompt_tokens (decoded pieces), prompt, node_threshold, schema_version 1, and "info"
// (ctrace's own block: generator, model/transcoder paths, xxh3 fingerprints of model,
// transcoder and prompt as 16 hex digits, dims, node counts, thresholds, prompt token ids,
// "scores": {"full": {replacement, completeness}, "pruned": {...}}, "full_graph").
//
// Nodes (METHOD §4 table): node_id, feature, layer (a string: "l", "E", or "L+1" as a number
// string), ctx_idx, feature_type, jsNodeId, clerp, influence, activation, token_prob,
// is_target_logit, run_idx 0, reverse_ctx_idx 0.
//   feature  "{l}_{f}_{p}"      feature = Cantor (l+f)(l+f+1)/2+f   jsNodeId "{l}_{f}-0"
//   error    "0_{l}_{p}"        feature = -1                        jsNodeId "{l}_-1-{p}"
//   token    "E_{tok}_{p}"      feature = p                         jsNodeId "E_{tok}-{p}"
//   logit    "{L+1}_{v}_{T-1}"  feature = v                         jsNodeId "L_{v}-{p}"
// clerp: feature label (node_labels) or ""; error ""; token its decoded text; logit
// `Output "tok" (p=0.123)`.  activation: features and logits (the logit value) a number,
// errors and tokens null (as circuit-tracer).  influence: GraphNode.influence (prune.h).
// Strings are written as valid UTF-8: a byte that is not part of a valid sequence becomes
// U+FFFD (the .ctg keeps the raw bytes).
//
// The reference's error id can equal a layer-0 feature's id (feature f == l at the same
// position).  When both are written, each link whose source or target names such an id also
// carries "source_type"/"target_type" (the endpoint's feature_type), which readers use; the
// viewer ignores the extra key.
//
// Numbers are deterministic: every fp32 value is written as the shortest decimal (%.Ng, N <=
// 9) that reads back to the same float; doubles (scores) with 9 significant digits; NaN
// scores as null.  Same Graph -> same bytes.
//
// ---- .ctg (little-endian; version 1) ------------------------------------------------------
//   CtgHeader (176 bytes, below)  magic "CTGRAPH\0", version, sizes, fingerprints, scores
//   nodes     n_nodes x 36 bytes: u8 kind, u8 is_target, u8 keep, u8 0, i32 layer, pos,
//             feature, token, f32 activation, prob, influence, influence_raw
//   tokens    T x i32 prompt token ids
//   strings   strings_size bytes: (u32 length, bytes) each, length 0xFFFFFFFF = absent, in
//             order prompt, slug, scan, model_path, clt_path, token_strs[T], logit_strs[K],
//             node_labels[N]
//   adjacency CSR by target: u64 row offsets (N+1), u32 source (nnz), f32 weight (nnz),
//             u8 keep (nnz; all 0 unless flags & CTG_PRUNED)
//   u64 xxh3-64 of every byte before it
// The reader checks magic and version (with a hint), every size against the file length,
// the checksum, node kinds and fields, offsets, source indices (in range, ascending per row)
// and flag bytes, and names the file, the field, the expected and the found value.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/graph.h"

#define CTG_MAGIC "CTGRAPH"   // 8 bytes with the terminating NUL
#define CTG_VERSION 1u
#define CTG_PRUNED 1u         // flags: node/edge keep flags and pruned scores are valid

typedef struct CtgHeader {
    char magic[8];
    uint32_t version;
    uint32_t header_size;     // sizeof(CtgHeader)
    uint64_t file_size;       // whole file, checksum included
    uint64_t model_fp, clt_fp, prompt_fp;
    double scores[4];         // replacement, completeness, pruned replacement, pruned completeness
    uint64_t nnz;
    uint64_t n_kept_edges;
    uint64_t strings_size;
    int32_t n_nodes, n_features, n_errors, n_tokens, n_logits;
    int32_t L, T, D, F, V;
    int32_t n_active_total, max_feature_nodes, n_kept_nodes;
    uint32_t flags;           // CTG_PRUNED
    float node_threshold, edge_threshold;
    uint32_t node_size;       // 36
    uint32_t reserved;        // 0
} CtgHeader;

#define GRAPH_JSON_FULL 1     // write every node and every nonzero edge (not only the kept ones)

// Write the viewer JSON.  Without GRAPH_JSON_FULL the graph must be pruned (node_keep,
// sp_keep/edge_keep): kept nodes and kept edges only.  Builds g's CSR when missing.
int graph_write_json(Graph *g, const char *path, int flags);
// Insert or replace (same slug) this graph's metadata in DIR/graph-metadata.json
// ({"graphs": [metadata, ...]}); creates the file when missing; atomic.
int graph_update_index(const char *dir, const Graph *g, int flags);
// Read a viewer JSON back: a sparse Graph (no dense adj) of the nodes and links in the file,
// every node and edge marked kept (no keep flags at all when metadata.info.full_graph is
// true).  influence_raw is not in the JSON and reads as 0.  Nodes are grouped into the block order (features,
// errors, tokens, logits) keeping file order inside each block, so the error block holds
// the errors that were written (not L*T of them): use node.layer/pos, not the index.
int graph_read_json(Graph *g, const char *path);

// Write / read the raw binary graph.  The writer builds g's CSR when missing; the reader
// returns a sparse Graph (graph_densify() adds the dense form).
int graph_write_ctg(Graph *g, const char *path);
int graph_read_ctg(Graph *g, const char *path);
