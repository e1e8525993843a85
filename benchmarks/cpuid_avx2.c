/* Make every library in a process see an AVX2-only x86-64 CPU: loaded with LD_PRELOAD by
 * `python -m benchmarks --isa avx2` (benchmarks/isa.py).
 *
 * Libraries choose their kernels at run time from CPUID (torch's ATen and inductor, oneDNN, MKL,
 * ONNX Runtime's MLAS, FAISS). Linux can make CPUID fault in user space on CPUs that support it
 * (arch_prctl ARCH_SET_CPUID; /proc/cpuinfo flag `cpuid_fault`). This library turns that on for
 * the process (inherited by its threads and forks, reset by execve, so LD_PRELOAD carries it into
 * child programs), and answers each CPUID from its SIGSEGV handler: the real answer, with the
 * feature bits of AVX-512 (every subset), AVX-VNNI, AVX-IFMA, AVX-NE-CONVERT, AVX-VNNI-INT8
 * and AMX cleared. AVX2, FMA and the rest stay. The hardware is unchanged, so timings are those
 * of this CPU's AVX2 code paths, not of an AVX2-only CPU. SIGSEGV handlers the program sets
 * (sigaction, signal) are kept aside and called for every SIGSEGV that is not a CPUID. */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);

static int masking;            /* CPUID faulting is on and on_segv is the SIGSEGV handler */
static struct sigaction theirs; /* the SIGSEGV action the program asked for (default at first) */

static sigaction_fn real_sigaction(void) {
    static sigaction_fn real;
    if (!real) real = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    return real;
}

static long cpuid_faults(int on) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, on ? 0 : 1); }

/* A program that sets its own SIGSEGV handler (gcc, Python's faulthandler) gets it called for every
 * SIGSEGV that is not a CPUID, and this library stays the installed handler. */
int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (sig != SIGSEGV || !masking) return real_sigaction()(sig, act, old);
    if (old) *old = theirs;
    if (act) theirs = *act;
    return 0;
}

sighandler_t signal(int sig, sighandler_t handler) {
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;
    sigemptyset(&act.sa_mask);
    if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
    return old.sa_handler;
}

static void on_segv(int sig, siginfo_t *info, void *raw) {
    ucontext_t *ctx = (ucontext_t *)raw;
    greg_t *reg = ctx->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)reg[REG_RIP];
    if (info->si_code == SI_KERNEL && ip[0] == 0x0f && ip[1] == 0xa2) { /* a CPUID that faulted */
        unsigned leaf = (unsigned)reg[REG_RAX], sub = (unsigned)reg[REG_RCX], a, b, c, d;
        cpuid_faults(0);
        __cpuid_count(leaf, sub, a, b, c, d);
        cpuid_faults(1);
        if (leaf == 7 && sub == 0) {
            /* EBX: AVX512F, DQ, IFMA, PF, ER, CD, BW, VL */
            b &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) |
                   (1u << 31));
            /* ECX: AVX512_VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ */
            c &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
            /* EDX: AVX512_4VNNIW, 4FMAPS, VP2INTERSECT, AMX_BF16, AVX512_FP16, AMX_TILE, AMX_INT8 */
            d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
        } else if (leaf == 7 && sub == 1) {
            /* EAX: AVX_VNNI, AVX512_BF16, AVX_IFMA; EDX: AVX_VNNI_INT8, AVX_NE_CONVERT, AVX_VNNI_INT16, AVX10 */
            a &= ~((1u << 4) | (1u << 5) | (1u << 23));
            d &= ~((1u << 4) | (1u << 5) | (1u << 10) | (1u << 19));
        }
        reg[REG_RAX] = a;
        reg[REG_RBX] = b;
        reg[REG_RCX] = c;
        reg[REG_RDX] = d;
        reg[REG_RIP] += 2;
        return;
    }
    if ((theirs.sa_flags & SA_SIGINFO) && theirs.sa_sigaction) {
        theirs.sa_sigaction(sig, info, raw);
    } else if (theirs.sa_handler != SIG_DFL && theirs.sa_handler != SIG_IGN) {
        theirs.sa_handler(sig);
    } else { /* the default action: die of this signal */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        masking = 0;
        real_sigaction()(SIGSEGV, &dfl, NULL);
        raise(SIGSEGV);
    }
}

__attribute__((constructor(101))) static void install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_segv;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    if (real_sigaction()(SIGSEGV, &action, &theirs) != 0) return;
    if (cpuid_faults(1) != 0) {
        real_sigaction()(SIGSEGV, &theirs, NULL); /* no CPUID faulting here: nothing masked */
        return;
    }
    masking = 1;
}
