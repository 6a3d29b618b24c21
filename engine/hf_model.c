// hf_model.c — Hugging Face model directories (placeholder until the loader lands).
#include "engine/hf_model.h"

int hf_model_load(Model *m, const char *path) {
    (void)m;
    return ct_error("%s: Hugging Face model directories are not supported by this build", path);
}
