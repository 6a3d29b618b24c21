// hf_model.h — Hugging Face model directories: config.json + (sharded) safetensors.
//
// Supported architectures and their per-architecture switches are described in hf_model.c.
#pragma once
#include "engine/model.h"

// Load a Hugging Face model from a directory (or the path of its config.json): config.json,
// model.safetensors or model.safetensors.index.json + shards; f32/bf16/f16 tensors.
// Errors name the file, the field or tensor, what was expected and what was found.
int hf_model_load(Model *m, const char *path);
