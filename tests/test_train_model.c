// test_train_model.c — `ctrace train-model`'s library (engine/train_model.h):
//   - the fp64 instance of the loss + gradient against central finite differences, every
//     parameter tensor, tied and untied classifiers, GQA (Hkv < H),
//   - the fp32 instance (kernel table, threads) against the fp64 one,
//   - the trainer's fp32 loss against a cross-entropy computed from engine/forward.c's
//     logits on the written llama2.c checkpoint,
//   - the first AdamW step against the formula, the learning-rate schedule,
//   - a repetitive corpus is learnt, runs are byte-identical for a seed (and any thread
//     count), resume gives the uninterrupted run's bytes,
//   - corpus encoding (documents per line, held-out split) and bad inputs.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "engine/tokenizer.h"
#include "engine/train_model.h"
#include "tests/lib/testutil.h"

static Config cfg(int D, int L, int H, int Hkv, int Hd, int V, int T, int shared) {
    Config c;
    memset(&c, 0, sizeof c);
    c.dim = D, c.n_layers = L, c.n_heads = H, c.n_kv_heads = Hkv, c.hidden_dim = Hd;
    c.vocab_size = V, c.seq_len = T, c.shared_classifier = shared;
    return c;
}

// Random parameters with enough spread that attention is far from uniform and gains matter.
static void random_params(const TmLayout *lay, double *p, uint64_t seed) {
    TuRng r;
    tu_rng_seed(&r, seed);
    for (int k = 0; k < TM_NTENSORS; k++)
        for (size_t i = 0; i < lay->len[k]; i++) {
            double x = tu_rng_normal(&r);
            // rounded to float so the fp32 instance sees the same numbers
            p[lay->off[k] + i] = (float)(tm_tensor_decays(k) ? 0.35 * x : 1.0 + 0.3 * x);
        }
}

static double ref_loss(const TmLayout *lay, const double *p, const int32_t *tok, int B, int T) {
    double l;
    cr_assert_eq(tm_ref_loss_grad(lay, p, tok, B, T, NULL, &l), CT_OK, "%s", ct_errmsg());
    return l;
}

// ---- fp64 gradient vs finite differences -----------------------------------------------------
static void check_fd(int shared, int Hkv) {
    const int B = 2, T = 7;
    TmLayout lay;
    Config c = cfg(16, 2, 4, Hkv, 24, 37, T, shared);
    cr_assert_eq(tm_layout_init(&lay, &c, "fd"), CT_OK, "%s", ct_errmsg());
    double *p = malloc(lay.n * sizeof(double)), *g = malloc(lay.n * sizeof(double));
    random_params(&lay, p, 7 + shared + Hkv);
    TuRng r;
    tu_rng_seed(&r, 99);
    int32_t tok[2 * 8];
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)tu_rng_below(&r, 37);
    double loss;
    cr_assert_eq(tm_ref_loss_grad(&lay, p, tok, B, T, g, &loss), CT_OK, "%s", ct_errmsg());
    cr_assert(loss > 1 && loss < 20, "loss %g", loss);
    int checked = 0;
    double worst = 0;
    for (int k = 0; k < TM_NTENSORS; k++) {
        if (!lay.len[k]) continue;
        // entries: first, last, and random ones; embedding rows of tokens in the batch
        size_t idx[8];
        int m = 0;
        idx[m++] = 0;
        idx[m++] = lay.len[k] - 1;
        while (m < 8) {
            size_t i = (size_t)tu_rng_below(&r, (uint32_t)lay.len[k]);
            if (k == TM_EMB) i = (size_t)tok[tu_rng_below(&r, B * T)] * 16 + tu_rng_below(&r, 16);
            idx[m++] = i;
        }
        int nonzero = 0;
        for (int j = 0; j < m; j++) {
            size_t at = lay.off[k] + idx[j];
            double x0 = p[at], h = 1e-4 * (fabs(x0) > 1 ? fabs(x0) : 1), f[4];
            const double s[4] = {-2, -1, 1, 2};
            for (int q = 0; q < 4; q++) {
                p[at] = x0 + s[q] * h;
                f[q] = ref_loss(&lay, p, tok, B, T);
            }
            p[at] = x0;
            // 4-point central difference: truncation error O(h^4)
            double fd = (8 * (f[2] - f[1]) - (f[3] - f[0])) / (12 * h);
            double err = fabs(fd - g[at]), scale = fmax(fabs(fd), fabs(g[at]));
            cr_assert(err <= 1e-6 * scale + 1e-11, "%s[%zu]: gradient %.12g, finite difference %.12g (rel %.3g)",
                      tm_tensor_name(k), idx[j], g[at], fd, err / scale);
            if (scale > 1e-6) {
                nonzero++;
                worst = fmax(worst, err / scale);
            }
            checked++;
        }
        cr_assert(nonzero >= 4, "%s: only %d of the sampled gradient entries are non-zero", tm_tensor_name(k), nonzero);
    }
    cr_assert(checked >= 11 * 8);
    cr_log_info("shared %d Hkv %d: %d entries, worst relative error %.2e", shared, Hkv, checked, worst);
    free(p);
    free(g);
}

Test(train_model_grad, fd_tied_gqa) { check_fd(1, 2); }
Test(train_model_grad, fd_untied_mha) { check_fd(0, 4); }

// ---- fp32 (kernel table, threads) vs fp64 -------------------------------------------------------
static void check_f32(int shared, int threads) {
    const int B = 3, T = 9;
    TmLayout lay;
    Config c = cfg(32, 2, 4, 2, 40, 50, T, shared);
    cr_assert_eq(tm_layout_init(&lay, &c, "f32"), CT_OK, "%s", ct_errmsg());
    double *p = malloc(lay.n * sizeof(double)), *g = malloc(lay.n * sizeof(double));
    float *pf = malloc(lay.n * sizeof(float)), *gf = malloc(lay.n * sizeof(float));
    random_params(&lay, p, 11);
    for (size_t i = 0; i < lay.n; i++) pf[i] = (float)p[i];
    TuRng r;
    tu_rng_seed(&r, 5);
    int32_t tok[3 * 10];
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)tu_rng_below(&r, 50);
    double l64, l32;
    cr_assert_eq(tm_ref_loss_grad(&lay, p, tok, B, T, g, &l64), CT_OK, "%s", ct_errmsg());
    ThreadPool *pool = threads > 1 ? pool_create(threads) : NULL;
    TmCore *core;
    cr_assert_eq(tm_core_init(&core, &lay, B, T, pool), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(tm_core_loss_grad(core, pf, tok, B, gf, &l32), CT_OK, "%s", ct_errmsg());
    cr_assert(fabs(l32 - l64) <= 1e-5 * l64, "loss f32 %.9g vs f64 %.9g", l32, l64);
    for (int k = 0; k < TM_NTENSORS; k++) {
        double num = 0, den = 0;
        for (size_t i = lay.off[k]; i < lay.off[k] + lay.len[k]; i++) {
            num += (gf[i] - g[i]) * (gf[i] - g[i]);
            den += g[i] * g[i];
        }
        if (!lay.len[k]) continue;
        cr_assert(den > 0, "%s: zero gradient", tm_tensor_name(k));
        cr_assert(sqrt(num / den) < 1e-4, "%s: fp32 gradient off by %.3g (relative norm)", tm_tensor_name(k), sqrt(num / den));
    }
    tm_core_free(core);
    pool_destroy(pool);
    free(p), free(g), free(pf), free(gf);
}

Test(train_model_grad, f32_matches_f64_tied_1thread) { check_f32(1, 1); }
Test(train_model_grad, f32_matches_f64_untied_2threads) { check_f32(0, 2); }

// ---- synthetic corpora --------------------------------------------------------------------------
// Documents of a repeated phrase: BOS, then a fixed sequence of `plen` tokens cycled `reps` times.
static void make_corpus(TmCorpus *c, int V, int docs, int plen, int reps, int heldout_docs, uint64_t seed) {
    memset(c, 0, sizeof *c);
    TuRng r;
    tu_rng_seed(&r, seed);
    int phrase[64];
    for (int i = 0; i < plen; i++) phrase[i] = 3 + (int)tu_rng_below(&r, (uint32_t)(V - 3));
    size_t per = 1 + (size_t)plen * reps;
    c->tokens = malloc((size_t)docs * per * sizeof(int32_t));
    for (int d = 0; d < docs; d++) {
        if (d == docs - heldout_docs) c->n_train = c->n;
        c->tokens[c->n++] = TOK_BOS;
        for (int k = 0; k < reps; k++)
            for (int i = 0; i < plen; i++) c->tokens[c->n++] = phrase[(i + d) % plen];
    }
    if (!heldout_docs) c->n_train = c->n;
    c->docs = docs, c->docs_train = docs - heldout_docs, c->vocab_size = V;
}

static void small_opts(TrainModelOpts *o) {
    train_model_opts_default(o);
    o->dim = 32, o->n_layers = 2, o->n_heads = 4, o->n_kv_heads = 2, o->hidden_dim = 48;
    o->seq_len = 16, o->batch = 8, o->steps = 40, o->lr = 1e-2, o->warmup = 5, o->seed = 3;
    o->eval_tokens = 512;
}

static void *read_all(const char *path, size_t *n) {
    void *p = tu_read_file(path, n);
    cr_assert(p, "cannot read %s", path);
    return p;
}

// ---- forward.c agreement --------------------------------------------------------------------------
static void check_forward(int shared, int Hkv) {
    TmCorpus corpus;
    make_corpus(&corpus, 41, 40, 11, 3, 4, 1);
    TrainModelOpts o;
    small_opts(&o);
    o.n_kv_heads = Hkv, o.shared_classifier = shared, o.steps = 5;
    TrainedModel m;
    TrainModelResult res;
    cr_assert_eq(train_model(&o, &corpus, NULL, &m, &res), CT_OK, "%s", ct_errmsg());
    char *dir = tu_mkdtemp("tm_fwd"), *path = tu_join(dir, "model.bin");
    cr_assert_eq(train_model_save(&m.lay, m.params, path), CT_OK, "%s", ct_errmsg());
    Model mod;
    cr_assert_eq(model_load_llama2c(&mod, path), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(mod.c.dim, 32);
    cr_assert_eq(mod.c.n_kv_heads, Hkv);
    cr_assert_eq(mod.c.vocab_size, 41);
    cr_assert_eq(mod.c.shared_classifier, shared);
    cr_assert_eq(mod.c.seq_len, 16);
    cr_assert_eq(model_param_count(&mod.c), m.lay.n);
    // the loaded weights are the trained ones (wcls too when untied)
    cr_assert(!memcmp(mod.w.token_embedding, m.params, m.lay.off[TM_WCLS] * sizeof(float)));
    if (!shared) cr_assert(!memcmp(mod.w.wcls, m.params + m.lay.off[TM_WCLS], m.lay.len[TM_WCLS] * sizeof(float)));
    const int T = 16, B = 3, V = 41;
    RunState s;
    cr_assert_eq(runstate_init(&s, &mod.c, T), CT_OK, "%s", ct_errmsg());
    float *logits = malloc((size_t)T * V * sizeof(float));
    int32_t tok[3 * 17];
    int ids[16];
    float *all = malloc((size_t)B * T * V * sizeof(float));
    double ref = 0;
    for (int b = 0; b < B; b++) {
        size_t at = (size_t)b * 37;
        memcpy(tok + b * (T + 1), corpus.tokens + at, (T + 1) * sizeof(int32_t));
        for (int t = 0; t < T; t++) ids[t] = tok[b * (T + 1) + t];
        cr_assert_eq(model_forward_seq(&mod, &s, ids, T, logits, NULL, NULL), CT_OK, "%s", ct_errmsg());
        memcpy(all + (size_t)b * T * V, logits, (size_t)T * V * sizeof(float));
        for (int t = 0; t < T; t++) {   // cross-entropy in double from forward.c's logits
            const float *lg = logits + (size_t)t * V;
            double mx = lg[0], z = 0;
            for (int v = 1; v < V; v++) mx = fmax(mx, lg[v]);
            for (int v = 0; v < V; v++) z += exp(lg[v] - mx);
            ref += log(z) + mx - lg[tok[b * (T + 1) + t + 1]];
        }
    }
    ref /= B * T;
    TmCore *core;
    double got;
    cr_assert_eq(tm_core_init(&core, &m.lay, B, T, NULL), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(tm_core_loss_grad(core, m.params, tok, B, NULL, &got), CT_OK, "%s", ct_errmsg());
    cr_assert(fabs(got - ref) <= 1e-5 * ref, "trainer loss %.9g, forward.c loss %.9g", got, ref);
    // the same kernels in the same order: the logits are forward.c's, bit for bit
    cr_assert(!memcmp(tm_core_logits(core), all, (size_t)B * T * V * sizeof(float)), "logits differ from forward.c's");
    free(all);
    cr_assert(ref > 0.1, "loss %g", ref);
    tm_core_free(core);
    free(logits);
    runstate_free(&s);
    model_free(&mod);
    trained_model_free(&m);
    tm_corpus_free(&corpus);
    tu_rmtree(dir);
    free(dir), free(path);
}

Test(train_model, forward_matches_engine_forward_tied_gqa) { check_forward(1, 2); }
Test(train_model, forward_matches_engine_forward_untied) { check_forward(0, 4); }

// ---- optimizer -------------------------------------------------------------------------------------
// A train stream of exactly T+1 tokens has one window: step 1's batch is known, so its
// gradient is too, and the first AdamW step is (m/c1) / (sqrt(v/c2) + eps) = g / (|g| + eps):
//   p1 = p0 - lr (g / (|g| + eps) + wd p0)     (wd only on matrices), with g scaled by the clip.
Test(train_model, first_adamw_step_matches_formula) {
    TrainModelOpts o;
    small_opts(&o);
    o.steps = 1, o.warmup = 1, o.lr = 1e-3, o.weight_decay = 0.1, o.clip = 0.05;
    TmCorpus corpus;
    make_corpus(&corpus, 41, 1, 16, 1, 0, 2);
    cr_assert_eq(corpus.n, 17u);
    TmLayout lay;
    Config c = cfg(32, 2, 4, 2, 48, 41, 16, 1);
    cr_assert_eq(tm_layout_init(&lay, &c, "adam"), CT_OK, "%s", ct_errmsg());
    float *p0 = malloc(lay.n * sizeof(float)), *g = malloc(lay.n * sizeof(float));
    tm_init_params(&lay, p0, o.seed);
    int32_t *tok = malloc(8 * 17 * sizeof(int32_t));
    for (int b = 0; b < 8; b++) memcpy(tok + b * 17, corpus.tokens, 17 * sizeof(int32_t));
    TmCore *core;
    double loss;
    cr_assert_eq(tm_core_init(&core, &lay, 8, 16, NULL), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(tm_core_loss_grad(core, p0, tok, 8, g, &loss), CT_OK, "%s", ct_errmsg());
    double nrm = 0;
    for (size_t i = 0; i < lay.n; i++) nrm += (double)g[i] * g[i];
    nrm = sqrt(nrm);
    cr_assert(nrm > o.clip, "gradient norm %g should exceed the clip for this test", nrm);
    double sc = o.clip / nrm;
    TrainedModel m;
    TrainModelResult res;
    cr_assert_eq(train_model(&o, &corpus, NULL, &m, &res), CT_OK, "%s", ct_errmsg());
    cr_assert(fabs(res.first_loss - loss) <= 1e-12 * loss, "loss %g vs %g", res.first_loss, loss);
    for (int k = 0; k < TM_NTENSORS; k++)
        for (size_t i = lay.off[k]; i < lay.off[k] + lay.len[k]; i++) {
            double gg = g[i] * sc, wd = tm_tensor_decays(k) ? 0.1 : 0.0;
            double want = p0[i] - 1e-3 * (gg / (fabs(gg) + 1e-8) + wd * p0[i]);
            cr_assert(fabs(m.params[i] - want) <= 2e-6 * 1e-3 + 1e-6 * fabs(want),
                      "%s[%zu]: %.9g, expected %.9g (p0 %.9g, g %.3g)", tm_tensor_name(k), i - lay.off[k],
                      m.params[i], want, p0[i], gg);
        }
    tm_core_free(core);
    trained_model_free(&m);
    tm_corpus_free(&corpus);
    free(p0), free(g), free(tok);
}

typedef struct { double lr[200]; long n; } LrLog;
static void log_lr(void *ctx, long step, long steps, double loss, double lr) {
    LrLog *l = ctx;
    if (step - 1 < 200) l->lr[step - 1] = lr;
    l->n = step;
}

Test(train_model, lr_schedule_warmup_then_cosine) {
    TmCorpus corpus;
    make_corpus(&corpus, 41, 10, 11, 3, 0, 1);
    TrainModelOpts o;
    small_opts(&o);
    o.dim = 8, o.n_heads = 2, o.n_kv_heads = 2, o.hidden_dim = 8, o.n_layers = 1, o.batch = 1;
    o.steps = 30, o.warmup = 10, o.lr = 2e-3;
    LrLog lg = {{0}, 0};
    o.on_step = log_lr, o.on_step_ctx = &lg;
    TrainedModel m;
    TrainModelResult res;
    cr_assert_eq(train_model(&o, &corpus, NULL, &m, &res), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(lg.n, 30);
    for (int s = 0; s < 10; s++) cr_assert(fabs(lg.lr[s] - 2e-3 * (s + 1) / 10) < 1e-15, "warm-up step %d: %g", s, lg.lr[s]);
    for (int s = 10; s < 30; s++) {
        double f = (s - 10) / 19.0, want = 2e-4 + 0.5 * (2e-3 - 2e-4) * (1 + cos(M_PI * f));
        cr_assert(fabs(lg.lr[s] - want) < 1e-15, "step %d: %g, expected %g", s, lg.lr[s], want);
    }
    cr_assert(fabs(lg.lr[29] - 2e-4) < 1e-15);
    trained_model_free(&m);
    tm_corpus_free(&corpus);
}

// ---- learning, determinism, resume -----------------------------------------------------------------
Test(train_model, repetitive_corpus_is_learnt, .timeout = 60) {
    TmCorpus corpus;
    make_corpus(&corpus, 41, 60, 13, 4, 6, 4);
    TrainModelOpts o;
    small_opts(&o);
    o.steps = 150;
    TrainedModel m;
    TrainModelResult res;
    cr_assert_eq(train_model(&o, &corpus, NULL, &m, &res), CT_OK, "%s", ct_errmsg());
    cr_log_info("first loss %.3f, final train %.4f, held-out %.4f", res.first_loss, res.train_loss, res.eval_loss);
    cr_assert(res.first_loss > 3.0, "initial loss %g should be about ln 41 = 3.71", res.first_loss);
    cr_assert(res.train_loss < 0.3, "final train loss %g", res.train_loss);
    cr_assert(res.eval_predictions > 0);
    cr_assert(res.eval_loss < 0.5, "held-out loss %g", res.eval_loss);
    cr_assert_eq(res.steps, 150);
    cr_assert_eq(res.tokens, 150LL * 8 * 16);
    trained_model_free(&m);
    tm_corpus_free(&corpus);
}

static void run_to_file(const TrainModelOpts *o, const TmCorpus *c, int threads, const char *path) {
    ThreadPool *pool = threads > 1 ? pool_create(threads) : NULL;
    TrainedModel m;
    TrainModelResult res;
    cr_assert_eq(train_model(o, c, pool, &m, &res), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(train_model_save(&m.lay, m.params, path), CT_OK, "%s", ct_errmsg());
    trained_model_free(&m);
    pool_destroy(pool);
}

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    void *pa = read_all(a, &na), *pb = read_all(b, &nb);
    int same = na == nb && !memcmp(pa, pb, na);
    free(pa), free(pb);
    return same;
}

Test(train_model, deterministic_for_seed_and_threads, .timeout = 60) {
    TmCorpus corpus;
    make_corpus(&corpus, 41, 40, 11, 3, 4, 5);
    TrainModelOpts o;
    small_opts(&o);
    o.steps = 12;
    char *dir = tu_mkdtemp("tm_det");
    char *a = tu_join(dir, "a.bin"), *b = tu_join(dir, "b.bin"), *c = tu_join(dir, "c.bin"), *d = tu_join(dir, "d.bin");
    run_to_file(&o, &corpus, 2, a);
    run_to_file(&o, &corpus, 2, b);
    run_to_file(&o, &corpus, 1, c);
    cr_assert(same_file(a, b), "two runs with the same seed and threads differ");
    cr_assert(same_file(a, c), "1 and 2 threads differ");
    o.seed = 4;
    run_to_file(&o, &corpus, 2, d);
    cr_assert(!same_file(a, d), "another seed gave the same weights");
    tu_rmtree(dir);
    free(dir), free(a), free(b), free(c), free(d);
    tm_corpus_free(&corpus);
}

Test(train_model, resume_is_byte_identical, .timeout = 60) {
    TmCorpus corpus;
    make_corpus(&corpus, 41, 40, 11, 3, 4, 6);
    char *dir = tu_mkdtemp("tm_res");
    char *full = tu_join(dir, "full.bin"), *part = tu_join(dir, "part.bin"), *ck = tu_join(dir, "ck.bin");
    char *ck_full = tu_join(dir, "ck_full.bin");
    TrainModelOpts o;
    small_opts(&o);
    o.steps = 16, o.warmup = 4;
    o.checkpoint_path = ck_full;
    run_to_file(&o, &corpus, 2, full);
    // stop after step 7 (checkpoint written), then resume to the end
    o.checkpoint_path = ck, o.checkpoint_every = 3, o.stop_after = 7;
    TrainedModel m;
    TrainModelResult res;
    cr_assert_eq(train_model(&o, &corpus, NULL, &m, &res), CT_OK, "%s", ct_errmsg());
    cr_assert(res.stopped);
    cr_assert_eq(res.steps, 7);
    trained_model_free(&m);
    o.stop_after = 0, o.resume_path = ck;
    cr_assert_eq(train_model(&o, &corpus, NULL, &m, &res), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(res.steps_run, 9);
    cr_assert_eq(train_model_save(&m.lay, m.params, part), CT_OK, "%s", ct_errmsg());
    trained_model_free(&m);
    cr_assert(same_file(full, part), "resumed run differs from the uninterrupted one");
    cr_assert(same_file(ck_full, ck), "final checkpoints differ");
    // a checkpoint refuses other options and a corrupted file
    o.lr = 2e-2;
    cr_assert_eq(train_model(&o, &corpus, NULL, &m, &res), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "--lr"), "%s", ct_errmsg());
    o.lr = 1e-2;
    size_t n;
    unsigned char *bytes = read_all(ck, &n);
    bytes[n / 2] ^= 1;
    tu_write_file(ck, bytes, n);
    free(bytes);
    cr_assert_eq(train_model(&o, &corpus, NULL, &m, &res), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "checksum"), "%s", ct_errmsg());
    tu_rmtree(dir);
    free(dir), free(full), free(part), free(ck), free(ck_full);
    tm_corpus_free(&corpus);
}

// ---- corpus -----------------------------------------------------------------------------------------
Test(train_model, corpus_lines_are_documents) {
    char *tp = tu_shared_path("models/stories260K/tok512.bin");
    Tokenizer tok;
    cr_assert_eq(tokenizer_load(&tok, tp, 0), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(tok.vocab_size, 512);
    const char *lines[] = {"Once upon a time, there was a cat.", "She liked to play.", "The end.",
                           "Tom had a big red ball!", "It was fun."};
    // blank lines, a whitespace-only line, CRLF and a last line without newline
    const char *text = "Once upon a time, there was a cat.\n\nShe liked to play.\r\n  \t\nThe end.\n"
                       "Tom had a big red ball!\nIt was fun.";
    int32_t want[512];
    size_t nw = 0, starts[5];
    for (int i = 0; i < 5; i++) {
        int ids[128], n;
        cr_assert_eq(tokenizer_encode(&tok, lines[i], 1, 0, ids, 128, &n), CT_OK, "%s", ct_errmsg());
        starts[i] = nw;
        for (int j = 0; j < n; j++) want[nw++] = ids[j];
    }
    for (int threads = 1; threads <= 3; threads += 2) {
        ThreadPool *pool = threads > 1 ? pool_create(threads) : NULL;
        TmCorpus c;
        cr_assert_eq(tm_corpus_from_text(&c, &tok, text, strlen(text), 0.3, pool), CT_OK, "%s", ct_errmsg());
        cr_assert_eq(c.docs, 5);
        cr_assert_eq(c.docs_train, 3);   // ceil(0.3 * 5) = 2 held-out documents
        cr_assert_eq(c.n, nw);
        cr_assert_eq(c.n_train, starts[3]);
        cr_assert(!memcmp(c.tokens, want, nw * sizeof(int32_t)), "token stream differs from per-line encoding");
        cr_assert_eq(c.vocab_size, 512);
        tm_corpus_free(&c);
        pool_destroy(pool);
    }
    TmCorpus c;
    cr_assert_eq(tm_corpus_from_text(&c, &tok, text, strlen(text), 0, NULL), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(c.n_train, c.n);
    tm_corpus_free(&c);
    // errors: nothing but blank lines; an empty text
    cr_assert_eq(tm_corpus_from_text(&c, &tok, "\n  \n\r\n", 6, 0.05, NULL), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "no text"), "%s", ct_errmsg());
    cr_assert_eq(tm_corpus_from_text(&c, &tok, "", 0, 0.05, NULL), CT_ERR);
    tokenizer_free(&tok);
    free(tp);
}

// ---- bad inputs -------------------------------------------------------------------------------------
Test(train_model, bad_inputs_fail_clearly) {
    TmCorpus corpus;
    make_corpus(&corpus, 41, 10, 11, 3, 2, 1);
    TrainModelOpts o;
    TrainedModel m;
    TrainModelResult res;
    small_opts(&o);
    o.n_heads = 5, o.n_kv_heads = 5;   // heads do not divide dim 32
    cr_assert_eq(train_model(&o, &corpus, NULL, &m, &res), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "n_heads = 5 must divide dim = 32"), "%s", ct_errmsg());
    small_opts(&o);
    o.n_kv_heads = 3;
    cr_assert_eq(train_model(&o, &corpus, NULL, &m, &res), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "n_kv_heads = 3"), "%s", ct_errmsg());
    small_opts(&o);
    o.seq_len = 1;
    cr_assert_eq(train_model(&o, &corpus, NULL, &m, &res), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "--seq-len must be >= 2"), "%s", ct_errmsg());
    small_opts(&o);
    o.seq_len = 400;   // the train stream holds 8 * 34 tokens
    cr_assert_eq(train_model(&o, &corpus, NULL, &m, &res), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "seq_len + 1 = 401"), "%s", ct_errmsg());
    small_opts(&o);
    o.tokens = 10;   // less than one batch
    cr_assert_eq(train_model(&o, &corpus, NULL, &m, &res), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "no step"), "%s", ct_errmsg());
    small_opts(&o);
    o.checkpoint_every = 5;   // without a path
    cr_assert_eq(train_model(&o, &corpus, NULL, &m, &res), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "checkpoint path"), "%s", ct_errmsg());
    small_opts(&o);
    o.resume_path = "/nonexistent/ck.bin";
    cr_assert_eq(train_model(&o, &corpus, NULL, &m, &res), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "/nonexistent/ck.bin"), "%s", ct_errmsg());
    small_opts(&o);
    corpus.tokens[3] = 41;   // outside the vocabulary
    cr_assert_eq(train_model(&o, &corpus, NULL, &m, &res), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "outside the vocabulary"), "%s", ct_errmsg());
    tm_corpus_free(&corpus);
}
