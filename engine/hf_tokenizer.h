// hf_tokenizer.h — Hugging Face tokenizers: tokenizer.json and GPT-2 vocab.json + merges.txt.
#pragma once
#include "engine/common.h"
#include "engine/tokenizer.h"

// Load a Hugging Face tokenizer from path: a tokenizer.json file, a vocab.json/encoder.json
// file (merges.txt / vocab.bpe beside it), or a directory holding either. vocab_size > 0:
// the model's vocabulary; tokens beyond the tokenizer's are rejected as in tokenizer_load.
int hf_tokenizer_load(Tokenizer *t, const char *path, int vocab_size);
// 1 when path looks like a Hugging Face tokenizer (a directory or a .json file).
int hf_tokenizer_path(const char *path);
