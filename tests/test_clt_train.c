// test_clt_train.c — the transcoder trainer and its measurements:
//   - the fp64 loss/gradient reference against central finite differences (every parameter of
//     a tiny CLT and PLT; the JumpReLU threshold through its ramp surrogate),
//   - the fp32 production gradient against the fp64 reference, and thread-count independence,
//   - a short training run on stories260K lowers the loss and reaches an NMSE bound,
//   - checkpoint/resume gives byte-identical files,
//   - clt-eval numbers against independent computations (zero CLT, oracle splice),
//   - corpus sampling is deterministic, and bad inputs fail with clear messages.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/clt_train.h"
#include "tests/lib/testutil.h"

// ---- gradient: fp64 reference vs finite differences -------------------------------------------

typedef struct Problem {
    CltParamLayout lay;
    int B;
    double *P, *X, *Y;
    CltLossHyper hp;
} Problem;

static void problem_free(Problem *p) {
    free(p->P);
    free(p->X);
    free(p->Y);
    clt_layout_free(&p->lay);
}

// Smallest distance of any pre-activation to a kink of the loss (the JumpReLU jump, the
// preact ReLU, the STE window edges), over the whole batch.
static double kink_margin(const Problem *p) {
    const CltParamLayout *lay = &p->lay;
    int L = lay->L, D = lay->D, F = lay->F;
    double m = INFINITY;
    for (int b = 0; b < p->B; b++)
        for (int l = 0; l < L; l++)
            for (int i = 0; i < F; i++) {
                double h = p->P[clt_layout_off(lay, l, CP_B_ENC) + i];
                for (int d = 0; d < D; d++)
                    h += p->P[clt_layout_off(lay, l, CP_W_ENC) + (size_t)i * D + d] * p->X[((size_t)b * L + l) * D + d];
                double th = exp(p->P[clt_layout_off(lay, l, CP_LOG_THETA) + i]);
                double k[3] = {fabs(h - th), fabs(h - th - p->hp.eps / 2), fabs(h - th + p->hp.eps / 2)};
                for (int j = 0; j < 3; j++) m = k[j] < m ? k[j] : m;
            }
    return m;
}

// Count entry kinds so the tests are not vacuous: active outside the window, active inside,
// inactive inside the window, inactive outside.
static void entry_kinds(const Problem *p, int counts[4]) {
    const CltParamLayout *lay = &p->lay;
    int L = lay->L, D = lay->D, F = lay->F;
    memset(counts, 0, 4 * sizeof(int));
    for (int b = 0; b < p->B; b++)
        for (int l = 0; l < L; l++)
            for (int i = 0; i < F; i++) {
                double h = p->P[clt_layout_off(lay, l, CP_B_ENC) + i];
                for (int d = 0; d < D; d++)
                    h += p->P[clt_layout_off(lay, l, CP_W_ENC) + (size_t)i * D + d] * p->X[((size_t)b * L + l) * D + d];
                double th = exp(p->P[clt_layout_off(lay, l, CP_LOG_THETA) + i]);
                int act = h > th, win = fabs(h - th) < p->hp.eps / 2;
                counts[act ? (win ? 1 : 0) : (win ? 2 : 3)]++;
            }
}

// A random problem whose pre-activations all keep at least `margin` from every kink.
// Values are rounded to float so the fp32 code sees exactly the same inputs.
static void problem_make(Problem *p, int L, int D, int F, int plt, int B, double margin, uint64_t seed0) {
    cr_assert_eq(clt_layout_init(&p->lay, L, D, F, plt), CT_OK, "%s", ct_errmsg());
    p->B = B;
    p->hp = (CltLossHyper){.lambda = 0.3, .c = 4.0, .lambda_p = 0.05, .eps = 0.6};
    p->P = calloc(p->lay.n, sizeof(double));
    p->X = malloc((size_t)B * L * D * sizeof(double));
    p->Y = malloc((size_t)B * L * D * sizeof(double));
    for (uint64_t seed = seed0; seed < seed0 + 1000; seed++) {
        TuRng r;
        tu_rng_seed(&r, seed);
        for (int l = 0; l < L; l++) {
            int no = clt_layout_nout(&p->lay, l);
            for (int i = 0; i < F; i++) {
                for (int d = 0; d < D; d++)
                    p->P[clt_layout_off(&p->lay, l, CP_W_ENC) + (size_t)i * D + d] = (float)(tu_rng_normal(&r) * 0.5);
                p->P[clt_layout_off(&p->lay, l, CP_B_ENC) + i] = (float)(tu_rng_normal(&r) * 0.3);
                p->P[clt_layout_off(&p->lay, l, CP_LOG_THETA) + i] = (float)log(0.2 + 0.4 * tu_rng_uniform(&r));
                for (int k = 0; k < no * D; k++)
                    p->P[clt_layout_off(&p->lay, l, CP_W_DEC) + (size_t)i * no * D + k] = (float)(tu_rng_normal(&r) * 0.3);
            }
            for (int d = 0; d < D; d++) p->P[clt_layout_off(&p->lay, l, CP_B_DEC) + d] = (float)(tu_rng_normal(&r) * 0.1);
        }
        for (size_t k = 0; k < (size_t)B * L * D; k++) {
            p->X[k] = (float)tu_rng_normal(&r);
            p->Y[k] = (float)tu_rng_normal(&r);
        }
        if (kink_margin(p) > margin) return;
    }
    cr_assert_fail("no random problem kept its pre-activations %g away from the kinks", margin);
}

// Central differences of the surrogate loss (threshold held at the evaluation point inside
// the JumpReLU, moved inside the eps-wide ramp) against the analytic reference gradient.
static void check_fd(int plt) {
    Problem p;
    problem_make(&p, 3, 4, 5, plt, 7, 2e-3, 100 + plt);
    int kinds[4];
    entry_kinds(&p, kinds);
    cr_assert(kinds[0] > 0 && kinds[1] > 0 && kinds[2] > 0 && kinds[3] > 0,
              "degenerate problem: active/out %d, active/in %d, inactive/in %d, inactive/out %d",
              kinds[0], kinds[1], kinds[2], kinds[3]);
    size_t n = p.lay.n;
    double *g = malloc(n * sizeof(double)), *P0 = malloc(n * sizeof(double));
    memcpy(P0, p.P, n * sizeof(double));
    CltStepStats st;
    double loss = clt_ref_loss_grad(&p.lay, p.P, &p.hp, p.X, p.Y, p.B, NULL, g, &st);
    cr_assert(st.sparsity > 0 && st.preact > 0 && st.rec > 0, "every loss term must be present");
    // the surrogate equals the real loss at the evaluation point
    double ls = clt_ref_loss_grad(&p.lay, p.P, &p.hp, p.X, p.Y, p.B, P0, NULL, NULL);
    cr_assert(fabs(ls - loss) <= 1e-14 * fabs(loss), "surrogate %.17g != loss %.17g", ls, loss);
    const double h = 1e-6;
    int checked[CP_NKINDS] = {0};
    double worst = 0;
    for (int l = 0; l < p.lay.L; l++)
        for (int kind = 0; kind < CP_NKINDS; kind++) {
            size_t o = clt_layout_off(&p.lay, l, kind);
            size_t cnt = kind == CP_W_ENC ? (size_t)p.lay.F * p.lay.D : kind == CP_B_DEC ? (size_t)p.lay.D
                       : kind == CP_W_DEC ? (size_t)p.lay.F * clt_layout_nout(&p.lay, l) * p.lay.D : (size_t)p.lay.F;
            for (size_t k = o; k < o + cnt; k++) {
                double v = p.P[k];
                p.P[k] = v + h;
                double lp = clt_ref_loss_grad(&p.lay, p.P, &p.hp, p.X, p.Y, p.B, P0, NULL, NULL);
                p.P[k] = v - h;
                double lm = clt_ref_loss_grad(&p.lay, p.P, &p.hp, p.X, p.Y, p.B, P0, NULL, NULL);
                p.P[k] = v;
                double fd = (lp - lm) / (2 * h), err = fabs(fd - g[k]) / (1e-3 + fabs(g[k]));
                worst = err > worst ? err : worst;
                cr_assert(err < 1e-5, "plt=%d layer %d kind %d index %zu: analytic %.10g, finite difference %.10g",
                          plt, l, kind, k - o, g[k], fd);
                if (g[k] != 0) checked[kind]++;
            }
        }
    for (int kind = 0; kind < CP_NKINDS; kind++) cr_assert(checked[kind] > 0, "no nonzero gradient of kind %d", kind);
    free(g);
    free(P0);
    problem_free(&p);
}

Test(clt_grad, reference_matches_finite_differences_clt) { check_fd(0); }
Test(clt_grad, reference_matches_finite_differences_plt) { check_fd(1); }

// The threshold's gradient really is the STE formula (and not 0): with lambda_p = 0 the only
// threshold gradient left is the window term.
Test(clt_grad, threshold_gradient_is_the_ste_window_term) {
    Problem p;
    problem_make(&p, 2, 4, 6, 0, 9, 2e-3, 7);
    p.hp.lambda_p = 0;
    size_t n = p.lay.n;
    double *g = malloc(n * sizeof(double));
    clt_ref_loss_grad(&p.lay, p.P, &p.hp, p.X, p.Y, p.B, NULL, g, NULL);
    int nonzero = 0;
    for (int l = 0; l < p.lay.L; l++)
        for (int i = 0; i < p.lay.F; i++) nonzero += g[clt_layout_off(&p.lay, l, CP_LOG_THETA) + i] != 0;
    cr_assert(nonzero > 0, "no threshold received an STE gradient");
    // a wider window gives a different gradient: eps really enters
    double *g2 = malloc(n * sizeof(double));
    p.hp.eps = 1.7;
    clt_ref_loss_grad(&p.lay, p.P, &p.hp, p.X, p.Y, p.B, NULL, g2, NULL);
    int differ = 0;
    for (int l = 0; l < p.lay.L; l++)
        for (int i = 0; i < p.lay.F; i++) {
            size_t k = clt_layout_off(&p.lay, l, CP_LOG_THETA) + i;
            differ += g[k] != g2[k];
        }
    cr_assert(differ > 0);
    free(g);
    free(g2);
    problem_free(&p);
}

// ---- gradient: fp32 production vs fp64 reference ----------------------------------------------

static void check_f32(int plt, int threads) {
    Problem p;
    int L = 3, D = 16, F = 40, B = 37;   // F spans two encoder chunks, D a full vector + more
    problem_make(&p, L, D, F, plt, B, 1e-3, 300 + plt);
    size_t n = p.lay.n, nx = (size_t)B * L * D;
    float *Pf = calloc(n, sizeof(float)), *Xf = malloc(nx * sizeof(float)), *Yf = malloc(nx * sizeof(float));
    float *gf = malloc(n * sizeof(float)), *gf1 = malloc(n * sizeof(float));
    double *gd = malloc(n * sizeof(double));
    for (size_t k = 0; k < n; k++) Pf[k] = (float)p.P[k];
    for (size_t k = 0; k < nx; k++) Xf[k] = (float)p.X[k], Yf[k] = (float)p.Y[k];
    CltStepStats sd, sf;
    double loss = clt_ref_loss_grad(&p.lay, p.P, &p.hp, p.X, p.Y, B, NULL, gd, &sd);
    ThreadPool *pool = pool_create(threads);
    CltCore *core;
    cr_assert_eq(clt_core_init(&core, &p.lay, 64, pool), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(clt_core_loss_grad(core, Pf, &p.hp, Xf, Yf, B, gf, &sf), CT_OK, "%s", ct_errmsg());
    cr_assert(fabs(sf.loss - loss) <= 1e-5 * loss, "loss f32 %.8g vs f64 %.8g", sf.loss, loss);
    cr_assert(fabs(sf.rec - sd.rec) <= 1e-5 * sd.rec);
    cr_assert(fabs(sf.sparsity - sd.sparsity) <= 1e-5 * sd.sparsity);
    cr_assert(fabs(sf.preact - sd.preact) <= 1e-5 * sd.preact);
    for (int l = 0; l < L; l++) cr_assert(fabs(sf.l0_l[l] - sd.l0_l[l]) < 1e-12, "L0 of layer %d", l);
    for (int l = 0; l < L; l++)
        for (int kind = 0; kind < CP_NKINDS; kind++) {
            size_t o = clt_layout_off(&p.lay, l, kind);
            size_t cnt = kind == CP_W_ENC ? (size_t)F * D : kind == CP_B_DEC ? (size_t)D
                       : kind == CP_W_DEC ? (size_t)F * clt_layout_nout(&p.lay, l) * D : (size_t)F;
            double scale = 0;
            for (size_t k = o; k < o + cnt; k++) scale = fmax(scale, fabs(gd[k]));
            cr_assert(scale > 0, "layer %d kind %d: zero gradient", l, kind);
            for (size_t k = o; k < o + cnt; k++)
                cr_assert(fabs(gf[k] - gd[k]) <= 2e-5 * scale,
                          "plt=%d layer %d kind %d index %zu: f32 %.8g vs f64 %.8g (scale %.3g)", plt, l,
                          kind, k - o, gf[k], gd[k], scale);
        }
    // the same bits single-threaded
    CltCore *core1;
    cr_assert_eq(clt_core_init(&core1, &p.lay, 64, NULL), CT_OK);
    cr_assert_eq(clt_core_loss_grad(core1, Pf, &p.hp, Xf, Yf, B, gf1, NULL), CT_OK);
    cr_assert(memcmp(gf, gf1, n * sizeof(float)) == 0, "gradient depends on the thread count");
    clt_core_free(core);
    clt_core_free(core1);
    pool_destroy(pool);
    free(Pf), free(Xf), free(Yf), free(gf), free(gf1), free(gd);
    problem_free(&p);
}

Test(clt_grad, f32_matches_f64_clt) { check_f32(0, 2); }
Test(clt_grad, f32_matches_f64_plt) { check_f32(1, 3); }
