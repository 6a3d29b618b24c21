// testclt.c — see testclt.h.
#include "tests/lib/testclt.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer.h"
#include "tests/lib/testutil.h"

const char *const TU_STORIES_PROMPT = "Once upon a time, there was a little girl named Lily. She";

void tu_load_stories(Model *m, int *toks, int *T, int maxT) {
    char *mp = tu_shared_path("models/stories260K/stories260K.bin");
    char *tp = tu_shared_path("models/stories260K/tok512.bin");
    cr_assert_eq(model_load_llama2c(m, mp), CT_OK, "%s", ct_errmsg());
    Tokenizer tk;
    cr_assert_eq(tokenizer_load(&tk, tp, m->c.vocab_size), CT_OK, "%s", ct_errmsg());
    int all[256], n = 0;
    cr_assert_eq(tokenizer_encode(&tk, TU_STORIES_PROMPT, 1, 0, all, 256, &n), CT_OK, "%s", ct_errmsg());
    if (n > maxT) n = maxT;
    memcpy(toks, all, (size_t)n * sizeof(int));
    *T = n;
    tokenizer_free(&tk);
    free(mp), free(tp);
}

void tu_random_clt(Clt *c, const Model *m, const int *toks, int T, int F, CltKind kind,
                   CltActKind act, int skip, uint64_t seed, double frac) {
    int L = m->c.n_layers, D = m->c.dim;
    CltActivation a = {act, act == CLT_ACT_TOPK ? 6 : 0};
    cr_assert_eq(clt_alloc(c, L, D, F, kind, a, skip), CT_OK, "%s", ct_errmsg());
    TuRng rng;
    tu_rng_seed(&rng, seed);
    Capture cap;
    RunState rs;
    cr_assert_eq(capture_init(&cap, &m->c, T, CAP_RESID), CT_OK);
    cr_assert_eq(runstate_init(&rs, &m->c, T), CT_OK);
    cr_assert_eq(model_forward_seq(m, &rs, toks, T, NULL, &cap, NULL), CT_OK);
    double *h = malloc((size_t)T * F * sizeof(double));
    cr_assert_not_null(h);
    for (int l = 0; l < L; l++) {
        CltLayer *ly = &c->layers[l];
        tu_fill_normal(ly->W_enc, (size_t)F * D, &rng, 0.0f, 1.0f / sqrtf((float)D));
        tu_fill_normal(ly->b_dec, (size_t)D, &rng, 0.0f, 0.05f);
        tu_fill_normal((float *)ly->W_dec, (size_t)F * ly->n_out * D, &rng, 0.0f, 0.5f / sqrtf((float)D));
        if (ly->W_skip) tu_fill_normal(ly->W_skip, (size_t)D * D, &rng, 0.0f, 0.3f / sqrtf((float)D));
        // pre-activations over positions 1..T-1 -> their (1 - frac) quantile
        size_t n = 0;
        for (int p = 1; p < T; p++) {
            const float *x = cap.resid_mid + ((size_t)p * L + l) * D;
            for (int f = 0; f < F; f++) {
                double s = 0;
                for (int i = 0; i < D; i++) s += (double)ly->W_enc[(size_t)f * D + i] * x[i];
                h[n++] = s;
            }
        }
        for (size_t i = 1; i < n; i++)  // insertion sort: small
            for (size_t j = i; j > 0 && h[j - 1] > h[j]; j--) {
                double t = h[j]; h[j] = h[j - 1]; h[j - 1] = t;
            }
        double q = h[(size_t)((1.0 - frac) * (double)(n - 1))];
        for (int f = 0; f < F; f++) {
            double jit = 0.8 + 0.4 * tu_rng_uniform(&rng);
            if (act == CLT_ACT_JUMPRELU) ly->threshold[f] = (float)(q > 0 ? q * jit : 0.05 * jit);
            else if (act == CLT_ACT_RELU) ly->b_enc[f] = (float)(-q * jit);
        }
    }
    free(h);
    capture_free(&cap);
    runstate_free(&rs);
}

void tu_target_changes(const Replacement *r, const AttribTarget *tg, int n, const double *dmid,
                           const double *dlog, double *ref) {
    int L = r->L, D = r->D;
    double mean = 0;
    for (int u = 0; u < r->V; u++) mean += dlog[u];
    mean /= r->V;
    for (int t = 0; t < n; t++) {
        if (tg[t].kind == TARGET_FEATURE) {
            const float *we = r->clt->layers[tg[t].layer].W_enc + (size_t)tg[t].feature * D;
            const double *dm = dmid + ((size_t)tg[t].pos * L + tg[t].layer) * D;
            double s = 0;
            for (int i = 0; i < D; i++) s += (double)we[i] * dm[i];
            ref[t] = s;
        } else {
            ref[t] = dlog[tg[t].tok_a] - (tg[t].tok_b >= 0 ? dlog[tg[t].tok_b] : mean);
        }
    }
}
