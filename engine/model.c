// model.c — llama2.c checkpoints: header validation, memory-mapped weights, random models.
//
// File layout ("version 0", as written by llama2.c export.py --version 0):
//   int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
//   (vocab_size < 0 means an untied classifier follows the RoPE tables)
//   float32 token_embedding (V, D), rms_att (L, D), wq (L, D, D), wk (L, Dkv, D),
//   wv (L, Dkv, D), wo (L, D, D), rms_ffn (L, D), w1 (L, Hd, D), w2 (L, D, Hd),
//   w3 (L, Hd, D), rms_final (D), freq_cis_real (S, Dh/2), freq_cis_imag (S, Dh/2),
//   [wcls (V, D)]
// The legacy RoPE tables are skipped: the forward pass computes RoPE itself.
#include "engine/model.h"
#include "engine/hf_model.h"
#include "engine/quantize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HEADER_INTS 7

// Upper bounds that catch garbage headers before any size arithmetic can overflow.
#define MAX_DIM      (1 << 16)
#define MAX_HIDDEN   (1 << 20)
#define MAX_LAYERS   1024
#define MAX_HEADS    1024
#define MAX_VOCAB    (1 << 24)
#define MAX_SEQ      (1 << 22)

int config_validate(const Config *c, const char *name) {
    struct { const char *field; int v, max; } f[] = {
        {"dim", c->dim, MAX_DIM},         {"hidden_dim", c->hidden_dim, MAX_HIDDEN},
        {"n_layers", c->n_layers, MAX_LAYERS}, {"n_heads", c->n_heads, MAX_HEADS},
        {"n_kv_heads", c->n_kv_heads, MAX_HEADS}, {"vocab_size", c->vocab_size, MAX_VOCAB},
        {"seq_len", c->seq_len, MAX_SEQ},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (f[i].v <= 0 || f[i].v > f[i].max)
            return ct_error("%s: header field %s = %d, expected 1..%d", name, f[i].field, f[i].v,
                            f[i].max);
    }
    if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads != 0)
        return ct_error("%s: header field n_kv_heads = %d must divide n_heads = %d", name,
                        c->n_kv_heads, c->n_heads);
    if (c->arch != ARCH_LLAMA2C) {
        // HF configs give head_dim explicitly (H * Dh may differ from D: Qwen3, Gemma-2)
        if (c->arch < 0 || c->arch >= ARCH_COUNT)
            return ct_error("%s: architecture id %d is unknown", name, c->arch);
        if (c->head_dim <= 0 || c->head_dim > MAX_DIM)
            return ct_error("%s: head_dim = %d, expected 1..%d", name, c->head_dim, MAX_DIM);
        if (c->rope_style != ROPE_NONE && c->head_dim % 2 != 0)
            return ct_error("%s: head_dim = %d must be even for RoPE", name, c->head_dim);
        return CT_OK;
    }
    if (c->dim % c->n_heads != 0)
        return ct_error("%s: header field n_heads = %d must divide dim = %d", name, c->n_heads,
                        c->dim);
    if ((c->dim / c->n_heads) % 2 != 0)
        return ct_error("%s: head width dim/n_heads = %d must be even for RoPE pairs", name,
                        c->dim / c->n_heads);
    return CT_OK;
}

// Number of floats each tensor holds, in file order.  kind 0 = always, 1 = RoPE tables
// (skipped), 2 = untied classifier only.
typedef struct { const char *name; size_t n; int kind; } TensorSize;

static int tensor_sizes(const Config *c, TensorSize out[14]) {
    size_t D = (size_t)c->dim, Hd = (size_t)c->hidden_dim, L = (size_t)c->n_layers;
    size_t V = (size_t)c->vocab_size, S = (size_t)c->seq_len, Dh = (size_t)c->head_dim;
    size_t Dkv = (size_t)c->n_kv_heads * Dh;
    TensorSize t[14] = {
        {"token_embedding", V * D, 0}, {"rms_att", L * D, 0},   {"wq", L * D * D, 0},
        {"wk", L * Dkv * D, 0},        {"wv", L * Dkv * D, 0},  {"wo", L * D * D, 0},
        {"rms_ffn", L * D, 0},         {"w1", L * Hd * D, 0},   {"w2", L * D * Hd, 0},
        {"w3", L * Hd * D, 0},         {"rms_final", D, 0},     {"freq_cis_real", S * Dh / 2, 1},
        {"freq_cis_imag", S * Dh / 2, 1}, {"wcls", c->shared_classifier ? 0 : V * D, 2},
    };
    memcpy(out, t, sizeof t);
    return 14;
}

size_t model_param_count(const Config *c) {
    if (c->arch != ARCH_LLAMA2C) {
        // every tensor the HF loader fills (see the Weights comments)
        size_t D = (size_t)c->dim, Hd = (size_t)c->hidden_dim, L = (size_t)c->n_layers;
        size_t V = (size_t)c->vocab_size, Dh = (size_t)c->head_dim;
        size_t Dq = (size_t)c->n_heads * Dh, Dkv = (size_t)c->n_kv_heads * Dh;
        size_t nb = c->norm_kind == NORM_LAYER ? 2 : 1;          // gain (+ bias)
        size_t gated = c->mlp_kind != MLP_GELU_TANH;
        size_t layer = 2 * nb * D + Dq * D + 2 * Dkv * D + D * Dq + (1 + gated) * Hd * D + D * Hd;
        if (c->attn_bias) layer += Dq + 2 * Dkv + D;
        if (c->mlp_bias) layer += (1 + gated) * Hd + D;
        if (c->qk_norm) layer += 2 * Dh;
        if (c->post_norms) layer += 2 * D;
        size_t n = V * D + L * layer + nb * D;
        if (c->learned_pos) n += (size_t)c->seq_len * D;
        if (!c->shared_classifier) n += V * D;
        return n;
    }
    TensorSize t[14];
    size_t n = 0;
    for (int i = 0, k = tensor_sizes(c, t); i < k; i++)
        if (t[i].kind != 1) n += t[i].n;
    return n;
}

const char *model_arch_name(int arch) {
    static const char *names[ARCH_COUNT] = {"llama2.c", "llama", "qwen3", "gemma2", "gpt2"};
    return arch >= 0 && arch < ARCH_COUNT ? names[arch] : "unknown";
}

const char *model_tc_input_hook(const Config *c) {
    return c->post_norms ? "ln2.hook_normalized" : "hook_resid_mid";
}

void model_embed(const Model *m, int tok, int pos, float *out) {
    const Config *c = &m->c;
    size_t D = (size_t)c->dim;
    const float *e = out;
    if (m->w.token_embedding) e = m->w.token_embedding + (size_t)tok * D;
    else   // int8-only open of a tied q8 checkpoint: the row from its blocks
        q8_dequantize_row(out, m->q8->src_emb + (size_t)tok * q8_nblocks(D), D);
    if (c->embed_scale != 0.0f) {   // Gemma: HF multiplies by the normaliser in the model dtype
        for (size_t i = 0; i < D; i++) out[i] = e[i] * c->embed_scale;
    } else if (e != out) {
        memcpy(out, e, D * sizeof(float));
    }
    if (c->learned_pos && m->w.pos_embedding) {   // GPT-2: wte[tok] + wpe[pos]
        const float *pe = m->w.pos_embedding + (size_t)pos * D;
        for (size_t i = 0; i < D; i++) out[i] = out[i] + pe[i];
    }
}

// Parse and validate the header; the config gets derived fields filled in.
static int parse_header(Config *c, const uint8_t *data, size_t size, const char *name) {
    if (size < HEADER_INTS * sizeof(int32_t))
        return ct_error("%s: file is %zu bytes, shorter than the 28-byte llama2.c header; is "
                        "this a llama2.c checkpoint?", name, size);
    int32_t h[HEADER_INTS];
    memcpy(h, data, sizeof h);
    memset(c, 0, sizeof *c);
    c->dim = h[0];
    c->hidden_dim = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    c->shared_classifier = h[5] > 0;
    c->vocab_size = h[5] == INT32_MIN ? 0 : abs(h[5]);
    c->seq_len = h[6];
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    if (config_validate(c, name) != CT_OK) return CT_ERR;
    c->head_dim = c->dim / c->n_heads;
    return CT_OK;
}

// Point the weights at consecutive tensors starting at p; checks the file holds them all.
static int map_weights(Model *m, const uint8_t *data, size_t size, const char *name) {
    TensorSize t[14];
    int k = tensor_sizes(&m->c, t);
    size_t need = HEADER_INTS * sizeof(int32_t);
    for (int i = 0; i < k; i++) need += t[i].n * sizeof(float);
    if (size < need)
        return ct_error("%s: file is %zu bytes but its header (dim=%d hidden_dim=%d n_layers=%d "
                        "n_heads=%d n_kv_heads=%d vocab_size=%d%s seq_len=%d) promises %zu bytes; "
                        "truncated download?", name, size, m->c.dim, m->c.hidden_dim,
                        m->c.n_layers, m->c.n_heads, m->c.n_kv_heads, m->c.vocab_size,
                        m->c.shared_classifier ? "" : " untied", m->c.seq_len, need);
    const float *p = (const float *)(data + HEADER_INTS * sizeof(int32_t));
    const float **dst[14] = {&m->w.token_embedding, &m->w.rms_att, &m->w.wq, &m->w.wk,
                             &m->w.wv, &m->w.wo, &m->w.rms_ffn, &m->w.w1, &m->w.w2, &m->w.w3,
                             &m->w.rms_final, NULL, NULL, &m->w.wcls};
    for (int i = 0; i < k; i++) {
        if (dst[i]) *dst[i] = p;
        p += t[i].n;
    }
    if (m->c.shared_classifier) m->w.wcls = m->w.token_embedding;
    return CT_OK;
}

static int load_llama2c(Model *m, const char *path, int flags) {
    memset(m, 0, sizeof *m);
    if (ct_map_file(&m->file, path) != CT_OK) return CT_ERR;
    if (model_file_is_q8(m->file.data, m->file.size)) {   // `ctrace quantize` output
        if (model_load_q8_mapped(m, path, !(flags & MODEL_OPEN_INT8_ONLY)) != CT_OK) {
            ct_unmap_file(&m->file);
            return CT_ERR;
        }
        return CT_OK;
    }
    // The mapping is only guaranteed 4-byte aligned data after the 28-byte header; floats
    // need 4, which mmap's page alignment plus 28 gives.
    if (parse_header(&m->c, m->file.data, m->file.size, path) != CT_OK ||
        map_weights(m, m->file.data, m->file.size, path) != CT_OK) {
        ct_unmap_file(&m->file);
        return CT_ERR;
    }
    m->fingerprint = ct_hash64(m->file.data, m->file.size);
    return CT_OK;
}

int model_load_llama2c(Model *m, const char *path) { return load_llama2c(m, path, 0); }

int model_path_is_hf(const char *path) {
    struct stat st;
    if (!path) return 0;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 1;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    return strcmp(base, "config.json") == 0;
}

int model_open_flags(Model *m, const char *path, int flags) {
    if (!path) return ct_error("model: path: expected a file or directory name, got NULL");
    if (model_path_is_hf(path)) return hf_model_load(m, path);
    return load_llama2c(m, path, flags);
}

int model_open(Model *m, const char *path) { return model_open_flags(m, path, 0); }

int model_from_llama2c_bytes(Model *m, const void *bytes, size_t n, const char *name) {
    memset(m, 0, sizeof *m);
    m->owned = malloc(n ? n : 1);
    if (!m->owned) return ct_error("%s: out of memory (%zu bytes)", name, n);
    memcpy(m->owned, bytes, n);
    const uint8_t *data = (const uint8_t *)m->owned;
    if (parse_header(&m->c, data, n, name) != CT_OK || map_weights(m, data, n, name) != CT_OK) {
        free(m->owned);
        m->owned = NULL;
        return CT_ERR;
    }
    m->fingerprint = ct_hash64(data, n);
    return CT_OK;
}

void model_free(Model *m) {
    model_q8_free(m);
    ct_unmap_file(&m->file);
    free(m->owned);
    memset(m, 0, sizeof *m);
}

// ---- random checkpoints ---------------------------------------------------------------------
// splitmix64: a tiny, well-mixed generator; the seed is explicit so files are reproducible.
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float uniform_pm1(uint64_t *s) { return (float)((splitmix64(s) >> 40) * (2.0 / 16777216.0) - 1.0); }

// Weights ~ U(-a, a) with a = sqrt(3 / fan_in) (unit-variance outputs), gains 1: activations
// stay O(1) through any depth, so benchmarks see realistic numbers, not NaNs or zeros.
int model_write_random(const char *path, const Config *cin, uint64_t seed) {
    Config c = *cin;
    if (config_validate(&c, path) != CT_OK) return CT_ERR;
    c.head_dim = c.dim / c.n_heads;
    TensorSize t[14];
    int k = tensor_sizes(&c, t);
    AtomicFile af;
    if (ct_atomic_open(&af, path) != CT_OK) return CT_ERR;
    int32_t h[HEADER_INTS] = {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads,
                              c.shared_classifier ? c.vocab_size : -c.vocab_size, c.seq_len};
    fwrite(h, sizeof h, 1, af.f);
    uint64_t s = seed;
    enum { CHUNK = 1 << 16 };
    float *buf = malloc(CHUNK * sizeof(float));
    for (int i = 0; i < k; i++) {
        const char *nm = t[i].name;
        int is_gain = !strcmp(nm, "rms_att") || !strcmp(nm, "rms_ffn") || !strcmp(nm, "rms_final");
        size_t fan_in = !strcmp(nm, "w2") ? (size_t)c.hidden_dim : (size_t)c.dim;
        float a = !strcmp(nm, "token_embedding") || !strcmp(nm, "wcls") ? 1.0f
                                                                        : sqrtf(3.0f / (float)fan_in);
        for (size_t done = 0; done < t[i].n;) {
            size_t n = t[i].n - done < CHUNK ? t[i].n - done : CHUNK;
            for (size_t j = 0; j < n; j++) buf[j] = is_gain ? 1.0f : t[i].kind == 1 ? 0.0f : a * uniform_pm1(&s);
            fwrite(buf, sizeof(float), n, af.f);
            done += n;
        }
    }
    free(buf);
    return ct_atomic_commit(&af);
}
