/* Running a command whose only way out is sluice; see include/sluice/isolate.h. */
#include "sluice/isolate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

/* Writes text to /proc/self/NAME; -1 with errno on failure. */
static int isolate_write_proc(const char *name, const char *text)
{
    char path[64];
    size_t len = strlen(text);
    int fd, saved;
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/self/%s", name);
    if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
        return -1;
    n = write(fd, text, len);
    saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)len ? 0 : -1;
}

/* Brings the namespace's loopback interface up; -1 with errno. */
static int isolate_loopback_up(void)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = -1, saved;

    if (fd < 0)
        return -1;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "lo", 3);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags = (short)(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* Enters the namespaces; see the header. */
int isolate_enter(char *err, size_t cap)
{
    char map[64];
    uid_t uid = geteuid();
    gid_t gid = getegid();

    /* A user namespace of our own, even for root: what runs inside then holds no
     * capability outside it, so it cannot join the machine's network namespace again. */
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0) {
        char gmap[64];

        snprintf(map, sizeof(map), "%lu %lu 1\n", (unsigned long)uid, (unsigned long)uid);
        snprintf(gmap, sizeof(gmap), "%lu %lu 1\n", (unsigned long)gid, (unsigned long)gid);
        if (isolate_write_proc("uid_map", map) < 0 ||
            (isolate_write_proc("setgroups", "deny") < 0 && errno != ENOENT) ||
            isolate_write_proc("gid_map", gmap) < 0) {
            snprintf(err, cap, "cannot map user %lu into the new user namespace: %s",
                     (unsigned long)uid, strerror(errno));
            return -1;
        }
    } else if (uid != 0 || unshare(CLONE_NEWNET) < 0) {
        snprintf(err, cap,
                 "cannot make a network namespace: %s (unprivileged user namespaces are off "
                 "here: see sysctl user.max_user_namespaces and "
                 "kernel.apparmor_restrict_unprivileged_userns; or run this as root)",
                 strerror(errno));
        return -1;
    }
    if (isolate_loopback_up() < 0) {
        snprintf(err, cap, "cannot bring up loopback in the new network namespace: %s",
                 strerror(errno));
        return -1;
    }
    return 0;
}

/* One relayed connection: the command's side (a) and sluice's (b), a buffer each way. */
struct isolate_pair {
    int fd[2];
    char *buf[2]; /* buf[i]: read from fd[i], to be written to fd[1 - i] */
    size_t len[2], off[2];
    bool eof[2];  /* fd[i] said it has no more to send */
    bool shut[2]; /* fd[1 - i] was told so */
};

/* Closes a pair and frees its buffers. */
static void isolate_pair_free(struct isolate_pair *p)
{
    for (int i = 0; i < 2; i++) {
        if (p->fd[i] >= 0)
            close(p->fd[i]);
        free(p->buf[i]);
    }
    free(p);
}

/* A new pair for the accepted client cfd, connected to sluice at to; NULL on failure. */
static struct isolate_pair *isolate_pair_new(int cfd, const struct sockaddr *to, socklen_t len)
{
    struct isolate_pair *p = calloc(1, sizeof(*p));
    int sfd;

    if (p == NULL) {
        close(cfd);
        return NULL;
    }
    p->fd[0] = cfd;
    p->fd[1] = -1;
    p->buf[0] = malloc(ISOLATE_BUFFER);
    p->buf[1] = malloc(ISOLATE_BUFFER);
    sfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->buf[0] == NULL || p->buf[1] == NULL || sfd < 0 || connect(sfd, to, len) < 0) {
        if (sfd >= 0)
            close(sfd);
        isolate_pair_free(p);
        return NULL;
    }
    p->fd[1] = sfd;
    return p;
}

/*
 * Moves what it can of one direction (fd[i] to fd[1 - i]) given the poll results.
 * Returns false when the pair is broken (an error either side).
 */
static bool isolate_pair_move(struct isolate_pair *p, int i, short rev_from, short rev_to)
{
    int to = 1 - i;
    ssize_t n;

    if ((rev_from & (POLLIN | POLLHUP | POLLERR)) && !p->eof[i] && p->len[i] == 0) {
        n = read(p->fd[i], p->buf[i], ISOLATE_BUFFER);
        if (n > 0) {
            p->len[i] = (size_t)n;
            p->off[i] = 0;
        } else if (n == 0) {
            p->eof[i] = true;
        } else if (errno != EAGAIN && errno != EINTR) {
            return false;
        }
    }
    if (p->len[i] > p->off[i] && ((rev_to & POLLOUT) || rev_from != 0)) {
        n = send(p->fd[to], p->buf[i] + p->off[i], p->len[i] - p->off[i], MSG_NOSIGNAL);
        if (n > 0) {
            p->off[i] += (size_t)n;
            if (p->off[i] == p->len[i])
                p->len[i] = p->off[i] = 0;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return false;
        }
    }
    if (p->eof[i] && p->len[i] == 0 && !p->shut[i]) {
        (void)shutdown(p->fd[to], SHUT_WR);
        p->shut[i] = true;
    }
    return true;
}

/*
 * True when side i has hung up (POLLHUP or POLLERR, which poll reports whether asked or
 * not), has said all it will and has nothing waiting for it: nothing more can pass, and
 * waiting on would only spin.
 */
static bool isolate_pair_hung_up(const struct isolate_pair *p, short revents, int i)
{
    return (revents & (POLLHUP | POLLERR)) && p->eof[i] && p->len[i] == 0 && p->len[1 - i] == 0;
}

/* The events pair p waits for on side i. */
static short isolate_pair_events(const struct isolate_pair *p, int i)
{
    short ev = 0;

    if (!p->eof[i] && p->len[i] == 0)
        ev |= POLLIN;
    if (p->len[1 - i] > p->off[1 - i])
        ev |= POLLOUT;
    return ev;
}

/* The signal a supervising process last received, to pass on to the one it watches. */
static volatile sig_atomic_t isolate_passed_signal;

static void isolate_note_signal(int sig)
{
    isolate_passed_signal = sig;
}

static int isolate_status(int wstatus);

/*
 * Makes this process a supervisor: SIGTERM and SIGHUP are noted to be passed on (the
 * first process of a PID namespace gets only signals it handles), Ctrl-C and Ctrl-\ are
 * left to the command, which the terminal reaches itself.
 */
static void isolate_supervisor_signals(void)
{
    struct sigaction sa = {.sa_handler = isolate_note_signal};
    sigset_t pass;

    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGTERM, &sa, NULL);
    (void)sigaction(SIGHUP, &sa, NULL);
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    sigemptyset(&pass);
    sigaddset(&pass, SIGTERM);
    sigaddset(&pass, SIGHUP);
    sigaddset(&pass, SIGCHLD);
    sigprocmask(SIG_UNBLOCK, &pass, NULL);
}

/* Waits for child, reaping any other (orphans come to a namespace's first process),
 * passing on the signals noted; ends with child's status. */
static _Noreturn void isolate_supervise(pid_t child)
{
    int wstatus;

    for (;;) {
        pid_t w = waitpid(-1, &wstatus, 0);
        if (w == child)
            _exit(isolate_status(wstatus));
        if (w < 0 && errno == EINTR && isolate_passed_signal != 0) {
            (void)kill(child, isolate_passed_signal);
            isolate_passed_signal = 0;
        } else if (w < 0 && errno == ECHILD) {
            _exit(1);
        }
    }
}

/* Runs argv with the signals and mask as they were before sluice touched them. */
static _Noreturn void isolate_exec(char **argv, const sigset_t *old_mask)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    sigprocmask(SIG_SETMASK, old_mask, NULL);
    execvp(argv[0], argv);
    fprintf(stderr, "sluice: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
}

/*
 * Starts argv under a PID namespace of its own; returns the pid of the process that
 * watches it (its status is the command's), or -1.  In a PID namespace every process the
 * command starts, even one that forks twice to leave its parent, stays below the
 * namespace's first process, so sluice sees them all among the launcher's descendants;
 * when the command ends, that first process ends and the kernel ends the rest.  The
 * launcher itself stays outside: a process whose namespace lost its first one cannot
 * fork any more.
 */
static pid_t isolate_spawn(char **argv, const sigset_t *old_mask, int lfd, int sfd)
{
    pid_t pid = fork(), first, cmd;

    if (pid != 0)
        return pid;
    /* The relay's descriptors stay the relay's: nothing inside may accept for it. */
    close(lfd);
    close(sfd);
    isolate_supervisor_signals();
    if (unshare(CLONE_NEWPID) < 0) {
        fprintf(stderr, "sluice: cannot make a PID namespace: %s\n", strerror(errno));
        _exit(126);
    }
    if ((first = fork()) < 0) {
        fprintf(stderr, "sluice: cannot start %s: %s\n", argv[0], strerror(errno));
        _exit(126);
    }
    if (first > 0)
        isolate_supervise(first);
    if ((cmd = fork()) < 0) {
        fprintf(stderr, "sluice: cannot start %s: %s\n", argv[0], strerror(errno));
        _exit(126);
    }
    if (cmd == 0)
        isolate_exec(argv, old_mask);
    isolate_supervise(cmd);
}

/* The exit status a shell would give for a child's wait status. */
static int isolate_status(int wstatus)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus))
        return 128 + WTERMSIG(wstatus);
    return 1;
}

/* Listens on 127.0.0.1:port in the namespace; -1 with err. */
static int isolate_listen(uint16_t port, char *err, size_t cap)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 128) < 0) {
        snprintf(err, cap, "cannot listen on 127.0.0.1:%u in the namespace: %s", port,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Runs and relays; see the header. */
int isolate_run(uint16_t port, const struct sockaddr *to, socklen_t len, char **argv, char *err,
                size_t cap)
{
    static struct pollfd pfd[2 + 2 * ISOLATE_MAX_PAIRS];
    static struct isolate_pair *pairs[ISOLATE_MAX_PAIRS];
    size_t npairs = 0;
    sigset_t mask, old_mask;
    int lfd, sfd, wstatus = 0, status = -1;
    pid_t child;

    if ((lfd = isolate_listen(port, err, cap)) < 0)
        return -1;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &mask, &old_mask) < 0 ||
        (sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
        snprintf(err, cap, "cannot watch signals: %s", strerror(errno));
        close(lfd);
        return -1;
    }
    if ((child = isolate_spawn(argv, &old_mask, lfd, sfd)) < 0) {
        snprintf(err, cap, "cannot start %s: %s", argv[0], strerror(errno));
        close(lfd);
        close(sfd);
        return -1;
    }
    /* Ctrl-C and Ctrl-\ reach the command from the terminal; it decides when to end. */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    while (status < 0) {
        size_t n = 0;
        struct signalfd_siginfo si;

        pfd[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = lfd, .events = npairs < ISOLATE_MAX_PAIRS ? POLLIN : 0};
        for (size_t k = 0; k < npairs; k++)
            for (int i = 0; i < 2; i++)
                pfd[n++] = (struct pollfd){.fd = pairs[k]->fd[i],
                                           .events = isolate_pair_events(pairs[k], i)};
        if (poll(pfd, n, -1) < 0 && errno != EINTR)
            break;
        while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            if (si.ssi_signo != SIGCHLD)
                (void)kill(child, (int)si.ssi_signo); /* the command ends itself */
        }
        if (waitpid(child, &wstatus, WNOHANG) == child) {
            status = isolate_status(wstatus);
            break;
        }
        for (size_t k = 0; k < npairs;) {
            struct isolate_pair *p = pairs[k];
            short r0 = pfd[2 + 2 * k].revents, r1 = pfd[3 + 2 * k].revents;
            bool ok = isolate_pair_move(p, 0, r0, r1) && isolate_pair_move(p, 1, r1, r0);

            if (!ok || (p->shut[0] && p->shut[1]) || isolate_pair_hung_up(p, r0, 0) ||
                isolate_pair_hung_up(p, r1, 1)) {
                isolate_pair_free(p);
                /* The last pair takes its place; its poll results are for its old place. */
                pairs[k] = pairs[--npairs];
                pfd[2 + 2 * k] = pfd[2 + 2 * npairs];
                pfd[3 + 2 * k] = pfd[3 + 2 * npairs];
                continue;
            }
            k++;
        }
        if (pfd[1].revents & POLLIN) {
            int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            struct isolate_pair *p = cfd >= 0 ? isolate_pair_new(cfd, to, len) : NULL;

            if (p != NULL)
                pairs[npairs++] = p;
        }
    }
    for (size_t k = 0; k < npairs; k++)
        isolate_pair_free(pairs[k]);
    close(lfd);
    close(sfd);
    if (status < 0) {
        snprintf(err, cap, "the relay stopped: %s", strerror(errno));
        (void)kill(child, SIGTERM);
        (void)waitpid(child, &wstatus, 0);
        return -1;
    }
    return status;
}
