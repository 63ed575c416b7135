/* Who holds a socket; see include/sluice/sockdiag.h. */
#include "sluice/sockdiag.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* TCP_LISTEN of the kernel's TCP states (include/net/tcp_states.h). */
#define SOCKDIAG_TCP_LISTEN 10
/* Bytes of one receive from the netlink socket (the kernel fills up to a page or so). */
#define SOCKDIAG_RECV_BYTES 32768
/* Receives of one dump at most: a bound on the loop whatever the kernel sends. */
#define SOCKDIAG_MAX_RECVS 4096
/* Processes and descriptors sockdiag_holder() looks through at most. */
#define SOCKDIAG_MAX_PROCS 65536
#define SOCKDIAG_MAX_FDS   65536
/*
 * Time sockdiag_holder_of_user() may spend walking /proc, in nanoseconds (50 ms): it runs
 * in a worker's lookup thread, where it holds up only the lookups queued behind it, and a
 * holder not found in time gets its connection refused where a ban relies on seeing it.
 */
#define SOCKDIAG_WALK_BUDGET_NS 50000000L

/* True when the address bytes (4 or 16) are all zero: the wildcard. */
static bool sockdiag_is_any(const uint8_t *a, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (a[i] != 0)
            return false;
    return true;
}

/* The address bytes and port (network order) of sa, which is IPv4 or IPv6. */
static const uint8_t *sockdiag_addr_of(const struct sockaddr *sa, size_t *len, uint16_t *port)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
        *len = 4;
        *port = sin->sin_port;
        return (const uint8_t *)&sin->sin_addr;
    }
    *len = 16;
    *port = sin6->sin6_port;
    return (const uint8_t *)&sin6->sin6_addr;
}

/* Fills out's address from one diag message of family. */
static void sockdiag_fill(struct sockdiag_socket *out, const struct inet_diag_msg *m)
{
    memset(out, 0, sizeof(*out));
    if (m->idiag_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)(void *)&out->addr;
        sin->sin_family = AF_INET;
        sin->sin_port = m->id.idiag_sport;
        memcpy(&sin->sin_addr, m->id.idiag_src, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)&out->addr;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = m->id.idiag_sport;
        memcpy(&sin6->sin6_addr, m->id.idiag_src, 16);
    }
    out->inode = m->idiag_inode;
    out->uid = m->idiag_uid;
}

/* Sends the dump request for the listening TCP sockets of family. */
static int sockdiag_ask(int fd, int family)
{
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
    } msg;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};

    memset(&msg, 0, sizeof(msg));
    msg.nlh.nlmsg_len = sizeof(msg);
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.req.sdiag_family = (uint8_t)family;
    msg.req.sdiag_protocol = IPPROTO_TCP;
    msg.req.idiag_states = 1u << SOCKDIAG_TCP_LISTEN;
    return sendto(fd, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel)) ==
                   (ssize_t)sizeof(msg)
               ? 0
               : -1;
}

/*
 * Reads the dump's answers; counts each socket on port at addr (or at the wildcard, or
 * anywhere when addr is the wildcard) and writes the first cap to out.  Returns the count,
 * or -1 with errno.
 */
static int sockdiag_read(int fd, const uint8_t *addr, size_t alen, uint16_t port,
                         struct sockdiag_socket *out, size_t cap)
{
    char *buf = malloc(SOCKDIAG_RECV_BYTES);
    bool any = sockdiag_is_any(addr, alen);
    int found = 0;

    if (buf == NULL)
        return -1;
    for (int r = 0; r < SOCKDIAG_MAX_RECVS; r++) {
        ssize_t n = recv(fd, buf, SOCKDIAG_RECV_BYTES, 0);
        size_t len = n > 0 ? (size_t)n : 0, next;

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EPROTO;
            break;
        }
        /* NLMSG_OK and NLMSG_NEXT, written out in size_t: every header lies whole inside
         * what was received, and the walk stops at the first that does not. */
        for (size_t off = 0; off < len && len - off >= sizeof(struct nlmsghdr); off = next) {
            struct nlmsghdr *h = (struct nlmsghdr *)(void *)(buf + off);
            const struct inet_diag_msg *m;

            if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > len - off)
                break;
            next = off + NLMSG_ALIGN(h->nlmsg_len);

            if (h->nlmsg_type == NLMSG_DONE) {
                free(buf);
                return found;
            }
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                errno = e->error < 0 ? -e->error : EPROTO;
                free(buf);
                return -1;
            }
            if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
                continue;
            m = NLMSG_DATA(h);
            if (m->id.idiag_sport != port)
                continue;
            if (!any && !sockdiag_is_any((const uint8_t *)m->id.idiag_src, alen) &&
                memcmp(m->id.idiag_src, addr, alen) != 0)
                continue;
            if ((size_t)found < cap)
                sockdiag_fill(&out[found], m);
            found++;
        }
    }
    free(buf);
    return -1;
}

/* Lists the sockets listening where sa would; see the header. */
int sockdiag_tcp_listeners(const struct sockaddr *sa, struct sockdiag_socket *out, size_t cap)
{
    struct timeval limit = {.tv_sec = 1, .tv_usec = 0};
    const uint8_t *addr;
    size_t alen;
    uint16_t port;
    int fd, found, saved;

    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    addr = sockdiag_addr_of(sa, &alen, &port);
    fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit)) < 0 ||
        sockdiag_ask(fd, sa->sa_family) < 0)
        found = -1;
    else
        found = sockdiag_read(fd, addr, alen, port, out, cap);
    saved = errno;
    close(fd);
    errno = saved;
    return found;
}

/*
 * True when /proc/PID/fd holds a link to "socket:[inode]".  The descriptors are looked at
 * newest (highest) first: the socket of a connection just made is most often the highest,
 * so a process holding thousands of sockets costs one readlink(), not thousands.
 */
static bool sockdiag_pid_holds(const char *pid, const char *want)
{
    char path[300], link[64];
    struct dirent *e;
    DIR *d;
    int *fds = NULL, nfds = 0, cap = 0;
    bool held = false;

    snprintf(path, sizeof(path), "/proc/%s/fd", pid);
    d = opendir(path);
    if (d == NULL)
        return false; /* gone, or another user's */
    while (nfds < SOCKDIAG_MAX_FDS && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (nfds == cap) {
            int *more = realloc(fds, (size_t)(cap = cap > 0 ? cap * 2 : 64) * sizeof(*fds));
            if (more == NULL)
                break;
            fds = more;
        }
        fds[nfds++] = atoi(e->d_name);
    }
    closedir(d);
    for (int i = nfds - 1; i >= 0 && !held; i--) {
        char entry[320];
        ssize_t len;

        snprintf(entry, sizeof(entry), "%s/%d", path, fds[i]);
        len = readlink(entry, link, sizeof(link) - 1);
        if (len <= 0)
            continue;
        link[len] = '\0';
        held = strcmp(link, want) == 0;
    }
    free(fds);
    return held;
}

/* Finds a process holding the inode; see the header. */
int sockdiag_holder(uint64_t inode, pid_t *pid, char *name, size_t cap)
{
    char want[48];
    struct dirent *e;
    DIR *proc = opendir("/proc");
    int n = 0, rc = -1;

    if (proc == NULL)
        return -1;
    snprintf(want, sizeof(want), "socket:[%llu]", (unsigned long long)inode);
    while (rc < 0 && n++ < SOCKDIAG_MAX_PROCS && (e = readdir(proc)) != NULL) {
        char path[300];
        FILE *f;

        if (!isdigit((unsigned char)e->d_name[0]) || !sockdiag_pid_holds(e->d_name, want))
            continue;
        *pid = (pid_t)strtol(e->d_name, NULL, 10);
        snprintf(name, cap, "?");
        snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
        if ((f = fopen(path, "r")) != NULL) {
            if (fgets(name, (int)cap, f) != NULL)
                name[strcspn(name, "\n")] = '\0';
            fclose(f);
        }
        rc = 0;
    }
    closedir(proc);
    return rc;
}

/* Asks the kernel for the one socket local -> remote; see the header. */
int sockdiag_tcp_socket(const struct sockaddr *local, const struct sockaddr *remote,
                        struct sockdiag_socket *out)
{
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
    } msg;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    struct timeval limit = {.tv_sec = 1, .tv_usec = 0};
    union {
        struct nlmsghdr h;
        char bytes[1024];
    } answer;
    const uint8_t *laddr, *raddr;
    size_t llen, rlen;
    uint16_t lport, rport;
    ssize_t n;
    int fd, rc = -1, saved;

    if ((local->sa_family != AF_INET && local->sa_family != AF_INET6) ||
        local->sa_family != remote->sa_family) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    laddr = sockdiag_addr_of(local, &llen, &lport);
    raddr = sockdiag_addr_of(remote, &rlen, &rport);
    memset(&msg, 0, sizeof(msg));
    msg.nlh.nlmsg_len = sizeof(msg);
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST; /* not a dump: the kernel finds the one socket */
    msg.req.sdiag_family = (uint8_t)local->sa_family;
    msg.req.sdiag_protocol = IPPROTO_TCP;
    msg.req.idiag_states = ~0u;
    msg.req.id.idiag_sport = lport;
    msg.req.id.idiag_dport = rport;
    memcpy(msg.req.id.idiag_src, laddr, llen);
    memcpy(msg.req.id.idiag_dst, raddr, rlen);
    msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
    msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit)) < 0 ||
        sendto(fd, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel)) !=
            (ssize_t)sizeof(msg))
        goto out;
    n = recv(fd, &answer, sizeof(answer), 0);
    if (n < (ssize_t)sizeof(struct nlmsghdr) || answer.h.nlmsg_len > (size_t)n) {
        errno = EPROTO;
        goto out;
    }
    if (answer.h.nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA(&answer.h);
        errno = answer.h.nlmsg_len >= NLMSG_LENGTH(sizeof(*e)) && e->error < 0 ? -e->error : EPROTO;
        goto out;
    }
    if (answer.h.nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
        errno = EPROTO;
        goto out;
    }
    sockdiag_fill(out, NLMSG_DATA(&answer.h));
    rc = 0;
out:
    saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* Orders pids from the highest down. */
static int sockdiag_pid_desc(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

    return x < y ? 1 : x > y ? -1 : 0;
}

/*
 * Finds the holder among hints, then among uid's processes, newest (highest pid) first:
 * a client that just connected most often just started, so it is found first rather than
 * after every older process.  See the header.
 */
int sockdiag_holder_of_user(uint64_t inode, uint32_t uid, const pid_t *hints, size_t nhints,
                            pid_t *pid)
{
    char want[48], name[32];
    struct dirent *e;
    DIR *proc;
    struct timespec start, now;
    pid_t *pids = NULL;
    size_t npids = 0, cap = 0;
    int rc = -1;
    long budget_ns = SOCKDIAG_WALK_BUDGET_NS;

#ifdef SLUICE_FAULT_INJECTION
    /* Test builds only: a shorter walk, so that the tests can reach a holder not found. */
    {
        const char *budget = getenv("SLUICE_TEST_WALK_BUDGET_NS");
        if (budget != NULL)
            budget_ns = strtol(budget, NULL, 10);
    }
#endif
    snprintf(want, sizeof(want), "socket:[%llu]", (unsigned long long)inode);
    for (size_t i = 0; i < nhints; i++) {
        snprintf(name, sizeof(name), "%ld", (long)hints[i]);
        if (hints[i] > 0 && sockdiag_pid_holds(name, want)) {
            *pid = hints[i];
            return 0;
        }
    }
    if ((proc = opendir("/proc")) == NULL)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (npids < SOCKDIAG_MAX_PROCS && (e = readdir(proc)) != NULL) {
        struct stat st;

        if (!isdigit((unsigned char)e->d_name[0]) || fstatat(dirfd(proc), e->d_name, &st, 0) < 0 ||
            st.st_uid != uid)
            continue;
        if (npids == cap) {
            pid_t *more = realloc(pids, (cap = cap > 0 ? cap * 2 : 256) * sizeof(*pids));
            if (more == NULL)
                break;
            pids = more;
        }
        pids[npids++] = (pid_t)strtol(e->d_name, NULL, 10);
    }
    closedir(proc);
    qsort(pids, npids, sizeof(*pids), sockdiag_pid_desc);
    for (size_t i = 0; i < npids && rc < 0; i++) {
        /* Past the budget, the holder stays unknown (and the caller says so). */
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) > budget_ns)
            break;
        snprintf(name, sizeof(name), "%ld", (long)pids[i]);
        if (sockdiag_pid_holds(name, want)) {
            *pid = pids[i];
            rc = 0;
        }
    }
    free(pids);
    return rc;
}

/* The inode of a socket. */
uint64_t sockdiag_inode(int fd)
{
    struct stat st;

    return fstat(fd, &st) == 0 ? (uint64_t)st.st_ino : 0;
}
