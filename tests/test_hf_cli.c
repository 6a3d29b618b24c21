// test_hf_cli.c — every subcommand on a Hugging Face model directory, end to end through the
// ctrace binary: each tiny model of ../shared/models/hf-tiny (which ships no tokenizer) is
// linked into a temp directory next to a tokenizer.json written by tests/lib/hf_fixtures, and
// the directory alone is passed (no -z): generate -p, sample, train-clt, clt-eval, attribute
// -p (+ --raw), validate, intervene and casestudy must all succeed and write what they promise.
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/common.h"
#include "tests/lib/hf_fixtures.h"
#include "tests/lib/testutil.h"

static char *ctrace_bin(void) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert_gt(n, 0);
    exe[n] = 0;
    for (int k = 0; k < 2; k++) {  // .../build/tests/test_hf_cli -> .../build
        char *slash = strrchr(exe, '/');
        cr_assert_not_null(slash);
        *slash = 0;
    }
    char *bin = tu_join(exe, "ctrace");
    struct stat st;
    cr_assert_eq(stat(bin, &st), 0, "%s is missing: build it (make) before the tests", bin);
    return bin;
}

// Run "ctrace <args>" (a printf format); assert exit 0; stdout in dir/out.txt.
static void run_ok(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void run_ok(const char *dir, const char *fmt, ...) {
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char *bin = ctrace_bin();
    snprintf(cmd, sizeof cmd, "%s %s >%s/out.txt 2>%s/err.txt", bin, args, dir, dir);
    int st = system(cmd);
    char errp[1024];
    snprintf(errp, sizeof errp, "%s/err.txt", dir);
    size_t n = 0;
    char *err = tu_read_file(errp, &n);
    if (err) err = realloc(err, n + 1), err[n] = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "ctrace %s failed (%d): %s", args, st, err ? err : "");
    free(err);
    free(bin);
}

static int nonempty(const char *dir, const char *name) {
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 && st.st_size > 0;
}

static char *model_dir(const char *arch) {
    char *dir = tu_mkdtemp("ct_hfcli");
    cr_assert_not_null(dir);
    char rel[256], *src, *dst;
    const char *files[] = {"config.json", "model.safetensors"};
    for (int k = 0; k < 2; k++) {
        snprintf(rel, sizeof rel, "models/hf-tiny/%s/%s", arch, files[k]);
        src = tu_shared_path(rel);
        char abs[4096];
        cr_assert_not_null(realpath(src, abs), "%s missing", src);
        dst = tu_join(dir, files[k]);
        cr_assert_eq(symlink(abs, dst), 0);
        free(src), free(dst);
    }
    HfFixtureOpts o;
    if (!strcmp(arch, "gemma2")) {
        hf_fixture_defaults(&o, 384);
        o.add_bos = 1;
        cr_assert_eq(hf_fixture_sentencepiece(dir, &o), 0, "%s", ct_errmsg());
    } else {
        int V = !strcmp(arch, "llama") ? 512 : !strcmp(arch, "qwen3") ? 320 : 256;
        hf_fixture_defaults(&o, V);
        o.extra_tokens = 0;
        o.split_regex = 0;
        if (!strcmp(arch, "llama")) o.bos_id = 1, o.eos_id = 2, o.add_bos = 1;
        else if (!strcmp(arch, "qwen3")) o.bos_id = -2, o.eos_id = -1, o.add_bos = 0;
        else o.bos_id = -2, o.eos_id = -2, o.add_bos = 0;  // GPT-2: 256 byte tokens only
        cr_assert_eq(hf_fixture_bytelevel(dir, &o), 0, "%s", ct_errmsg());
    }
    return dir;
}

static void every_command(const char *arch) {
    char *d = model_dir(arch);
    run_ok(d, "generate %s -p 'Once upon a time' -n 12 -t 0", d);
    // sample: the random tiny Gemma-2 (tied, sqrt(D)-scaled embeddings) predicts its input
    // token, so from <bos> it only ever samples <bos>: its stories are all empty, which sample
    // rightly refuses.  The transcoder trains on the fixture's prose for every model.
    if (strcmp(arch, "gemma2") != 0) {
        run_ok(d, "sample %s -n 3000 --seed 1 --max-len 48 -o %s/sampled.txt", d, d);
        cr_assert(nonempty(d, "sampled.txt"), "%s: sample wrote nothing", arch);
    }
    {
        // the fixture text, one sentence per story (blank lines between)
        char *path = tu_join(d, "corpus.txt");
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        for (int rep = 0; rep < 8; rep++)
            for (const char *c = hf_fixture_text(); *c; c++) {
                fputc(*c == '\n' ? ' ' : *c, f);
                if (*c == '.') fputs("\n\n", f);
            }
        fclose(f);
        free(path);
    }
    run_ok(d, "train-clt %s --corpus %s/corpus.txt --features 48 --tokens 4000 --ctx 32 --batch 64 --seed 1 -o %s/clt",
           d, d, d);
    cr_assert(nonempty(d, "clt/config.yaml"), "%s: train-clt wrote no config.yaml", arch);
    run_ok(d, "clt-eval %s %s/clt --text %s/corpus.txt --ctx 32 --max-tokens 1500", d, d, d);
    run_ok(d, "attribute %s --clt %s/clt -p 'the quick brown fox' -o %s/g.json --raw %s/g.ctg", d, d, d, d);
    cr_assert(nonempty(d, "g.json") && nonempty(d, "g.ctg"), "%s: attribute wrote no graph", arch);
    run_ok(d, "validate %s/g.ctg %s --clt %s/clt --top 3", d, d, d);
    run_ok(d, "intervene %s --clt %s/clt -p 'the quick brown fox' --scale 0:1:0=2 --mode constrained", d, d);
    run_ok(d, "casestudy %s --clt %s/clt --case fox 'the quick brown' ' fox' -o %s/cs", d, d, d);
    cr_assert(nonempty(d, "cs/fox.json") && nonempty(d, "cs/fox.svg"), "%s: casestudy wrote no graph", arch);
    tu_rmtree(d);
    free(d);
}

Test(hf_cli, llama, .timeout = 300) { every_command("llama"); }
Test(hf_cli, qwen3, .timeout = 300) { every_command("qwen3"); }
Test(hf_cli, gemma2, .timeout = 300) { every_command("gemma2"); }
Test(hf_cli, gpt2, .timeout = 300) { every_command("gpt2"); }
