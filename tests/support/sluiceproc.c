/* Spawning, watching and stopping the sluice binary under test. */
#include "sluiceproc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tio.h"

#ifndef SLUICE_BIN_DEFAULT
#define SLUICE_BIN_DEFAULT "sluice"
#endif

#define SLUICEPROC_MAX_ARGS 64

/* One spawned process and its files; owned by the test. */
struct sluiceproc {
    pid_t pid;
    bool reaped;
    int status;
    char log_path[512];
    char ready_path[512];
    char addrs[SLUICEPROC_MAX_ADDRS][64];
    uint16_t ports[SLUICEPROC_MAX_ADDRS];
    unsigned naddrs;
};

/* Tells apart the files of several processes in one directory. */
static atomic_uint sluiceproc_seq;

/* Picks the binary. */
const char *sluiceproc_bin(void)
{
    const char *env = getenv("SLUICE_BIN");

    return env != NULL && env[0] != '\0' ? env : SLUICE_BIN_DEFAULT;
}

/* Spawns the process with stdin from /dev/null and stdout+stderr to the log. */
struct sluiceproc *sluiceproc_spawn(const char *dir, const char *const args[])
{
    struct sluiceproc *p = calloc(1, sizeof(*p));
    const char *argv[SLUICEPROC_MAX_ARGS + 4];
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none;
    sigset_t def;
    unsigned seq = atomic_fetch_add(&sluiceproc_seq, 1);
    size_t n = 0;
    int rc;

    if (p == NULL)
        return NULL;
    p->pid = -1;
    snprintf(p->log_path, sizeof(p->log_path), "%s/sluice-%u.log", dir, seq);
    snprintf(p->ready_path, sizeof(p->ready_path), "%s/sluice-%u.ready", dir, seq);
    (void)unlink(p->ready_path);
    argv[n++] = sluiceproc_bin();
    while (args != NULL && args[n - 1] != NULL && n <= SLUICEPROC_MAX_ARGS) {
        argv[n] = args[n - 1];
        n++;
    }
    argv[n++] = "--ready-file";
    argv[n++] = p->ready_path;
    argv[n] = NULL;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, p->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGHUP);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    rc = posix_spawn(&p->pid, argv[0], &fa, &attr, (char *const *)(uintptr_t)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        fprintf(stderr, "sluiceproc: posix_spawn %s: %s\n", argv[0], strerror(rc));
        free(p);
        return NULL;
    }
    return p;
}

/* Parses the ready file once it is complete (ends with a newline). */
static bool sluiceproc_parse_ready(struct sluiceproc *p)
{
    size_t len = 0;
    char *text = tio_read_file(p->ready_path, &len);
    char *line;
    char *save = NULL;

    if (text == NULL || len == 0 || text[len - 1] != '\n') {
        free(text);
        return false;
    }
    p->naddrs = 0;
    for (line = strtok_r(text, "\n", &save); line != NULL && p->naddrs < SLUICEPROC_MAX_ADDRS;
         line = strtok_r(NULL, "\n", &save)) {
        char *colon = strrchr(line, ':');
        long port;

        if (colon == NULL)
            continue;
        port = strtol(colon + 1, NULL, 10);
        if (port <= 0 || port > 65535)
            continue;
        snprintf(p->addrs[p->naddrs], sizeof(p->addrs[0]), "%s", line);
        p->ports[p->naddrs] = (uint16_t)port;
        p->naddrs++;
    }
    free(text);
    return p->naddrs > 0;
}

/* Polls for the ready file every 10 ms, watching for an early exit. */
bool sluiceproc_wait_ready(struct sluiceproc *p, int timeout_ms)
{
    uint64_t end = tio_now_ms() + (uint64_t)timeout_ms;
    int i;

    for (i = 0;; i++) {
        if (sluiceproc_parse_ready(p))
            return true;
        if (sluiceproc_wait_exit(p, 0))
            return false;
        if (i >= TIO_MAX_ITER || tio_now_ms() >= end)
            return false;
        tio_sleep_ms(10);
    }
}

/* Reports the PID. */
pid_t sluiceproc_pid(const struct sluiceproc *p)
{
    return p->pid;
}

/* Reports a listener's port. */
uint16_t sluiceproc_port(const struct sluiceproc *p, unsigned i)
{
    return i < p->naddrs ? p->ports[i] : 0;
}

/* Reports a listener's address line. */
const char *sluiceproc_addr(const struct sluiceproc *p, unsigned i)
{
    return i < p->naddrs ? p->addrs[i] : NULL;
}

/* Reports the listener count. */
unsigned sluiceproc_naddrs(const struct sluiceproc *p)
{
    return p->naddrs;
}

/* Reports the log path. */
const char *sluiceproc_log_path(const struct sluiceproc *p)
{
    return p->log_path;
}

/* Signals the process by PID while it has not been reaped. */
int sluiceproc_signal(struct sluiceproc *p, int sig)
{
    if (p->reaped || p->pid <= 0)
        return -1;
    return kill(p->pid, sig);
}

/* Polls waitpid(WNOHANG) every 5 ms within the bound. */
bool sluiceproc_wait_exit(struct sluiceproc *p, int timeout_ms)
{
    uint64_t end = tio_now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    int i;

    for (i = 0;; i++) {
        int st;
        pid_t r;

        if (p->reaped)
            return true;
        r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            p->reaped = true;
            p->status = st;
            return true;
        }
        if (r == -1 && errno != EINTR)
            return false;
        if (i >= TIO_MAX_ITER || tio_now_ms() >= end)
            return false;
        tio_sleep_ms(5);
    }
}

/* Reports the wait status. */
int sluiceproc_status(const struct sluiceproc *p)
{
    return p->status;
}

/* TERM, bounded wait, KILL, bounded wait. */
int sluiceproc_stop(struct sluiceproc *p, int timeout_ms)
{
    if (!p->reaped) {
        (void)sluiceproc_signal(p, SIGTERM);
        if (!sluiceproc_wait_exit(p, timeout_ms)) {
            fprintf(stderr, "sluiceproc: pid %d ignored SIGTERM for %d ms, sending SIGKILL\n",
                    (int)p->pid, timeout_ms);
            (void)sluiceproc_signal(p, SIGKILL);
            if (!sluiceproc_wait_exit(p, 5000))
                return -1;
        }
    }
    return p->status;
}

/*
 * True when tok is one whole field, "key=value" with an unquoted value and no space: it
 * must then match a field of the line exactly ("term=C" does not match term=CD).
 */
static bool sluiceproc_token_is_field(const char *tok)
{
    size_t k = strspn(tok, "abcdefghijklmnopqrstuvwxyz_");

    return k > 0 && tok[k] == '=' && tok[k + 1] != '"' && strchr(tok, ' ') == NULL;
}

/* True when line[0..len) holds tok: a whole field exactly, anything else as a substring. */
static bool sluiceproc_line_has(const char *line, size_t len, const char *tok)
{
    size_t tlen = strlen(tok);
    const char *p = line, *end = line + len;

    if (!sluiceproc_token_is_field(tok))
        return memmem(line, len, tok, tlen) != NULL;
    while ((p = memmem(p, (size_t)(end - p), tok, tlen)) != NULL) {
        if (p > line && p[-1] == ' ' && (p + tlen == end || p[tlen] == ' '))
            return true;
        p++;
    }
    return false;
}

/* True when line[0..len) holds every token of the list. */
static bool sluiceproc_line_matches(const char *line, size_t len, va_list ap)
{
    const char *tok;

    while ((tok = va_arg(ap, const char *)) != NULL) {
        if (!sluiceproc_line_has(line, len, tok))
            return false;
    }
    return true;
}

/*
 * Scans the log for access lines matching the tokens in ap.  Returns the count and, when
 * first is not NULL, the first match (malloc'd).
 */
static unsigned sluiceproc_scan(struct sluiceproc *p, char **first, va_list ap)
{
    char *text = tio_read_file(p->log_path, NULL);
    char *line;
    unsigned n = 0;

    if (first != NULL)
        *first = NULL;
    if (text == NULL)
        return 0;
    line = text;
    while (*line != '\0') {
        char *nl = strchr(line, '\n');
        size_t len;
        va_list aq;

        if (nl == NULL)
            break; /* an unfinished line: look again next time */
        len = (size_t)(nl - line);
        va_copy(aq, ap);
        if (memmem(line, len, " access ", 8) != NULL && sluiceproc_line_matches(line, len, aq)) {
            if (n == 0 && first != NULL)
                *first = strndup(line, len);
            n++;
        }
        va_end(aq);
        line = nl + 1;
    }
    free(text);
    return n;
}

/* Polls the log every 20 ms within the bound. */
char *sluiceproc_access_waitv(struct sluiceproc *p, int timeout_ms, va_list ap)
{
    uint64_t end = tio_now_ms() + (uint64_t)timeout_ms;
    int i;

    for (i = 0;; i++) {
        char *line = NULL;
        va_list aq;

        va_copy(aq, ap);
        (void)sluiceproc_scan(p, &line, aq);
        va_end(aq);
        if (line != NULL)
            return line;
        if (i >= TIO_MAX_ITER || tio_now_ms() >= end)
            return NULL;
        tio_sleep_ms(20);
    }
}

/* Variadic front end of sluiceproc_access_waitv(). */
char *sluiceproc_access_wait(struct sluiceproc *p, int timeout_ms, ...)
{
    va_list ap;
    char *line;

    va_start(ap, timeout_ms);
    line = sluiceproc_access_waitv(p, timeout_ms, ap);
    va_end(ap);
    return line;
}

/* Counts matching access lines now. */
unsigned sluiceproc_access_count(struct sluiceproc *p, ...)
{
    va_list ap;
    unsigned n;

    va_start(ap, p);
    n = sluiceproc_scan(p, NULL, ap);
    va_end(ap);
    return n;
}

/* Substring search over the whole log. */
bool sluiceproc_log_contains(struct sluiceproc *p, const char *s)
{
    char *text = tio_read_file(p->log_path, NULL);
    bool found = text != NULL && strstr(text, s) != NULL;

    free(text);
    return found;
}

/* Polls the log every 10 ms; see the header. */
bool sluiceproc_log_wait(struct sluiceproc *p, const char *s, int timeout_ms)
{
    uint64_t end = tio_now_ms() + (uint64_t)timeout_ms;

    for (int i = 0; i < TIO_MAX_ITER; i++) {
        if (sluiceproc_log_contains(p, s))
            return true;
        if (tio_now_ms() >= end)
            return false;
        tio_sleep_ms(10);
    }
    return false;
}

/* Looks for the sanitizers' report headers. */
bool sluiceproc_sanitizer_report(struct sluiceproc *p)
{
    return sluiceproc_log_contains(p, "ERROR: AddressSanitizer") ||
           sluiceproc_log_contains(p, "ERROR: LeakSanitizer") ||
           sluiceproc_log_contains(p, "runtime error:");
}

/* Reads one "Name:  N kB" line of /proc/PID/status. */
long sluiceproc_status_kib(struct sluiceproc *p, const char *field)
{
    char path[64], *text, *line;
    size_t flen = strlen(field);
    long kib = -1;

    if (p->reaped)
        return -1;
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)p->pid);
    text = tio_read_file(path, NULL);
    if (text == NULL)
        return -1;
    for (line = text; line != NULL && *line != '\0'; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            kib = strtol(line + flen + 1, NULL, 10);
            break;
        }
    }
    free(text);
    return kib;
}

/* Prints the log's tail. */
void sluiceproc_dump_log(struct sluiceproc *p, size_t max_bytes)
{
    size_t len = 0;
    char *text = tio_read_file(p->log_path, &len);
    size_t from = len > max_bytes ? len - max_bytes : 0;

    fprintf(stderr, "---- %s (pid %d, last %zu bytes) ----\n%s\n---- end of log ----\n",
            p->log_path, (int)p->pid, len - from, text != NULL ? text + from : "(unreadable)");
    free(text);
}

/* Stops if needed and frees. */
void sluiceproc_free(struct sluiceproc *p)
{
    if (p == NULL)
        return;
    if (!p->reaped && p->pid > 0)
        (void)sluiceproc_stop(p, 10000);
    free(p);
}

/* Counts the entries of /proc/PID/fd. */
int sluiceproc_fd_count(struct sluiceproc *p)
{
    char path[64];
    DIR *d;
    struct dirent *e;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%ld/fd", (long)p->pid);
    if ((d = opendir(path)) == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Polls the descriptor count every 10 ms within the bound. */
bool sluiceproc_wait_fds(struct sluiceproc *p, int want, int timeout_ms)
{
    uint64_t end = tio_now_ms() + (uint64_t)timeout_ms;

    for (int i = 0; i < TIO_MAX_ITER; i++) {
        if (sluiceproc_fd_count(p) >= want)
            return true;
        if (tio_now_ms() >= end)
            return false;
        tio_sleep_ms(10);
    }
    return false;
}
