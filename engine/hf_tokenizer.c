// hf_tokenizer.c — Hugging Face tokenizers (tokenizer.json, GPT-2 vocab.json + merges.txt).
//
// Encoding follows the `tokenizers` library step by step (engine/hf_tokenizer.h lists what is
// supported):
//   text --(added tokens with normalized=false: literal, leftmost then longest)--> parts
//   part --normalizer--> --(added tokens with normalized=true)--> --pre-tokenizer--> words
//   word --BPE--> ids;  then the post-processor's prefix/suffix ids (BOS/EOS) when asked.
// BPE works on token ids, never on strings: a word becomes one symbol per character (byte-
// level: per byte, through the GPT-2 byte->unicode table; otherwise per UTF-8 character, with
// byte_fallback / unk for characters outside the vocabulary), and merges are looked up in a
// hash (id_a, id_b) -> (rank, merged id). Symbols sit in a doubly linked list and candidate
// merges in a binary min-heap keyed by (rank, position): pop the lowest rank (leftmost on
// ties, as HF's heap does), skip it if either side changed since it was queued, merge, queue
// the two new neighbours' pairs. A word of n symbols costs O(n log n), so a whole text that
// is a single word (SentencePiece style, no pre-tokenizer) is fine too.
// Regexes are PCRE2 (UTF + UCP + MATCH_INVALID_UTF, JIT when available); \s is widened to
// Oniguruma's (HF's regex engine) by adding U+0085. Invalid UTF-8 never matches a pattern and
// so stays a word of its own, which byte-level BPE still encodes losslessly.
//
// A loaded tokenizer is read-only; encode allocates its scratch per call, so several threads
// may encode at once.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "engine/hf_tokenizer.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HF_MAX_IDS (1 << 28)   // keeps hash tables below 2^32 slots
#define HF_SUPPORTED                                                                              \
    "supported: model BPE (byte-level as GPT-2/Llama 3/Qwen, or SentencePiece-style with "        \
    "byte_fallback as Gemma); normalizers Replace, Prepend, NFC, Sequence; pre-tokenizers "       \
    "ByteLevel, Split, Metaspace, Digits, Sequence; post-processors TemplateProcessing, "         \
    "ByteLevel, RobertaProcessing, BertProcessing, Sequence; decoders ByteLevel, Replace, "       \
    "ByteFallback, Fuse, Strip, Metaspace, Sequence"
// GPT-2's pre-tokenizer regex (also what ByteLevel with use_regex=true applies).
#define GPT2_PATTERN \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define METASPACE "\xE2\x96\x81"   // U+2581 "▁"

// ----------------------------------------------------------------------------------------
// small containers

typedef struct Buf {
    char *p;
    size_t n, cap;
} Buf;

static int buf_put(Buf *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return ct_error("hf tokenizer: out of memory for a %zu-byte buffer", cap);
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;   // always NUL-terminated, so pieces can be handed out as C strings
    return CT_OK;
}

typedef struct IVec {
    int *p;
    size_t n, cap;
} IVec;

static int ivec_push(IVec *v, int x) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int *p = realloc(v->p, cap * sizeof *p);
        if (!p) return ct_error("hf tokenizer: out of memory for %zu ids", cap);
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = x;
    return CT_OK;
}

// Length of the valid UTF-8 sequence at s (at most n bytes), 0 when malformed.
static int utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (n >= 2 && c >= 0xC2 && c <= 0xDF && (s[1] & 0xC0) == 0x80) return 2;
    if (n >= 3 && (c & 0xF0) == 0xE0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80) {
        unsigned cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        return (cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) ? 3 : 0;
    }
    if (n >= 4 && c >= 0xF0 && c <= 0xF4 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 &&
        (s[3] & 0xC0) == 0x80) {
        unsigned cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) |
                      (s[3] & 0x3Fu);
        return (cp >= 0x10000 && cp <= 0x10FFFF) ? 4 : 0;
    }
    return 0;
}

static uint32_t utf8_cp(const unsigned char *s, int len) {
    if (len == 1) return s[0];
    if (len == 2) return ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu);
    if (len == 3) return ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    return ((s[0] & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
}

static int utf8_put(char *o, uint32_t cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// GPT-2 bytes_to_unicode(): printable Latin-1 bytes stand for themselves; the other 68
// bytes, in byte order, get U+0100..U+0143: 0x00-0x20 (33), 0x7F-0xA0 (34), then 0xAD.
static uint32_t byte_to_unicode(int b) {
    if (b <= 0x20) return 256u + (uint32_t)b;
    if (b >= 0x7F && b <= 0xA0) return 256u + 33u + (uint32_t)(b - 0x7F);
    if (b == 0xAD) return 256u + 33u + 34u;
    return (uint32_t)b;
}

// Inverse: code point -> byte, -1 when cp is not in the table.
static int unicode_to_byte(uint32_t cp) {
    if (cp < 256) return (cp <= 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD) ? -1 : (int)cp;
    if (cp < 256 + 33) return (int)cp - 256;
    if (cp < 256 + 33 + 34) return (int)cp - 256 - 33 + 0x7F;
    return cp == 256 + 33 + 34 ? 0xAD : -1;
}

// ----------------------------------------------------------------------------------------
// the loaded tokenizer

enum { NORM_REPLACE, NORM_PREPEND, NORM_NFC };
typedef struct HfNorm {
    int kind;
    pcre2_code *re;      // Replace with a Regex pattern; NULL for a String pattern
    char *pat, *content; // Replace: literal pattern / replacement; Prepend: content
    size_t pat_len, content_len;
} HfNorm;

enum { PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE };
enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };
enum { PREPEND_NEVER, PREPEND_FIRST, PREPEND_ALWAYS };
typedef struct HfPre {
    int kind;
    pcre2_code *re;       // Split / Digits / ByteLevel(use_regex): the pattern
    char *lit;            // Split with a String pattern
    size_t lit_len;
    int behavior, invert; // Split
    int add_prefix_space; // ByteLevel
    char rep[8];          // Metaspace replacement (UTF-8)
    int rep_len, prepend, split;
} HfPre;

enum { DEC_BYTELEVEL, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE };
typedef struct HfDec {
    int kind;
    char *pat, *content;
    size_t pat_len, content_len;
    int start, stop;      // Strip: characters to drop
} HfDec;

typedef struct HfAdded {
    char *content;        // as in the file
    char *match;          // what is searched for (content, normalized when normalized=true)
    size_t match_len;
    int id, special, normalized, lstrip, rstrip, single_word;
} HfAdded;

// Added tokens of one matching set, sorted by (first byte, length descending): the tokens
// that can start at byte c are idx[start[c] .. start[c+1]).
typedef struct AddedIndex {
    int *idx;
    int start[257];
} AddedIndex;

typedef struct HfTok {
    char *path;                 // file named in messages
    int n_ids;                  // max id + 1 over model.vocab and added_tokens
    // token strings, raw as in the file: tok_off/tok_len into blob; tok_len -1 = no token
    Buf blob;
    size_t *tok_off;
    int *tok_len;               // (n_ids)
    uint8_t *in_model;          // (n_ids) 1 if the id is in model.vocab
    int *vh;                    // hash of model.vocab strings -> id, -1 = empty
    uint32_t vh_mask;
    // merges: (a << 32 | b) -> rank, merged id
    uint64_t *mkey;
    int *mrank, *mnew;          // mrank -1 = empty slot
    uint32_t m_mask;
    int n_merges;
    // BPE options
    int byte_level, byte_fallback, fuse_unk, ignore_merges, unk_id;
    int meta_split;             // 1: SentencePiece-style words may be cut before "▁" (below)
    uint32_t *meta_prev;        // sorted characters (UTF-8 bytes packed) that precede "▁"
    int n_meta_prev;            // inside some token: no cut between them and "▁"
    int byte_char_id[256];      // byte-level: id of the character standing for byte b, or -1
    int byte_fb_id[256];        // id of "<0xHH>", or -1
    // pipeline
    HfAdded *added;
    int n_added;
    AddedIndex ai[2];           // [0]: matched on raw text, [1]: on normalized text
    HfNorm *norm;
    int n_norm;
    HfPre *pre;
    int n_pre;
    IVec prefix, suffix;        // post-processor ids around a single sequence
    HfDec *dec;
    int n_dec;
    int strip_after_bos;        // decoded token after BOS loses one leading space
    // decoded bytes of every id (NUL-terminated), from the decoder
    Buf dblob;
    size_t *dec_off;            // (n_ids)
} HfTok;

static void hf_free(HfTok *h) {
    if (!h) return;
    free(h->path);
    free(h->blob.p);
    free(h->tok_off);
    free(h->tok_len);
    free(h->in_model);
    free(h->vh);
    free(h->mkey);
    free(h->mrank);
    free(h->mnew);
    for (int i = 0; i < h->n_added; i++) {
        free(h->added[i].content);
        free(h->added[i].match);
    }
    free(h->added);
    free(h->ai[0].idx);
    free(h->ai[1].idx);
    for (int i = 0; i < h->n_norm; i++) {
        pcre2_code_free(h->norm[i].re);
        free(h->norm[i].pat);
        free(h->norm[i].content);
    }
    free(h->norm);
    for (int i = 0; i < h->n_pre; i++) {
        pcre2_code_free(h->pre[i].re);
        free(h->pre[i].lit);
    }
    free(h->pre);
    free(h->prefix.p);
    free(h->suffix.p);
    for (int i = 0; i < h->n_dec; i++) {
        free(h->dec[i].pat);
        free(h->dec[i].content);
    }
    free(h->dec);
    free(h->dblob.p);
    free(h->dec_off);
    free(h->meta_prev);
    free(h);
}

void hf_tokenizer_free(struct HfTok *h) { hf_free(h); }

// "tokenizer <file>: field <field>: <message>" — every load error goes through here.
__attribute__((format(printf, 3, 4)))
static int field_err(const char *path, const char *field, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ct_error("tokenizer %s: field %s: %s", path, field, msg);
}

static const char *jtype(const json_t *j) {
    if (!j) return "nothing (missing)";
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

// ---- token strings and the vocabulary hash ----

static const char *tok_str(const HfTok *h, int id) { return h->blob.p + h->tok_off[id]; }

static uint32_t str_hash(const char *s, size_t n) { return (uint32_t)ct_hash64(s, n); }

static int vocab_lookup(const HfTok *h, const char *s, size_t n) {
    if (!h->vh) return -1;
    for (uint32_t i = str_hash(s, n) & h->vh_mask;; i = (i + 1) & h->vh_mask) {
        int id = h->vh[i];
        if (id < 0) return -1;
        if ((size_t)h->tok_len[id] == n && memcmp(tok_str(h, id), s, n) == 0) return id;
    }
}

static int vocab_insert(HfTok *h, int id) {
    const char *s = tok_str(h, id);
    size_t n = (size_t)h->tok_len[id];
    for (uint32_t i = str_hash(s, n) & h->vh_mask;; i = (i + 1) & h->vh_mask) {
        int j = h->vh[i];
        if (j < 0) { h->vh[i] = id; return CT_OK; }
        if ((size_t)h->tok_len[j] == n && memcmp(tok_str(h, j), s, n) == 0) return j;   // duplicate
    }
}

// Allocate per-id arrays for ids [0, n_ids) and a vocabulary hash for n_vocab strings.
static int alloc_ids(HfTok *h, int n_ids, size_t n_vocab) {
    h->n_ids = n_ids;
    h->tok_off = calloc((size_t)n_ids, sizeof *h->tok_off);
    h->tok_len = malloc((size_t)n_ids * sizeof *h->tok_len);
    h->in_model = calloc((size_t)n_ids, 1);
    uint32_t cap = 16;
    while (cap < 2 * n_vocab) cap <<= 1;
    h->vh_mask = cap - 1;
    h->vh = malloc((size_t)cap * sizeof *h->vh);
    if (!h->tok_off || !h->tok_len || !h->in_model || !h->vh)
        return ct_error("tokenizer %s: out of memory for %d ids", h->path, n_ids);
    for (int i = 0; i < n_ids; i++) h->tok_len[i] = -1;
    for (uint32_t i = 0; i < cap; i++) h->vh[i] = -1;
    return CT_OK;
}

// Store string s as token id of model.vocab (field names the place for messages).
static int set_vocab_token(HfTok *h, int id, const char *s, size_t n, const char *field) {
    if (h->tok_len[id] >= 0)
        return field_err(h->path, field, "expected each id once, got id %d for both \"%s\" and \"%.*s\"",
                         id, tok_str(h, id), (int)n, s);
    h->tok_off[id] = h->blob.n;
    if (buf_put(&h->blob, s, n) != CT_OK || buf_put(&h->blob, "", 1) != CT_OK) return CT_ERR;
    h->tok_len[id] = (int)n;
    h->in_model[id] = 1;
    int dup = vocab_insert(h, id);
    if (dup != CT_OK)
        return field_err(h->path, field, "expected each token once, got \"%.*s\" as id %d and id %d",
                         (int)n, s, dup, id);
    return CT_OK;
}

// ---- merges: (a, b) -> (rank, merged id) ----

static uint32_t pair_hash(uint64_t k) { return (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 32); }

static int merge_find(const HfTok *h, int a, int b, int *rank) {
    if (!h->mkey) return -1;
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (uint32_t i = pair_hash(k) & h->m_mask;; i = (i + 1) & h->m_mask) {
        if (h->mrank[i] < 0) return -1;
        if (h->mkey[i] == k) {
            *rank = h->mrank[i];
            return h->mnew[i];
        }
    }
}

static int merges_alloc(HfTok *h, size_t n) {
    if (n > (size_t)HF_MAX_IDS)
        return ct_error("tokenizer %s: merges: expected at most %d, got %zu", h->path, HF_MAX_IDS, n);
    uint32_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    h->m_mask = cap - 1;
    h->mkey = malloc((size_t)cap * sizeof *h->mkey);
    h->mrank = malloc((size_t)cap * sizeof *h->mrank);
    h->mnew = malloc((size_t)cap * sizeof *h->mnew);
    if (!h->mkey || !h->mrank || !h->mnew)
        return ct_error("tokenizer %s: out of memory for %zu merges", h->path, n);
    for (uint32_t i = 0; i < cap; i++) h->mrank[i] = -1;
    return CT_OK;
}

// Add the next merge (rank = merges so far): tokens a and b, whose concatenation must be a
// token too. file, where: the file and "model.merges[12]" / "line 14", for messages.
static int merge_add(HfTok *h, const char *file, const char *a, size_t na, const char *b, size_t nb,
                     const char *where) {
    int ia = vocab_lookup(h, a, na), ib = vocab_lookup(h, b, nb);
    if (ia < 0 || ib < 0)
        return field_err(file, where, "merge \"%.*s\" + \"%.*s\": expected both tokens in the "
                         "vocabulary, got \"%.*s\" missing; is this the right merges list?",
                         (int)na, a, (int)nb, b, ia < 0 ? (int)na : (int)nb, ia < 0 ? a : b);
    char tmp[512];
    Buf cat = {0};
    const char *s = tmp;
    if (na + nb <= sizeof tmp) {
        memcpy(tmp, a, na);
        memcpy(tmp + na, b, nb);
    } else {
        if (buf_put(&cat, a, na) != CT_OK || buf_put(&cat, b, nb) != CT_OK) return CT_ERR;
        s = cat.p;
    }
    int in = vocab_lookup(h, s, na + nb);
    free(cat.p);
    if (in < 0)
        return field_err(file, where, "merge \"%.*s\" + \"%.*s\": expected the merged token "
                         "\"%.*s%.*s\" in the vocabulary, got none", (int)na, a, (int)nb, b,
                         (int)na, a, (int)nb, b);
    uint64_t k = ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib;
    for (uint32_t i = pair_hash(k) & h->m_mask;; i = (i + 1) & h->m_mask) {
        if (h->mrank[i] < 0) {
            h->mkey[i] = k;
            h->mrank[i] = h->n_merges;
            h->mnew[i] = in;
            break;
        }
        if (h->mkey[i] == k) break;   // a repeated pair keeps its first (lowest) rank
    }
    h->n_merges++;
    return CT_OK;
}

// ----------------------------------------------------------------------------------------
// regexes

// HF tokenizers matches with Oniguruma, whose \s is Unicode White_Space; PCRE2's UCP \s lacks
// U+0085 (NEL). Rewrite \s / \S so both engines split the same way. Character classes are
// tracked so "[^\s\p{L}]" becomes "[^\s\x{85}\p{L}]".
static int onig_compat(const char *pat, size_t n, Buf *o) {
    int in_class = 0;
    for (size_t i = 0; i < n;) {
        char c = pat[i];
        if (c == '\\' && i + 1 < n) {
            char d = pat[i + 1];
            const char *rep = NULL;
            if (d == 's') rep = in_class ? "\\s\\x{85}" : "[\\s\\x{85}]";
            if (d == 'S' && !in_class) rep = "[^\\s\\x{85}]";
            if (rep ? buf_put(o, rep, strlen(rep)) : buf_put(o, pat + i, 2)) return CT_ERR;
            i += 2;
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && pat[i + 1] == ':') {   // [:alpha:] inside a class
            const char *e = strstr(pat + i, ":]");
            size_t len = e && (size_t)(e - pat) < n ? (size_t)(e - pat) - i + 2 : 1;
            if (buf_put(o, pat + i, len)) return CT_ERR;
            i += len;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            size_t k = i + 1;
            if (k < n && pat[k] == '^') k++;
            if (k < n && pat[k] == ']') k++;   // a leading ']' is a literal
            if (buf_put(o, pat + i, k - i)) return CT_ERR;
            i = k;
            continue;
        }
        if (in_class && c == ']') in_class = 0;
        if (buf_put(o, &c, 1)) return CT_ERR;
        i++;
    }
    return CT_OK;
}

static int regex_compile(const char *path, const char *field, const char *pat, size_t n,
                         pcre2_code **out) {
    Buf p = {0};
    if (onig_compat(pat, n, &p) != CT_OK) return CT_ERR;
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)p.p, p.n,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &off, NULL);
    free(p.p);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return field_err(path, field, "expected a regular expression, got \"%.*s\": %s near "
                         "offset %zu", (int)n, pat, (const char *)msg, (size_t)off);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   // optional: the interpreter is the fallback
    *out = re;
    return CT_OK;
}

// Next non-empty match of re in s[start, n): 1 and [*ms, *me), 0 when none, -1 on error.
static int re_find(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n,
                   size_t start, size_t *ms, size_t *me) {
    while (start <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, 0, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return ct_error("hf tokenizer: regex match failed: %s", (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] > ov[0]) {
            *ms = ov[0];
            *me = ov[1];
            return 1;
        }
        start = ov[0] + 1;   // an empty match: look again one character later
        while (start < n && ((unsigned char)s[start] & 0xC0) == 0x80) start++;
    }
    return 0;
}

static int lit_find(const char *lit, size_t ln, const char *s, size_t n, size_t start,
                    size_t *ms, size_t *me) {
    if (ln == 0 || start >= n) return 0;
    const char *p = memmem(s + start, n - start, lit, ln);
    if (!p) return 0;
    *ms = (size_t)(p - s);
    *me = *ms + ln;
    return 1;
}

// ----------------------------------------------------------------------------------------
// NFC. Without Unicode tables we only accept characters that NFC leaves alone in any context:
// canonical combining class 0 and NFC_Quick_Check=Yes. The ranges below hold only such
// characters (checked against UnicodeData / DerivedNormalizationProps; singletons such as
// U+2126 OHM SIGN and composition exclusions are left out on purpose).
static int nfc_stable(uint32_t c) {
    static const uint32_t ok[][2] = {
        {0x0000, 0x02FF}, {0x0370, 0x0373}, {0x0375, 0x037D}, {0x037F, 0x0386},
        {0x0388, 0x03FF}, {0x0400, 0x0482}, {0x048A, 0x052F}, {0x0531, 0x0587},
        {0x10A0, 0x10FF}, {0x1E00, 0x1EFF}, {0x2002, 0x20CF}, {0x2100, 0x2125},
        {0x2127, 0x2129}, {0x212C, 0x2328}, {0x232B, 0x27FF}, {0x2B00, 0x2BFF},
        {0x3000, 0x3029}, {0x3030, 0x3098}, {0x309B, 0x33FF}, {0x3400, 0x4DBF},
        {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0xE000, 0xF8FF}, {0xFE00, 0xFE0F},
        {0xFE30, 0xFE4F}, {0xFF00, 0xFFEF}, {0xFFFD, 0xFFFD}, {0x1F000, 0x1FAFF},
        {0xE0000, 0xE007F},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (c >= ok[i][0] && c <= ok[i][1]) return 1;
    return 0;
}

// ----------------------------------------------------------------------------------------
// tokenizer.json: the pieces

static int get_bool(const json_t *o, const char *key, int def) {
    const json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

// A Split / Replace "pattern": {"String": s} or {"Regex": r}. Fills exactly one of re / lit.
static int parse_pattern(HfTok *h, const json_t *pat, const char *field, pcre2_code **re,
                         char **lit, size_t *lit_len) {
    const json_t *s = json_object_get(pat, "String"), *r = json_object_get(pat, "Regex");
    if (json_is_string(s)) {
        *lit_len = json_string_length(s);
        *lit = malloc(*lit_len + 1);
        if (!*lit) return ct_error("tokenizer %s: out of memory", h->path);
        memcpy(*lit, json_string_value(s), *lit_len + 1);
        return CT_OK;
    }
    if (json_is_string(r))
        return regex_compile(h->path, field, json_string_value(r), json_string_length(r), re);
    return field_err(h->path, field, "expected {\"String\": ...} or {\"Regex\": ...}, got %s",
                     jtype(pat));
}

static char *dup_str(const json_t *s, size_t *len) {
    *len = json_string_length(s);
    char *p = malloc(*len + 1);
    if (p) memcpy(p, json_string_value(s), *len + 1);
    return p;
}

static int parse_normalizer(HfTok *h, const json_t *j, const char *field) {
    if (!j || json_is_null(j)) return CT_OK;
    const char *type = json_string_value(json_object_get(j, "type"));
    char sub[160];
    if (!type) return field_err(h->path, field, "expected an object with a \"type\", got %s", jtype(j));
    if (!strcmp(type, "Sequence")) {
        const json_t *arr = json_object_get(j, "normalizers");
        if (!json_is_array(arr))
            return field_err(h->path, field, "Sequence: expected a \"normalizers\" array, got %s",
                             jtype(arr));
        for (size_t i = 0; i < json_array_size(arr); i++) {
            snprintf(sub, sizeof sub, "%s.normalizers[%zu]", field, i);
            if (parse_normalizer(h, json_array_get(arr, i), sub) != CT_OK) return CT_ERR;
        }
        return CT_OK;
    }
    HfNorm nm = {0};
    if (!strcmp(type, "Replace")) {
        nm.kind = NORM_REPLACE;
        snprintf(sub, sizeof sub, "%s.pattern", field);
        if (parse_pattern(h, json_object_get(j, "pattern"), sub, &nm.re, &nm.pat, &nm.pat_len) != CT_OK)
            return CT_ERR;
        const json_t *c = json_object_get(j, "content");
        if (!json_is_string(c)) {
            pcre2_code_free(nm.re);
            free(nm.pat);
            return field_err(h->path, field, "Replace: expected a string \"content\", got %s", jtype(c));
        }
        nm.content = dup_str(c, &nm.content_len);
    } else if (!strcmp(type, "Prepend")) {
        nm.kind = NORM_PREPEND;
        const json_t *c = json_object_get(j, "prepend");
        if (!json_is_string(c))
            return field_err(h->path, field, "Prepend: expected a string \"prepend\", got %s", jtype(c));
        nm.content = dup_str(c, &nm.content_len);
    } else if (!strcmp(type, "NFC")) {
        nm.kind = NORM_NFC;
    } else {
        return field_err(h->path, field, "type: got \"%s\", which is not supported (%s)", type,
                         HF_SUPPORTED);
    }
    HfNorm *p = realloc(h->norm, (size_t)(h->n_norm + 1) * sizeof *p);
    if (!p) return ct_error("tokenizer %s: out of memory", h->path);
    h->norm = p;
    h->norm[h->n_norm++] = nm;
    return CT_OK;
}

static int add_pre(HfTok *h, HfPre *pr) {
    HfPre *p = realloc(h->pre, (size_t)(h->n_pre + 1) * sizeof *p);
    if (!p) return ct_error("tokenizer %s: out of memory", h->path);
    h->pre = p;
    h->pre[h->n_pre++] = *pr;
    return CT_OK;
}

static int parse_prepend_scheme(HfTok *h, const json_t *j, const char *field) {
    const char *s = json_string_value(json_object_get(j, "prepend_scheme"));
    if (!s) return get_bool(j, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER;   // older files
    if (!strcmp(s, "always")) return PREPEND_ALWAYS;
    if (!strcmp(s, "first")) return PREPEND_FIRST;
    if (!strcmp(s, "never")) return PREPEND_NEVER;
    return field_err(h->path, field, "prepend_scheme: expected always, first or never, got \"%s\"", s);
}

static int parse_pretokenizer(HfTok *h, const json_t *j, const char *field) {
    if (!j || json_is_null(j)) return CT_OK;
    const char *type = json_string_value(json_object_get(j, "type"));
    char sub[160];
    if (!type) return field_err(h->path, field, "expected an object with a \"type\", got %s", jtype(j));
    if (!strcmp(type, "Sequence")) {
        const json_t *arr = json_object_get(j, "pretokenizers");
        if (!json_is_array(arr))
            return field_err(h->path, field, "Sequence: expected a \"pretokenizers\" array, got %s",
                             jtype(arr));
        for (size_t i = 0; i < json_array_size(arr); i++) {
            snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", field, i);
            if (parse_pretokenizer(h, json_array_get(arr, i), sub) != CT_OK) return CT_ERR;
        }
        return CT_OK;
    }
    // ByteLevel turns bytes into the characters BPE sees; every later step would see those
    // characters instead of the text. No released tokenizer does that, so we refuse it.
    if (h->n_pre > 0 && h->pre[h->n_pre - 1].kind == PRE_BYTELEVEL)
        return field_err(h->path, field, "expected ByteLevel to be the last pre-tokenizer, got "
                         "\"%s\" after it (not supported)", type);
    HfPre pr = {0};
    pr.behavior = SPLIT_ISOLATED;
    if (!strcmp(type, "ByteLevel")) {
        pr.kind = PRE_BYTELEVEL;
        pr.add_prefix_space = get_bool(j, "add_prefix_space", 0);
        if (get_bool(j, "use_regex", 1) &&
            regex_compile(h->path, field, GPT2_PATTERN, strlen(GPT2_PATTERN), &pr.re) != CT_OK)
            return CT_ERR;
        h->byte_level = 1;
    } else if (!strcmp(type, "Split")) {
        pr.kind = PRE_SPLIT;
        snprintf(sub, sizeof sub, "%s.pattern", field);
        if (parse_pattern(h, json_object_get(j, "pattern"), sub, &pr.re, &pr.lit, &pr.lit_len) != CT_OK)
            return CT_ERR;
        const char *b = json_string_value(json_object_get(j, "behavior"));
        if (!b || !strcmp(b, "Isolated")) pr.behavior = SPLIT_ISOLATED;
        else if (!strcmp(b, "Removed")) pr.behavior = SPLIT_REMOVED;
        else if (!strcmp(b, "MergedWithPrevious")) pr.behavior = SPLIT_MERGED_PREV;
        else if (!strcmp(b, "MergedWithNext")) pr.behavior = SPLIT_MERGED_NEXT;
        else if (!strcmp(b, "Contiguous")) pr.behavior = SPLIT_CONTIGUOUS;
        else {
            pcre2_code_free(pr.re);
            free(pr.lit);
            return field_err(h->path, field, "behavior: expected Isolated, Removed, "
                             "MergedWithPrevious, MergedWithNext or Contiguous, got \"%s\"", b);
        }
        pr.invert = get_bool(j, "invert", 0);
    } else if (!strcmp(type, "Digits")) {
        pr.kind = PRE_SPLIT;
        const char *p = get_bool(j, "individual_digits", 0) ? "\\p{N}" : "\\p{N}+";
        if (regex_compile(h->path, field, p, strlen(p), &pr.re) != CT_OK) return CT_ERR;
    } else if (!strcmp(type, "Metaspace")) {
        pr.kind = PRE_METASPACE;
        const json_t *r = json_object_get(j, "replacement");
        const char *rs = json_is_string(r) ? json_string_value(r) : METASPACE;
        if (strlen(rs) == 0 || strlen(rs) > 4 ||
            utf8_len((const unsigned char *)rs, strlen(rs)) != (int)strlen(rs))
            return field_err(h->path, field, "replacement: expected one character, got \"%s\"", rs);
        pr.rep_len = (int)strlen(rs);
        memcpy(pr.rep, rs, (size_t)pr.rep_len);
        pr.prepend = parse_prepend_scheme(h, j, field);
        if (pr.prepend < 0) return CT_ERR;
        pr.split = get_bool(j, "split", 1);
    } else {
        return field_err(h->path, field, "type: got \"%s\", which is not supported (%s)", type,
                         HF_SUPPORTED);
    }
    if (add_pre(h, &pr) != CT_OK) {
        pcre2_code_free(pr.re);
        free(pr.lit);
        return CT_ERR;
    }
    return CT_OK;
}

// The id of special token name in a TemplateProcessing "special_tokens" map.
static int template_ids(HfTok *h, const json_t *specials, const char *name, const char *field,
                        IVec *out) {
    const json_t *st = json_object_get(specials, name);
    const json_t *ids = json_object_get(st, "ids");
    if (!json_is_array(ids) || json_array_size(ids) == 0)
        return field_err(h->path, field, "special token \"%s\": expected an entry with \"ids\" in "
                         "special_tokens, got %s", name, jtype(ids));
    for (size_t i = 0; i < json_array_size(ids); i++) {
        const json_t *v = json_array_get(ids, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= h->n_ids)
            return field_err(h->path, field, "special token \"%s\": expected ids in [0, %d), got "
                             "%s", name, h->n_ids, jtype(v));
        if (ivec_push(out, (int)json_integer_value(v)) != CT_OK) return CT_ERR;
    }
    return CT_OK;
}

// A ["<s>", 1] pair of RobertaProcessing / BertProcessing.
static int pair_id(HfTok *h, const json_t *p, const char *field, IVec *out) {
    const json_t *v = json_array_get(p, 1);
    if (!json_is_array(p) || !json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) >= h->n_ids)
        return field_err(h->path, field, "expected [\"token\", id] with id in [0, %d), got %s",
                         h->n_ids, jtype(p));
    return ivec_push(out, (int)json_integer_value(v));
}

static int parse_postprocessor(HfTok *h, const json_t *j, const char *field) {
    if (!j || json_is_null(j)) return CT_OK;
    const char *type = json_string_value(json_object_get(j, "type"));
    char sub[160];
    if (!type) return field_err(h->path, field, "expected an object with a \"type\", got %s", jtype(j));
    if (!strcmp(type, "Sequence")) {
        const json_t *arr = json_object_get(j, "processors");
        if (!json_is_array(arr))
            return field_err(h->path, field, "Sequence: expected a \"processors\" array, got %s",
                             jtype(arr));
        for (size_t i = 0; i < json_array_size(arr); i++) {
            snprintf(sub, sizeof sub, "%s.processors[%zu]", field, i);
            if (parse_postprocessor(h, json_array_get(arr, i), sub) != CT_OK) return CT_ERR;
        }
        return CT_OK;
    }
    if (!strcmp(type, "ByteLevel")) return CT_OK;   // only fixes offsets
    if (!strcmp(type, "TemplateProcessing")) {
        const json_t *single = json_object_get(j, "single"), *sp = json_object_get(j, "special_tokens");
        snprintf(sub, sizeof sub, "%s.single", field);
        if (!json_is_array(single))
            return field_err(h->path, sub, "expected an array, got %s", jtype(single));
        int seen_seq = 0;
        h->prefix.n = h->suffix.n = 0;
        for (size_t i = 0; i < json_array_size(single); i++) {
            const json_t *it = json_array_get(single, i);
            const json_t *spt = json_object_get(it, "SpecialToken");
            snprintf(sub, sizeof sub, "%s.single[%zu]", field, i);
            if (json_object_get(it, "Sequence")) {
                seen_seq = 1;
            } else if (json_is_string(json_object_get(spt, "id"))) {
                if (template_ids(h, sp, json_string_value(json_object_get(spt, "id")), sub,
                                 seen_seq ? &h->suffix : &h->prefix) != CT_OK)
                    return CT_ERR;
            } else {
                return field_err(h->path, sub, "expected {\"Sequence\": ...} or {\"SpecialToken\": "
                                 "{\"id\": ...}}, got %s", jtype(it));
            }
        }
        return CT_OK;
    }
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        h->prefix.n = h->suffix.n = 0;
        snprintf(sub, sizeof sub, "%s.cls", field);
        if (pair_id(h, json_object_get(j, "cls"), sub, &h->prefix) != CT_OK) return CT_ERR;
        snprintf(sub, sizeof sub, "%s.sep", field);
        return pair_id(h, json_object_get(j, "sep"), sub, &h->suffix);
    }
    return field_err(h->path, field, "type: got \"%s\", which is not supported (%s)", type,
                     HF_SUPPORTED);
}

static int parse_decoder(HfTok *h, const json_t *j, const char *field) {
    if (!j || json_is_null(j)) return CT_OK;
    const char *type = json_string_value(json_object_get(j, "type"));
    char sub[160];
    if (!type) return field_err(h->path, field, "expected an object with a \"type\", got %s", jtype(j));
    if (!strcmp(type, "Sequence")) {
        const json_t *arr = json_object_get(j, "decoders");
        if (!json_is_array(arr))
            return field_err(h->path, field, "Sequence: expected a \"decoders\" array, got %s", jtype(arr));
        for (size_t i = 0; i < json_array_size(arr); i++) {
            snprintf(sub, sizeof sub, "%s.decoders[%zu]", field, i);
            if (parse_decoder(h, json_array_get(arr, i), sub) != CT_OK) return CT_ERR;
        }
        return CT_OK;
    }
    HfDec d = {0};
    if (!strcmp(type, "ByteLevel")) {
        d.kind = DEC_BYTELEVEL;
    } else if (!strcmp(type, "ByteFallback")) {
        d.kind = DEC_BYTEFALLBACK;
    } else if (!strcmp(type, "Fuse")) {
        d.kind = DEC_FUSE;
    } else if (!strcmp(type, "Replace")) {
        d.kind = DEC_REPLACE;
        const json_t *pat = json_object_get(json_object_get(j, "pattern"), "String");
        const json_t *c = json_object_get(j, "content");
        if (!json_is_string(pat) || !json_is_string(c))
            return field_err(h->path, field, "Replace: expected pattern {\"String\": ...} and a "
                             "string content, got pattern %s and content %s",
                             jtype(json_object_get(j, "pattern")), jtype(c));
        d.pat = dup_str(pat, &d.pat_len);
        d.content = dup_str(c, &d.content_len);
    } else if (!strcmp(type, "Strip")) {
        d.kind = DEC_STRIP;
        const json_t *c = json_object_get(j, "content");
        if (!json_is_string(c) || json_string_length(c) != 1)
            return field_err(h->path, field, "Strip: expected a one-byte content, got %s", jtype(c));
        d.content = dup_str(c, &d.content_len);
        d.start = (int)json_integer_value(json_object_get(j, "start"));
        d.stop = (int)json_integer_value(json_object_get(j, "stop"));
    } else if (!strcmp(type, "Metaspace")) {
        d.kind = DEC_METASPACE;
        const json_t *r = json_object_get(j, "replacement");
        const char *rs = json_is_string(r) ? json_string_value(r) : METASPACE;
        d.pat_len = strlen(rs);
        d.pat = strdup(rs);
        d.start = parse_prepend_scheme(h, j, field);
        if (d.start < 0) {
            free(d.pat);
            return CT_ERR;
        }
    } else {
        return field_err(h->path, field, "type: got \"%s\", which is not supported (%s)", type,
                         HF_SUPPORTED);
    }
    HfDec *p = realloc(h->dec, (size_t)(h->n_dec + 1) * sizeof *p);
    if (!p) return ct_error("tokenizer %s: out of memory", h->path);
    h->dec = p;
    h->dec[h->n_dec++] = d;
    return CT_OK;
}

// ----------------------------------------------------------------------------------------
// added tokens: parsing and literal matching

static int parse_added(HfTok *h, const json_t *arr) {
    if (!arr || json_is_null(arr)) return CT_OK;
    if (!json_is_array(arr))
        return field_err(h->path, "added_tokens", "expected an array, got %s", jtype(arr));
    size_t n = json_array_size(arr);
    h->added = calloc(n ? n : 1, sizeof *h->added);
    if (!h->added) return ct_error("tokenizer %s: out of memory", h->path);
    for (size_t i = 0; i < n; i++) {
        const json_t *a = json_array_get(arr, i), *c = json_object_get(a, "content"),
                     *id = json_object_get(a, "id");
        char field[64];
        snprintf(field, sizeof field, "added_tokens[%zu]", i);
        if (!json_is_string(c) || json_string_length(c) == 0)
            return field_err(h->path, field, "content: expected a non-empty string, got %s", jtype(c));
        // ids were range-checked when n_ids was computed
        HfAdded *t = &h->added[h->n_added++];
        t->content = dup_str(c, &t->match_len);
        t->id = (int)json_integer_value(id);
        t->special = get_bool(a, "special", 0);
        t->normalized = get_bool(a, "normalized", !t->special);
        t->lstrip = get_bool(a, "lstrip", 0);
        t->rstrip = get_bool(a, "rstrip", 0);
        t->single_word = get_bool(a, "single_word", 0);
        if (!t->content) return ct_error("tokenizer %s: out of memory", h->path);
        int have = h->tok_len[t->id];
        if (have >= 0 && ((size_t)have != t->match_len || memcmp(tok_str(h, t->id), t->content, t->match_len)))
            return field_err(h->path, field, "id %d: expected a free id or the same token in "
                             "model.vocab, got \"%s\" there and \"%s\" here", t->id,
                             tok_str(h, t->id), t->content);
        if (have < 0) {
            h->tok_off[t->id] = h->blob.n;
            if (buf_put(&h->blob, t->content, t->match_len) != CT_OK || buf_put(&h->blob, "", 1) != CT_OK)
                return CT_ERR;
            h->tok_len[t->id] = (int)t->match_len;
        }
    }
    return CT_OK;
}

// Sort key of an added token: first byte, then longest first (so the first hit at a position
// is the longest), then id.
typedef struct AddedKey {
    int first, neg_len, id, idx;
} AddedKey;
static int cmp_added_key(const void *x, const void *y) {
    const AddedKey *a = x, *b = y;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->neg_len != b->neg_len) return a->neg_len < b->neg_len ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

// Run the normalizers over s[0, n) into o (used for added-token contents and for text).
static int normalize(const HfTok *h, const char *s, size_t n, Buf *o, int check_nfc);

static int build_added_index(HfTok *h) {
    for (int i = 0; i < h->n_added; i++) {
        HfAdded *a = &h->added[i];
        // normalized tokens are searched for in normalized text, so normalize them too
        if (a->normalized && h->n_norm > 0) {
            Buf o = {0};
            if (normalize(h, a->content, a->match_len, &o, 0) != CT_OK) return CT_ERR;
            if (o.n == 0) {
                free(o.p);
                if (buf_put(&o, a->content, a->match_len) != CT_OK) return CT_ERR;
            }
            a->match = o.p;
            a->match_len = o.n;
        } else {
            a->match = strdup(a->content);
            if (!a->match) return ct_error("tokenizer %s: out of memory", h->path);
        }
    }
    for (int set = 0; set < 2; set++) {
        AddedIndex *ix = &h->ai[set];
        size_t cap = (size_t)(h->n_added ? h->n_added : 1);
        ix->idx = malloc(cap * sizeof *ix->idx);
        AddedKey *keys = malloc(cap * sizeof *keys);
        if (!ix->idx || !keys) {
            free(keys);
            return ct_error("tokenizer %s: out of memory", h->path);
        }
        int m = 0;
        for (int i = 0; i < h->n_added; i++) {
            const HfAdded *a = &h->added[i];
            if ((a->normalized && h->n_norm > 0) == set)
                keys[m++] = (AddedKey){(unsigned char)a->match[0], -(int)a->match_len, a->id, i};
        }
        qsort(keys, (size_t)m, sizeof *keys, cmp_added_key);
        for (int i = 0; i < m; i++) ix->idx[i] = keys[i].idx;
        free(keys);
        int k = 0;
        for (int c = 0; c <= 256; c++) {
            while (k < m && (unsigned char)h->added[ix->idx[k]].match[0] < c) k++;
            ix->start[c] = k;
        }
        ix->start[256] = m;
    }
    return CT_OK;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
// HF's single_word boundary: a letter, digit or '_' (any non-ASCII byte counts as a letter).
static int is_word_byte(unsigned char c) {
    return c >= 0x80 || c == '_' || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

// A piece of the text: an added token (id >= 0) or text s[off, off+len) (id -1).
typedef struct Part {
    size_t off, len;
    int id;
} Part;
typedef struct Parts {
    Part *p;
    size_t n, cap;
} Parts;

static int parts_push(Parts *v, size_t off, size_t len, int id) {
    if (id < 0 && len == 0) return CT_OK;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        Part *p = realloc(v->p, cap * sizeof *p);
        if (!p) return ct_error("hf tokenizer: out of memory");
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = (Part){off, len, id};
    return CT_OK;
}

// Split s[0, n) at the added tokens of one set: leftmost match, longest at that position.
static int split_added(const HfTok *h, const AddedIndex *ix, const char *s, size_t n, Parts *out) {
    out->n = 0;
    size_t cur = 0;   // start of the pending text
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        int found = -1;
        for (int k = ix->start[c]; k < ix->start[c + 1]; k++) {
            const HfAdded *a = &h->added[ix->idx[k]];
            if (a->match_len <= n - i && memcmp(s + i, a->match, a->match_len) == 0) {
                found = ix->idx[k];
                break;   // sorted longest first
            }
        }
        if (found < 0) {
            i++;
            continue;
        }
        const HfAdded *a = &h->added[found];
        size_t ms = i, me = i + a->match_len;
        if (a->single_word && ((ms > 0 && is_word_byte((unsigned char)s[ms - 1])) ||
                               (me < n && is_word_byte((unsigned char)s[me])))) {
            i++;
            continue;
        }
        if (a->lstrip) while (ms > cur && is_ws(s[ms - 1])) ms--;
        if (a->rstrip) while (me < n && is_ws(s[me])) me++;
        if (parts_push(out, cur, ms - cur, -1) != CT_OK || parts_push(out, ms, me - ms, a->id) != CT_OK)
            return CT_ERR;
        cur = i = me;
    }
    return parts_push(out, cur, n - cur, -1);
}

// ----------------------------------------------------------------------------------------
// normalizers

static int replace_all(const HfNorm *nm, const char *s, size_t n, Buf *o, pcre2_match_data *md) {
    size_t pos = 0, ms, me;
    for (;;) {
        int r = nm->re ? re_find(nm->re, md, s, n, pos, &ms, &me)
                       : lit_find(nm->pat, nm->pat_len, s, n, pos, &ms, &me);
        if (r < 0) return CT_ERR;
        if (r == 0) break;
        if (buf_put(o, s + pos, ms - pos) != CT_OK || buf_put(o, nm->content, nm->content_len) != CT_OK)
            return CT_ERR;
        pos = me;
    }
    return buf_put(o, s + pos, n - pos);
}

static int normalize(const HfTok *h, const char *s, size_t n, Buf *o, int check_nfc) {
    o->n = 0;
    if (buf_put(o, s, n) != CT_OK) return CT_ERR;
    pcre2_match_data *md = NULL;
    int rc = CT_OK;
    for (int k = 0; k < h->n_norm && rc == CT_OK; k++) {
        const HfNorm *nm = &h->norm[k];
        if (nm->kind == NORM_NFC) {
            if (!check_nfc) continue;
            for (size_t i = 0; i < o->n;) {
                int l = utf8_len((const unsigned char *)o->p + i, o->n - i);
                uint32_t cp = l ? utf8_cp((const unsigned char *)o->p + i, l) : 0;
                if (l && !nfc_stable(cp)) {
                    rc = ct_error("tokenizer %s: normalizer NFC: text has U+%04X at byte %zu, which "
                                  "NFC may change, and this build has no Unicode normalization "
                                  "tables; pass NFC-normalized text with only Latin, Greek, "
                                  "Cyrillic, CJK, kana, Hangul, emoji or common symbols",
                                  h->path, cp, i);
                    break;
                }
                i += l ? (size_t)l : 1;
            }
        } else if (nm->kind == NORM_PREPEND) {
            if (o->n == 0) continue;   // HF prepends only to non-empty text
            Buf t = {0};
            rc = buf_put(&t, nm->content, nm->content_len);
            if (rc == CT_OK) rc = buf_put(&t, o->p, o->n);
            free(o->p);
            *o = t;
        } else {
            if (nm->re && !md && !(md = pcre2_match_data_create(1, NULL)))
                rc = ct_error("hf tokenizer: out of memory for regex match data");
            Buf t = {0};
            if (rc == CT_OK) rc = replace_all(nm, o->p, o->n, &t, md);
            free(o->p);
            *o = t;
            if (!o->p && rc == CT_OK) rc = buf_put(o, "", 0);
        }
    }
    pcre2_match_data_free(md);
    return rc;
}

// ----------------------------------------------------------------------------------------
// pre-tokenizers: a list of pieces, each step turning it into a new list

typedef struct Span {
    size_t off, len;
} Span;
typedef struct PList {
    Buf b;        // the pieces' bytes, back to back
    Span *s;
    size_t n, cap;
} PList;

static int plist_add(PList *pl, const char *p, size_t n) {
    if (n == 0) return CT_OK;   // HF drops empty pieces
    if (pl->n == pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 64;
        Span *q = realloc(pl->s, cap * sizeof *q);
        if (!q) return ct_error("hf tokenizer: out of memory for %zu pieces", cap);
        pl->s = q;
        pl->cap = cap;
    }
    pl->s[pl->n++] = (Span){pl->b.n, n};
    return buf_put(&pl->b, p, n);
}

// Split one piece at the matches of re / lit, keeping what `behavior` keeps (HF's
// NormalizedString::split). Segments alternate between text and matches (is_match).
static int split_piece(const HfPre *pr, pcre2_match_data *md, const char *s, size_t n, PList *out) {
    Span seg[2];
    size_t ps = 0, pe = 0;   // the pending output piece, which MergedWith* / Contiguous extend
    int have = 0, prev_match = 0;
    size_t pos = 0;
    // All segments first (MergedWithNext walks them right to left), then the pieces.
    Span *all = NULL;
    uint8_t *ism = NULL;
    size_t na = 0, cap = 0;
    for (;;) {
        size_t ms = n, me = n;
        int r = pr->re ? re_find(pr->re, md, s, n, pos, &ms, &me) : lit_find(pr->lit, pr->lit_len, s, n, pos, &ms, &me);
        if (r < 0) goto fail;
        if (r == 0) ms = me = n;
        seg[0] = (Span){pos, ms - pos};
        seg[1] = (Span){ms, me - ms};
        for (int k = 0; k < 2; k++) {
            if (seg[k].len == 0) continue;
            if (na == cap) {
                cap = cap ? cap * 2 : 16;
                Span *a2 = realloc(all, cap * sizeof *a2);
                uint8_t *m2 = realloc(ism, cap);
                if (a2) all = a2;
                if (m2) ism = m2;
                if (!a2 || !m2) { ct_error("hf tokenizer: out of memory"); goto fail; }
            }
            all[na] = seg[k];
            ism[na++] = (uint8_t)(k == 1) ^ (uint8_t)(pr->invert != 0);
        }
        if (r == 0) break;
        pos = me;
    }
    if (pr->behavior == SPLIT_MERGED_NEXT) {
        // Walk right to left: a match joins the piece to its right unless that was a match.
        size_t *st = malloc((na ? na : 1) * sizeof *st), *en = malloc((na ? na : 1) * sizeof *en);
        size_t m = 0;
        if (!st || !en) { free(st); free(en); ct_error("hf tokenizer: out of memory"); goto fail; }
        prev_match = 0;
        for (size_t i = na; i-- > 0;) {
            if (ism[i] && !prev_match && m > 0) st[m - 1] = all[i].off;
            else { st[m] = all[i].off; en[m] = all[i].off + all[i].len; m++; }
            prev_match = ism[i];
        }
        int rc = CT_OK;
        for (size_t i = m; i-- > 0 && rc == CT_OK;) rc = plist_add(out, s + st[i], en[i] - st[i]);
        free(st);
        free(en);
        if (rc != CT_OK) goto fail;
    } else {
        prev_match = 0;
        for (size_t i = 0; i < na; i++) {
            size_t a = all[i].off, e = all[i].off + all[i].len;
            int m = ism[i];
            if (pr->behavior == SPLIT_REMOVED && m) {
                prev_match = m;
                continue;
            }
            int extend = (pr->behavior == SPLIT_MERGED_PREV && m && !prev_match && have) ||
                         (pr->behavior == SPLIT_CONTIGUOUS && m && prev_match && have);
            if (extend) {
                pe = e;
            } else {
                if (have && plist_add(out, s + ps, pe - ps) != CT_OK) goto fail;
                ps = a;
                pe = e;
                have = 1;
            }
            prev_match = m;
        }
        if (have && plist_add(out, s + ps, pe - ps) != CT_OK) goto fail;
    }
    free(all);
    free(ism);
    return CT_OK;
fail:
    free(all);
    free(ism);
    return CT_ERR;
}

static int starts_with(const char *s, size_t n, const char *p, size_t pn) {
    return n >= pn && memcmp(s, p, pn) == 0;
}

// One pre-tokenizer step over every piece of in -> out. at_start: in's first piece begins
// the whole input (Metaspace prepend_scheme "first").
static int pre_step(const HfPre *pr, pcre2_match_data *md, const PList *in, PList *out, int at_start,
                    Buf *tmp) {
    out->n = out->b.n = 0;
    for (size_t i = 0; i < in->n; i++) {
        const char *s = in->b.p + in->s[i].off;
        size_t n = in->s[i].len;
        if (pr->kind == PRE_SPLIT) {
            if (split_piece(pr, md, s, n, out) != CT_OK) return CT_ERR;
            continue;
        }
        tmp->n = 0;
        if (pr->kind == PRE_BYTELEVEL) {
            if (pr->add_prefix_space && s[0] != ' ' && buf_put(tmp, " ", 1) != CT_OK) return CT_ERR;
            if (buf_put(tmp, s, n) != CT_OK) return CT_ERR;
            if (!pr->re) {
                if (plist_add(out, tmp->p, tmp->n) != CT_OK) return CT_ERR;
                continue;
            }
            HfPre iso = *pr;
            iso.behavior = SPLIT_ISOLATED;
            iso.invert = 0;
            if (split_piece(&iso, md, tmp->p, tmp->n, out) != CT_OK) return CT_ERR;
            continue;
        }
        // Metaspace: spaces become the replacement, maybe prepend it, maybe split before it.
        int first = at_start && i == 0 && in->s[i].off == 0;
        if ((pr->prepend == PREPEND_ALWAYS || (pr->prepend == PREPEND_FIRST && first)) &&
            !starts_with(s, n, pr->rep, (size_t)pr->rep_len) && !(n > 0 && s[0] == ' ') &&
            buf_put(tmp, pr->rep, (size_t)pr->rep_len) != CT_OK)
            return CT_ERR;
        for (size_t k = 0; k < n; k++)
            if (s[k] == ' ' ? buf_put(tmp, pr->rep, (size_t)pr->rep_len) : buf_put(tmp, s + k, 1))
                return CT_ERR;
        if (!pr->split) {
            if (plist_add(out, tmp->p, tmp->n) != CT_OK) return CT_ERR;
            continue;
        }
        HfPre sp = {0};
        sp.kind = PRE_SPLIT;
        sp.lit = (char *)pr->rep;
        sp.lit_len = (size_t)pr->rep_len;
        sp.behavior = SPLIT_MERGED_NEXT;
        if (split_piece(&sp, md, tmp->p, tmp->n, out) != CT_OK) return CT_ERR;
    }
    return CT_OK;
}

// ----------------------------------------------------------------------------------------
// BPE over one word

typedef struct Sym {
    int id, prev, next;
    int alive;
} Sym;
typedef struct Cand {
    int rank, left, right, lid, rid, id;
} Cand;

typedef struct Enc {
    IVec ids;
    Sym *sym;
    int nsym, capsym;
    Cand *heap;
    int nheap, capheap;
    Buf word;            // byte-level word as unicode characters (ignore_merges lookups)
} Enc;

static int sym_push(Enc *e, int id) {
    if (e->nsym == e->capsym) {
        int cap = e->capsym ? e->capsym * 2 : 64;
        Sym *p = realloc(e->sym, (size_t)cap * sizeof *p);
        if (!p) return ct_error("hf tokenizer: out of memory for %d symbols", cap);
        e->sym = p;
        e->capsym = cap;
    }
    int i = e->nsym++;
    e->sym[i] = (Sym){id, i - 1, -1, 1};
    if (i > 0) e->sym[i - 1].next = i;
    return CT_OK;
}

static int cand_before(const Cand *a, const Cand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int heap_push(Enc *e, Cand c) {
    if (e->nheap == e->capheap) {
        int cap = e->capheap ? e->capheap * 2 : 64;
        Cand *p = realloc(e->heap, (size_t)cap * sizeof *p);
        if (!p) return ct_error("hf tokenizer: out of memory for %d merge candidates", cap);
        e->heap = p;
        e->capheap = cap;
    }
    int i = e->nheap++;
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (!cand_before(&c, &e->heap[parent])) break;
        e->heap[i] = e->heap[parent];
        i = parent;
    }
    e->heap[i] = c;
    return CT_OK;
}

static Cand heap_pop(Enc *e) {
    Cand top = e->heap[0], last = e->heap[--e->nheap];
    int i = 0, n = e->nheap;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cand_before(&e->heap[c + 1], &e->heap[c])) c++;
        if (!cand_before(&e->heap[c], &last)) break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n > 0) e->heap[i] = last;
    return top;
}

static int try_pair(const HfTok *h, Enc *e, int l, int r) {
    if (l < 0 || r < 0) return CT_OK;
    int a = e->sym[l].id, b = e->sym[r].id, rank = 0;
    if (a < 0 || b < 0) return CT_OK;
    int id = merge_find(h, a, b, &rank);
    if (id < 0) return CT_OK;
    return heap_push(e, (Cand){rank, l, r, a, b, id});
}

// A character that is not in the vocabulary (HF BPE::merge_word): its UTF-8 bytes as
// <0xHH> pieces when byte_fallback has them all, else unk (fused with a preceding unk when
// fuse_unk), else nothing.
static int unknown_char(const HfTok *h, Enc *e, const unsigned char *c, int len) {
    if (h->byte_fallback) {
        int ok = 1;
        for (int k = 0; k < len; k++) ok &= h->byte_fb_id[c[k]] >= 0;
        if (ok) {
            for (int k = 0; k < len; k++)
                if (sym_push(e, h->byte_fb_id[c[k]]) != CT_OK) return CT_ERR;
            return CT_OK;
        }
    }
    if (h->unk_id < 0) return CT_OK;
    if (h->fuse_unk && e->nsym > 0 && e->sym[e->nsym - 1].id == h->unk_id) return CT_OK;
    return sym_push(e, h->unk_id);
}

// BPE of s[0, n) from its characters, ids appended to e->ids.
static int bpe_run(const HfTok *h, Enc *e, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    e->nsym = e->nheap = 0;
    if (h->byte_level) {
        for (size_t i = 0; i < n; i++) {
            int id = h->byte_char_id[u[i]];
            if (id >= 0) {
                if (sym_push(e, id) != CT_OK) return CT_ERR;
            } else {
                char c[4];
                int l = utf8_put(c, byte_to_unicode(u[i]));
                if (unknown_char(h, e, (const unsigned char *)c, l) != CT_OK) return CT_ERR;
            }
        }
    } else {
        for (size_t i = 0; i < n;) {
            int l = utf8_len(u + i, n - i);
            if (l == 0) l = 1;   // a malformed byte is a character of its own (byte fallback)
            int id = vocab_lookup(h, s + i, (size_t)l);
            if (id >= 0 ? sym_push(e, id) : unknown_char(h, e, u + i, l)) return CT_ERR;
            i += (size_t)l;
        }
    }
    for (int i = 0; i + 1 < e->nsym; i++)
        if (try_pair(h, e, i, i + 1) != CT_OK) return CT_ERR;
    while (e->nheap > 0) {
        Cand c = heap_pop(e);
        Sym *a = &e->sym[c.left], *b = &e->sym[c.right];
        // stale: the left symbol was absorbed, or either side has merged since
        if (!a->alive || a->next != c.right || a->id != c.lid || b->id != c.rid) continue;
        a->id = c.id;
        a->next = b->next;
        if (b->next >= 0) e->sym[b->next].prev = c.left;
        b->alive = 0;
        if (try_pair(h, e, a->prev, c.left) != CT_OK) return CT_ERR;
        if (try_pair(h, e, c.left, a->next) != CT_OK) return CT_ERR;
    }
    for (int i = e->nsym ? 0 : -1; i >= 0; i = e->sym[i].next)
        if (ivec_push(&e->ids, e->sym[i].id) != CT_OK) return CT_ERR;
    return CT_OK;
}

static int is_meta(const char *s, size_t n, size_t i) {
    return i + 3 <= n && memcmp(s + i, METASPACE, 3) == 0;
}

// The character that ends right before s[i] (up to 4 bytes, a malformed byte alone), packed.
static uint32_t char_before(const char *s, size_t i) {
    size_t a = i - 1;
    while (a > 0 && i - a < 4 && ((unsigned char)s[a] & 0xC0) == 0x80) a--;
    if (utf8_len((const unsigned char *)s + a, i - a) != (int)(i - a)) a = i - 1;
    uint32_t c = 0;
    for (size_t k = a; k < i; k++) c = (c << 8) | (unsigned char)s[k];
    return c;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

// May BPE treat the text before and after position i (a "▁") as separate words? Yes when
// no token holds the preceding character followed by "▁": then no merge can join them.
static int meta_cut(const HfTok *h, const char *s, size_t i) {
    uint32_t c = char_before(s, i);
    return !bsearch(&c, h->meta_prev, (size_t)h->n_meta_prev, sizeof c, cmp_u32);
}

static int bpe_word(const HfTok *h, Enc *e, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    if (h->ignore_merges) {   // Llama 3: a word that is itself a token is not merged
        int id;
        if (h->byte_level) {
            e->word.n = 0;
            for (size_t i = 0; i < n; i++) {
                char c[4];
                if (buf_put(&e->word, c, (size_t)utf8_put(c, byte_to_unicode(u[i]))) != CT_OK) return CT_ERR;
            }
            id = vocab_lookup(h, e->word.p, e->word.n);
        } else {
            id = vocab_lookup(h, s, n);
        }
        if (id >= 0) return ivec_push(&e->ids, id);
    }
    if (!h->meta_split) return bpe_run(h, e, s, n);
    // SentencePiece style without a pre-tokenizer: the whole text is one word. Cut it
    // before each "▁" that no token joins to the character before it (no merge can span
    // such a cut), so every heap stays small; the merges inside each part are the same as
    // in the whole.
    size_t a = 0;
    for (size_t i = 1; i < n; i++) {
        if (is_meta(s, n, i) && meta_cut(h, s, i)) {
            if (bpe_run(h, e, s + a, i - a) != CT_OK) return CT_ERR;
            a = i;
        }
    }
    return bpe_run(h, e, s + a, n - a);
}

// ----------------------------------------------------------------------------------------
// encode

static void enc_free(Enc *e) {
    free(e->ids.p);
    free(e->sym);
    free(e->heap);
    free(e->word.p);
}

// Normalized text s[0, n) with no added tokens in it: pre-tokenize and BPE every word.
static int encode_text(const HfTok *h, Enc *e, const char *s, size_t n, int at_start,
                       PList *pa, PList *pb, Buf *tmp, pcre2_match_data *md) {
    pa->n = pa->b.n = 0;
    if (plist_add(pa, s, n) != CT_OK) return CT_ERR;
    for (int k = 0; k < h->n_pre; k++) {
        if (pre_step(&h->pre[k], md, pa, pb, at_start, tmp) != CT_OK) return CT_ERR;
        PList t = *pa;
        *pa = *pb;
        *pb = t;
    }
    for (size_t i = 0; i < pa->n; i++)
        if (bpe_word(h, e, pa->b.p + pa->s[i].off, pa->s[i].len) != CT_OK) return CT_ERR;
    return CT_OK;
}

int hf_tokenizer_encode(const Tokenizer *t, const char *text, int bos, int eos, int *out,
                        int max_tokens, int *n_out) {
    if (n_out) *n_out = 0;
    if (!t || !t->hf) return ct_error("hf_tokenizer_encode: tokenizer: expected a loaded one, got none");
    if (!text) return ct_error("tokenizer_encode: text: expected a string, got NULL");
    if (!n_out || max_tokens < 0 || (max_tokens > 0 && !out))
        return ct_error("tokenizer_encode: output: expected n_out and an out array of "
                        "max_tokens >= 0 ids, got n_out=%p out=%p max_tokens=%d", (void *)n_out,
                        (void *)out, max_tokens);
    const HfTok *h = t->hf;
    size_t n = strlen(text);
    if (n > (size_t)(INT_MAX / 8))
        return ct_error("tokenizer_encode: text length: expected at most %d bytes per call, got "
                        "%zu (split the text)", INT_MAX / 8, n);
    Enc e = {0};
    Parts p1 = {0}, p2 = {0};
    PList pa = {0}, pb = {0};
    Buf norm = {0}, tmp = {0};
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    int rc = md ? CT_OK : ct_error("hf tokenizer: out of memory for regex match data");
    if (rc == CT_OK && bos)
        for (size_t i = 0; i < h->prefix.n && rc == CT_OK; i++) rc = ivec_push(&e.ids, h->prefix.p[i]);
    if (rc == CT_OK) rc = split_added(h, &h->ai[0], text, n, &p1);
    for (size_t i = 0; i < p1.n && rc == CT_OK; i++) {
        const Part *a = &p1.p[i];
        if (a->id >= 0) {
            rc = ivec_push(&e.ids, a->id);
            continue;
        }
        rc = normalize(h, text + a->off, a->len, &norm, 1);
        if (rc == CT_OK) rc = split_added(h, &h->ai[1], norm.p, norm.n, &p2);
        for (size_t j = 0; j < p2.n && rc == CT_OK; j++) {
            const Part *b = &p2.p[j];
            rc = b->id >= 0 ? ivec_push(&e.ids, b->id)
                            : encode_text(h, &e, norm.p + b->off, b->len, a->off == 0 && b->off == 0,
                                          &pa, &pb, &tmp, md);
        }
    }
    if (rc == CT_OK && eos)
        for (size_t i = 0; i < h->suffix.n && rc == CT_OK; i++) rc = ivec_push(&e.ids, h->suffix.p[i]);
    if (rc == CT_OK && e.ids.n > (size_t)max_tokens) {
        *n_out = e.ids.n > INT_MAX ? INT_MAX : (int)e.ids.n;
        rc = ct_error("tokenizer_encode: text needs %zu tokens%s but at most %d fit (max_tokens, "
                      "e.g. the context length); shorten the text", e.ids.n,
                      bos || eos ? " including BOS/EOS" : "", max_tokens);
    } else if (rc == CT_OK) {
        if (e.ids.n) memcpy(out, e.ids.p, e.ids.n * sizeof *out);
        *n_out = (int)e.ids.n;
    }
    pcre2_match_data_free(md);
    enc_free(&e);
    free(p1.p);
    free(p2.p);
    free(pa.b.p);
    free(pa.s);
    free(pb.b.p);
    free(pb.s);
    free(norm.p);
    free(tmp.p);
    return rc;
}

// ----------------------------------------------------------------------------------------
// decode

static int hf_range_ok(const Tokenizer *t, int id) {
    if (t && t->hf && id >= 0 && id < t->vocab_size) return 1;
    ct_error("tokenizer %s: token id: expected 0..%d, got %d", t && t->path ? t->path : "?",
             t ? t->vocab_size - 1 : -1, id);
    return 0;
}

const char *hf_tokenizer_piece(const Tokenizer *t, int id) {
    if (!hf_range_ok(t, id)) return NULL;
    const HfTok *h = t->hf;
    return id < h->n_ids ? h->dblob.p + h->dec_off[id] : "";
}

const char *hf_tokenizer_decode(const Tokenizer *t, int prev_token, int token) {
    const char *p = hf_tokenizer_piece(t, token);
    if (p && t->hf->strip_after_bos && p[0] == ' ' && prev_token >= 0 &&
        t->hf->prefix.n > 0 && prev_token == t->hf->prefix.p[t->hf->prefix.n - 1])
        p++;
    return p;
}

const char *hf_tokenizer_raw_piece(const Tokenizer *t, int id) {
    if (!hf_range_ok(t, id)) return NULL;
    const HfTok *h = t->hf;
    return id < h->n_ids && h->tok_len[id] >= 0 ? tok_str(h, id) : "";
}

int hf_tokenizer_token_id(const Tokenizer *t, const char *raw) {
    if (!t || !t->hf || !raw) return -1;
    const HfTok *h = t->hf;
    int id = vocab_lookup(h, raw, strlen(raw));
    if (id >= 0) return id;
    for (int i = 0; i < h->n_added; i++)
        if (!strcmp(h->added[i].content, raw)) return h->added[i].id;
    return -1;
}

int hf_tokenizer_bos_id(const Tokenizer *t) {
    return t && t->hf && t->hf->prefix.n ? t->hf->prefix.p[0] : -1;
}
int hf_tokenizer_eos_id(const Tokenizer *t) {
    return t && t->hf && t->hf->suffix.n ? t->hf->suffix.p[0] : -1;
}

// Run the decoder over one token string into o; sets *strip_first when a step removes a
// leading space only from the start of the whole text (Strip after Fuse, Metaspace).
static int decode_token(const HfTok *h, const char *s, size_t n, Buf *o, Buf *tmp, int *strip_first) {
    o->n = 0;
    if (buf_put(o, s, n) != CT_OK) return CT_ERR;
    int fused = 0;
    for (int k = 0; k < h->n_dec; k++) {
        const HfDec *d = &h->dec[k];
        tmp->n = 0;
        switch (d->kind) {
        case DEC_BYTELEVEL: {
            // every character back to its byte; a token with a character outside the table
            // keeps its UTF-8 bytes (as HF's ByteLevel decoder does)
            int ok = 1;
            for (size_t i = 0; i < o->n && ok;) {
                int l = utf8_len((const unsigned char *)o->p + i, o->n - i);
                int b = l ? unicode_to_byte(utf8_cp((const unsigned char *)o->p + i, l)) : -1;
                if (b < 0) ok = 0;
                else {
                    char c = (char)b;
                    if (buf_put(tmp, &c, 1) != CT_OK) return CT_ERR;
                }
                i += l ? (size_t)l : 1;
            }
            if (!ok) continue;
            break;
        }
        case DEC_REPLACE:
        case DEC_METASPACE: {
            const char *pat = d->pat, *rep = d->kind == DEC_REPLACE ? d->content : " ";
            size_t pl = d->pat_len, rl = d->kind == DEC_REPLACE ? d->content_len : 1;
            size_t pos = 0, ms, me;
            while (lit_find(pat, pl, o->p, o->n, pos, &ms, &me)) {
                if (buf_put(tmp, o->p + pos, ms - pos) != CT_OK || buf_put(tmp, rep, rl) != CT_OK)
                    return CT_ERR;
                pos = me;
            }
            if (buf_put(tmp, o->p + pos, o->n - pos) != CT_OK) return CT_ERR;
            if (d->kind == DEC_METASPACE && d->start != PREPEND_NEVER) *strip_first = 1;
            break;
        }
        case DEC_BYTEFALLBACK: {
            unsigned v;
            char c;
            if (o->n == 6 && sscanf(o->p, "<0x%2X>", &v) == 1 && o->p[5] == '>' &&
                strspn(o->p + 3, "0123456789ABCDEFabcdef") == 2) {
                c = (char)v;
                if (buf_put(tmp, &c, 1) != CT_OK) return CT_ERR;
                break;
            }
            continue;
        }
        case DEC_FUSE:
            fused = 1;
            continue;
        case DEC_STRIP: {
            if (fused) {   // after Fuse the tokens are one string: only its start is stripped
                if (d->start > 0 && d->content[0] == ' ') *strip_first = 1;
                continue;
            }
            size_t a = 0, b = o->n;
            for (int i = 0; i < d->start && a < b && o->p[a] == d->content[0]; i++) a++;
            for (int i = 0; i < d->stop && b > a && o->p[b - 1] == d->content[0]; i++) b--;
            if (buf_put(tmp, o->p + a, b - a) != CT_OK) return CT_ERR;
            break;
        }
        }
        Buf sw = *o;
        *o = *tmp;
        *tmp = sw;
    }
    return CT_OK;
}

// ----------------------------------------------------------------------------------------
// loading

// Common last steps: byte tables, decode table, the model's vocab_size, Tokenizer fields.
static int finish(HfTok *h, Tokenizer *t, int vocab_size) {
    for (int b = 0; b < 256; b++) {
        char c[8];
        int l = utf8_put(c, byte_to_unicode(b));
        h->byte_char_id[b] = vocab_lookup(h, c, (size_t)l);
        snprintf(c, sizeof c, "<0x%02X>", b);
        h->byte_fb_id[b] = vocab_lookup(h, c, 6);
    }
    // SentencePiece-style words are cut before "▁" when "▁" is a token (so unknown-character
    // fusing never spans a cut), except after the characters that some token joins to "▁".
    h->meta_split = !h->byte_level && vocab_lookup(h, METASPACE, 3) >= 0;
    for (int pass = 0; pass < 2 && h->meta_split; pass++) {   // count, then fill
        int m = 0;
        for (int id = 0; id < h->n_ids; id++) {
            if (!h->in_model[id]) continue;
            const char *p = tok_str(h, id);
            size_t n = (size_t)h->tok_len[id];
            for (size_t i = 1; i < n; i++)
                if (is_meta(p, n, i)) {
                    if (pass) h->meta_prev[m] = char_before(p, i);
                    m++;
                }
        }
        if (pass == 0 && !(h->meta_prev = malloc((size_t)(m ? m : 1) * sizeof *h->meta_prev)))
            return ct_error("tokenizer %s: out of memory", h->path);
        if (pass) {
            qsort(h->meta_prev, (size_t)m, sizeof *h->meta_prev, cmp_u32);
            int u = 0;
            for (int i = 0; i < m; i++)
                if (u == 0 || h->meta_prev[u - 1] != h->meta_prev[i]) h->meta_prev[u++] = h->meta_prev[i];
            h->n_meta_prev = u;
        }
    }
    if (vocab_size > 0 && h->n_ids > vocab_size) {
        int id = h->n_ids - 1;
        return ct_error("tokenizer %s: field %s: token \"%s\" has id %d, expected ids < %d (the "
                        "model's vocab_size); is this the model's tokenizer?", h->path,
                        h->in_model[id] ? "model.vocab" : "added_tokens", tok_str(h, id), id,
                        vocab_size);
    }
    h->dec_off = malloc((size_t)h->n_ids * sizeof *h->dec_off);
    if (!h->dec_off) return ct_error("tokenizer %s: out of memory", h->path);
    Buf o = {0}, tmp = {0};
    int rc = CT_OK, maxlen = 0;
    for (int id = 0; id < h->n_ids && rc == CT_OK; id++) {
        int strip = 0;
        h->dec_off[id] = h->dblob.n;
        if (h->tok_len[id] < 0) {
            rc = buf_put(&h->dblob, "", 1);
            continue;
        }
        rc = decode_token(h, tok_str(h, id), (size_t)h->tok_len[id], &o, &tmp, &strip);
        if (rc == CT_OK) rc = buf_put(&h->dblob, o.p, o.n);
        if (rc == CT_OK) rc = buf_put(&h->dblob, "", 1);
        h->strip_after_bos |= strip;
        if ((int)o.n > maxlen) maxlen = (int)o.n;
    }
    free(o.p);
    free(tmp.p);
    if (rc != CT_OK) return CT_ERR;
    memset(t, 0, sizeof *t);
    t->hf = h;
    t->vocab_size = vocab_size > h->n_ids ? vocab_size : h->n_ids;
    t->max_token_length = t->max_piece_len = maxlen;
    t->path = strdup(h->path);
    if (!t->path) return ct_error("tokenizer %s: out of memory", h->path);
    return CT_OK;
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

static char *dir_of(const char *path) {
    const char *s = strrchr(path, '/');
    if (!s) return strdup(".");
    size_t n = (size_t)(s - path);
    char *d = malloc(n + 2);
    if (!d) return NULL;
    if (n == 0) { d[0] = '/'; d[1] = 0; }
    else { memcpy(d, path, n); d[n] = 0; }
    return d;
}

static json_t *load_json(const char *path) {
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (!j)
        ct_error("tokenizer %s: expected a JSON file, got a parse error at line %d column %d: %s",
                 path, e.line, e.column, e.text);
    return j;
}

// model.vocab (or a GPT-2 vocab.json): {"token": id, ...}. Fills n_ids from it and extra ids.
static int load_vocab_object(HfTok *h, const json_t *vocab, const char *field, int extra_max_id) {
    if (!json_is_object(vocab))
        return field_err(h->path, field, "expected an object {\"token\": id}, got %s", jtype(vocab));
    const char *key;
    const json_t *v;
    int max_id = extra_max_id;
    json_object_foreach((json_t *)vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= HF_MAX_IDS)
            return field_err(h->path, field, "token \"%s\": expected an id in [0, %d), got %s%s",
                             key, HF_MAX_IDS, jtype(v), json_is_integer(v) ? " out of range" : "");
        if ((int)json_integer_value(v) > max_id) max_id = (int)json_integer_value(v);
    }
    if (max_id < 0) return field_err(h->path, field, "expected at least one token, got none");
    if (alloc_ids(h, max_id + 1, json_object_size(vocab)) != CT_OK) return CT_ERR;
    json_object_foreach((json_t *)vocab, key, v) {
        if (set_vocab_token(h, (int)json_integer_value(v), key, strlen(key), field) != CT_OK)
            return CT_ERR;
    }
    return CT_OK;
}

// tokenizer_config.json beside tokenizer.json: "add_bos_token": true adds bos_token when the
// post-processor adds no BOS (LlamaTokenizerFast / GemmaTokenizerFast behaviour).
static int apply_tokenizer_config(HfTok *h, Tokenizer *tk) {
    char *dir = dir_of(h->path), *p = dir ? path_join(dir, "tokenizer_config.json") : NULL;
    free(dir);
    if (!p) return ct_error("tokenizer %s: out of memory", h->path);
    if (!file_exists(p)) {
        free(p);
        return CT_OK;
    }
    json_t *j = load_json(p);
    int rc = j ? CT_OK : CT_ERR;
    const char *which[2][2] = {{"add_bos_token", "bos_token"}, {"add_eos_token", "eos_token"}};
    for (int k = 0; k < 2 && rc == CT_OK; k++) {
        IVec *v = k == 0 ? &h->prefix : &h->suffix;
        if (!json_is_true(json_object_get(j, which[k][0])) || v->n > 0) continue;
        const json_t *b = json_object_get(j, which[k][1]);
        if (json_is_object(b)) b = json_object_get(b, "content");
        int id = json_is_string(b) ? hf_tokenizer_token_id(tk, json_string_value(b)) : -1;
        if (id < 0)
            rc = ct_error("tokenizer %s: field %s: expected a token of %s (as %s is true), got %s",
                          p, which[k][1], h->path, which[k][0],
                          json_is_string(b) ? json_string_value(b) : jtype(b));
        else
            rc = ivec_push(v, id);
    }
    json_decref(j);
    free(p);
    return rc;
}

static int load_tokenizer_json(HfTok *h, json_t *root, Tokenizer *t, int vocab_size) {
    if (!json_is_object(root))
        return field_err(h->path, "(top level)", "expected an object, got %s", jtype(root));
    const json_t *model = json_object_get(root, "model");
    if (!json_is_object(model))
        return field_err(h->path, "model", "expected an object, got %s; is this a tokenizer.json?",
                         jtype(model));
    const json_t *type = json_object_get(model, "type");
    if (type && !json_is_string(type))
        return field_err(h->path, "model.type", "expected a string, got %s", jtype(type));
    if (type && strcmp(json_string_value(type), "BPE"))
        return field_err(h->path, "model.type", "expected \"BPE\", got \"%s\", which is not "
                         "supported (%s)", json_string_value(type), HF_SUPPORTED);
    const json_t *merges = json_object_get(model, "merges");
    if (!json_is_array(merges))
        return field_err(h->path, "model.merges", "expected an array of merges (\"a b\" or "
                         "[\"a\", \"b\"]), got %s", jtype(merges));
    const json_t *v;
    v = json_object_get(model, "dropout");
    if (v && !json_is_null(v) && json_number_value(v) > 0)
        return field_err(h->path, "model.dropout", "expected null (deterministic BPE), got %g",
                         json_number_value(v));
    const char *fix[2] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        v = json_object_get(model, fix[k]);
        if (v && !json_is_null(v) && (!json_is_string(v) || json_string_length(v) > 0))
            return field_err(h->path, fix[k], "expected null or \"\", got \"%s\" (subword "
                             "affixes are not supported; %s)", json_string_value(v), HF_SUPPORTED);
    }

    // Ids: model.vocab plus added_tokens (which may lie beyond it).
    const json_t *added = json_object_get(root, "added_tokens");
    int max_added = -1;
    if (json_is_array(added)) {
        for (size_t i = 0; i < json_array_size(added); i++) {
            const json_t *id = json_object_get(json_array_get(added, i), "id");
            char field[64];
            snprintf(field, sizeof field, "added_tokens[%zu].id", i);
            if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= HF_MAX_IDS)
                return field_err(h->path, field, "expected an id in [0, %d), got %s", HF_MAX_IDS, jtype(id));
            if ((int)json_integer_value(id) > max_added) max_added = (int)json_integer_value(id);
        }
    }
    if (load_vocab_object(h, json_object_get(model, "vocab"), "model.vocab", max_added) != CT_OK)
        return CT_ERR;
    if (parse_added(h, added) != CT_OK) return CT_ERR;

    h->byte_fallback = get_bool(model, "byte_fallback", 0);
    h->fuse_unk = get_bool(model, "fuse_unk", 0);
    h->ignore_merges = get_bool(model, "ignore_merges", 0);
    h->unk_id = -1;
    v = json_object_get(model, "unk_token");
    if (json_is_string(v)) {
        h->unk_id = vocab_lookup(h, json_string_value(v), json_string_length(v));
        if (h->unk_id < 0)
            return field_err(h->path, "model.unk_token", "expected a token of model.vocab, got \"%s\"",
                             json_string_value(v));
    }

    if (merges_alloc(h, json_array_size(merges)) != CT_OK) return CT_ERR;
    for (size_t i = 0; i < json_array_size(merges); i++) {
        const json_t *m = json_array_get(merges, i);
        char field[64];
        snprintf(field, sizeof field, "model.merges[%zu]", i);
        const char *a, *b;
        size_t na, nb;
        if (json_is_string(m)) {
            a = json_string_value(m);
            const char *sp = strchr(a, ' ');
            if (!sp || strchr(sp + 1, ' ') || sp == a || !sp[1])
                return field_err(h->path, field, "expected \"left right\" (two tokens, one space), got \"%s\"", a);
            na = (size_t)(sp - a);
            b = sp + 1;
            nb = strlen(b);
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0));
            na = json_string_length(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            nb = json_string_length(json_array_get(m, 1));
        } else {
            return field_err(h->path, field, "expected \"left right\" or [\"left\", \"right\"], got %s", jtype(m));
        }
        if (merge_add(h, h->path, a, na, b, nb, field) != CT_OK) return CT_ERR;
    }

    if (parse_normalizer(h, json_object_get(root, "normalizer"), "normalizer") != CT_OK) return CT_ERR;
    if (parse_pretokenizer(h, json_object_get(root, "pre_tokenizer"), "pre_tokenizer") != CT_OK) return CT_ERR;
    if (parse_postprocessor(h, json_object_get(root, "post_processor"), "post_processor") != CT_OK) return CT_ERR;
    if (parse_decoder(h, json_object_get(root, "decoder"), "decoder") != CT_OK) return CT_ERR;
    if (build_added_index(h) != CT_OK) return CT_ERR;
    // tokenizer_config.json is read through the lookups of a Tokenizer: give it a temporary one
    Tokenizer tmp = {0};
    tmp.hf = h;
    tmp.vocab_size = h->n_ids;
    if (apply_tokenizer_config(h, &tmp) != CT_OK) return CT_ERR;
    return finish(h, t, vocab_size);
}

// GPT-2's vocab.json/encoder.json + merges.txt/vocab.bpe: encoder.py behaviour.
static int load_pair(HfTok *h, json_t *vocab, const char *merges_path, Tokenizer *t, int vocab_size) {
    if (load_vocab_object(h, vocab, "(vocabulary object)", -1) != CT_OK) return CT_ERR;
    MappedFile mf;
    if (ct_map_file(&mf, merges_path) != CT_OK) return CT_ERR;
    const char *d = (const char *)mf.data, *end = d + mf.size;
    size_t lines = 0;
    for (const char *p = d; p < end; p++) lines += *p == '\n';
    int rc = merges_alloc(h, lines + 1);
    int lineno = 0;
    for (const char *p = d; p < end && rc == CT_OK;) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e) e = end;
        lineno++;
        size_t n = (size_t)(e - p);
        if (n && p[n - 1] == '\r') n--;
        if (n > 0 && !(lineno == 1 && p[0] == '#')) {   // skip "#version: 0.2" and blank lines
            const char *sp = memchr(p, ' ', n);
            char field[64];
            snprintf(field, sizeof field, "line %d", lineno);
            if (!sp || sp == p || sp == p + n - 1 || memchr(sp + 1, ' ', (size_t)(p + n - sp - 1))) {
                rc = ct_error("tokenizer %s: merges file %s: line %d: expected \"left right\" (two "
                              "tokens, one space), got \"%.*s\"", h->path, merges_path, lineno,
                              (int)(n > 80 ? 80 : n), p);
            } else {
                rc = merge_add(h, merges_path, p, (size_t)(sp - p), sp + 1, (size_t)(p + n - sp - 1), field);
            }
        }
        p = e + 1;
    }
    ct_unmap_file(&mf);
    if (rc != CT_OK) return CT_ERR;
    if (h->n_merges == 0)
        return ct_error("tokenizer %s: merges file %s: expected \"left right\" lines, got none",
                        h->path, merges_path);
    HfPre pr = {0};
    pr.kind = PRE_BYTELEVEL;
    pr.behavior = SPLIT_ISOLATED;
    if (regex_compile(h->path, "pre_tokenizer", GPT2_PATTERN, strlen(GPT2_PATTERN), &pr.re) != CT_OK)
        return CT_ERR;
    if (add_pre(h, &pr) != CT_OK) {
        pcre2_code_free(pr.re);
        return CT_ERR;
    }
    h->byte_level = 1;
    h->unk_id = -1;
    h->dec = calloc(1, sizeof *h->dec);
    if (!h->dec) return ct_error("tokenizer %s: out of memory", h->path);
    h->dec[0].kind = DEC_BYTELEVEL;
    h->n_dec = 1;
    if (build_added_index(h) != CT_OK) return CT_ERR;
    return finish(h, t, vocab_size);
}

int hf_tokenizer_path(const char *path) {
    struct stat st;
    if (!path) return 0;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 1;
    size_t n = strlen(path);
    return n >= 5 && strcmp(path + n - 5, ".json") == 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0 && (a == b || s[a - b - 1] == '/');
}

int hf_tokenizer_load(Tokenizer *t, const char *path, int vocab_size) {
    memset(t, 0, sizeof *t);
    if (!path) return ct_error("tokenizer: path: expected a tokenizer.json, vocab.json or directory, got NULL");
    struct stat st;
    if (stat(path, &st) != 0)
        return ct_error("tokenizer %s: cannot open: %s", path, strerror(errno));
    char *file = NULL, *merges = NULL;
    if (S_ISDIR(st.st_mode)) {
        static const char *vocabs[] = {"vocab.json", "encoder.json"};
        file = path_join(path, "tokenizer.json");
        for (int k = 0; k < 2 && file && !file_exists(file); k++) {
            free(file);
            file = path_join(path, vocabs[k]);
        }
        if (file && !file_exists(file)) {
            free(file);
            return ct_error("tokenizer directory %s: expected tokenizer.json, or vocab.json / "
                            "encoder.json with merges.txt / vocab.bpe, got none of them", path);
        }
    } else {
        file = strdup(path);
    }
    if (!file) return ct_error("tokenizer %s: out of memory", path);
    HfTok *h = calloc(1, sizeof *h);
    if (!h || !(h->path = strdup(file))) {
        free(h);
        free(file);
        return ct_error("tokenizer %s: out of memory", path);
    }
    h->unk_id = -1;
    json_t *root = load_json(file);
    int rc = root ? CT_OK : CT_ERR;
    // GPT-2's vocabulary has a token "model" (an integer), tokenizer.json an object "model"
    if (rc == CT_OK && (ends_with(file, "tokenizer.json") || json_is_object(json_object_get(root, "model")))) {
        rc = load_tokenizer_json(h, root, t, vocab_size);
    } else if (rc == CT_OK) {
        // a vocabulary object: its merges file lives beside it
        char *dir = dir_of(file);
        static const char *mfiles[] = {"merges.txt", "vocab.bpe"};
        for (int k = 0; k < 2 && dir && !merges; k++) {
            char *m = path_join(dir, mfiles[k]);
            if (m && file_exists(m)) merges = m;
            else free(m);
        }
        if (!merges)
            rc = ct_error("tokenizer %s: merges file: expected merges.txt or vocab.bpe beside this "
                          "vocabulary (in %s), got neither; a GPT-2 style vocab.json needs its "
                          "merges (or give a tokenizer.json)", file, dir ? dir : "?");
        else
            rc = load_pair(h, root, merges, t, vocab_size);
        free(dir);
    }
    json_decref(root);
    free(file);
    free(merges);
    if (rc != CT_OK) {
        hf_free(h);
        memset(t, 0, sizeof *t);
        return CT_ERR;
    }
    return CT_OK;
}
