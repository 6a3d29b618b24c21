// hf_model.h — Hugging Face model directories: config.json + (sharded) safetensors.
//
// Supported: LlamaForCausalLM (Llama-2/3, optional llama3 rope_scaling), Qwen3ForCausalLM,
// Gemma2ForCausalLM, GPT2LMHeadModel.  The per-architecture switches they set are in
// engine/model.h (Config); the tensor names and the conversions are in hf_model.c.
#pragma once
#include "engine/model.h"

// Load a Hugging Face model from a directory (or the path of its config.json): config.json,
// model.safetensors or model.safetensors.index.json + shards; F32/BF16/F16 tensors, converted
// to fp32 into memory the Model owns (model_free releases it).  Tied embeddings
// (tie_word_embeddings, HF's per-class default when absent) share the token embedding.
// Errors name the file, the field or tensor, what was expected and what was found; an
// unsupported architecture lists the supported ones.
int hf_model_load(Model *m, const char *path);
