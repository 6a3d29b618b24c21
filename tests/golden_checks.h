// golden_checks.h — the forward pass against the reference program's goldens
// (../shared/models/stories260K/golden): logits of every position within 1e-4 absolute with
// identical argmax, captured activations within 1e-4, and decode == prefill bit for bit.
// Header-only so both the Criterion suite (tests/test_forward.c) and the aarch64 self-test
// run under qemu (tests/forward_selftest.c) use exactly the same checks.
#pragma once
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"

typedef struct { int fails; char msg[4096]; } GoldenResult;

static void golden_fail(GoldenResult *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void golden_fail(GoldenResult *r, const char *fmt, ...) {
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

static float *golden_read_f32(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    float *buf = malloc(n * sizeof(float));
    size_t got = fread(buf, sizeof(float), n, f);
    fclose(f);
    if (got != n) { free(buf); return NULL; }
    return buf;
}

static int golden_argmax(const float *x, size_t n) {
    size_t b = 0;
    for (size_t i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return (int)b;
}

// Check one sequence; threads selects the pool size (results must not depend on it).
static void golden_check_sequence(GoldenResult *r, const Model *m, json_t *seq, const char *dir,
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
static GoldenResult golden_check_all(const char *shared, ThreadPool *pool) {
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
