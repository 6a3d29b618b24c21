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
#include "engine/curriculum.h"
#include "engine/graph_io.h"
#include "engine/render.h"
#include "engine/tokenizer.h"

#define MAX_CASES 64

void help_casestudy(void) {
    printf("usage: ctrace casestudy MODEL [-z TOKENIZER] --clt DIR --case NAME PROMPT ANSWER [--case ...]\n"
           "                        [-o DIR] [--max-feature-nodes N] [--threads N]\n"
           "       ctrace casestudy MODEL -z TOK --clt DIR --curriculum SEED [--per-task N] [--check]\n"
           "                        [--min-accuracy X] [-o DIR]\n"
           "For each case: the attribution graph of PROMPT's next token, checked against the expected\n"
           "ANSWER (its first token is the traced logit): the model's prediction, graph scores, the top\n"
           "features by influence, the strongest kept path from every prompt token to the answer logit,\n"
           "and the most influential feature ablated (constrained: must match the graph's edge; open:\n"
           "what the real model then predicts).  With -o, writes DIR/NAME.json (viewer) and\n"
           "DIR/NAME.svg, and DIR/graph-metadata.json.  Exit 1 when a constrained ablation disagrees\n"
           "with its edge by more than 1e-3 relative.\n"
           "--curriculum SEED: for a model trained on `ctrace curriculum --seed SEED`: the held-out\n"
           "accuracy of every task (--per-task prompts each, default 200), then the paper's case\n"
           "studies on held-out prompts: acronym (first letter), addition (ones digit), fact recall,\n"
           "two-hop recall, each with the token groups its graph must connect to the answer.\n"
           "--check: exit 1 unless every task's held-out accuracy >= --min-accuracy (0.95), every\n"
           "case is answered correctly, and every group has a kept path to the answer logit.\n");
}

int cmd_casestudy(int argc, char **argv) {
    const char *cmd = "casestudy", *model_path = NULL, *tok_path = NULL, *clt_path = NULL, *out = NULL;
    const char *names[MAX_CASES], *prompts[MAX_CASES], *answers[MAX_CASES];
    int n = 0, check = 0, have_cur = 0;
    long threads = 0, max_nodes = 4096, per_task = 200;
    uint64_t cur_seed = 0;
    double min_acc = 0.95;
    CaseSpec specs[4];
    int spec_of[MAX_CASES];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) { help_casestudy(); return 0; }
        if (!strcmp(a, "-z") || !strcmp(a, "--tokenizer")) { if (!(tok_path = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--clt")) { if (!(clt_path = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) { if (!(out = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--threads")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 0, 4096, &threads)) return 2; }
        else if (!strcmp(a, "--max-feature-nodes")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 1, 1 << 30, &max_nodes)) return 2; }
        else if (!strcmp(a, "--curriculum")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_u64(cmd, a, v, &cur_seed)) return 2; have_cur = 1; }
        else if (!strcmp(a, "--per-task")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 1, 1 << 20, &per_task)) return 2; }
        else if (!strcmp(a, "--min-accuracy")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_float(cmd, a, v, 0, 1, &min_acc)) return 2; }
        else if (!strcmp(a, "--check")) check = 1;
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
    if (!n && !have_cur) return cli_usage(cmd, "no cases: give --curriculum SEED or at least one --case NAME PROMPT ANSWER");
    if (have_cur && n + 4 > MAX_CASES) return cli_usage(cmd, "--case: at most %d cases with --curriculum", MAX_CASES - 4);
    for (int k = 0; k < n; k++) spec_of[k] = -1;
    if (out && mkdir(out, 0755) != 0 && errno != EEXIST) {
        ct_error("-o %s: cannot create the directory: %s", out, strerror(errno));
        return cli_fail(cmd);
    }

    Model m;
    Tokenizer tk;
    Clt clt;
    memset(&clt, 0, sizeof clt);
    CurWorld world;
    memset(&world, 0, sizeof world);
    int rc = 1, have_tk = 0, bad = 0, have_world = 0;
    ThreadPool *pool = NULL;
    if (model_open(&m, model_path) != CT_OK) return cli_fail(cmd);
    if (tokenizer_open(&tk, tok_path, model_path, m.c.vocab_size) != CT_OK) goto done;
    have_tk = 1;
    if (clt_load(&clt, clt_path, 0) != CT_OK) goto done;
    if (clt_check_model(&clt, m.c.n_layers, m.c.dim) != CT_OK) goto done;
    if (!(pool = pool_create((int)threads))) goto done;
    if (have_cur) {
        // held-out accuracy of every task, then the four built-in cases
        if (curriculum_world_init(&world, cur_seed) != CT_OK) goto done;
        have_world = 1;
        CurEvalResult er;
        if (curriculum_eval_model(&world, &tk, &m, pool, CUR_SPLIT_HELDOUT, (int)per_task, &er) != CT_OK) goto done;
        printf("## held-out accuracy (curriculum seed %llu, greedy, up to %ld prompts per task)\n\n",
               (unsigned long long)cur_seed, per_task);
        curriculum_eval_print(stdout, &er, 1);
        printf("\n");
        for (int t = 0; t < CUR_NTASKS; t++)
            if (check && er.n[t] > 0 && er.acc[t] < min_acc) {
                printf("  CHECK: %s held-out accuracy %.3f < %.3f\n", curriculum_task_name(t), er.acc[t], min_acc);
                bad++;
            }
        const int tasks[4] = {CUR_ACRONYM, CUR_ADDITION, CUR_FACT, CUR_TWOHOP};
        for (int k = 0; k < 4; k++) {
            if (case_builtin(&world, &tk, tasks[k], 0, &specs[k]) != CT_OK) goto done;
            names[n] = specs[k].name, prompts[n] = specs[k].prompt, answers[n] = specs[k].answer;
            spec_of[n++] = k;
        }
        printf("## case studies (held-out prompts)\n\n");
    }
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
        if (r.iv_node >= 0 && fabs(r.iv_constrained - r.iv_pred) > 1e-3 * (fabs(r.iv_pred) + 1e-3)) {
            printf("  CHECK: the constrained ablation disagrees with the graph's edge\n");
            bad++;
        }
        if (spec_of[k] >= 0) {
            const CaseSpec *sp = &specs[spec_of[k]];
            const char *miss = NULL;
            int paths = case_paths_ok(sp, &r, &miss);
            printf("  check: groups");
            for (int g = 0; g < sp->n_groups; g++) {
                printf(" %s [", sp->group_name[g]);
                for (int j = 0; j < sp->group_n[g]; j++) printf("%s%d", j ? "," : "", sp->group_pos[g][j]);
                printf("]");
            }
            printf(" -> answer: %s; model answer %s\n", paths ? "every group has a kept path" : "MISSING",
                   r.predicted_token == r.answer_token ? "correct" : "WRONG");
            for (int g = 0; g < sp->n_groups; g++) {
                int na = 0, top1 = -1;
                double dlog = 0;
                if (case_ablate_positions(&m, &clt, &r, sp->group_pos[g], sp->group_n[g], pool, &na, &top1, &dlog) != CT_OK) {
                    case_result_free(&r);
                    goto done;
                }
                if (na)
                    printf("  ablate the %d kept features at the %s tokens (open, real model): answer logit %+.3f, "
                           "top-1 '%s' -> '%s'\n", na, sp->group_name[g], dlog,
                           tokenizer_decode(&tk, -1, r.predicted_token), tokenizer_decode(&tk, -1, top1));
            }
            if (check && !paths) { printf("  CHECK: group '%s' has no kept path to the answer\n", miss); bad++; }
            if (check && r.predicted_token != r.answer_token) { printf("  CHECK: the model gets this case wrong\n"); bad++; }
        }
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
    if (bad) { ct_error("%d check(s) failed (lines marked CHECK above)", bad); goto done; }
    rc = 0;
done:
    if (rc) cli_fail(cmd);
    pool_destroy(pool);
    if (have_world) curriculum_world_free(&world);
    clt_free(&clt);
    if (have_tk) tokenizer_free(&tk);
    model_free(&m);
    return rc;
}
