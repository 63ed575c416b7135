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
/* Descendants of a `sluice run --isolate` launcher looked at, at most, and for at most
 * this long (the walk runs on a worker's loop): 10 ms. */
#define PROCID_MAX_TREE       1024
#define PROCID_TREE_BUDGET_NS 10000000L
/* Ancestors looked at, at most, for the outermost launcher above a process. */
#define PROCID_MAX_ANCESTORS 1024

/* One process of the chain. */
struct procid_proc {
    pid_t pid;
    char exe[PROCID_MAX_EXE];   /* /proc/PID/exe, or "" when hidden */
    char args[PROCID_MAX_ARGS]; /* the command line, arguments separated by NUL */
    size_t args_len;            /* bytes of args used */
    char sha256[65];            /* its executable's SHA-256 in hex, once the lookup got it; or "" */
    char script_sha256[65];     /* the same for the script it runs, if an interpreter; or "" */
    uint64_t script_size;       /* that script's size in bytes, when script_sha256 is known */
};

/*
 * The process behind a connection, then its parent, its parent's parent, and so on; and,
 * when one of them is a `sluice run --isolate` launcher and a process it started named
 * the tool instead (identity_match_process()), that process.
 */
struct procid {
    uint64_t start; /* the first process's start time (ticks since boot): it, not its pid */
    uint32_t uid;   /* the first process's owner; UINT32_MAX when not known */
    size_t nchain;
    bool cut; /* the chain stopped at its bound, short of pid 1 */
    struct procid_proc chain[PROCID_MAX_CHAIN];
    struct procid_proc descendant; /* valid when named, as process nchain (procid_nth()) */
};

/* Process i of c: the chain's (i < c->nchain), else the descendant. */
const struct procid_proc *procid_nth(const struct procid *c, size_t i);

/*
 * The outermost `sluice run --isolate` launcher among c's processes and, when c was cut
 * at its bound, their ancestors up to pid 1, into *out: 1 when there is one, 0 when none,
 * -1 when the way up could not be seen whole (a process gone or hidden, or more than
 * PROCID_MAX_ANCESTORS), so a launcher above may have been missed.
 */
int procid_outer_launcher(const struct procid *c, struct procid_proc *out);

/*
 * Visits the processes pid started, and theirs, breadth first, each described into
 * *scratch, until visit returns true: returns 1 with *scratch that process.  Returns 0
 * when all were visited, or -1 when there are more than PROCID_MAX_TREE or the walk
 * takes longer than PROCID_TREE_BUDGET_NS (what was not seen cannot be vouched for).
 * /proc/PID/task/TID/children lists them (Linux 4.2 on).
 */
int procid_walk_descendants(pid_t pid, bool (*visit)(const struct procid_proc *, void *), void *arg,
                            struct procid_proc *scratch);

/*
 * The tool id a `sluice run --isolate --tool ID` launcher process proc was started for,
 * into out: only when proc runs this very executable (a copy elsewhere does not count)
 * and its command line, up to a "--" that /proc's answer holds whole, has run, --isolate
 * and --tool (the last one).  False otherwise.
 */
bool procid_isolate_tool(const struct procid_proc *proc, char *out, size_t cap);

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
 * of that process (the peer of a Unix socket, by SO_PEERCRED).  Returns 0, or -1 when pid
 * is gone or hidden.
 */
int procid_of_pid(pid_t pid, struct procid *out);

/*
 * Like procid_of_pid(), but only while pid is still the process that started at start
 * (a pid the kernel gave to another process since is refused).  Returns 0 or -1.
 */
int procid_of_process(pid_t pid, uint64_t start, struct procid *out);

/*
 * proc's command line for the record, arguments separated by spaces, into out (cut with
 * "..." at cap): the values of arguments named like secrets (NAME=VALUE and --name=VALUE
 * with a name redact_secret_name() takes, the word after such a --name, a "Name: value"
 * header, the password after -u, -U, --user or --proxy-user) are "<redacted>", and a URL
 * anywhere in an argument is written as redact_url() writes it.  Raw bytes otherwise: the
 * log escapes them.
 */
void procid_command_line(const struct procid_proc *proc, char *out, size_t cap);

/* c's processes by executable name, nearest first, separated by '<' ("curl<bash<sshd"). */
void procid_chain_names(const struct procid *c, char *out, size_t cap);

#endif /* SLUICE_PROCID_H */
