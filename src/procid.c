/* The process behind a loopback connection; see include/sluice/procid.h. */
#include "sluice/procid.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/redact.h"
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

/* True when this kernel lists children under /proc/PID/task/TID/children (Linux 4.2 on,
 * CONFIG_PROC_CHILDREN): without them, no descendant can be vouched for. */
static bool procid_has_children_files(void)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/self/task/%ld/children", (long)syscall(SYS_gettid));
    return access(path, R_OK) == 0;
}

/* Process i of the chain, then the descendant. */
const struct procid_proc *procid_nth(const struct procid *c, size_t i)
{
    return i < c->nchain ? &c->chain[i] : &c->descendant;
}

/* This program's own executable, read once: the launcher must run the very same file. */
static char procid_self[PROCID_MAX_EXE];
static pthread_once_t procid_self_once = PTHREAD_ONCE_INIT;

/* Reads procid_self.  A package upgrade replaces the file under a running daemon, whose
 * link then ends in " (deleted)": the path is what a launcher started since runs. */
static void procid_read_self(void)
{
    static const char deleted[] = " (deleted)";
    ssize_t n = readlink("/proc/self/exe", procid_self, sizeof(procid_self) - 1);
    size_t len = n > 0 ? (size_t)n : 0;

    procid_self[len] = '\0';
    if (len > sizeof(deleted) - 1 &&
        strcmp(procid_self + len - (sizeof(deleted) - 1), deleted) == 0)
        procid_self[len - (sizeof(deleted) - 1)] = '\0';
}

/* The tool of an isolating launcher; see the header. */
bool procid_isolate_tool(const struct procid_proc *proc, char *out, size_t cap)
{
    bool isolate = false, run = false, ended = false;
    const char *tool = NULL;

    pthread_once(&procid_self_once, procid_read_self);
    if (procid_self[0] == '\0' || strcmp(proc->exe, procid_self) != 0 || proc->args_len == 0)
        return false;
    for (size_t off = strlen(proc->args) + 1; off < proc->args_len;
         off += strlen(proc->args + off) + 1) {
        const char *arg = proc->args + off;

        if (strcmp(arg, "--") == 0) {
            ended = true;
            break;
        }
        /* The launcher refuses a command line where these words mean anything else
         * (command_launch() reads its own the same way), so a plain scan agrees with it;
         * the last --tool is the one getopt keeps. */
        if (strcmp(arg, "--isolate") == 0)
            isolate = true;
        else if (strcmp(arg, "run") == 0)
            run = true;
        else if (strncmp(arg, "--tool=", 7) == 0)
            tool = arg + 7;
        else if (strcmp(arg, "--tool") == 0 && off + strlen(arg) + 1 < proc->args_len)
            tool = arg + strlen(arg) + 1;
    }
    /* Without the "--" that ends sluice's own words, /proc's answer was cut short of them. */
    if (!ended || !isolate || !run || tool == NULL || tool[0] == '\0' || strlen(tool) >= cap)
        return false;
    memcpy(out, tool, strlen(tool) + 1);
    return true;
}

/*
 * Appends the children of pid (of each of its threads) to queue[*n..cap).  Returns false
 * when one did not fit, or when they cannot be read (pid gone is no error: no children).
 */
static bool procid_children(pid_t pid, pid_t *queue, size_t *n, size_t cap)
{
    char path[300];
    struct dirent *e;
    bool ok = true;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
    if ((d = opendir(path)) == NULL)
        return errno == ENOENT;
    while (ok && (e = readdir(d)) != NULL) {
        FILE *f;
        long child;

        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/task/%s/children", (long)pid, e->d_name);
        /* Read to its end: the kernel hands the list out a page at a time. */
        if ((f = fopen(path, "re")) == NULL) {
            /* A thread that ended since has no list; a kernel without the lists vouches
             * for nothing. */
            ok = errno == ENOENT && procid_has_children_files();
            continue;
        }
        while (ok && fscanf(f, "%ld", &child) == 1) {
            if (*n == cap)
                ok = false;
            else if (child > 1)
                queue[(*n)++] = (pid_t)child;
        }
        ok = ok && !ferror(f);
        fclose(f);
    }
    closedir(d);
    return ok;
}

/* Nanoseconds since start. */
static long procid_elapsed_ns(const struct timespec *start)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000000000L + (now.tv_nsec - start->tv_nsec);
}

/* Walks pid's descendants; see the header. */
int procid_walk_descendants(pid_t pid, bool (*visit)(const struct procid_proc *, void *), void *arg,
                            struct procid_proc *scratch)
{
    pid_t *queue = malloc(PROCID_MAX_TREE * sizeof(*queue));
    struct timespec start;
    size_t n = 0;
    int rc = 0;

    if (queue == NULL)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &start);
    if (!procid_children(pid, queue, &n, PROCID_MAX_TREE))
        rc = -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        /* The walk runs on a worker's loop: past its budget, what is left is not seen. */
        if (procid_elapsed_ns(&start) > PROCID_TREE_BUDGET_NS) {
            rc = -1;
            break;
        }
        procid_describe(queue[i], scratch);
        if (visit(scratch, arg))
            rc = 1;
        else if (!procid_children(queue[i], queue, &n, PROCID_MAX_TREE))
            rc = -1;
    }
    free(queue);
    return rc;
}

/* The outermost isolating launcher above c; see the header. */
int procid_outer_launcher(const struct procid *c, struct procid_proc *out)
{
    char tool[64];
    int found = 0;
    pid_t p;

    for (size_t i = 0; i < c->nchain; i++)
        if (procid_isolate_tool(&c->chain[i], tool, sizeof(tool))) {
            *out = c->chain[i];
            found = 1;
        }
    if (!c->cut)
        return found;
    /* The chain stopped at its bound: the rest of the way up, one process at a time. */
    p = c->chain[c->nchain - 1].pid;
    for (unsigned steps = 0; steps < PROCID_MAX_ANCESTORS; steps++) {
        struct procid_proc proc;
        uint64_t start;

        if ((p = procid_stat(p, &start, NULL, 0)) <= 1)
            return p == 1 ? found : -1; /* 0: gone or hidden, the top not seen */
        procid_describe(p, &proc);
        if (procid_isolate_tool(&proc, tool, sizeof(tool))) {
            *out = proc;
            found = 1;
        }
    }
    return -1;
}

/* Fills out's chain from pid (whose parent is parent) up, pid 1 left out. */
static void procid_chain(pid_t pid, pid_t parent, struct procid *out)
{
    pid_t p = pid;

    out->nchain = 0;
    /* pid 1 ends the chain: every process descends from it, so it names no tool. */
    while (p > 1 && out->nchain < PROCID_MAX_CHAIN) {
        uint64_t unused;

        procid_describe(p, &out->chain[out->nchain++]);
        p = p == pid ? parent : procid_stat(p, &unused, NULL, 0);
    }
    out->cut = p > 1;
}

/* The chain of a process by its pid; see the header. */
int procid_of_pid(pid_t pid, struct procid *out)
{
    uint64_t start;
    pid_t parent = procid_stat(pid, &start, NULL, 0);

    char path[64];
    struct stat st;

    if (start == 0)
        return -1; /* gone, or not a process */
    snprintf(path, sizeof(path), "/proc/%ld", (long)pid);
    out->uid = stat(path, &st) == 0 ? (uint32_t)st.st_uid : UINT32_MAX;
    out->start = start;
    procid_chain(pid, parent, out);
    return out->nchain > 0 ? 0 : -1;
}

/* The chain of a process that must still be the one that started at start. */
int procid_of_process(pid_t pid, uint64_t start, struct procid *out)
{
    return procid_of_pid(pid, out) == 0 && out->start == start ? 0 : -1;
}

/*
 * True when pid still runs the program proc read: the same executable (an execve through
 * a link named like the old program keeps the name) and the same command line.
 */
static bool procid_same_program(pid_t pid, const struct procid_proc *proc)
{
    char args[PROCID_MAX_ARGS], exe[PROCID_MAX_EXE], path[64];
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
    n = readlink(path, exe, sizeof(exe) - 1);
    if (n < 0 && proc->exe[0] == '\0')
        n = 0; /* hidden then and now (another user's process): the command line tells */
    if (n < 0 || (size_t)n != strlen(proc->exe) || memcmp(exe, proc->exe, (size_t)n) != 0)
        return false;
    n = procid_read(pid, "cmdline", args, sizeof(args) - 1);
    return n >= 0 && (size_t)n == proc->args_len && memcmp(args, proc->args, (size_t)n) == 0;
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
        /* A process keeps its pid and start time across execve(), and its name when the
         * new program's file has the same (perl running perl, or a link so named): its
         * executable and command line too say it is the same program as before. */
        if (cache->chains[i].pid == pid && cache->chains[i].start == start && start != 0 &&
            strcmp(cache->chains[i].comm, comm) == 0 &&
            procid_same_program(pid, &cache->chains[i].chain.chain[0])) {
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

/* Appends text (len bytes) to out, bounded; a cut shows as "...". */
static void procid_append(char *out, size_t cap, size_t *at, const char *text, size_t len)
{
    if (*at + 4 >= cap)
        return;
    if (*at + len + 4 >= cap) {
        len = cap - 4 - *at; /* with "..." and the NUL, it fills out */
        memcpy(out + *at, text, len);
        memcpy(out + *at + len, "...", 4);
        *at = cap - 1;
        return;
    }
    memcpy(out + *at, text, len);
    *at += len;
    out[*at] = '\0';
}

/* Appends user:PASSWORD (curl's -u) with the password hidden; false when it has no ':'. */
static bool procid_append_userpass(char *out, size_t cap, size_t *at, const char *userpass)
{
    static const char hidden[] = REDACT_HIDDEN;
    const char *c = strchr(userpass, ':');

    if (c == NULL)
        return false;
    procid_append(out, cap, at, userpass, (size_t)(c - userpass) + 1);
    procid_append(out, cap, at, hidden, sizeof(hidden) - 1);
    return true;
}

/* Appends parameters (form data, NAME=VALUE&...) with secret values hidden (redact). */
static void procid_append_params(char *out, size_t cap, size_t *at, const char *params, size_t len)
{
    char shown[1024];
    size_t n = redact_params(params, len, shown, sizeof(shown));

    procid_append(out, cap, at, shown, n);
}

/* True when v[0..len) is a header given whole ("Authorization: Basic ...", its value
 * may hold '=') whose name is a secret's; *colon then points at its ':'. */
static bool procid_secret_header(const char *v, size_t len, const char **colon)
{
    const char *c = memchr(v, ':', len);

    *colon = c;
    return c != NULL && c > v && (size_t)(c - v) + 1 < len && c[1] != '/' &&
           memchr(v, '/', (size_t)(c - v)) == NULL && memchr(v, '=', (size_t)(c - v)) == NULL &&
           redact_secret_name(v, (size_t)(c - v));
}

/* The end of the JSON string that starts at v[i] (a '"'): the index past its closing
 * quote, or len when it does not close. */
static size_t procid_json_string_end(const char *v, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (v[i] == '\\')
            i++;
        else if (v[i] == '"')
            return i + 1;
    }
    return len;
}

/* The end of the JSON value that starts at v[i]: a string, an object or array (nested,
 * to its close), or a token (a number, true...); len when it does not end. */
static size_t procid_json_value_end(const char *v, size_t len, size_t i)
{
    size_t depth = 0;

    if (i < len && v[i] == '"')
        return procid_json_string_end(v, len, i);
    if (i >= len || (v[i] != '{' && v[i] != '['))
        return i + strcspn(v + i, ",}] \t\n") < len ? i + strcspn(v + i, ",}] \t\n") : len;
    while (i < len) {
        if (v[i] == '"') {
            i = procid_json_string_end(v, len, i);
            continue;
        }
        if (v[i] == '{' || v[i] == '[')
            depth++;
        else if ((v[i] == '}' || v[i] == ']') && --depth == 0)
            return i + 1;
        i++;
    }
    return len;
}

/*
 * Appends a JSON text (curl -d '{"user":"bob","password":"..."}') with the value of every
 * member named like a secret hidden: a string as "<redacted>", anything else as
 * <redacted>.  The rest is copied as it is.
 */
static void procid_append_json(char *out, size_t cap, size_t *at, const char *v, size_t len)
{
    static const char hidden[] = REDACT_HIDDEN;
    size_t i = 0, from = 0;

    while (i < len) {
        size_t end, k;

        if (v[i] != '"') {
            i++;
            continue;
        }
        end = procid_json_string_end(v, len, i);
        for (k = end; k < len && (v[k] == ' ' || v[k] == '\t' || v[k] == '\n'); k++)
            ;
        if (k >= len || v[k] != ':' || end - i < 2 || !redact_secret_name(v + i + 1, end - i - 2)) {
            i = end;
            continue;
        }
        /* A member named like a secret: its name and the ':' stay, its value goes. */
        for (k++; k < len && (v[k] == ' ' || v[k] == '\t' || v[k] == '\n'); k++)
            ;
        procid_append(out, cap, at, v + from, k - from);
        if (k < len && v[k] == '"')
            procid_append(out, cap, at, "\"" REDACT_HIDDEN "\"", sizeof(hidden) + 1);
        else
            procid_append(out, cap, at, hidden, sizeof(hidden) - 1);
        i = from = procid_json_value_end(v, len, k);
    }
    procid_append(out, cap, at, v + from, len - from);
}

/*
 * Appends a value an argument carries (all of it, or what follows "NAME=" or a short
 * option's letter), its secrets hidden: a JSON text's members named like secrets; a
 * header given whole whose name is a secret's,
 * also after the last '=' (git -c "http.https://h/.extraheader=Authorization: ..."); else
 * the URL in it, with what comes before read as parameters ("a=1&token=t&next=https://...");
 * else parameters (form data, cookies).
 */
static void procid_append_value(char *out, size_t cap, size_t *at, const char *v, size_t len)
{
    static const char hidden[] = REDACT_HIDDEN;
    const char *colon, *scheme = NULL, *last_eq = NULL;

    if (len > 0 && (v[0] == '{' || v[0] == '[')) {
        procid_append_json(out, cap, at, v, len);
        return;
    }
    if (procid_secret_header(v, len, &colon)) {
        procid_append(out, cap, at, v, (size_t)(colon - v) + 1);
        procid_append(out, cap, at, " ", 1);
        procid_append(out, cap, at, hidden, sizeof(hidden) - 1);
        return;
    }
    for (size_t i = 0; i < len; i++)
        if (v[i] == '=')
            last_eq = v + i;
    if (last_eq != NULL && last_eq > v &&
        procid_secret_header(last_eq + 1, len - (size_t)(last_eq + 1 - v), &colon)) {
        procid_append_value(out, cap, at, v, (size_t)(last_eq - v));
        procid_append(out, cap, at, "=", 1);
        procid_append(out, cap, at, last_eq + 1, (size_t)(colon - last_eq));
        procid_append(out, cap, at, " ", 1);
        procid_append(out, cap, at, hidden, sizeof(hidden) - 1);
        return;
    }
    for (size_t i = 0; i + 3 <= len && scheme == NULL; i++)
        if (memcmp(v + i, "://", 3) == 0)
            scheme = v + i;
    if (scheme != NULL) {
        char url[1024];
        size_t n;

        /* Back over the scheme to where the URL starts: a letter, then letters, digits,
         * '+', '-' or '.'. */
        while (scheme > v && (isalnum((unsigned char)scheme[-1]) || scheme[-1] == '+' ||
                              scheme[-1] == '-' || scheme[-1] == '.'))
            scheme--;
        while (*scheme != ':' && !isalpha((unsigned char)*scheme))
            scheme++;
        procid_append_params(out, cap, at, v, (size_t)(scheme - v));
        n = redact_url(scheme, len - (size_t)(scheme - v), url, sizeof(url));
        procid_append(out, cap, at, url, n);
        return;
    }
    procid_append_params(out, cap, at, v, len);
}

/*
 * For curl's command line, where in a cluster of short options ("-fsSu", "-fsSuuser:pw")
 * the letter u or U is that takes USER:PASSWORD (the rest of the cluster, or the next
 * argument when it ends there): its offset, or 0 for none.
 */
static size_t procid_cluster_user(const char *arg)
{
    /* curl's options that take no value: a letter of another ends the cluster, its value
     * being the rest (-HAuthorization: ... is -H's). */
    static const char flags[] = "fsSLkviIOnqRjgGlMNZ0123456";

    for (size_t i = 1; arg[0] == '-' && arg[i] != '\0'; i++) {
        if (arg[i] == 'u' || arg[i] == 'U')
            return i;
        if (strchr(flags, arg[i]) == NULL)
            return 0;
    }
    return 0;
}

/* True when the program (argv[0]) is named name, with or without a directory. */
static bool procid_program_is(const struct procid_proc *proc, const char *name)
{
    const char *base = strrchr(proc->args, '/');

    base = base != NULL ? base + 1 : proc->args;
    return proc->args_len > 0 && strcmp(base, name) == 0;
}

/* True when an argument after the program is exactly word. */
static bool procid_has_arg(const struct procid_proc *proc, const char *word)
{
    for (size_t off = strlen(proc->args) + 1; off < proc->args_len;
         off += strlen(proc->args + off) + 1)
        if (strcmp(proc->args + off, word) == 0)
            return true;
    return false;
}

/*
 * Programs whose short -p takes a password: mysql's -pPASSWORD, and -p PASSWORD in a
 * registry login (docker login; docker run -p is a port).
 */
static bool procid_short_p_is_password(const struct procid_proc *proc)
{
    static const char *const mysql[] = {"mysql", "mariadb", "mysqldump", "mysqladmin"};
    static const char *const login[] = {"docker", "podman", "buildah", "skopeo", "helm"};

    for (size_t i = 0; i < sizeof(mysql) / sizeof(mysql[0]); i++)
        if (procid_program_is(proc, mysql[i]))
            return true;
    for (size_t i = 0; i < sizeof(login) / sizeof(login[0]); i++)
        if (procid_program_is(proc, login[i]))
            return procid_has_arg(proc, "login");
    return false;
}

/* The command line, secrets redacted; see the header. */
void procid_command_line(const struct procid_proc *proc, char *out, size_t cap)
{
    static const char hidden[] = REDACT_HIDDEN;
    size_t at = 0;
    bool next_secret = false, next_userpass = false;
    bool curl = procid_program_is(proc, "curl"), short_p = procid_short_p_is_password(proc);

    out[0] = '\0';
    for (size_t off = 0; off < proc->args_len; off += strlen(proc->args + off) + 1) {
        const char *arg = proc->args + off, *eq = strchr(arg, '='), *colon = strchr(arg, ':');
        const char *scheme = strstr(arg, "://");
        size_t len = strlen(arg), user = 0;

        if (off > 0)
            procid_append(out, cap, &at, " ", 1);
        /* The value of an option named like a secret, hidden whatever it looks like (a
         * password may start with "--").  When it is itself a long option named so (a
         * flag, --password-stdin, before --password PW), the next one is hidden too. */
        if (next_secret) {
            next_secret = arg[0] == '-' && arg[1] == '-' && redact_secret_name(arg + 2, len - 2);
            procid_append(out, cap, &at, hidden, sizeof(hidden) - 1);
            continue;
        }
        /* curl -u USER:PASSWORD, -U, --user, --proxy-user, -fsSu: the user stays. */
        if (next_userpass) {
            next_userpass = false;
            if (procid_append_userpass(out, cap, &at, arg))
                continue;
        }
        /* The same joined: --user=USER:PASSWORD, -uUSER:PASSWORD, and in a cluster of
         * curl's options -fsSuUSER:PASSWORD. */
        if (strncmp(arg, "--user=", 7) == 0 || strncmp(arg, "--proxy-user=", 13) == 0) {
            procid_append(out, cap, &at, arg, (size_t)(eq - arg) + 1);
            if (!procid_append_userpass(out, cap, &at, eq + 1))
                procid_append(out, cap, &at, eq + 1, len - (size_t)(eq - arg) - 1);
            continue;
        }
        if (arg[0] == '-' && arg[1] != '-')
            user = arg[1] == 'u' || arg[1] == 'U' ? 1 : curl ? procid_cluster_user(arg) : 0;
        if (user > 0 && arg[user + 1] == '\0') {
            next_userpass = true;
            procid_append(out, cap, &at, arg, len);
            continue;
        }
        if (user > 0 && arg[user + 1] != '-' && strchr(arg + user + 1, ':') != NULL) {
            procid_append(out, cap, &at, arg, user + 1);
            procid_append_userpass(out, cap, &at, arg + user + 1);
            continue;
        }
        /* docker login -p PASSWORD, mysql -pPASSWORD. */
        if (short_p && arg[0] == '-' && arg[1] == 'p') {
            procid_append(out, cap, &at, arg, 2);
            if (arg[2] != '\0')
                procid_append(out, cap, &at, hidden, sizeof(hidden) - 1);
            else
                next_secret = true;
            continue;
        }
        /* NAME=VALUE and --name=VALUE (the '=' before any URL or header in it): the name
         * says whether the value is a secret; if not, the value may hold secrets of its
         * own (git -c http.extraHeader="Authorization: ...", --data=a=1&token=...). */
        if (eq != NULL && eq > arg && (scheme == NULL || eq < scheme) &&
            (colon == NULL || eq < colon)) {
            procid_append(out, cap, &at, arg, (size_t)(eq - arg) + 1);
            if (redact_secret_name(arg, (size_t)(eq - arg)))
                procid_append(out, cap, &at, hidden, sizeof(hidden) - 1);
            else
                procid_append_value(out, cap, &at, eq + 1, len - (size_t)(eq - arg) - 1);
            continue;
        }
        if (arg[0] == '-' && arg[1] == '-') {
            /* --password VALUE: long options only; -p VALUE is too common to tell. */
            if (redact_secret_name(arg + 2, len - 2))
                next_secret = true;
            procid_append(out, cap, &at, arg, len); /* an option's name */
        } else if (arg[0] == '-' && len > 2) {
            /* A short option with its value joined (curl -H"Authorization: ...",
             * -xhttp://user:pw@proxy), or a cluster of flags, read as a value. */
            procid_append(out, cap, &at, arg, 2);
            procid_append_value(out, cap, &at, arg + 2, len - 2);
        } else {
            procid_append_value(out, cap, &at, arg, len);
        }
    }
}

/* The chain as names; see the header. */
void procid_chain_names(const struct procid *c, char *out, size_t cap)
{
    size_t at = 0;

    out[0] = '\0';
    for (size_t i = 0; i < c->nchain; i++) {
        const char *exe = c->chain[i].exe, *base = strrchr(exe, '/');
        base = base != NULL ? base + 1 : exe[0] != '\0' ? exe : "?";
        if (i > 0)
            procid_append(out, cap, &at, "<", 1);
        procid_append(out, cap, &at, base, strlen(base));
    }
}
