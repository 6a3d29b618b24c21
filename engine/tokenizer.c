// tokenizer.c — llama2.c tokenizer.bin: loader, run.c-compatible BPE encoder, decoder.
//
// The encoder reproduces llama2.c run.c encode() id for id, but replaces its two slow parts:
//   - piece lookup: a hash table (xxh3, open addressing) instead of qsort + bsearch;
//   - merges: run.c rescans all n pairs after each merge (O(n^2) per text). Here every
//     mergeable adjacent pair sits in a binary max-heap keyed by (score, -position); a merge
//     pushes at most two new pairs and stale entries are skipped when popped, so a text of
//     n bytes costs O(n log n). Popping the max score, leftmost on ties, is exactly the pair
//     run.c picks (it keeps the first pair with a strictly greater score), so ids match.
// The same machinery runs SentencePiece's own BPE (bpe_model.cc does the same heap walk) for
// TOK_WS_SENTENCEPIECE, after SentencePiece's default whitespace normalization.
#include "engine/tokenizer.h"
#include "engine/hf_tokenizer.h"
#include "engine/model.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

// A max_token_length beyond this is not a tokenizer.bin (Llama 2's is 27, tok512's 7).
#define TOK_MAX_PIECE_BYTES (1 << 16)
// Texts are indexed with int; the run.c byte fallback can grow a byte into a 6-byte piece.
#define TOK_MAX_TEXT_BYTES (INT_MAX / 16)
// run.c starts its best-score search at -1e10: a pair scoring <= -1e10 never merges.
#define RUNC_MIN_SCORE (-1e10f)

// ----------------------------------------------------------------------------------------
// loading

// tokenizer.bin is little-endian; so are x86-64 and aarch64 Linux, so memcpy is the decode.
static int32_t rd_i32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}
static float rd_f32(const uint8_t *p) {
    float v;
    memcpy(&v, p, 4);
    return v;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// "<0xHH>" -> HH, anything else -> -1. (run.c's sscanf("<0x%02hhX>") also accepts one hex
// digit and trailing junk; no real tokenizer.bin has such pieces, so we stay strict.)
static int parse_byte_piece(const char *s, int len) {
    if (len != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    int hi = hexval(s[3]), lo = hexval(s[4]);
    if (hi < 0 || lo < 0) return -1;
    return hi * 16 + lo;
}

// Look a byte string up among the pieces; -1 if absent. normal_only hides <unk>, BOS, EOS and
// the byte pieces, which SentencePiece never produces by merging or by matching text.
static int lookup(const Tokenizer *t, const char *s, int len, int normal_only) {
    uint32_t i = (uint32_t)ct_hash64(s, (size_t)len) & t->hash_mask;
    for (;; i = (i + 1) & t->hash_mask) {
        int id = t->hash_ids[i];
        if (id < 0) return -1;
        if (t->piece_len[id] == len && memcmp(t->vocab[id], s, (size_t)len) == 0)
            return (normal_only && !t->is_normal[id]) ? -1 : id;
    }
}

// Walk the token records once to validate them; returns the number of tokens and the bytes
// of piece storage (each piece + NUL) they need.
static int scan_tokens(const char *path, const uint8_t *d, size_t n, int max_len, int want,
                       int *count, size_t *blob_bytes) {
    size_t off = 4, blob = 0;
    int i = 0;
    while (want > 0 ? i < want : off < n) {
        if (n - off < 4) {
            if (off == n && want > 0)
                return ct_error("tokenizer %s: token %d field score: expected 4 bytes at offset "
                                "%zu, got 0: the file holds %d tokens but vocab_size is %d; is "
                                "this the tokenizer for this model?", path, i, off, i, want);
            return ct_error("tokenizer %s: token %d field score: expected 4 bytes at offset %zu, "
                            "got %zu (file size %zu): truncated file?", path, i, off, n - off, n);
        }
        off += 4;
        if (n - off < 4)
            return ct_error("tokenizer %s: token %d field length: expected 4 bytes at offset %zu, "
                            "got %zu (file size %zu): truncated file?", path, i, off, n - off, n);
        int32_t len = rd_i32(d + off);
        off += 4;
        if (len < 0 || len > max_len)
            return ct_error("tokenizer %s: token %d field length: expected 0..%d (the header's "
                            "max_token_length), got %d at offset %zu: corrupt or not a "
                            "tokenizer.bin?", path, i, max_len, (int)len, off - 4);
        if (n - off < (size_t)len)
            return ct_error("tokenizer %s: token %d field bytes: expected %d bytes at offset %zu, "
                            "got %zu (file size %zu): truncated file?", path, i, (int)len, off,
                            n - off, n);
        const void *nul = memchr(d + off, 0, (size_t)len);
        if (nul)
            return ct_error("tokenizer %s: token %d field bytes: expected no NUL byte in the "
                            "piece, got one at byte %d of %d", path, i,
                            (int)((const uint8_t *)nul - (d + off)), (int)len);
        off += (size_t)len;
        blob += (size_t)len + 1;
        if (++i == INT_MAX) break;
    }
    if (i == 0)
        return ct_error("tokenizer %s: tokens: expected at least 1 after the 4-byte header, got 0 "
                        "(file size %zu)", path, n);
    if (off != n)
        return ct_error("tokenizer %s: file size: expected %zu bytes for %d tokens, got %zu "
                        "(%zu trailing bytes); is this the tokenizer for this model?", path, off,
                        i, n, n - off);
    *count = i;
    *blob_bytes = blob;
    return CT_OK;
}

static int parse_tokenizer(Tokenizer *t, const char *path, const uint8_t *d, size_t n,
                           int vocab_size) {
    if (n < 4)
        return ct_error("tokenizer %s: header field max_token_length: expected 4 bytes, got %zu "
                        "(file size %zu); is this a llama2.c tokenizer.bin?", path, n, n);
    int32_t max_len = rd_i32(d);
    if (max_len < 1 || max_len > TOK_MAX_PIECE_BYTES)
        return ct_error("tokenizer %s: header field max_token_length: expected 1..%d, got %d; "
                        "is this a llama2.c tokenizer.bin?", path, TOK_MAX_PIECE_BYTES,
                        (int)max_len);
    int V = 0;
    size_t blob_bytes = 0;
    if (scan_tokens(path, d, n, max_len, vocab_size, &V, &blob_bytes) != CT_OK) return CT_ERR;
    if (V > (1 << 28))   // keeps the hash table size below 2^32
        return ct_error("tokenizer %s: token count: expected at most %d, got %d", path, 1 << 28, V);

    t->vocab_size = V;
    t->max_token_length = max_len;
    t->path = strdup(path);
    t->vocab = malloc((size_t)V * sizeof *t->vocab);
    t->piece_len = malloc((size_t)V * sizeof *t->piece_len);
    t->scores = malloc((size_t)V * sizeof *t->scores);
    t->byte_val = malloc((size_t)V * sizeof *t->byte_val);
    t->is_normal = malloc((size_t)V);
    t->blob = malloc(blob_bytes);
    // Hash table at most half full: power of two >= 2V.
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)V) cap <<= 1;
    t->hash_mask = cap - 1;
    t->hash_ids = malloc((size_t)cap * sizeof *t->hash_ids);
    if (!t->path || !t->vocab || !t->piece_len || !t->scores || !t->byte_val || !t->is_normal ||
        !t->blob || !t->hash_ids)
        return ct_error("tokenizer %s: out of memory for %d tokens", path, V);
    for (uint32_t i = 0; i < cap; i++) t->hash_ids[i] = -1;

    // Second pass: copy pieces (already validated by scan_tokens).
    size_t off = 4;
    char *b = t->blob;
    for (int i = 0; i < V; i++) {
        t->scores[i] = rd_f32(d + off);
        int len = rd_i32(d + off + 4);
        off += 8;
        memcpy(b, d + off, (size_t)len);
        b[len] = '\0';
        off += (size_t)len;
        t->vocab[i] = b;
        t->piece_len[i] = len;
        b += len + 1;
        if (len > t->max_piece_len) t->max_piece_len = len;
        int bv = parse_byte_piece(t->vocab[i], len);
        t->byte_val[i] = (int16_t)bv;
        // llama2.c convention: ids 0, 1, 2 are <unk>, BOS, EOS.
        t->is_normal[i] = (uint8_t)(i > 2 && bv < 0);
        // Insert; on a duplicate piece the lowest id wins (run.c's bsearch picks arbitrarily).
        uint32_t h = (uint32_t)ct_hash64(t->vocab[i], (size_t)len) & t->hash_mask;
        for (;; h = (h + 1) & t->hash_mask) {
            int j = t->hash_ids[h];
            if (j < 0) { t->hash_ids[h] = i; break; }
            if (t->piece_len[j] == len && memcmp(t->vocab[j], t->vocab[i], (size_t)len) == 0)
                break;
        }
    }
    // Can BPE run word by word? Only if no piece could span a "non-space, space" boundary.
    t->word_split = 1;
    for (int i = 0; i < V && t->word_split; i++)
        for (int k = 1; k < t->piece_len[i]; k++)
            if (t->vocab[i][k] == ' ' && t->vocab[i][k - 1] != ' ') {
                t->word_split = 0;
                break;
            }
    for (int i = 0; i < 256; i++) {
        t->byte_pieces[i * 2] = (unsigned char)i;
        t->byte_pieces[i * 2 + 1] = '\0';
    }
    return CT_OK;
}

int tokenizer_load(Tokenizer *t, const char *path, int vocab_size) {
    memset(t, 0, sizeof *t);
    if (!path) return ct_error("tokenizer_load: path: expected a file name, got NULL");
    if (vocab_size < 0)
        return ct_error("tokenizer %s: vocab_size: expected > 0 (or 0 = read to end of file), "
                        "got %d", path, vocab_size);
    MappedFile mf;
    if (ct_map_file(&mf, path) != CT_OK) return ct_error_ctx("loading tokenizer");
    int rc = parse_tokenizer(t, path, mf.data, mf.size, vocab_size);
    ct_unmap_file(&mf);
    if (rc != CT_OK) tokenizer_free(t);
    return rc;
}

int tokenizer_open(Tokenizer *t, const char *tok_path, const char *model_path, int vocab_size) {
    memset(t, 0, sizeof *t);
    if (tok_path) {
        if (hf_tokenizer_path(tok_path)) return hf_tokenizer_load(t, tok_path, vocab_size);
        return tokenizer_load(t, tok_path, vocab_size);
    }
    if (model_path && model_path_is_hf(model_path)) {
        // The directory of a model given as .../config.json is where its tokenizer lives.
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", model_path);
        size_t n = strlen(dir);
        if (n >= 11 && strcmp(dir + n - 11, "config.json") == 0) {
            dir[n - 11] = 0;
            if (!dir[0]) snprintf(dir, sizeof dir, ".");
        }
        return hf_tokenizer_load(t, dir, vocab_size);
    }
    return ct_error("no tokenizer: give -z TOKENIZER (a llama2.c tokenizer.bin or a Hugging Face "
                    "tokenizer.json), or a Hugging Face model directory that holds one");
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    hf_tokenizer_free(t->hf);
    free(t->vocab);
    free(t->piece_len);
    free(t->scores);
    free(t->byte_val);
    free(t->is_normal);
    free(t->hash_ids);
    free(t->blob);
    free(t->path);
    memset(t, 0, sizeof *t);
}

int tokenizer_vocab_size(const Tokenizer *t) { return t ? t->vocab_size : 0; }

int tokenizer_bos_id(const Tokenizer *t) {
    if (t && t->hf) return hf_tokenizer_bos_id(t);
    return t && TOK_BOS < t->vocab_size ? TOK_BOS : -1;
}

int tokenizer_start_id(const Tokenizer *t) {
    int b = tokenizer_bos_id(t), e = tokenizer_eos_id(t);
    return b >= 0 ? b : e >= 0 ? e : 0;
}

int tokenizer_stop_id(const Tokenizer *t) {
    if (t && t->hf) return hf_tokenizer_eos_id(t);
    return tokenizer_bos_id(t);  // run.c: a llama2.c model ends a story by emitting BOS
}

int tokenizer_eos_id(const Tokenizer *t) {
    if (t && t->hf) return hf_tokenizer_eos_id(t);
    return t && TOK_EOS < t->vocab_size ? TOK_EOS : -1;
}

const char *tokenizer_piece(const Tokenizer *t, int id) {
    if (t && t->hf) return hf_tokenizer_piece(t, id);
    if (!t || id < 0 || id >= t->vocab_size) {
        ct_error("tokenizer %s: token id: expected 0..%d, got %d", t && t->path ? t->path : "?",
                 t ? t->vocab_size - 1 : -1, id);
        return NULL;
    }
    return t->vocab[id];
}

// ----------------------------------------------------------------------------------------
// encoding: symbols, a heap of candidate merges, and the two ways of building the symbols

// One symbol of the working text: bytes buf[start, start+len), current token id (-1: not a
// piece, SentencePiece mode only), neighbours in the doubly linked list, and a version
// bumped whenever it changes so heap entries made before the change can be recognised.
typedef struct Sym {
    int start, len, id, prev, next;
    uint32_t ver;   // 0 = dead (absorbed into its left neighbour)
} Sym;

// A candidate merge of adjacent symbols left, right into piece id.
typedef struct Cand {
    float score;
    int left, right, id;
    uint32_t lver, rver;
} Cand;

typedef struct Work {
    char *buf;      // the working text (run.c: concatenated pieces; SentencePiece: normalized)
    size_t nbuf, capbuf;
    Sym *sym;
    int nsym, capsym;
    Cand *heap;
    int nheap, capheap;
} Work;

static void work_free(Work *w) {
    free(w->buf);
    free(w->sym);
    free(w->heap);
}

static int buf_append(Work *w, const char *s, size_t n) {
    if (w->nbuf + n > w->capbuf) {
        size_t cap = w->capbuf ? w->capbuf : 256;
        while (cap < w->nbuf + n) cap *= 2;
        char *p = realloc(w->buf, cap);
        if (!p) return ct_error("tokenizer: out of memory for a %zu-byte working text", cap);
        w->buf = p;
        w->capbuf = cap;
    }
    memcpy(w->buf + w->nbuf, s, n);
    w->nbuf += n;
    return CT_OK;
}

// Append symbol [start, start+len) with id, linked after the previous one.
static int sym_push(Work *w, int start, int len, int id) {
    if (w->nsym == w->capsym) {
        int cap = w->capsym ? w->capsym * 2 : 256;
        Sym *p = realloc(w->sym, (size_t)cap * sizeof *p);
        if (!p) return ct_error("tokenizer: out of memory for %d symbols", cap);
        w->sym = p;
        w->capsym = cap;
    }
    int i = w->nsym++;
    w->sym[i] = (Sym){start, len, id, i - 1, -1, 1};
    if (i > 0) w->sym[i - 1].next = i;
    return CT_OK;
}

// Heap order: higher score first; on equal scores the leftmost pair (symbol indices grow
// left to right, and a merged symbol keeps its left index).
static int cand_before(const Cand *a, const Cand *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(Work *w, Cand c) {
    if (w->nheap == w->capheap) {
        int cap = w->capheap ? w->capheap * 2 : 256;
        Cand *p = realloc(w->heap, (size_t)cap * sizeof *p);
        if (!p) return ct_error("tokenizer: out of memory for %d merge candidates", cap);
        w->heap = p;
        w->capheap = cap;
    }
    int i = w->nheap++;
    while (i > 0) {   // sift up
        int parent = (i - 1) / 2;
        if (!cand_before(&c, &w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = c;
    return CT_OK;
}

static Cand heap_pop(Work *w) {
    Cand top = w->heap[0], last = w->heap[--w->nheap];
    int i = 0, n = w->nheap;
    for (;;) {   // sift down
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cand_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!cand_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n > 0) w->heap[i] = last;
    return top;
}

// If symbols l and r (adjacent) concatenate to a piece, queue the merge.
static int try_pair(const Tokenizer *t, Work *w, int l, int r, int normal_only) {
    if (l < 0 || r < 0) return CT_OK;
    const Sym *a = &w->sym[l], *b = &w->sym[r];
    int len = a->len + b->len;
    if (len > t->max_piece_len) return CT_OK;     // longer than every piece: cannot match
    // Adjacent symbols are adjacent in buf, so the concatenation is just a span of it.
    int id = lookup(t, w->buf + a->start, len, normal_only);
    if (id < 0) return CT_OK;
    float score = t->scores[id];
    if (!(score > RUNC_MIN_SCORE)) return CT_OK;   // also drops NaN, as run.c's '>' does
    return heap_push(w, (Cand){score, l, r, id, a->ver, b->ver});
}

// Greedy BPE: pop the best candidate; skip it if either side changed since it was queued;
// otherwise the left symbol absorbs the right one and its two new pairs are queued.
static int merge_queued(const Tokenizer *t, Work *w, int normal_only) {
    while (w->nheap > 0) {
        Cand c = heap_pop(w);
        Sym *a = &w->sym[c.left], *b = &w->sym[c.right];
        if (a->ver != c.lver || b->ver != c.rver || a->next != c.right) continue;   // stale
        a->len += b->len;
        a->id = c.id;
        a->ver++;
        a->next = b->next;
        if (b->next >= 0) w->sym[b->next].prev = c.left;
        b->ver = 0;
        if (try_pair(t, w, a->prev, c.left, normal_only) != CT_OK) return CT_ERR;
        if (try_pair(t, w, c.left, a->next, normal_only) != CT_OK) return CT_ERR;
    }
    return CT_OK;
}

// When the vocabulary allows it (t->word_split), the text is cut before each space that
// follows a non-space byte and each word is merged on its own: no piece can span such a cut,
// so no pair across it is ever queued, and the merges inside a word happen in the same
// order as in the global loop. The only effect is a small, cache-resident heap.
static int merge_all(const Tokenizer *t, Work *w, int normal_only) {
    for (int i0 = 0, i1; i0 < w->nsym; i0 = i1) {
        i1 = i0 + 1;
        if (t->word_split) {
            for (; i1 < w->nsym; i1++) {
                const Sym *y = &w->sym[i1];
                if (y->len > 0 && y->start > 0 && w->buf[y->start] == ' ' && w->buf[y->start - 1] != ' ')
                    break;
            }
        } else {
            i1 = w->nsym;
        }
        for (int i = i0; i + 1 < i1; i++)
            if (try_pair(t, w, i, i + 1, normal_only) != CT_OK) return CT_ERR;
        if (merge_queued(t, w, normal_only) != CT_OK) return CT_ERR;
    }
    return CT_OK;
}

// A symbol holding token id: its text in buf is the piece itself (run.c concatenates pieces).
static int push_token(const Tokenizer *t, Work *w, int id) {
    int start = (int)w->nbuf;
    if (buf_append(w, t->vocab[id], (size_t)t->piece_len[id]) != CT_OK) return CT_ERR;
    return sym_push(w, start, t->piece_len[id], id);
}

static int byte_id(const Tokenizer *t, unsigned char b) {
    int id = TOK_BYTE0 + b;
    if (id >= t->vocab_size)
        return ct_error("tokenizer %s: byte fallback for byte 0x%02X: expected id %d < vocab_size, "
                        "got vocab_size %d (no byte pieces in this vocabulary?)", t->path, b, id,
                        t->vocab_size);
    return id;
}

// run.c: dummy " " then one token per UTF-8 "codepoint", grouped the way run.c groups bytes
// (a non-continuation byte plus up to 3 following continuation bytes, without validating),
// byte fallback (id = byte + 3) for groups that are not pieces.
static int build_runc(const Tokenizer *t, Work *w, const char *text, size_t n) {
    if (n == 0) return CT_OK;   // run.c adds the dummy prefix only for non-empty text
    int sp = lookup(t, " ", 1, 0);
    if (sp < 0) sp = byte_id(t, ' ');   // run.c would index vocab[-1]; fall back to the byte
    if (sp < 0 || push_token(t, w, sp) != CT_OK) return CT_ERR;
    char group[4];
    int glen = 0;
    for (size_t i = 0; i < n; i++) {
        group[glen++] = text[i];
        // text[n] is the NUL, never a continuation byte (10xxxxxx).
        if (((unsigned char)text[i + 1] & 0xC0) == 0x80 && glen < 4) continue;
        int id = lookup(t, group, glen, 0);
        if (id >= 0) {
            if (push_token(t, w, id) != CT_OK) return CT_ERR;
        } else {
            for (int k = 0; k < glen; k++) {
                int b = byte_id(t, (unsigned char)group[k]);
                if (b < 0 || push_token(t, w, b) != CT_OK) return CT_ERR;
            }
        }
        glen = 0;
    }
    return CT_OK;
}

// SentencePiece's DecodeUTF8 validity: shortest form, no surrogates, <= U+10FFFF. Returns
// the sequence length, or 0 for a malformed byte.
static int utf8_valid_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (n >= 2 && (c & 0xE0) == 0xC0 && (s[1] & 0xC0) == 0x80) {
        unsigned cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        return cp >= 0x80 ? 2 : 0;
    }
    if (n >= 3 && (c & 0xF0) == 0xE0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80) {
        unsigned cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        return (cp >= 0x800 && (cp < 0xD800 || cp >= 0xE000)) ? 3 : 0;
    }
    if (n >= 4 && (c & 0xF8) == 0xF0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 &&
        (s[3] & 0xC0) == 0x80) {
        unsigned cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) |
                      (s[3] & 0x3Fu);
        return (cp >= 0x10000 && cp <= 0x10FFFF) ? 4 : 0;
    }
    return 0;
}

// SentencePiece (normalizer.cc with the identity rule, add_dummy_prefix and
// remove_extra_whitespaces, as in tok512.model): drop leading U+0020, give up if nothing is
// left, add the dummy " ", copy the text with each malformed byte replaced by U+FFFD and
// each run of U+0020 collapsed to one, drop trailing U+0020. Tabs and newlines are ordinary
// characters. Then one symbol per character; a character that is not a piece stays a symbol
// with id -1 (it still merges if a concatenation is a piece, as in bpe_model.cc) and, if it
// survives, becomes its UTF-8 byte tokens at the end.
static int build_sentencepiece(const Tokenizer *t, Work *w, const char *text, size_t n) {
    size_t i = 0;
    while (i < n && text[i] == ' ') i++;
    if (i == n) return CT_OK;
    if (buf_append(w, " ", 1) != CT_OK) return CT_ERR;
    int prev_space = 1;
    while (i < n) {
        int k = utf8_valid_len((const unsigned char *)text + i, n - i);
        const char *unit = k ? text + i : "\xEF\xBF\xBD";
        size_t ulen = k ? (size_t)k : 3;
        i += k ? (size_t)k : 1;
        int is_space = (ulen == 1 && unit[0] == ' ');
        if (is_space && prev_space) continue;
        if (buf_append(w, unit, ulen) != CT_OK) return CT_ERR;
        prev_space = is_space;
    }
    while (w->nbuf > 0 && w->buf[w->nbuf - 1] == ' ') w->nbuf--;
    // buf is now valid UTF-8, so the lead byte gives each character's length.
    for (size_t p = 0; p < w->nbuf;) {
        unsigned c = (unsigned char)w->buf[p];
        int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (sym_push(w, (int)p, len, lookup(t, w->buf + p, len, 1)) != CT_OK) return CT_ERR;
        p += (size_t)len;
    }
    return CT_OK;
}

int tokenizer_encode_mode(const Tokenizer *t, const char *text, int bos, int eos, int mode,
                          int *out, int max_tokens, int *n_out) {
    if (t && t->hf) return hf_tokenizer_encode(t, text, bos, eos, out, max_tokens, n_out);
    if (n_out) *n_out = 0;
    if (!t || !t->vocab) return ct_error("tokenizer_encode: tokenizer: expected a loaded one, got none");
    if (!text) return ct_error("tokenizer_encode: text: expected a string, got NULL");
    if (!n_out || max_tokens < 0 || (max_tokens > 0 && !out))
        return ct_error("tokenizer_encode: output: expected n_out and an out array of "
                        "max_tokens >= 0 ids, got n_out=%p out=%p max_tokens=%d", (void *)n_out,
                        (void *)out, max_tokens);
    if (mode != TOK_WS_RUNC && mode != TOK_WS_SENTENCEPIECE)
        return ct_error("tokenizer_encode: mode: expected TOK_WS_RUNC (0) or "
                        "TOK_WS_SENTENCEPIECE (1), got %d", mode);
    if ((bos && TOK_BOS >= t->vocab_size) || (eos && TOK_EOS >= t->vocab_size))
        return ct_error("tokenizer %s: BOS/EOS: expected ids 1/2 < vocab_size, got vocab_size %d",
                        t->path, t->vocab_size);
    size_t n = strlen(text);
    if (n > (size_t)TOK_MAX_TEXT_BYTES)
        return ct_error("tokenizer_encode: text length: expected at most %d bytes per call, got "
                        "%zu (split the text)", TOK_MAX_TEXT_BYTES, n);

    Work w = {0};
    int rc = mode == TOK_WS_RUNC ? build_runc(t, &w, text, n)
                                 : build_sentencepiece(t, &w, text, n);
    if (rc == CT_OK) rc = merge_all(t, &w, mode == TOK_WS_SENTENCEPIECE);
    if (rc != CT_OK) {
        work_free(&w);
        return CT_ERR;
    }

    // Count first, so an over-long text fails without writing anything.
    long need = (bos ? 1 : 0) + (eos ? 1 : 0);
    for (int s = w.nsym ? 0 : -1; s >= 0; s = w.sym[s].next)
        need += w.sym[s].id >= 0 ? 1 : w.sym[s].len;
    if (need > max_tokens) {
        *n_out = need > INT_MAX ? INT_MAX : (int)need;
        work_free(&w);
        return ct_error("tokenizer_encode: text needs %ld tokens%s but at most %d fit "
                        "(max_tokens, e.g. the context length); shorten the text", need,
                        bos || eos ? " including BOS/EOS" : "", max_tokens);
    }
    int k = 0;
    if (bos) out[k++] = TOK_BOS;
    for (int s = w.nsym ? 0 : -1; s >= 0; s = w.sym[s].next) {
        const Sym *y = &w.sym[s];
        if (y->id >= 0) {
            out[k++] = y->id;
            continue;
        }
        // SentencePiece byte fallback: an unknown character becomes its UTF-8 bytes.
        for (int j = 0; j < y->len; j++) {
            int b = byte_id(t, (unsigned char)w.buf[y->start + j]);
            if (b < 0) {
                work_free(&w);
                return CT_ERR;
            }
            out[k++] = b;
        }
    }
    if (eos) out[k++] = TOK_EOS;
    *n_out = k;
    work_free(&w);
    return CT_OK;
}

int tokenizer_encode(const Tokenizer *t, const char *text, int bos, int eos, int *out,
                     int max_tokens, int *n_out) {
    return tokenizer_encode_mode(t, text, bos, eos, TOK_WS_RUNC, out, max_tokens, n_out);
}

// ----------------------------------------------------------------------------------------
// decoding and printing

const char *tokenizer_decode(const Tokenizer *t, int prev_token, int token) {
    if (t && t->hf) return hf_tokenizer_decode(t, prev_token, token);
    if (!t || !t->vocab || token < 0 || token >= t->vocab_size) {
        ct_error("tokenizer %s: decode token id: expected 0..%d, got %d",
                 t && t->path ? t->path : "?", t ? t->vocab_size - 1 : -1, token);
        return NULL;
    }
    const char *piece = t->vocab[token];
    // After BOS, SentencePiece's decoder drops the dummy-prefix space (llama2.c PR #89).
    if (prev_token == TOK_BOS && piece[0] == ' ') piece++;
    // Byte pieces "<0xHH>" stand for the raw byte. (A piece starting with ' ' is never one,
    // so the precomputed byte_val of the unstripped piece is the right test.)
    if (t->byte_val[token] >= 0) piece = (const char *)t->byte_pieces + t->byte_val[token] * 2;
    return piece;
}

void tokenizer_print_piece(FILE *f, const char *piece) {
    if (!piece || piece[0] == '\0') return;
    if (piece[1] == '\0') {
        // C-locale isprint / isspace, spelled out so the result never depends on setlocale.
        unsigned char b = (unsigned char)piece[0];
        int printable = b >= 0x20 && b <= 0x7E;
        int space = b == ' ' || (b >= '\t' && b <= '\r');
        if (!printable && !space) return;   // a control byte (or a lone UTF-8 byte): skip
    }
    fputs(piece, f);
}

// ----------------------------------------------------------------------------------------
// "1,403,407" -> ids

int tokens_parse_list(const char *s, int vocab, int *out, int max, int *n_out) {
    if (n_out) *n_out = 0;
    if (!s) return ct_error("token list: expected a comma-separated list of ids, got NULL");
    if (!n_out || max < 0 || (max > 0 && !out))
        return ct_error("tokens_parse_list: output: expected n_out and an out array, got "
                        "n_out=%p out=%p max=%d", (void *)n_out, (void *)out, max);
    const char *p = s;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '\0')
        return ct_error("token list \"%s\": expected comma-separated token ids such as "
                        "\"1,403,407\", got an empty string", s);
    int n = 0;
    for (int item = 1;; item++) {
        const char *a = p, *e = strchr(p, ',');
        if (!e) e = p + strlen(p);
        const char *b = e;
        while (a < b && (*a == ' ' || *a == '\t')) a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
        int col = (int)(a - s) + 1, w = (int)(b - a) > 40 ? 40 : (int)(b - a);
        if (a == b)
            return ct_error("token list \"%s\": item %d (character %d): expected a token id, "
                            "got an empty item", s, item, col);
        const char *q = a;
        int neg = *q == '-';
        if (neg) q++;
        long long v = 0;
        int digits = 0, overflow = 0;
        for (; q < b && *q >= '0' && *q <= '9'; q++, digits++) {
            v = v * 10 + (*q - '0');
            if (v > INT_MAX) overflow = 1, v = INT_MAX;
        }
        if (q != b || digits == 0)
            return ct_error("token list \"%s\": item %d (character %d): expected a non-negative "
                            "integer token id, got \"%.*s\"", s, item, col, w, a);
        if (neg || overflow || (vocab > 0 && v >= vocab)) {
            if (vocab > 0)
                return ct_error("token list \"%s\": item %d (character %d): expected a token id "
                                "in [0, %d), got %.*s", s, item, col, vocab, w, a);
            return ct_error("token list \"%s\": item %d (character %d): expected a token id in "
                            "[0, %d], got %.*s", s, item, col, INT_MAX, w, a);
        }
        if (n == max)
            return ct_error("token list \"%s\": item %d (character %d): expected at most %d ids, "
                            "got more", s, item, col, max);
        out[n++] = (int)v;
        if (*e == '\0') break;
        p = e + 1;
    }
    *n_out = n;
    return CT_OK;
}
