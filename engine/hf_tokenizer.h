// hf_tokenizer.h — Hugging Face tokenizers: tokenizer.json and GPT-2 vocab.json + merges.txt.
//
// What loads (anything else fails with a message naming the file, the field, what was found
// and what is supported):
//   tokenizer.json (the `tokenizers` library format) with model.type "BPE":
//     - byte-level BPE (GPT-2, Llama 3, Qwen 2/3): pre_tokenizer ByteLevel and/or Split with a
//       Regex (PCRE2, with Oniguruma's \s), possibly inside a Sequence; merges as "a b" strings
//       or [a, b] pairs; ignore_merges (Llama 3);
//     - SentencePiece-style BPE (Gemma, Llama 2 converted): normalizer Replace " " -> "▁"
//       (optionally with Prepend "▁"), or a Metaspace pre-tokenizer; byte_fallback to <0xHH>
//       pieces, unk_token / fuse_unk;
//     - normalizers Replace, Prepend, NFC (see below), Sequence; pre-tokenizers ByteLevel,
//       Split, Metaspace, Digits, Sequence; post-processors TemplateProcessing, ByteLevel,
//       RobertaProcessing, BertProcessing, Sequence; decoders ByteLevel, Replace, ByteFallback,
//       Fuse, Strip, Metaspace, Sequence.
//     - added_tokens are matched literally before normalization (normalized ones after it),
//       longest match first, honouring lstrip / rstrip / single_word, as HF does.
//   the classic GPT-2 pair: vocab.json or encoder.json + merges.txt or vocab.bpe ("#version"
//     line skipped), in one directory or given as the vocab json path. This reproduces
//     OpenAI's encoder.py: no added tokens, so "<|endoftext|>" in the text is ordinary text
//     (the tokenizer.json of the same vocabulary maps it to special id 50256).
//
// BOS/EOS: tokenizer_encode(bos=1) adds the ids the post-processor puts before the sequence
// (TemplateProcessing "single" / Roberta / Bert cls; or tokenizer_config.json beside
// tokenizer.json with "add_bos_token": true), and nothing when it adds none (GPT-2, Qwen).
// eos=1 likewise adds the ids it puts after the sequence (usually none). The whitespace
// mode of tokenizer_encode_mode is a llama2.c option and is ignored here.
//
// NFC (Qwen's normalizer): this build has no Unicode normalization tables, so encode accepts
// text made only of characters that NFC never changes (Latin, Greek, Cyrillic, CJK, kana,
// Hangul syllables, emoji, common symbols ...) and fails, naming the character, otherwise.
//
// Decoding: tokenizer_decode returns each token's bytes, precomputed at load (byte-level:
// the byte-unicode map reversed; SentencePiece: ▁ -> space, <0xHH> -> the byte). A decoder
// Strip after Fuse, or a Metaspace decoder, drops one leading space of the token that
// follows BOS (run.c's rule). Added/special tokens decode to their content. Ids the model
// has but the tokenizer lacks (padded embeddings) decode to "".
#pragma once
#include "engine/common.h"
#include "engine/tokenizer.h"

struct HfTok;

// Load a Hugging Face tokenizer from path: a tokenizer.json file, a vocab.json/encoder.json
// file (merges.txt / vocab.bpe beside it), or a directory holding either (tokenizer.json
// preferred). vocab_size > 0: the model's vocabulary; a tokenizer id >= vocab_size is an
// error, fewer ids are fine (t->vocab_size becomes the larger of the two). 0 = no check.
int hf_tokenizer_load(Tokenizer *t, const char *path, int vocab_size);
// 1 when path looks like a Hugging Face tokenizer (a directory or a .json file).
int hf_tokenizer_path(const char *path);

// The Tokenizer entry points dispatch here when t->hf is set (engine/tokenizer.c).
int hf_tokenizer_encode(const Tokenizer *t, const char *text, int bos, int eos, int *out,
                        int max_tokens, int *n_out);
const char *hf_tokenizer_decode(const Tokenizer *t, int prev_token, int token);
// The decoded bytes of id (as decode without the after-BOS rule), NULL + error if out of range.
const char *hf_tokenizer_piece(const Tokenizer *t, int id);
void hf_tokenizer_free(struct HfTok *h);

// The raw token string as stored in the file ("Ġworld", "▁the", "<0x0A>", "<|eot_id|>"),
// "" for ids the tokenizer lacks, NULL + error when out of range.
const char *hf_tokenizer_raw_piece(const Tokenizer *t, int id);
// Id of a raw token string (model vocabulary first, then added tokens), -1 if absent.
int hf_tokenizer_token_id(const Tokenizer *t, const char *raw);
// The first id the post-processor adds before / after a sequence, -1 when it adds none.
int hf_tokenizer_bos_id(const Tokenizer *t);
int hf_tokenizer_eos_id(const Tokenizer *t);
