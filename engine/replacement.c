// replacement.c — the local replacement model of one prompt: real forward with capture, the
// transcoder's sparse activations per (layer, position), reconstructions and error vectors.
// See replacement.h for the equations and the BOS convention.
#include "engine/replacement.h"

#include <stdlib.h>
#include <string.h>

#include "simd/simd.h"

// ---- encoding: one layer, positions split over tasks -----------------------------------------
typedef struct {
    const Replacement *r;
    int l;
    float *X;     // (T, D) inputs of layer l (resid_mid), gathered contiguous
    float *act;   // (T, F) activations
} EncJob;

static void enc_task(void *ctx, int task, int ntasks) {
    EncJob *j = ctx;
    const Replacement *r = j->r;
    // Positions 1..T-1 only (position 0 is BOS, zeroed).  Rows of matmul are bit-identical
    // to single-row products, so the split does not change a bit.
    size_t n = (size_t)r->T - 1;
    size_t p0 = 1 + pool_split(n, task, ntasks), p1 = 1 + pool_split(n, task + 1, ntasks);
    if (p1 > p0)
        clt_encode_batch(r->clt, j->l, j->X + p0 * (size_t)r->D, (int)(p1 - p0), NULL,
                         j->act + p0 * (size_t)r->F);
}

// ---- reconstruction: positions split over tasks ----------------------------------------------
typedef struct {
    Replacement *r;
    float **row;  // (ntasks) scratch rows (D) for decoders not resident in fp32
    float **tmp;  // (ntasks) scratch (D) for the skip product
} RecJob;

static void rec_task(void *ctx, int task, int ntasks) {
    RecJob *j = ctx;
    Replacement *r = j->r;
    const Clt *c = r->clt;
    size_t D = (size_t)r->D, T = (size_t)r->T;
    int L = r->L;
    size_t p0 = pool_split(T, task, ntasks), p1 = pool_split(T, task + 1, ntasks);
    for (size_t p = p0; p < p1; p++) {
        for (int lo = 0; lo < L; lo++) {
            float *y = r->recon + ((size_t)lo * T + p) * D;
            memcpy(y, c->layers[lo].b_dec, D * sizeof(float));
            // sources l_s <= lo (a PLT decodes only l_s == lo; clt_decode_layer_add skips others)
            for (int ls = 0; ls <= lo; ls++) {
                int s0 = r->lp_start[(size_t)ls * T + p], s1 = r->lp_start[(size_t)ls * T + p + 1];
                CltSparse sp = {s1 - s0, s1 - s0, r->act_feat + s0, r->act_val + s0};
                clt_decode_layer_add(c, ls, &sp, lo, y, j->row[task]);
            }
            const float *x = r->cap.resid_mid + (p * (size_t)L + (size_t)lo) * D;
            clt_skip_add(c, lo, x, y, j->tmp[task]);
            float *e = r->eps + ((size_t)lo * T + p) * D;
            const float *mo = r->cap.mlp_out + (p * (size_t)L + (size_t)lo) * D;
            if (p == 0) memset(e, 0, D * sizeof(float));  // BOS: no error node contribution
            else
                for (size_t i = 0; i < D; i++) e[i] = mo[i] - y[i];
        }
    }
}

int replacement_build(Replacement *r, const Model *m, const Clt *clt, const int *tokens, int T,
                      ThreadPool *pool) {
    memset(r, 0, sizeof *r);
    const Config *c = &m->c;
    if (T <= 0) return ct_error("replacement model: empty prompt (0 tokens)");
    if (T > c->seq_len)
        return ct_error("replacement model: the prompt has %d tokens, the model's context (seq_len) is %d",
                        T, c->seq_len);
    if (clt_check_model(clt, c->n_layers, c->dim) != CT_OK) return CT_ERR;
    // The linear model assumes the transcoder reads and writes the architecture's sites
    // (model.h: resid_mid and the MLP output; Gemma-2: the pre-FFN norm's normalised input and
    // the post-MLP norm's output, as circuit-tracer's Gemma transcoders); a transcoder trained
    // on another site would give wrong edges.
    const char *path = clt->path ? clt->path : "transcoder";
    if (c->post_norms) {
        if (clt->input_hook && !strstr(clt->input_hook, "hook_normalized"))
            return ct_error("%s: feature_input_hook is '%s'; for %s attribution supports transcoders reading "
                            "ln2.hook_normalized (the pre-FFN norm's normalised input, before its gain)", path,
                            clt->input_hook, model_arch_name(c->arch));
        if (clt->output_hook && !strstr(clt->output_hook, "hook_mlp_out"))
            return ct_error("%s: feature_output_hook is '%s'; for %s attribution supports transcoders writing "
                            "hook_mlp_out (the output of the post-MLP norm)", path, clt->output_hook,
                            model_arch_name(c->arch));
    } else {
        if (clt->input_hook && !strstr(clt->input_hook, "resid_mid"))
            return ct_error("%s: feature_input_hook is '%s'; attribution supports transcoders reading "
                            "hook_resid_mid (the residual before the FFN norm)", path, clt->input_hook);
        if (clt->output_hook && !strstr(clt->output_hook, "mlp_out") && !strstr(clt->output_hook, "mlp.hook_out"))
            return ct_error("%s: feature_output_hook is '%s'; attribution supports transcoders writing "
                            "hook_mlp_out (the MLP output)", path, clt->output_hook);
    }
    r->m = m;
    r->clt = clt;
    r->L = c->n_layers;
    r->T = T;
    r->D = c->dim;
    r->F = clt->F;
    r->V = c->vocab_size;
    size_t L = (size_t)r->L, D = (size_t)r->D, F = (size_t)r->F, Tz = (size_t)T;

    r->tokens = malloc(Tz * sizeof(int));
    r->logits = malloc((size_t)r->V * sizeof(float));
    r->lp_start = calloc(L * Tz + 1, sizeof(int));
    r->recon = malloc(L * Tz * D * sizeof(float));
    r->eps = malloc(L * Tz * D * sizeof(float));
    if (!r->tokens || !r->logits || !r->lp_start || !r->recon || !r->eps) {
        replacement_free(r);
        return ct_error("replacement model: out of memory (T = %d, L = %d, D = %d)", T, r->L, r->D);
    }
    memcpy(r->tokens, tokens, Tz * sizeof(int));

    // 1. the real forward pass, capturing everything the linear model freezes
    RunState rs;
    if (capture_init(&r->cap, c, T, CAP_ALL) != CT_OK) goto fail;
    if (runstate_init(&rs, c, T) != CT_OK) goto fail;
    if (model_forward_seq(m, &rs, tokens, T, NULL, &r->cap, pool) != CT_OK) {
        runstate_free(&rs);
        goto fail;
    }
    memcpy(r->logits, rs.logits, (size_t)r->V * sizeof(float));  // last position (see forward.c)
    runstate_free(&rs);

    // 2. encode every layer; collect the active features in (l, p, f) order
    {
        float *X = malloc(Tz * D * sizeof(float));
        float *act = calloc(Tz * F, sizeof(float));
        size_t cap_n = 1024, n = 0;
        int *al = malloc(cap_n * sizeof(int)), *ap = malloc(cap_n * sizeof(int)), *af = malloc(cap_n * sizeof(int));
        float *av = malloc(cap_n * sizeof(float));
        int ok = X && act && al && ap && af && av;
        int nt = pool_size(pool);
        for (size_t l = 0; ok && l < L; l++) {
            for (size_t p = 0; p < Tz; p++)
                memcpy(X + p * D, r->cap.resid_mid + (p * L + l) * D, D * sizeof(float));
            EncJob ej = {r, (int)l, X, act};
            if (nt > 1 && T > 2) pool_run(pool, enc_task, &ej, nt);
            else enc_task(&ej, 0, 1);
            for (size_t p = 0; ok && p < Tz; p++) {
                r->lp_start[l * Tz + p] = (int)n;
                if (p == 0) continue;  // BOS features: inactive
                const float *a = act + p * F;
                for (size_t f = 0; f < F; f++) {
                    if (a[f] == 0.0f) continue;
                    if (n == cap_n) {
                        cap_n *= 2;
                        int *nl = realloc(al, cap_n * sizeof(int)), *np = realloc(ap, cap_n * sizeof(int)),
                            *nf = realloc(af, cap_n * sizeof(int));
                        float *nv = realloc(av, cap_n * sizeof(float));
                        if (nl) al = nl;
                        if (np) ap = np;
                        if (nf) af = nf;
                        if (nv) av = nv;
                        if (!nl || !np || !nf || !nv || n >= (size_t)0x7fffffff) { ok = 0; break; }
                    }
                    al[n] = (int)l, ap[n] = (int)p, af[n] = (int)f, av[n] = a[f];
                    n++;
                }
            }
        }
        r->lp_start[L * Tz] = (int)n;
        free(X);
        free(act);
        r->act_layer = al, r->act_pos = ap, r->act_feat = af, r->act_val = av;
        r->n_active = (int)n;
        if (!ok) {
            ct_error("replacement model: out of memory collecting active features (%zu so far)", n);
            goto fail;
        }
    }

    // 3. reconstruction and error vectors
    {
        int nt = pool_size(pool);
        float **row = calloc((size_t)nt, sizeof(float *)), **tmp = calloc((size_t)nt, sizeof(float *));
        int ok = row && tmp;
        for (int i = 0; ok && i < nt; i++) {
            row[i] = malloc(D * sizeof(float));
            tmp[i] = malloc(D * sizeof(float));
            ok = row[i] && tmp[i];
        }
        if (ok) {
            RecJob rj = {r, row, tmp};
            if (nt > 1 && T > 1) pool_run(pool, rec_task, &rj, nt);
            else rec_task(&rj, 0, 1);
        }
        for (int i = 0; row && tmp && i < nt; i++) free(row[i]), free(tmp[i]);
        free(row);
        free(tmp);
        if (!ok) {
            ct_error("replacement model: out of memory for reconstruction scratch");
            goto fail;
        }
    }
    return CT_OK;
fail:
    replacement_free(r);
    return CT_ERR;
}

void replacement_free(Replacement *r) {
    capture_free(&r->cap);
    free(r->tokens);
    free(r->logits);
    free(r->act_layer);
    free(r->act_pos);
    free(r->act_feat);
    free(r->act_val);
    free(r->lp_start);
    free(r->recon);
    free(r->eps);
    memset(r, 0, sizeof *r);
}

int replacement_find(const Replacement *r, int l, int p, int f) {
    if (l < 0 || l >= r->L || p < 0 || p >= r->T) return -1;
    int lo = r->lp_start[(size_t)l * r->T + p], hi = r->lp_start[(size_t)l * r->T + p + 1];
    while (lo < hi) {  // features of one (l, p) are ascending
        int mid = lo + (hi - lo) / 2;
        if (r->act_feat[mid] < f) lo = mid + 1;
        else hi = mid;
    }
    return (lo < r->lp_start[(size_t)l * r->T + p + 1] && r->act_feat[lo] == f) ? lo : -1;
}
