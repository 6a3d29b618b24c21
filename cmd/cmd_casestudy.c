// cmd_casestudy.c — `ctrace casestudy`: trace prompts to their expected answers and test each
// graph with interventions (engine/casestudy.h); writes the graph JSON and SVG of every case.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/cli.h"
#include "engine/casestudy.h"
#include "engine/clt.h"
#include "engine/graph_io.h"
#include "engine/render.h"
#include "engine/tokenizer.h"

#define MAX_CASES 64

void help_casestudy(void) {
    printf("usage: ctrace casestudy MODEL [-z TOKENIZER] --clt DIR --case NAME PROMPT ANSWER [--case ...]\n"
           "                        [-o DIR] [--max-feature-nodes N] [--threads N]\n"
           "For each case: the attribution graph of PROMPT's next token, checked against the expected\n"
           "ANSWER (its first token is the traced logit): the model's prediction, graph scores, the top\n"
           "features by influence, the strongest kept path from every prompt token to the answer logit,\n"
           "and the most influential feature ablated (constrained: must match the graph's edge; open:\n"
           "what the real model then predicts).  With -o, writes DIR/NAME.json (viewer) and\n"
           "DIR/NAME.svg, and DIR/graph-metadata.json.  Exit 1 when a constrained ablation disagrees\n"
           "with its edge by more than 1e-3 relative.\n");
}

int cmd_casestudy(int argc, char **argv) {
    const char *cmd = "casestudy", *model_path = NULL, *tok_path = NULL, *clt_path = NULL, *out = NULL;
    const char *names[MAX_CASES], *prompts[MAX_CASES], *answers[MAX_CASES];
    int n = 0;
    long threads = 0, max_nodes = 4096;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) { help_casestudy(); return 0; }
        if (!strcmp(a, "-z") || !strcmp(a, "--tokenizer")) { if (!(tok_path = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--clt")) { if (!(clt_path = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) { if (!(out = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--threads")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 0, 4096, &threads)) return 2; }
        else if (!strcmp(a, "--max-feature-nodes")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 1, 1 << 30, &max_nodes)) return 2; }
        else if (!strcmp(a, "--case")) {
            if (i + 3 >= argc) return cli_usage(cmd, "--case needs NAME PROMPT ANSWER");
            if (n == MAX_CASES) return cli_usage(cmd, "--case: at most %d cases", MAX_CASES);
            names[n] = argv[i + 1], prompts[n] = argv[i + 2], answers[n] = argv[i + 3];
            for (const char *c = names[n]; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_'))
                    return cli_usage(cmd, "--case: NAME '%s' must be letters, digits, '-' or '_' (it names files)", names[n]);
            if (!*answers[n]) return cli_usage(cmd, "--case %s: the ANSWER is empty", names[n]);
            n++;
            i += 3;
        }
        else if (a[0] == '-') return cli_usage(cmd, "unknown option %s", a);
        else if (!model_path) model_path = a;
        else return cli_usage(cmd, "unexpected argument '%s'", a);
    }
    if (!model_path) return cli_usage(cmd, "missing MODEL");
    if (!clt_path) return cli_usage(cmd, "missing --clt DIR");
    if (!n) return cli_usage(cmd, "no cases: give at least one --case NAME PROMPT ANSWER");
    if (out && mkdir(out, 0755) != 0 && errno != EEXIST) {
        ct_error("-o %s: cannot create the directory: %s", out, strerror(errno));
        return cli_fail(cmd);
    }

    Model m;
    Tokenizer tk;
    Clt clt;
    memset(&clt, 0, sizeof clt);
    int rc = 1, have_tk = 0, bad = 0;
    ThreadPool *pool = NULL;
    if (model_open(&m, model_path) != CT_OK) return cli_fail(cmd);
    if (tokenizer_open(&tk, tok_path, model_path, m.c.vocab_size) != CT_OK) goto done;
    have_tk = 1;
    if (clt_load(&clt, clt_path, 0) != CT_OK) goto done;
    if (clt_check_model(&clt, m.c.n_layers, m.c.dim) != CT_OK) goto done;
    if (!(pool = pool_create((int)threads))) goto done;
    CaseOptions o;
    case_options_default(&o);
    o.max_feature_nodes = (int)max_nodes;
    o.pool = pool;
    o.model_path = model_path;
    o.clt_path = clt_path;
    for (int k = 0; k < n; k++) {
        CaseResult r;
        o.slug = names[k];
        if (case_trace(&m, &tk, &clt, prompts[k], answers[k], &o, &r) != CT_OK) {
            case_result_free(&r);
            goto done;
        }
        case_print(stdout, &tk, names[k], prompts[k], answers[k], &r);
        if (r.iv_node >= 0 && fabs(r.iv_constrained - r.iv_pred) > 1e-3 * (fabs(r.iv_pred) + 1e-3)) bad++;
        if (out) {
            size_t len = strlen(out) + strlen(names[k]) + 8;
            char *pj = malloc(len), *ps = malloc(len);
            int ok = pj && ps;
            if (ok) snprintf(pj, len, "%s/%s.json", out, names[k]), snprintf(ps, len, "%s/%s.svg", out, names[k]);
            RenderOptions ro;
            render_options_default(&ro);
            ok = ok && graph_write_json(&r.g, pj, 0) == CT_OK && graph_update_index(out, &r.g, 0) == CT_OK &&
                 render_graph_file(&r.g, &ro, ps) == CT_OK;
            if (ok) printf("  wrote %s, %s\n", pj, ps);
            free(pj), free(ps);
            if (!ok) { case_result_free(&r); goto done; }
        }
        printf("\n");
        case_result_free(&r);
    }
    if (bad) { ct_error("%d case(s): the constrained ablation disagrees with the graph's edge", bad); goto done; }
    rc = 0;
done:
    if (rc) cli_fail(cmd);
    pool_destroy(pool);
    clt_free(&clt);
    if (have_tk) tokenizer_free(&tk);
    model_free(&m);
    return rc;
}
