// numa.h — `--numa off|local|interleave|replicate`: where weights live and where threads run.
//
//   off         no pinning; weights where the allocator puts them (first touch)
//   local       threads pinned (spread over nodes); packed int8 weights are written by the
//               thread that reads them (first touch by the owning thread, MPOL_LOCAL), so a
//               thread's panels sit on its own node; run-state buffers are node-local
//   interleave  threads pinned; packed weights' pages interleaved over all nodes
//   replicate   threads pinned; one copy of the packed weights per node (bound to that node),
//               each thread reads its node's copy
//
// Threads are pinned by running one task per pool thread (threads.h gives task i to thread i
// when ntasks == pool size), each setting its own affinity; thread i goes to node i % nodes
// (the (i / nodes)-th allowed CPU of that node), so threads spread over nodes first.
//
// What is placed: the packed int8 weights (model and transcoder), run-state buffers (node of
// the calling thread) and the threads.  fp32 weights stay in the checkpoint's file mapping
// (page cache, placed by the kernel); use --dtype q8 to control weight placement.
//
// Degrading: without libnuma (built with CTRACE_HAVE_NUMA=0, or numa_available() < 0) there is
// one node: pinning still uses sched_setaffinity, interleave and replicate become a single
// copy, and every mode gives the same bits (placement never changes arithmetic).  On a
// one-node machine (this one) every mode is correct and equivalent in placement.
#pragma once
#include <stddef.h>

#include "engine/threads.h"

#define CT_NUMA_MAX_NODES 64

typedef enum { NUMA_OFF = 0, NUMA_LOCAL, NUMA_INTERLEAVE, NUMA_REPLICATE, NUMA_NMODES } NumaMode;

const char *numa_mode_name(NumaMode m);          // "off", "local", "interleave", "replicate"
// Parse a mode name; -1 with an error naming the value and the choices.
int numa_mode_parse(const char *s, NumaMode *out);

// Nodes this process can use (>= 1): libnuma's configured nodes, 1 without it.
int numa_node_count(void);

// What numa_setup did: per pool thread, the CPU and node it was pinned to (-1: not pinned).
typedef struct NumaSetup {
    NumaMode mode;
    int nodes;                 // numa_node_count()
    int nthreads;              // pool_size(pool)
    int cpu[256], node[256];   // per thread (first 256 threads)
    int pinned;                // threads actually pinned
} NumaSetup;

// Pin the pool's threads for `mode` (nothing for NUMA_OFF) and record placement in *out
// (may be NULL).  A CPU set that cannot be applied is an error naming the thread and CPU.
int numa_setup(ThreadPool *pool, NumaMode mode, NumaSetup *out);

// Node of the calling thread: the node it was pinned to, else the node of the CPU it runs on
// now, else 0.  Cheap after the first call on a pinned thread.
int numa_thread_node(void);
