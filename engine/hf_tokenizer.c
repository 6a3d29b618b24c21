// hf_tokenizer.c — Hugging Face tokenizers (placeholder until the loader lands).
#include "engine/hf_tokenizer.h"

#include <string.h>
#include <sys/stat.h>

int hf_tokenizer_path(const char *path) {
    struct stat st;
    if (!path) return 0;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 1;
    size_t n = strlen(path);
    return n >= 5 && strcmp(path + n - 5, ".json") == 0;
}

int hf_tokenizer_load(Tokenizer *t, const char *path, int vocab_size) {
    (void)vocab_size;
    memset(t, 0, sizeof *t);
    return ct_error("%s: Hugging Face tokenizers are not supported by this build", path);
}
