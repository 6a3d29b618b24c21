// hf_model.c — Hugging Face model directories: config.json + model.safetensors (or
// model.safetensors.index.json + shards), for four architectures, into the engine's Model.
//
//   architectures[0]     model_type  what the forward does differently from llama2.c (model.h)
//   LlamaForCausalLM     llama       rotate-half RoPE, optional "llama3" rope_scaling, optional
//                                    attention_bias / mlp_bias, scores * Dh^-0.5
//   Qwen3ForCausalLM     qwen3       Llama + q_norm / k_norm (RMSNorm per head, before RoPE)
//   Gemma2ForCausalLM    gemma2      (1+w) RMSNorm gains (stored as 1+w here), post-attention and
//                                    post-MLP norms, embedding * sqrt(D), GeGLU (gelu_tanh),
//                                    scores * query_pre_attn_scalar^-0.5, attention and final
//                                    soft-caps, sliding window on even layers
//   GPT2LMHeadModel      gpt2        LayerNorm with bias, learned position embedding, biases on
//                                    every linear, fused c_attn, Conv1D weights stored [in, out]
//                                    (transposed here), gelu_new MLP, no RoPE
//
// Every tensor is converted to fp32 (F32, BF16 and F16 are read) into one owned allocation laid
// out as the Weights comments say: (L, rows, cols) per matrix, [out, in] row-major.  Config
// fields that HF's config classes default are optional here with the same defaults; the
// dimensions are required.  Errors name config.json or the safetensors file, the field or
// tensor, what was expected and what was found.
//
// Fingerprint: xxh3-64 folded over config.json's bytes and, for every tensor in load order,
// its name, dtype, shape and bytes — so a sharded copy has the fingerprint of the single file.
#include "engine/hf_model.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/safetensors.h"

#define SUPPORTED "LlamaForCausalLM (llama), Qwen3ForCausalLM (qwen3), Gemma2ForCausalLM (gemma2), GPT2LMHeadModel (gpt2)"

// ---- config.json -------------------------------------------------------------------------------
typedef struct Cfg {
    json_t *root;
    const char *path;   // config.json path, for messages
    const char *cls;    // architecture class name, for messages
} Cfg;

// Field `key`, or NULL when absent or JSON null (HF writes null for "use the default").
static json_t *cfg_get(const Cfg *c, const char *key) {
    json_t *v = json_object_get(c->root, key);
    return v && !json_is_null(v) ? v : NULL;
}

static int cfg_missing(const Cfg *c, const char *key) {
    return ct_error("%s: missing field \"%s\" (%s needs it)", c->path, key, c->cls);
}

// Integer field in [lo, hi]; required or with a default.
static int cfg_int(const Cfg *c, const char *key, int required, long dflt, long lo, long hi, int *out) {
    json_t *v = cfg_get(c, key);
    if (!v) {
        if (required) return cfg_missing(c, key);
        *out = (int)dflt;
        return CT_OK;
    }
    if (!json_is_integer(v))
        return ct_error("%s: field \"%s\" must be an integer, got %s", c->path, key,
                        json_is_string(v) ? json_string_value(v) : "another JSON type");
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return ct_error("%s: field \"%s\" = %lld, expected %ld..%ld", c->path, key, (long long)x, lo, hi);
    *out = (int)x;
    return CT_OK;
}

// Number field (integer or real), finite and >= 0; required or with a default.
static int cfg_num(const Cfg *c, const char *key, int required, double dflt, double *out) {
    json_t *v = cfg_get(c, key);
    if (!v) {
        if (required) return cfg_missing(c, key);
        *out = dflt;
        return CT_OK;
    }
    if (!json_is_number(v)) return ct_error("%s: field \"%s\" must be a number", c->path, key);
    *out = json_number_value(v);
    if (!isfinite(*out) || *out < 0)
        return ct_error("%s: field \"%s\" = %g, expected a finite non-negative number", c->path, key, *out);
    return CT_OK;
}

static int cfg_bool(const Cfg *c, const char *key, int dflt, int *out) {
    json_t *v = cfg_get(c, key);
    if (!v) {
        *out = dflt;
        return CT_OK;
    }
    if (!json_is_boolean(v)) return ct_error("%s: field \"%s\" must be true or false", c->path, key);
    *out = json_is_true(v);
    return CT_OK;
}

// String field that must be one of the accepted values (NULL-terminated list) when present.
static int cfg_choice(const Cfg *c, const char *key, const char *const *ok, const char *why) {
    json_t *v = cfg_get(c, key);
    if (!v) return CT_OK;
    const char *s = json_string_value(v);
    for (int i = 0; s && ok[i]; i++)
        if (!strcmp(s, ok[i])) return CT_OK;
    return ct_error("%s: field \"%s\" = %s is not supported for %s (%s)", c->path, key, s ? s : "(not a string)",
                    c->cls, why);
}

// rope_scaling: null, {"rope_type": "default"} or {"rope_type": "llama3", factor, low_freq_factor,
// high_freq_factor, original_max_position_embeddings}.
static int cfg_rope_scaling(const Cfg *c, Config *cf) {
    json_t *rs = cfg_get(c, "rope_scaling");
    if (!rs) return CT_OK;
    if (!json_is_object(rs)) return ct_error("%s: field \"rope_scaling\" must be an object or null", c->path);
    json_t *ty = json_object_get(rs, "rope_type");
    if (!ty) ty = json_object_get(rs, "type");   // older configs
    const char *t = json_string_value(ty);
    if (!t || !strcmp(t, "default")) return CT_OK;
    if (strcmp(t, "llama3"))
        return ct_error("%s: rope_scaling.rope_type = %s is not supported (supported: llama3, default)", c->path, t);
    Cfg sub = {rs, c->path, c->cls};
    const char *keys[4] = {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"};
    double v[4];
    for (int i = 0; i < 4; i++) {
        if (!json_object_get(rs, keys[i]))
            return ct_error("%s: missing field \"rope_scaling.%s\" (llama3 rope scaling needs it)", c->path, keys[i]);
        if (cfg_num(&sub, keys[i], 1, 0, &v[i]) != CT_OK) return CT_ERR;
        if (!(v[i] > 0)) return ct_error("%s: rope_scaling.%s must be > 0", c->path, keys[i]);
    }
    if (!(v[2] > v[1]))
        return ct_error("%s: rope_scaling: high_freq_factor (%g) must exceed low_freq_factor (%g)", c->path, v[2], v[1]);
    cf->rope_llama3 = 1;
    cf->rope_factor = (float)v[0], cf->rope_low_freq = (float)v[1];
    cf->rope_high_freq = (float)v[2], cf->rope_orig_ctx = (float)v[3];
    return CT_OK;
}

#define MAXI 0x7fffffffL

// Fill the Config of one architecture from config.json.
static int parse_config(const Cfg *c, int arch, Config *cf) {
    memset(cf, 0, sizeof *cf);
    cf->arch = arch;
    double eps, theta = 10000.0;
    int tie;
    if (arch == ARCH_GPT2) {
        if (cfg_int(c, "n_embd", 1, 0, 1, MAXI, &cf->dim) || cfg_int(c, "n_layer", 1, 0, 1, MAXI, &cf->n_layers) ||
            cfg_int(c, "n_head", 1, 0, 1, MAXI, &cf->n_heads) || cfg_int(c, "vocab_size", 1, 0, 1, MAXI, &cf->vocab_size) ||
            cfg_int(c, "n_positions", 0, 1024, 1, MAXI, &cf->seq_len) ||
            cfg_num(c, "layer_norm_epsilon", 0, 1e-5, &eps) || cfg_bool(c, "tie_word_embeddings", 1, &tie))
            return CT_ERR;
        if (cfg_int(c, "n_inner", 0, 4L * cf->dim, 1, MAXI, &cf->hidden_dim) != CT_OK) return CT_ERR;
        if (cf->dim % cf->n_heads)
            return ct_error("%s: n_head = %d must divide n_embd = %d", c->path, cf->n_heads, cf->dim);
        static const char *const act[] = {"gelu_new", "gelu_pytorch_tanh", NULL};
        if (cfg_choice(c, "activation_function", act, "ctrace runs the tanh-approximated gelu") != CT_OK) return CT_ERR;
        int by_layer, scale;
        if (cfg_bool(c, "scale_attn_by_inverse_layer_idx", 0, &by_layer) || cfg_bool(c, "scale_attn_weights", 1, &scale))
            return CT_ERR;
        if (by_layer)
            return ct_error("%s: scale_attn_by_inverse_layer_idx = true is not supported", c->path);
        cf->n_kv_heads = cf->n_heads;
        cf->head_dim = cf->dim / cf->n_heads;
        cf->norm_kind = NORM_LAYER;
        cf->rope_style = ROPE_NONE;
        cf->mlp_kind = MLP_GELU_TANH;
        cf->learned_pos = 1;
        cf->attn_bias = cf->mlp_bias = 1;
        cf->attn_scale = scale ? 0.0f : 1.0f;   // 0: scores / sqrt(Dh) as GPT-2 does
    } else {
        if (cfg_int(c, "hidden_size", 1, 0, 1, MAXI, &cf->dim) ||
            cfg_int(c, "intermediate_size", 1, 0, 1, MAXI, &cf->hidden_dim) ||
            cfg_int(c, "num_hidden_layers", 1, 0, 1, MAXI, &cf->n_layers) ||
            cfg_int(c, "num_attention_heads", 1, 0, 1, MAXI, &cf->n_heads) ||
            cfg_int(c, "vocab_size", 1, 0, 1, MAXI, &cf->vocab_size))
            return CT_ERR;
        // HF class defaults for the optional fields
        long kv_d = arch == ARCH_GEMMA2 ? 4 : cf->n_heads;
        long dh_d = arch == ARCH_GEMMA2 ? 256 : cf->dim / cf->n_heads;
        long ctx_d = arch == ARCH_QWEN3 ? 32768 : arch == ARCH_GEMMA2 ? 8192 : 2048;
        if (cfg_int(c, "num_key_value_heads", 0, kv_d, 1, MAXI, &cf->n_kv_heads) ||
            cfg_int(c, "head_dim", 0, dh_d, 1, MAXI, &cf->head_dim) ||
            cfg_int(c, "max_position_embeddings", 0, ctx_d, 1, MAXI, &cf->seq_len) ||
            cfg_num(c, "rms_norm_eps", 0, 1e-6, &eps) || cfg_num(c, "rope_theta", 0, 10000.0, &theta) ||
            cfg_bool(c, "tie_word_embeddings", arch == ARCH_GEMMA2, &tie) ||
            cfg_bool(c, "attention_bias", 0, &cf->attn_bias))
            return CT_ERR;
        if (cfg_get(c, "head_dim") == NULL && arch != ARCH_GEMMA2 && cf->dim % cf->n_heads)
            return ct_error("%s: num_attention_heads = %d must divide hidden_size = %d (no head_dim given)", c->path,
                            cf->n_heads, cf->dim);
        if (!(theta > 0)) return ct_error("%s: rope_theta must be > 0", c->path);
        cf->rope_style = ROPE_HALF;
        cf->attn_scale = (float)pow((double)cf->head_dim, -0.5);
        if (arch == ARCH_LLAMA) {
            static const char *const act[] = {"silu", NULL};
            if (cfg_choice(c, "hidden_act", act, "ctrace runs SwiGLU") || cfg_bool(c, "mlp_bias", 0, &cf->mlp_bias) ||
                cfg_rope_scaling(c, cf))
                return CT_ERR;
            cf->mlp_kind = MLP_SWIGLU;
        } else if (arch == ARCH_QWEN3) {
            static const char *const act[] = {"silu", NULL};
            int sw;
            if (cfg_choice(c, "hidden_act", act, "ctrace runs SwiGLU") || cfg_bool(c, "use_sliding_window", 0, &sw) ||
                cfg_rope_scaling(c, cf))
                return CT_ERR;
            if (sw) return ct_error("%s: use_sliding_window = true is not supported for %s", c->path, c->cls);
            cf->mlp_kind = MLP_SWIGLU;
            cf->qk_norm = 1;
        } else {   // Gemma-2
            static const char *const act[] = {"gelu_pytorch_tanh", "gelu_tanh", "gelu_new", NULL};
            double qpas, acap = 50.0, fcap = 30.0;
            if (cfg_choice(c, "hidden_activation", act, "ctrace runs the tanh-approximated GeGLU") ||
                cfg_num(c, "query_pre_attn_scalar", 0, 256, &qpas) ||
                cfg_int(c, "sliding_window", 0, 4096, 1, MAXI, &cf->sliding_window))
                return CT_ERR;
            // soft-caps: absent -> the class default; null -> none
            json_t *v = json_object_get(c->root, "attn_logit_softcapping");
            if (v && json_is_null(v)) acap = 0;
            else if (cfg_num(c, "attn_logit_softcapping", 0, 50.0, &acap) != CT_OK) return CT_ERR;
            v = json_object_get(c->root, "final_logit_softcapping");
            if (v && json_is_null(v)) fcap = 0;
            else if (cfg_num(c, "final_logit_softcapping", 0, 30.0, &fcap) != CT_OK) return CT_ERR;
            if (!(qpas > 0)) return ct_error("%s: query_pre_attn_scalar must be > 0", c->path);
            if (cfg_get(c, "rope_scaling")) return ct_error("%s: rope_scaling is not supported for %s", c->path, c->cls);
            cf->mlp_kind = MLP_GEGLU_TANH;
            cf->post_norms = 1;
            cf->embed_scale = (float)sqrt((double)cf->dim);   // HF: the normaliser in the model dtype (fp32)
            cf->attn_scale = (float)pow(qpas, -0.5);
            cf->attn_softcap = (float)acap;
            cf->final_softcap = (float)fcap;
        }
    }
    cf->norm_eps = (float)eps;
    cf->rope_theta = (float)theta;
    cf->shared_classifier = tie;
    if (cf->n_kv_heads > cf->n_heads || cf->n_heads % cf->n_kv_heads)
        return ct_error("%s: num_key_value_heads = %d must divide num_attention_heads = %d", c->path, cf->n_kv_heads,
                        cf->n_heads);
    return config_validate(cf, c->path);
}

// ---- safetensors sources: one file or an index with shards ---------------------------------------
typedef struct Src {
    int n;              // shards
    StFile *f;          // (n)
    char **fname;       // (n) shard file names as the index writes them
    json_t *index;      // the parsed index (sharded), else NULL
    json_t *wmap;       // its weight_map
    char *where;        // the file that names tensors (model.safetensors or the index), for messages
} Src;

static void src_close(Src *s) {
    for (int i = 0; i < s->n; i++) {
        st_close(&s->f[i]);
        free(s->fname[i]);
    }
    free(s->f);
    free(s->fname);
    if (s->index) json_decref(s->index);
    free(s->where);
    memset(s, 0, sizeof *s);
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int src_open(Src *s, const char *dir) {
    memset(s, 0, sizeof *s);
    char *idx = join(dir, "model.safetensors.index.json"), *one = join(dir, "model.safetensors");
    if (!idx || !one) {
        free(idx), free(one);
        return ct_error("out of memory");
    }
    int rc = CT_ERR;
    if (file_exists(idx)) {
        s->where = idx;
        idx = NULL;
        json_error_t err;
        s->index = json_load_file(s->where, 0, &err);
        if (!s->index) {
            ct_error("%s: not valid JSON (line %d, column %d: %s)", s->where, err.line, err.column, err.text);
            goto out;
        }
        s->wmap = json_object_get(s->index, "weight_map");
        if (!json_is_object(s->wmap) || json_object_size(s->wmap) == 0) {
            ct_error("%s: missing field \"weight_map\" (an object mapping tensor names to shard files)", s->where);
            goto out;
        }
        size_t cap = json_object_size(s->wmap);
        s->f = calloc(cap, sizeof *s->f);
        s->fname = calloc(cap, sizeof *s->fname);
        if (!s->f || !s->fname) {
            ct_error("out of memory");
            goto out;
        }
        const char *key;
        json_t *v;
        json_object_foreach(s->wmap, key, v) {
            const char *fn = json_string_value(v);
            if (!fn || !*fn || strchr(fn, '/')) {
                ct_error("%s: weight_map[\"%s\"] must be a shard file name in the same directory", s->where, key);
                goto out;
            }
            int seen = 0;
            for (int i = 0; i < s->n && !seen; i++) seen = !strcmp(s->fname[i], fn);
            if (seen) continue;
            char *p = join(dir, fn);
            if (!p || !(s->fname[s->n] = strdup(fn))) {
                free(p);
                ct_error("out of memory");
                goto out;
            }
            if (st_open(&s->f[s->n], p) != CT_OK) {
                ct_error_ctx("%s: weight_map names shard %s (for tensor %s), which cannot be opened", s->where, fn, key);
                free(s->fname[s->n]);
                free(p);
                goto out;
            }
            free(p);
            s->n++;
        }
    } else if (file_exists(one)) {
        s->where = one;
        one = NULL;
        s->f = calloc(1, sizeof *s->f);
        s->fname = calloc(1, sizeof *s->fname);
        if (!s->f || !s->fname || !(s->fname[0] = strdup("model.safetensors"))) {
            ct_error("out of memory");
            goto out;
        }
        if (st_open(&s->f[0], s->where) != CT_OK) {
            free(s->fname[0]);
            goto out;
        }
        s->n = 1;
    } else {
        ct_error("%s: no model.safetensors or model.safetensors.index.json in this directory", dir);
        goto out;
    }
    rc = CT_OK;
out:
    free(idx), free(one);
    if (rc != CT_OK) src_close(s);
    return rc;
}

// The tensor `name` and its file, or NULL (no error set).
static const StTensor *src_find(const Src *s, const char *name, const StFile **file) {
    if (!s->index) {
        *file = &s->f[0];
        return st_find(&s->f[0], name);
    }
    const char *fn = json_string_value(json_object_get(s->wmap, name));
    if (!fn) return NULL;
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->fname[i], fn)) {
            *file = &s->f[i];
            return st_find(&s->f[i], name);
        }
    return NULL;
}

// ---- loading tensors -------------------------------------------------------------------------------
typedef enum { TR_COPY = 0, TR_PLUS1, TR_TRANSPOSE } Transform;

typedef struct Loader {
    Src src;
    const Config *c;
    const char *cls;
    uint64_t h;          // running fingerprint
    int dtype_seen;      // bit per StDtype
    size_t bytes;        // tensor bytes read
    float *tmp;          // conversion scratch (largest tensor)
    size_t tmp_n;
} Loader;

static int ensure_tmp(Loader *ld, size_t n) {
    if (n <= ld->tmp_n) return CT_OK;
    float *p = realloc(ld->tmp, n * sizeof(float));
    if (!p) return ct_error("out of memory converting a tensor of %zu elements", n);
    ld->tmp = p, ld->tmp_n = n;
    return CT_OK;
}

// Find `name`, check dtype and shape (what names the config fields it follows), fold it into
// the fingerprint.  Returns the tensor (NULL with an error set).
static const StTensor *get_tensor(Loader *ld, const char *name, int ndim, const size_t *shape, const char *what,
                                  const StFile **file) {
    const StTensor *t = src_find(&ld->src, name, file);
    if (!t) {
        if (ld->src.index && json_object_get(ld->src.wmap, name))
            ct_error("%s: weight_map puts tensor %s in %s, but that shard does not hold it", ld->src.where, name,
                     json_string_value(json_object_get(ld->src.wmap, name)));
        else
            ct_error("%s: missing tensor %s (a %s checkpoint with the dimensions of config.json needs it)",
                     ld->src.where, name, ld->cls);
        return NULL;
    }
    if (t->dtype == ST_OTHER) {
        ct_error("%s: tensor %s has dtype %s; ctrace reads F32, BF16 and F16 weights", (*file)->mf.path, name,
                 t->dtype_name);
        return NULL;
    }
    char w2[200];
    snprintf(w2, sizeof w2, "config.json's %s", what);
    if (st_check_shape(*file, t, ndim, shape, w2) != CT_OK) return NULL;
    uint64_t rec[4 + ST_MAX_DIMS] = {ld->h, ct_hash64(name, strlen(name)), (uint64_t)t->dtype, (uint64_t)t->ndim};
    for (int i = 0; i < t->ndim; i++) rec[4 + i] = t->shape[i];
    rec[4 + t->ndim] = ct_hash64(t->data, t->end - t->begin);
    ld->h = ct_hash64(rec, (size_t)(5 + t->ndim) * sizeof(uint64_t));
    ld->dtype_seen |= 1 << t->dtype;
    ld->bytes += t->end - t->begin;
    return t;
}

// Load `name` of shape (rows) or (rows, cols) into dst: TR_COPY / TR_PLUS1 (dst = 1 + w: Gemma's
// norm gains) keep the layout; TR_TRANSPOSE stores a (rows, cols) Conv1D weight [in, out] as
// dst (cols, rows) [out, in].
static int load(Loader *ld, const char *name, size_t rows, size_t cols, float *dst, Transform tr, const char *what) {
    size_t shape[2] = {rows, cols};
    const StFile *f;
    const StTensor *t = get_tensor(ld, name, cols ? 2 : 1, shape, what, &f);
    if (!t) return CT_ERR;
    size_t n = rows * (cols ? cols : 1);
    if (tr == TR_COPY) return st_read_f32(f, t, dst);
    if (ensure_tmp(ld, n) != CT_OK || st_read_f32(f, t, ld->tmp) != CT_OK) return CT_ERR;
    if (tr == TR_PLUS1) {
        for (size_t i = 0; i < n; i++) dst[i] = 1.0f + ld->tmp[i];   // HF: 1.0 + w.float()
    } else {
        for (size_t r = 0; r < rows; r++)
            for (size_t k = 0; k < cols; k++) dst[k * rows + r] = ld->tmp[r * cols + k];
    }
    return CT_OK;
}

// ---- the weights table ---------------------------------------------------------------------------
// Sizes of every Weights tensor this config uses (floats), in one owned allocation.
typedef struct Slot { const float **p; size_t n; } Slot;

static int weight_slots(const Config *c, Weights *w, Slot *sl) {
    size_t D = (size_t)c->dim, Hd = (size_t)c->hidden_dim, L = (size_t)c->n_layers, V = (size_t)c->vocab_size;
    size_t Dh = (size_t)c->head_dim, Dq = (size_t)c->n_heads * Dh, Dkv = (size_t)c->n_kv_heads * Dh;
    int ln = c->norm_kind == NORM_LAYER, gated = c->mlp_kind != MLP_GELU_TANH;
    int k = 0;
#define SLOT(field, count, on) do { if (on) sl[k++] = (Slot){&w->field, (count)}; } while (0)
    SLOT(token_embedding, V * D, 1);
    SLOT(pos_embedding, (size_t)c->seq_len * D, c->learned_pos);
    SLOT(rms_att, L * D, 1);
    SLOT(rms_att_b, L * D, ln);
    SLOT(wq, L * Dq * D, 1);
    SLOT(wk, L * Dkv * D, 1);
    SLOT(wv, L * Dkv * D, 1);
    SLOT(wo, L * D * Dq, 1);
    SLOT(bq, L * Dq, c->attn_bias);
    SLOT(bk, L * Dkv, c->attn_bias);
    SLOT(bv, L * Dkv, c->attn_bias);
    SLOT(bo, L * D, c->attn_bias);
    SLOT(q_norm, L * Dh, c->qk_norm);
    SLOT(k_norm, L * Dh, c->qk_norm);
    SLOT(post_att, L * D, c->post_norms);
    SLOT(rms_ffn, L * D, 1);
    SLOT(rms_ffn_b, L * D, ln);
    SLOT(w1, L * Hd * D, 1);
    SLOT(w3, L * Hd * D, gated);
    SLOT(w2, L * D * Hd, 1);
    SLOT(b1, L * Hd, c->mlp_bias);
    SLOT(b3, L * Hd, c->mlp_bias && gated);
    SLOT(b2, L * D, c->mlp_bias);
    SLOT(post_ffn, L * D, c->post_norms);
    SLOT(rms_final, D, 1);
    SLOT(rms_final_b, D, ln);
    SLOT(wcls, V * D, !c->shared_classifier);
#undef SLOT
    return k;
}

// A tensor name into the caller's nm buffer; the owned weights seen as writable.
#define NM(...) (snprintf(nm, sizeof nm, __VA_ARGS__), nm)
#define MUT(p) ((float *)(p))

// Llama / Qwen3 / Gemma-2 tensors ("model." prefix as written by *ForCausalLM, none for a bare model).
static int load_llama_family(Loader *ld, Weights *w, const char *pre) {
    const Config *c = ld->c;
    size_t D = (size_t)c->dim, Hd = (size_t)c->hidden_dim, Dh = (size_t)c->head_dim;
    size_t Dq = (size_t)c->n_heads * Dh, Dkv = (size_t)c->n_kv_heads * Dh, V = (size_t)c->vocab_size;
    Transform g = c->post_norms ? TR_PLUS1 : TR_COPY;   // Gemma stores gains as offsets around 0
    char nm[256];
    if (load(ld, NM("%sembed_tokens.weight", pre), V, D, MUT(w->token_embedding), TR_COPY, "(vocab_size, hidden_size)"))
        return CT_ERR;
    for (int l = 0; l < c->n_layers; l++) {
        size_t L_ = (size_t)l;
        const char *ffn_norm = c->post_norms ? "pre_feedforward_layernorm" : "post_attention_layernorm";
        if (load(ld, NM("%slayers.%d.input_layernorm.weight", pre, l), D, 0, MUT(w->rms_att) + L_ * D, g, "(hidden_size)") ||
            load(ld, NM("%slayers.%d.self_attn.q_proj.weight", pre, l), Dq, D, MUT(w->wq) + L_ * Dq * D, TR_COPY,
                 "(num_attention_heads * head_dim, hidden_size)") ||
            load(ld, NM("%slayers.%d.self_attn.k_proj.weight", pre, l), Dkv, D, MUT(w->wk) + L_ * Dkv * D, TR_COPY,
                 "(num_key_value_heads * head_dim, hidden_size)") ||
            load(ld, NM("%slayers.%d.self_attn.v_proj.weight", pre, l), Dkv, D, MUT(w->wv) + L_ * Dkv * D, TR_COPY,
                 "(num_key_value_heads * head_dim, hidden_size)") ||
            load(ld, NM("%slayers.%d.self_attn.o_proj.weight", pre, l), D, Dq, MUT(w->wo) + L_ * D * Dq, TR_COPY,
                 "(hidden_size, num_attention_heads * head_dim)") ||
            load(ld, NM("%slayers.%d.%s.weight", pre, l, ffn_norm), D, 0, MUT(w->rms_ffn) + L_ * D, g, "(hidden_size)") ||
            load(ld, NM("%slayers.%d.mlp.gate_proj.weight", pre, l), Hd, D, MUT(w->w1) + L_ * Hd * D, TR_COPY,
                 "(intermediate_size, hidden_size)") ||
            load(ld, NM("%slayers.%d.mlp.up_proj.weight", pre, l), Hd, D, MUT(w->w3) + L_ * Hd * D, TR_COPY,
                 "(intermediate_size, hidden_size)") ||
            load(ld, NM("%slayers.%d.mlp.down_proj.weight", pre, l), D, Hd, MUT(w->w2) + L_ * D * Hd, TR_COPY,
                 "(hidden_size, intermediate_size)"))
            return CT_ERR;
        if (c->attn_bias &&
            (load(ld, NM("%slayers.%d.self_attn.q_proj.bias", pre, l), Dq, 0, MUT(w->bq) + L_ * Dq, TR_COPY, "(num_attention_heads * head_dim)") ||
             load(ld, NM("%slayers.%d.self_attn.k_proj.bias", pre, l), Dkv, 0, MUT(w->bk) + L_ * Dkv, TR_COPY, "(num_key_value_heads * head_dim)") ||
             load(ld, NM("%slayers.%d.self_attn.v_proj.bias", pre, l), Dkv, 0, MUT(w->bv) + L_ * Dkv, TR_COPY, "(num_key_value_heads * head_dim)") ||
             load(ld, NM("%slayers.%d.self_attn.o_proj.bias", pre, l), D, 0, MUT(w->bo) + L_ * D, TR_COPY, "(hidden_size)")))
            return CT_ERR;
        if (c->mlp_bias &&
            (load(ld, NM("%slayers.%d.mlp.gate_proj.bias", pre, l), Hd, 0, MUT(w->b1) + L_ * Hd, TR_COPY, "(intermediate_size)") ||
             load(ld, NM("%slayers.%d.mlp.up_proj.bias", pre, l), Hd, 0, MUT(w->b3) + L_ * Hd, TR_COPY, "(intermediate_size)") ||
             load(ld, NM("%slayers.%d.mlp.down_proj.bias", pre, l), D, 0, MUT(w->b2) + L_ * D, TR_COPY, "(hidden_size)")))
            return CT_ERR;
        if (c->qk_norm &&
            (load(ld, NM("%slayers.%d.self_attn.q_norm.weight", pre, l), Dh, 0, MUT(w->q_norm) + L_ * Dh, TR_COPY, "(head_dim)") ||
             load(ld, NM("%slayers.%d.self_attn.k_norm.weight", pre, l), Dh, 0, MUT(w->k_norm) + L_ * Dh, TR_COPY, "(head_dim)")))
            return CT_ERR;
        if (c->post_norms &&
            (load(ld, NM("%slayers.%d.post_attention_layernorm.weight", pre, l), D, 0, MUT(w->post_att) + L_ * D, g, "(hidden_size)") ||
             load(ld, NM("%slayers.%d.post_feedforward_layernorm.weight", pre, l), D, 0, MUT(w->post_ffn) + L_ * D, g, "(hidden_size)")))
            return CT_ERR;
    }
    if (load(ld, NM("%snorm.weight", pre), D, 0, MUT(w->rms_final), g, "(hidden_size)")) return CT_ERR;
    if (!c->shared_classifier &&
        load(ld, "lm_head.weight", V, D, MUT(w->wcls), TR_COPY, "(vocab_size, hidden_size); tie_word_embeddings is false"))
        return CT_ERR;
    return CT_OK;
}

// GPT-2 tensors ("transformer." prefix as written by GPT2LMHeadModel, none for GPT2Model).
// Conv1D weights are [in, out]: transposed into the engine's [out, in]; c_attn = [q | k | v].
static int load_gpt2(Loader *ld, Weights *w, const char *pre) {
    const Config *c = ld->c;
    size_t D = (size_t)c->dim, Hd = (size_t)c->hidden_dim, V = (size_t)c->vocab_size, S = (size_t)c->seq_len;
    char nm[256];
    if (load(ld, NM("%swte.weight", pre), V, D, MUT(w->token_embedding), TR_COPY, "(vocab_size, n_embd)") ||
        load(ld, NM("%swpe.weight", pre), S, D, MUT(w->pos_embedding), TR_COPY, "(n_positions, n_embd)"))
        return CT_ERR;
    if (ensure_tmp(ld, 3 * D * D + 3 * D) != CT_OK) return CT_ERR;
    for (int l = 0; l < c->n_layers; l++) {
        size_t L_ = (size_t)l;
        if (load(ld, NM("%sh.%d.ln_1.weight", pre, l), D, 0, MUT(w->rms_att) + L_ * D, TR_COPY, "(n_embd)") ||
            load(ld, NM("%sh.%d.ln_1.bias", pre, l), D, 0, MUT(w->rms_att_b) + L_ * D, TR_COPY, "(n_embd)") ||
            load(ld, NM("%sh.%d.ln_2.weight", pre, l), D, 0, MUT(w->rms_ffn) + L_ * D, TR_COPY, "(n_embd)") ||
            load(ld, NM("%sh.%d.ln_2.bias", pre, l), D, 0, MUT(w->rms_ffn_b) + L_ * D, TR_COPY, "(n_embd)") ||
            load(ld, NM("%sh.%d.attn.c_proj.weight", pre, l), D, D, MUT(w->wo) + L_ * D * D, TR_TRANSPOSE, "(n_embd, n_embd)") ||
            load(ld, NM("%sh.%d.attn.c_proj.bias", pre, l), D, 0, MUT(w->bo) + L_ * D, TR_COPY, "(n_embd)") ||
            load(ld, NM("%sh.%d.mlp.c_fc.weight", pre, l), D, Hd, MUT(w->w1) + L_ * Hd * D, TR_TRANSPOSE, "(n_embd, n_inner)") ||
            load(ld, NM("%sh.%d.mlp.c_fc.bias", pre, l), Hd, 0, MUT(w->b1) + L_ * Hd, TR_COPY, "(n_inner)") ||
            load(ld, NM("%sh.%d.mlp.c_proj.weight", pre, l), Hd, D, MUT(w->w2) + L_ * D * Hd, TR_TRANSPOSE, "(n_inner, n_embd)") ||
            load(ld, NM("%sh.%d.mlp.c_proj.bias", pre, l), D, 0, MUT(w->b2) + L_ * D, TR_COPY, "(n_embd)"))
            return CT_ERR;
        // fused c_attn (D, 3D) -> wq, wk, wv (D, D) each, and its bias (3D) -> bq, bk, bv
        size_t shape[2] = {D, 3 * D};
        const StFile *f;
        const StTensor *t = get_tensor(ld, NM("%sh.%d.attn.c_attn.weight", pre, l), 2, shape, "(n_embd, 3 * n_embd)", &f);
        if (!t || st_read_f32(f, t, ld->tmp) != CT_OK) return CT_ERR;
        float *dq[3] = {MUT(w->wq) + L_ * D * D, MUT(w->wk) + L_ * D * D, MUT(w->wv) + L_ * D * D};
        for (size_t r = 0; r < D; r++)   // r = input dim
            for (size_t k = 0; k < 3 * D; k++) dq[k / D][(k % D) * D + r] = ld->tmp[r * 3 * D + k];
        shape[0] = 3 * D;
        t = get_tensor(ld, NM("%sh.%d.attn.c_attn.bias", pre, l), 1, shape, "(3 * n_embd)", &f);
        if (!t || st_read_f32(f, t, ld->tmp) != CT_OK) return CT_ERR;
        memcpy(MUT(w->bq) + L_ * D, ld->tmp, D * sizeof(float));
        memcpy(MUT(w->bk) + L_ * D, ld->tmp + D, D * sizeof(float));
        memcpy(MUT(w->bv) + L_ * D, ld->tmp + 2 * D, D * sizeof(float));
    }
    if (load(ld, NM("%sln_f.weight", pre), D, 0, MUT(w->rms_final), TR_COPY, "(n_embd)") ||
        load(ld, NM("%sln_f.bias", pre), D, 0, MUT(w->rms_final_b), TR_COPY, "(n_embd)"))
        return CT_ERR;
    if (!c->shared_classifier &&
        load(ld, "lm_head.weight", V, D, MUT(w->wcls), TR_COPY, "(vocab_size, n_embd); tie_word_embeddings is false"))
        return CT_ERR;
    return CT_OK;
}
#undef NM
#undef MUT

// ---- entry point -----------------------------------------------------------------------------------
static const struct { const char *cls, *type; int arch; } ARCHS[] = {
    {"LlamaForCausalLM", "llama", ARCH_LLAMA},
    {"Qwen3ForCausalLM", "qwen3", ARCH_QWEN3},
    {"Gemma2ForCausalLM", "gemma2", ARCH_GEMMA2},
    {"GPT2LMHeadModel", "gpt2", ARCH_GPT2},
};

int hf_model_load(Model *m, const char *path) {
    memset(m, 0, sizeof *m);
    // the directory: path itself, or the folder of a config.json path
    char *dir = strdup(path), *cfgp = NULL;
    if (!dir) return ct_error("out of memory");
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') dir[--len] = 0;
    const char *base = strrchr(dir, '/');
    if (!strcmp(base ? base + 1 : dir, "config.json")) {
        if (base) dir[base - dir] = 0;
        else strcpy(dir, ".");
        if (!dir[0]) strcpy(dir, "/");
    }
    cfgp = join(dir, "config.json");
    Loader ld;
    memset(&ld, 0, sizeof ld);
    json_t *root = NULL;
    int rc = CT_ERR;
    if (!cfgp) {
        ct_error("out of memory");
        goto done;
    }
    MappedFile cf;
    if (ct_map_file(&cf, cfgp) != CT_OK) {
        ct_error_ctx("%s: a Hugging Face model directory needs config.json", dir);
        goto done;
    }
    json_error_t jerr;
    root = json_loadb((const char *)cf.data, cf.size, 0, &jerr);
    uint64_t hcfg = ct_hash64(cf.data, cf.size);
    ct_unmap_file(&cf);
    if (!root || !json_is_object(root)) {
        ct_error("%s: not a JSON object (line %d, column %d: %s)", cfgp, root ? 0 : jerr.line, root ? 0 : jerr.column,
                 root ? "top level is not an object" : jerr.text);
        goto done;
    }
    // architecture: architectures[0], else model_type
    const char *cls = json_string_value(json_array_get(json_object_get(root, "architectures"), 0));
    const char *mt = json_string_value(json_object_get(root, "model_type"));
    int arch = -1, ai = -1;
    for (int i = 0; i < (int)(sizeof ARCHS / sizeof ARCHS[0]); i++)
        if ((cls && !strcmp(cls, ARCHS[i].cls)) || (!cls && mt && !strcmp(mt, ARCHS[i].type))) arch = ARCHS[i].arch, ai = i;
    if (arch < 0) {
        if (cls)
            ct_error("%s: architectures[0] = \"%s\" is not supported; supported: %s", cfgp, cls, SUPPORTED);
        else if (mt)
            ct_error("%s: model_type = \"%s\" is not supported; supported: %s", cfgp, mt, SUPPORTED);
        else
            ct_error("%s: missing field \"architectures\" (or \"model_type\"); supported: %s", cfgp, SUPPORTED);
        goto done;
    }
    Cfg c = {root, cfgp, ARCHS[ai].cls};
    if (parse_config(&c, arch, &m->c) != CT_OK) goto done;

    // weights: one owned allocation carved by the slot table
    Slot sl[32];
    int ns = weight_slots(&m->c, &m->w, sl);
    size_t total = 0;
    for (int i = 0; i < ns; i++) {
        if (total + sl[i].n < total) {
            ct_error("%s: the model is too large to address", cfgp);
            goto done;
        }
        total += sl[i].n;
    }
    // 2 MiB-aligned and advised for huge pages: decode streams every weight once per token,
    // and 4 KiB pages cost it ~3x in TLB misses on this machine (transparent_hugepage=madvise).
    {
        size_t bytes = (total ? total : 1) * sizeof(float), align = (size_t)2 << 20;
        void *mem = NULL;
        if (posix_memalign(&mem, align, (bytes + align - 1) / align * align) == 0) {
#ifdef MADV_HUGEPAGE
            madvise(mem, (bytes + align - 1) / align * align, MADV_HUGEPAGE);
#endif
            m->owned = mem;
        } else {
            m->owned = NULL;
        }
    }
    if (!m->owned) {
        ct_error("%s: out of memory for %zu fp32 weights (%.1f GB)", cfgp, total, (double)total * 4 / 1e9);
        goto done;
    }
    float *p = m->owned;
    for (int i = 0; i < ns; i++) {
        *sl[i].p = p;
        p += sl[i].n;
    }
    if (m->c.shared_classifier) m->w.wcls = m->w.token_embedding;

    if (src_open(&ld.src, dir) != CT_OK) goto done;
    ld.c = &m->c;
    ld.cls = ARCHS[ai].cls;
    ld.h = hcfg;
    // "model." (or "transformer.") prefix as *ForCausalLM writes it; bare models have none
    const StFile *dummy;
    int gpt = arch == ARCH_GPT2;
    const char *pre = gpt ? "transformer." : "model.";
    if (!src_find(&ld.src, gpt ? "transformer.wte.weight" : "model.embed_tokens.weight", &dummy) &&
        src_find(&ld.src, gpt ? "wte.weight" : "embed_tokens.weight", &dummy))
        pre = "";
    if ((gpt ? load_gpt2(&ld, &m->w, pre) : load_llama_family(&ld, &m->w, pre)) != CT_OK) goto done;

    m->fingerprint = ld.h;
    m->src_bytes = ld.bytes;
    int nd = 0, last = 0;
    for (int d = 0; d < ST_OTHER; d++)
        if (ld.dtype_seen & (1 << d)) nd++, last = d;
    snprintf(m->src_dtype, sizeof m->src_dtype, "%s", nd == 1 ? st_dtype_name((StDtype)last) : "mixed");
    rc = CT_OK;
done:
    if (rc != CT_OK) {
        free(m->owned);
        memset(m, 0, sizeof *m);
    }
    src_close(&ld.src);
    free(ld.tmp);
    if (root) json_decref(root);
    free(dir);
    free(cfgp);
    return rc;
}
