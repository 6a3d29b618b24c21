// test_clt_train.c — the transcoder trainer and its measurements:
//   - the fp64 loss/gradient reference against central finite differences (every parameter of
//     a tiny CLT and PLT; the JumpReLU threshold through its ramp surrogate),
//   - the fp32 production gradient against the fp64 reference, and thread-count independence,
//   - a short training run on stories260K lowers the loss and reaches an NMSE bound,
//   - checkpoint/resume gives byte-identical files,
//   - clt-eval numbers against independent computations (zero CLT, oracle splice),
//   - corpus sampling is deterministic, and bad inputs fail with clear messages.
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/clt.h"
#include "engine/clt_eval.h"
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

// ---- shared fixtures: stories260K, its tokenizer, a small sampled corpus ------------------------

static char *g_model, *g_tok;

// Paths kept in globals for the whole process (reachable, so not leaks).
static void paths(void) {
    if (!g_model) g_model = tu_shared_path("models/stories260K/stories260K.bin");
    if (!g_tok) g_tok = tu_shared_path("models/stories260K/tok512.bin");
}

static void load_model(Model *m, Tokenizer *t) {
    paths();
    cr_assert_eq(model_load_llama2c(m, g_model), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(tokenizer_load(t, g_tok, m->c.vocab_size), CT_OK, "%s", ct_errmsg());
}

// A corpus of ~n tokens sampled with seed (written once per (n, seed); the write is atomic and
// its content deterministic, so tests running in parallel may race harmlessly).
static char *corpus(long n, uint64_t seed) {
    char name[128];
    snprintf(name, sizeof name, "/tmp/ctrace_test_corpus_v1_%d_%ld_%llu.txt", (int)getuid(), n, (unsigned long long)seed);
    if (access(name, R_OK) == 0) return strdup(name);
    Model m;
    Tokenizer t;
    load_model(&m, &t);
    CltSampleOpts so;
    clt_sample_opts_default(&so);
    so.tokens = n, so.seed = seed, so.threads = 2;
    cr_assert_eq(clt_sample_corpus(&m, &t, &so, name, NULL, NULL), CT_OK, "%s", ct_errmsg());
    tokenizer_free(&t);
    model_free(&m);
    return strdup(name);
}

static void small_opts(CltTrainOpts *o, const char *corpus_path, const char *out) {
    clt_train_opts_default(o);
    paths();
    o->model_path = g_model;
    o->tokenizer_path = g_tok;
    o->corpus_path = corpus_path;
    o->out_dir = out;
    o->features = 32;
    o->batch = 64;
    o->tokens = 64 * 24;
    o->buffer_rows = 4 * 64;
    o->ctx = 64;
    o->lr = 3e-3;
    o->lambda = 0.02;
    o->eps = 0.3;
    o->checkpoint_every = 4;
    o->threads = 2;
    o->progress = 0;
}

// Sanitizer builds run ~10x slower: the convergence test trains less and checks less there
// (its job under ASan/UBSan is memory and UB checking, not convergence).
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

// Every regular file of dir a equals the same file of dir b (and the sets are equal).
static void assert_same_dirs(const char *a, const char *b) {
    DIR *d = opendir(a);
    cr_assert(d != NULL);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *pa = tu_join(a, e->d_name), *pb = tu_join(b, e->d_name);
        size_t na, nb;
        void *x = tu_read_file(pa, &na), *y = tu_read_file(pb, &nb);
        cr_assert(x && y, "%s or %s unreadable", pa, pb);
        cr_assert(na == nb && memcmp(x, y, na) == 0, "%s and %s differ", pa, pb);
        free(x), free(y), free(pa), free(pb);
        files++;
    }
    closedir(d);
    int files_b = 0;
    d = opendir(b);
    while ((e = readdir(d))) files_b += e->d_name[0] != '.';
    closedir(d);
    cr_assert_eq(files, files_b, "%s has %d files, %s has %d", a, files, b, files_b);
    cr_assert(files >= 11, "expected 10 transcoder files + config.yaml + checkpoint, got %d", files);
}

// ---- training on stories260K ------------------------------------------------------------------

typedef struct Curve { double first, last; long n; } Curve;
static void record(void *ctx, long step, long steps, const CltStepStats *st) {
    Curve *c = ctx;
    if (step == 1) c->first = st->rec + st->preact;   // lambda ramps from 0: compare like with like
    c->last = st->rec + st->preact;
    c->n = steps;
}

// A short run lowers the loss and reaches an NMSE bound on held-out model text.
// The bound: b_dec starts at the mean of y, so a transcoder that learned nothing sits at
// NMSE >= 1 (the mean is the best constant; random decoders only add error).  128 features
// per layer after 100 steps of 256 rows (lr 1e-2) measure 0.37 on this held-out text;
// 0.5 demands that the features explain at least half of the MLP variance on average, with
// room for a different kernel table's rounding.
Test(clt_train, short_run_learns, .timeout = 60) {
    char *cp = corpus(20000, 11), *ev = corpus(3000, 12), *dir = tu_mkdtemp("ct_cltrun");
    char *out = tu_join(dir, "clt");
    CltTrainOpts o;
    small_opts(&o, cp, out);
    o.features = 128;
    o.batch = 256;
    o.buffer_rows = 16 * 256;
    o.tokens = 256 * (SANITIZED ? 30 : 100);
    o.lr = 1e-2;
    o.checkpoint_every = 0;   // only the final checkpoint
    Curve cv = {0};
    o.on_step = record;
    o.on_step_ctx = &cv;
    cr_assert_eq(clt_train_run(&o), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(cv.n, SANITIZED ? 30 : 100);
    cr_assert(cv.last < (SANITIZED ? 0.8 : 0.5) * cv.first, "reconstruction loss %g -> %g", cv.first, cv.last);
    Model m;
    Tokenizer t;
    load_model(&m, &t);
    Clt c;
    cr_assert_eq(clt_load(&c, out, 0), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(c.kind, CLT_CROSS_LAYER);
    cr_assert_eq(c.act.kind, CLT_ACT_JUMPRELU);
    size_t n;
    char *text = tu_read_file(ev, &n);
    TokWindows w;
    cr_assert_eq(tokwin_from_text(&w, &t, text, n, 64, 0), CT_OK, "%s", ct_errmsg());
    CltEvalOpts eo = {0};
    CltEvalResult r;
    cr_assert_eq(clt_eval(&m, &c, &w, &eo, &r), CT_OK, "%s", ct_errmsg());
    cr_assert(r.mean_nmse < (SANITIZED ? 0.75 : 0.5), "held-out NMSE %g", r.mean_nmse);   // 30 steps: 0.56
    cr_assert(r.mean_l0 > 1 && r.mean_l0 < 64, "L0 %g", r.mean_l0);
    cr_assert(r.kl > 0 && r.top1 > 0.2, "KL %g top-1 %g", r.kl, r.top1);
    clt_eval_result_free(&r);
    tokwin_free(&w);
    free(text);
    clt_free(&c);
    tokenizer_free(&t);
    model_free(&m);
    tu_rmtree(dir);
    free(cp), free(ev), free(dir), free(out);
}

// Straight N steps == N/2 steps, stop, resume (with another thread count) to N: same bytes.
Test(clt_train, resume_is_byte_identical, .timeout = 60) {
    char *cp = corpus(20000, 11), *dir = tu_mkdtemp("ct_cltres");
    char *a = tu_join(dir, "a"), *b = tu_join(dir, "b");
    CltTrainOpts o;
    small_opts(&o, cp, a);
    cr_assert_eq(clt_train_run(&o), CT_OK, "%s", ct_errmsg());
    small_opts(&o, cp, b);
    o.stop_after = 10;   // not a multiple of checkpoint_every: the stop writes its own checkpoint
    o.threads = 1;
    cr_assert_eq(clt_train_run(&o), CT_OK, "%s", ct_errmsg());
    char *ck = tu_join(b, CLT_CHECKPOINT_NAME);
    cr_assert(access(ck, R_OK) == 0, "no checkpoint after --stop-after");
    small_opts(&o, cp, b);
    o.resume = 1;
    o.threads = 2;
    cr_assert_eq(clt_train_run(&o), CT_OK, "%s", ct_errmsg());
    assert_same_dirs(a, b);
    // resuming a finished run changes nothing
    cr_assert_eq(clt_train_run(&o), CT_OK, "%s", ct_errmsg());
    assert_same_dirs(a, b);
    free(ck);
    tu_rmtree(dir);
    free(cp), free(dir), free(a), free(b);
}

// SIGKILL at an arbitrary moment after the first checkpoint: resuming ends byte-identical.
Test(clt_train, survives_sigkill, .timeout = 60) {
    char *cp = corpus(20000, 11), *dir = tu_mkdtemp("ct_cltkill");
    char *a = tu_join(dir, "a"), *b = tu_join(dir, "b"), *ck = tu_join(b, CLT_CHECKPOINT_NAME);
    CltTrainOpts o;
    small_opts(&o, cp, a);
    o.tokens = 64 * 200;   // long enough to be killed mid-run
    o.checkpoint_every = 16;
    cr_assert_eq(clt_train_run(&o), CT_OK, "%s", ct_errmsg());
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        small_opts(&o, cp, b);
        o.tokens = 64 * 200;
        o.checkpoint_every = 16;
        o.threads = 1;
        _exit(clt_train_run(&o) == CT_OK ? 0 : 1);
    }
    while (access(ck, R_OK) != 0) usleep(500);   // the first checkpoint is there: kill now
    usleep(5000);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the run ended before it was killed");
    small_opts(&o, cp, b);
    o.tokens = 64 * 200;
    o.checkpoint_every = 16;
    o.resume = 1;
    cr_assert_eq(clt_train_run(&o), CT_OK, "%s", ct_errmsg());
    assert_same_dirs(a, b);
    tu_rmtree(dir);
    free(cp), free(dir), free(a), free(b), free(ck);
}

// A per-layer transcoder: PLT layout, decoders (F, D), loads back.
Test(clt_train, plt_run_writes_transcoder_set, .timeout = 60) {
    char *cp = corpus(20000, 11), *dir = tu_mkdtemp("ct_cltplt");
    char *out = tu_join(dir, "plt");
    CltTrainOpts o;
    small_opts(&o, cp, out);
    o.plt = 1;
    o.features = 64;
    cr_assert_eq(clt_train_run(&o), CT_OK, "%s", ct_errmsg());
    Clt c;
    cr_assert_eq(clt_load(&c, out, 0), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(c.kind, CLT_PER_LAYER);
    cr_assert_eq(c.L, 5);
    cr_assert_eq(c.F, 64);   // the transcoder files
    for (int l = 0; l < c.L; l++) cr_assert_eq(c.layers[l].n_out, 1);
    clt_free(&c);
    tu_rmtree(dir);
    free(cp), free(dir), free(out);
}

// ---- bad inputs --------------------------------------------------------------------------------

static void expect_train_error(CltTrainOpts *o, const char *needle) {
    cr_assert_eq(clt_train_run(o), CT_ERR, "accepted (expected an error with '%s')", needle);
    cr_assert(strstr(ct_errmsg(), needle) != NULL, "message '%s' lacks '%s'", ct_errmsg(), needle);
}

Test(clt_train, bad_inputs) {
    char *dir = tu_mkdtemp("ct_cltbad"), *out = tu_join(dir, "o"), *empty = tu_join(dir, "empty.txt");
    char *blank = tu_join(dir, "blank.txt"), *missing = tu_join(dir, "missing.txt");
    tu_write_file(empty, "", 0);
    tu_write_file(blank, "\n  \n\t\n\n", 7);
    CltTrainOpts o;
    small_opts(&o, missing, out);
    expect_train_error(&o, "missing.txt");
    small_opts(&o, empty, out);
    expect_train_error(&o, "empty");
    small_opts(&o, blank, out);
    expect_train_error(&o, "no story");
    char *cp = corpus(20000, 11);
    small_opts(&o, cp, out);
    o.features = 0;
    expect_train_error(&o, "--features");
    small_opts(&o, cp, out);
    o.tokens = 10;
    expect_train_error(&o, "less than one batch");
    small_opts(&o, cp, out);
    o.ctx = 100000;
    expect_train_error(&o, "--ctx");
    small_opts(&o, cp, out);
    o.resume = 1;
    expect_train_error(&o, "no checkpoint");
    // a checkpoint exists: a fresh run refuses to overwrite it; other options refuse to resume
    small_opts(&o, cp, out);
    o.stop_after = 2;
    cr_assert_eq(clt_train_run(&o), CT_OK, "%s", ct_errmsg());
    small_opts(&o, cp, out);
    expect_train_error(&o, "--resume");
    small_opts(&o, cp, out);
    o.resume = 1;
    o.batch = 32;
    expect_train_error(&o, "--batch");
    small_opts(&o, cp, out);
    o.resume = 1;
    o.lambda = 0.5;
    expect_train_error(&o, "--lambda");
    // a truncated checkpoint is detected by its checksum
    char *ck = tu_join(out, CLT_CHECKPOINT_NAME);
    size_t n;
    void *bytes = tu_read_file(ck, &n);
    tu_write_file(ck, bytes, n - 100);
    small_opts(&o, cp, out);
    o.resume = 1;
    expect_train_error(&o, "checksum");
    tu_write_file(ck, "garbage!", 8);
    expect_train_error(&o, "not a ctrace training checkpoint");
    free(bytes);
    free(ck);
    tu_rmtree(dir);
    free(dir), free(out), free(empty), free(blank), free(missing), free(cp);
}

// ---- sampling ----------------------------------------------------------------------------------

Test(clt_sample, deterministic_for_a_seed) {
    Model m;
    Tokenizer t;
    load_model(&m, &t);
    char *dir = tu_mkdtemp("ct_sample"), *a = tu_join(dir, "a.txt"), *b = tu_join(dir, "b.txt"), *c = tu_join(dir, "c.txt");
    CltSampleOpts so;
    clt_sample_opts_default(&so);
    so.tokens = 3000, so.seed = 5, so.threads = 1;
    long na, ns;
    cr_assert_eq(clt_sample_corpus(&m, &t, &so, a, &na, &ns), CT_OK, "%s", ct_errmsg());
    cr_assert(na >= 3000 && ns >= 2, "%ld tokens, %ld stories", na, ns);
    so.threads = 2;
    cr_assert_eq(clt_sample_corpus(&m, &t, &so, b, NULL, NULL), CT_OK);
    so.seed = 6;
    cr_assert_eq(clt_sample_corpus(&m, &t, &so, c, NULL, NULL), CT_OK);
    size_t n1, n2, n3;
    char *x = tu_read_file(a, &n1), *y = tu_read_file(b, &n2), *z = tu_read_file(c, &n3);
    cr_assert(n1 == n2 && memcmp(x, y, n1) == 0, "same seed, different thread count: different text");
    cr_assert(n1 != n3 || memcmp(x, z, n1) != 0, "different seeds gave the same text");
    // stories come back as stories: the split finds exactly ns of them, none with a blank line
    size_t pos = 0, s, len;
    long found = 0;
    while (text_next_story(x, n1, &pos, &s, &len)) found++;
    cr_assert_eq(found, ns);
    cr_assert(memmem(x, n1, "\n\n\n", 3) == NULL);
    free(x), free(y), free(z);
    so.seed = 0;
    cr_assert_eq(clt_sample_corpus(&m, &t, &so, c, NULL, NULL), CT_ERR);
    tu_rmtree(dir);
    free(dir), free(a), free(b), free(c);
    tokenizer_free(&t);
    model_free(&m);
}

Test(clt_sample, story_split_and_windows) {
    const char *txt = "\n\nfirst story\nline two\n \nsecond\r\n\n\n\nthird";
    size_t pos = 0, s, len, n = strlen(txt);
    const char *want[3] = {"first story\nline two", "second", "third"};
    for (int k = 0; k < 3; k++) {
        cr_assert(text_next_story(txt, n, &pos, &s, &len));
        cr_assert(len == strlen(want[k]) && !memcmp(txt + s, want[k], len), "story %d: '%.*s'", k, (int)len, txt + s);
    }
    cr_assert_not(text_next_story(txt, n, &pos, &s, &len));
    // windows: [BOS] + 2-token slices of a 7-id story (BOS + 6)
    int ids[7] = {1, 10, 11, 12, 13, 14, 15}, out[3];
    cr_assert_eq(story_n_windows(7, 3), 3);
    cr_assert_eq(story_window(ids, 7, 3, 2, out), 3);
    cr_assert(out[0] == 1 && out[1] == 14 && out[2] == 15);
    cr_assert_eq(story_n_windows(6, 3), 3);
    cr_assert_eq(story_window(ids, 6, 3, 2, out), 2);
    cr_assert_eq(story_n_windows(1, 3), 0);
}

// ---- clt-eval against independent computations -------------------------------------------------

typedef struct RefRun { float *logits; float *y; int n; } RefRun;

// Zero MLP outputs at p >= 1 (an independent splice for the zero transcoder).
static void zero_hook(void *ctx, HookSite site, int l, int pos, float *vec) {
    const Model *m = ctx;
    if (site == HOOK_MLP_OUT && pos > 0) memset(vec, 0, (size_t)m->c.dim * sizeof(float));
}

// out[v] = log softmax(z)[v], in double.
static void lsm(const float *z, int V, double *out) {
    double mx = z[0], s = 0;
    for (int k = 1; k < V; k++) mx = z[k] > mx ? z[k] : mx;
    for (int k = 0; k < V; k++) s += exp((double)z[k] - mx);
    for (int k = 0; k < V; k++) out[k] = (double)z[k] - mx - log(s);
}

Test(clt_eval, zero_transcoder_and_oracle, .timeout = 60) {
    Model m;
    Tokenizer t;
    load_model(&m, &t);
    char *ev = corpus(3000, 12);
    size_t nt;
    char *text = tu_read_file(ev, &nt);
    TokWindows w;
    cr_assert_eq(tokwin_from_text(&w, &t, text, nt, 48, 1500), CT_OK, "%s", ct_errmsg());
    int L = m.c.n_layers, D = m.c.dim, V = m.c.vocab_size;
    Clt c;
    CltActivation act = {CLT_ACT_JUMPRELU, 0};
    cr_assert_eq(clt_alloc(&c, L, D, 32, CLT_CROSS_LAYER, act, 0), CT_OK);
    CltEvalOpts eo = {0};
    CltEvalResult r;
    cr_assert_eq(clt_eval(&m, &c, &w, &eo, &r), CT_OK, "%s", ct_errmsg());
    // independent: per layer sum ||y||^2 / sum ||y - mean||^2; splice = MLPs deleted at p >= 1
    RunState rs;
    Capture cap;
    cr_assert_eq(runstate_init(&rs, &m.c, 48), CT_OK);
    cr_assert_eq(capture_init(&cap, &m.c, 48, CAP_MLP), CT_OK);
    float *lr = malloc((size_t)48 * V * sizeof(float)), *lz = malloc((size_t)48 * V * sizeof(float));
    double *sy = calloc((size_t)L * D, sizeof(double)), *syy = calloc((size_t)L, sizeof(double));
    double *qr = malloc((size_t)V * sizeof(double)), *qz = malloc((size_t)V * sizeof(double));
    double kl = 0, cer = 0, cez = 0;
    long np = 0, npred = 0, agree = 0;
    ForwardHooks hk = {0};
    hk.hook = zero_hook;
    hk.ctx = &m;
    for (int i = 0; i < w.n; i++) {
        const int *tok = w.tok + w.start[i];
        int n = w.len[i];
        cr_assert_eq(model_forward_seq(&m, &rs, tok, n, lr, &cap, NULL), CT_OK);
        cr_assert_eq(model_forward_seq_hooked(&m, &rs, tok, n, lz, NULL, NULL, &hk), CT_OK);
        for (int p = 0; p < n; p++) {
            lsm(lr + (size_t)p * V, V, qr);
            lsm(lz + (size_t)p * V, V, qz);
            if (p + 1 < n) {
                cer -= qr[tok[p + 1]];
                cez -= qz[tok[p + 1]];
                npred++;
            }
            if (p == 0) continue;
            np++;
            for (int l = 0; l < L; l++)
                for (int d = 0; d < D; d++) {
                    double y = cap.mlp_out[((size_t)p * L + l) * D + d];
                    sy[l * D + d] += y;
                    syy[l] += y * y;
                }
            int ar = 0, az = 0;
            for (int v = 0; v < V; v++) {
                kl += exp(qr[v]) * (qr[v] - qz[v]);
                if (lr[(size_t)p * V + v] > lr[(size_t)p * V + ar]) ar = v;
                if (lz[(size_t)p * V + v] > lz[(size_t)p * V + az]) az = v;
            }
            agree += ar == az;
        }
    }
    cr_assert_eq(r.positions, np);
    cr_assert_eq(r.predictions, npred);
    for (int l = 0; l < L; l++) {
        double m2 = 0;
        for (int d = 0; d < D; d++) m2 += sy[l * D + d] * sy[l * D + d];
        double want = syy[l] / (syy[l] - m2 / np);
        cr_assert(fabs(r.nmse[l] - want) < 1e-9 * want, "layer %d: NMSE %.12g, expected %.12g", l, r.nmse[l], want);
        cr_assert(r.nmse[l] > 1.0);
        cr_assert_eq(r.l0[l], 0);
        cr_assert_eq(r.dead[l], 1.0);
    }
    cr_assert(fabs(r.kl - kl / np) < 1e-9 * (kl / np), "KL %.12g vs %.12g", r.kl, kl / np);
    cr_assert(r.kl > 0.01);
    cr_assert(fabs(r.top1 - (double)agree / np) < 1e-12);
    cr_assert(fabs(r.ce_real - cer / npred) < 1e-9 * (cer / npred));
    cr_assert(fabs(r.ce_spliced - cez / npred) < 1e-9 * (cez / npred));
    clt_eval_result_free(&r);
    // oracle: the splice writes back the real MLP outputs -> nothing changes
    eo.oracle = 1;
    cr_assert_eq(clt_eval(&m, &c, &w, &eo, &r), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(r.kl, 0.0);
    cr_assert_eq(r.top1, 1.0);
    cr_assert_eq(r.ce_spliced, r.ce_real);
    cr_assert(fabs(r.ce_real - cer / npred) < 1e-9 * (cer / npred));
    clt_eval_result_free(&r);
    free(lr), free(lz), free(sy), free(syy), free(qr), free(qz);
    capture_free(&cap);
    runstate_free(&rs);
    clt_free(&c);
    tokwin_free(&w);
    free(text);
    free(ev);
    tokenizer_free(&t);
    model_free(&m);
}

// A random JumpReLU CLT: NMSE and L0 from a double-precision computation written here, and
// the same numbers for any thread count.
Test(clt_eval, random_transcoder_matches_fp64, .timeout = 60) {
    Model m;
    Tokenizer t;
    load_model(&m, &t);
    int ids[40];
    for (int i = 0; i < 40; i++) ids[i] = 300 + (i * 37) % 200;
    TokWindows w;
    cr_assert_eq(tokwin_from_ids(&w, ids, 40, 16, TOK_BOS), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(w.n, 3);   // 40 ids -> 15 + 15 + 10 after BOS
    int L = m.c.n_layers, D = m.c.dim, F = 24;
    Clt c;
    CltActivation act = {CLT_ACT_JUMPRELU, 0};
    cr_assert_eq(clt_alloc(&c, L, D, F, CLT_CROSS_LAYER, act, 0), CT_OK);
    TuRng rng;
    tu_rng_seed(&rng, 3);
    for (int l = 0; l < L; l++) {
        tu_fill_normal(c.layers[l].W_enc, (size_t)F * D, &rng, 0, 0.2f);
        tu_fill_normal(c.layers[l].b_enc, (size_t)F, &rng, 0, 0.1f);
        tu_fill_uniform(c.layers[l].threshold, (size_t)F, &rng, 0.1f, 0.5f);
        tu_fill_normal(c.layers[l].b_dec, (size_t)D, &rng, 0, 0.05f);
        tu_fill_normal((float *)c.layers[l].W_dec, (size_t)F * c.layers[l].n_out * D, &rng, 0, 0.05f);
    }
    CltEvalOpts eo = {0};
    CltEvalResult r1, r2;
    cr_assert_eq(clt_eval(&m, &c, &w, &eo, &r1), CT_OK, "%s", ct_errmsg());
    ThreadPool *pool = pool_create(3);
    eo.pool = pool;
    cr_assert_eq(clt_eval(&m, &c, &w, &eo, &r2), CT_OK, "%s", ct_errmsg());
    for (int l = 0; l < L; l++) cr_assert(r1.nmse[l] == r2.nmse[l] && r1.l0[l] == r2.l0[l]);
    cr_assert(r1.kl == r2.kl && r1.top1 == r2.top1 && r1.ce_spliced == r2.ce_spliced);
    // fp64 reference from the real activations
    RunState rs;
    Capture cap;
    cr_assert_eq(runstate_init(&rs, &m.c, 16), CT_OK);
    cr_assert_eq(capture_init(&cap, &m.c, 16, CAP_RESID | CAP_MLP), CT_OK);
    double *sse = calloc(L, sizeof(double)), *syy = calloc(L, sizeof(double)), *sy = calloc((size_t)L * D, sizeof(double));
    double *a = malloc((size_t)L * F * sizeof(double));
    long *nact = calloc(L, sizeof(long)), np = 0;
    double min_gap = INFINITY;
    for (int i = 0; i < w.n; i++) {
        cr_assert_eq(model_forward_seq(&m, &rs, w.tok + w.start[i], w.len[i], NULL, &cap, NULL), CT_OK);
        for (int p = 1; p < w.len[i]; p++, np++) {
            for (int l = 0; l < L; l++)
                for (int f = 0; f < F; f++) {
                    double h = c.layers[l].b_enc[f];
                    for (int d = 0; d < D; d++) h += (double)c.layers[l].W_enc[f * D + d] * cap.resid_mid[((size_t)p * L + l) * D + d];
                    double th = c.layers[l].threshold[f];
                    min_gap = fmin(min_gap, fabs(h - th));
                    a[l * F + f] = h > th ? h : 0;
                    nact[l] += h > th;
                }
            for (int lo = 0; lo < L; lo++)
                for (int d = 0; d < D; d++) {
                    double yh = c.layers[lo].b_dec[d];
                    for (int l = 0; l <= lo; l++)
                        for (int f = 0; f < F; f++)
                            yh += a[l * F + f] * c.layers[l].W_dec[((size_t)f * c.layers[l].n_out + (lo - l)) * D + d];
                    double y = cap.mlp_out[((size_t)p * L + lo) * D + d];
                    sse[lo] += (yh - y) * (yh - y);
                    syy[lo] += y * y;
                    sy[lo * D + d] += y;
                }
        }
    }
    cr_assert(min_gap > 1e-5, "a pre-activation sits within %g of its threshold: pick another seed", min_gap);
    for (int l = 0; l < L; l++) {
        double m2 = 0;
        for (int d = 0; d < D; d++) m2 += sy[l * D + d] * sy[l * D + d];
        double want = sse[l] / (syy[l] - m2 / np);
        cr_assert(fabs(r1.nmse[l] - want) < 1e-5 * want, "layer %d: NMSE %.8g, fp64 %.8g", l, r1.nmse[l], want);
        cr_assert(fabs(r1.l0[l] - (double)nact[l] / np) < 1e-12, "layer %d: L0 %g vs %g", l, r1.l0[l], (double)nact[l] / np);
        cr_assert(r1.l0[l] > 0.5, "layer %d: too few active features (%g) to test anything", l, r1.l0[l]);
    }
    cr_assert(r1.kl > 0);
    clt_eval_result_free(&r1);
    clt_eval_result_free(&r2);
    free(sse), free(syy), free(sy), free(a), free(nact);
    capture_free(&cap);
    runstate_free(&rs);
    pool_destroy(pool);
    clt_free(&c);
    tokwin_free(&w);
    tokenizer_free(&t);
    model_free(&m);
}

Test(clt_eval, layer_count_mismatch_is_an_error) {
    Model m;
    Tokenizer t;
    load_model(&m, &t);
    TokWindows w;
    int ids[3] = {300, 301, 302};
    cr_assert_eq(tokwin_from_ids(&w, ids, 3, 16, TOK_BOS), CT_OK);
    Clt c;
    CltActivation act = {CLT_ACT_RELU, 0};
    cr_assert_eq(clt_alloc(&c, 3, m.c.dim, 8, CLT_CROSS_LAYER, act, 0), CT_OK);
    CltEvalOpts eo = {0};
    CltEvalResult r;
    cr_assert_eq(clt_eval(&m, &c, &w, &eo, &r), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "3") && strstr(ct_errmsg(), "5"), "message '%s' should give both layer counts", ct_errmsg());
    clt_free(&c);
    cr_assert_eq(clt_alloc(&c, 5, 32, 8, CLT_CROSS_LAYER, act, 0), CT_OK);
    cr_assert_eq(clt_eval(&m, &c, &w, &eo, &r), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "64") != NULL, "message '%s' should name D = 64", ct_errmsg());
    clt_free(&c);
    TokWindows w2;
    cr_assert_eq(tokwin_from_text(&w2, &t, "\n\n  \n", 5, 16, 0), CT_ERR);
    tokwin_free(&w);
    tokenizer_free(&t);
    model_free(&m);
}
