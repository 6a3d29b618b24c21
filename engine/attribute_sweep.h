// attribute_sweep.h — the backward sweep of engine/attribute.c, written once and instantiated
// twice (fp32 through the kernel table, fp64 with double loops).  Not a public header: it is
// included by attribute.c with
//     REAL      float | double
//     SFX(x)    x##_f32 | x##_f64
//     MM, AXPY, AXPYV, DOT, LOADF   the primitives for REAL (see attribute.c)
// after struct Sweeper and SweepJob are defined.  The algorithm and shapes are in attribute.h.
//
// Slots.  A row b (target at layer l_b, position p_b) has a nonzero gradient at position p only
// for p <= p_b and only from layer l_b down.  Each position keeps its own list of the rows
// alive there: G[p] is (B, D) but only slots [0, n_slot[p]) are used, slot_row[p][s] = b and
// row_slot[p][b] = s (-1 when b is not alive at p).  A row is appended to the lists of
// positions 0..p_b when the sweep reaches its layer, so no product ever touches a row that is
// still zero, whatever mix of layers and positions a batch holds.  Each row's numbers do not
// depend on its slot (matmul rows are independent; every sum runs in a fixed order), so a row
// is bit-identical in any batch.

// The sources of (layer l, position p), in (l_s, f) order: the active features (l_s <= l, p, f)
// (a PLT: l_s = l only); their indices into fidx.  Returns the count.  (Row 0 of every source
// block is the error eps_l(p), added by the caller.)
static int SFX(list_sources)(const Sweeper *sw, int l, int p, int *fidx) {
    const Replacement *r = sw->r;
    size_t T = (size_t)sw->T;
    int n = 0;
    for (int ls = r->clt->kind == CLT_PER_LAYER ? l : 0; ls <= l; ls++)
        for (int f = r->lp_start[(size_t)ls * T + (size_t)p]; f < r->lp_start[(size_t)ls * T + (size_t)p + 1]; f++)
            fidx[n++] = f;
    return n;
}

// Gather source rows k0..k1-1 of the block (k = 0: eps_l(p); k >= 1: the decoder row
// W_dec[l_s][f][l - l_s] of feature fidx[k-1]) into S (k1 - k0, D).
static void SFX(gather_sources)(const Sweeper *sw, int l, int p, const int *fidx, int k0, int k1, REAL *S,
                                float *tmp) {
    const Replacement *r = sw->r;
    const Clt *c = r->clt;
    size_t D = (size_t)sw->D;
    for (int k = k0; k < k1; k++) {
        REAL *dst = S + (size_t)(k - k0) * D;
        if (k == 0) {
            LOADF(dst, r->eps + ((size_t)l * (size_t)sw->T + (size_t)p) * D, D);
            continue;
        }
        int f = fidx[k - 1], ls = r->act_layer[f];
        const float *row = clt_decoder_row_f32(c, ls, r->act_feat[f], l);
        if (!row) {  // decoder kept in its stored dtype: convert this row
            clt_decoder_row(c, ls, r->act_feat[f], l, tmp);
            row = tmp;
        }
        LOADF(dst, row, D);
    }
}

// Step 1 of layer l, positions p = task, task + ntasks, ... (interleaved: low positions hold
// more alive rows): read the sources of layer l for the
// rows alive above it (slots [0, nr)), apply the skip transpose, inject this layer's feature
// targets (slots [nr, na)), and form GO = G Wo for every alive slot.
static void SFX(pos_task)(void *ctx, int task, int ntasks) {
    SweepJob *j = ctx;
    const Sweeper *sw = j->sw;
    const Replacement *r = sw->r;
    int l = j->l, B = sw->B;
    size_t D = (size_t)sw->D, Dq = (size_t)sw->Dq, T = (size_t)sw->T;
    REAL *G = (REAL *)sw->G, *GO = (REAL *)sw->GO;
    REAL *S = (REAL *)sw->S[task], *Y = (REAL *)sw->Y[task], *GX = (REAL *)sw->GX[task];
    const REAL *WoT = (const REAL *)sw->WoT + (size_t)l * Dq * D;
    REAL *const *rows = (REAL *const *)j->rows;
    size_t err_col = (size_t)r->n_active + (size_t)l * T;
    for (size_t p = (size_t)task; p < (size_t)j->P; p += (size_t)ntasks) {
        int nr = j->nr_slot[p], na = j->n_slot[p];
        if (na == 0) continue;
        // d x_l / d resid_mid: 1, or for Gemma-2 (x_l = the pre-FFN norm's normalised input)
        // the frozen 1/rms of (p, l)
        REAL sf = sw->post ? (REAL)r->cap.inv_rms_ffn[p * (size_t)sw->L + (size_t)l] : (REAL)1;
        const int *srow = j->slot_row + p * (size_t)B;
        REAL *Gp = G + p * (size_t)B * D;
        if (nr > 0) {
            // sources: Y (nr, c) = Gp[0:nr] (nr, D) S^T, S gathered in chunks of SRC_CHUNK rows
            // (they stay in L2 between the copy and the product)
            int *fidx = sw->fidx[task];
            int n = 1 + SFX(list_sources)(sw, l, (int)p, fidx);
            for (int k0 = 0; k0 < n; k0 += sw->src_chunk) {
                int k1 = k0 + sw->src_chunk < n ? k0 + sw->src_chunk : n, c = k1 - k0;
                SFX(gather_sources)(sw, l, (int)p, fidx, k0, k1, S, sw->tmp[task]);
                MM(Y, S, Gp, (size_t)nr, (size_t)c, D);
                for (int s = 0; s < nr; s++) {
                    const REAL *y = Y + (size_t)s * (size_t)c;
                    REAL *row = rows[srow[s]];
                    int k = k0;
                    if (k == 0) row[err_col + p] = y[k++ - k0];
                    for (; k < k1; k++) {
                        int f = fidx[k - 1];
                        row[f] += (REAL)r->act_val[f] * y[k - k0];
                    }
                }
            }
            if (sw->WskT) {  // mlp_out[l] = const + W_skip x_l: g_x += g W_skip (times dx_l/dresid)
                const REAL *WsT = (const REAL *)sw->WskT + (size_t)l * D * D;
                MM(GX, WsT, Gp, (size_t)nr, D, D);
                AXPY(Gp, sf, GX, (size_t)nr * D);
            }
        }
        // this layer's feature targets: the encoder row at the transcoder input x_l(p)
        for (int s = nr; s < na; s++) {
            int b = srow[s];
            if (j->tpos[b] != (int)p) continue;
            AXPY(Gp + (size_t)s * D, sf, (const REAL *)j->tvec + (size_t)b * D, D);
        }
        REAL *GOp = GO + p * (size_t)B * Dq;
        MM(GOp, WoT, Gp, (size_t)na, Dq, D);
        if (sw->post) {   // Gemma-2: the post-attention norm's frozen factor (its gain is in WoT)
            REAL ipa = (REAL)r->cap.inv_post_att[p * (size_t)sw->L + (size_t)l];
            for (size_t e = 0; e < (size_t)na * Dq; e++) GOp[e] *= ipa;
        }
    }
}

// LayerNorm's (linear) mean subtraction, transposed: the centring projection is symmetric, so
// each gradient row loses its mean.  The mean is summed in double, in index order.
static void SFX(center_rows)(REAL *X, size_t n, size_t D) {
    for (size_t r = 0; r < n; r++) {
        REAL *x = X + r * D;
        double mean = 0;
        for (size_t i = 0; i < D; i++) mean += (double)x[i];
        REAL mu = (REAL)(mean / (double)D);
        for (size_t i = 0; i < D; i++) x[i] -= mu;
    }
}

// Step 2 of layer l: mix GO back through the frozen patterns (A^T), then through Wv (gain
// folded in) and the frozen 1/rms.  Work comes in blocks of MIX_TB positions t (blocks
// interleaved over tasks: low positions cost more).  Inside a block the later positions p
// come MIX_PC at a time: their coefficients first, coef(h, p, t) repeated over head h's dims
// (0 where t > p), then for each gradient row alive at the chunk's first p (a row alive at p
// is alive at every position before it) one AXPYV adds its GO rows of the chunk's p, head
// index hh by head index (GO's columns are grouped by hh: WoT's row order), into its gv rows
// of the block's t, the sums held in registers.  Per entry the sum runs over p ascending, then
// hh: a fixed order.  A zero coefficient adds +-0, which changes no sum (a sum that starts at
// +0 never becomes -0).
static void SFX(mix_task)(void *ctx, int task, int ntasks) {
    SweepJob *j = ctx;
    const Sweeper *sw = j->sw;
    const Replacement *r = sw->r;
    int l = j->l, B = sw->B, Hkv = sw->Hkv, Dh = sw->Dh, grp = sw->H / sw->Hkv, P = j->P;
    size_t D = (size_t)sw->D, Dq = (size_t)sw->Dq, Dkv = (size_t)sw->Dkv;
    size_t Tc = (size_t)r->cap.T, BDkv = (size_t)B * Dkv, ct = MIX_TB * Dkv;   // cf: ct per (p, hh)
    REAL *G = (REAL *)sw->G;
    const REAL *GO = (const REAL *)sw->GO;
    REAL *GVb = (REAL *)sw->GV[task], *GX = (REAL *)sw->GX[task];
    REAL *cf = (REAL *)sw->AH[task];               // (MIX_PC, grp, MIX_TB, Dkv)
    const REAL **xp = (const REAL **)sw->XP[task];  // (MIX_PC grp)
    const REAL *WvT = (const REAL *)sw->WvT + (size_t)l * D * Dkv;
    const float *att = r->cap.att + (size_t)l * (size_t)sw->H * Tc * Tc;  // (H, Tc, Tc)
    int nblk = (P + MIX_TB - 1) / MIX_TB;
    for (int blk = task; blk < nblk; blk += ntasks) {
        int t0 = blk * MIX_TB, t1 = t0 + MIX_TB < P ? t0 + MIX_TB : P;
        for (int t = t0; t < t1; t++) memset(GVb + (size_t)(t - t0) * BDkv, 0, (size_t)j->n_slot[t] * Dkv * sizeof(REAL));
        for (int c0 = t0; c0 < P; c0 += MIX_PC) {
            int c1 = c0 + MIX_PC < P ? c0 + MIX_PC : P;
            for (int p = c0; p < c1; p++)
                for (int hh = 0; hh < grp; hh++)
                    for (int t = t0; t < t1; t++) {
                        REAL *c = cf + ((size_t)((p - c0) * grp + hh) * MIX_TB + (size_t)(t - t0)) * Dkv;
                        for (int kvh = 0; kvh < Hkv; kvh++) {
                            size_t h = (size_t)(kvh * grp + hh);
                            REAL a = t <= p ? (REAL)att[(h * Tc + (size_t)p) * Tc + (size_t)t] : (REAL)0;
                            for (int e = 0; e < Dh; e++) c[(size_t)kvh * (size_t)Dh + (size_t)e] = a;
                        }
                    }
            for (int s0 = 0; s0 < j->n_slot[c0]; s0++) {
                int b = j->slot_row[(size_t)c0 * (size_t)B + (size_t)s0], nt = 0, k = 0;
                REAL *gv[MIX_TB];   // the row's gv(t) for t = t0 .. t0+nt-1 (alive there)
                for (int t = t0; t < t1; t++) {
                    int st = j->row_slot[(size_t)t * (size_t)B + (size_t)b];
                    if (st < 0) break;
                    gv[nt++] = GVb + (size_t)(t - t0) * BDkv + (size_t)st * Dkv;
                }
                for (int p = c0; p < c1; p++) {
                    int sp = j->row_slot[(size_t)p * (size_t)B + (size_t)b];
                    if (sp < 0) break;   // beyond the row's target: so are the later p
                    const REAL *go = GO + ((size_t)p * (size_t)B + (size_t)sp) * Dq;
                    for (int hh = 0; hh < grp; hh++) xp[k++] = go + (size_t)hh * Dkv;
                }
                AXPYV(gv, (size_t)nt, cf, Dkv, ct, xp, (size_t)k, Dkv);
            }
        }
        for (int t = t0; t < t1; t++) {
            int na = j->n_slot[t];
            if (na == 0) continue;
            // WvT carries the norm gain rms_att[l]; the frozen 1/rms of (t, l) is one scalar
            MM(GX, WvT, GVb + (size_t)(t - t0) * BDkv, (size_t)na, D, Dkv);
            if (sw->center) SFX(center_rows)(GX, (size_t)na, D);   // LayerNorm: the mean subtraction
            REAL inv = (REAL)r->cap.inv_rms_att[(size_t)t * (size_t)sw->L + (size_t)l];
            AXPY(G + (size_t)t * (size_t)B * D, inv, GX, (size_t)na * D);
        }
    }
}

// Token nodes: <G(p), emb(p)> for every alive row, positions interleaved; emb(p) is the
// embedding output (model_embed: scaled for Gemma-2, with the position embedding for GPT-2).
static void SFX(tok_task)(void *ctx, int task, int ntasks) {
    SweepJob *j = ctx;
    const Sweeper *sw = j->sw;
    size_t D = (size_t)sw->D, B = (size_t)sw->B;
    const REAL *G = (const REAL *)sw->G, *E = (const REAL *)sw->emb;
    REAL *const *rows = (REAL *const *)j->rows;
    size_t tok_col = (size_t)sw->r->n_active + (size_t)sw->L * (size_t)sw->T;
    for (size_t p = (size_t)task; p < (size_t)j->P; p += (size_t)ntasks)
        for (int s = 0; s < j->n_slot[p]; s++)
            rows[j->slot_row[p * B + (size_t)s]][tok_col + p] = DOT(G + (p * B + (size_t)s) * D, E + p * D, D);
}

// One sweep of nb <= B targets: tl/tpos (nb) injection layer (logits: L) and position,
// tvec (nb, D) REAL injection vectors (logit rows: already through the final norm), rows (nb)
// REAL output rows of sweeper_ncols() entries (zeroed here).
static void SFX(sweep)(Sweeper *sw, int nb, const int *tl, const int *tpos, const REAL *tvec,
                       REAL *const *rows) {
    size_t D = (size_t)sw->D, B = (size_t)sw->B;
    int L = sw->L, P = 0, lmax = -1;
    for (int b = 0; b < nb; b++) {
        if (tpos[b] + 1 > P) P = tpos[b] + 1;
        if (tl[b] > lmax) lmax = tl[b];
        memset(rows[b], 0, sw->ncols * sizeof(REAL));
    }
    REAL *G = (REAL *)sw->G;
    memset(G, 0, (size_t)P * B * D * sizeof(REAL));
    int *n_slot = sw->n_slot, *nr_slot = sw->nr_slot, *slot_row = sw->slot_row, *row_slot = sw->row_slot;
    memset(n_slot, 0, (size_t)P * sizeof(int));
    for (size_t i = 0; i < (size_t)P * B; i++) row_slot[i] = -1;
    SweepJob j = {sw, 0, P, nb, n_slot, nr_slot, slot_row, row_slot, tpos, tvec, (void *const *)rows};
    // Rows become alive at their layer, in batch order: append them to positions 0..p_b.
    // Logit rows (layer L) start alive, their vector already at the final residual.
    for (int l = lmax; l >= 0; l--) {
        for (int p = 0; p < P; p++) nr_slot[p] = n_slot[p];
        for (int b = 0; b < nb; b++) {
            if (tl[b] != l) continue;
            for (int p = 0; p <= tpos[b]; p++) {
                int s = n_slot[p]++;
                slot_row[(size_t)p * B + (size_t)s] = b;
                row_slot[(size_t)p * B + (size_t)b] = s;
            }
            if (l == L) {
                size_t s = (size_t)row_slot[(size_t)tpos[b] * B + (size_t)b];
                memcpy(G + ((size_t)tpos[b] * B + s) * D, tvec + (size_t)b * D, D * sizeof(REAL));
            }
        }
        if (l == L) continue;
        j.l = l;
        if (sw->nt > 1) {
            pool_run(sw->pool, SFX(pos_task), &j, sw->nt);
            pool_run(sw->pool, SFX(mix_task), &j, sw->nt);
        } else {
            SFX(pos_task)(&j, 0, 1);
            SFX(mix_task)(&j, 0, 1);
        }
    }
    if (sw->nt > 1) pool_run(sw->pool, SFX(tok_task), &j, sw->nt);
    else SFX(tok_task)(&j, 0, 1);
}
