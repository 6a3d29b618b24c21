// clt.c — transcoders (CLT / PLT): memory layout, loaders for the circuit-tracer and
// GemmaScope formats, writers, and the encode / sparse decode / reconstruct path.
// The story, top to bottom:
//   1. small helpers (strings, paths, directory scans)
//   2. the parameter block: clt_alloc carves every fp32 tensor out of one allocation
//   3. config.yaml (libyaml) read and write
//   4. GemmaScope params.npz (libzip + a small .npy header parser)
//   5. layer sources: one layer's tensors from safetensors or npz, validated and copied
//   6. clt_load / clt_load_list / clt_save / clt_check_model
//   7. running: encode (matvec / matmul through the kernel table), activations, sparse
//      decode (axpy), skip, reconstruction
#include "engine/clt.h"
#include "engine/quantize.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>
#include <zip.h>

#include "simd/simd.h"

#define DEFAULT_INPUT_HOOK "hook_resid_mid"
#define DEFAULT_OUTPUT_HOOK "hook_mlp_out"

// ==== 1. helpers =================================================================================

static char *fmt_str(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_str(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static char *path_join(const char *dir, const char *name) {
    if (name[0] == '/') return strdup(name);
    size_t n = strlen(dir);
    return fmt_str("%s%s%s", dir, (n && dir[n - 1] == '/') ? "" : "/", name);
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}
static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}
static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

// Which indices i have an entry "<prefix><i><suffix>" in dir (directories when want_dir,
// else regular files).  *have (malloc'd, length *n = 1 + max index) marks them; *count is
// how many.  Only canonical decimal indices count ("W_enc_3", not "W_enc_03").
static int scan_indexed(const char *dir, const char *prefix, const char *suffix, int want_dir, unsigned char **have,
                        int *n, int *count) {
    *have = NULL;
    *n = *count = 0;
    DIR *d = opendir(dir);
    if (!d) return ct_error("cannot list directory %s: %s", dir, strerror(errno));
    size_t pl = strlen(prefix), sl = strlen(suffix);
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *s = e->d_name;
        size_t len = strlen(s);
        if (len <= pl + sl || strncmp(s, prefix, pl) || strcmp(s + len - sl, suffix)) continue;
        const char *p = s + pl, *q = s + len - sl;
        if (!isdigit((unsigned char)*p) || (*p == '0' && q - p > 1) || q - p > 6) continue;
        int idx = 0, ok = 1;
        for (const char *r = p; r < q; r++) {
            if (!isdigit((unsigned char)*r)) ok = 0;
            idx = idx * 10 + (*r - '0');
        }
        if (!ok) continue;
        char *full = path_join(dir, s);
        int kind_ok = want_dir ? is_dir(full) : is_file(full);
        free(full);
        if (!kind_ok) continue;
        if (idx >= cap) {
            int nc = idx + 16;
            unsigned char *nh = realloc(*have, (size_t)nc);
            if (!nh) {
                closedir(d);
                return ct_error("out of memory scanning %s", dir);
            }
            memset(nh + cap, 0, (size_t)(nc - cap));
            *have = nh;
            cap = nc;
        }
        if (!(*have)[idx]) (*count)++;
        (*have)[idx] = 1;
        if (idx + 1 > *n) *n = idx + 1;
    }
    closedir(d);
    return CT_OK;
}

// ==== 2. the parameter block =====================================================================

const char *clt_kind_name(CltKind k) { return k == CLT_PER_LAYER ? "transcoder_set" : "cross_layer_transcoder"; }

const char *clt_act_name(CltActKind k) {
    switch (k) {
    case CLT_ACT_JUMPRELU: return "jump_relu";
    case CLT_ACT_TOPK: return "topk";
    default: return "relu";
    }
}

void clt_free(Clt *c) {
    clt_dequantize(c);   // int8 copies, if any
    if (c->layers)
        for (int l = 0; l < c->L; l++) {
            free(c->layers[l].src_enc);
            free(c->layers[l].name_enc);
        }
    for (int i = 0; i < c->n_files; i++) st_close(&c->files[i]);
    free(c->files);
    free(c->layers);
    free(c->params);
    free(c->input_hook);
    free(c->output_hook);
    free(c->path);
    memset(c, 0, sizeof *c);
}

// Allocate c->layers and the parameter block for the dimensions and flags already set in c
// (L, D, F, kind, act, has_skip).  dec_in_block[l] (NULL = all) says whether layer l's
// decoder is resident in the block; otherwise the loader points W_dec / W_dec_raw elsewhere.
static int clt_carve(Clt *c, const unsigned char *dec_in_block) {
    if (c->L <= 0 || c->D <= 0 || c->F <= 0)
        return ct_error("transcoder dimensions must be positive: L = %d, D = %d, F = %d", c->L, c->D, c->F);
    c->layers = calloc((size_t)c->L, sizeof *c->layers);
    if (!c->layers) return ct_error("out of memory for %d transcoder layers", c->L);
    size_t F = (size_t)c->F, D = (size_t)c->D, FD, DD, total = 0;
    if (!ct_mul_ok(F, D, &FD) || !ct_mul_ok(D, D, &DD)) return ct_error_ctx("transcoder size");
    int thr = c->act.kind == CLT_ACT_JUMPRELU;
    for (int l = 0; l < c->L; l++) {
        CltLayer *ly = &c->layers[l];
        ly->n_out = c->kind == CLT_CROSS_LAYER ? c->L - l : 1;
        ly->W_dec_dtype = ST_F32;
        size_t dec;
        if (!ct_mul_ok(FD, (size_t)ly->n_out, &dec)) return ct_error_ctx("transcoder decoder size");
        size_t add = FD + F + D + (thr ? F : 0) + ((!dec_in_block || dec_in_block[l]) ? dec : 0) +
                     (c->has_skip ? DD : 0);
        if (total > SIZE_MAX / 4 - add) return ct_error("transcoder too large: size overflow");
        total += add;
    }
    c->params = calloc(total ? total : 1, sizeof(float));
    if (!c->params) return ct_error("out of memory: transcoder needs %zu MB of fp32 parameters", total >> 18);
    c->n_params = total;
    float *p = c->params;
    for (int l = 0; l < c->L; l++) {
        CltLayer *ly = &c->layers[l];
        ly->W_enc = p, p += FD;
        ly->b_enc = p, p += F;
        ly->b_dec = p, p += D;
        if (thr) ly->threshold = p, p += F;
        if (!dec_in_block || dec_in_block[l]) ly->W_dec = p, p += FD * (size_t)ly->n_out;
        if (c->has_skip) ly->W_skip = p, p += DD;
    }
    return CT_OK;
}

int clt_alloc(Clt *c, int L, int D, int F, CltKind kind, CltActivation act, int with_skip) {
    memset(c, 0, sizeof *c);
    if (act.kind == CLT_ACT_TOPK && (act.k <= 0 || act.k > F))
        return ct_error("TopK transcoder: k = %d must be in 1..F (F = %d)", act.k, F);
    c->L = L, c->D = D, c->F = F, c->kind = kind, c->act = act, c->has_skip = with_skip != 0;
    if (clt_carve(c, NULL) != CT_OK) {
        clt_free(c);
        return CT_ERR;
    }
    c->input_hook = strdup(DEFAULT_INPUT_HOOK);
    c->output_hook = strdup(DEFAULT_OUTPUT_HOOK);
    c->path = strdup("(memory)");
    for (int l = 0; l < L; l++) {
        c->layers[l].src_enc = strdup("(memory)");
        c->layers[l].name_enc = fmt_str("layer %d W_enc", l);
    }
    return CT_OK;
}

// ==== 3. config.yaml =============================================================================

typedef struct CltConfig {
    int present;
    char *model_kind, *input_hook, *output_hook, *activation;
    int top_k;          // 0 when absent
    char **list;        // transcoders: [paths]
    int n_list;
} CltConfig;

static void config_free(CltConfig *cfg) {
    free(cfg->model_kind);
    free(cfg->input_hook);
    free(cfg->output_hook);
    free(cfg->activation);
    for (int i = 0; i < cfg->n_list; i++) free(cfg->list[i]);
    free(cfg->list);
    memset(cfg, 0, sizeof *cfg);
}

static char *scalar_dup(const yaml_node_t *n) { return strndup((const char *)n->data.scalar.value, n->data.scalar.length); }

static int config_read(const char *path, CltConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    FILE *f = fopen(path, "rb");
    if (!f) return ct_error("cannot open %s: %s", path, strerror(errno));
    yaml_parser_t p;
    yaml_document_t doc;
    int rc = CT_ERR;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    if (!yaml_parser_load(&p, &doc)) {
        ct_error("%s: YAML error at line %zu, column %zu: %s", path, (size_t)p.problem_mark.line + 1,
                 (size_t)p.problem_mark.column + 1, p.problem ? p.problem : "parse error");
        yaml_parser_delete(&p);
        fclose(f);
        return CT_ERR;
    }
    cfg->present = 1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {  // an empty file: nothing configured
        rc = CT_OK;
        goto done;
    }
    if (root->type != YAML_MAPPING_NODE) {
        ct_error("%s: expected a mapping of keys (model_kind, feature_input_hook, ...) at the top level", path);
        goto done;
    }
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(&doc, pr->key), *v = yaml_document_get_node(&doc, pr->value);
        if (!k || !v || k->type != YAML_SCALAR_NODE) continue;
        const char *key = (const char *)k->data.scalar.value;
        char **dst = NULL;
        if (!strcmp(key, "model_kind")) dst = &cfg->model_kind;
        else if (!strcmp(key, "feature_input_hook")) dst = &cfg->input_hook;
        else if (!strcmp(key, "feature_output_hook")) dst = &cfg->output_hook;
        else if (!strcmp(key, "activation") || !strcmp(key, "activation_function")) dst = &cfg->activation;
        if (dst) {
            if (v->type != YAML_SCALAR_NODE) {
                ct_error("%s: %s must be a string", path, key);
                goto done;
            }
            free(*dst);
            *dst = scalar_dup(v);
        } else if (!strcmp(key, "top_k")) {
            char *end = NULL;
            long kv = v->type == YAML_SCALAR_NODE ? strtol((const char *)v->data.scalar.value, &end, 10) : -1;
            if (v->type != YAML_SCALAR_NODE || !end || *end || kv <= 0 || kv > 1 << 30) {
                ct_error("%s: top_k must be a positive integer", path);
                goto done;
            }
            cfg->top_k = (int)kv;
        } else if (!strcmp(key, "transcoders")) {
            if (v->type != YAML_SEQUENCE_NODE) {
                ct_error("%s: transcoders must be a list of per-layer file paths (layer i = entry i)", path);
                goto done;
            }
            int n = (int)(v->data.sequence.items.top - v->data.sequence.items.start);
            cfg->list = calloc((size_t)(n ? n : 1), sizeof *cfg->list);
            for (int i = 0; i < n; i++) {
                yaml_node_t *it = yaml_document_get_node(&doc, v->data.sequence.items.start[i]);
                if (!it || it->type != YAML_SCALAR_NODE) {
                    ct_error("%s: transcoders[%d] is not a path string", path, i);
                    goto done;
                }
                cfg->list[cfg->n_list++] = scalar_dup(it);
            }
        }
    }
    rc = CT_OK;
done:
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    fclose(f);
    if (rc != CT_OK) config_free(cfg);
    return rc;
}

static int emit_scalar(yaml_emitter_t *e, const char *s, int plain) {
    yaml_event_t ev;
    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1,
                                 plain ? YAML_PLAIN_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
    return yaml_emitter_emit(e, &ev);
}

// config.yaml through the libyaml emitter (it quotes hook strings correctly), then atomically.
static int config_write(const char *path, const Clt *c) {
    size_t cap = 4096 + 8 * (strlen(c->input_hook) + strlen(c->output_hook));
    unsigned char *buf = malloc(cap);
    if (!buf) return ct_error("out of memory writing %s", path);
    static const char banner[] = "# transcoder configuration (circuit-tracer compatible), written by ctrace\n";
    size_t head = sizeof banner - 1, written = 0;
    memcpy(buf, banner, head);
    yaml_emitter_t e;
    yaml_event_t ev;
    yaml_emitter_initialize(&e);
    yaml_emitter_set_output_string(&e, buf + head, cap - head, &written);
    yaml_emitter_set_unicode(&e, 1);
    char topk[32];
    snprintf(topk, sizeof topk, "%d", c->act.k);
    int ok = 1;
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    ok = ok && yaml_emitter_emit(&e, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    ok = ok && yaml_emitter_emit(&e, &ev);
    yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
    ok = ok && yaml_emitter_emit(&e, &ev);
    ok = ok && emit_scalar(&e, "model_kind", 1) && emit_scalar(&e, clt_kind_name(c->kind), 1);
    ok = ok && emit_scalar(&e, "feature_input_hook", 1) && emit_scalar(&e, c->input_hook, 0);
    ok = ok && emit_scalar(&e, "feature_output_hook", 1) && emit_scalar(&e, c->output_hook, 0);
    ok = ok && emit_scalar(&e, "activation", 1) && emit_scalar(&e, clt_act_name(c->act.kind), 1);
    if (c->act.kind == CLT_ACT_TOPK) ok = ok && emit_scalar(&e, "top_k", 1) && emit_scalar(&e, topk, 1);
    yaml_mapping_end_event_initialize(&ev);
    ok = ok && yaml_emitter_emit(&e, &ev);
    yaml_document_end_event_initialize(&ev, 1);
    ok = ok && yaml_emitter_emit(&e, &ev);
    yaml_stream_end_event_initialize(&ev);
    ok = ok && yaml_emitter_emit(&e, &ev);
    ok = ok && yaml_emitter_flush(&e);
    yaml_emitter_delete(&e);
    int rc = ok ? ct_write_file_atomic(path, buf, head + written)
                : ct_error("%s: YAML emitter failed: %s", path, e.problem ? e.problem : "unknown");
    free(buf);
    return rc;
}

// ==== 4. GemmaScope params.npz ===================================================================

// One array of an npz: shape and its data converted to fp32 (owned).
typedef struct NpyArray {
    int ndim;
    size_t shape[ST_MAX_DIMS];
    size_t numel;
    float *data;
} NpyArray;

static void skip_ws(const char **p, const char *e) {
    while (*p < e && isspace((unsigned char)**p)) (*p)++;
}

// Parse a Python string literal ('...' or "...") into out (cap bytes).
static int py_string(const char **p, const char *e, char *out, size_t cap) {
    if (*p >= e || (**p != '\'' && **p != '"')) return 0;
    char q = *(*p)++;
    size_t k = 0;
    while (*p < e && **p != q) {
        if (**p == '\\' && *p + 1 < e) (*p)++;
        if (k + 1 < cap) out[k++] = **p;
        (*p)++;
    }
    if (*p >= e) return 0;
    (*p)++;
    out[k] = 0;
    return 1;
}

// The .npy header is a Python dict literal, e.g.
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2304, 16384), }
// Exactly those three keys; shape is a tuple of integers ("()" scalar, "(5,)" vector).
static int npy_parse_dict(const char *h, size_t n, const char *where, char *descr, size_t dcap, int *fortran,
                          NpyArray *a) {
    const char *p = h, *e = h + n;
    int seen_descr = 0, seen_fo = 0, seen_shape = 0;
    skip_ws(&p, e);
    if (p >= e || *p++ != '{') return ct_error("%s: .npy header is not a Python dict literal", where);
    for (;;) {
        skip_ws(&p, e);
        if (p < e && *p == '}') {
            p++;
            break;
        }
        char key[64];
        if (!py_string(&p, e, key, sizeof key)) return ct_error("%s: .npy header: expected a quoted key", where);
        skip_ws(&p, e);
        if (p >= e || *p++ != ':') return ct_error("%s: .npy header: expected ':' after '%s'", where, key);
        skip_ws(&p, e);
        if (!strcmp(key, "descr")) {
            if (!py_string(&p, e, descr, dcap))
                return ct_error("%s: .npy header: 'descr' is not a simple dtype string (structured arrays are not "
                                "supported)",
                                where);
            seen_descr = 1;
        } else if (!strcmp(key, "fortran_order")) {
            if ((size_t)(e - p) >= 4 && !strncmp(p, "True", 4)) *fortran = 1, p += 4;
            else if ((size_t)(e - p) >= 5 && !strncmp(p, "False", 5)) *fortran = 0, p += 5;
            else return ct_error("%s: .npy header: fortran_order must be True or False", where);
            seen_fo = 1;
        } else if (!strcmp(key, "shape")) {
            if (p >= e || *p++ != '(') return ct_error("%s: .npy header: shape must be a tuple", where);
            a->ndim = 0;
            for (;;) {
                skip_ws(&p, e);
                if (p < e && *p == ')') {
                    p++;
                    break;
                }
                if (p >= e || !isdigit((unsigned char)*p))
                    return ct_error("%s: .npy header: shape holds a non-integer", where);
                size_t v = 0;
                while (p < e && isdigit((unsigned char)*p)) {
                    if (v > (SIZE_MAX - 9) / 10) return ct_error("%s: .npy header: shape value too large", where);
                    v = v * 10 + (size_t)(*p++ - '0');
                }
                if (p < e && *p == 'L') p++;  // Python 2 long suffix
                if (a->ndim >= ST_MAX_DIMS) return ct_error("%s: .npy header: more than %d dims", where, ST_MAX_DIMS);
                a->shape[a->ndim++] = v;
                skip_ws(&p, e);
                if (p < e && *p == ',') p++;
                else if (p < e && *p == ')') continue;
                else return ct_error("%s: .npy header: malformed shape tuple", where);
            }
            seen_shape = 1;
        } else {
            return ct_error("%s: .npy header has unexpected key '%s' (expected descr, fortran_order, shape)", where,
                            key);
        }
        skip_ws(&p, e);
        if (p < e && *p == ',') p++;
        else if (p < e && *p == '}') continue;
        else return ct_error("%s: .npy header: expected ',' or '}'", where);
    }
    skip_ws(&p, e);
    if (p != e) return ct_error("%s: .npy header: trailing characters after the dict", where);
    if (!seen_descr || !seen_fo || !seen_shape)
        return ct_error("%s: .npy header lacks %s", where, !seen_descr ? "'descr'" : !seen_fo ? "'fortran_order'" : "'shape'");
    return CT_OK;
}

// Decode one .npy buffer (whole member of the zip) into a (fp32).  where names it in messages.
static int npy_decode(const uint8_t *b, size_t n, const char *where, NpyArray *a) {
    memset(a, 0, sizeof *a);
    if (n < 10 || memcmp(b, "\x93NUMPY", 6))
        return ct_error("%s: bad magic: not a .npy array (expected \\x93NUMPY)", where);
    int major = b[6];
    size_t hlen, pre;
    if (major == 1) hlen = (size_t)b[8] | (size_t)b[9] << 8, pre = 10;
    else if (major == 2 || major == 3) {
        if (n < 12) return ct_error("%s: truncated .npy header", where);
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24, pre = 12;
    } else {
        return ct_error("%s: unsupported .npy format version %d.%d", where, major, b[7]);
    }
    if (hlen > n - pre) return ct_error("%s: .npy header length %zu is beyond the array (%zu bytes)", where, hlen, n - pre);
    char descr[32];
    int fortran = 0;
    if (npy_parse_dict((const char *)b + pre, hlen, where, descr, sizeof descr, &fortran, a) != CT_OK) return CT_ERR;
    if (fortran)
        return ct_error("%s: fortran_order is True (column-major); ctrace reads C-order arrays only "
                        "(save with np.ascontiguousarray)",
                        where);
    size_t isz;
    if (!strcmp(descr, "<f4")) isz = 4;
    else if (!strcmp(descr, "<f2")) isz = 2;
    else if (!strcmp(descr, "<f8")) isz = 8;
    else
        return ct_error("%s: unsupported dtype descr '%s'; ctrace reads little-endian floats '<f4', '<f2', '<f8'",
                        where, descr);
    a->numel = 1;
    for (int i = 0; i < a->ndim; i++)
        if (!ct_mul_ok(a->numel, a->shape[i], &a->numel)) return ct_error_ctx("%s: shape", where);
    size_t need, have = n - pre - hlen;
    if (!ct_mul_ok(a->numel, isz, &need)) return ct_error_ctx("%s: size", where);
    if (have != need) {
        char sh[160];
        st_shape_str(a->shape, a->ndim, sh, sizeof sh);
        return ct_error("%s: data holds %zu bytes but descr '%s' with shape %s needs %zu (truncated?)", where, have,
                        descr, sh, need);
    }
    a->data = malloc((a->numel ? a->numel : 1) * sizeof(float));
    if (!a->data) return ct_error("%s: out of memory (%zu elements)", where, a->numel);
    const uint8_t *d = b + pre + hlen;
    if (isz == 4) memcpy(a->data, d, a->numel * 4);
    else if (isz == 2) st_convert_f32(ST_F16, d, a->data, a->numel);
    else
        for (size_t i = 0; i < a->numel; i++) {
            double v;
            memcpy(&v, d + 8 * i, 8);
            a->data[i] = (float)v;
        }
    return CT_OK;
}

// Read member "<name>.npy" of an open npz.  Absent: error unless optional (then *found = 0).
static int npz_read(zip_t *z, const char *zpath, const char *name, int optional, NpyArray *a, int *found) {
    char member[96], where[1024];
    snprintf(member, sizeof member, "%s.npy", name);
    snprintf(where, sizeof where, "%s: %s", zpath, member);
    memset(a, 0, sizeof *a);
    *found = 0;
    zip_int64_t idx = zip_name_locate(z, member, 0);
    if (idx < 0) {
        if (optional) return CT_OK;
        return ct_error("%s: missing array %s (a GemmaScope params.npz holds W_enc, W_dec, b_enc, b_dec, threshold)",
                        zpath, member);
    }
    zip_stat_t zs;
    zip_stat_init(&zs);
    if (zip_stat_index(z, (zip_uint64_t)idx, 0, &zs) != 0 || !(zs.valid & ZIP_STAT_SIZE))
        return ct_error("%s: cannot stat the member: %s", where, zip_strerror(z));
    if (zs.size > ((zip_uint64_t)1 << 40)) return ct_error("%s: implausible size %llu", where, (unsigned long long)zs.size);
    size_t n = (size_t)zs.size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return ct_error("%s: out of memory (%zu bytes)", where, n);
    zip_file_t *zf = zip_fopen_index(z, (zip_uint64_t)idx, 0);
    if (!zf) {
        free(buf);
        return ct_error("%s: cannot open the member: %s (truncated or corrupt npz?)", where, zip_strerror(z));
    }
    size_t got = 0;
    while (got < n) {
        zip_int64_t r = zip_fread(zf, buf + got, n - got);
        if (r < 0) {
            ct_error("%s: read error: %s (truncated or corrupt npz?)", where, zip_file_strerror(zf));
            zip_fclose(zf);
            free(buf);
            return CT_ERR;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    int crc = zip_fclose(zf);
    if (got != n || crc != 0) {
        free(buf);
        return ct_error("%s: read %zu of %zu bytes%s (truncated or corrupt npz?)", where, got, n,
                        crc ? ", checksum failed" : "");
    }
    int rc = npy_decode(buf, n, where, a);
    free(buf);
    if (rc != CT_OK) return CT_ERR;
    *found = 1;
    return CT_OK;
}

static zip_t *npz_open(const char *path) {
    int err = 0;
    zip_t *z = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &err);
    if (!z) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, err);
        ct_error("%s: cannot open as an npz (zip) archive: %s (truncated or not an npz file?)", path,
                 zip_error_strerror(&ze));
        zip_error_fini(&ze);
    }
    return z;
}

// ==== 5. layer sources ===========================================================================

// One tensor of a layer: a view of a safetensors tensor, or an npz array converted to fp32.
typedef struct Arr {
    int present;
    const char *file;         // for messages
    char name[96];
    int ndim;
    size_t shape[ST_MAX_DIMS];
    size_t numel;
    const StFile *sf;         // safetensors source ...
    const StTensor *st;
    float *own;               // ... or owned fp32 (npz)
} Arr;

typedef enum { SRC_CLT = 0, SRC_PLT = 1, SRC_NPZ = 2 } SrcKind;

typedef struct LayerSrc {
    SrcKind kind;
    char *file_enc, *file_dec;  // equal for PLT and npz
    StFile sf_enc, sf_dec;      // CLT: both; PLT: sf_enc
    int enc_open, dec_open;
    Arr W_enc, b_enc, b_dec, thr, W_skip, W_dec;
} LayerSrc;

static void src_close(LayerSrc *s) {
    Arr *all[] = {&s->W_enc, &s->b_enc, &s->b_dec, &s->thr, &s->W_skip, &s->W_dec};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]->own);
    if (s->enc_open) st_close(&s->sf_enc);
    if (s->dec_open) st_close(&s->sf_dec);
    free(s->file_enc);
    if (s->file_dec != s->file_enc) free(s->file_dec);
    memset(s, 0, sizeof *s);
}

static int arr_from_st(Arr *a, const StFile *f, const char *name, int optional) {
    memset(a, 0, sizeof *a);
    if (!st_find(f, name) && optional) return CT_OK;
    const StTensor *t;
    if (st_get(f, name, &t) != CT_OK) return CT_ERR;
    a->present = 1;
    a->file = f->mf.path;
    snprintf(a->name, sizeof a->name, "%s", name);
    a->ndim = t->ndim;
    memcpy(a->shape, t->shape, sizeof a->shape);
    a->numel = t->numel;
    a->sf = f;
    a->st = t;
    return CT_OK;
}

static int arr_from_npz(Arr *a, zip_t *z, const char *file, const char *name, int optional) {
    memset(a, 0, sizeof *a);
    NpyArray na;
    int found;
    if (npz_read(z, file, name, optional, &na, &found) != CT_OK) return CT_ERR;
    if (!found) return CT_OK;
    a->present = 1;
    a->file = file;
    snprintf(a->name, sizeof a->name, "%s", name);
    a->ndim = na.ndim;
    memcpy(a->shape, na.shape, sizeof a->shape);
    a->numel = na.numel;
    a->own = na.data;
    return CT_OK;
}

// Open layer l's files and find its tensors (no shape checks yet).
static int src_open(LayerSrc *s, SrcKind kind, const char *where, int l) {
    memset(s, 0, sizeof *s);
    s->kind = kind;
    if (kind == SRC_CLT) {
        char nm[64];
        s->file_enc = fmt_str("%s%sW_enc_%d.safetensors", where, ends_with(where, "/") ? "" : "/", l);
        s->file_dec = fmt_str("%s%sW_dec_%d.safetensors", where, ends_with(where, "/") ? "" : "/", l);
        if (!is_file(s->file_dec))
            return ct_error("%s: W_dec_%d.safetensors is missing (every W_enc_i.safetensors needs a "
                            "W_dec_i.safetensors)",
                            where, l);
        if (st_open(&s->sf_enc, s->file_enc) != CT_OK) return CT_ERR;
        s->enc_open = 1;
        if (st_open(&s->sf_dec, s->file_dec) != CT_OK) return CT_ERR;
        s->dec_open = 1;
        snprintf(nm, sizeof nm, "W_enc_%d", l);
        if (arr_from_st(&s->W_enc, &s->sf_enc, nm, 0) != CT_OK) return CT_ERR;
        snprintf(nm, sizeof nm, "b_enc_%d", l);
        if (arr_from_st(&s->b_enc, &s->sf_enc, nm, 0) != CT_OK) return CT_ERR;
        snprintf(nm, sizeof nm, "b_dec_%d", l);
        if (arr_from_st(&s->b_dec, &s->sf_enc, nm, 0) != CT_OK) return CT_ERR;
        snprintf(nm, sizeof nm, "threshold_%d", l);
        if (arr_from_st(&s->thr, &s->sf_enc, nm, 1) != CT_OK) return CT_ERR;
        snprintf(nm, sizeof nm, "W_skip_%d", l);
        if (arr_from_st(&s->W_skip, &s->sf_enc, nm, 1) != CT_OK) return CT_ERR;
        snprintf(nm, sizeof nm, "W_dec_%d", l);
        if (arr_from_st(&s->W_dec, &s->sf_dec, nm, 0) != CT_OK) return CT_ERR;
    } else if (kind == SRC_PLT) {
        s->file_enc = s->file_dec = strdup(where);
        if (st_open(&s->sf_enc, where) != CT_OK) return CT_ERR;
        s->enc_open = 1;
        if (arr_from_st(&s->W_enc, &s->sf_enc, "W_enc", 0) != CT_OK ||
            arr_from_st(&s->b_enc, &s->sf_enc, "b_enc", 0) != CT_OK ||
            arr_from_st(&s->b_dec, &s->sf_enc, "b_dec", 0) != CT_OK ||
            arr_from_st(&s->thr, &s->sf_enc, "activation_function.threshold", 1) != CT_OK ||
            arr_from_st(&s->W_skip, &s->sf_enc, "W_skip", 1) != CT_OK ||
            arr_from_st(&s->W_dec, &s->sf_enc, "W_dec", 0) != CT_OK)
            return CT_ERR;
    } else {
        s->file_enc = s->file_dec = strdup(where);
        zip_t *z = npz_open(where);
        if (!z) return CT_ERR;
        int rc = CT_OK;
        if (arr_from_npz(&s->W_enc, z, s->file_enc, "W_enc", 0) != CT_OK ||
            arr_from_npz(&s->W_dec, z, s->file_enc, "W_dec", 0) != CT_OK ||
            arr_from_npz(&s->b_enc, z, s->file_enc, "b_enc", 0) != CT_OK ||
            arr_from_npz(&s->b_dec, z, s->file_enc, "b_dec", 0) != CT_OK ||
            arr_from_npz(&s->thr, z, s->file_enc, "threshold", 1) != CT_OK)
            rc = CT_ERR;
        zip_discard(z);
        if (rc != CT_OK) return CT_ERR;
    }
    return CT_OK;
}

static int arr_check(const Arr *a, int ndim, const size_t *shape, const char *what, const char *why) {
    int ok = a->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = a->shape[i] == shape[i];
    if (ok) return CT_OK;
    char got[160], want[160];
    st_shape_str(a->shape, a->ndim, got, sizeof got);
    st_shape_str(shape, ndim, want, sizeof want);
    return ct_error("%s: tensor %s has shape %s, expected %s = %s%s", a->file, a->name, got, what, want, why);
}

static int arr_finite(const Arr *a) {
    if (!a->present) return CT_OK;
    if (a->st) return st_check_finite(a->sf, a->st);
    size_t i = st_scan_nonfinite(ST_F32, a->own, a->numel);
    if (i == SIZE_MAX) return CT_OK;
    float v = a->own[i];
    return ct_error("%s: tensor %s has %s at flat index %zu; the weights are corrupt", a->file, a->name,
                    v != v ? "NaN" : "Inf", i);
}

static void arr_to_f32(const Arr *a, float *dst) {
    if (a->st) st_convert_f32(a->st->dtype, a->st->data, dst, a->numel);
    else memcpy(dst, a->own, a->numel * sizeof(float));
}

// dst (cols, rows) = transpose of a (rows, cols).
static int arr_to_f32_t(const Arr *a, float *dst) {
    size_t R = a->shape[0], C = a->shape[1];
    float *tmp = a->own;
    if (!tmp) {
        tmp = malloc((a->numel ? a->numel : 1) * sizeof(float));
        if (!tmp) return ct_error("%s: out of memory transposing %s", a->file, a->name);
        arr_to_f32(a, tmp);
    }
    for (size_t r = 0; r < R; r++)
        for (size_t c = 0; c < C; c++) dst[c * R + r] = tmp[r * C + c];
    if (!a->own) free(tmp);
    return CT_OK;
}

// Validate layer l of s against c (F, D, L, kind, act, has_skip from layer 0) and copy it
// into the block.  Decoders: resident (copied) when layer l's W_dec points into the block,
// else a view or raw pointer into the kept mapping.
static int src_load_into(Clt *c, LayerSrc *s, int l, int flags, int dec_resident) {
    CltLayer *ly = &c->layers[l];
    size_t F = (size_t)c->F, D = (size_t)c->D;
    const char *why = l ? " (F and D from layer 0)" : "";
    int tr = s->kind == SRC_NPZ;
    size_t enc[2] = {tr ? D : F, tr ? F : D};
    if (arr_check(&s->W_enc, 2, enc, tr ? "(D, F)" : "(F, D)", why) != CT_OK) return CT_ERR;
    if (arr_check(&s->b_enc, 1, &F, "(F)", why) != CT_OK) return CT_ERR;
    if (arr_check(&s->b_dec, 1, &D, "(D)", why) != CT_OK) return CT_ERR;
    if (s->kind == SRC_CLT) {
        size_t dec[3] = {F, (size_t)(c->L - l), D};
        char what[64];
        snprintf(what, sizeof what, "(F, L-%d, D)", l);
        if (arr_check(&s->W_dec, 3, dec, what, "") != CT_OK) return CT_ERR;
    } else {
        size_t dec[2] = {F, D};
        if (arr_check(&s->W_dec, 2, dec, "(F, D)", why) != CT_OK) return CT_ERR;
    }
    int want_thr = c->act.kind == CLT_ACT_JUMPRELU;
    if (want_thr && !s->thr.present)
        return ct_error("%s: layer %d has no threshold tensor, but the transcoder uses JumpReLU (thresholds in "
                        "layer 0 or config.yaml): every layer needs one",
                        s->file_enc, l);
    if (want_thr && arr_check(&s->thr, 1, &F, "(F)", why) != CT_OK) return CT_ERR;
    if (s->W_skip.present != c->has_skip)
        return ct_error("%s: layer %d %s W_skip but layer 0 %s: all layers must have skip weights or none",
                        s->file_enc, l, s->W_skip.present ? "has" : "has no", c->has_skip ? "does" : "does not");
    if (c->has_skip) {
        size_t dd[2] = {D, D};
        if (arr_check(&s->W_skip, 2, dd, "(D, D)", why) != CT_OK) return CT_ERR;
    }

    // NaN / Inf anywhere we are about to use is an error naming file, tensor and index.
    if (arr_finite(&s->W_enc) || arr_finite(&s->b_enc) || arr_finite(&s->b_dec) ||
        (want_thr && arr_finite(&s->thr)) || (c->has_skip && arr_finite(&s->W_skip)))
        return CT_ERR;
    if ((dec_resident || !(flags & CLT_LOAD_NO_SCAN)) && arr_finite(&s->W_dec)) return CT_ERR;

    if (tr) {
        if (arr_to_f32_t(&s->W_enc, ly->W_enc) != CT_OK) return CT_ERR;
    } else {
        arr_to_f32(&s->W_enc, ly->W_enc);
    }
    arr_to_f32(&s->b_enc, ly->b_enc);
    arr_to_f32(&s->b_dec, ly->b_dec);
    if (want_thr) arr_to_f32(&s->thr, ly->threshold);
    if (c->has_skip) {
        // CLT files hold W_skip for x @ W_skip (in, out); ours is (out, in).
        if (s->kind == SRC_CLT) {
            if (arr_to_f32_t(&s->W_skip, ly->W_skip) != CT_OK) return CT_ERR;
        } else {
            arr_to_f32(&s->W_skip, ly->W_skip);
        }
    }
    free(ly->src_enc);
    free(ly->name_enc);
    ly->src_enc = strdup(s->file_enc);
    ly->name_enc = strdup(s->W_enc.name);
    ly->enc_transposed = tr;

    if (dec_resident) {
        arr_to_f32(&s->W_dec, ly->W_dec);
        ly->W_dec_dtype = ST_F32;
        return CT_OK;
    }
    // Lazy: keep the mapping that holds W_dec alive in c->files.
    const float *view = st_f32_ptr(s->W_dec.st);
    ly->W_dec = (float *)view;  // read-only view of the mapping (never written through)
    ly->W_dec_raw = view ? NULL : s->W_dec.st->data;
    ly->W_dec_dtype = s->W_dec.st->dtype;
    StFile *keep = s->kind == SRC_CLT ? &s->sf_dec : &s->sf_enc;
    c->files[c->n_files++] = *keep;
    if (s->kind == SRC_CLT) s->dec_open = 0;
    else s->enc_open = 0;
    return CT_OK;
}

// Load L layers from sources (where[l], kind[l]) into c: layer 0 fixes F, D, the activation
// and skip; later layers must agree.  cfg may override the activation.
static int load_layers(Clt *c, int L, char *const *where, const SrcKind *kind, CltKind ck, const CltConfig *cfg,
                       int flags) {
    unsigned char *resident = calloc((size_t)L, 1);
    c->files = calloc((size_t)L, sizeof *c->files);
    if (!resident || !c->files) {
        free(resident);
        return ct_error("out of memory");
    }
    c->L = L;
    c->kind = ck;
    for (int l = 0; l < L; l++) resident[l] = (flags & CLT_LOAD_EAGER) || kind[l] == SRC_NPZ;
    int rc = CT_ERR;
    for (int l = 0; l < L; l++) {
        LayerSrc s;
        if (src_open(&s, kind[l], where[l], l) != CT_OK) {
            src_close(&s);
            goto out;
        }
        if (l == 0) {
            // Dimensions, activation and skip come from layer 0.
            if (s.W_enc.ndim != 2) {
                ct_error("%s: tensor %s has %d dimensions, expected 2: %s", s.file_enc, s.W_enc.name, s.W_enc.ndim,
                         kind[0] == SRC_NPZ ? "(D, F)" : "(F, D)");
                src_close(&s);
                goto out;
            }
            c->F = (int)(kind[0] == SRC_NPZ ? s.W_enc.shape[1] : s.W_enc.shape[0]);
            c->D = (int)(kind[0] == SRC_NPZ ? s.W_enc.shape[0] : s.W_enc.shape[1]);
            c->has_skip = s.W_skip.present;
            c->act.kind = s.thr.present ? CLT_ACT_JUMPRELU : CLT_ACT_RELU;
            c->act.k = 0;
            if (cfg && cfg->activation) {
                const char *a = cfg->activation;
                if (!strcmp(a, "relu")) c->act.kind = CLT_ACT_RELU;
                else if (!strcmp(a, "jump_relu") || !strcmp(a, "jumprelu")) {
                    if (!s.thr.present) {
                        ct_error("config.yaml says activation: %s but %s holds no threshold tensor", a, s.file_enc);
                        src_close(&s);
                        goto out;
                    }
                    c->act.kind = CLT_ACT_JUMPRELU;
                } else if (!strcmp(a, "topk")) {
                    c->act.kind = CLT_ACT_TOPK;
                    c->act.k = cfg->top_k;
                } else {
                    ct_error("config.yaml: unknown activation '%s' (expected relu, jump_relu or topk)", a);
                    src_close(&s);
                    goto out;
                }
            }
            if (c->act.kind == CLT_ACT_TOPK && (c->act.k <= 0 || c->act.k > c->F)) {
                ct_error("config.yaml: activation topk needs top_k in 1..F (F = %d), got %d", c->F, c->act.k);
                src_close(&s);
                goto out;
            }
            if (clt_carve(c, resident) != CT_OK) {
                src_close(&s);
                goto out;
            }
        }
        int r = src_load_into(c, &s, l, flags, resident[l]);
        src_close(&s);
        if (r != CT_OK) goto out;
    }
    rc = CT_OK;
out:
    free(resident);
    return rc;
}

// ==== 6. load / save / check =====================================================================

static int set_hooks(Clt *c, const CltConfig *cfg) {
    c->input_hook = strdup(cfg && cfg->input_hook ? cfg->input_hook : DEFAULT_INPUT_HOOK);
    c->output_hook = strdup(cfg && cfg->output_hook ? cfg->output_hook : DEFAULT_OUTPUT_HOOK);
    return c->input_hook && c->output_hook ? CT_OK : ct_error("out of memory");
}

static int first_missing(const unsigned char *have, int n) {
    for (int i = 0; i < n; i++)
        if (!have[i]) return i;
    return -1;
}

// Per-layer list (npz or PLT safetensors), paths relative to base (NULL: as given).
static int load_list(Clt *c, const char *const *paths, int n, const char *base, const CltConfig *cfg, int flags) {
    if (n <= 0) return ct_error("empty transcoder list");
    char **where = calloc((size_t)n, sizeof *where);
    SrcKind *kind = calloc((size_t)n, sizeof *kind);
    int rc = CT_ERR;
    if (!where || !kind) {
        ct_error("out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        if (!strncmp(paths[i], "hf://", 5)) {
            ct_error("transcoders[%d] = %s is a Hugging Face URI; download the file and list a local path", i,
                     paths[i]);
            goto out;
        }
        where[i] = base ? path_join(base, paths[i]) : strdup(paths[i]);
        if (ends_with(where[i], ".npz")) kind[i] = SRC_NPZ;
        else if (ends_with(where[i], ".safetensors")) kind[i] = SRC_PLT;
        else {
            ct_error("%s: layer %d: expected a .npz (GemmaScope) or .safetensors (per-layer transcoder) file",
                     where[i], i);
            goto out;
        }
    }
    rc = load_layers(c, n, where, kind, CLT_PER_LAYER, cfg, flags);
out:
    if (where)
        for (int i = 0; i < n; i++) free(where[i]);
    free(where);
    free(kind);
    return rc;
}

int clt_load_list(Clt *c, const char *const *paths, int n, int flags) {
    memset(c, 0, sizeof *c);
    if (load_list(c, paths, n, NULL, NULL, flags) != CT_OK || set_hooks(c, NULL) != CT_OK) {
        clt_free(c);
        return CT_ERR;
    }
    c->path = strdup(n ? paths[0] : "");
    return CT_OK;
}

static int alloc_srcs(int L, char ***where, SrcKind **kind) {
    if (L <= 0 || L > 1 << 20) return ct_error("implausible layer count %d", L);
    *where = calloc((size_t)L, sizeof **where);
    *kind = calloc((size_t)L, sizeof **kind);
    return *where && *kind ? CT_OK : ct_error("out of memory");
}

static int load_dir(Clt *c, const char *dir, int flags) {
    CltConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    char *cpath = path_join(dir, "config.yaml");
    unsigned char *have_enc = NULL, *have_plt = NULL, *have_npz = NULL;
    char **where = NULL;
    SrcKind *kind = NULL;
    int n_enc, c_enc, n_plt, c_plt, n_npz, c_npz, rc = CT_ERR, L = 0;
    if (is_file(cpath) && config_read(cpath, &cfg) != CT_OK) goto out;
    CltKind want = CLT_CROSS_LAYER;
    int have_want = 0;
    if (cfg.model_kind) {
        have_want = 1;
        if (!strcmp(cfg.model_kind, "cross_layer_transcoder")) want = CLT_CROSS_LAYER;
        else if (!strcmp(cfg.model_kind, "transcoder_set")) want = CLT_PER_LAYER;
        else {
            ct_error("%s: unknown model_kind '%s' (expected cross_layer_transcoder or transcoder_set)", cpath,
                     cfg.model_kind);
            goto out;
        }
    }
    if (scan_indexed(dir, "W_enc_", ".safetensors", 0, &have_enc, &n_enc, &c_enc) != CT_OK ||
        scan_indexed(dir, "layer_", ".safetensors", 0, &have_plt, &n_plt, &c_plt) != CT_OK ||
        scan_indexed(dir, "layer_", "", 1, &have_npz, &n_npz, &c_npz) != CT_OK)
        goto out;
    if (c_enc && c_plt) {
        ct_error("%s holds both W_enc_*.safetensors (cross-layer) and layer_*.safetensors (per-layer) files; "
                 "keep one layout per directory",
                 dir);
        goto out;
    }
    if (c_enc) {
        if (have_want && want != CLT_CROSS_LAYER) {
            ct_error("%s says model_kind: %s but %s holds a cross-layer transcoder (W_enc_*.safetensors)", cpath,
                     cfg.model_kind, dir);
            goto out;
        }
        int miss = first_missing(have_enc, n_enc);
        if (miss >= 0) {
            ct_error("%s: W_enc_%d.safetensors is missing (found %d W_enc files up to W_enc_%d; layers must be "
                     "numbered 0..L-1)",
                     dir, miss, c_enc, n_enc - 1);
            goto out;
        }
        unsigned char *have_dec = NULL;
        int n_dec, c_dec;
        if (scan_indexed(dir, "W_dec_", ".safetensors", 0, &have_dec, &n_dec, &c_dec) != CT_OK) goto out;
        free(have_dec);
        if (c_dec != c_enc || n_dec != n_enc) {
            ct_error("%s: %d W_enc_*.safetensors but %d W_dec_*.safetensors files (up to W_dec_%d); each layer needs "
                     "both",
                     dir, c_enc, c_dec, n_dec - 1);
            goto out;
        }
        L = n_enc;
        if (alloc_srcs(L, &where, &kind) != CT_OK) goto out;
        for (int l = 0; l < L; l++) where[l] = strdup(dir), kind[l] = SRC_CLT;
        if (load_layers(c, L, where, kind, CLT_CROSS_LAYER, &cfg, flags) != CT_OK) goto out;
    } else if (c_plt || cfg.n_list || c_npz) {
        if (have_want && want != CLT_PER_LAYER) {
            ct_error("%s says model_kind: %s but %s holds per-layer transcoders", cpath, cfg.model_kind, dir);
            goto out;
        }
        if (c_plt) {
            int miss = first_missing(have_plt, n_plt);
            if (miss >= 0) {
                ct_error("%s: layer_%d.safetensors is missing (found %d layer files up to layer_%d; layers must be "
                         "numbered 0..L-1)",
                         dir, miss, c_plt, n_plt - 1);
                goto out;
            }
            L = n_plt;
            if (alloc_srcs(L, &where, &kind) != CT_OK) goto out;
            for (int l = 0; l < L; l++) where[l] = fmt_str("%s/layer_%d.safetensors", dir, l), kind[l] = SRC_PLT;
            if (load_layers(c, L, where, kind, CLT_PER_LAYER, &cfg, flags) != CT_OK) goto out;
        } else if (cfg.n_list) {
            if (load_list(c, (const char *const *)cfg.list, cfg.n_list, dir, &cfg, flags) != CT_OK) goto out;
        } else {
            int miss = first_missing(have_npz, n_npz);
            L = n_npz;
            if (alloc_srcs(L, &where, &kind) != CT_OK) goto out;
            for (int l = 0; l < L; l++) where[l] = fmt_str("%s/layer_%d/params.npz", dir, l), kind[l] = SRC_NPZ;
            for (int l = 0; l < L && miss < 0; l++)
                if (!is_file(where[l])) miss = l;
            if (miss >= 0) {
                ct_error("%s: layer_%d/params.npz is missing (layers must be numbered 0..L-1)", dir, miss);
                goto out;
            }
            if (load_layers(c, L, where, kind, CLT_PER_LAYER, &cfg, flags) != CT_OK) goto out;
        }
    } else {
        ct_error("%s: no transcoder found (expected W_enc_0.safetensors, layer_0.safetensors, layer_0/params.npz, "
                 "or a config.yaml with a transcoders: list)",
                 dir);
        goto out;
    }
    if (set_hooks(c, &cfg) != CT_OK) goto out;
    rc = CT_OK;
out:
    if (where)
        for (int l = 0; l < L; l++) free(where[l]);
    free(where);
    free(kind);
    free(have_enc);
    free(have_plt);
    free(have_npz);
    free(cpath);
    config_free(&cfg);
    return rc;
}

int clt_load(Clt *c, const char *path, int flags) {
    memset(c, 0, sizeof *c);
    int rc;
    if (is_dir(path)) {
        rc = load_dir(c, path, flags);
        if (rc == CT_OK) c->path = strdup(path);
        else clt_free(c);
        return rc;
    }
    if (!is_file(path)) return ct_error("transcoder %s: no such file or directory", path);
    if (!ends_with(path, ".npz") && !ends_with(path, ".safetensors"))
        return ct_error("transcoder %s: expected a directory, a .npz or a per-layer .safetensors file", path);
    return clt_load_list(c, &path, 1, flags);
}

// Layer l's decoder as fp32 (F, n_out, D): the resident pointer, or a converted copy in *tmp.
static const float *decoder_f32(const Clt *c, int l, float **tmp) {
    const CltLayer *ly = &c->layers[l];
    *tmp = NULL;
    if (ly->W_dec) return ly->W_dec;
    size_t n = (size_t)c->F * (size_t)ly->n_out * (size_t)c->D;
    *tmp = malloc(n * sizeof(float));
    if (!*tmp) {
        ct_error("out of memory converting layer %d decoders", l);
        return NULL;
    }
    st_convert_f32(ly->W_dec_dtype, ly->W_dec_raw, *tmp, n);
    return *tmp;
}

static int transpose_copy(const float *src, size_t n, float **out) {
    *out = malloc(n * n * sizeof(float));
    if (!*out) return ct_error("out of memory");
    for (size_t r = 0; r < n; r++)
        for (size_t k = 0; k < n; k++) (*out)[k * n + r] = src[r * n + k];
    return CT_OK;
}

static StWriteItem item(const char *name, StDtype dt, const float *data, int ndim, size_t d0, size_t d1, size_t d2) {
    StWriteItem it;
    memset(&it, 0, sizeof it);
    it.name = name;
    it.dtype = dt;
    it.data = data;
    it.ndim = ndim;
    it.shape[0] = d0, it.shape[1] = d1, it.shape[2] = d2;
    return it;
}

int clt_save(const Clt *c, const char *dir, StDtype dtype) {
    if (dtype != ST_F32 && dtype != ST_BF16 && dtype != ST_F16)
        return ct_error("clt_save: dtype must be F32, BF16 or F16");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return ct_error("cannot create directory %s: %s", dir, strerror(errno));
    if (!is_dir(dir)) return ct_error("%s exists and is not a directory", dir);
    int cross = c->kind == CLT_CROSS_LAYER;
    char *other = path_join(dir, cross ? "layer_0.safetensors" : "W_enc_0.safetensors");
    int clash = is_file(other);
    free(other);
    if (clash)
        return ct_error("%s already holds a %s; refusing to write a %s over it (use an empty directory)", dir,
                        cross ? "per-layer transcoder (layer_0.safetensors)" : "cross-layer transcoder (W_enc_0.safetensors)",
                        cross ? "cross-layer transcoder" : "per-layer transcoder");

    size_t F = (size_t)c->F, D = (size_t)c->D;
    int thr = c->act.kind == CLT_ACT_JUMPRELU;
    for (int l = 0; l < c->L; l++) {
        const CltLayer *ly = &c->layers[l];
        float *dec_tmp = NULL, *skip_t = NULL;
        const float *dec = decoder_f32(c, l, &dec_tmp);
        if (!dec) return CT_ERR;
        char n_enc[32], n_benc[32], n_bdec[32], n_thr[32], n_skip[32], n_dec[32];
        StWriteItem it[6];
        int n = 0, rc;
        if (cross) {
            snprintf(n_enc, sizeof n_enc, "W_enc_%d", l);
            snprintf(n_benc, sizeof n_benc, "b_enc_%d", l);
            snprintf(n_bdec, sizeof n_bdec, "b_dec_%d", l);
            snprintf(n_thr, sizeof n_thr, "threshold_%d", l);
            snprintf(n_skip, sizeof n_skip, "W_skip_%d", l);
            snprintf(n_dec, sizeof n_dec, "W_dec_%d", l);
            it[n++] = item(n_enc, dtype, ly->W_enc, 2, F, D, 0);
            it[n++] = item(n_benc, dtype, ly->b_enc, 1, F, 0, 0);
            it[n++] = item(n_bdec, dtype, ly->b_dec, 1, D, 0, 0);
            if (thr) it[n++] = item(n_thr, dtype, ly->threshold, 1, F, 0, 0);
            if (c->has_skip) {
                // circuit-tracer computes x @ W_skip_i: store the (in, out) transpose.
                if (transpose_copy(ly->W_skip, D, &skip_t) != CT_OK) {
                    free(dec_tmp);
                    return CT_ERR;
                }
                it[n++] = item(n_skip, dtype, skip_t, 2, D, D, 0);
            }
            char *p = fmt_str("%s/W_enc_%d.safetensors", dir, l);
            rc = st_write(p, it, n);
            free(p);
            if (rc == CT_OK) {
                StWriteItem d = item(n_dec, dtype, dec, 3, F, (size_t)ly->n_out, D);
                p = fmt_str("%s/W_dec_%d.safetensors", dir, l);
                rc = st_write(p, &d, 1);
                free(p);
            }
        } else {
            it[n++] = item("W_enc", dtype, ly->W_enc, 2, F, D, 0);
            it[n++] = item("W_dec", dtype, dec, 2, F, D, 0);
            it[n++] = item("b_enc", dtype, ly->b_enc, 1, F, 0, 0);
            it[n++] = item("b_dec", dtype, ly->b_dec, 1, D, 0, 0);
            if (thr) it[n++] = item("activation_function.threshold", dtype, ly->threshold, 1, F, 0, 0);
            if (c->has_skip) it[n++] = item("W_skip", dtype, ly->W_skip, 2, D, D, 0);
            char *p = fmt_str("%s/layer_%d.safetensors", dir, l);
            rc = st_write(p, it, n);
            free(p);
        }
        free(dec_tmp);
        free(skip_t);
        if (rc != CT_OK) return CT_ERR;
    }
    // Stale files of a previous, deeper transcoder would change the layer count on reload.
    for (int l = c->L;; l++) {
        char *a = fmt_str(cross ? "%s/W_enc_%d.safetensors" : "%s/layer_%d.safetensors", dir, l);
        char *b = fmt_str("%s/W_dec_%d.safetensors", dir, l);
        int any = is_file(a) || (cross && is_file(b));
        if (any) {
            unlink(a);
            if (cross) unlink(b);
        }
        free(a);
        free(b);
        if (!any) break;
    }
    char *cp = path_join(dir, "config.yaml");
    int rc = config_write(cp, c);
    free(cp);
    return rc;
}

int clt_check_model(const Clt *c, int L, int D) {
    if (c->L != L)
        return ct_error("%s: the transcoder has %d layers but the model has %d (layer count mismatch)", c->path, c->L,
                        L);
    if (c->D != D) {
        const CltLayer *ly = &c->layers[0];
        size_t got[2], want[2];
        int tr = ly->enc_transposed;
        got[0] = tr ? (size_t)c->D : (size_t)c->F, got[1] = tr ? (size_t)c->F : (size_t)c->D;
        want[0] = tr ? (size_t)D : (size_t)c->F, want[1] = tr ? (size_t)c->F : (size_t)D;
        char g[64], w[64];
        st_shape_str(got, 2, g, sizeof g);
        st_shape_str(want, 2, w, sizeof w);
        return ct_error("%s: tensor %s has shape %s, expected %s = %s for a model with D = %d", ly->src_enc,
                        ly->name_enc, g, tr ? "(D, F)" : "(F, D)", w, D);
    }
    return CT_OK;
}

static int scan_f32(const Clt *c, int l, const char *what, const float *p, size_t n, size_t cols) {
    if (!p) return CT_OK;
    size_t i = st_scan_nonfinite(ST_F32, p, n);
    if (i == SIZE_MAX) return CT_OK;
    return ct_error("%s: layer %d %s has %s at flat index %zu (row %zu, column %zu)", c->path, l, what,
                    p[i] != p[i] ? "NaN" : "Inf", i, i / cols, i % cols);
}

int clt_check_finite(const Clt *c) {
    size_t F = (size_t)c->F, D = (size_t)c->D;
    for (int l = 0; l < c->L; l++) {
        const CltLayer *ly = &c->layers[l];
        size_t nd = F * (size_t)ly->n_out * D;
        if (scan_f32(c, l, "W_enc", ly->W_enc, F * D, D) || scan_f32(c, l, "b_enc", ly->b_enc, F, F) ||
            scan_f32(c, l, "b_dec", ly->b_dec, D, D) || scan_f32(c, l, "threshold", ly->threshold, F, F) ||
            scan_f32(c, l, "W_skip", ly->W_skip, D * D, D) || scan_f32(c, l, "W_dec", ly->W_dec, nd, D))
            return CT_ERR;
        if (!ly->W_dec && ly->W_dec_raw) {
            size_t i = st_scan_nonfinite(ly->W_dec_dtype, ly->W_dec_raw, nd);
            if (i != SIZE_MAX)
                return ct_error("%s: layer %d W_dec has NaN/Inf at flat index %zu (feature %zu)", c->path, l, i,
                                i / ((size_t)ly->n_out * D));
        }
    }
    return CT_OK;
}

// ==== 7. running =================================================================================

static inline size_t dec_offset(const Clt *c, int l, int f, int lo) {
    int col = c->kind == CLT_CROSS_LAYER ? lo - l : 0;
    return ((size_t)f * (size_t)c->layers[l].n_out + (size_t)col) * (size_t)c->D;
}

const float *clt_decoder_row_f32(const Clt *c, int l, int f, int lo) {
    const CltLayer *ly = &c->layers[l];
    return ly->W_dec ? ly->W_dec + dec_offset(c, l, f, lo) : NULL;
}

int clt_decoder_row(const Clt *c, int l, int f, int lo, float *dst) {
    if (l < 0 || l >= c->L || f < 0 || f >= c->F || lo < l || lo >= c->L ||
        (c->kind == CLT_PER_LAYER && lo != l))
        return ct_error("decoder row (layer %d, feature %d, output layer %d) out of range for a %s with L = %d, "
                        "F = %d",
                        l, f, lo, clt_kind_name(c->kind), c->L, c->F);
    const CltLayer *ly = &c->layers[l];
    size_t off = dec_offset(c, l, f, lo);
    if (ly->W_dec) memcpy(dst, ly->W_dec + off, (size_t)c->D * sizeof(float));
    else st_convert_f32(ly->W_dec_dtype, ly->W_dec_raw + off * st_dtype_size(ly->W_dec_dtype), dst, (size_t)c->D);
    return CT_OK;
}

// TopK: "better" = larger value, ties broken by the lower index, so selection is deterministic.
typedef struct TopKItem {
    float v;
    int i;
} TopKItem;
static inline int topk_worse(TopKItem a, TopKItem b) { return a.v < b.v || (a.v == b.v && a.i > b.i); }

static void sift_down(TopKItem *h, int n, int i) {
    for (;;) {
        int w = i, a = 2 * i + 1, b = a + 1;
        if (a < n && topk_worse(h[a], h[w])) w = a;
        if (b < n && topk_worse(h[b], h[w])) w = b;
        if (w == i) return;
        TopKItem t = h[i];
        h[i] = h[w], h[w] = t, i = w;
    }
}

static void act_topk(const float *h, float *a, int F, int k) {
    enum { STACK = 1024 };
    TopKItem stack[STACK], *heap = k <= STACK ? stack : malloc((size_t)k * sizeof *heap);
    if (!heap) {  // cannot select without memory: fall back to ReLU of everything (never expected)
        for (int f = 0; f < F; f++) a[f] = h[f] > 0 ? h[f] : 0;
        return;
    }
    // A min-heap (root = worst kept) of the k best seen so far.
    int n = 0;
    for (int f = 0; f < F; f++) {
        TopKItem it = {h[f] != h[f] ? -__builtin_inff() : h[f], f};
        if (n < k) {
            heap[n++] = it;
            if (n == k)
                for (int i = k / 2 - 1; i >= 0; i--) sift_down(heap, k, i);
        } else if (topk_worse(heap[0], it)) {
            heap[0] = it;
            sift_down(heap, k, 0);
        }
    }
    // a may alias h: read the kept values from the heap after zeroing.
    for (int i = 0; i < n; i++) heap[i].v = h[heap[i].i];
    memset(a, 0, (size_t)F * sizeof *a);
    for (int i = 0; i < n; i++) {
        float v = heap[i].v;
        a[heap[i].i] = simd_jump_act(v, 0.0f);  // ReLU after selection
    }
    if (heap != stack) free(heap);
}

void clt_activate(const Clt *c, int l, const float *h, float *a) {
    int F = c->F;
    if (c->act.kind == CLT_ACT_JUMPRELU) {
        const float *th = c->layers[l].threshold;
        for (int f = 0; f < F; f++) a[f] = simd_jump_act(h[f], th[f]);
    } else if (c->act.kind == CLT_ACT_TOPK) {
        act_topk(h, a, F, c->act.k);
    } else {
        for (int f = 0; f < F; f++) a[f] = simd_jump_act(h[f], 0.0f);
    }
}

void clt_encode(const Clt *c, int l, const float *x, float *pre, float *act) {
    if (c->q8) {   // int8 encoder (engine/quantize.h)
        clt_q8_encode(c, l, x, 1, pre, act);
        return;
    }
    const CltLayer *ly = &c->layers[l];
    float *h = pre ? pre : act;
    simd_kernels()->matvec_f32(h, ly->W_enc, x, (size_t)c->F, (size_t)c->D);
    for (int f = 0; f < c->F; f++) h[f] += ly->b_enc[f];
    clt_activate(c, l, h, act);
}

void clt_encode_batch(const Clt *c, int l, const float *X, int T, float *pre, float *act) {
    if (c->q8) {   // int8 encoder (engine/quantize.h)
        clt_q8_encode(c, l, X, T, pre, act);
        return;
    }
    const CltLayer *ly = &c->layers[l];
    size_t F = (size_t)c->F;
    float *H = pre ? pre : act;
    simd_kernels()->matmul_f32(H, ly->W_enc, X, (size_t)T, F, (size_t)c->D);
    for (int t = 0; t < T; t++) {
        float *h = H + (size_t)t * F;
        for (size_t f = 0; f < F; f++) h[f] += ly->b_enc[f];
        clt_activate(c, l, h, act + (size_t)t * F);
    }
}

int clt_sparse_init(CltSparse *s, int cap) {
    s->n = 0;
    s->cap = cap;
    s->idx = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *s->idx);
    s->val = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *s->val);
    if (!s->idx || !s->val) {
        clt_sparse_free(s);
        return ct_error("out of memory for %d sparse activations", cap);
    }
    return CT_OK;
}

void clt_sparse_free(CltSparse *s) {
    free(s->idx);
    free(s->val);
    memset(s, 0, sizeof *s);
}

void clt_sparsify(const float *act, int F, CltSparse *s) {
    int n = 0;
    for (int f = 0; f < F && n < s->cap; f++)
        if (act[f] != 0.0f) s->idx[n] = f, s->val[n] = act[f], n++;
    s->n = n;
}

void clt_decode_layer_add(const Clt *c, int l, const CltSparse *a, int lo, float *y, float *row) {
    if (c->q8) {   // int8 decoder rows (engine/quantize.h)
        clt_q8_decode_layer_add(c, l, a, lo, y);
        return;
    }
    if (c->kind == CLT_PER_LAYER && lo != l) return;
    if (lo < l) return;
    const SimdKernels *K = simd_kernels();
    const CltLayer *ly = &c->layers[l];
    size_t D = (size_t)c->D, es = st_dtype_size(ly->W_dec_dtype);
    for (int i = 0; i < a->n; i++) {
        size_t off = dec_offset(c, l, a->idx[i], lo);
        const float *r;
        if (ly->W_dec) r = ly->W_dec + off;
        else {
            st_convert_f32(ly->W_dec_dtype, ly->W_dec_raw + off * es, row, D);  // one row at a time
            r = row;
        }
        K->axpy_f32(y, a->val[i], r, D);
    }
}

void clt_decode_add(const Clt *c, int lo, const CltSparse *acts, float *y, float *row) {
    if (c->kind == CLT_PER_LAYER) {
        clt_decode_layer_add(c, lo, &acts[lo], lo, y, row);
        return;
    }
    for (int l = 0; l <= lo; l++) clt_decode_layer_add(c, l, &acts[l], lo, y, row);
}

void clt_skip_add(const Clt *c, int l, const float *x, float *y, float *tmp) {
    if (!c->has_skip) return;
    const SimdKernels *K = simd_kernels();
    K->matvec_f32(tmp, c->layers[l].W_skip, x, (size_t)c->D, (size_t)c->D);
    K->axpy_f32(y, 1.0f, tmp, (size_t)c->D);
}

int clt_work_init(CltWork *w, const Clt *c) {
    memset(w, 0, sizeof *w);
    size_t F = (size_t)c->F, D = (size_t)c->D, L = (size_t)c->L;
    w->pre = malloc(F * sizeof(float));
    w->act = malloc(L * F * sizeof(float));
    w->row = malloc(D * sizeof(float));
    w->tmp = malloc(D * sizeof(float));
    w->sp = calloc(L, sizeof *w->sp);
    if (!w->pre || !w->act || !w->row || !w->tmp || !w->sp) {
        clt_work_free(w);
        return ct_error("out of memory for the transcoder workspace");
    }
    for (size_t l = 0; l < L; l++)
        if (clt_sparse_init(&w->sp[l], c->F) != CT_OK) {
            clt_work_free(w);
            return CT_ERR;
        }
    w->sp_n = c->L;
    return CT_OK;
}

void clt_work_free(CltWork *w) {
    if (w->sp)
        for (int l = 0; l < w->sp_n; l++) clt_sparse_free(&w->sp[l]);
    free(w->sp);
    free(w->pre);
    free(w->act);
    free(w->row);
    free(w->tmp);
    memset(w, 0, sizeof *w);
}

void clt_reconstruct(const Clt *c, const float *x, float *y, CltWork *w) {
    size_t F = (size_t)c->F, D = (size_t)c->D;
    for (int l = 0; l < c->L; l++) {
        clt_encode(c, l, x + (size_t)l * D, w->pre, w->act + (size_t)l * F);
        clt_sparsify(w->act + (size_t)l * F, c->F, &w->sp[l]);
    }
    for (int lo = 0; lo < c->L; lo++) {
        float *yl = y + (size_t)lo * D;
        memcpy(yl, c->layers[lo].b_dec, D * sizeof(float));
        clt_decode_add(c, lo, w->sp, yl, w->row);
        clt_skip_add(c, lo, x + (size_t)lo * D, yl, w->tmp);
    }
}

// xxh3 of the transcoder: its fp32 parameter block, then every decoder not inside it.
uint64_t clt_fingerprint(const Clt *c) {
    uint64_t h[2];
    h[0] = ct_hash64(c->params, c->n_params * sizeof(float));
    const float *p0 = c->params, *p1 = c->params + c->n_params;
    for (int l = 0; l < c->L; l++) {
        const CltLayer *ly = &c->layers[l];
        size_t n = (size_t)c->F * (size_t)ly->n_out * (size_t)c->D;
        uint64_t hd = 0;
        if (ly->W_dec && (ly->W_dec < p0 || ly->W_dec >= p1)) hd = ct_hash64(ly->W_dec, n * sizeof(float));
        else if (!ly->W_dec && ly->W_dec_raw) hd = ct_hash64(ly->W_dec_raw, n * st_dtype_size(ly->W_dec_dtype));
        else continue;
        h[1] = hd;
        h[0] = ct_hash64(h, sizeof h);
    }
    return h[0];
}
