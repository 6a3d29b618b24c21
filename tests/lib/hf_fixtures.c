// hf_fixtures.c — tokenizer.json writers for tests (see hf_fixtures.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tests/lib/hf_fixtures.h"

#include <jansson.h>
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

// Written for these fixtures: short plain prose with contractions, digits, punctuation and
// line breaks, so the learned merges look like a real tokenizer's first few hundred.
static const char FIXTURE_TEXT[] =
    "Once upon a time, there was a little girl named Lily. She lived in a small house near the "
    "river with her mother, her father and a very old cat called Tom. Every morning Lily went "
    "to the window and looked at the water. The water was blue and the sky was blue too.\n"
    "One day her mother said, \"Lily, we are going to the park today. Do you want to come?\" "
    "Lily was so happy that she jumped up and down. \"Yes, I want to come! Can Tom come too?\" "
    "Her mother laughed. \"Cats don't like the park, but we can bring him a nice fish.\"\n"
    "They walked to the park together. The sun was warm and the grass was green. Lily saw a "
    "big red ball under a tree. She ran to the ball and kicked it as hard as she could. The "
    "ball went up, up, up and then it came down in the river. Lily was sad. \"My ball is gone,\" "
    "she said. A boy named Ben heard her. He was seven years old and he was a very good "
    "swimmer. \"I'll get it for you,\" he said, and he jumped into the water.\n"
    "Ben swam to the ball and brought it back. Lily smiled and said, \"Thank you, Ben! You are "
    "my friend now.\" They played with the ball for 2 hours, from 10 to 12. Then they were "
    "hungry, so they sat on the grass and ate 3 apples, 4 sandwiches and 5 cookies.\n"
    "When the sun went down, Lily and her mother walked home. Tom the cat was waiting at the "
    "door. Lily gave him the fish and told him about the park, the ball, the river and her "
    "new friend Ben. Tom didn't say anything, but he looked happy too. That night Lily "
    "dreamed about the river, the big red ball and the blue sky. It was the best day of the "
    "year, and she knew that tomorrow would be a good day too.\n"
    "The next day it was raining. Lily could not go to the park, so she stayed in the house "
    "and drew a picture of the river. She drew the water, the sun, the tree, Ben and the ball. "
    "Her father said it was the most beautiful picture he had ever seen. He put it on the wall "
    "next to the window, where Lily could see it every morning.\n";

const char *hf_fixture_text(void) { return FIXTURE_TEXT; }

void hf_fixture_defaults(HfFixtureOpts *o, int vocab_size) {
    memset(o, 0, sizeof *o);
    o->vocab_size = vocab_size;
    o->bos_id = o->eos_id = -1;
    o->extra_tokens = 1;
    o->add_bos = 1;
    o->split_regex = 1;
}

// ---- a tiny BPE trainer -------------------------------------------------------------------

typedef struct Trainer {
    int V;
    char **tok;          // (V) token strings; NULL = id not used (yet)
    int *head;           // ids handed out in order to base tokens and merges
    int n_head, next_head;
    int **w, *wn, *wc;   // unique words: symbol ids, length, count
    int nw, capw;
    int (*merge)[2];     // learned merges (left id, right id)
    int n_merges;
} Trainer;

static void tr_free(Trainer *t) {
    if (t->tok)
        for (int i = 0; i < t->V; i++) free(t->tok[i]);
    free(t->tok);
    free(t->head);
    for (int i = 0; i < t->nw; i++) free(t->w[i]);
    free(t->w);
    free(t->wn);
    free(t->wc);
    free(t->merge);
}

static int tr_find(const Trainer *t, const char *s) {
    for (int i = 0; i < t->V; i++)
        if (t->tok[i] && !strcmp(t->tok[i], s)) return i;
    return -1;
}

// The next free id for a base token or a merge, -1 when the vocabulary is full.
static int tr_new(Trainer *t, const char *s) {
    if (t->next_head >= t->n_head) return -1;
    int id = t->head[t->next_head++];
    t->tok[id] = strdup(s);
    return id;
}

static int tr_add_word(Trainer *t, const int *sym, int n) {
    for (int i = 0; i < t->nw; i++)
        if (t->wn[i] == n && !memcmp(t->w[i], sym, (size_t)n * sizeof *sym)) {
            t->wc[i]++;
            return 0;
        }
    if (t->nw == t->capw) {
        t->capw = t->capw ? t->capw * 2 : 64;
        t->w = realloc(t->w, (size_t)t->capw * sizeof *t->w);
        t->wn = realloc(t->wn, (size_t)t->capw * sizeof *t->wn);
        t->wc = realloc(t->wc, (size_t)t->capw * sizeof *t->wc);
        if (!t->w || !t->wn || !t->wc) return ct_error("hf fixture: out of memory");
    }
    t->w[t->nw] = malloc((size_t)(n ? n : 1) * sizeof *sym);
    if (!t->w[t->nw]) return ct_error("hf fixture: out of memory");
    memcpy(t->w[t->nw], sym, (size_t)n * sizeof *sym);
    t->wn[t->nw] = n;
    t->wc[t->nw++] = 1;
    return 0;
}

typedef struct PairW {
    uint64_t key;   // left id << 32 | right id
    long w;         // count of the word it occurs in
} PairW;

static int cmp_pairw(const void *a, const void *b) {
    uint64_t x = ((const PairW *)a)->key, y = ((const PairW *)b)->key;
    return (x > y) - (x < y);
}

// Learn merges until the head ids run out or no adjacent pair is left. Each round: list every
// adjacent pair weighted by its word's count, sort, sum equal keys, take the heaviest (the
// smaller key on ties), merge it everywhere left to right.
static int tr_learn(Trainer *t) {
    size_t cap = 0;
    for (int i = 0; i < t->nw; i++) cap += (size_t)t->wn[i];
    PairW *pw = malloc((cap ? cap : 1) * sizeof *pw);
    t->merge = malloc((size_t)t->V * sizeof *t->merge);
    if (!pw || !t->merge) {
        free(pw);
        return ct_error("hf fixture: out of memory");
    }
    while (t->next_head < t->n_head && t->n_merges < t->V) {
        size_t np = 0;
        for (int i = 0; i < t->nw; i++)
            for (int j = 0; j + 1 < t->wn[i]; j++)
                pw[np++] = (PairW){((uint64_t)(uint32_t)t->w[i][j] << 32) | (uint32_t)t->w[i][j + 1],
                                   t->wc[i]};
        if (np == 0) break;
        qsort(pw, np, sizeof *pw, cmp_pairw);
        uint64_t best = 0;
        long best_w = 0;
        for (size_t a = 0; a < np;) {
            size_t b = a;
            long wsum = 0;
            for (; b < np && pw[b].key == pw[a].key; b++) wsum += pw[b].w;
            if (wsum > best_w) {   // strict: on ties the smaller key (seen first) stays
                best_w = wsum;
                best = pw[a].key;
            }
            a = b;
        }
        int l = (int)(best >> 32), r = (int)(uint32_t)best;
        size_t ll = strlen(t->tok[l]), rl = strlen(t->tok[r]);
        char *cat = malloc(ll + rl + 1);
        if (!cat) break;
        memcpy(cat, t->tok[l], ll);
        memcpy(cat + ll, t->tok[r], rl + 1);
        int id = tr_find(t, cat);
        if (id < 0) id = tr_new(t, cat);
        free(cat);
        t->merge[t->n_merges][0] = l;
        t->merge[t->n_merges][1] = r;
        t->n_merges++;
        for (int i = 0; i < t->nw; i++) {
            int k = 0;
            for (int j = 0; j < t->wn[i]; j++) {
                if (j + 1 < t->wn[i] && t->w[i][j] == l && t->w[i][j + 1] == r) {
                    t->w[i][k++] = id;
                    j++;
                } else {
                    t->w[i][k++] = t->w[i][j];
                }
            }
            t->wn[i] = k;
        }
    }
    free(pw);
    return 0;
}

// GPT-2 bytes_to_unicode, written out again here so the fixtures do not depend on the code
// under test.
static int fx_byte_char(int b, char out[4]) {
    static int table[256], ready;
    if (!ready) {
        int n = 0;
        for (int i = 0; i < 256; i++) {
            int printable = (i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255);
            table[i] = printable ? i : 256 + n++;
        }
        ready = 1;
    }
    int cp = table[b];
    if (cp < 0x80) { out[0] = (char)cp; out[1] = 0; return 1; }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    out[2] = 0;
    return 2;
}

// GPT-2's vocabulary order for the 256 byte tokens: printable bytes first, then the rest.
static void gpt2_byte_order(int order[256]) {
    int k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 256; i++) {
            int printable = (i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255);
            if (printable == (pass == 0)) order[k++] = i;
        }
}

static int json_write(json_t *root, const char *dir) {
    size_t n = strlen(dir);
    char *path = malloc(n + 20);
    if (!path) return ct_error("hf fixture: out of memory");
    snprintf(path, n + 20, "%s/tokenizer.json", dir);
    int rc = json_dump_file(root, path, JSON_PRESERVE_ORDER | JSON_COMPACT);
    if (rc != 0) ct_error("hf fixture: cannot write %s", path);
    free(path);
    return rc ? -1 : 0;
}

static json_t *added_token(int id, const char *content, int special) {
    return json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id, "content", content,
                     "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", !special,
                     "special", special);
}

static json_t *template_bos(const char *bos, int bos_id) {
    json_t *single = json_pack("[{s:{s:s, s:i}}, {s:{s:s, s:i}}]", "SpecialToken", "id", bos,
                               "type_id", 0, "Sequence", "id", "A", "type_id", 0);
    json_t *pair = json_pack("[{s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}]",
                             "SpecialToken", "id", bos, "type_id", 0, "Sequence", "id", "A",
                             "type_id", 0, "SpecialToken", "id", bos, "type_id", 1, "Sequence",
                             "id", "B", "type_id", 1);
    json_t *sp = json_pack("{s:{s:s, s:[i], s:[s]}}", bos, "id", bos, "ids", bos_id, "tokens", bos);
    return json_pack("{s:s, s:o, s:o, s:o}", "type", "TemplateProcessing", "single", single,
                     "pair", pair, "special_tokens", sp);
}

static json_t *merges_json(const Trainer *t, int as_pairs) {
    json_t *m = json_array();
    for (int i = 0; i < t->n_merges; i++) {
        const char *a = t->tok[t->merge[i][0]], *b = t->tok[t->merge[i][1]];
        if (as_pairs) {
            json_array_append_new(m, json_pack("[s, s]", a, b));
        } else {
            size_t n = strlen(a) + strlen(b) + 2;
            char *s = malloc(n);
            snprintf(s, n, "%s %s", a, b);
            json_array_append_new(m, json_string(s));
            free(s);
        }
    }
    return m;
}

static json_t *vocab_json(const Trainer *t) {
    json_t *v = json_object();
    for (int i = 0; i < t->V; i++)
        if (t->tok[i]) json_object_set_new(v, t->tok[i], json_integer(i));
    return v;
}

// Words of the training text under a regex (the tokenizer's own pre-tokenizer).
static int tr_words_regex(Trainer *t, const char *pattern, const int *byte_id) {
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                                   &err, &off, NULL);
    if (!re) return ct_error("hf fixture: bad regex at %zu", (size_t)off);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    const char *s = FIXTURE_TEXT;
    size_t n = strlen(s), pos = 0;
    int sym[256], rc = 0;
    while (pos < n && pcre2_match(re, (PCRE2_SPTR)s, n, pos, 0, md, NULL) >= 0) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] == ov[0]) { pos = ov[0] + 1; continue; }
        int k = 0;
        for (size_t i = ov[0]; i < ov[1] && k < 256; i++) sym[k++] = byte_id[(unsigned char)s[i]];
        if ((rc = tr_add_word(t, sym, k)) != 0) break;
        pos = ov[1];
    }
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return rc;
}

// ---- byte-level ---------------------------------------------------------------------------

int hf_fixture_bytelevel(const char *dir, const HfFixtureOpts *o) {
    static const char *BOS = "<|begin_of_text|>", *EOS = "<|end_of_text|>";
    int V = o->vocab_size;
    int n_tail = (o->bos_id == -1) + (o->eos_id == -1) + (o->extra_tokens ? 2 : 0);
    int n_fixed = (o->bos_id >= 0) + (o->eos_id >= 0);
    if (V < 256 + n_tail + n_fixed || V > 1000000 || o->bos_id >= V || o->eos_id >= V ||
        (o->bos_id >= 0 && o->bos_id == o->eos_id))
        return ct_error("hf fixture: vocab_size %d with bos_id %d eos_id %d: expected room for "
                        "256 byte tokens and %d specials, distinct ids < vocab_size", V, o->bos_id,
                        o->eos_id, n_tail + n_fixed);
    Trainer t = {0};
    t.V = V;
    t.tok = calloc((size_t)V, sizeof *t.tok);
    t.head = malloc((size_t)V * sizeof *t.head);
    if (!t.tok || !t.head) {
        tr_free(&t);
        return ct_error("hf fixture: out of memory");
    }
    // ids: fixed specials where asked; the last n_tail free ids for the other specials; the
    // rest, in order, for the bytes and then the merges
    int *avail = malloc((size_t)V * sizeof *avail), na = 0;
    for (int i = 0; i < V; i++)
        if (i != o->bos_id && i != o->eos_id) avail[na++] = i;
    for (int i = 0; i < na - n_tail; i++) t.head[t.n_head++] = avail[i];
    int tail = na - n_tail;
    int bos_id = o->bos_id >= 0 ? o->bos_id : o->bos_id == -1 ? avail[tail++] : -1;
    int eos_id = o->eos_id >= 0 ? o->eos_id : o->eos_id == -1 ? avail[tail++] : -1;
    int eot_id = o->extra_tokens ? avail[tail++] : -1;
    int think_id = o->extra_tokens ? avail[tail++] : -1;
    free(avail);

    int order[256], byte_id[256];
    gpt2_byte_order(order);
    for (int i = 0; i < 256; i++) {
        char c[4];
        fx_byte_char(order[i], c);
        byte_id[order[i]] = tr_new(&t, c);
    }
    const char *regex = o->split_regex ? HF_FIXTURE_LLAMA3_REGEX : HF_FIXTURE_GPT2_REGEX;
    if (tr_words_regex(&t, regex, byte_id) != 0 || tr_learn(&t) != 0) {
        tr_free(&t);
        return -1;
    }

    json_t *added = json_array();
    if (bos_id >= 0) json_array_append_new(added, added_token(bos_id, BOS, 1));
    if (eos_id >= 0) json_array_append_new(added, added_token(eos_id, EOS, 1));
    if (eot_id >= 0) json_array_append_new(added, added_token(eot_id, "<|eot_id|>", 1));
    if (think_id >= 0) json_array_append_new(added, added_token(think_id, "<think>", 0));
    json_t *pre;
    json_t *bl = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0,
                           "trim_offsets", 1, "use_regex", !o->split_regex);
    if (o->split_regex)
        pre = json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, o]}", "type", "Sequence",
                        "pretokenizers", "type", "Split", "pattern", "Regex", regex, "behavior",
                        "Isolated", "invert", 0, bl);
    else
        pre = bl;
    json_t *post_bl = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 1,
                                "trim_offsets", 0, "use_regex", 1);
    json_t *post = o->add_bos && bos_id >= 0
                       ? json_pack("{s:s, s:[o, o]}", "type", "Sequence", "processors", post_bl,
                                   template_bos(BOS, bos_id))
                       : post_bl;
    json_t *model = json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE",
                              "dropout", "unk_token", "continuing_subword_prefix",
                              "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0,
                              "ignore_merges", o->ignore_merges, "vocab", vocab_json(&t), "merges",
                              merges_json(&t, o->merges_as_pairs));
    json_t *root = json_pack("{s:s, s:n, s:n, s:o, s:o, s:o, s:o, s:{s:s, s:b, s:b, s:b}, s:o}",
                             "version", "1.0", "truncation", "padding", "added_tokens", added,
                             "normalizer", o->nfc ? json_pack("{s:s}", "type", "NFC") : json_null(),
                             "pre_tokenizer", pre, "post_processor", post, "decoder", "type",
                             "ByteLevel", "add_prefix_space", 1, "trim_offsets", 1, "use_regex", 1,
                             "model", model);
    tr_free(&t);
    if (!root) return ct_error("hf fixture: building the byte-level tokenizer.json failed");
    int rc = json_write(root, dir);
    json_decref(root);
    return rc;
}

// ---- SentencePiece style (Gemma) ------------------------------------------------------------

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int hf_fixture_sentencepiece(const char *dir, const HfFixtureOpts *o) {
    static const char *SPECIAL[4] = {"<pad>", "<eos>", "<bos>", "<unk>"};
    int V = o->vocab_size;
    // the training text as the normalizer leaves it: spaces -> U+2581
    size_t n = strlen(FIXTURE_TEXT);
    char *norm = malloc(3 * n + 4);
    size_t m = 0;
    if (!norm) return ct_error("hf fixture: out of memory");
    for (size_t i = 0; i < n; i++) {
        if (FIXTURE_TEXT[i] == ' ') { memcpy(norm + m, "\xE2\x96\x81", 3); m += 3; }
        else norm[m++] = FIXTURE_TEXT[i];
    }
    norm[m] = 0;
    // distinct characters (ASCII text plus U+2581), sorted
    char *chars[128];
    int nc = 0;
    for (size_t i = 0; i < m;) {
        int l = (unsigned char)norm[i] < 0x80 ? 1 : 3;
        char c[4] = {0};
        memcpy(c, norm + i, (size_t)l);
        int seen = 0;
        for (int k = 0; k < nc && !seen; k++) seen = !strcmp(chars[k], c);
        if (!seen && nc < 128) chars[nc++] = strdup(c);
        i += (size_t)l;
    }
    qsort(chars, (size_t)nc, sizeof *chars, cmp_str);
    Trainer t = {0};
    int rc = 0;
    if (V < 4 + 256 + nc || V > 1000000) {
        rc = ct_error("hf fixture: vocab_size %d: expected at least %d (4 specials, 256 byte "
                      "pieces, %d characters)", V, 4 + 256 + nc, nc);
        goto done;
    }
    t.V = V;
    t.tok = calloc((size_t)V, sizeof *t.tok);
    t.head = malloc((size_t)V * sizeof *t.head);
    if (!t.tok || !t.head) {
        rc = ct_error("hf fixture: out of memory");
        goto done;
    }
    for (int i = 0; i < V; i++) t.head[t.n_head++] = i;
    for (int i = 0; i < 4; i++) tr_new(&t, SPECIAL[i]);
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        tr_new(&t, s);
    }
    int char_id[128];
    for (int k = 0; k < nc; k++) char_id[k] = tr_new(&t, chars[k]);
    // words: a new one starts at each U+2581 (SentencePiece keeps the space with the word after)
    int sym[512], ns = 0;
    for (size_t i = 0; i <= m;) {
        int l = i < m && (unsigned char)norm[i] >= 0x80 ? 3 : 1;
        if (i == m || (l == 3 && ns > 0)) {
            if ((rc = tr_add_word(&t, sym, ns)) != 0) goto done;
            ns = 0;
            if (i == m) break;
        }
        char c[4] = {0};
        memcpy(c, norm + i, (size_t)l);
        for (int k = 0; k < nc; k++)
            if (!strcmp(chars[k], c) && ns < 512) sym[ns++] = char_id[k];
        i += (size_t)l;
    }
    if ((rc = tr_learn(&t)) != 0) goto done;

    json_t *added = json_array();
    for (int i = 0; i < 4; i++) json_array_append_new(added, added_token(i, SPECIAL[i], 1));
    json_t *replace = json_pack("{s:s, s:{s:s}, s:s}", "type", "Replace", "pattern", "String", " ",
                                "content", "\xE2\x96\x81");
    json_t *normalizer = o->prepend ? json_pack("{s:s, s:[{s:s, s:s}, o]}", "type", "Sequence",
                                                "normalizers", "type", "Prepend", "prepend",
                                                "\xE2\x96\x81", replace)
                                    : replace;
    json_t *decs = json_pack("[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}]", "type", "Replace", "pattern",
                             "String", "\xE2\x96\x81", "content", " ", "type", "ByteFallback", "type",
                             "Fuse");
    if (o->prepend)
        json_array_append_new(decs, json_pack("{s:s, s:s, s:i, s:i}", "type", "Strip", "content",
                                              " ", "start", 1, "stop", 0));
    json_t *model = json_pack("{s:s, s:n, s:s, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE",
                              "dropout", "unk_token", "<unk>", "continuing_subword_prefix",
                              "end_of_word_suffix", "fuse_unk", 1, "byte_fallback", 1,
                              "ignore_merges", 0, "vocab", vocab_json(&t), "merges",
                              merges_json(&t, o->merges_as_pairs));
    json_t *root = json_pack("{s:s, s:n, s:n, s:o, s:o, s:n, s:o, s:{s:s, s:o}, s:o}", "version",
                             "1.0", "truncation", "padding", "added_tokens", added, "normalizer",
                             normalizer, "pre_tokenizer", "post_processor",
                             o->add_bos ? template_bos("<bos>", 2) : json_null(), "decoder",
                             "type", "Sequence", "decoders", decs, "model", model);
    if (!root) {
        rc = ct_error("hf fixture: building the SentencePiece tokenizer.json failed");
        goto done;
    }
    rc = json_write(root, dir);
    json_decref(root);
done:
    for (int k = 0; k < nc; k++) free(chars[k]);
    free(norm);
    tr_free(&t);
    return rc;
}

// ---- GPT-2 encoder.json + vocab.bpe -> tokenizer.json ---------------------------------------

int hf_fixture_gpt2_json(const char *encoder_json, const char *vocab_bpe, const char *out_path,
                         int merges_as_pairs) {
    json_error_t e;
    json_t *vocab = json_load_file(encoder_json, 0, &e);
    if (!vocab) return ct_error("hf fixture: %s: %s", encoder_json, e.text);
    FILE *f = fopen(vocab_bpe, "rb");
    if (!f) {
        json_decref(vocab);
        return ct_error("hf fixture: cannot open %s", vocab_bpe);
    }
    json_t *merges = json_array();
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        line[n] = 0;
        if (n == 0 || line[0] == '#') continue;
        char *sp = strchr(line, ' ');
        if (!sp) continue;
        if (merges_as_pairs) {
            *sp = 0;
            json_array_append_new(merges, json_pack("[s, s]", line, sp + 1));
        } else {
            json_array_append_new(merges, json_string(line));
        }
    }
    fclose(f);
    json_int_t eot = json_integer_value(json_object_get(vocab, "<|endoftext|>"));
    json_t *root = json_pack(
        "{s:s, s:n, s:n, s:[{s:I, s:s, s:b, s:b, s:b, s:b, s:b}], s:n,"
        " s:{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b, s:b}]},"
        " s:{s:s, s:b, s:b, s:b}, s:{s:s, s:b, s:b, s:b},"
        " s:{s:s, s:n, s:n, s:s, s:s, s:b, s:b, s:o, s:o}}",
        "version", "1.0", "truncation", "padding", "added_tokens", "id", eot, "content",
        "<|endoftext|>", "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 1, "special", 1,
        "normalizer", "pre_tokenizer", "type", "Sequence", "pretokenizers", "type", "Split",
        "pattern", "Regex", HF_FIXTURE_GPT2_REGEX, "behavior", "Isolated", "invert", 0, "type",
        "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 0, "post_processor",
        "type", "ByteLevel", "add_prefix_space", 1, "trim_offsets", 0, "use_regex", 1, "decoder",
        "type", "ByteLevel", "add_prefix_space", 1, "trim_offsets", 1, "use_regex", 1, "model",
        "type", "BPE", "dropout", "unk_token", "continuing_subword_prefix", "", "end_of_word_suffix",
        "", "fuse_unk", 0, "byte_fallback", 0, "vocab", vocab, "merges", merges);
    if (!root) return ct_error("hf fixture: building the GPT-2 tokenizer.json failed");
    int rc = json_dump_file(root, out_path, JSON_PRESERVE_ORDER | JSON_COMPACT);
    json_decref(root);
    return rc ? ct_error("hf fixture: cannot write %s", out_path) : 0;
}
