// tokenizer.h — the llama2.c tokenizer: load tokenizer.bin, encode text to ids, decode ids.
//
// File format (llama2.c tokenizer.bin, little-endian, no magic):
//   int32 max_token_length
//   then for each id 0..V-1:  float32 score, int32 byte length n, n raw bytes (no terminator)
// V is not stored: it comes from the model header (pass it to tokenizer_load), or 0 to read
// tokens until the end of the file. llama2.c export conventions: id 0 "<unk>", id 1 BOS
// stored as "\n<s>\n", id 2 EOS stored as "\n</s>\n", ids 3..258 the byte-fallback pieces
// "<0x00>".."<0xFF>" (id = 3 + byte), then BPE pieces with U+2581 already turned into ' '.
//
// Encoding follows llama2.c run.c encode(): [BOS] + dummy-prefix " " (only for non-empty
// text) + one token per UTF-8 codepoint (byte fallback id = byte + 3 when the codepoint is
// not a piece) + greedy BPE: repeatedly merge the adjacent pair whose concatenation is a
// piece with the highest score (leftmost on ties) + [EOS]. Merges use a binary heap over a
// linked list of symbols, so encoding is O(n log n) in the text length (run.c rescans every
// pair after every merge: O(n^2)); the ids are identical. When no piece holds a space after
// a non-space byte (SentencePiece vocabularies), each word gets its own small heap.
//
// Whitespace: TOK_WS_RUNC (the default) keeps every space, exactly as run.c does, so a
// leading, trailing or repeated space becomes its own " " token. TOK_WS_SENTENCEPIECE
// applies SentencePiece's default normalizer (remove_extra_whitespaces with the identity
// rule, which is what tok512.model uses): drop leading and trailing U+0020 spaces, collapse
// runs of U+0020 to one; tabs, newlines and other whitespace are left untouched. It also
// replaces malformed UTF-8 bytes by U+FFFD and keeps byte/control pieces out of merges, as
// SentencePiece does. The model was trained on SentencePiece output; the goldens and run.c
// use the run.c form.
//
// A loaded Tokenizer is read-only: encode/decode may run on it from several threads at once
// (encode allocates its scratch per call).
#pragma once
#include <stdint.h>
#include <stdio.h>

enum {
    TOK_WS_RUNC = 0,          // run.c encode(): spaces kept verbatim (default)
    TOK_WS_SENTENCEPIECE = 1, // SentencePiece default normalizer: strip + collapse U+0020 runs
};

#define TOK_BOS 1
#define TOK_EOS 2
#define TOK_BYTE0 3           // byte-fallback id of byte b is TOK_BYTE0 + b

typedef struct Tokenizer {
    int vocab_size;           // V
    int max_token_length;     // from the file header; every piece is at most this long
    int max_piece_len;        // longest piece actually stored (bounds merge candidates)
    int word_split;           // 1 if no piece holds a space right after a non-space byte, so
                              // BPE can run word by word (true for SentencePiece vocabularies)
    char **vocab;             // (V) NUL-terminated pieces, exactly as stored
    int *piece_len;           // (V) byte length of each piece
    float *scores;            // (V) merge priority: the higher, the earlier a pair merges
    int16_t *byte_val;        // (V) b if the piece is "<0xHH>" (HH = b), else -1
    uint8_t *is_normal;       // (V) 1 for BPE pieces; 0 for <unk>, BOS, EOS and byte pieces
    int *hash_ids;            // (hash_mask+1) open-addressing table piece -> id, -1 = empty
    uint32_t hash_mask;
    unsigned char byte_pieces[512]; // 256 one-byte strings "b\0" that decode returns
    char *blob;               // one allocation holding every piece
    char *path;               // file name, for error messages
    struct HfTok *hf;         // set for a Hugging Face tokenizer (engine/hf_tokenizer.h): then
                              // only vocab_size, max_token_length and path above are filled,
                              // and encode/decode/piece/free dispatch to hf_tokenizer.c
} Tokenizer;

// Load tokenizer.bin. vocab_size > 0: the file must hold exactly that many tokens;
// vocab_size == 0: read tokens until the end of the file. 0 on success, -1 via ct_error
// (messages name the file, the token id, the field, what was expected and what was found).
int tokenizer_load(Tokenizer *t, const char *path, int vocab_size);
void tokenizer_free(Tokenizer *t);
// The tokenizer a subcommand uses: tok_path when given (a llama2.c tokenizer.bin, or a
// Hugging Face tokenizer.json / vocab.json+merges.txt / directory: engine/hf_tokenizer.h);
// otherwise the one inside the Hugging Face model directory model_path. vocab_size as in
// tokenizer_load (0 = no check). Fails with a clear message when neither gives one.
int tokenizer_open(Tokenizer *t, const char *tok_path, const char *model_path, int vocab_size);

// Encode like run.c encode() (TOK_WS_RUNC). bos/eos: nonzero to add id 1 / id 2. Writes at
// most max_tokens ids to out; when the text needs more it fails with an error giving both
// numbers and sets *n_out to the count it would need (out is then left untouched).
int tokenizer_encode(const Tokenizer *t, const char *text, int bos, int eos, int *out,
                     int max_tokens, int *n_out);
// The same with an explicit whitespace mode (TOK_WS_RUNC or TOK_WS_SENTENCEPIECE).
int tokenizer_encode_mode(const Tokenizer *t, const char *text, int bos, int eos, int mode,
                          int *out, int max_tokens, int *n_out);

// run.c decode(prev, token): the piece to print for token. After BOS (prev_token == 1) a
// leading space is dropped; "<0xHH>" pieces become the raw byte (byte 0 decodes to "").
// Returns a pointer into t (valid until tokenizer_free), or NULL with an error when token
// is outside [0, V).
const char *tokenizer_decode(const Tokenizer *t, int prev_token, int token);
// run.c safe_printf(): print piece, except a single byte that is neither printable ASCII
// nor whitespace (C-locale isprint/isspace; this includes lone bytes >= 0x80, as run.c).
void tokenizer_print_piece(FILE *f, const char *piece);

int tokenizer_vocab_size(const Tokenizer *t);
// The id encode(bos=1) puts first / encode(eos=1) puts last: TOK_BOS / TOK_EOS for llama2.c;
// for a Hugging Face tokenizer what its post-processor adds, or -1 when it adds none (GPT-2).
int tokenizer_bos_id(const Tokenizer *t);
int tokenizer_eos_id(const Tokenizer *t);
// The token that ends generation: BOS for llama2.c models (run.c stops there), EOS for
// Hugging Face tokenizers; -1 when there is none.
int tokenizer_stop_id(const Tokenizer *t);
// The token a story / a training window starts with: BOS, or for tokenizers without one
// (GPT-2, Qwen) the EOS that separates their documents (<|endoftext|>), else 0.
int tokenizer_start_id(const Tokenizer *t);
// The raw stored piece of id (spaces, not U+2581), or NULL with an error if out of range.
const char *tokenizer_piece(const Tokenizer *t, int id);

// Parse a comma-separated id list such as "1,403,407" (spaces around items allowed) into
// out (at most max ids). Each item must be a decimal integer in [0, vocab); with vocab <= 0
// only the upper bound is not checked. Errors name the item's position and the text found.
int tokens_parse_list(const char *s, int vocab, int *out, int max, int *n_out);
