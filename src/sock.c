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
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

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
    /* TLS, once sock_start_tls() ran: the input holds what SSL_read gave, the output is
     * what SSL_write takes; the socket carries the records. */
    SSL *tls;                 /* owned, or NULL for plain TCP */
    struct evbuffer *tls_pre; /* records read before TLS began, given to OpenSSL first */
    bool tls_handshaking;     /* the handshake is under way: both events drive it */
    bool tls_shut;            /* close_notify was sent */
    bool tls_cut;             /* the peer closed the connection with no close_notify */
    unsigned long tls_error;  /* OpenSSL's first error of a failure, or 0 */
};

/* The most one SSL_write takes at once: one full record. */
#define SOCK_TLS_RECORD 16384

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

    if (so->raw || so->tls_handshaking)
        return;
    sock_event_set(so->rd, &so->rd_added, on);
    /* Bytes OpenSSL decrypted already and holds: the epoll will not say so.  (Not
     * SSL_has_pending(), which is also true for a record half received: that would wake
     * this loop again and again until the rest came.) */
    if (on && so->tls != NULL && SSL_pending(so->tls) > 0)
        event_active(so->rd, EV_READ, 1);
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

/*
 * The BIO OpenSSL reads and writes a TLS sock's records through: the records read before
 * TLS began (the ClientHello a peek took) come first, then the socket itself.
 */
static int sock_bio_read(BIO *b, char *data, size_t len, size_t *got)
{
    struct sock *so = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    if (so->tls_pre != NULL && evbuffer_get_length(so->tls_pre) > 0) {
        n = evbuffer_remove(so->tls_pre, data, len);
        *got = n > 0 ? (size_t)n : 0;
        return n > 0;
    }
    n = read(so->fd, data, len);
    if (n > 0) {
        *got = (size_t)n;
        return 1;
    }
    *got = 0;
    if (n == 0) {
        so->eof = true;
    } else if (errno == EAGAIN || errno == EINTR) {
        BIO_set_retry_read(b);
    } else if (so->error == 0) {
        so->error = errno;
    }
    return 0;
}

static int sock_bio_write(BIO *b, const char *data, size_t len, size_t *put)
{
    struct sock *so = BIO_get_data(b);
    ssize_t n = send(so->fd, data, len, MSG_NOSIGNAL);

    BIO_clear_retry_flags(b);
    if (n >= 0) {
        *put = (size_t)n;
        return 1;
    }
    *put = 0;
    if (errno == EAGAIN || errno == EINTR)
        BIO_set_retry_write(b);
    else if (so->error == 0)
        so->error = errno;
    return 0;
}

/*
 * FLUSH (nothing is held) and EOF: OpenSSL asks whether the socket ended, and only then
 * takes a close without close_notify as the end of the stream (SSL_OP_IGNORE_UNEXPECTED_EOF)
 * -- many origins end a close-delimited body so.
 */
static long sock_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    const struct sock *so = BIO_get_data(b);

    (void)num;
    (void)ptr;
    if (cmd == BIO_CTRL_FLUSH)
        return 1;
    if (cmd == BIO_CTRL_EOF)
        return so->eof && (so->tls_pre == NULL || evbuffer_get_length(so->tls_pre) == 0);
    return 0;
}

static BIO_METHOD *sock_bio_method;
static pthread_once_t sock_bio_once = PTHREAD_ONCE_INIT;

static void sock_bio_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sluice sock");

    if (m != NULL && (BIO_meth_set_read_ex(m, sock_bio_read) != 1 ||
                      BIO_meth_set_write_ex(m, sock_bio_write) != 1 ||
                      BIO_meth_set_ctrl(m, sock_bio_ctrl) != 1)) {
        BIO_meth_free(m);
        m = NULL;
    }
    sock_bio_method = m;
}

/* Keeps OpenSSL's first error of a failure, for the owner to explain. */
static void sock_tls_failed(struct sock *so, int ssl_err)
{
    unsigned long e = ERR_peek_error();

    if (so->tls_error == 0)
        so->tls_error = e;
    if (so->error == 0)
        so->error = ssl_err == SSL_ERROR_SYSCALL && e == 0 ? ECONNRESET : EPROTO;
    ERR_clear_error();
}

/*
 * Reads what TLS gives, at most max bytes, into the input.  Returns the bytes read; on
 * none, so->eof or so->error says why unless OpenSSL simply wants more records.
 */
static size_t sock_tls_read(struct sock *so, size_t max)
{
    size_t total = 0;

    while (total < max) {
        struct evbuffer_iovec vec;
        size_t got = 0, want;
        int r, e;

        if (evbuffer_reserve_space(
                so->in, (ev_ssize_t)(max - total < SOCK_TLS_RECORD ? max - total : SOCK_TLS_RECORD),
                &vec, 1) < 1) {
            so->error = ENOMEM;
            break;
        }
        want = vec.iov_len < max - total ? vec.iov_len : max - total;
        ERR_clear_error();
        r = SSL_read_ex(so->tls, vec.iov_base, want, &got);
        if (r == 1) {
            vec.iov_len = got;
            evbuffer_commit_space(so->in, &vec, 1);
            total += got;
            continue;
        }
        evbuffer_commit_space(so->in, &vec, 0);
        e = SSL_get_error(so->tls, r);
        if (e == SSL_ERROR_ZERO_RETURN) {
            /* The BIO read the connection's end before OpenSSL said "end": there was no
             * close_notify (SSL_OP_IGNORE_UNEXPECTED_EOF makes that an end too). */
            so->tls_cut = so->eof;
            so->eof = true;
        } else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            sock_tls_failed(so, e);
        else if (so->eof) /* not expected (the BIO says EOF): an end never looks like a wait */
            sock_tls_failed(so, SSL_ERROR_SYSCALL);
        break;
    }
    return total;
}

/*
 * Writes the output through TLS, a record at a time, as far as the socket takes it.
 * Returns -1 with so->error set on a failure, else 0.
 */
static int sock_tls_write(struct sock *so)
{
    size_t len;

    while ((len = evbuffer_get_length(so->out)) > 0) {
        size_t put = 0, chunk = len < SOCK_TLS_RECORD ? len : SOCK_TLS_RECORD;
        unsigned char *p = evbuffer_pullup(so->out, (ev_ssize_t)chunk);
        int r, e;

        if (p == NULL) {
            so->error = ENOMEM;
            return -1;
        }
        ERR_clear_error();
        r = SSL_write_ex(so->tls, p, chunk, &put);
        if (r == 1) {
            evbuffer_drain(so->out, put);
            continue;
        }
        e = SSL_get_error(so->tls, r);
        if (e == SSL_ERROR_WANT_WRITE)
            return 0;
        /* Renegotiation is off: a write never waits for a read. */
        sock_tls_failed(so, e);
        return -1;
    }
    return 0;
}

/* Writes the output, through TLS or not; -1 with so->error on a failure. */
static int sock_write_out(struct sock *so)
{
    if (so->tls != NULL)
        return sock_tls_write(so);
    if (evbuffer_write(so->out, so->fd) < 0 && errno != EAGAIN && errno != EINTR) {
        so->error = errno;
        return -1;
    }
    return 0;
}

/* One step of the handshake: on, waiting for the right event, or told when it ends. */
static void sock_tls_handshake(struct sock *so)
{
    int r, e;

    ERR_clear_error();
    r = SSL_do_handshake(so->tls);
    if (r == 1) {
        so->tls_handshaking = false;
        if (so->tls_pre != NULL)
            evbuffer_free(so->tls_pre); /* OpenSSL took it all */
        so->tls_pre = NULL;
        sock_event_set(so->wr, &so->wr_added, false);
        sock_update_reading(so); /* also wakes a reader for bytes OpenSSL holds decrypted */
        sock_flush(so);
        sock_report(so, SOCK_EV_TLS);
        return;
    }
    e = SSL_get_error(so->tls, r);
    if (e == SSL_ERROR_WANT_READ && !so->eof) {
        sock_event_set(so->wr, &so->wr_added, false);
        sock_event_set(so->rd, &so->rd_added, true);
        return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        sock_event_set(so->wr, &so->wr_added, true);
        return;
    }
    sock_tls_failed(so, e);
    sock_event_set(so->rd, &so->rd_added, false);
    sock_event_set(so->wr, &so->wr_added, false);
    so->tls_handshaking = false;
    so->error_told = true;
    sock_report(so, SOCK_EV_ERROR);
}

/* Begins TLS on the sock; see the header. */
int sock_start_tls(struct sock *so, SSL *ssl)
{
    BIO *bio;

    pthread_once(&sock_bio_once, sock_bio_init);
    if (sock_bio_method == NULL || (bio = BIO_new(sock_bio_method)) == NULL) {
        SSL_free(ssl);
        return -1;
    }
    BIO_set_data(bio, so);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl, bio, bio);
    so->tls = ssl;
    /* What was read already is the start of the handshake (a peeked ClientHello). */
    if (evbuffer_get_length(so->in) > 0) {
        if ((so->tls_pre = evbuffer_new()) == NULL)
            return -1;
        evbuffer_add_buffer(so->tls_pre, so->in);
    }
    so->tls_handshaking = true;
    /* The first step runs from the loop, so that its report never lands in the caller. */
    event_active(so->rd, EV_READ, 1);
    return 0;
}

/* The TLS session, or NULL. */
SSL *sock_tls(const struct sock *so)
{
    return so->tls;
}

/* OpenSSL's first error of the failure, or 0. */
unsigned long sock_tls_error(const struct sock *so)
{
    return so->tls_error;
}

/* The errno of the failure, or 0. */
int sock_error(const struct sock *so)
{
    return so->error;
}

/* True once the end of stream was read. */
bool sock_eof(const struct sock *so)
{
    return so->eof;
}

/* True when the peer sent close_notify, or for plain TCP. */
bool sock_ended_cleanly(const struct sock *so)
{
    return so->tls == NULL || !so->tls_cut;
}

/* The TCP half-close, without close_notify. */
void sock_shutdown_write_bare(struct sock *so)
{
    (void)shutdown(so->fd, SHUT_WR);
}

/* Ends the sending direction: close_notify first under TLS, then the TCP half-close. */
void sock_shutdown_write(struct sock *so)
{
    if (so->tls != NULL && !so->tls_shut && !so->tls_handshaking && so->error == 0) {
        so->tls_shut = true;
        ERR_clear_error();
        (void)SSL_shutdown(so->tls); /* one try: the alert goes out, or the close does */
        ERR_clear_error();
    }
    (void)shutdown(so->fd, SHUT_WR);
}

/* Reads once, at most max bytes; see the header. */
size_t sock_read_now(struct sock *so, size_t max)
{
    struct evbuffer_iovec vec[2];
    struct iovec iov[2];
    size_t room = max;
    ssize_t n;
    int nvec;

    /* After a failed write the receive queue may still hold the peer's answer: read on.
     * After the end, reading stops: a level-triggered readiness would come again and
     * again. */
    if (so->eof)
        sock_update_reading(so);
    if (max == 0 || so->eof)
        return 0;
    if (so->tls != NULL) {
        size_t got = sock_tls_read(so, max);
        /* Records decrypted and kept inside OpenSSL: the epoll will not say so. */
        if (got > 0 && SSL_pending(so->tls) > 0)
            event_active(so->rd, EV_READ, 1);
        if (got == 0)
            sock_update_reading(so);
        return got;
    }
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
    if (so->tls_handshaking) {
        sock_tls_handshake(so);
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
        /* TLS can give bytes and then the end, or a failure, in one read: those are told
         * in the next loop round, also when the owner stops reading meanwhile. */
        if (so->eof || (so->error != 0 && !so->error_told))
            event_active(so->rd, EV_READ, 1);
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
    if (so->tls_handshaking) {
        sock_tls_handshake(so);
        return;
    }
    if (so->error == 0 && evbuffer_get_length(so->out) > 0)
        (void)sock_write_out(so);
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
    if (so->tls_pre != NULL)
        evbuffer_free(so->tls_pre);
    SSL_free(so->tls); /* frees its BIO, which only points at the sock */
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

/* Reads in this loop round. */
void sock_read_soon(struct sock *so)
{
    if (so->want_read && !so->raw)
        event_active(so->rd, EV_READ, 1);
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

    if (so->raw || so->wr_added || so->tls_handshaking || evbuffer_get_length(so->out) == 0)
        return;
    if (so->error == 0)
        (void)sock_write_out(so);
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
