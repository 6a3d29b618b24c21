// test_tokenizer.c — the llama2.c tokenizer against independent references:
//   - tok512_reference_encodings.json: Google SentencePiece (WASM) ids and upstream run.c
//     encode() ids for 20 strings (tokenizers/PROVENANCE.md);
//   - stories260K goldens: run.c's prompt ids/pieces, decoded greedy text, and the stdout of
//     the reference `run` program (through tokenizer_print_piece);
//   - a deliberately naive re-implementation in this file (its own file reader, linear piece
//     search, run.c's O(n^2) merge loop) on random texts, for both tok512 vocabularies;
//   - malformed files written to a temporary directory.
// llama2_reference_encodings.json is for the 32000-id Llama 2 vocabulary, whose tokenizer.bin
// is not shipped, so it cannot be checked here.
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/tokenizer.h"
#include "tests/lib/testutil.h"

#define STORIES_TOK "models/stories260K/tok512.bin"
#define AIDREAMS_TOK "models/aidreams260K/tok512.bin"

static void load_shared(Tokenizer *t, const char *rel, int vocab) {
    char *p = tu_shared_path(rel);
    int rc = tokenizer_load(t, p, vocab);
    cr_assert_eq(rc, 0, "tokenizer_load(%s): %s", p, ct_errmsg());
    free(p);
}

static json_t *load_json(const char *rel) {
    char *p = tu_shared_path(rel);
    json_error_t e;
    json_t *j = json_load_file(p, 0, &e);
    cr_assert_not_null(j, "%s: %s (line %d)", p, e.text, e.line);
    free(p);
    return j;
}

// ids (n) == JSON array of integers; on mismatch, report both sequences.
static void assert_ids(const int *ids, int n, json_t *arr, const char *what, const char *text) {
    char got[4096] = "", want[4096] = "";
    size_t m = json_array_size(arr);
    int same = (size_t)n == m;
    for (size_t i = 0; i < m; i++) {
        int v = (int)json_integer_value(json_array_get(arr, i));
        if (same && ids[i] != v) same = 0;
        snprintf(want + strlen(want), sizeof want - strlen(want), "%d,", v);
    }
    for (int i = 0; i < n; i++) snprintf(got + strlen(got), sizeof got - strlen(got), "%d,", ids[i]);
    cr_assert(same, "%s for \"%s\":\n  got  [%s]\n  want [%s]", what, text, got, want);
}

// ---- an independent, naive reference: run.c's algorithm written the slow, obvious way ----
typedef struct RefVocab {
    int V;
    char **piece;
    float *score;
} RefVocab;

static void ref_load_path(RefVocab *r, const char *p, int V) {
    FILE *f = fopen(p, "rb");
    cr_assert_not_null(f, "cannot open %s", p);
    int max_len;
    cr_assert_eq(fread(&max_len, 4, 1, f), 1);
    r->V = V;
    r->piece = calloc((size_t)V, sizeof *r->piece);
    r->score = calloc((size_t)V, sizeof *r->score);
    for (int i = 0; i < V; i++) {
        int len;
        cr_assert_eq(fread(&r->score[i], 4, 1, f), 1);
        cr_assert_eq(fread(&len, 4, 1, f), 1);
        r->piece[i] = calloc((size_t)len + 1, 1);
        cr_assert_eq(fread(r->piece[i], 1, (size_t)len, f), (size_t)len);
    }
    fclose(f);
}

static void ref_load(RefVocab *r, const char *rel, int V) {
    char *p = tu_shared_path(rel);
    ref_load_path(r, p, V);
    free(p);
}

static void ref_free(RefVocab *r) {
    for (int i = 0; i < r->V; i++) free(r->piece[i]);
    free(r->piece);
    free(r->score);
}

static int ref_is_special(const RefVocab *r, int id) {
    const char *s = r->piece[id];
    return id < 3 || (strlen(s) == 6 && strncmp(s, "<0x", 3) == 0 && s[5] == '>');
}

// Linear search (no hashing, no sorting); normal_only skips <unk>/BOS/EOS/byte pieces.
static int ref_find(const RefVocab *r, const char *s, int normal_only) {
    for (int i = 0; i < r->V; i++)
        if (strcmp(r->piece[i], s) == 0) return (normal_only && ref_is_special(r, i)) ? -1 : i;
    return -1;
}

// Repeatedly merge the best adjacent pair (first one on ties), rescanning everything.
// sym[i] are malloc'd strings; id[i] their ids (-1 allowed in SentencePiece mode).
static int ref_merge(const RefVocab *r, char **sym, int *id, int n, int normal_only) {
    char buf[256];
    for (;;) {
        float best = -1e10f;
        int bi = -1, bid = -1;
        for (int i = 0; i + 1 < n; i++) {
            size_t la = strlen(sym[i]), lb = strlen(sym[i + 1]);
            if (la + lb >= sizeof buf) continue;
            memcpy(buf, sym[i], la);
            memcpy(buf + la, sym[i + 1], lb + 1);
            int k = ref_find(r, buf, normal_only);
            if (k != -1 && r->score[k] > best) best = r->score[k], bi = i, bid = k;
        }
        if (bi < 0) return n;
        size_t la = strlen(sym[bi]), lb = strlen(sym[bi + 1]);
        sym[bi] = realloc(sym[bi], la + lb + 1);
        memcpy(sym[bi] + la, sym[bi + 1], lb + 1);
        id[bi] = bid;
        free(sym[bi + 1]);
        memmove(sym + bi + 1, sym + bi + 2, (size_t)(n - bi - 2) * sizeof *sym);
        memmove(id + bi + 1, id + bi + 2, (size_t)(n - bi - 2) * sizeof *id);
        n--;
    }
}

// run.c encode() with BOS: returns the count written to out.
static int ref_encode_runc(const RefVocab *r, const char *text, int *out) {
    size_t n = strlen(text);
    char **sym = calloc(n + 2, sizeof *sym);
    int *id = calloc(n + 2, sizeof *id), ns = 0;
    if (n > 0) {
        id[ns] = ref_find(r, " ", 0);
        sym[ns] = strdup(r->piece[id[ns]]);
        ns++;
    }
    for (size_t i = 0; i < n;) {
        // lead byte + up to 3 continuation bytes (10xxxxxx), unvalidated, like run.c
        size_t j = i + 1;
        while (j < n && j - i < 4 && ((unsigned char)text[j] & 0xC0) == 0x80) j++;
        char cp[8] = {0};
        memcpy(cp, text + i, j - i);
        int k = ref_find(r, cp, 0);
        if (k >= 0) {
            id[ns] = k;
            sym[ns++] = strdup(r->piece[k]);
        } else {
            for (size_t b = i; b < j; b++) {
                id[ns] = (unsigned char)text[b] + 3;
                sym[ns] = strdup(r->piece[id[ns]]);
                ns++;
            }
        }
        i = j;
    }
    ns = ref_merge(r, sym, id, ns, 0);
    out[0] = 1;
    for (int i = 0; i < ns; i++) out[1 + i] = id[i], free(sym[i]);
    free(sym);
    free(id);
    return ns + 1;
}

// Code point decode with SentencePiece's validity rules; 0 = malformed lead byte.
static int ref_utf8_len(const unsigned char *s, size_t n) {
    int len = s[0] < 0x80 ? 1 : (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3 : (s[0] >> 3) == 30 ? 4 : 0;
    if (len == 0 || (size_t)len > n) return 0;
    unsigned cp = len == 1 ? s[0] : (s[0] & (0x7Fu >> len));
    for (int i = 1; i < len; i++) {
        if ((s[i] >> 6) != 2) return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

// SentencePiece default normalization + BPE, no BOS.
static int ref_encode_sp(const RefVocab *r, const char *text, int *out) {
    size_t n = strlen(text);
    char *norm = calloc(3 * n + 2, 1);
    size_t m = 0;
    norm[m++] = ' ';
    for (size_t i = 0; i < n;) {
        int k = ref_utf8_len((const unsigned char *)text + i, n - i);
        if (k == 0) {
            memcpy(norm + m, "\xEF\xBF\xBD", 3), m += 3, i++;
            continue;
        }
        if (!(k == 1 && text[i] == ' ' && norm[m - 1] == ' ')) memcpy(norm + m, text + i, (size_t)k), m += (size_t)k;
        i += (size_t)k;
    }
    while (m > 0 && norm[m - 1] == ' ') m--;   // also removes the prefix of an all-space text
    norm[m] = 0;
    char **sym = calloc(m + 1, sizeof *sym);
    int *id = calloc(m + 1, sizeof *id), ns = 0;
    for (size_t i = 0; i < m;) {
        int k = ref_utf8_len((unsigned char *)norm + i, m - i);
        sym[ns] = strndup(norm + i, (size_t)k);
        id[ns] = ref_find(r, sym[ns], 1);
        ns++;
        i += (size_t)k;
    }
    ns = ref_merge(r, sym, id, ns, 1);
    int k = 0;
    for (int i = 0; i < ns; i++) {
        if (id[i] >= 0) out[k++] = id[i];
        else
            for (const char *c = sym[i]; *c; c++) out[k++] = (unsigned char)*c + 3;
        free(sym[i]);
    }
    free(sym);
    free(id);
    free(norm);
    return k;
}

// Random text from pieces of English, whitespace, multibyte characters and raw bytes
// (stray continuation bytes, truncated sequences, overlong forms, 0xFF).
static void random_text(TuRng *g, char *s, int max_units) {
    static const char *units[] = {
        "a", "e", "t", "h", "the", " ", " ", "  ", "   ", "Once", " upon", "Lily", ".", ",",
        "!", "\n", "\t", "\"", "'", "0", "7", "é", "ï", "日", "語", "😀", "🇺🇸", "\xCC\x81", "#",
        "_", "{", "<s>", "<0x41>", "\x80", "\xBF\xBF", "\xC3", "\xE6\x97", "\xF0\x9F\x98",
        "\xC0\xAF", "\xED\xA0\x80", "\xFF", "\xF4\x90\x80\x80", "ing", "ed", " and", " friend",
    };
    int nu = (int)(sizeof units / sizeof units[0]);
    int k = 1 + (int)tu_rng_below(g, (uint32_t)max_units);
    s[0] = 0;
    for (int i = 0; i < k; i++) strcat(s, units[tu_rng_below(g, (uint32_t)nu)]);
}

// ---- the shared SentencePiece / run.c reference encodings -----------------------------------

Test(tokenizer, tok512_reference_runc_ids) {
    Tokenizer t;
    load_shared(&t, STORIES_TOK, 512);
    json_t *j = load_json("tokenizers/tok512_reference_encodings.json");
    json_t *cases = json_object_get(j, "cases");
    cr_assert_eq(json_array_size(cases), 20);
    for (size_t c = 0; c < json_array_size(cases); c++) {
        json_t *cs = json_array_get(cases, c);
        const char *text = json_string_value(json_object_get(cs, "text"));
        int ids[256], n = -1;
        cr_assert_eq(tokenizer_encode(&t, text, 1, 0, ids, 256, &n), 0, "%s", ct_errmsg());
        assert_ids(ids, n, json_object_get(cs, "llama2c_runc_encode_ids_with_bos"), "run.c ids", text);
    }
    json_decref(j);
    tokenizer_free(&t);
}

Test(tokenizer, tok512_reference_sentencepiece_ids_and_pieces) {
    Tokenizer t;
    load_shared(&t, STORIES_TOK, 512);
    json_t *j = load_json("tokenizers/tok512_reference_encodings.json");
    json_t *cases = json_object_get(j, "cases");
    for (size_t c = 0; c < json_array_size(cases); c++) {
        json_t *cs = json_array_get(cases, c);
        const char *text = json_string_value(json_object_get(cs, "text"));
        int ids[256], n = -1;
        cr_assert_eq(tokenizer_encode_mode(&t, text, 0, 0, TOK_WS_SENTENCEPIECE, ids, 256, &n), 0,
                     "%s", ct_errmsg());
        assert_ids(ids, n, json_object_get(cs, "sentencepiece_ids"), "sentencepiece ids", text);
        // The stored piece with ' ' written as U+2581 is SentencePiece's piece string.
        json_t *pieces = json_object_get(cs, "sentencepiece_pieces");
        for (int i = 0; i < n; i++) {
            char sp[64] = "";
            for (const char *p = tokenizer_piece(&t, ids[i]); *p; p++) {
                if (*p == ' ') strcat(sp, "\xe2\x96\x81");
                else strncat(sp, p, 1);
            }
            cr_assert_str_eq(sp, json_string_value(json_array_get(pieces, (size_t)i)),
                             "piece %d of \"%s\"", i, text);
        }
    }
    json_decref(j);
    tokenizer_free(&t);
}

// tokenizers/PROVENANCE.md: run.c and SentencePiece agree on 16 of 20 strings and differ on
// the 4 whitespace cases; our two modes must differ exactly there.
Test(tokenizer, tok512_runc_differs_from_sentencepiece_exactly_on_flagged_cases) {
    Tokenizer t;
    load_shared(&t, STORIES_TOK, 512);
    json_t *j = load_json("tokenizers/tok512_reference_encodings.json");
    json_t *cases = json_object_get(j, "cases");
    int n_false = 0;
    for (size_t c = 0; c < json_array_size(cases); c++) {
        json_t *cs = json_array_get(cases, c);
        const char *text = json_string_value(json_object_get(cs, "text"));
        int flag = json_is_true(json_object_get(cs, "runc_equals_sentencepiece"));
        n_false += !flag;
        int a[256], b[256], na, nb;
        cr_assert_eq(tokenizer_encode_mode(&t, text, 0, 0, TOK_WS_RUNC, a, 256, &na), 0);
        cr_assert_eq(tokenizer_encode_mode(&t, text, 0, 0, TOK_WS_SENTENCEPIECE, b, 256, &nb), 0);
        int same = na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0;
        cr_assert_eq(same, flag, "\"%s\": modes %s but runc_equals_sentencepiece=%d", text,
                     same ? "agree" : "differ", flag);
    }
    cr_assert_eq(n_false, 4, "PROVENANCE.md documents 4 whitespace cases, the file marks %d", n_false);
    json_decref(j);
    tokenizer_free(&t);
}

// Whitespace rules of the SentencePiece mode, spelled out with ids from tok512.bin
// (410 = " ", 12 = <0x09>, 13 = <0x0A>, 261 = " a", 268 = " b"). Expected ids worked out by
// hand from the normalized text " a \t \n b" and the piece scores.
Test(tokenizer, sentencepiece_whitespace_rules) {
    Tokenizer t;
    load_shared(&t, STORIES_TOK, 512);
    cr_assert_str_eq(tokenizer_piece(&t, 410), " ");
    cr_assert_str_eq(tokenizer_piece(&t, 261), " a");
    cr_assert_str_eq(tokenizer_piece(&t, 268), " b");
    int ids[64], n;
    // Only U+0020 collapses: the tab, the newline and one space around each survive.
    cr_assert_eq(tokenizer_encode_mode(&t, "  a \t  \n   b  ", 0, 0, TOK_WS_SENTENCEPIECE, ids, 64, &n), 0);
    int want1[] = {261, 410, 12, 410, 13, 268};
    cr_assert_eq(n, 6);
    cr_assert_arr_eq(ids, want1, sizeof want1);
    // run.c keeps every space: " a", " ", " b".
    cr_assert_eq(tokenizer_encode_mode(&t, "a  b", 0, 0, TOK_WS_RUNC, ids, 64, &n), 0);
    int want2[] = {261, 410, 268};
    cr_assert_eq(n, 3);
    cr_assert_arr_eq(ids, want2, sizeof want2);
    // Whitespace only: SentencePiece gives nothing (not even the dummy prefix).
    cr_assert_eq(tokenizer_encode_mode(&t, " \x20 ", 1, 1, TOK_WS_SENTENCEPIECE, ids, 64, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert(ids[0] == 1 && ids[1] == 2);
    // A malformed byte becomes U+FFFD (EF BF BD, not a piece -> byte tokens 242 194 192).
    cr_assert_eq(tokenizer_encode_mode(&t, "a\xFF", 0, 0, TOK_WS_SENTENCEPIECE, ids, 64, &n), 0);
    int want3[] = {261, 0xEF + 3, 0xBF + 3, 0xBD + 3};
    cr_assert_eq(n, 4);
    cr_assert_arr_eq(ids, want3, sizeof want3);
    // ... while run.c falls back to the raw byte.
    cr_assert_eq(tokenizer_encode(&t, "a\xFF", 0, 0, ids, 64, &n), 0);
    int want4[] = {261, 0xFF + 3};
    cr_assert_eq(n, 2);
    cr_assert_arr_eq(ids, want4, sizeof want4);
    tokenizer_free(&t);
}

Test(tokenizer, empty_text_and_bos_eos) {
    Tokenizer t;
    load_shared(&t, STORIES_TOK, 512);
    int ids[8], n = -1;
    cr_assert_eq(tokenizer_encode(&t, "", 1, 0, ids, 8, &n), 0);
    cr_assert(n == 1 && ids[0] == 1, "run.c: no dummy prefix for empty text");
    cr_assert_eq(tokenizer_encode(&t, "", 0, 0, ids, 8, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(tokenizer_encode(&t, "a", 1, 1, ids, 8, &n), 0);
    cr_assert(n == 3 && ids[0] == 1 && ids[1] == 261 && ids[2] == 2);
    cr_assert_eq(tokenizer_encode_mode(&t, "a", 0, 0, 7, ids, 8, &n), -1);
    cr_assert(strstr(ct_errmsg(), "mode"), "%s", ct_errmsg());
    cr_assert_eq(tokenizer_encode(&t, NULL, 1, 0, ids, 8, &n), -1);
    tokenizer_free(&t);
}

// ---- the stories260K goldens (run.c encode/decode, and the reference program's stdout) ------

Test(tokenizer, golden_prompts_and_greedy_text) {
    Tokenizer t;
    load_shared(&t, STORIES_TOK, 512);
    json_t *j = load_json("models/stories260K/golden/goldens.json");
    json_t *seqs = json_object_get(j, "sequences");
    cr_assert_geq(json_array_size(seqs), 3);
    for (size_t s = 0; s < json_array_size(seqs); s++) {
        json_t *q = json_array_get(seqs, s);
        const char *text = json_string_value(json_object_get(q, "prompt_text"));
        int ids[512], n;
        cr_assert_eq(tokenizer_encode(&t, text, 1, 0, ids, 512, &n), 0, "%s", ct_errmsg());
        assert_ids(ids, n, json_object_get(q, "prompt_ids"), "golden prompt ids", text);
        json_t *pieces = json_object_get(q, "prompt_pieces");
        cr_assert_eq(json_array_size(pieces), (size_t)n);
        for (int i = 0; i < n; i++)
            cr_assert_str_eq(tokenizer_piece(&t, ids[i]), json_string_value(json_array_get(pieces, (size_t)i)));
        // greedy_text is run.c decode() of the continuation, prev = the last prompt id.
        json_t *g = json_object_get(q, "greedy_ids");
        char out[4096] = "";
        int prev = ids[n - 1];
        for (size_t i = 0; i < json_array_size(g); i++) {
            int tok = (int)json_integer_value(json_array_get(g, i));
            const char *p = tokenizer_decode(&t, prev, tok);
            cr_assert_not_null(p);
            strcat(out, p);
            prev = tok;
        }
        cr_assert_str_eq(out, json_string_value(json_object_get(q, "greedy_text")));
    }
    json_decref(j);
    tokenizer_free(&t);
}

// The reference `run` printed seqB's ids 1..64 through decode + safe_printf, then "\n".
Test(tokenizer, runc_cli_stdout_through_print_piece) {
    Tokenizer t;
    load_shared(&t, STORIES_TOK, 512);
    json_t *j = load_json("models/stories260K/golden/goldens.json");
    json_t *seqB = NULL, *seqs = json_object_get(j, "sequences");
    for (size_t s = 0; s < json_array_size(seqs); s++)
        if (strcmp(json_string_value(json_object_get(json_array_get(seqs, s), "name")), "seqB") == 0)
            seqB = json_array_get(seqs, s);
    cr_assert_not_null(seqB);
    cr_assert_str_eq(json_string_value(json_object_get(seqB, "prompt_text")), "Once upon a time");
    json_t *all = json_object_get(seqB, "all_ids");
    cr_assert_geq(json_array_size(all), 65);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    for (size_t i = 1; i <= 64; i++) {   // -n 64: 64 forward passes, each prints its next token
        int prev = (int)json_integer_value(json_array_get(all, i - 1));
        int tok = (int)json_integer_value(json_array_get(all, i));
        tokenizer_print_piece(f, tokenizer_decode(&t, prev, tok));
    }
    fputc('\n', f);
    fclose(f);
    char *p = tu_shared_path("models/stories260K/golden/runc_cli/greedy_n64_prompt_once_upon_a_time.txt");
    size_t n = 0;
    char *want = tu_read_file(p, &n);
    cr_assert_not_null(want);
    cr_assert_eq(len, n);
    cr_assert(memcmp(buf, want, n) == 0, "got:\n%s\nwant:\n%.*s", buf, (int)n, want);
    free(want);
    free(p);
    free(buf);
    json_decref(j);
    tokenizer_free(&t);
}

// ---- decode ----------------------------------------------------------------------------

Test(tokenizer, decode_rules) {
    Tokenizer t;
    load_shared(&t, STORIES_TOK, 512);
    cr_assert_str_eq(tokenizer_piece(&t, 403), " Once");
    cr_assert_str_eq(tokenizer_decode(&t, 1, 403), "Once");     // after BOS: space dropped
    cr_assert_str_eq(tokenizer_decode(&t, 5, 403), " Once");    // elsewhere: kept
    cr_assert_str_eq(tokenizer_decode(&t, 1, 410), "");         // " " after BOS
    cr_assert_str_eq(tokenizer_decode(&t, 1, 426), ".");        // no space to drop
    cr_assert_str_eq(tokenizer_piece(&t, 13), "<0x0A>");
    cr_assert_str_eq(tokenizer_decode(&t, 426, 13), "\n");      // byte pieces -> the raw byte
    cr_assert_str_eq(tokenizer_decode(&t, 1, 13), "\n");
    cr_assert_str_eq(tokenizer_decode(&t, 7, 3 + 0xC3), "\xC3");
    cr_assert_str_eq(tokenizer_decode(&t, 7, 3), "");           // byte 0 has no C string
    cr_assert_str_eq(tokenizer_decode(&t, 7, 1), "\n<s>\n");    // specials decode verbatim
    cr_assert_null(tokenizer_decode(&t, 1, 512));
    cr_assert(strstr(ct_errmsg(), "512") && strstr(ct_errmsg(), "0..511"), "%s", ct_errmsg());
    cr_assert_null(tokenizer_decode(&t, 1, -1));
    cr_assert(strstr(ct_errmsg(), "-1"), "%s", ct_errmsg());
    cr_assert_null(tokenizer_piece(&t, 9999));
    cr_assert_eq(tokenizer_vocab_size(&t), 512);
    tokenizer_free(&t);
}

Test(tokenizer, print_piece_skips_lone_control_bytes) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    tokenizer_print_piece(f, "ab");
    tokenizer_print_piece(f, "\x01");    // control: skipped
    tokenizer_print_piece(f, "\n");      // whitespace: printed
    tokenizer_print_piece(f, "\xC3");    // lone byte >= 0x80: skipped, as run.c in the C locale
    tokenizer_print_piece(f, "\xC3\xA9"); // a whole multi-byte piece: printed
    tokenizer_print_piece(f, "");
    tokenizer_print_piece(f, NULL);
    tokenizer_print_piece(f, "~");
    fclose(f);
    cr_assert_str_eq(buf, "ab\n\xC3\xA9~");
    free(buf);
}

// decode(encode(s)) == s in run.c mode: the BOS rule removes exactly the dummy prefix, and
// byte fallback returns the raw bytes, so this holds for any NUL-free byte string. Without
// BOS the decoded text is " " + s (the dummy prefix stays).
static void check_round_trip(const Tokenizer *t, const char *s) {
    size_t n = strlen(s);
    int cap = (int)n + 4;
    int *ids = malloc((size_t)cap * sizeof *ids), k;
    cr_assert_eq(tokenizer_encode(t, s, 1, 0, ids, cap, &k), 0, "%s", ct_errmsg());
    char *out = malloc(8 * n + 16);
    size_t m = 0;
    for (int i = 1; i < k; i++) {
        const char *p = tokenizer_decode(t, ids[i - 1], ids[i]);
        cr_assert_not_null(p);
        size_t l = strlen(p);
        memcpy(out + m, p, l);
        m += l;
    }
    out[m] = 0;
    cr_assert(m == n && memcmp(out, s, n) == 0, "round trip of \"%s\" gave \"%s\"", s, out);
    cr_assert_eq(tokenizer_encode(t, s, 0, 0, ids, cap, &k), 0);
    m = 0;
    for (int i = 0; i < k; i++) {
        const char *p = tokenizer_decode(t, i ? ids[i - 1] : 0, ids[i]);
        size_t l = strlen(p);
        memcpy(out + m, p, l);
        m += l;
    }
    out[m] = 0;
    if (n > 0) cr_assert(m == n + 1 && out[0] == ' ' && memcmp(out + 1, s, n) == 0, "no-BOS round trip of \"%s\" gave \"%s\"", s, out);
    free(out);
    free(ids);
}

Test(tokenizer, round_trip_test_strings) {
    Tokenizer t;
    load_shared(&t, STORIES_TOK, 512);
    json_t *j = load_json("tokenizers/test_strings.json");
    cr_assert_eq(json_array_size(j), 20);
    for (size_t i = 0; i < json_array_size(j); i++) check_round_trip(&t, json_string_value(json_array_get(j, i)));
    const char *extra[] = {"", " ", "  x", "\xFF\xFE", "\x80\x80\x80\x80\x80", "\xF0\x9F\x98\x80\x80", "a\xC3", "\n\n"};
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++) check_round_trip(&t, extra[i]);
    json_decref(j);
    tokenizer_free(&t);
}

// ---- the fast encoder against the naive reference, both vocabularies ---------------------

static void compare_with_reference(const char *rel, uint64_t seed, int n_texts) {
    Tokenizer t;
    load_shared(&t, rel, 512);
    RefVocab r;
    ref_load(&r, rel, 512);
    TuRng g;
    tu_rng_seed(&g, seed);
    char text[2048];
    int a[2048], b[2048], na, nb;
    for (int it = 0; it < n_texts; it++) {
        random_text(&g, text, 60);
        cr_assert_eq(tokenizer_encode(&t, text, 1, 0, a, 2048, &na), 0, "%s", ct_errmsg());
        nb = ref_encode_runc(&r, text, b);
        cr_assert(na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0,
                  "%s run.c mode differs from the naive reference on text %d \"%s\" (%d vs %d ids)", rel, it, text, na, nb);
        cr_assert_eq(tokenizer_encode_mode(&t, text, 0, 0, TOK_WS_SENTENCEPIECE, a, 2048, &na), 0);
        nb = ref_encode_sp(&r, text, b);
        cr_assert(na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0,
                  "%s sentencepiece mode differs from the naive reference on text %d \"%s\" (%d vs %d ids)", rel, it, text, na, nb);
        check_round_trip(&t, text);
    }
    ref_free(&r);
    tokenizer_free(&t);
}

Test(tokenizer, random_texts_match_naive_reference_stories) { compare_with_reference(STORIES_TOK, 1234, 250); }

// aidreams260K's tok512.bin: another vocabulary (max_token_length 10, " " is id 429, not 410).
Test(tokenizer, aidreams_vocabulary_loads_and_round_trips) {
    Tokenizer a, s;
    load_shared(&a, AIDREAMS_TOK, 512);
    load_shared(&s, STORIES_TOK, 512);
    cr_assert_eq(a.max_token_length, 10);
    cr_assert(a.word_split && s.word_split, "SentencePiece vocabularies allow word-by-word BPE");
    cr_assert_str_eq(tokenizer_piece(&a, 429), " ");
    const char *text = "Echoes of vectors unfold, a gentle hum of precision";
    int ia[128], is[128], na, ns;
    cr_assert_eq(tokenizer_encode(&a, text, 1, 0, ia, 128, &na), 0);
    cr_assert_eq(tokenizer_encode(&s, text, 1, 0, is, 128, &ns), 0);
    cr_assert(na != ns || memcmp(ia, is, (size_t)na * sizeof *ia) != 0, "two vocabularies, same ids?");
    check_round_trip(&a, text);
    tokenizer_free(&a);
    tokenizer_free(&s);
    compare_with_reference(AIDREAMS_TOK, 99, 150);
}

// A made-up vocabulary with pieces that hold inner spaces ("a b", "  ") and many tied
// scores: this turns off the word-by-word shortcut (one global heap) and exercises the
// leftmost-on-ties rule, against the naive loop.
Test(tokenizer, synthetic_vocab_inner_spaces_and_tied_scores) {
    static const char *pieces[] = {" ", "a", "b", "c", " a", " b", "ab", "ba", "a b", "  ",
                                   " ab", "b a", "abc", "c ", "bab", "aa", "  a", "ca"};
    static const float scores[] = {0, 0, 0, 0, -1, -1, -1, -1, -2, -1, -2, -2, -3, -1, -1, -1, -2, -3};
    int np = (int)(sizeof pieces / sizeof *pieces), V = 259 + np;
    char *dir = tu_mkdtemp("ct_tok_syn");
    char *path = tu_join(dir, "syn.bin");
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    int32_t max_len = 8;
    fwrite(&max_len, 4, 1, f);
    for (int i = 0; i < V; i++) {
        char tmp[16];
        const char *s = i == 0 ? "<unk>" : i == 1 ? "\n<s>\n" : i == 2 ? "\n</s>\n" : tmp;
        if (i >= 3 && i < 259) snprintf(tmp, sizeof tmp, "<0x%02X>", i - 3);
        if (i >= 259) s = pieces[i - 259];
        float sc = i >= 259 ? scores[i - 259] : 0.0f;
        int32_t len = (int32_t)strlen(s);
        fwrite(&sc, 4, 1, f);
        fwrite(&len, 4, 1, f);
        fwrite(s, 1, (size_t)len, f);
    }
    fclose(f);
    Tokenizer t;
    cr_assert_eq(tokenizer_load(&t, path, V), 0, "%s", ct_errmsg());
    cr_assert_eq(t.word_split, 0, "\"a b\" and \"c \" must disable the word shortcut");
    RefVocab r;
    ref_load_path(&r, path, V);
    TuRng g;
    tu_rng_seed(&g, 5);
    static const char alphabet[] = "ab c  ";
    for (int it = 0; it < 400; it++) {
        char text[64];
        int n = 1 + (int)tu_rng_below(&g, 40);
        for (int i = 0; i < n; i++) text[i] = alphabet[tu_rng_below(&g, sizeof alphabet - 1)];
        text[n] = 0;
        int a[128], b[128], na, nb;
        cr_assert_eq(tokenizer_encode(&t, text, 1, 0, a, 128, &na), 0, "%s", ct_errmsg());
        nb = ref_encode_runc(&r, text, b);
        cr_assert(na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0, "run.c mode, \"%s\"", text);
        cr_assert_eq(tokenizer_encode_mode(&t, text, 0, 0, TOK_WS_SENTENCEPIECE, a, 128, &na), 0);
        nb = ref_encode_sp(&r, text, b);
        cr_assert(na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0, "sentencepiece mode, \"%s\"", text);
        check_round_trip(&t, text);
    }
    // One hand-checked tie: " bab" has pairs " b", "ba", "ab", all scoring -1; run.c takes
    // the leftmost (" b"), then the only remaining piece pair "ab": " b", "ab".
    int ids[8], n;
    cr_assert_eq(tokenizer_encode(&t, "bab", 0, 0, ids, 8, &n), 0);
    cr_assert(n == 2 && strcmp(tokenizer_piece(&t, ids[0]), " b") == 0 &&
              strcmp(tokenizer_piece(&t, ids[1]), "ab") == 0, "got %d ids: \"%s\" ...", n, tokenizer_piece(&t, ids[0]));
    ref_free(&r);
    tokenizer_free(&t);
    tu_rmtree(dir);
    free(dir);
    free(path);
}

// ---- limits and speed ------------------------------------------------------------------

Test(tokenizer, max_tokens_too_small_fails_clearly) {
    Tokenizer t;
    load_shared(&t, STORIES_TOK, 512);
    const char *text = "Once upon a time there was a little girl";   // 12 ids with BOS
    int ids[16] = {0}, n = -1;
    cr_assert_eq(tokenizer_encode(&t, text, 1, 0, ids, 11, &n), -1);
    cr_assert(strstr(ct_errmsg(), "needs 12 tokens") && strstr(ct_errmsg(), "at most 11"), "%s", ct_errmsg());
    cr_assert_eq(n, 12, "n_out reports the count needed");
    cr_assert_eq(ids[0], 0, "nothing written on failure");
    cr_assert_eq(tokenizer_encode(&t, text, 1, 0, ids, 12, &n), 0);
    cr_assert_eq(n, 12);
    cr_assert_eq(tokenizer_encode(&t, text, 1, 0, NULL, 0, &n), -1);
    cr_assert_eq(n, 12);
    tokenizer_free(&t);
}

// 1 MB of story-like text: the heap encoder must stay well away from run.c's O(n^2).
Test(tokenizer, one_megabyte_encodes_fast_and_round_trips, .timeout = 15) {
    Tokenizer t;
    load_shared(&t, STORIES_TOK, 512);
    static const char *words[] = {"Once", "upon", "a", "time", "there", "was", "little", "girl", "named", "Lily.",
                                  "She", "loved", "to", "play", "outside", "in", "the", "park.", "\"Look,\"", "said",
                                  "Tom.\n", "friend", "café", "日本", "big,", "red", "ball!"};
    size_t cap = 1 << 20, n = 0;
    char *text = malloc(cap + 64);
    TuRng g;
    tu_rng_seed(&g, 7);
    while (n < cap) {
        const char *w = words[tu_rng_below(&g, sizeof words / sizeof *words)];
        n += (size_t)sprintf(text + n, "%s%s", n ? " " : "", w);
    }
    int *ids = malloc((n + 2) * sizeof *ids), k;
    double t0 = ct_now();
    cr_assert_eq(tokenizer_encode(&t, text, 1, 0, ids, (int)n + 2, &k), 0, "%s", ct_errmsg());
    double dt = ct_now() - t0;
    cr_assert_lt(dt, 3.0, "1 MB took %.2f s", dt);
    cr_assert_lt(k, (int)(n / 2), "expected merges to shrink %zu bytes, got %d ids", n, k);
    // A prefix encodes to the same ids as run.c's naive loop would give: checked on 600 B.
    RefVocab r;
    ref_load(&r, STORIES_TOK, 512);
    char head[2048];
    size_t hl = 600;
    while (text[hl] != ' ') hl--;   // cut at a space so the rest cannot affect the prefix ids
    memcpy(head, text, hl);
    head[hl] = 0;
    int a[2100], b[2100], na, nb;
    cr_assert_eq(tokenizer_encode(&t, head, 1, 0, a, 2100, &na), 0);
    nb = ref_encode_runc(&r, head, b);
    cr_assert(na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0);
    ref_free(&r);
    // Round trip of the whole megabyte.
    char *out = malloc(n + 1);
    size_t m = 0;
    for (int i = 1; i < k; i++) {
        const char *p = tokenizer_decode(&t, ids[i - 1], ids[i]);
        size_t l = strlen(p);
        cr_assert_leq(m + l, n);
        memcpy(out + m, p, l);
        m += l;
    }
    cr_assert(m == n && memcmp(out, text, n) == 0);
    cr_log_info("1 MB (%zu bytes) -> %d ids in %.3f s", n, k, dt);
    free(out);
    free(ids);
    free(text);
    tokenizer_free(&t);
}

// ---- malformed files -------------------------------------------------------------------

typedef struct BadFiles {
    char *dir;
    uint8_t *good;   // the real stories260K tok512.bin
    size_t n;
    size_t off[513]; // byte offset of each token record (off[512] = file size)
} BadFiles;

static void bad_init(BadFiles *b) {
    b->dir = tu_mkdtemp("ct_tok");
    cr_assert_not_null(b->dir);
    char *p = tu_shared_path(STORIES_TOK);
    b->good = tu_read_file(p, &b->n);
    cr_assert_not_null(b->good);
    free(p);
    size_t o = 4;
    for (int i = 0; i < 512; i++) {
        b->off[i] = o;
        int32_t len;
        memcpy(&len, b->good + o + 4, 4);
        o += 8 + (size_t)len;
    }
    b->off[512] = o;
    cr_assert_eq(o, b->n);
}

static void bad_fini(BadFiles *b) {
    tu_rmtree(b->dir);
    free(b->dir);
    free(b->good);
}

// Write data (n bytes) as dir/name and try to load it; returns the load status.
static int try_load(BadFiles *b, const char *name, const void *data, size_t n, int vocab, Tokenizer *t) {
    char *p = tu_join(b->dir, name);
    cr_assert_eq(tu_write_file(p, data, n), 0);
    int rc = tokenizer_load(t, p, vocab);
    free(p);
    return rc;
}

#define EXPECT_ERR(...)                                                                         \
    do {                                                                                        \
        const char *want_[] = {__VA_ARGS__};                                                    \
        for (size_t i_ = 0; i_ < sizeof want_ / sizeof *want_; i_++)                            \
            cr_assert(strstr(ct_errmsg(), want_[i_]), "error \"%s\" lacks \"%s\"", ct_errmsg(), want_[i_]); \
    } while (0)

Test(tokenizer, bad_files) {
    BadFiles b;
    bad_init(&b);
    Tokenizer t;
    uint8_t *m = malloc(b.n + 16);

    // missing file
    char *p = tu_join(b.dir, "missing.bin");
    cr_assert_eq(tokenizer_load(&t, p, 512), -1);
    EXPECT_ERR("missing.bin", "No such file");
    free(p);

    // empty, and a header cut short
    cr_assert_eq(try_load(&b, "empty.bin", b.good, 0, 512, &t), -1);
    EXPECT_ERR("empty.bin", "max_token_length", "expected 4 bytes, got 0");
    cr_assert_eq(try_load(&b, "short.bin", b.good, 2, 512, &t), -1);
    EXPECT_ERR("short.bin", "max_token_length", "got 2");

    // absurd max_token_length
    memcpy(m, b.good, b.n);
    int32_t v = -1;
    memcpy(m, &v, 4);
    cr_assert_eq(try_load(&b, "maxlen.bin", m, b.n, 512, &t), -1);
    EXPECT_ERR("maxlen.bin", "max_token_length", "got -1");

    // truncated in the middle of token 100's bytes
    size_t cut = b.off[100] + 9;
    cr_assert_eq(try_load(&b, "trunc_bytes.bin", b.good, cut, 512, &t), -1);
    EXPECT_ERR("trunc_bytes.bin", "token 100", "bytes", "got 1", "truncated");
    // truncated inside token 200's length field
    cut = b.off[200] + 6;
    cr_assert_eq(try_load(&b, "trunc_len.bin", b.good, cut, 512, &t), -1);
    EXPECT_ERR("trunc_len.bin", "token 200", "length", "expected 4 bytes", "got 2");
    // truncated inside token 300's score
    cut = b.off[300] + 3;
    cr_assert_eq(try_load(&b, "trunc_score.bin", b.good, cut, 512, &t), -1);
    EXPECT_ERR("trunc_score.bin", "token 300", "score", "got 3");

    // a file that ends cleanly after 300 tokens: wrong for vocab 512, fine for vocab 0 / 300
    cut = b.off[300];
    cr_assert_eq(try_load(&b, "short_vocab.bin", b.good, cut, 512, &t), -1);
    EXPECT_ERR("short_vocab.bin", "token 300", "holds 300 tokens", "vocab_size is 512");
    cr_assert_eq(try_load(&b, "short_vocab.bin", b.good, cut, 0, &t), 0, "%s", ct_errmsg());
    cr_assert_eq(tokenizer_vocab_size(&t), 300);
    tokenizer_free(&t);
    cr_assert_eq(try_load(&b, "short_vocab.bin", b.good, cut, 300, &t), 0);
    tokenizer_free(&t);

    // negative length in token 5
    memcpy(m, b.good, b.n);
    v = -3;
    memcpy(m + b.off[5] + 4, &v, 4);
    cr_assert_eq(try_load(&b, "neg.bin", m, b.n, 512, &t), -1);
    EXPECT_ERR("neg.bin", "token 5", "length", "expected 0..7", "got -3");

    // length above the header's max_token_length (7)
    memcpy(m, b.good, b.n);
    v = 8;
    memcpy(m + b.off[7] + 4, &v, 4);
    cr_assert_eq(try_load(&b, "long.bin", m, b.n, 512, &t), -1);
    EXPECT_ERR("long.bin", "token 7", "length", "expected 0..7", "got 8");

    // the last token's length runs past the end of the file (max_token_length raised so
    // the length itself is legal)
    memcpy(m, b.good, b.n);
    v = 1000;
    memcpy(m, &v, 4);
    memcpy(m + b.off[511] + 4, &v, 4);
    cr_assert_eq(try_load(&b, "past_eof.bin", m, b.n, 512, &t), -1);
    EXPECT_ERR("past_eof.bin", "token 511", "bytes", "expected 1000 bytes");

    // a NUL inside a piece
    memcpy(m, b.good, b.n);
    m[b.off[400] + 9] = 0;
    cr_assert_eq(try_load(&b, "nul.bin", m, b.n, 512, &t), -1);
    EXPECT_ERR("nul.bin", "token 400", "NUL");

    // the real file against wrong vocab sizes
    cr_assert_eq(try_load(&b, "real.bin", b.good, b.n, 600, &t), -1);
    EXPECT_ERR("real.bin", "holds 512 tokens", "vocab_size is 600");
    cr_assert_eq(try_load(&b, "real.bin", b.good, b.n, 500, &t), -1);
    EXPECT_ERR("real.bin", "trailing bytes");
    cr_assert_eq(try_load(&b, "real.bin", b.good, b.n, -5, &t), -1);
    EXPECT_ERR("vocab_size", "got -5");
    cr_assert_eq(try_load(&b, "real.bin", b.good, b.n, 0, &t), 0);
    cr_assert_eq(tokenizer_vocab_size(&t), 512);
    cr_assert_str_eq(tokenizer_piece(&t, 511), "\xe2\x80\x8a");
    tokenizer_free(&t);

    // a header alone (no tokens) with vocab 0
    cr_assert_eq(try_load(&b, "header_only.bin", b.good, 4, 0, &t), -1);
    EXPECT_ERR("header_only.bin", "at least 1");

    free(m);
    bad_fini(&b);
}

// ---- tokens_parse_list -----------------------------------------------------------------

Test(tokenizer, parse_token_list) {
    int ids[8], n = -1;
    cr_assert_eq(tokens_parse_list("1,403,407", 512, ids, 8, &n), 0, "%s", ct_errmsg());
    cr_assert(n == 3 && ids[0] == 1 && ids[1] == 403 && ids[2] == 407);
    cr_assert_eq(tokens_parse_list(" 7 , 0,511 ", 512, ids, 8, &n), 0, "%s", ct_errmsg());
    cr_assert(n == 3 && ids[0] == 7 && ids[1] == 0 && ids[2] == 511);
    cr_assert_eq(tokens_parse_list("999999", 0, ids, 8, &n), 0, "vocab 0: no upper bound");
    cr_assert(n == 1 && ids[0] == 999999);

    cr_assert_eq(tokens_parse_list("1,,2", 512, ids, 8, &n), -1);
    EXPECT_ERR("item 2", "character 3", "empty");
    cr_assert_eq(n, 0);
    cr_assert_eq(tokens_parse_list("1,abc", 512, ids, 8, &n), -1);
    EXPECT_ERR("item 2", "\"abc\"", "integer");
    cr_assert_eq(tokens_parse_list("-1", 512, ids, 8, &n), -1);
    EXPECT_ERR("item 1", "[0, 512)", "got -1");
    cr_assert_eq(tokens_parse_list("999999", 512, ids, 8, &n), -1);
    EXPECT_ERR("item 1", "[0, 512)", "got 999999");
    cr_assert_eq(tokens_parse_list("1,512", 512, ids, 8, &n), -1);
    EXPECT_ERR("item 2", "got 512");
    cr_assert_eq(tokens_parse_list("", 512, ids, 8, &n), -1);
    EXPECT_ERR("empty string");
    cr_assert_eq(tokens_parse_list("1,2,", 512, ids, 8, &n), -1);
    EXPECT_ERR("item 3", "empty");
    cr_assert_eq(tokens_parse_list("12x", 512, ids, 8, &n), -1);
    EXPECT_ERR("\"12x\"");
    cr_assert_eq(tokens_parse_list("99999999999999999999", 0, ids, 8, &n), -1);
    EXPECT_ERR("item 1");
    cr_assert_eq(tokens_parse_list("1,2,3", 512, ids, 2, &n), -1);
    EXPECT_ERR("at most 2");
}
