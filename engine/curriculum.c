// curriculum.c — synthetic training curriculum for ctrace's default model: built-in word
// lists, an invented world drawn from a seed, the line generator with its held-out rules,
// the matching tokenizer.bin, and greedy held-out evaluation. See curriculum.h for the
// line formats and what "held out" means per task.
#include "engine/curriculum.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

// ----------------------------------------------------------------------------------------
// word lists (invented names; every word is letters only, at most one capital, and all
// lists are pairwise disjoint — tests/test_curriculum.c checks both)

static const char *const FIRST_NAMES[] = {
    "Ravi", "Mira", "Tomas", "Lena", "Oren", "Ada", "Kofi", "Nina", "Bram", "Ilse", "Dara", "Emil",
    "Suki", "Tavi", "Juno", "Pia", "Remy", "Yara", "Otto", "Zane", "Hugo", "Vera", "Anouk", "Felix",
};
static const char *const SURNAMES[] = {
    "Olsen", "Varga", "Quill", "Tarn", "Holm", "Vesk", "Pruitt", "Lask", "Morrow", "Fenn",
    "Castel", "Dunmore", "Harlo", "Brask", "Okoro", "Mendel", "Sato", "Roux", "Keller", "Ibsen",
};
static const char *const SPORTS[] = {
    "hockey", "tennis", "soccer", "rugby", "cricket", "golf", "rowing", "boxing",
};
static const char *const STATES[] = {
    "Kestra", "Varnia", "Tolmar", "Ostrel", "Belmar", "Drava", "Lunor", "Pellan",
    "Corvia", "Sarnet", "Hadria", "Zemra", "Isken", "Mordane", "Quessa", "Arvel",
};
static const char *const CITIES[] = {
    "Brenmoor", "Caldrin", "Dorwick", "Elmsby", "Farnel", "Glenra", "Halvik", "Irmont", "Jorvel", "Kelmor",
    "Lindar", "Mossel", "Norvik", "Ostby", "Pirran", "Quenby", "Rhosk", "Sallow", "Tirrel", "Ulvane",
    "Velmont", "Wendry", "Yarrow", "Zelby", "Ambry", "Bexmoor", "Corrin", "Delvik", "Esker", "Fallon",
    "Gorvel", "Hessby", "Istra", "Jessel", "Korran", "Lowick", "Marrel", "Nethby", "Orvane", "Pellick",
    "Rendel", "Sorvik", "Tamber", "Umber", "Varro", "Wexby", "Yelden", "Zorran", "Aldric", "Brinley",
    "Cressel", "Dunvik", "Ellory", "Fenwick", "Garrow", "Hollin", "Ivel", "Jarrow", "Kirrin", "Lessby",
    "Morvik", "Nolby", "Orrel", "Pasco", "Rillby", "Sennet", "Tolvik", "Urrel", "Vantor", "Wolsey",
    "Yarby", "Zennor", "Aberly", "Bollin", "Carrow", "Dressel", "Elwin", "Falk", "Gilby", "Harrow",
};
// Organisation names: "The" + ORG_A + ORG_B [+ another ORG_B] + ORG_C.
static const char *const ORG_A[] = {
    "National", "Digital", "Central", "Global", "Royal", "United", "Modern",
    "Northern", "Federal", "Pacific", "Urban", "Western", "Eastern", "Open",
};
static const char *const ORG_B[] = {
    "Analytics", "Research", "Science", "Energy", "Health", "Water", "Trade",
    "Media", "Space", "Ocean", "Forest", "Labor", "Youth", "Design",
};
static const char *const ORG_C[] = {
    "Group", "Society", "Council", "Institute", "Agency", "Union", "League", "Board", "Trust",
    "Alliance",
};
// Words of the task templates and of the prose sentences.
static const char *const GLUE[] = {
    "The", "the", "calc", "Fact", "plays", "sport", "of", "played", "by", "is", "a", "famous",
    "player", "in", "state", "containing", "capital", "whose", "walked", "ran", "went",
    "drove", "to", "sat", "near", "saw", "was", "and", "gave", "They", "home", "after",
    "found", "road", "long", "trains", "every", "for", "on", "weekend",
};
static const char *const ADJS[] = {
    "old", "small", "big", "red", "green", "quiet", "cold", "warm", "bright", "dark",
};
static const char *const ANIMALS[] = { "dog", "cat", "bird", "horse", "fox", "goat" };
static const char *const THINGS[] = {
    "book", "lamp", "boat", "cup", "bread", "letter", "coat", "box", "map", "key",
};
static const char *const PLACES[] = {
    "market", "river", "hill", "garden", "school", "harbor", "house", "bridge", "field", "station",
};
static const char *const TIMES[] = { "morning", "evening", "night", "day", "winter", "summer" };
static const char *const MOTIONS[] = { "walked", "ran", "went", "drove" };   // subset of GLUE

#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define N_FIRST NELEM(FIRST_NAMES)
#define N_LAST NELEM(SURNAMES)
#define N_SPORTS NELEM(SPORTS)
#define N_CITIES NELEM(CITIES)
#define N_OA NELEM(ORG_A)
#define N_OB NELEM(ORG_B)
#define N_OC NELEM(ORG_C)

_Static_assert(NELEM(STATES) == CUR_N_STATES, "one name per state");
_Static_assert(NELEM(CITIES) == CUR_N_STATES * CUR_CITIES_PER_STATE, "one name per city");
_Static_assert(N_FIRST * N_LAST >= CUR_N_PEOPLE, "enough name pairs for the people");
_Static_assert(N_OA <= 32 && N_OB <= 32 && N_OC <= 32, "acronym codes pack 5 bits per word");

// Every list whose words the tokenizer must hold (MOTIONS is a subset of GLUE).
static const struct { const char *const *w; int n; } WORD_LISTS[] = {
    {FIRST_NAMES, N_FIRST}, {SURNAMES, N_LAST}, {SPORTS, N_SPORTS}, {STATES, CUR_N_STATES},
    {CITIES, N_CITIES},     {ORG_A, N_OA},      {ORG_B, N_OB},       {ORG_C, N_OC},
    {GLUE, NELEM(GLUE)},    {ADJS, NELEM(ADJS)}, {ANIMALS, NELEM(ANIMALS)},
    {THINGS, NELEM(THINGS)}, {PLACES, NELEM(PLACES)}, {TIMES, NELEM(TIMES)},
};

int curriculum_word_count(void) {
    int n = 0;
    for (int i = 0; i < NELEM(WORD_LISTS); i++) n += WORD_LISTS[i].n;
    return n;
}

const char *curriculum_word(int i) {
    if (i < 0) return NULL;
    for (int k = 0; k < NELEM(WORD_LISTS); k++) {
        if (i < WORD_LISTS[k].n) return WORD_LISTS[k].w[i];
        i -= WORD_LISTS[k].n;
    }
    return NULL;
}

static const char *const TASK_NAMES[CUR_NTASKS] = {
    "acronym", "addition", "fact", "geo", "twohop", "prose",
};

const char *curriculum_task_name(int task) {
    return task >= 0 && task < CUR_NTASKS ? TASK_NAMES[task] : NULL;
}

int curriculum_task_from_name(const char *name) {
    for (int i = 0; name && i < CUR_NTASKS; i++)
        if (!strcmp(name, TASK_NAMES[i])) return i;
    return -1;
}

void curriculum_defaults(CurriculumOptions *o) {
    memset(o, 0, sizeof *o);
    o->seed = 1;
    // Addition gets the largest share: 7290 trainable pairs and carries need many examples;
    // the memorised tables (160 people, 96 place names) need far fewer lines each.
    o->weight[CUR_ACRONYM] = 0.17;
    o->weight[CUR_ADDITION] = 0.28;
    o->weight[CUR_FACT] = 0.20;
    o->weight[CUR_GEO] = 0.12;
    o->weight[CUR_TWOHOP] = 0.10;
    o->weight[CUR_PROSE] = 0.13;
    o->fact_prefix_p = 0.25;
}

int curriculum_parse_mix(CurriculumOptions *o, const char *spec) {
    if (!spec || !*spec)
        return ct_error("curriculum mix: expected \"task=weight,...\" (tasks acronym, addition, "
                        "fact, geo, twohop, prose), got an empty string");
    const char *p = spec;
    for (int item = 1;; item++) {
        const char *e = strchr(p, ','), *eq = strchr(p, '=');
        if (!e) e = p + strlen(p);
        if (!eq || eq > e)
            return ct_error("curriculum mix \"%s\": item %d: expected task=weight, got \"%.*s\"",
                            spec, item, (int)(e - p), p);
        char name[32];
        int nl = (int)(eq - p);
        if (nl <= 0 || nl >= (int)sizeof name)
            return ct_error("curriculum mix \"%s\": item %d: expected a task name before '=', "
                            "got \"%.*s\"", spec, item, nl, p);
        memcpy(name, p, (size_t)nl);
        name[nl] = '\0';
        int task = curriculum_task_from_name(name);
        if (task < 0)
            return ct_error("curriculum mix \"%s\": item %d: expected a task among acronym, "
                            "addition, fact, geo, twohop, prose, got \"%s\"", spec, item, name);
        char num[64], *end;
        int vl = (int)(e - eq - 1);
        if (vl <= 0 || vl >= (int)sizeof num)
            return ct_error("curriculum mix \"%s\": item %d (%s): expected a weight >= 0, got "
                            "\"%.*s\"", spec, item, name, vl > 0 ? vl : 0, eq + 1);
        memcpy(num, eq + 1, (size_t)vl);
        num[vl] = '\0';
        double v = strtod(num, &end);
        if (*end || end == num || !(v >= 0) || v > 1e9)
            return ct_error("curriculum mix \"%s\": item %d (%s): expected a weight >= 0, got "
                            "\"%s\"", spec, item, name, num);
        o->weight[task] = v;
        if (!*e) break;
        p = e + 1;
    }
    return CT_OK;
}

static int check_options(const CurriculumOptions *o) {
    double sum = 0;
    for (int i = 0; i < CUR_NTASKS; i++) {
        if (!(o->weight[i] >= 0) || o->weight[i] > 1e9)
            return ct_error("curriculum options: weight of %s: expected a finite value >= 0, "
                            "got %g", TASK_NAMES[i], o->weight[i]);
        sum += o->weight[i];
    }
    if (!(sum > 0))
        return ct_error("curriculum options: weights: expected a positive sum, got %g (every "
                        "task has weight 0)", sum);
    if (!(o->fact_prefix_p >= 0 && o->fact_prefix_p <= 1))
        return ct_error("curriculum options: fact_prefix_p: expected a probability in [0, 1], "
                        "got %g", o->fact_prefix_p);
    return CT_OK;
}

// ----------------------------------------------------------------------------------------
// randomness: splitmix64 (a counter through a bijective mixer), the same on every platform

typedef struct CurRng { uint64_t s; } CurRng;

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static uint64_t rng_next(CurRng *r) { return mix64(r->s += 0x9E3779B97F4A7C15ull); }
// Modulo bias is below n / 2^64: irrelevant for these n, and exact across platforms.
static uint32_t rng_below(CurRng *r, uint32_t n) { return (uint32_t)(rng_next(r) % n); }
static double rng_unit(CurRng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

static void shuffle_u32(uint32_t *a, int n, CurRng *r) {
    for (int i = n - 1; i > 0; i--) {
        uint32_t j = rng_below(r, (uint32_t)i + 1), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

// Salts keep the streams of one seed independent of each other.
#define SALT_WORLD 0x5EED0001C0FFEE01ull
#define SALT_LINES 0x5EED0002C0FFEE02ull
#define SALT_ADD   0xADD0ADD0ADD0ADD0ull
#define SALT_ACR   0xAC20AC20AC20AC20ull

// ----------------------------------------------------------------------------------------
// held-out rules and instance codes
//
// Codes (uint32):  acronym  form | a << 1 | b1 << 6 | b2 << 11 | c << 16
//                           (form 0: The A B1 C; form 1: The A B1 B2 C, B2 != B1)
//                  addition 100 a + b
//                  fact     CUR_FACT_TEMPLATES person + template (F0..F4)
//                  geo      4 id + kind                   (G0, G1: id = city; G2, G3: id = state)
//                  twohop   3 city + variant              (T0, "Fact:" T0, T1)

static int addition_heldout(int a, int b) {
    return mix64(SALT_ADD ^ (uint64_t)(100 * a + b)) % 10 == 0;
}
static uint32_t acronym_code(int form, int a, int b1, int b2, int c) {
    return (uint32_t)form | (uint32_t)a << 1 | (uint32_t)b1 << 6 | (uint32_t)b2 << 11 |
           (uint32_t)c << 16;
}
static int acronym_heldout(uint32_t code) { return mix64(SALT_ACR ^ code) % 10 == 0; }

// Growable list of codes.
typedef struct U32Vec { uint32_t *a; int n, cap; } U32Vec;
static int vec_push(U32Vec *v, uint32_t x) {
    if (v->n == v->cap) {
        int cap = v->cap ? 2 * v->cap : 256;
        uint32_t *p = realloc(v->a, (size_t)cap * sizeof *p);
        if (!p) return ct_error("curriculum: out of memory for %d instance codes", cap);
        v->a = p;
        v->cap = cap;
    }
    v->a[v->n++] = x;
    return CT_OK;
}

void curriculum_world_free(CurWorld *w) {
    if (!w) return;
    for (int t = 0; t < CUR_NTASKS; t++)
        for (int s = 0; s < 2; s++) {
            free(w->list[t][s]);
            w->list[t][s] = NULL;
            w->count[t][s] = 0;
        }
}

int curriculum_world_init(CurWorld *w, uint64_t seed) {
    memset(w, 0, sizeof *w);
    w->seed = seed;
    CurRng r = {mix64(seed ^ SALT_WORLD)};

    // People: a random 160 of the 480 first/last pairs; sports balanced (20 each), shuffled.
    uint32_t pairs[N_FIRST * N_LAST], sport[CUR_N_PEOPLE];
    for (int i = 0; i < N_FIRST * N_LAST; i++) pairs[i] = (uint32_t)i;
    shuffle_u32(pairs, N_FIRST * N_LAST, &r);
    for (int p = 0; p < CUR_N_PEOPLE; p++) sport[p] = (uint32_t)(p % N_SPORTS);
    shuffle_u32(sport, CUR_N_PEOPLE, &r);
    for (int p = 0; p < CUR_N_PEOPLE; p++) {
        w->person_first[p] = (int)(pairs[p] / N_LAST);
        w->person_last[p] = (int)(pairs[p] % N_LAST);
        w->person_sport[p] = (int)sport[p];
        w->person_heldout_tmpl[p] = (int)rng_below(&r, CUR_FACT_TEMPLATES);
    }
    // Geography: cities shuffled into states, 5 each; slot 0 is the capital, slot 1 (a random
    // non-capital, since the order is shuffled) is held out of the two-hop lines.
    uint32_t city[N_CITIES];
    for (int i = 0; i < N_CITIES; i++) city[i] = (uint32_t)i;
    shuffle_u32(city, N_CITIES, &r);
    for (int s = 0; s < CUR_N_STATES; s++) {
        for (int k = 0; k < CUR_CITIES_PER_STATE; k++) {
            int c = (int)city[s * CUR_CITIES_PER_STATE + k];
            w->state_city[s][k] = c;
            w->city_state[c] = s;
        }
        w->state_heldout_city[s] = w->state_city[s][1];
    }

    // Instance lists per task and split.
    U32Vec v[CUR_NTASKS][2];
    memset(v, 0, sizeof v);
    int rc = CT_OK;
    for (int a = 10; a <= 99 && rc == CT_OK; a++)
        for (int b = 10; b <= 99 && rc == CT_OK; b++)
            rc = vec_push(&v[CUR_ADDITION][addition_heldout(a, b) ? 0 : 1], (uint32_t)(100 * a + b));
    for (int form = 0; form < 2 && rc == CT_OK; form++)
        for (int a = 0; a < N_OA && rc == CT_OK; a++)
            for (int b1 = 0; b1 < N_OB && rc == CT_OK; b1++)
                for (int b2 = 0; b2 < (form ? N_OB : 1) && rc == CT_OK; b2++)
                    for (int c = 0; c < N_OC && rc == CT_OK; c++) {
                        if (form && b2 == b1) continue;
                        uint32_t code = acronym_code(form, a, b1, b2, c);
                        rc = vec_push(&v[CUR_ACRONYM][acronym_heldout(code) ? 0 : 1], code);
                    }
    for (int p = 0; p < CUR_N_PEOPLE && rc == CT_OK; p++)
        for (int t = 0; t < CUR_FACT_TEMPLATES && rc == CT_OK; t++)
            rc = vec_push(&v[CUR_FACT][t == w->person_heldout_tmpl[p] ? 0 : 1],
                          (uint32_t)(CUR_FACT_TEMPLATES * p + t));
    for (int c = 0; c < N_CITIES && rc == CT_OK; c++)
        for (int kind = 0; kind < 2 && rc == CT_OK; kind++)
            rc = vec_push(&v[CUR_GEO][1], (uint32_t)(4 * c + kind));
    for (int s = 0; s < CUR_N_STATES && rc == CT_OK; s++)
        for (int kind = 2; kind < 4 && rc == CT_OK; kind++)
            rc = vec_push(&v[CUR_GEO][1], (uint32_t)(4 * s + kind));
    for (int s = 0; s < CUR_N_STATES && rc == CT_OK; s++)
        for (int k = 1; k < CUR_CITIES_PER_STATE && rc == CT_OK; k++) {   // k = 0: the capital
            int c = w->state_city[s][k], held = c == w->state_heldout_city[s];
            for (int var = 0; var < 3 && rc == CT_OK; var++)
                rc = vec_push(&v[CUR_TWOHOP][held ? 0 : 1], (uint32_t)(3 * c + var));
        }
    for (int t = 0; t < CUR_NTASKS; t++)
        for (int s = 0; s < 2; s++) {
            if (rc == CT_OK) shuffle_u32(v[t][s].a, v[t][s].n, &r);
            w->list[t][s] = v[t][s].a;
            w->count[t][s] = v[t][s].n;
        }
    if (rc != CT_OK) curriculum_world_free(w);
    return rc;
}

int curriculum_count(const CurWorld *w, int task, int split) {
    if (!w || task < 0 || task >= CUR_NTASKS || (split != 0 && split != 1)) return 0;
    return w->count[task][split];
}

// ----------------------------------------------------------------------------------------
// rendering an instance code as prompt / answer / suffix

#define SET(field, ...) snprintf(out->field, sizeof out->field, __VA_ARGS__)

static void render(const CurWorld *w, int task, uint32_t code, int fact_prefix, CurInstance *out) {
    memset(out, 0, sizeof *out);
    out->task = task;
    const char *pre = fact_prefix ? "Fact: " : "";
    switch (task) {
    case CUR_ACRONYM: {
        int form = (int)(code & 1), a = (int)(code >> 1 & 31), b1 = (int)(code >> 6 & 31);
        int b2 = (int)(code >> 11 & 31), c = (int)(code >> 16 & 31);
        if (form) {
            SET(prompt, "The %s %s %s %s (", ORG_A[a], ORG_B[b1], ORG_B[b2], ORG_C[c]);
            SET(answer, "%c%c%c%c)", ORG_A[a][0], ORG_B[b1][0], ORG_B[b2][0], ORG_C[c][0]);
        } else {
            SET(prompt, "The %s %s %s (", ORG_A[a], ORG_B[b1], ORG_C[c]);
            SET(answer, "%c%c%c)", ORG_A[a][0], ORG_B[b1][0], ORG_C[c][0]);
        }
        break;
    }
    case CUR_ADDITION: {
        int a = (int)code / 100, b = (int)code % 100;
        SET(prompt, "calc: %d+%d=", a, b);
        SET(answer, "%d", a + b);
        break;
    }
    case CUR_FACT: {
        int p = (int)code / CUR_FACT_TEMPLATES, t = (int)code % CUR_FACT_TEMPLATES;
        const char *f = FIRST_NAMES[w->person_first[p]], *l = SURNAMES[w->person_last[p]];
        const char *sp = SPORTS[w->person_sport[p]];
        switch (t) {
        case 0: SET(prompt, "%s%s %s plays the sport of", pre, f, l); break;
        case 1: SET(prompt, "%sthe sport played by %s %s is", pre, f, l); break;
        case 2: SET(prompt, "%s%s %s is a famous", pre, f, l); break;
        case 3: SET(prompt, "%s%s %s trains every day for", pre, f, l); break;
        default: SET(prompt, "%son the weekend %s %s plays", pre, f, l); break;
        }
        SET(answer, " %s", sp);
        if (t == 2) SET(suffix, " player");
        break;
    }
    case CUR_GEO: {
        int id = (int)code / 4, kind = (int)code % 4;
        if (kind < 2) {
            const char *c = CITIES[id], *s = STATES[w->city_state[id]];
            if (kind == 0) SET(prompt, "%s%s is in the state of", pre, c);
            else SET(prompt, "%sthe state containing %s is", pre, c);
            SET(answer, " %s", s);
        } else {
            const char *s = STATES[id], *k = CITIES[w->state_city[id][0]];
            if (kind == 2) {
                SET(prompt, "%sthe capital of %s is", pre, s);
                SET(answer, " %s", k);
            } else {
                SET(prompt, "%s%s is the capital of", pre, k);
                SET(answer, " %s", s);
            }
        }
        break;
    }
    case CUR_TWOHOP: {
        int c = (int)code / 3, var = (int)code % 3;
        const char *k = CITIES[w->state_city[w->city_state[c]][0]];
        if (var < 2)
            SET(prompt, "%sthe capital of the state containing %s is", var ? "Fact: " : "", CITIES[c]);
        else
            SET(prompt, "%s is in a state whose capital is", CITIES[c]);
        SET(answer, " %s", k);
        break;
    }
    default: break;
    }
}

int curriculum_instance(const CurWorld *w, int task, int split, int index, CurInstance *out) {
    if (!w || !out) return ct_error("curriculum_instance: expected a world and an output, got NULL");
    if (task < 0 || task >= CUR_NTASKS)
        return ct_error("curriculum_instance: task: expected 0..%d, got %d", CUR_NTASKS - 1, task);
    if (split != CUR_SPLIT_HELDOUT && split != CUR_SPLIT_TRAIN)
        return ct_error("curriculum_instance: split: expected 0 (held-out) or 1 (train), got %d", split);
    int n = w->count[task][split];
    if (index < 0 || index >= n)
        return ct_error("curriculum_instance: %s %s index: expected 0..%d, got %d", TASK_NAMES[task],
                        split ? "train" : "held-out", n - 1, index);
    render(w, task, w->list[task][split][index], 0, out);
    return CT_OK;
}

int curriculum_heldout(int task, int index, uint64_t seed, char *prompt, size_t prompt_cap,
                       char *answer, size_t answer_cap) {
    CurWorld w;
    CurInstance in;
    if (curriculum_world_init(&w, seed) != CT_OK) return CT_ERR;
    int rc = curriculum_instance(&w, task, CUR_SPLIT_HELDOUT, index, &in);
    curriculum_world_free(&w);
    if (rc != CT_OK) return rc;
    if (!prompt || !answer || strlen(in.prompt) >= prompt_cap || strlen(in.answer) >= answer_cap)
        return ct_error("curriculum_heldout: buffers: expected room for %zu + %zu bytes, got %zu "
                        "and %zu", strlen(in.prompt) + 1, strlen(in.answer) + 1, prompt_cap, answer_cap);
    memcpy(prompt, in.prompt, strlen(in.prompt) + 1);
    memcpy(answer, in.answer, strlen(in.answer) + 1);
    return CT_OK;
}

// ----------------------------------------------------------------------------------------
// line generator

// Append printf-style text to a line buffer (lines are far below the buffer size).
typedef struct Line { char s[512]; size_t n; } Line;
__attribute__((format(printf, 2, 3))) static void line_add(Line *l, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(l->s + l->n, sizeof l->s - l->n, fmt, ap);
    va_end(ap);
    if (k > 0) l->n += (size_t)k < sizeof l->s - l->n ? (size_t)k : sizeof l->s - l->n - 1;
}

#define PICK(r, list) (list)[rng_below((r), (uint32_t)NELEM(list))]

// Connecting prose: 1-3 short template sentences. At most one place name per line, so prose
// never pairs a city with a state or a capital (it must not leak geography facts), and sports
// never appear (they would blur the people's facts).
static void gen_prose(CurRng *r, Line *l) {
    int ns = 1 + (int)rng_below(r, 3), place_used = 0;
    for (int i = 0; i < ns; i++) {
        if (i) line_add(l, " ");
        int kind = (int)rng_below(r, 10);
        if (place_used && (kind == 2 || kind == 3 || kind == 9)) kind = 0;
        // Every slot is drawn here, one statement each: C leaves the order in which function
        // arguments are evaluated open, so draws inside line_add's arguments would make the
        // corpus depend on the compiler.
        const char *f = PICK(r, FIRST_NAMES), *f2;
        do f2 = PICK(r, FIRST_NAMES); while (f2 == f);
        const char *adj = PICK(r, ADJS);
        const char *adj2 = PICK(r, ADJS);
        const char *animal = PICK(r, ANIMALS);
        const char *thing = PICK(r, THINGS);
        const char *thing2 = PICK(r, THINGS);
        const char *place = PICK(r, PLACES);
        const char *when = PICK(r, TIMES);
        const char *motion = PICK(r, MOTIONS);
        const char *city = PICK(r, CITIES);
        const char *state = PICK(r, STATES);
        switch (kind) {
        case 0: line_add(l, "%s %s to the %s.", f, motion, place); break;
        case 1: line_add(l, "The %s %s sat near the %s.", adj, animal, place); break;
        case 2: line_add(l, "%s saw the %s %s in %s.", f, adj, thing, city); break;
        case 3: line_add(l, "The %s was %s in %s.", when, adj, state); break;
        case 4: line_add(l, "%s and %s %s to the %s in the %s.", f, f2, motion, place, when); break;
        case 5: line_add(l, "The %s was %s and the %s was %s.", thing, adj, thing2, adj2); break;
        case 6: line_add(l, "%s gave the %s to %s.", f, thing, f2); break;
        case 7: line_add(l, "They %s home after the %s.", motion, when); break;
        case 8: line_add(l, "%s found a %s near the %s.", f, thing, place); break;
        default: line_add(l, "The road to %s was long.", city); break;
        }
        if (kind == 2 || kind == 3 || kind == 9) place_used = 1;
    }
}

// One training line of a task. Acronym and addition draw uniformly (acronym: 3 or 4 words
// with probability 1/2 each) and redraw held-out combinations; the other tasks draw from
// their train lists.
static void gen_line(const CurWorld *w, const CurriculumOptions *o, int task, CurRng *r, Line *l) {
    CurInstance in;
    l->n = 0;
    l->s[0] = '\0';
    switch (task) {
    case CUR_ACRONYM: {
        uint32_t code;
        do {
            int form = (int)rng_below(r, 2), a = (int)rng_below(r, N_OA), b1 = (int)rng_below(r, N_OB);
            int b2 = 0, c = (int)rng_below(r, N_OC);
            if (form) do b2 = (int)rng_below(r, N_OB); while (b2 == b1);
            code = acronym_code(form, a, b1, b2, c);
        } while (acronym_heldout(code));
        render(w, task, code, 0, &in);
        break;
    }
    case CUR_ADDITION: {
        int a, b;
        do {
            a = 10 + (int)rng_below(r, 90);
            b = 10 + (int)rng_below(r, 90);
        } while (addition_heldout(a, b));
        render(w, task, (uint32_t)(100 * a + b), 0, &in);
        break;
    }
    case CUR_FACT:
    case CUR_GEO: {
        uint32_t code = w->list[task][1][rng_below(r, (uint32_t)w->count[task][1])];
        render(w, task, code, rng_unit(r) < o->fact_prefix_p, &in);
        break;
    }
    case CUR_TWOHOP:
        render(w, task, w->list[task][1][rng_below(r, (uint32_t)w->count[task][1])], 0, &in);
        break;
    default:
        gen_prose(r, l);
        return;
    }
    line_add(l, "%s%s%s", in.prompt, in.answer, in.suffix);
}

int curriculum_generate(const CurriculumOptions *o, FILE *f, long n_lines, long *counts) {
    if (!o || !f) return ct_error("curriculum_generate: expected options and a FILE, got NULL");
    if (n_lines < 0) return ct_error("curriculum_generate: n_lines: expected >= 0, got %ld", n_lines);
    if (check_options(o) != CT_OK) return CT_ERR;
    CurWorld w;
    if (curriculum_world_init(&w, o->seed) != CT_OK) return CT_ERR;
    double cum[CUR_NTASKS], sum = 0;
    for (int t = 0; t < CUR_NTASKS; t++) cum[t] = (sum += o->weight[t]);
    if (counts) memset(counts, 0, CUR_NTASKS * sizeof *counts);
    CurRng r = {mix64(o->seed ^ SALT_LINES)};
    Line l;
    for (long i = 0; i < n_lines; i++) {
        double u = rng_unit(&r) * sum;
        int task = 0;
        while (task < CUR_NTASKS - 1 && (u >= cum[task] || o->weight[task] == 0)) task++;
        while (o->weight[task] == 0) task--;   // u landed past the last positive weight (rounding)
        gen_line(&w, o, task, &r, &l);
        if (counts) counts[task]++;
        fputs(l.s, f);
        if (fputc('\n', f) == EOF) {
            curriculum_world_free(&w);
            return ct_error("curriculum_generate: write failed at line %ld", i + 1);
        }
    }
    curriculum_world_free(&w);
    return CT_OK;
}

int curriculum_generate_file(const CurriculumOptions *o, const char *path, long n_lines,
                             long *counts) {
    AtomicFile af;
    if (ct_atomic_open(&af, path) != CT_OK) return CT_ERR;
    if (curriculum_generate(o, af.f, n_lines, counts) != CT_OK) {
        ct_atomic_abort(&af);
        return ct_error_ctx("writing %s", path);
    }
    return ct_atomic_commit(&af);
}

int curriculum_write_heldout_tsv(const CurWorld *w, const char *path) {
    AtomicFile af;
    if (ct_atomic_open(&af, path) != CT_OK) return CT_ERR;
    fprintf(af.f, "# ctrace curriculum held-out v1 seed=%llu\n", (unsigned long long)w->seed);
    fprintf(af.f, "task\tprompt\tanswer\tsuffix\n");
    CurInstance in;
    for (int t = 0; t < CUR_NTASKS; t++)
        for (int i = 0; i < w->count[t][CUR_SPLIT_HELDOUT]; i++) {
            if (curriculum_instance(w, t, CUR_SPLIT_HELDOUT, i, &in) != CT_OK) {
                ct_atomic_abort(&af);
                return CT_ERR;
            }
            fprintf(af.f, "%s\t%s\t%s\t%s\n", TASK_NAMES[t], in.prompt, in.answer, in.suffix);
        }
    return ct_atomic_commit(&af);
}

// ----------------------------------------------------------------------------------------
// tokenizer.bin

typedef struct Piece { char s[24]; int len; float score; } Piece;

static int piece_cmp(const void *a, const void *b) {
    const Piece *x = a, *y = b;
    if (x->len != y->len) return x->len - y->len;
    return memcmp(x->s, y->s, (size_t)x->len);
}

int curriculum_write_tokenizer(const char *path, int *vocab_size) {
    // Word pieces: every prefix of " word" of length >= 2, plus " (" (so "Group (" ends in one
    // token). Only pieces that start with a space span more than one character: inside a word
    // the single mergeable pair is always (" prefix", next letter), so BPE walks the trie up to
    // the whole word and can never join digits, capitals of an acronym, or punctuation.
    int nw = curriculum_word_count(), cap = 1;
    for (int i = 0; i < nw; i++) cap += (int)strlen(curriculum_word(i));
    Piece *pc = calloc((size_t)cap, sizeof *pc);
    if (!pc) return ct_error("curriculum tokenizer: out of memory for %d pieces", cap);
    int np = 0;
    pc[np++] = (Piece){" (", 2, 2.0f};
    for (int i = 0; i < nw; i++) {
        const char *wd = curriculum_word(i);
        int n = (int)strlen(wd), caps = 0;
        for (int k = 0; k < n; k++) {
            char ch = wd[k];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) || n + 1 >= (int)sizeof pc->s) {
                free(pc);
                return ct_error("curriculum tokenizer: word \"%s\": expected ASCII letters only, "
                                "at most %d of them", wd, (int)sizeof pc->s - 2);
            }
            caps += ch >= 'A' && ch <= 'Z';
        }
        if (caps > 1) {   // would put capitals side by side in a piece (acronyms must split)
            free(pc);
            return ct_error("curriculum tokenizer: word \"%s\": expected at most one capital, "
                            "got %d", wd, caps);
        }
        for (int len = 2; len <= n + 1; len++) {
            Piece *p = &pc[np++];
            p->s[0] = ' ';
            memcpy(p->s + 1, wd, (size_t)len - 1);
            p->len = len;
            p->score = (float)len;
        }
    }
    qsort(pc, (size_t)np, sizeof *pc, piece_cmp);
    int nu = 0;
    for (int i = 0; i < np; i++)
        if (nu == 0 || piece_cmp(&pc[nu - 1], &pc[i]) != 0) pc[nu++] = pc[i];

    int max_len = 6;   // "\n</s>\n" and "<0xHH>"
    for (int i = 0; i < nu; i++) max_len = pc[i].len > max_len ? pc[i].len : max_len;
    AtomicFile af;
    if (ct_atomic_open(&af, path) != CT_OK) {
        free(pc);
        return CT_ERR;
    }
    int32_t hdr = max_len;
    fwrite(&hdr, 4, 1, af.f);
    int V = 0;
#define PUT(str, len_, score_) do { float sc_ = (score_); int32_t n_ = (len_); \
        fwrite(&sc_, 4, 1, af.f); fwrite(&n_, 4, 1, af.f); fwrite((str), 1, (size_t)n_, af.f); V++; } while (0)
    PUT("<unk>", 5, 0.0f);
    PUT("\n<s>\n", 5, 0.0f);
    PUT("\n</s>\n", 6, 0.0f);
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        PUT(s, 6, 0.0f);
    }
    // Single characters: space and printable ASCII (every digit, letter and punctuation mark
    // is its own token; run.c needs each character of the text to be a piece to merge it).
    for (int ch = 0x20; ch <= 0x7E; ch++) {
        char s = (char)ch;
        PUT(&s, 1, 0.0f);
    }
    for (int i = 0; i < nu; i++) PUT(pc[i].s, pc[i].len, pc[i].score);
#undef PUT
    free(pc);
    if (vocab_size) *vocab_size = V;
    return ct_atomic_commit(&af);
}

// ----------------------------------------------------------------------------------------
// evaluation

#define EVAL_MAX_TOKENS 256

static int argmax_f(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;   // strict: lowest id on ties; NaN never wins
    return best;
}

int curriculum_eval(const CurWorld *w, const Tokenizer *t, int split, int per_task,
                    CurPredictFn predict, void *ctx, CurEvalResult *r) {
    if (!w || !t || !predict || !r)
        return ct_error("curriculum_eval: expected a world, a tokenizer, a predictor and a "
                        "result, got NULL");
    if (split != CUR_SPLIT_HELDOUT && split != CUR_SPLIT_TRAIN)
        return ct_error("curriculum_eval: split: expected 0 (held-out) or 1 (train), got %d", split);
    if (per_task < 0) return ct_error("curriculum_eval: per_task: expected >= 0, got %d", per_task);
    memset(r, 0, sizeof *r);
    r->split = split;
    int prompt_ids[EVAL_MAX_TOKENS], line_ids[EVAL_MAX_TOKENS], seq[EVAL_MAX_TOKENS];
    CurInstance in;
    for (int task = 0; task < CUR_NTASKS; task++) {
        int n = w->count[task][split] < per_task ? w->count[task][split] : per_task;
        for (int i = 0; i < n; i++) {
            char line[sizeof in.prompt + sizeof in.answer];
            int np, nl;
            if (curriculum_instance(w, task, split, i, &in) != CT_OK) return CT_ERR;
            snprintf(line, sizeof line, "%s%s", in.prompt, in.answer);
            if (tokenizer_encode(t, in.prompt, 1, 0, prompt_ids, EVAL_MAX_TOKENS, &np) != CT_OK ||
                tokenizer_encode(t, line, 1, 0, line_ids, EVAL_MAX_TOKENS, &nl) != CT_OK)
                return ct_error_ctx("curriculum_eval: %s instance %d", TASK_NAMES[task], i);
            if (nl <= np || memcmp(prompt_ids, line_ids, (size_t)np * sizeof *prompt_ids) != 0)
                return ct_error("curriculum_eval: %s instance %d \"%s\" + \"%s\": expected the "
                                "prompt's %d tokens to be a prefix of the line's, got %d line "
                                "tokens that differ; is %s the curriculum tokenizer?",
                                TASK_NAMES[task], i, in.prompt, in.answer, np, nl, t->path);
            // Greedy decoding, stopped at the first wrong token (feeding it on could not make
            // the instance right again).
            memcpy(seq, prompt_ids, (size_t)np * sizeof *seq);
            int ok = 1;
            for (int k = np; k < nl && ok; k++) {
                int next = -1;
                if (predict(ctx, seq, k, &next) != CT_OK)
                    return ct_error_ctx("curriculum_eval: %s instance %d", TASK_NAMES[task], i);
                ok = next == line_ids[k];
                seq[k] = next;
            }
            r->n[task]++;
            r->correct[task] += ok;
        }
        r->acc[task] = r->n[task] ? (double)r->correct[task] / r->n[task] : 0.0;
    }
    return CT_OK;
}

// The model as a predictor: positions already in the KV cache for the same tokens are kept.
struct CurModelPredictor {
    const Model *m;
    RunState s;
    ThreadPool *pool;
    int fed[EVAL_MAX_TOKENS];   // tokens whose keys/values sit in the cache, by position
    int nfed;
};

int curriculum_predictor_init(CurModelPredictor **out, const Model *m, ThreadPool *pool) {
    *out = NULL;
    if (!m) return ct_error("curriculum predictor: expected a model, got NULL");
    CurModelPredictor *mp = calloc(1, sizeof *mp);
    if (!mp) return ct_error("curriculum predictor: out of memory");
    mp->m = m;
    mp->pool = pool;
    int T = m->c.seq_len < EVAL_MAX_TOKENS ? m->c.seq_len : EVAL_MAX_TOKENS;
    if (runstate_init(&mp->s, &m->c, T) != CT_OK) {
        runstate_free(&mp->s);
        free(mp);
        return CT_ERR;
    }
    *out = mp;
    return CT_OK;
}

void curriculum_predictor_free(CurModelPredictor *mp) {
    if (!mp) return;
    runstate_free(&mp->s);
    free(mp);
}

int curriculum_predict_model(void *ctx, const int *tokens, int n, int *next) {
    CurModelPredictor *mp = ctx;
    if (n < 1 || n > mp->s.T)
        return ct_error("curriculum eval: sequence of %d tokens: expected 1..%d (the model's "
                        "seq_len, at most %d)", n, mp->s.T, EVAL_MAX_TOKENS);
    int k = 0;   // keep at least the last position to recompute: its logits are not stored
    while (k < n - 1 && k < mp->nfed && mp->fed[k] == tokens[k]) k++;
    float *logits = NULL;
    for (int p = k; p < n; p++) {
        logits = model_forward(mp->m, &mp->s, tokens[p], p, NULL, mp->pool);
        if (!logits) return CT_ERR;
        mp->fed[p] = tokens[p];
    }
    mp->nfed = n;
    *next = argmax_f(logits, mp->m->c.vocab_size);
    return CT_OK;
}

int curriculum_eval_model(const CurWorld *w, const Tokenizer *t, const Model *m,
                          ThreadPool *pool, int split, int per_task, CurEvalResult *r) {
    if (!m || !t) return ct_error("curriculum_eval_model: expected a model and a tokenizer, got NULL");
    if (t->vocab_size != m->c.vocab_size)
        return ct_error("curriculum_eval_model: vocab_size: the model has %d, the tokenizer %s "
                        "has %d; expected equal", m->c.vocab_size, t->path, t->vocab_size);
    CurModelPredictor *mp;
    if (curriculum_predictor_init(&mp, m, pool) != CT_OK) return CT_ERR;
    int rc = curriculum_eval(w, t, split, per_task, curriculum_predict_model, mp, r);
    curriculum_predictor_free(mp);
    return rc;
}

void curriculum_eval_print(FILE *f, const CurEvalResult *res, int n_results) {
    fprintf(f, "| task | split | n | correct | accuracy |\n|---|---|---:|---:|---:|\n");
    for (int t = 0; t < CUR_NTASKS; t++)
        for (int k = 0; k < n_results; k++) {
            const CurEvalResult *r = &res[k];
            if (!r->n[t]) continue;
            fprintf(f, "| %s | %s | %d | %d | %.3f |\n", TASK_NAMES[t],
                    r->split == CUR_SPLIT_TRAIN ? "train" : "held-out", r->n[t], r->correct[t],
                    r->acc[t]);
        }
}
