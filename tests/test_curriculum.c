// test_curriculum.c — the default model's curriculum, tokenizer and held-out evaluation.
//
// References are independent of engine/curriculum.c: lines are classified and parsed here
// with plain string handling, sums are recomputed, the one-hop geography is rebuilt from the
// generated corpus itself, the expected tokenization is derived from the characters of a line,
// and the "perfect" predictor is an oracle over the tokenized answers.
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/curriculum.h"
#include "engine/tokenizer.h"
#include "tests/lib/testutil.h"

// ---- helpers --------------------------------------------------------------------------------

// Generate n lines into memory; returns the malloc'd text.
static char *gen_text(const CurriculumOptions *o, long n, long *counts, size_t *len) {
    char *buf = NULL;
    size_t sz = 0;
    FILE *f = open_memstream(&buf, &sz);
    cr_assert_not_null(f);
    cr_assert_eq(curriculum_generate(o, f, n, counts), CT_OK, "%s", ct_errmsg());
    fclose(f);
    if (len) *len = sz;
    return buf;
}

// Split text into lines in place; returns the array (malloc'd) and sets *n.
static char **split_lines(char *text, int *n) {
    int cap = 1024, k = 0;
    char **v = malloc((size_t)cap * sizeof *v);
    for (char *p = text; *p;) {
        char *e = strchr(p, '\n');
        cr_assert_not_null(e, "last line has no newline");
        *e = '\0';
        if (k == cap) v = realloc(v, (size_t)(cap *= 2) * sizeof *v);
        v[k++] = p;
        p = e + 1;
    }
    *n = k;
    return v;
}

static const char *strip_fact(const char *s) { return strncmp(s, "Fact: ", 6) ? s : s + 6; }
static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }
static int ends(const char *s, const char *p) {
    size_t a = strlen(s), b = strlen(p);
    return a >= b && !strcmp(s + a - b, p);
}

// Independent task classifier (by the template text).
static int classify(const char *line) {
    const char *s = strip_fact(line);
    if (starts(s, "calc: ")) return CUR_ADDITION;
    if (starts(s, "The ") && ends(s, ")") && strstr(s, " (")) return CUR_ACRONYM;
    if (strstr(s, " plays the sport of ") || starts(s, "the sport played by ") || ends(s, " player") ||
        strstr(s, " trains every day for ") || starts(s, "on the weekend "))
        return CUR_FACT;
    if (strstr(s, "the state containing ") && starts(s, "the capital of the state")) return CUR_TWOHOP;
    if (strstr(s, " is in a state whose capital is ")) return CUR_TWOHOP;
    if (strstr(s, " is in the state of ") || starts(s, "the state containing ") ||
        starts(s, "the capital of ") || strstr(s, " is the capital of "))
        return CUR_GEO;
    return ends(s, ".") ? CUR_PROSE : -1;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void write_tok(char **dir, char **path, Tokenizer *t, int *V) {
    *dir = tu_mkdtemp("ct_curriculum");
    cr_assert_not_null(*dir);
    *path = tu_join(*dir, "tok.bin");
    cr_assert_eq(curriculum_write_tokenizer(*path, V), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(tokenizer_load(t, *path, 0), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(t->vocab_size, *V);
}

// ---- generator --------------------------------------------------------------------------------

Test(curriculum, determinism) {
    CurriculumOptions o;
    curriculum_defaults(&o);
    size_t n1, n2, n3;
    char *a = gen_text(&o, 3000, NULL, &n1), *b = gen_text(&o, 3000, NULL, &n2);
    cr_assert_eq(n1, n2);
    cr_assert(memcmp(a, b, n1) == 0, "same seed gave different bytes");
    o.seed = 2;
    char *c = gen_text(&o, 3000, NULL, &n3);
    cr_assert(n3 != n1 || memcmp(a, c, n1) != 0, "seeds 1 and 2 gave the same corpus");
    // The world differs too (sports, geography), not just the line order.
    CurWorld w1, w2;
    cr_assert_eq(curriculum_world_init(&w1, 1), CT_OK);
    cr_assert_eq(curriculum_world_init(&w2, 2), CT_OK);
    int same_geo = !memcmp(w1.state_city, w2.state_city, sizeof w1.state_city);
    int same_people = !memcmp(w1.person_first, w2.person_first, sizeof w1.person_first);
    cr_assert(!same_geo && !same_people);
    curriculum_world_free(&w1);
    curriculum_world_free(&w2);
    free(a);
    free(b);
    free(c);
}

Test(curriculum, word_lists_disjoint_letters_only) {
    int n = curriculum_word_count();
    cr_assert_gt(n, 200);
    cr_assert_null(curriculum_word(n));
    cr_assert_null(curriculum_word(-1));
    char **w = malloc((size_t)n * sizeof *w);
    for (int i = 0; i < n; i++) {
        w[i] = (char *)curriculum_word(i);
        int caps = 0;
        for (const char *p = w[i]; *p; p++) {
            cr_assert((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'), "word \"%s\"", w[i]);
            caps += *p >= 'A' && *p <= 'Z';
        }
        cr_assert_leq(caps, 1, "word \"%s\"", w[i]);
    }
    qsort(w, (size_t)n, sizeof *w, cmp_str);
    for (int i = 1; i < n; i++) cr_assert_str_neq(w[i - 1], w[i], "word listed twice: %s", w[i]);
    free(w);
}

Test(curriculum, heldout_never_in_training) {
    CurriculumOptions o;
    curriculum_defaults(&o);
    CurWorld w;
    cr_assert_eq(curriculum_world_init(&w, o.seed), CT_OK);
    // Sizes of the splits follow from the rules in curriculum.h.
    cr_assert_eq(w.count[CUR_ADDITION][0] + w.count[CUR_ADDITION][1], 90 * 90);
    cr_assert_eq(w.count[CUR_ACRONYM][0] + w.count[CUR_ACRONYM][1], 14 * 14 * 10 + 14 * 14 * 13 * 10);
    cr_assert(w.count[CUR_ADDITION][0] > 600 && w.count[CUR_ADDITION][0] < 1000);
    cr_assert(w.count[CUR_ACRONYM][0] > 2200 && w.count[CUR_ACRONYM][0] < 3300);
    cr_assert_eq(w.count[CUR_FACT][0], CUR_N_PEOPLE);
    cr_assert_eq(w.count[CUR_FACT][1], (CUR_FACT_TEMPLATES - 1) * CUR_N_PEOPLE);
    cr_assert_eq(w.count[CUR_TWOHOP][0], 3 * CUR_N_STATES);
    cr_assert_eq(w.count[CUR_TWOHOP][1], 3 * 3 * CUR_N_STATES);
    cr_assert_eq(w.count[CUR_GEO][0], 0);
    cr_assert_eq(w.count[CUR_PROSE][0] + w.count[CUR_PROSE][1], 0);

    // Every held-out line (prompt + answer + suffix, without the "Fact: " prefix).
    int nh = 0;
    for (int t = 0; t < CUR_NTASKS; t++) nh += w.count[t][0];
    char **held = malloc((size_t)nh * sizeof *held);
    int k = 0;
    CurInstance in;
    for (int t = 0; t < CUR_NTASKS; t++)
        for (int i = 0; i < w.count[t][0]; i++) {
            cr_assert_eq(curriculum_instance(&w, t, 0, i, &in), CT_OK);
            cr_assert_eq(in.task, t);
            char line[512];
            snprintf(line, sizeof line, "%s%s%s", strip_fact(in.prompt), in.answer, in.suffix);
            held[k++] = strdup(line);
        }
    qsort(held, (size_t)nh, sizeof *held, cmp_str);

    size_t len;
    char *text = gen_text(&o, 50000, NULL, &len);
    int n;
    char **lines = split_lines(text, &n);
    cr_assert_eq(n, 50000);
    for (int i = 0; i < n; i++) {
        const char *key = strip_fact(lines[i]);
        cr_assert_null(bsearch(&key, held, (size_t)nh, sizeof *held, cmp_str),
                       "held-out line in training: \"%s\"", lines[i]);
    }
    // Two-hop: the held-out cities' one-hop facts are trained; so is their capital's line.
    for (int s = 0; s < CUR_N_STATES; s++) {
        int c = w.state_heldout_city[s];
        CurInstance g;
        char want_city[256] = "", want_cap[256] = "";
        // Find this city's G0 line and its state's G2 line among the train instances.
        for (int i = 0; i < w.count[CUR_GEO][1]; i++) {
            curriculum_instance(&w, CUR_GEO, 1, i, &g);
            char line[256];
            snprintf(line, sizeof line, "%s%s", g.prompt, g.answer);
            uint32_t code = w.list[CUR_GEO][1][i];
            if (code == (uint32_t)(4 * c + 0)) strcpy(want_city, line);
            if (code == (uint32_t)(4 * s + 2)) strcpy(want_cap, line);
        }
        cr_assert(want_city[0] && want_cap[0]);
        int seen_city = 0, seen_cap = 0;
        for (int i = 0; i < n; i++) {
            seen_city |= !strcmp(strip_fact(lines[i]), want_city);
            seen_cap |= !strcmp(strip_fact(lines[i]), want_cap);
        }
        cr_assert(seen_city && seen_cap, "state %d: one-hop lines \"%s\" (%d) / \"%s\" (%d) not trained",
                  s, want_city, seen_city, want_cap, seen_cap);
    }
    // Facts: every person's sport is trained in some phrasing.
    for (int p = 0; p < CUR_N_PEOPLE; p++) {
        CurInstance f;
        int found = 0;
        for (int i = 0; i < w.count[CUR_FACT][1] && !found; i++) {
            if (w.list[CUR_FACT][1][i] / CUR_FACT_TEMPLATES != (uint32_t)p) continue;
            curriculum_instance(&w, CUR_FACT, 1, i, &f);
            char line[512];
            snprintf(line, sizeof line, "%s%s%s", f.prompt, f.answer, f.suffix);
            for (int j = 0; j < n && !found; j++) found = !strcmp(strip_fact(lines[j]), line);
        }
        cr_assert(found, "person %d: no trained fact line in 50000 lines", p);
    }
    for (int i = 0; i < nh; i++) free(held[i]);
    free(held);
    free(lines);
    free(text);
    curriculum_world_free(&w);
}

Test(curriculum, mixture_proportions) {
    CurriculumOptions o;
    curriculum_defaults(&o);
    long counts[CUR_NTASKS];
    char *text = gen_text(&o, 20000, counts, NULL);
    int n, got[CUR_NTASKS] = {0};
    char **lines = split_lines(text, &n);
    for (int i = 0; i < n; i++) {
        int t = classify(lines[i]);
        cr_assert_geq(t, 0, "unclassifiable line \"%s\"", lines[i]);
        got[t]++;
    }
    double sum = 0;
    for (int t = 0; t < CUR_NTASKS; t++) sum += o.weight[t];
    for (int t = 0; t < CUR_NTASKS; t++) {
        cr_assert_eq(got[t], counts[t], "%s: classifier %d vs generator %ld", curriculum_task_name(t),
                     got[t], counts[t]);
        double frac = (double)got[t] / n, want = o.weight[t] / sum;
        // binomial sd at n = 20000 is <= 0.0035; 0.015 is > 4 sd
        cr_assert(frac > want - 0.015 && frac < want + 0.015, "%s: %.4f of lines, configured %.4f",
                  curriculum_task_name(t), frac, want);
    }
    free(lines);
    free(text);

    // A custom mix: prose off, addition doubled.
    cr_assert_eq(curriculum_parse_mix(&o, "prose=0,addition=0.6"), CT_OK, "%s", ct_errmsg());
    text = gen_text(&o, 5000, counts, NULL);
    lines = split_lines(text, &n);
    memset(got, 0, sizeof got);
    for (int i = 0; i < n; i++) got[classify(lines[i])]++;
    cr_assert_eq(got[CUR_PROSE], 0);
    cr_assert(got[CUR_ADDITION] > 0.46 * n && got[CUR_ADDITION] < 0.53 * n, "addition %d of %d",
              got[CUR_ADDITION], n);   // 0.6 / 1.19 = 0.504
    free(lines);
    free(text);

    // Bad specifications and options fail with a message naming the item.
    cr_assert_eq(curriculum_parse_mix(&o, "poetry=1"), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "poetry"));
    cr_assert_eq(curriculum_parse_mix(&o, "fact=-1"), CT_ERR);
    cr_assert_eq(curriculum_parse_mix(&o, "fact"), CT_ERR);
    cr_assert_eq(curriculum_parse_mix(&o, "acronym=0,addition=0,fact=0,geo=0,twohop=0,prose=0"), CT_OK);
    cr_assert_eq(curriculum_generate(&o, stdout, 1, NULL), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "weights"));
}

Test(curriculum, addition_and_twohop_are_true) {
    CurriculumOptions o;
    curriculum_defaults(&o);
    char *text = gen_text(&o, 30000, NULL, NULL);
    int n;
    char **lines = split_lines(text, &n);
    // The geography as the corpus states it: city -> state, state -> capital (strings).
    enum { MAXN = 256 };
    char city[MAXN][32], cstate[MAXN][32], state[MAXN][32], scap[MAXN][32];
    int nc = 0, ns = 0, n_add = 0, n_two = 0;
    char a1[64], a2[64];
    for (int i = 0; i < n; i++) {
        const char *s = strip_fact(lines[i]);
        int a, b, c;
        char tail;
        if (sscanf(s, "calc: %d+%d=%d%c", &a, &b, &c, &tail) == 3) {
            cr_assert(a >= 10 && a <= 99 && b >= 10 && b <= 99, "%s", s);
            cr_assert_eq(a + b, c, "%s", s);
            n_add++;
            continue;
        }
        int is_cs = sscanf(s, "%63s is in the state of %63s", a1, a2) == 2 ||
                    sscanf(s, "the state containing %63s is %63s", a1, a2) == 2;
        int is_sc = !is_cs && sscanf(s, "the capital of %63s is %63s", a1, a2) == 2 &&
                    strcmp(a1, "the") != 0;
        if (!is_cs && !is_sc && sscanf(s, "%63s is the capital of %63s", a2, a1) == 2) is_sc = 1;
        if (is_cs || is_sc) {
            char (*key)[32] = is_cs ? city : state, (*val)[32] = is_cs ? cstate : scap;
            int *cnt = is_cs ? &nc : &ns, j;
            for (j = 0; j < *cnt && strcmp(key[j], a1); j++) {}
            if (j == *cnt) {
                cr_assert_lt(*cnt, MAXN);
                strcpy(key[j], a1);
                strcpy(val[j], a2);
                (*cnt)++;
            }
            cr_assert_str_eq(val[j], a2, "conflicting one-hop fact: %s", s);
        }
    }
    cr_assert_gt(n_add, 5000);
    cr_assert_eq(nc, CUR_N_STATES * CUR_CITIES_PER_STATE, "cities seen %d", nc);
    cr_assert_eq(ns, CUR_N_STATES);
    // Two-hop training lines and every held-out two-hop answer agree with the one-hop facts.
    CurWorld w;
    cr_assert_eq(curriculum_world_init(&w, o.seed), CT_OK);
    for (int pass = 0; pass < 2; pass++) {
        int count = pass ? w.count[CUR_TWOHOP][0] : n;
        for (int i = 0; i < count; i++) {
            char buf[512];
            const char *s;
            if (pass) {
                CurInstance in;
                cr_assert_eq(curriculum_instance(&w, CUR_TWOHOP, 0, i, &in), CT_OK);
                snprintf(buf, sizeof buf, "%s%s", strip_fact(in.prompt), in.answer);
                s = buf;
            } else {
                s = strip_fact(lines[i]);
            }
            if (sscanf(s, "the capital of the state containing %63s is %63s", a1, a2) != 2 &&
                sscanf(s, "%63s is in a state whose capital is %63s", a1, a2) != 2)
                continue;
            int j, k;
            for (j = 0; j < nc && strcmp(city[j], a1); j++) {}
            cr_assert_lt(j, nc, "two-hop city %s has no one-hop fact", a1);
            for (k = 0; k < ns && strcmp(state[k], cstate[j]); k++) {}
            cr_assert_lt(k, ns);
            cr_assert_str_eq(scap[k], a2, "\"%s\": %s is in %s whose capital is %s", s, a1,
                             cstate[j], scap[k]);
            cr_assert_str_neq(a1, a2, "two-hop line about a capital: %s", s);
            n_two++;
        }
    }
    cr_assert_gt(n_two, 2000);
    // Held-out addition answers are sums too.
    for (int i = 0; i < w.count[CUR_ADDITION][0]; i++) {
        char p[64], ans[16];
        int a, b;
        cr_assert_eq(curriculum_heldout(CUR_ADDITION, i, o.seed, p, sizeof p, ans, sizeof ans), CT_OK);
        cr_assert_eq(sscanf(p, "calc: %d+%d=", &a, &b), 2);
        cr_assert_eq(atoi(ans), a + b, "%s%s", p, ans);
        if (i > 50) break;   // curriculum_heldout rebuilds the world each call
    }
    char small[4];
    cr_assert_eq(curriculum_heldout(CUR_FACT, 0, 1, small, sizeof small, small, sizeof small), CT_ERR);
    cr_assert_eq(curriculum_heldout(CUR_PROSE, 0, 1, a1, sizeof a1, a2, sizeof a2), CT_ERR);
    curriculum_world_free(&w);
    free(lines);
    free(text);
}

// ---- tokenizer ----------------------------------------------------------------------------------

// Expected pieces of a line, from its characters alone: run.c's dummy " " joins the first
// word; " " + letters is one word piece; " (" is one piece; any other character (digits,
// acronym capitals after "(", punctuation, a space before a digit) is its own piece.
static int expected_pieces(const char *line, char out[][32], int max) {
    char buf[600];
    snprintf(buf, sizeof buf, " %s", line);
    int k = 0;
    for (const char *p = buf; *p;) {
        cr_assert_lt(k, max);
        int n = 1;
        if (p[0] == ' ' && p[1] == '(') n = 2;
        else if (p[0] == ' ')
            while ((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= 'A' && p[n] <= 'Z')) n++;
        memcpy(out[k], p, (size_t)n);
        out[k++][n] = '\0';
        p += n;
    }
    return k;
}

Test(curriculum, tokenizer_one_token_per_word) {
    char *dir, *path;
    Tokenizer t;
    int V;
    write_tok(&dir, &path, &t, &V);
    cr_assert_lt(V, 2000, "vocab %d", V);
    cr_assert_str_eq(t.vocab[0], "<unk>");
    cr_assert_str_eq(t.vocab[1], "\n<s>\n");
    cr_assert_str_eq(t.vocab[2], "\n</s>\n");
    cr_assert_str_eq(t.vocab[3 + 0x41], "<0x41>");
    // No piece holds two digits, two capitals, or a non-letter after its first character
    // (apart from " ("), so digits, acronym letters and punctuation can never merge.
    for (int i = 259; i < V; i++) {
        const char *s = t.vocab[i];
        int digits = 0, caps = 0;
        for (const char *p = s; *p; p++) {
            digits += *p >= '0' && *p <= '9';
            caps += *p >= 'A' && *p <= 'Z';
            if (p > s + 1 || (p == s + 1 && s[0] != ' '))
                cr_assert((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || !strcmp(s, " ("),
                          "piece %d \"%s\"", i, s);
        }
        cr_assert(digits <= 1 && caps <= 1, "piece %d \"%s\"", i, s);
        cr_assert(t.piece_len[i] == 1 || s[0] == ' ', "piece %d \"%s\" spans characters without a space", i, s);
    }
    // Every word alone: BOS + one token " word".
    int ids[64], n;
    for (int i = 0; i < curriculum_word_count(); i++) {
        const char *wd = curriculum_word(i);
        cr_assert_eq(tokenizer_encode(&t, wd, 1, 0, ids, 64, &n), CT_OK, "%s", ct_errmsg());
        cr_assert_eq(n, 2, "\"%s\" -> %d tokens", wd, n - 1);
        cr_assert_eq(t.vocab[ids[1]][0], ' ');
        cr_assert_str_eq(t.vocab[ids[1]] + 1, wd);
    }
    // Digits and capitals stay single: "calc: 36+59=95" and "(NDAG)".
    const char *digits_line = "calc: 36+59=95";
    cr_assert_eq(tokenizer_encode(&t, digits_line, 0, 0, ids, 64, &n), CT_OK);
    const char *want_d[] = {" calc", ":", " ", "3", "6", "+", "5", "9", "=", "9", "5"};
    cr_assert_eq(n, 11);
    for (int i = 0; i < n; i++) cr_assert_str_eq(t.vocab[ids[i]], want_d[i]);
    cr_assert_eq(tokenizer_encode(&t, "The National Digital Analytics Group (NDAG)", 0, 0, ids, 64, &n), CT_OK);
    const char *want_a[] = {" The", " National", " Digital", " Analytics", " Group", " (", "N", "D", "A", "G", ")"};
    cr_assert_eq(n, 11);
    for (int i = 0; i < n; i++) cr_assert_str_eq(t.vocab[ids[i]], want_a[i]);

    // Sample lines of every task: the expected pieces, and decode(encode(line)) == line.
    CurriculumOptions o;
    curriculum_defaults(&o);
    char *text = gen_text(&o, 3000, NULL, NULL);
    int nl;
    char **lines = split_lines(text, &nl);
    static int lid[256];
    static char want[256][32];
    long total = 0;
    for (int i = 0; i < nl; i++) {
        cr_assert_eq(tokenizer_encode(&t, lines[i], 1, 0, lid, 256, &n), CT_OK, "%s", ct_errmsg());
        int m = expected_pieces(lines[i], want, 256);
        cr_assert_eq(n - 1, m, "\"%s\": %d tokens, expected %d", lines[i], n - 1, m);
        char back[600] = "";
        for (int j = 1; j < n; j++) {
            cr_assert_str_eq(t.vocab[lid[j]], want[j - 1], "\"%s\" token %d", lines[i], j);
            cr_assert(lid[j] >= 259, "byte fallback in \"%s\"", lines[i]);
            strcat(back, tokenizer_decode(&t, lid[j - 1], lid[j]));
        }
        cr_assert_str_eq(back, lines[i]);
        total += n;
    }
    cr_assert_lt(total / nl, 40, "mean tokens per line %ld", total / nl);
    free(lines);
    free(text);
    tokenizer_free(&t);
    tu_rmtree(dir);
    free(dir);
    free(path);
}

// ---- evaluation -----------------------------------------------------------------------------------

// Oracle: knows the tokenized lines of every instance; returns the next token of the first
// line that continues the given tokens. wrong_task's answers are replaced by token 3.
typedef struct Oracle {
    int n, len[2048], ids[2048][64], task[2048];
    int wrong_task;
    long calls;
} Oracle;

static int oracle_predict(void *ctx, const int *tokens, int n, int *next) {
    Oracle *o = ctx;
    o->calls++;
    for (int i = 0; i < o->n; i++) {
        if (o->len[i] <= n || memcmp(o->ids[i], tokens, (size_t)n * sizeof *tokens)) continue;
        *next = o->task[i] == o->wrong_task ? 3 : o->ids[i][n];
        return CT_OK;
    }
    return ct_error("oracle: no instance continues these %d tokens", n);
}

static void oracle_build(Oracle *o, const CurWorld *w, const Tokenizer *t, int split, int per_task) {
    memset(o, 0, sizeof *o);
    o->wrong_task = -1;
    for (int task = 0; task < CUR_NTASKS; task++)
        for (int i = 0; i < w->count[task][split] && i < per_task; i++) {
            CurInstance in;
            char line[256];
            cr_assert_eq(curriculum_instance(w, task, split, i, &in), CT_OK);
            snprintf(line, sizeof line, "%s%s", in.prompt, in.answer);
            cr_assert_lt(o->n, 2048);
            cr_assert_eq(tokenizer_encode(t, line, 1, 0, o->ids[o->n], 64, &o->len[o->n]), CT_OK);
            o->task[o->n++] = task;
        }
}

Test(curriculum, eval_oracle_and_random_model) {
    char *dir, *path;
    Tokenizer t;
    int V;
    write_tok(&dir, &path, &t, &V);
    CurWorld w;
    cr_assert_eq(curriculum_world_init(&w, 3), CT_OK);
    static Oracle o;
    const int per = 40;
    for (int split = 0; split < 2; split++) {
        oracle_build(&o, &w, &t, split, per);
        CurEvalResult r;
        cr_assert_eq(curriculum_eval(&w, &t, split, per, oracle_predict, &o, &r), CT_OK, "%s", ct_errmsg());
        for (int task = 0; task < CUR_NTASKS; task++) {
            int want_n = w.count[task][split] < per ? w.count[task][split] : per;
            cr_assert_eq(r.n[task], want_n, "%s split %d", curriculum_task_name(task), split);
            if (want_n) cr_assert_eq(r.acc[task], 1.0, "%s split %d", curriculum_task_name(task), split);
        }
        cr_assert_eq(r.n[CUR_PROSE], 0);
        cr_assert_eq(r.n[CUR_GEO], split ? per : 0);
        // The same oracle wrong on addition only: addition 0, the others still 1.
        o.wrong_task = CUR_ADDITION;
        cr_assert_eq(curriculum_eval(&w, &t, split, per, oracle_predict, &o, &r), CT_OK);
        cr_assert_eq(r.acc[CUR_ADDITION], 0.0);
        cr_assert_eq(r.acc[CUR_ACRONYM], 1.0);
        cr_assert_eq(r.acc[CUR_TWOHOP], 1.0);
    }
    // Answers are decoded token by token, stopping at the first miss: a right instance
    // costs one predictor call per answer token ("NDAG)" is 5).
    oracle_build(&o, &w, &t, 0, 1);
    CurEvalResult r1;
    long before = o.calls;
    cr_assert_eq(curriculum_eval(&w, &t, 0, 1, oracle_predict, &o, &r1), CT_OK);
    int answer_tokens_total = 0;
    for (int task = 0; task < CUR_NTASKS; task++) {
        if (!w.count[task][0]) continue;
        CurInstance x;
        curriculum_instance(&w, task, 0, 0, &x);
        int np, nl;
        int ids[128];
        char line[256];
        snprintf(line, sizeof line, "%s%s", x.prompt, x.answer);
        tokenizer_encode(&t, x.prompt, 1, 0, ids, 128, &np);
        tokenizer_encode(&t, line, 1, 0, ids, 128, &nl);
        answer_tokens_total += nl - np;
    }
    cr_assert_eq(o.calls - before, answer_tokens_total);

    // A tiny random model: accuracies are fractions in [0, 1] with the right counts.
    char *mpath = tu_join(dir, "m.bin");
    Config c = {.dim = 32, .hidden_dim = 64, .n_layers = 1, .n_heads = 2, .n_kv_heads = 2,
                .vocab_size = V, .seq_len = 64, .shared_classifier = 1};
    cr_assert_eq(model_write_random(mpath, &c, 11), CT_OK, "%s", ct_errmsg());
    Model m;
    cr_assert_eq(model_load_llama2c(&m, mpath), CT_OK, "%s", ct_errmsg());
    CurEvalResult r;
    cr_assert_eq(curriculum_eval_model(&w, &t, &m, NULL, CUR_SPLIT_HELDOUT, 25, &r), CT_OK, "%s", ct_errmsg());
    for (int task = 0; task < CUR_NTASKS; task++) {
        cr_assert(r.acc[task] >= 0 && r.acc[task] <= 1);
        cr_assert_eq(r.acc[task] * r.n[task], (double)r.correct[task]);
    }
    cr_assert_eq(r.n[CUR_ADDITION], 25);
    cr_assert_eq(r.n[CUR_TWOHOP], 25);
    CurEvalResult r2;
    cr_assert_eq(curriculum_eval_model(&w, &t, &m, NULL, CUR_SPLIT_HELDOUT, 25, &r2), CT_OK);
    cr_assert(!memcmp(r.correct, r2.correct, sizeof r.correct));
    // The predictor's KV-cache reuse: sequences sharing prefixes of random lengths, each
    // prediction compared with a fresh run of the whole sequence.
    CurModelPredictor *mp;
    cr_assert_eq(curriculum_predictor_init(&mp, &m, NULL), CT_OK, "%s", ct_errmsg());
    TuRng rng;
    tu_rng_seed(&rng, 5);
    int seq[40] = {TOK_BOS}, changed_in_cache = 0;
    for (int it = 0; it < 60; it++) {
        int n = 2 + (int)tu_rng_below(&rng, 38);
        int keep = (int)tu_rng_below(&rng, (uint32_t)n);   // positions kept from the last call
        for (int p = keep > 0 ? keep : 1; p < n; p++) seq[p] = 259 + (int)tu_rng_below(&rng, (uint32_t)(V - 259));
        int got;
        cr_assert_eq(curriculum_predict_model(mp, seq, n, &got), CT_OK, "%s", ct_errmsg());
        RunState s;
        cr_assert_eq(runstate_init(&s, &m.c, 64), CT_OK);
        float *lg = NULL;
        for (int p = 0; p < n; p++) lg = model_forward(&m, &s, seq[p], p, NULL, NULL);
        int best = 0;
        for (int v = 1; v < V; v++) if (lg[v] > lg[best]) best = v;
        runstate_free(&s);
        cr_assert_eq(got, best, "call %d (n %d, keep %d)", it, n, keep);
        changed_in_cache += keep < n - 1;
    }
    cr_assert_gt(changed_in_cache, 20);   // most calls changed tokens inside the cache
    int too_long[80] = {TOK_BOS}, dummy;
    cr_assert_eq(curriculum_predict_model(mp, too_long, 65, &dummy), CT_ERR);
    curriculum_predictor_free(mp);
    // A tokenizer of another vocabulary size is refused.
    Model m2 = m;
    m2.c.vocab_size = V + 1;
    cr_assert_eq(curriculum_eval_model(&w, &t, &m2, NULL, 0, 5, &r), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "vocab_size"));
    model_free(&m);
    curriculum_world_free(&w);
    tokenizer_free(&t);
    tu_rmtree(dir);
    free(dir);
    free(path);
    free(mpath);
}

Test(curriculum, heldout_tsv_and_file) {
    char *dir = tu_mkdtemp("ct_curriculum");
    char *tsv = tu_join(dir, "h.tsv"), *corpus = tu_join(dir, "c.txt");
    CurWorld w;
    cr_assert_eq(curriculum_world_init(&w, 5), CT_OK);
    cr_assert_eq(curriculum_write_heldout_tsv(&w, tsv), CT_OK, "%s", ct_errmsg());
    size_t n;
    char *s = tu_read_file(tsv, &n);
    cr_assert(starts(s, "# ctrace curriculum held-out v1 seed=5\ntask\tprompt\tanswer\tsuffix\n"));
    int rows = 0;
    for (size_t i = 0; i < n; i++) rows += s[i] == '\n';
    int want = 0;
    for (int t = 0; t < CUR_NTASKS; t++) want += w.count[t][0];
    cr_assert_eq(rows, want + 2);
    cr_assert(strstr(s, "\naddition\tcalc: "));
    free(s);
    CurriculumOptions o;
    curriculum_defaults(&o);
    o.seed = 5;
    cr_assert_eq(curriculum_generate_file(&o, corpus, 100, NULL), CT_OK, "%s", ct_errmsg());
    s = tu_read_file(corpus, &n);
    size_t m;
    char *ref = gen_text(&o, 100, NULL, &m);
    cr_assert_eq(n, m);
    cr_assert(!memcmp(s, ref, n));
    free(s);
    free(ref);
    curriculum_world_free(&w);
    tu_rmtree(dir);
    free(dir);
    free(tsv);
    free(corpus);
}

// The world of seed 1 is pinned: a model trained on a seed-1 corpus is scored on exactly these
// held-out instances, so a change to the word lists, the RNG or the draw order must be a
// deliberate one (retrain the default model and update these strings).
Test(curriculum, seed1_world_pinned) {
    static const struct { int task; const char *prompt, *answer; } want[] = {
        {CUR_ACRONYM, "The Central Trade Youth Group (", "CTYG)"},
        {CUR_ADDITION, "calc: 60+97=", "157"},
        {CUR_FACT, "Pia Pruitt trains every day for", " rowing"},
        {CUR_TWOHOP, "Fact: the capital of the state containing Yarby is", " Garrow"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char p[256], a[64];
        cr_assert_eq(curriculum_heldout(want[i].task, 0, 1, p, sizeof p, a, sizeof a), CT_OK, "%s", ct_errmsg());
        cr_assert_str_eq(p, want[i].prompt);
        cr_assert_str_eq(a, want[i].answer);
    }
}
