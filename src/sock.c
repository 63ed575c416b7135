/*
 * Buffered non-blocking sockets; see include/sluice/sock.h.
 *
 * libevent's bufferevents ask the kernel how much is readable before every read (an
 * ioctl) and add a write event for every write, removing it once the output is empty: two
 * epoll_ctl calls and a trip through the loop for a write that could have gone at once.
 * A sock reads straight into its input and writes through, so a small exchange costs one
 * read and one write, and the events change only when a side really has to wait.
 */
#include "sluice/sock.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* A socket, its buffers and its two events; owned by whoever called sock_new(). */
struct sock {
    int fd;
    struct evbuffer *in;  /* read, not yet taken */
    struct evbuffer *out; /* queued, not yet written */
    struct event *rd;     /* readable (persistent); added while a read is wanted */
    struct event *wr;     /* writable (persistent); added while output waits for room */
    bool want_read;       /* the owner wants reads */
    bool rd_added;
    bool wr_added;
    bool raw;        /* a tunnel owns the events: no buffered reads or writes */
    bool eof;        /* the peer's end of stream was read */
    bool above_low;  /* the output held more than SOCK_LOW_MARK since the last drain */
    int error;       /* errno of a failure, or 0 */
    bool error_told; /* the failure was reported */
    size_t limit;    /* input bound while reading, 0 for none */
    sock_cb cb;
    void *arg;
};

/* Adds or removes an event, remembering which. */
static void sock_event_set(struct event *ev, bool *added, bool on)
{
    if (on == *added)
        return;
    *added = on;
    if (on)
        event_add(ev, NULL);
    else
        event_del(ev);
}

/* Reading is on while wanted, not at the end, not failed, and the input has room. */
static void sock_update_reading(struct sock *so)
{
    bool on = so->want_read && !so->eof && so->error == 0 &&
              (so->limit == 0 || evbuffer_get_length(so->in) < so->limit);

    if (!so->raw)
        sock_event_set(so->rd, &so->rd_added, on);
}

/* The owner took bytes from the input: a read held by the bound may resume. */
static void sock_in_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct sock *so = arg;

    (void)buf;
    if (info->n_deleted > 0 && so->want_read && !so->rd_added && !so->raw)
        sock_update_reading(so);
}

/* Tells the owner what happened. */
static void sock_report(struct sock *so, short what)
{
    if (so->cb != NULL)
        so->cb(so, what, so->arg);
}

/* Reads once, at most max bytes; see the header. */
size_t sock_read_now(struct sock *so, size_t max)
{
    struct evbuffer_iovec vec[2];
    struct iovec iov[2];
    size_t room = max;
    ssize_t n;
    int nvec;

    /* After a failed write the receive queue may still hold the peer's answer: read on. */
    if (max == 0 || so->eof)
        return 0;
    nvec = evbuffer_reserve_space(so->in, (ev_ssize_t)max, vec, 2);
    if (nvec < 1) {
        so->error = ENOMEM;
        return 0;
    }
    /* The reserved chunks may hold more than max between them: read max at most, so the
     * caller's bound on what one read takes holds. */
    for (int i = 0; i < nvec; i++) {
        iov[i].iov_base = vec[i].iov_base;
        iov[i].iov_len = vec[i].iov_len < room ? vec[i].iov_len : room;
        room -= iov[i].iov_len;
    }
    if (nvec == 2 && iov[1].iov_len == 0)
        nvec = 1;
    n = readv(so->fd, iov, nvec);
    if (n > 0) {
        size_t left = (size_t)n;
        int used = 0;
        for (; left > 0 && used < nvec; used++) {
            if (vec[used].iov_len > left)
                vec[used].iov_len = left;
            left -= vec[used].iov_len;
        }
        evbuffer_commit_space(so->in, vec, used);
        return (size_t)n;
    }
    if (n == 0)
        so->eof = true;
    else if (errno != EAGAIN && errno != EINTR && so->error == 0)
        so->error = errno;
    sock_update_reading(so);
    return 0;
}

/* The socket is readable: read once and say what came. */
static void sock_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sock *so = arg;
    size_t room = SOCK_READ_MAX, held;

    (void)fd;
    if (so->raw) {
        sock_report(so, what);
        return;
    }
    held = evbuffer_get_length(so->in);
    if (so->limit != 0)
        room = held < so->limit ? so->limit - held : 0;
    if (room > SOCK_READ_MAX)
        room = SOCK_READ_MAX;
    if (sock_read_now(so, room) > 0) {
        if (so->limit != 0 && evbuffer_get_length(so->in) >= so->limit)
            sock_update_reading(so);
        sock_report(so, SOCK_EV_READ);
    } else if (so->error != 0 && !so->error_told) {
        so->error_told = true;
        sock_report(so, SOCK_EV_ERROR);
    } else if (so->eof) {
        sock_report(so, SOCK_EV_EOF);
    }
}

/* The socket has room (or a failure waits to be told): write, and say when drained. */
static void sock_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sock *so = arg;
    size_t left;

    (void)fd;
    if (so->raw) {
        sock_report(so, what);
        return;
    }
    if (so->error == 0 && evbuffer_get_length(so->out) > 0 && evbuffer_write(so->out, so->fd) < 0 &&
        errno != EAGAIN && errno != EINTR)
        so->error = errno;
    if (so->error != 0) {
        sock_event_set(so->wr, &so->wr_added, false);
        sock_update_reading(so);
        if (!so->error_told) {
            so->error_told = true;
            sock_report(so, SOCK_EV_ERROR);
        }
        return;
    }
    left = evbuffer_get_length(so->out);
    if (left == 0)
        sock_event_set(so->wr, &so->wr_added, false);
    if (left == 0 || (left <= SOCK_LOW_MARK && so->above_low)) {
        so->above_low = false;
        sock_report(so, SOCK_EV_DRAINED);
    }
}

/* Takes over a connected socket. */
struct sock *sock_new(struct event_base *base, int fd)
{
    struct sock *so = calloc(1, sizeof(*so));

    if (so == NULL)
        goto fail;
    so->fd = fd;
    so->in = evbuffer_new();
    so->out = evbuffer_new();
    /* EV_CLOSED (EPOLLRDHUP, in the same epoll_ctl) tells a tunnel its peer shut its side. */
    so->rd = event_new(base, fd, EV_READ | EV_CLOSED | EV_PERSIST, sock_read_cb, so);
    so->wr = event_new(base, fd, EV_WRITE | EV_PERSIST, sock_write_cb, so);
    if (so->in == NULL || so->out == NULL || so->rd == NULL || so->wr == NULL ||
        evbuffer_add_cb(so->in, sock_in_cb, so) == NULL) {
        sock_free(so);
        return NULL;
    }
    return so;

fail:
    close(fd);
    return NULL;
}

/* Closes and frees. */
void sock_free(struct sock *so)
{
    if (so == NULL)
        return;
    if (so->rd != NULL)
        event_free(so->rd);
    if (so->wr != NULL)
        event_free(so->wr);
    if (so->in != NULL)
        evbuffer_free(so->in);
    if (so->out != NULL)
        evbuffer_free(so->out);
    close(so->fd);
    free(so);
}

/* Sets the owner's callback. */
void sock_setcb(struct sock *so, sock_cb cb, void *arg)
{
    so->cb = cb;
    so->arg = arg;
}

/* The socket. */
int sock_fd(const struct sock *so)
{
    return so->fd;
}

/* The input buffer. */
struct evbuffer *sock_in(struct sock *so)
{
    return so->in;
}

/* The output buffer. */
struct evbuffer *sock_out(struct sock *so)
{
    return so->out;
}

/* Wants reads or not. */
void sock_set_reading(struct sock *so, bool on)
{
    so->want_read = on;
    sock_update_reading(so);
}

/* Sets the input bound. */
void sock_set_read_limit(struct sock *so, size_t limit)
{
    so->limit = limit;
    sock_update_reading(so);
}

/* Writes through what it can; the rest waits for the write event. */
void sock_flush(struct sock *so)
{
    size_t left;

    if (so->raw || so->wr_added || evbuffer_get_length(so->out) == 0)
        return;
    if (so->error == 0 && evbuffer_write(so->out, so->fd) < 0 && errno != EAGAIN && errno != EINTR)
        so->error = errno;
    if (so->error != 0) {
        /* Told from the loop: the caller is in the middle of something. */
        event_active(so->wr, EV_WRITE, 1);
        return;
    }
    left = evbuffer_get_length(so->out);
    if (left > 0) {
        so->above_low = left > SOCK_LOW_MARK;
        sock_event_set(so->wr, &so->wr_added, true);
    }
}

/* Hands the events to a tunnel. */
void sock_set_raw(struct sock *so, sock_cb cb, void *arg)
{
    so->raw = true;
    so->cb = cb;
    so->arg = arg;
}

/* Adds or removes a raw event. */
void sock_raw_want(struct sock *so, short what, bool on)
{
    if ((what & EV_READ) != 0)
        sock_event_set(so->rd, &so->rd_added, on);
    if ((what & EV_WRITE) != 0)
        sock_event_set(so->wr, &so->wr_added, on);
}

/* The events added now. */
short sock_raw_wanted(const struct sock *so)
{
    return (short)((so->rd_added ? EV_READ : 0) | (so->wr_added ? EV_WRITE : 0));
}

/* Makes the close a reset. */
void sock_reset_on_free(struct sock *so)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    (void)setsockopt(so->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}
