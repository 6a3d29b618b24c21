// numa.c — thread pinning and node lookup for `--numa` (see numa.h).
#include "engine/numa.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#include "engine/common.h"
#include "engine/mem.h"

#if CTRACE_HAVE_NUMA
#include <numa.h>
#endif

static const char *const k_modes[NUMA_NMODES] = {"off", "local", "interleave", "replicate"};

const char *numa_mode_name(NumaMode m) { return (unsigned)m < NUMA_NMODES ? k_modes[m] : "?"; }

int numa_mode_parse(const char *s, NumaMode *out) {
    for (int i = 0; i < NUMA_NMODES; i++)
        if (s && !strcmp(s, k_modes[i])) {
            *out = (NumaMode)i;
            return CT_OK;
        }
    return ct_error("NUMA mode: expected off|local|interleave|replicate, got '%s'", s ? s : "(null)");
}

int numa_node_count(void) {
    int n = mem_numa_nodes();
    return n < 1 ? 1 : n > CT_NUMA_MAX_NODES ? CT_NUMA_MAX_NODES : n;
}

// Node of a CPU (0 without libnuma or when unknown).
static int node_of_cpu(int cpu) {
#if CTRACE_HAVE_NUMA
    if (cpu >= 0 && mem_numa_available()) {
        int n = numa_node_of_cpu(cpu);
        if (n >= 0 && n < CT_NUMA_MAX_NODES) return n;
    }
#endif
    (void)cpu;
    return 0;
}

static _Thread_local int t_node = -1;   // node this thread was pinned to

int numa_thread_node(void) {
    if (t_node >= 0) return t_node;
    int cpu = sched_getcpu();
    return node_of_cpu(cpu);
}

// The plan: thread i -> CPU.  Allowed CPUs grouped by node; thread i takes node i % nodes
// (among nodes that have allowed CPUs), its (i / nodes)-th CPU, wrapping around.
typedef struct PinJob {
    int nthreads;
    int cpu[256];
    int err_thread, err_cpu, err_no;
} PinJob;

static void pin_task(void *ctx, int task, int ntasks) {
    PinJob *j = ctx;
    (void)ntasks;
    if (task >= 256) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(j->cpu[task], &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        j->err_thread = task;
        j->err_cpu = j->cpu[task];
        j->err_no = errno;
        return;
    }
    t_node = node_of_cpu(j->cpu[task]);
}

int numa_setup(ThreadPool *pool, NumaMode mode, NumaSetup *out) {
    NumaSetup s;
    memset(&s, 0, sizeof s);
    s.mode = mode;
    s.nodes = numa_node_count();
    s.nthreads = pool_size(pool);
    for (int i = 0; i < 256; i++) s.cpu[i] = s.node[i] = -1;
    if (mode == NUMA_OFF) {
        if (out) *out = s;
        return CT_OK;
    }
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
        return ct_error("--numa %s: sched_getaffinity failed: %s", numa_mode_name(mode), strerror(errno));
    // CPUs per node, in CPU order.
    static int by_node[CT_NUMA_MAX_NODES][CPU_SETSIZE];
    int count[CT_NUMA_MAX_NODES] = {0};
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &allowed)) {
            int n = node_of_cpu(c);
            by_node[n][count[n]++] = c;
        }
    int nodes_with[CT_NUMA_MAX_NODES], nn = 0;
    for (int n = 0; n < CT_NUMA_MAX_NODES; n++)
        if (count[n]) nodes_with[nn++] = n;
    if (nn == 0) return ct_error("--numa %s: no CPU in this process's affinity mask", numa_mode_name(mode));
    PinJob j;
    memset(&j, 0, sizeof j);
    j.err_thread = -1;
    int nt = s.nthreads < 256 ? s.nthreads : 256;
    for (int i = 0; i < nt; i++) {
        int n = nodes_with[i % nn];
        j.cpu[i] = by_node[n][(i / nn) % count[n]];
    }
    pool_run(pool, pin_task, &j, s.nthreads);
    if (j.err_thread >= 0)
        return ct_error("--numa %s: pinning thread %d to CPU %d failed: %s", numa_mode_name(mode), j.err_thread,
                        j.err_cpu, strerror(j.err_no));
    for (int i = 0; i < nt; i++) {
        s.cpu[i] = j.cpu[i];
        s.node[i] = node_of_cpu(j.cpu[i]);
    }
    s.pinned = nt;
    if (out) *out = s;
    return CT_OK;
}
