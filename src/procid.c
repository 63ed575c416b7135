/* The process behind a loopback connection; see include/sluice/procid.h. */
#include "sluice/procid.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/sockdiag.h"

/* True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
static bool procid_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
        const uint8_t *a = sin6->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) ||
               (memcmp(a, mapped, sizeof(mapped)) == 0 && a[12] == 127);
    }
    return false;
}

/* Both ends on loopback; see the header. */
bool procid_is_local(const struct sockaddr *peer, const struct sockaddr *local)
{
    return procid_loopback(peer) && procid_loopback(local);
}

/* Reads up to cap bytes of /proc/PID/name into buf; returns the count, or -1. */
static ssize_t procid_read(pid_t pid, const char *name, char *buf, size_t cap)
{
    char path[64];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%ld/%s", (long)pid, name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, cap);
    close(fd);
    return n;
}

/*
 * The parent of pid, its start time and its name, from /proc/PID/stat (fields 4, 22 and
 * 2; comm may be NULL).  Returns the parent, or 0 (gone, or unreadable).
 */
static pid_t procid_stat(pid_t pid, uint64_t *start, char *comm, size_t cap)
{
    char stat[1024], *p, *open_paren;
    ssize_t n = procid_read(pid, "stat", stat, sizeof(stat) - 1);
    long ppid = 0;

    *start = 0;
    if (comm != NULL && cap > 0)
        comm[0] = '\0';
    if (n <= 0)
        return 0;
    stat[n] = '\0';
    /* The name in parentheses may hold anything, ')' included: the last one ends it. */
    p = strrchr(stat, ')');
    open_paren = strchr(stat, '(');
    if (p == NULL || open_paren == NULL || open_paren > p || sscanf(p + 1, " %*c %ld", &ppid) != 1)
        return 0;
    if (comm != NULL && cap > 0) {
        size_t len = (size_t)(p - open_paren - 1);
        if (len >= cap)
            len = cap - 1;
        memcpy(comm, open_paren + 1, len);
        comm[len] = '\0';
    }
    /* After ')' come the fields from 3 (state) on: the space before field 22 starts it. */
    for (int field = 3; field <= 22 && p != NULL; field++)
        p = strchr(p + 1, ' ');
    if (p != NULL)
        *start = strtoull(p + 1, NULL, 10);
    return (pid_t)ppid;
}

/* Fills one process of the chain. */
static void procid_describe(pid_t pid, struct procid_proc *p)
{
    char path[64];
    ssize_t n;

    memset(p, 0, sizeof(*p));
    p->pid = pid;
    snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
    n = readlink(path, p->exe, sizeof(p->exe) - 1);
    p->exe[n > 0 ? n : 0] = '\0';
    n = procid_read(pid, "cmdline", p->args, sizeof(p->args) - 1);
    p->args_len = n > 0 ? (size_t)n : 0;
    p->args[p->args_len] = '\0';
}

/* Fills out's chain from pid (whose parent is parent) up, pid 1 left out. */
static void procid_chain(pid_t pid, pid_t parent, struct procid *out)
{
    out->nchain = 0;
    /* pid 1 ends the chain: every process descends from it, so it names no tool. */
    for (pid_t p = pid; p > 1 && out->nchain < PROCID_MAX_CHAIN;) {
        uint64_t unused;

        procid_describe(p, &out->chain[out->nchain++]);
        p = p == pid ? parent : procid_stat(p, &unused, NULL, 0);
    }
}

/* The chain of a process by its pid; see the header. */
int procid_of_pid(pid_t pid, struct procid *out)
{
    uint64_t start;
    pid_t parent = procid_stat(pid, &start, NULL, 0);

    if (start == 0)
        return -1; /* gone, or not a process */
    out->uid = 0;
    out->start = start;
    procid_chain(pid, parent, out);
    return out->nchain > 0 ? 0 : -1;
}

/* The chain of a process that must still be the one that started at start. */
int procid_of_process(pid_t pid, uint64_t start, struct procid *out)
{
    return procid_of_pid(pid, out) == 0 && out->start == start ? 0 : -1;
}

/* Remembers pid as a recent holder, unless it is one already. */
static void procid_hint(struct procid_cache *cache, pid_t pid)
{
    for (size_t i = 0; i < PROCID_MAX_HINTS; i++)
        if (cache->hints[i] == pid)
            return;
    cache->hints[cache->next] = pid;
    cache->next = (cache->next + 1) % PROCID_MAX_HINTS;
}

/* Finds the process and its ancestors; see the header. */
int procid_lookup(struct procid_cache *cache, const struct sockaddr *peer,
                  const struct sockaddr *local, struct procid *out)
{
    struct sockdiag_socket sock;
    uint64_t start;
    char comm[16];
    pid_t pid, parent;

    /* The client's socket has the peer's address as its own and ours as its peer. */
    if (sockdiag_tcp_socket(peer, local, &sock) < 0 || sock.inode == 0)
        return -1;
    if (sockdiag_holder_of_user(sock.inode, sock.uid, cache->hints, PROCID_MAX_HINTS, &pid) < 0)
        return -1;
    procid_hint(cache, pid);
    parent = procid_stat(pid, &start, comm, sizeof(comm));
    for (size_t i = 0; i < PROCID_MAX_CHAINS; i++)
        /* A process keeps its pid and start time across execve(), not its name. */
        if (cache->chains[i].pid == pid && cache->chains[i].start == start && start != 0 &&
            strcmp(cache->chains[i].comm, comm) == 0) {
            *out = cache->chains[i].chain; /* the same process as before, not a new one */
            return 0;
        }
    out->uid = sock.uid;
    out->start = start;
    procid_chain(pid, parent, out);
    if (out->nchain == 0)
        return -1;
    cache->chains[cache->next_chain].pid = pid;
    cache->chains[cache->next_chain].start = start;
    snprintf(cache->chains[cache->next_chain].comm, sizeof(cache->chains[0].comm), "%s", comm);
    cache->chains[cache->next_chain].chain = *out;
    cache->next_chain = (cache->next_chain + 1) % PROCID_MAX_CHAINS;
    return 0;
}
