// cmd_train_model.c — `ctrace train-model`: train a small Llama-family model from scratch on a
// text corpus (one document per line) and write it as a llama2.c checkpoint.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "engine/tokenizer.h"
#include "engine/train_model.h"

void help_train_model(void) {
    TrainModelOpts d;
    train_model_opts_default(&d);
    printf("usage: ctrace train-model --corpus FILE -z TOKENIZER -o MODEL.bin [options]\n\n"
           "Trains a Llama-family transformer (llama2.c semantics: RMSNorm, RoPE, GQA, SwiGLU) from\n"
           "scratch with a hand-written backward pass, and writes a llama2.c checkpoint that every\n"
           "other ctrace command reads.  Each non-blank line of the corpus is one document, encoded\n"
           "as BOS + tokens (llama2.c convention: no EOS; the next BOS ends a document).  Steps draw\n"
           "random windows of seq_len + 1 tokens from the concatenated documents; the last\n"
           "--heldout fraction of the lines is kept out for a held-out loss.  AdamW (0.9, 0.95,\n"
           "1e-8; decay on matrices only), linear warm-up then cosine decay to lr/10, global\n"
           "gradient-norm clipping.  The vocabulary is the tokenizer's.  Results are byte-identical\n"
           "for a seed, whatever --threads.\n"
           "  --corpus FILE          UTF-8 text, one document per line (required)\n"
           "  -z, --tokenizer FILE   llama2.c tokenizer.bin (required)\n"
           "  -o FILE                output model (required)\n"
           "  --dim D                model width (default %d)\n"
           "  --layers L             (default %d)\n"
           "  --heads H              query heads; must divide dim (default %d)\n"
           "  --kv-heads K           key/value heads; must divide heads (default %d)\n"
           "  --hidden F             MLP hidden width (default 3 * dim)\n"
           "  --seq-len T            context length of training and of the model (default %d)\n"
           "  --untied               a separate classifier instead of the shared embedding\n"
           "  --batch B              sequences per step (default %d)\n"
           "  --steps N              optimizer steps (default %ld)\n"
           "  --tokens N             instead of --steps: N / (batch * seq-len) steps\n"
           "  --lr X                 peak learning rate (default %g)\n"
           "  --warmup N             warm-up steps (default min(100, steps / 10))\n"
           "  --wd X                 weight decay (default %g)\n"
           "  --clip X               gradient-norm clip, 0 = off (default %g)\n"
           "  --seed S               (default %llu)\n"
           "  --heldout X            held-out fraction of the lines (default 0.05; 0 = none)\n"
           "  --eval-every K         held-out loss every K steps (default: only at the end)\n"
           "  --eval-tokens N        predictions per held-out evaluation (default %ld)\n"
           "  --checkpoint FILE      training state (weights, Adam moments, step, RNG), atomic\n"
           "  --checkpoint-every K   steps between checkpoints (default: only at the end)\n"
           "  --resume FILE          continue a checkpoint (same options and corpus); the final\n"
           "                         weights are byte-identical to an uninterrupted run\n"
           "  --stop-after N         stop after step N with a checkpoint, as if killed (testing)\n"
           "  --threads N            worker threads (default: all cores)\n"
           "  --quiet                no progress lines (they go to stderr when it is a terminal)\n",
           d.dim, d.n_layers, d.n_heads, d.n_kv_heads, d.seq_len, d.batch, d.steps, d.lr, d.weight_decay,
           d.clip, (unsigned long long)d.seed, d.eval_tokens);
}

int cmd_train_model(int argc, char **argv) {
    const char *cmd = "train-model", *corpus_path = NULL, *tok_path = NULL, *out = NULL;
    TrainModelOpts o;
    train_model_opts_default(&o);
    o.progress = isatty(2);
    long lv, threads = 0;
    double dv, heldout = 0.05;
    int have_steps = 0, have_tokens = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define INTOPT(name, lo, hi, dst) else if (!strcmp(a, name)) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, lo, hi, &lv)) return 2; dst = lv; }
#define DBLOPT(name, lo, hi, dst) else if (!strcmp(a, name)) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_float(cmd, a, v, lo, hi, &dv)) return 2; dst = dv; }
        if (!strcmp(a, "-z") || !strcmp(a, "--tokenizer")) { if (!(tok_path = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--corpus")) { if (!(corpus_path = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "-o")) { if (!(out = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--checkpoint")) { if (!(o.checkpoint_path = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--resume")) { if (!(o.resume_path = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--untied")) o.shared_classifier = 0;
        else if (!strcmp(a, "--quiet")) o.progress = 0;
        else if (!strcmp(a, "--seed")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_u64(cmd, a, v, &o.seed)) return 2; }
        else if (!strcmp(a, "--steps")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 1, 1L << 40, &lv)) return 2; o.steps = lv; have_steps = 1; }
        else if (!strcmp(a, "--tokens")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 1, 1L << 50, &lv)) return 2; o.tokens = lv; have_tokens = 1; }
        INTOPT("--dim", 1, 1 << 16, o.dim)
        INTOPT("--layers", 1, 1024, o.n_layers)
        INTOPT("--heads", 1, 1024, o.n_heads)
        INTOPT("--kv-heads", 1, 1024, o.n_kv_heads)
        INTOPT("--hidden", 1, 1 << 20, o.hidden_dim)
        INTOPT("--seq-len", 1, 1 << 16, o.seq_len)
        INTOPT("--batch", 1, 1 << 16, o.batch)
        INTOPT("--warmup", 0, 1L << 40, o.warmup)
        INTOPT("--eval-every", 0, 1L << 40, o.eval_every)
        INTOPT("--eval-tokens", 1, 1L << 40, o.eval_tokens)
        INTOPT("--checkpoint-every", 0, 1L << 40, o.checkpoint_every)
        INTOPT("--stop-after", 0, 1L << 40, o.stop_after)
        INTOPT("--threads", 0, 4096, threads)
        DBLOPT("--lr", 0, 10, o.lr)
        DBLOPT("--wd", 0, 100, o.weight_decay)
        DBLOPT("--clip", 0, 1e9, o.clip)
        DBLOPT("--heldout", 0, 0.5, heldout)
        else if (a[0] == '-') return cli_usage(cmd, "unknown option %s", a);
        else return cli_usage(cmd, "unexpected argument '%s'", a);
#undef INTOPT
#undef DBLOPT
    }
    if (!corpus_path) return cli_usage(cmd, "missing --corpus FILE (one document per line)");
    if (!tok_path) return cli_usage(cmd, "missing -z TOKENIZER (a llama2.c tokenizer.bin)");
    if (!out) return cli_usage(cmd, "missing -o MODEL.bin");
    if (have_steps && have_tokens) return cli_usage(cmd, "give --steps or --tokens, not both");
    if (o.dim % o.n_heads != 0) return cli_usage(cmd, "--heads %d must divide --dim %d", o.n_heads, o.dim);
    if ((o.dim / o.n_heads) % 2 != 0)
        return cli_usage(cmd, "the head width dim/heads = %d must be even (RoPE rotates pairs)", o.dim / o.n_heads);
    if (o.n_heads % o.n_kv_heads != 0) return cli_usage(cmd, "--kv-heads %d must divide --heads %d", o.n_kv_heads, o.n_heads);
    if (o.seq_len < 2) return cli_usage(cmd, "--seq-len must be >= 2, got %d", o.seq_len);
    if ((o.checkpoint_every > 0 || o.stop_after > 0) && !o.checkpoint_path && !o.resume_path)
        return cli_usage(cmd, "--checkpoint-every and --stop-after need --checkpoint FILE");
    if (o.resume_path && !o.checkpoint_path) o.checkpoint_path = o.resume_path;   // keep checkpointing there

    Tokenizer tok;
    MappedFile mf = {0};
    TmCorpus corpus = {0};
    TrainedModel m = {0};
    ThreadPool *pool = NULL;
    int rc = 1, have_tok = 0, have_text = 0;
    if (tokenizer_load(&tok, tok_path, 0) != CT_OK) return cli_fail(cmd);
    have_tok = 1;
    if (ct_map_file(&mf, corpus_path) != CT_OK) goto done;
    have_text = 1;
    if (mf.size == 0) {
        ct_error("%s: the corpus is empty (expected UTF-8 text, one document per line)", corpus_path);
        goto done;
    }
    if (!(pool = pool_create((int)threads))) goto done;
    double t0 = ct_now();
    if (tm_corpus_from_text(&corpus, &tok, (const char *)mf.data, mf.size, heldout, pool) != CT_OK) {
        ct_error_ctx("%s", corpus_path);
        goto done;
    }
    if (o.progress)
        fprintf(stderr, "train-model: %s: %ld documents, %zu tokens (%zu train, %zu held-out), encoded in %.1f s\n",
                corpus_path, corpus.docs, corpus.n, corpus.n_train, corpus.n - corpus.n_train, ct_now() - t0);
    TrainModelResult r;
    if (train_model(&o, &corpus, pool, &m, &r) != CT_OK) goto done;
    if (r.stopped) {
        printf("train-model: stopped after step %ld of %ld; checkpoint %s (continue with --resume)\n", r.steps,
               o.tokens > 0 ? (long)(o.tokens / ((long long)o.batch * o.seq_len)) : o.steps, o.checkpoint_path);
        rc = 0;
        goto done;
    }
    if (train_model_save(&m.lay, m.params, out) != CT_OK) goto done;
    char ho[64];
    if (r.eval_predictions > 0) snprintf(ho, sizeof ho, "%.4f (%ld tokens)", r.eval_loss, r.eval_predictions);
    else snprintf(ho, sizeof ho, "n/a");
    printf("train-model: %ld steps, %lld tokens, train loss %.4f, held-out loss %s, %.1f s, %.0f tok/s, "
           "%zu parameters -> %s\n",
           r.steps, r.tokens, r.train_loss, ho, r.seconds, r.tok_per_s, m.lay.n, out);
    rc = 0;
done:
    if (rc) cli_fail(cmd);
    trained_model_free(&m);
    tm_corpus_free(&corpus);
    pool_destroy(pool);
    if (have_text) ct_unmap_file(&mf);
    if (have_tok) tokenizer_free(&tok);
    return rc;
}
