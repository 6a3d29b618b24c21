// attribute_sweep.h — the backward sweep of engine/attribute.c, written once and instantiated
// twice (fp32 through the kernel table, fp64 with double loops).  Not a public header: it is
// included by attribute.c with
//     REAL      float | double
//     SFX(x)    x##_f32 | x##_f64
//     MM, AXPY_INL, DOT   the primitives for REAL (see attribute.c)
// after struct Sweeper and SweepJob are defined.  The algorithm and shapes are in attribute.h.

// Gather the source block of (layer l, position p) into S (n, D): row 0 = eps_l(p), then the
// decoder rows W_dec[l_s][f][l - l_s] of the active features (l_s <= l, p, f) in (l_s, f)
// order (a PLT: l_s = l only).  Returns n.
static int SFX(gather_sources)(const Sweeper *sw, int l, int p, REAL *S, float *tmp) {
    const Replacement *r = sw->r;
    const Clt *c = r->clt;
    size_t D = (size_t)sw->D, T = (size_t)sw->T;
    const float *e = r->eps + ((size_t)l * T + (size_t)p) * D;
    for (size_t i = 0; i < D; i++) S[i] = (REAL)e[i];
    int n = 1;
    int ls0 = c->kind == CLT_PER_LAYER ? l : 0;
    for (int ls = ls0; ls <= l; ls++) {
        int s0 = r->lp_start[(size_t)ls * T + (size_t)p], s1 = r->lp_start[(size_t)ls * T + (size_t)p + 1];
        for (int s = s0; s < s1; s++, n++) {
            const float *row = clt_decoder_row_f32(c, ls, r->act_feat[s], l);
            if (!row) {  // decoder kept in its stored dtype: convert this row
                clt_decoder_row(c, ls, r->act_feat[s], l, tmp);
                row = tmp;
            }
            REAL *dst = S + (size_t)n * D;
            for (size_t i = 0; i < D; i++) dst[i] = (REAL)row[i];
        }
    }
    return n;
}

// Step 1 of layer l, positions [p0, p1) of this task: read the sources of layer l, apply the
// skip transpose, inject this layer's feature targets, and form GO = G Wo.
static void SFX(pos_task)(void *ctx, int task, int ntasks) {
    SweepJob *j = ctx;
    const Sweeper *sw = j->sw;
    const Replacement *r = sw->r;
    const Clt *c = r->clt;
    int l = j->l, nr = j->nr, na = j->na, B = sw->B;
    size_t D = (size_t)sw->D, Dq = (size_t)sw->Dq, T = (size_t)sw->T;
    size_t p0 = pool_split((size_t)j->P, task, ntasks), p1 = pool_split((size_t)j->P, task + 1, ntasks);
    REAL *G = (REAL *)sw->G, *GO = (REAL *)sw->GO;
    REAL *S = (REAL *)sw->S[task], *Y = (REAL *)sw->Y[task], *GX = (REAL *)sw->GX[task];
    const REAL *WoT = (const REAL *)sw->WoT + (size_t)l * Dq * D;
    REAL *const *rows = (REAL *const *)j->rows;
    size_t err_col = (size_t)r->n_active + (size_t)l * T;
    for (size_t p = p0; p < p1; p++) {
        REAL *Gp = G + p * (size_t)B * D;
        if (nr > 0) {
            // sources: Y (nr, n) = Gp (nr, D) S^T
            int n = SFX(gather_sources)(sw, l, (int)p, S, sw->tmp[task]);
            MM(Y, S, Gp, (size_t)nr, (size_t)n, D);
            int ls0 = c->kind == CLT_PER_LAYER ? l : 0;
            for (int b = 0; b < nr; b++) {
                const REAL *y = Y + (size_t)b * (size_t)n;
                REAL *row = rows[b];
                row[err_col + p] = y[0];
                int k = 1;
                for (int ls = ls0; ls <= l; ls++) {
                    int s0 = r->lp_start[(size_t)ls * T + p], s1 = r->lp_start[(size_t)ls * T + p + 1];
                    for (int s = s0; s < s1; s++, k++) row[s] += (REAL)r->act_val[s] * y[k];
                }
            }
            if (sw->WskT) {  // mlp_out[l] = const + W_skip x_l: g_x += g W_skip
                const REAL *WsT = (const REAL *)sw->WskT + (size_t)l * D * D;
                MM(GX, WsT, Gp, (size_t)nr, D, D);
                for (size_t i = 0; i < (size_t)nr * D; i++) Gp[i] += GX[i];
            }
        }
        // this layer's feature targets: the encoder row at resid_mid[l](p)
        for (int b = nr; b < na; b++)
            if (j->tpos[b] == (int)p) {
                const REAL *v = (const REAL *)j->tvec + (size_t)b * D;
                REAL *g = Gp + (size_t)b * D;
                for (size_t i = 0; i < D; i++) g[i] += v[i];
            }
        MM(GO + p * (size_t)B * Dq, WoT, Gp, (size_t)na, Dq, D);
    }
}

// Step 2 of layer l, positions t = task, task + ntasks, ... (interleaved: position t costs
// P - t): mix GO back through the frozen patterns (A^T), then through Wv and the frozen norm.
static void SFX(mix_task)(void *ctx, int task, int ntasks) {
    SweepJob *j = ctx;
    const Sweeper *sw = j->sw;
    const Replacement *r = sw->r;
    int l = j->l, na = j->na, B = sw->B, H = sw->H, Dh = sw->Dh, grp = sw->H / sw->Hkv;
    size_t D = (size_t)sw->D, Dq = (size_t)sw->Dq, Dkv = (size_t)sw->Dkv, T = (size_t)sw->T;
    size_t Tc = (size_t)r->cap.T;
    REAL *G = (REAL *)sw->G;
    const REAL *GO = (const REAL *)sw->GO;
    REAL *GV = (REAL *)sw->GV[task], *GX = (REAL *)sw->GX[task];
    const REAL *WvT = (const REAL *)sw->WvT + (size_t)l * D * Dkv;
    const float *att = r->cap.att + (size_t)l * (size_t)H * Tc * Tc;  // (H, Tc, Tc)
    for (int t = task; t < j->P; t += ntasks) {
        memset(GV, 0, (size_t)na * Dkv * sizeof(REAL));
        for (int p = t; p < j->P; p++) {
            const REAL *GOp = GO + (size_t)p * (size_t)B * Dq;
            for (int h = 0; h < H; h++) {
                REAL a = (REAL)att[((size_t)h * Tc + (size_t)p) * Tc + (size_t)t];
                if (a == 0) continue;
                size_t kv = (size_t)(h / grp) * (size_t)Dh;
                for (int b = 0; b < na; b++)
                    AXPY_INL(GV + (size_t)b * Dkv + kv, a, GOp + (size_t)b * Dq + (size_t)h * (size_t)Dh, (size_t)Dh);
            }
        }
        MM(GX, WvT, GV, (size_t)na, D, Dkv);
        const REAL *coef = (const REAL *)sw->gain_att + ((size_t)l * T + (size_t)t) * D;
        REAL *Gt = G + (size_t)t * (size_t)B * D;
        for (int b = 0; b < na; b++) {
            REAL *g = Gt + (size_t)b * D;
            const REAL *x = GX + (size_t)b * D;
            for (size_t i = 0; i < D; i++) g[i] += coef[i] * x[i];
        }
    }
}

// Token nodes: <G(p), token_embedding[tok_p]> for every row, positions [p0, p1).
static void SFX(tok_task)(void *ctx, int task, int ntasks) {
    SweepJob *j = ctx;
    const Sweeper *sw = j->sw;
    size_t D = (size_t)sw->D, B = (size_t)sw->B;
    size_t p0 = pool_split((size_t)j->P, task, ntasks), p1 = pool_split((size_t)j->P, task + 1, ntasks);
    const REAL *G = (const REAL *)sw->G, *E = (const REAL *)sw->emb;
    REAL *const *rows = (REAL *const *)j->rows;
    size_t tok_col = (size_t)sw->r->n_active + (size_t)sw->L * (size_t)sw->T;
    for (size_t p = p0; p < p1; p++)
        for (int b = 0; b < j->nb; b++) rows[b][tok_col + p] = DOT(G + (p * B + (size_t)b) * D, E + p * D, D);
}

// One sweep of nb <= B targets already sorted by injection layer, descending (logits first):
// tl/tpos (nb), tvec (nb, D) REAL injection vectors (logit rows: already through the final
// norm), rows (nb) REAL output rows of sweeper_ncols() entries (zeroed here).
static void SFX(sweep)(Sweeper *sw, int nb, const int *tl, const int *tpos, const REAL *tvec,
                       REAL *const *rows) {
    size_t D = (size_t)sw->D, B = (size_t)sw->B;
    int L = sw->L, P = 0;
    for (int b = 0; b < nb; b++) {
        if (tpos[b] + 1 > P) P = tpos[b] + 1;
        memset(rows[b], 0, sw->ncols * sizeof(REAL));
    }
    REAL *G = (REAL *)sw->G;
    memset(G, 0, (size_t)P * B * D * sizeof(REAL));
    for (int b = 0; b < nb && tl[b] == L; b++)  // logit rows: after the final norm
        memcpy(G + ((size_t)tpos[b] * B + (size_t)b) * D, tvec + (size_t)b * D, D * sizeof(REAL));
    SweepJob j = {sw, 0, P, nb, 0, 0, tpos, tvec, (void *const *)rows};
    int nt = sw->nt;
    for (int l = L - 1; l >= 0; l--) {
        int nr = 0, na = 0;
        while (nr < nb && tl[nr] > l) nr++;
        na = nr;
        while (na < nb && tl[na] >= l) na++;
        if (na == 0) continue;  // every target sits below this layer
        j.l = l, j.nr = nr, j.na = na;
        if (nt > 1) {
            pool_run(sw->pool, SFX(pos_task), &j, nt);
            pool_run(sw->pool, SFX(mix_task), &j, nt);
        } else {
            SFX(pos_task)(&j, 0, 1);
            SFX(mix_task)(&j, 0, 1);
        }
    }
    if (nt > 1) pool_run(sw->pool, SFX(tok_task), &j, nt);
    else SFX(tok_task)(&j, 0, 1);
}
