/*
 * The local process behind a loopback connection, on Linux: the client end of the
 * connection is found in the kernel's socket table (NETLINK_SOCK_DIAG: its inode and
 * owner), the process holding that inode under /proc, then its executable, command line
 * and ancestors.  A tool that never says who it is can still be known by what it runs.
 */
#ifndef SLUICE_PROCID_H
#define SLUICE_PROCID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* The process and this many ancestors at most (a shell, an IDE, a tool's launcher...). */
#define PROCID_MAX_CHAIN 8
/* Bytes kept of one executable path, and of one command line. */
#define PROCID_MAX_EXE  256
#define PROCID_MAX_ARGS 512
/* Processes remembered as recent holders of connections, looked at first. */
#define PROCID_MAX_HINTS 16
/* Chains remembered, each under its process's pid and start time. */
#define PROCID_MAX_CHAINS 4

/* One process of the chain. */
struct procid_proc {
    pid_t pid;
    char exe[PROCID_MAX_EXE];   /* /proc/PID/exe, or "" when hidden */
    char args[PROCID_MAX_ARGS]; /* the command line, arguments separated by NUL */
    size_t args_len;            /* bytes of args used */
};

/* The process behind a connection, then its parent, its parent's parent, and so on. */
struct procid {
    uint64_t start; /* the first process's start time (ticks since boot): it, not its pid */
    uint32_t uid;
    size_t nchain;
    struct procid_proc chain[PROCID_MAX_CHAIN];
};

/*
 * What one worker remembers between lookups: the last processes that held connections,
 * and the chains of the last few, each under its pid, start time and name, so that a pid
 * the kernel gave again to another process, or a process that ran exec, is never taken
 * for what it was.
 */
struct procid_cache {
    pid_t hints[PROCID_MAX_HINTS];
    size_t next;
    struct {
        pid_t pid;
        uint64_t start; /* /proc/PID/stat's starttime, in clock ticks since boot */
        char comm[16];  /* its name then: an exec changes it */
        struct procid chain;
    } chains[PROCID_MAX_CHAINS];
    size_t next_chain;
};

/* True when the connection peer -> local is on loopback, where a process can be found. */
bool procid_is_local(const struct sockaddr *peer, const struct sockaddr *local);

/*
 * Finds the process whose socket is the client end of the connection sluice accepted
 * from peer on local, and its ancestors.  Returns 0 with out filled, or -1 (no such
 * socket, the process hidden or gone).  Costs a netlink round trip and, unless a recent
 * holder holds it again, a walk over the descriptors of the socket owner's processes.
 */
int procid_lookup(struct procid_cache *cache, const struct sockaddr *peer,
                  const struct sockaddr *local, struct procid *out);

/*
 * The process pid and its ancestors, as procid_lookup() would give them for a connection
 * of that process.  Returns 0, or -1 when pid is gone or hidden.
 */
int procid_of_pid(pid_t pid, struct procid *out);

/*
 * Like procid_of_pid(), but only while pid is still the process that started at start
 * (a pid the kernel gave to another process since is refused).  Returns 0 or -1.
 */
int procid_of_process(pid_t pid, uint64_t start, struct procid *out);

#endif /* SLUICE_PROCID_H */
