// golden_checks.h — the forward pass against reference goldens, as plain functions that collect
// failures in a GoldenResult (no Criterion), so the Criterion suites and the aarch64
// self-tests run under qemu use exactly the same checks:
//   golden_check_all  the reference program's goldens (../shared/models/stories260K/golden):
//                     logits of every position within 1e-4 absolute with identical argmax,
//                     captured activations within 1e-4, decode == prefill bit for bit
//                     (tests/test_forward.c, tests/forward_selftest.c);
//   golden_hf_arch    the Hugging Face goldens (../shared/models/hf-tiny/<arch>/golden, a
//                     float64 transformers run): logits, hidden states, the per-layer vectors
//                     goldens.json names and the attention probabilities of every variant and
//                     sequence within goldens.json's tolerances, argmax identical, decode ==
//                     prefill bit for bit (tests/test_hf_model.c, tests/forward_selftest.c).
// Everything is static inline: a file that uses one half does not warn about the other.
#pragma once
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/hf_model.h"
#include "engine/model.h"

typedef struct { int fails; char msg[4096]; } GoldenResult;

static inline void golden_fail(GoldenResult *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void golden_fail(GoldenResult *r, const char *fmt, ...) {
    size_t len = strlen(r->msg);
    if (len < sizeof r->msg - 2) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->msg + len, sizeof r->msg - len, fmt, ap);
        va_end(ap);
        len = strlen(r->msg);
        if (len < sizeof r->msg - 1) strcat(r->msg, "\n");
    }
    r->fails++;
}

static inline float *golden_read_f32(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    float *buf = malloc(n * sizeof(float));
    size_t got = fread(buf, sizeof(float), n, f);
    fclose(f);
    if (got != n) { free(buf); return NULL; }
    return buf;
}

static inline int golden_argmax(const float *x, size_t n) {
    size_t b = 0;
    for (size_t i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return (int)b;
}

// Check one sequence; threads selects the pool size (results must not depend on it).
static inline void golden_check_sequence(GoldenResult *r, const Model *m, json_t *seq, const char *dir,
                                  ThreadPool *pool) {
    const char *name = json_string_value(json_object_get(seq, "name"));
    json_t *all = json_object_get(seq, "all_ids"), *prompt = json_object_get(seq, "prompt_ids");
    int n_all = (int)json_array_size(all), n_prompt = (int)json_array_size(prompt);
    int rows = n_all - 1;
    size_t V = (size_t)m->c.vocab_size, D = (size_t)m->c.dim;
    int L = m->c.n_layers;
    int *ids = malloc(sizeof(int) * (size_t)n_all);
    for (int i = 0; i < n_all; i++) ids[i] = (int)json_integer_value(json_array_get(all, (size_t)i));

    char path[2200];
    snprintf(path, sizeof path, "%s/%s", dir, json_string_value(json_object_get(seq, "logits_file")));
    float *gl = golden_read_f32(path, (size_t)rows * V);
    snprintf(path, sizeof path, "%s/%s", dir, json_string_value(json_object_get(seq, "acts_file")));
    size_t nact = (size_t)n_prompt * (size_t)(4 * L + 2) * D;
    float *ga = golden_read_f32(path, nact);
    if (!gl || !ga) {
        golden_fail(r, "%s: cannot read golden binaries in %s", name, dir);
        goto out;
    }

    // Prefill of all rows with capture.
    RunState s;
    Capture cap;
    if (runstate_init(&s, &m->c, rows) != CT_OK || capture_init(&cap, &m->c, rows, CAP_ALL) != CT_OK) {
        golden_fail(r, "%s: %s", name, ct_errmsg());
        goto out;
    }
    float *lg = malloc(sizeof(float) * (size_t)rows * V);
    model_forward_seq(m, &s, ids, rows, lg, &cap, pool);
    double maxd = 0;
    for (int p = 0; p < rows; p++) {
        const float *a = lg + (size_t)p * V, *b = gl + (size_t)p * V;
        for (size_t j = 0; j < V; j++) maxd = fmax(maxd, fabs((double)a[j] - (double)b[j]));
        if (golden_argmax(a, V) != golden_argmax(b, V))
            golden_fail(r, "%s: row %d argmax %d, golden %d", name, p, golden_argmax(a, V), golden_argmax(b, V));
    }
    if (!(maxd <= 1e-4)) golden_fail(r, "%s: logits max |diff| %.3g > 1e-4", name, maxd);

    // Activations: per position 22 vectors: per layer resid_pre, attn_out, mlp_in, mlp_out;
    // then resid_final, final_normed.
    double maxa = 0;
    for (int p = 0; p < n_prompt; p++) {
        const float *g = ga + (size_t)p * (size_t)(4 * L + 2) * D;
        for (int l = 0; l < L; l++) {
            const float *mine[4] = {cap.resid_pre + ((size_t)p * (L + 1) + l) * D,
                                    cap.attn_out + ((size_t)p * L + l) * D,
                                    cap.mlp_in + ((size_t)p * L + l) * D,
                                    cap.mlp_out + ((size_t)p * L + l) * D};
            for (int k = 0; k < 4; k++)
                for (size_t j = 0; j < D; j++)
                    maxa = fmax(maxa, fabs((double)mine[k][j] - g[(size_t)(4 * l + k) * D + j]));
        }
        for (size_t j = 0; j < D; j++) {
            maxa = fmax(maxa, fabs((double)cap.resid_pre[((size_t)p * (L + 1) + L) * D + j] - g[(size_t)(4 * L) * D + j]));
            maxa = fmax(maxa, fabs((double)cap.final_normed[(size_t)p * D + j] - g[(size_t)(4 * L + 1) * D + j]));
        }
        // resid_mid = resid_pre + attn_out, by definition.
        for (int l = 0; l < L; l++)
            for (size_t j = 0; j < D; j++) {
                double want = (double)cap.resid_pre[((size_t)p * (L + 1) + l) * D + j] + cap.attn_out[((size_t)p * L + l) * D + j];
                if (fabs(cap.resid_mid[((size_t)p * L + l) * D + j] - want) > 1e-5 * (1 + fabs(want))) {
                    golden_fail(r, "%s: resid_mid != resid_pre + attn_out at p=%d l=%d", name, p, l);
                    l = L;
                    break;
                }
            }
    }
    if (!(maxa <= 1e-4)) golden_fail(r, "%s: activations max |diff| %.3g > 1e-4", name, maxa);

    // Attention patterns: rows sum to 1 over keys 0..p and are zero after p.
    for (int l = 0; l < L && r->fails < 50; l++)
        for (int h = 0; h < m->c.n_heads; h++)
            for (int p = 0; p < rows; p++) {
                const float *row = cap.att + (((size_t)l * m->c.n_heads + h) * rows + p) * rows;
                double sum = 0;
                for (int t = 0; t <= p; t++) sum += row[t];
                int zero_after = 1;
                for (int t = p + 1; t < rows; t++) zero_after &= row[t] == 0.0f;
                if (fabs(sum - 1) > 1e-5 || !zero_after) {
                    golden_fail(r, "%s: attention row l=%d h=%d p=%d sums to %g", name, l, h, p, sum);
                    h = m->c.n_heads;
                    l = L;
                    break;
                }
            }

    // Decode one position at a time: bit-identical to the chunked prefill.
    RunState s2;
    runstate_init(&s2, &m->c, rows);
    for (int p = 0; p < rows; p++) {
        const float *lo = model_forward(m, &s2, ids[p], p, NULL, pool);
        if (memcmp(lo, lg + (size_t)p * V, V * sizeof(float)) != 0) {
            golden_fail(r, "%s: decode logits at position %d differ from prefill bits", name, p);
            break;
        }
    }
    // Greedy continuation equals the golden greedy ids.
    for (int p = n_prompt - 1; p < rows; p++)
        if (golden_argmax(lg + (size_t)p * V, V) != ids[p + 1]) {
            golden_fail(r, "%s: greedy token at %d is %d, golden %d", name, p + 1, golden_argmax(lg + (size_t)p * V, V), ids[p + 1]);
            break;
        }
    runstate_free(&s2);
    free(lg);
    capture_free(&cap);
    runstate_free(&s);
out:
    free(gl);
    free(ga);
    free(ids);
}

// Run every sequence of the stories260K goldens; returns the result (fails == 0 is a pass).
static inline GoldenResult golden_check_all(const char *shared, ThreadPool *pool) {
    GoldenResult r;
    memset(&r, 0, sizeof r);
    char dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s/models/stories260K/golden", shared);
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", shared);
    Model m;
    if (model_load_llama2c(&m, path) != CT_OK) {
        golden_fail(&r, "%s", ct_errmsg());
        return r;
    }
    snprintf(path, sizeof path, "%s/goldens.json", dir);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) {
        golden_fail(&r, "%s: %s", path, err.text);
        model_free(&m);
        return r;
    }
    json_t *seqs = json_object_get(root, "sequences");
    size_t i;
    json_t *seq;
    json_array_foreach(seqs, i, seq) golden_check_sequence(&r, &m, seq, dir, pool);
    if (json_array_size(seqs) < 3) golden_fail(&r, "expected 3 golden sequences, found %zu", json_array_size(seqs));
    json_decref(root);
    model_free(&m);
    return r;
}

// ---- Hugging Face goldens ------------------------------------------------------------------
// goldens.json (one per architecture) lists the layer vectors, the tolerances
// (tolerance_suggestion.fp32_engine_vs_f64) and the variants (fp32; Llama also bf16, against
// its own goldens), each with sequences seq1 and seq2 whose files hold float64 arrays:
// logits (T, V), hidden (L+1, T, D), resid_final (T, D), layers (L, K, T, D), attn (L, H, T, T).
typedef struct GoldenHfTol { double logits, act, attn; } GoldenHfTol;
typedef struct GoldenHfErrs { double logits, hidden, layers, attn; } GoldenHfErrs;
// Called once per sequence checked with its label ("llama/fp32/seq1 [neon, 2 threads]") and
// its worst errors, for the caller to log.
typedef void (*GoldenHfNote)(const char *what, const GoldenHfErrs *e);

static inline double golden_maxd(double a, double b) { return a > b ? a : b; }

// A float64 file of exactly n values (NULL, with a failure recorded, otherwise).
static inline double *golden_read_f64(GoldenResult *r, const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        golden_fail(r, "%s: cannot open", path);
        return NULL;
    }
    double *d = malloc(n * sizeof(double) + 1);
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    rewind(f);
    if (size != (long)(n * sizeof(double)) || fread(d, sizeof(double), n, f) != n) {
        golden_fail(r, "%s: %ld bytes, expected %zu", path, size, n * sizeof(double));
        free(d);
        d = NULL;
    }
    fclose(f);
    return d;
}

// The output of the pre-attention norm, recomputed in double from the captured residual and
// factor (the goldens' attn.in): RMSNorm w * x * inv; LayerNorm w * (x - mean) * inv + b.
static inline void golden_hf_attn_in(const Model *m, const Capture *cap, int l, int p, double *out) {
    int D = m->c.dim, L = m->c.n_layers;
    const float *x = cap->resid_pre + ((size_t)p * (L + 1) + l) * D;
    double inv = cap->inv_rms_att[(size_t)p * L + l], mean = 0;
    if (m->c.norm_kind == NORM_LAYER) {
        for (int i = 0; i < D; i++) mean += x[i];
        mean /= D;
    }
    for (int i = 0; i < D; i++) {
        out[i] = (double)m->w.rms_att[(size_t)l * D + i] * ((x[i] - mean) * inv);
        if (m->w.rms_att_b) out[i] += m->w.rms_att_b[(size_t)l * D + i];
    }
}

// One sequence: prefill with capture vs every golden array, then decode == prefill bits.
// lv[0..K) are the layer-vector names; what labels failures.  Returns the worst errors.
static inline GoldenHfErrs golden_hf_sequence(GoldenResult *r, const Model *m, const char *gdir, json_t *seq,
                                              const char *const *lv, int K, const GoldenHfTol *tol,
                                              ThreadPool *pool, const char *what) {
    GoldenHfErrs e = {0, 0, 0, 0};
    json_t *ids_j = json_object_get(seq, "ids"), *files = json_object_get(seq, "files");
    int T = (int)json_integer_value(json_object_get(seq, "n"));
    if (T <= 0 || (int)json_array_size(ids_j) != T) {
        golden_fail(r, "%s: goldens.json: n = %d but %zu ids", what, T, json_array_size(ids_j));
        return e;
    }
    int L = m->c.n_layers, D = m->c.dim, V = m->c.vocab_size, H = m->c.n_heads;
    int *ids = malloc(sizeof(int) * (size_t)T);
    for (int i = 0; i < T; i++) ids[i] = (int)json_integer_value(json_array_get(ids_j, (size_t)i));
    char path[4096];
#define GOLD(name, n) (snprintf(path, sizeof path, "%s/%s", gdir, \
        json_string_value(json_object_get(json_object_get(json_object_get(files, name), "f64"), "file"))), \
        golden_read_f64(r, path, n))
    double *gl = GOLD("logits", (size_t)T * V);
    double *gh = GOLD("hidden", (size_t)(L + 1) * T * D);
    double *gr = GOLD("resid_final", (size_t)T * D);
    double *gy = GOLD("layers", (size_t)L * K * T * D);
    double *ga = json_object_get(files, "attn") ? GOLD("attn", (size_t)L * H * T * T) : NULL;
#undef GOLD
    RunState s, s2;
    Capture cap;
    float *lg = malloc(sizeof(float) * (size_t)T * V);
    double *ain = malloc(sizeof(double) * (size_t)D);
    int have_s = 0, have_cap = 0, have_s2 = 0;
    if (!gl || !gh || !gr || !gy || (json_object_get(files, "attn") && !ga)) goto out;
    if (runstate_init(&s, &m->c, T) != CT_OK) goto err;
    have_s = 1;
    if (capture_init(&cap, &m->c, T, CAP_ALL) != CT_OK) goto err;
    have_cap = 1;
    if (model_forward_seq(m, &s, ids, T, lg, &cap, pool) != CT_OK) goto err;

    // logits and argmax of every row
    for (int p = 0; p < T; p++) {
        const float *a = lg + (size_t)p * V;
        const double *b = gl + (size_t)p * V;
        int am = 0, bm = 0;
        for (int v = 0; v < V; v++) {
            e.logits = golden_maxd(e.logits, fabs(a[v] - b[v]));
            if (a[v] > a[am]) am = v;
            if (b[v] > b[bm]) bm = v;
        }
        if (am != bm) golden_fail(r, "%s: row %d argmax %d, golden %d", what, p, am, bm);
    }
    // hidden: entries 0..L-1 = residual entering layer l, entry L = the final norm's output
    for (int l = 0; l <= L; l++)
        for (int p = 0; p < T; p++)
            for (int i = 0; i < D; i++) {
                double mine = l < L ? cap.resid_pre[((size_t)p * (L + 1) + l) * D + i] : cap.final_normed[(size_t)p * D + i];
                e.hidden = golden_maxd(e.hidden, fabs(mine - gh[((size_t)l * T + p) * D + i]));
            }
    for (int p = 0; p < T; p++)
        for (int i = 0; i < D; i++)
            e.hidden = golden_maxd(e.hidden, fabs(cap.resid_pre[((size_t)p * (L + 1) + L) * D + i] - gr[(size_t)p * D + i]));
    // per-layer vectors, by name
    int post = m->c.post_norms, gemma_bad = 0;
    for (int k = 0; k < K; k++)
        if (strcmp(lv[k], "attn.in") && strcmp(lv[k], "attn.out") && strcmp(lv[k], "attn.out_postnorm") &&
            strcmp(lv[k], "mlp_norm.in") && strcmp(lv[k], "mlp.in") && strcmp(lv[k], "mlp.out") &&
            strcmp(lv[k], "mlp.out_postnorm")) {
            golden_fail(r, "%s: unknown layer vector %s in goldens.json", what, lv[k]);
            goto out;
        }
    for (int l = 0; l < L; l++)
        for (int k = 0; k < K; k++)
            for (int p = 0; p < T; p++) {
                const double *g = gy + (((size_t)l * K + k) * T + p) * D;
                size_t row = (size_t)p * L + l;
                const float *next = cap.resid_pre + ((size_t)p * (L + 1) + l + 1) * D;
                const float *pre = cap.resid_pre + ((size_t)p * (L + 1) + l) * D;
                if (!strcmp(lv[k], "attn.in")) golden_hf_attn_in(m, &cap, l, p, ain);
                for (int i = 0; i < D; i++) {
                    double mine;
                    // Gemma-2: the true residual after attention = next - mlp_out (post-normed)
                    double mid_true = post ? (double)next[i] - cap.mlp_out[row * D + i] : cap.resid_mid[row * D + i];
                    if (!strcmp(lv[k], "attn.in")) mine = ain[i];
                    else if (!strcmp(lv[k], "attn.out")) mine = cap.attn_out[row * D + i];
                    else if (!strcmp(lv[k], "attn.out_postnorm")) mine = mid_true - pre[i];
                    else if (!strcmp(lv[k], "mlp_norm.in")) mine = mid_true;
                    else if (!strcmp(lv[k], "mlp.in")) mine = cap.mlp_in[row * D + i];
                    else if (!strcmp(lv[k], "mlp.out")) mine = post ? cap.mlp_raw[row * D + i] : cap.mlp_out[row * D + i];
                    else mine = cap.mlp_out[row * D + i];   // mlp.out_postnorm
                    e.layers = golden_maxd(e.layers, fabs(mine - g[i]));
                }
                if (post && !gemma_bad)   // resid_mid is the normalised input before the gain: times the gain = mlp.in
                    for (int i = 0; i < D; i++) {
                        double want = (double)cap.resid_mid[row * D + i] * m->w.rms_ffn[(size_t)l * D + i];
                        if (!(fabs(want - cap.mlp_in[row * D + i]) <= 1e-6 * (1 + fabs(want)))) {
                            golden_fail(r, "%s: Gemma resid_mid * gain != mlp_in at l=%d p=%d", what, l, p);
                            gemma_bad = 1;
                            break;
                        }
                    }
            }
    if (ga)
        for (int l = 0; l < L; l++)
            for (int h = 0; h < H; h++)
                for (int p = 0; p < T; p++)
                    for (int t = 0; t < T; t++) {
                        double mine = t <= p ? cap.att[(((size_t)l * H + h) * T + p) * T + t] : 0.0;
                        e.attn = golden_maxd(e.attn, fabs(mine - ga[(((size_t)l * H + h) * T + p) * T + t]));
                    }
    // !(x <= tol) so that a NaN fails too
    if (!(e.logits <= tol->logits)) golden_fail(r, "%s: logits max |diff| %.3g > %.3g", what, e.logits, tol->logits);
    if (!(e.hidden <= tol->act)) golden_fail(r, "%s: hidden max |diff| %.3g > %.3g", what, e.hidden, tol->act);
    if (!(e.layers <= tol->act)) golden_fail(r, "%s: layer vectors max |diff| %.3g > %.3g", what, e.layers, tol->act);
    if (!(e.attn <= tol->attn)) golden_fail(r, "%s: attention max |diff| %.3g > %.3g", what, e.attn, tol->attn);

    // decode one position at a time: the same bits as the prefill
    if (runstate_init(&s2, &m->c, T) != CT_OK) goto err;
    have_s2 = 1;
    for (int p = 0; p < T; p++) {
        const float *lo = model_forward(m, &s2, ids[p], p, NULL, pool);
        if (!lo) goto err;
        if (memcmp(lo, lg + (size_t)p * V, sizeof(float) * (size_t)V) != 0) {
            golden_fail(r, "%s: decode logits at %d differ from prefill bits", what, p);
            break;
        }
    }
    goto out;
err:
    golden_fail(r, "%s: %s", what, ct_errmsg());
out:
    if (have_s2) runstate_free(&s2);
    if (have_cap) capture_free(&cap);
    if (have_s) runstate_free(&s);
    free(ain), free(lg), free(ids), free(gl), free(gh), free(gr), free(gy), free(ga);
    return e;
}

// Every variant and sequence of one architecture's goldens (shared/models/hf-tiny/<arch>);
// isa labels failures.  Returns the worst errors; failures are recorded in r.
static inline GoldenHfErrs golden_hf_arch(GoldenResult *r, const char *shared, const char *arch, ThreadPool *pool,
                                          const char *isa, GoldenHfNote note) {
    GoldenHfErrs worst = {0, 0, 0, 0};
    char dir[1024], path[2048];
    snprintf(dir, sizeof dir, "%s/models/hf-tiny/%s", shared, arch);
    snprintf(path, sizeof path, "%s/golden/goldens.json", dir);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        golden_fail(r, "%s: %s", path, jerr.text);
        return worst;
    }
    json_t *lvj = json_object_get(root, "layer_vectors");
    int K = (int)json_array_size(lvj);
    const char *lv[16];
    json_t *ts = json_object_get(json_object_get(root, "tolerance_suggestion"), "fp32_engine_vs_f64");
    GoldenHfTol tol = {json_number_value(json_object_get(ts, "logits_atol")),
                       json_number_value(json_object_get(ts, "hidden_resid_layers_atol")),
                       json_number_value(json_object_get(ts, "attn_atol"))};
    if (K <= 0 || K > 16) {
        golden_fail(r, "%s: layer_vectors: expected 1..16 names, got %d", path, K);
        goto done;
    }
    for (int k = 0; k < K; k++) lv[k] = json_string_value(json_array_get(lvj, (size_t)k));
    if (!(tol.logits > 0 && tol.logits <= 1e-4 && tol.act > 0 && tol.attn > 0)) {
        golden_fail(r, "%s: tolerance_suggestion.fp32_engine_vs_f64: expected logits in (0, 1e-4] and positive "
                    "act and attn, got %g %g %g", path, tol.logits, tol.act, tol.attn);
        goto done;
    }
    const char *vname;
    json_t *var;
    int nseq = 0;
    json_object_foreach(json_object_get(root, "variants"), vname, var) {
        char mdir[2048], gdir[2048];
        snprintf(mdir, sizeof mdir, "%s/%s", dir, json_string_value(json_object_get(var, "model_dir")));
        snprintf(gdir, sizeof gdir, "%s/golden/%s", dir, json_string_value(json_object_get(var, "golden_dir")));
        Model m;
        if (model_open(&m, mdir) != CT_OK) {
            golden_fail(r, "%s/%s: %s", arch, vname, ct_errmsg());
            continue;
        }
        const char *want_arch = json_string_value(json_object_get(root, "arch"));
        if (!want_arch || strcmp(model_arch_name(m.c.arch), want_arch))
            golden_fail(r, "%s: loaded as %s, goldens.json says %s", mdir, model_arch_name(m.c.arch), want_arch ? want_arch : "?");
        if (!strcmp(vname, "bf16") && strcmp(m.src_dtype, "BF16"))
            golden_fail(r, "%s: weights read as %s, expected BF16", mdir, m.src_dtype);
        const char *sname;
        json_t *seq;
        json_object_foreach(json_object_get(var, "sequences"), sname, seq) {
            char what[256];
            snprintf(what, sizeof what, "%s/%s/%s [%s, %d threads]", arch, vname, sname, isa, pool_size(pool));
            GoldenHfErrs e = golden_hf_sequence(r, &m, gdir, seq, lv, K, &tol, pool, what);
            worst.logits = golden_maxd(worst.logits, e.logits), worst.hidden = golden_maxd(worst.hidden, e.hidden);
            worst.layers = golden_maxd(worst.layers, e.layers), worst.attn = golden_maxd(worst.attn, e.attn);
            if (note) note(what, &e);
            nseq++;
        }
        model_free(&m);
    }
    if (nseq < 2) golden_fail(r, "%s: expected seq1 and seq2, found %d sequences", path, nseq);
done:
    json_decref(root);
    return worst;
}
