// hf_fixtures.h — Hugging Face tokenizer.json files for tests, written from scratch:
//   - a Llama-3 style byte-level BPE (256 byte tokens + merges learned from a built-in text
//     + special tokens, TemplateProcessing adding <|begin_of_text|>);
//   - a Gemma-style SentencePiece BPE (<pad> <eos> <bos> <unk>, <0x00>..<0xFF> byte-fallback
//     pieces, characters, learned merges; normalizer " " -> "▁");
//   - GPT-2's encoder.json + vocab.bpe converted to a tokenizer.json.
// The tiny HF test models (../shared/models/hf-tiny/*) ship no tokenizer; these give them one.
// Merges are learned deterministically: count adjacent pairs over the words of the built-in
// text, merge the most frequent (ties: the smaller (left id, right id)), until the vocabulary
// reaches vocab_size or no pair is left. Every id is < vocab_size.
// Functions return 0, or -1 with a message in ct_errmsg().
#pragma once

typedef struct HfFixtureOpts {
    int vocab_size;      // all ids < vocab_size
    // byte-level only ---------------------------------------------------------------------
    int bos_id, eos_id;  // ids of <|begin_of_text|> / <|end_of_text|>: >= 0 that id (the bytes
                         // and merges fill the other ids in order), -1 the last free ids,
                         // -2 no such token
    int extra_tokens;    // 1: also <|eot_id|> (special) and <think> (added, not special) at
                         // the last free ids
    int add_bos;         // 1: the post-processor adds the BOS (TemplateProcessing)
    int merges_as_pairs; // 1: merges written as ["a", "b"] instead of "a b"
    int ignore_merges;   // 1: "ignore_merges": true (Llama 3)
    int split_regex;     // 1: Sequence[Split(Llama-3 regex), ByteLevel(use_regex false)];
                         // 0: ByteLevel(use_regex true), i.e. the GPT-2 regex
    int nfc;             // 1: normalizer NFC (Qwen 2/3)
    // SentencePiece only ------------------------------------------------------------------
    int prepend;         // 1: Llama-2 style: normalizer Prepend("▁") before Replace, decoder
                         // Strip(" ", 1, 0) after Fuse
} HfFixtureOpts;

// Llama-3 style defaults for vocab_size: bos/eos at the last ids, extra tokens, add_bos,
// split_regex; everything else 0.
void hf_fixture_defaults(HfFixtureOpts *o, int vocab_size);
// Write dir/tokenizer.json (byte-level BPE).
int hf_fixture_bytelevel(const char *dir, const HfFixtureOpts *o);
// Write dir/tokenizer.json (Gemma layout: <pad> 0, <eos> 1, <bos> 2, <unk> 3, <0x00>.. from 4).
// Uses vocab_size, add_bos and prepend.
int hf_fixture_sentencepiece(const char *dir, const HfFixtureOpts *o);
// Convert GPT-2 encoder.json + vocab.bpe into a tokenizer.json at out_path: byte-level BPE,
// the GPT-2 regex as a Split pre-tokenizer, <|endoftext|> as a special added token.
int hf_fixture_gpt2_json(const char *encoder_json, const char *vocab_bpe, const char *out_path,
                         int merges_as_pairs);
// The built-in training text (plain ASCII prose).
const char *hf_fixture_text(void);

// The Llama-3 / GPT-2 pre-tokenizer regexes as written in tokenizer.json files.
#define HF_FIXTURE_LLAMA3_REGEX                                                                    \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define HF_FIXTURE_GPT2_REGEX \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
