/*
 * Byte tunnels; see include/sluice/tunnel.h.
 *
 * Each direction reads its source only while nothing waits for its destination: a read
 * moves bytes into a pipe (or a buffer) and the same callback writes them on at once, so
 * a transfer costs one call to read and one to write.  When the destination cannot take
 * everything, reading stops and a write event waits for room; when it has taken
 * everything, the pipe goes back to the pool and reading resumes.  Events are level
 * triggered, so nothing is read before it is needed and no call is made that would only
 * say EAGAIN.
 */
#include "sluice/tunnel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "sluice/log.h"

/* Bytes read through the buffer when no pipe can be had. */
#define TUNNEL_COPY_CHUNK (16 * 1024)
/* Bytes one splice may move into a pipe (its capacity bounds it anyway). */
#define TUNNEL_SPLICE_MAX (1024 * 1024)

/* Makes t empty. */
void tunnel_init(struct tunnel *t)
{
    memset(t, 0, sizeof(*t));
    t->up.from = t->up.to = t->down.from = t->down.to = -1;
    t->up.pipe[0] = t->up.pipe[1] = t->down.pipe[0] = t->down.pipe[1] = -1;
}

/* Starts or stops reading d's source. */
static void tunnel_set_reading(struct tunnel_dir *d, bool on)
{
    if (on == d->reading)
        return;
    d->reading = on;
    sock_raw_want(d->from_sock, EV_READ, on);
}

/* Starts or stops waiting for room at d's destination. */
static void tunnel_set_writing(struct tunnel_dir *d, bool on)
{
    if (on == d->writing)
        return;
    d->writing = on;
    sock_raw_want(d->to_sock, EV_WRITE, on);
}

/* True when bytes of d still wait for its destination. */
static bool tunnel_pending(const struct tunnel_dir *d)
{
    return d->in_pipe > 0 || (d->buf != NULL && evbuffer_get_length(d->buf) > 0);
}

/*
 * A side failed: close, with a reset toward the client when the upstream broke, and the
 * RFC 9209 type that tells the operator why the client's tunnel was cut.
 */
static struct outcome tunnel_failed(char side)
{
    struct outcome o = outcome_close(side, TERM_PH_TUNNEL, side == TERM_SERVER);

    if (side == TERM_SERVER)
        o.error_type = "connection_terminated";
    return o;
}

/*
 * Writes what waits for d's destination: the buffer first, then the pipe.  Returns 0
 * (all written, or the destination is full), or -1 when the destination failed.
 */
static int tunnel_flush(struct tunnel *t, struct tunnel_dir *d)
{
    if (d->buf != NULL && evbuffer_get_length(d->buf) > 0) {
        int n = evbuffer_write(d->buf, d->to);
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        if (evbuffer_get_length(d->buf) > 0)
            return 0;
    }
    if (d->buf != NULL) {
        /* An idle tunnel keeps no buffer: one is made again when bytes must wait. */
        evbuffer_free(d->buf);
        d->buf = NULL;
    }
    if (d->in_pipe > 0) {
        ssize_t n =
            splice(d->pipe[0], NULL, d->to, NULL, d->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        if (n <= 0)
            return -1;
        d->in_pipe -= (size_t)n;
        /* A short write means the socket is full: another call would only say EAGAIN,
         * so the write event says when there is room. */
        if (d->in_pipe > 0)
            return 0;
    }
    if (d->pipe[0] >= 0)
        pipes_put(t->pipes, d->pipe, true);
    return 0;
}

/*
 * After a flush: waits for room while bytes are left, else reads again (or passes the end
 * on).  Returns DONE when both directions are finished, MORE otherwise, CLOSE on failure.
 */
static struct outcome tunnel_settle(struct tunnel *t, struct tunnel_dir *d)
{
    bool pending = tunnel_pending(d);
    struct tunnel_dir *other = d == &t->up ? &t->down : &t->up;

    tunnel_set_writing(d, pending);
    if (pending)
        return outcome_of(OUTCOME_MORE);
    if (!d->eof) {
        tunnel_set_reading(d, !(d == &t->up && t->peeking));
        return outcome_of(OUTCOME_MORE);
    }
    /* Both ends are done and everything is written: closing both sends the last FINs, so
     * the second half-close would only cost a call. */
    if (other->eof && !tunnel_pending(other))
        return outcome_of(OUTCOME_DONE);
    if (!d->shut) {
        d->shut = true;
        if (shutdown(d->to, SHUT_WR) < 0 && errno != ENOTCONN)
            return tunnel_failed(d->to_side);
    }
    return outcome_of(OUTCOME_MORE);
}

/*
 * Reads up to max bytes of d's source into its buffer.  Returns the count, 0 at EOF, -1;
 * *short_read (when short_read is not NULL) says whether it took less than it asked for.
 */
static ssize_t tunnel_read_buf(struct tunnel_dir *d, size_t max, bool *short_read)
{
    struct evbuffer_iovec vec[2];
    ssize_t n;
    int nvec;

    if (d->buf == NULL && (d->buf = evbuffer_new()) == NULL) {
        errno = ENOMEM;
        return -1;
    }
    nvec = evbuffer_reserve_space(d->buf, (ev_ssize_t)max, vec, 2);
    if (nvec < 1) {
        errno = ENOMEM;
        return -1;
    }
    vec[0].iov_len = vec[0].iov_len < max ? vec[0].iov_len : max;
    n = read(d->from, vec[0].iov_base, vec[0].iov_len);
    if (short_read != NULL)
        *short_read = n >= 0 && (size_t)n < vec[0].iov_len;
    vec[0].iov_len = n > 0 ? (size_t)n : 0;
    evbuffer_commit_space(d->buf, vec, 1);
    return n;
}

/*
 * Reads what d's source has into a pipe (or the buffer when no pipe can be had).
 * Returns the bytes read, 0 at the end of the stream, -1 on failure or EAGAIN (errno).
 */
static ssize_t tunnel_read(struct tunnel *t, struct tunnel_dir *d)
{
    ssize_t n;

    if (d->pipe[0] < 0 && !pipes_get(t->pipes, d->pipe))
        return tunnel_read_buf(d, TUNNEL_COPY_CHUNK, NULL);
    n = splice(d->from, NULL, d->pipe[1], NULL, TUNNEL_SPLICE_MAX,
               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0)
        d->in_pipe += (size_t)n;
    else if (d->in_pipe == 0)
        pipes_put(t->pipes, d->pipe, true);
    return n;
}

/* Examines the held client bytes: true once the peek is over (t->hello says what it saw). */
static bool tunnel_peek_done(struct tunnel *t)
{
    struct evbuffer *b = t->up.buf;
    size_t len = b != NULL ? evbuffer_get_length(b) : 0;
    const uint8_t *p;
    char sni[256] = "";

    if (len == 0 && !t->up.eof)
        return false;
    p = len > 0 ? evbuffer_pullup(b, (ev_ssize_t)len) : NULL;
    t->hello = p != NULL ? clienthello_parse(p, len, sni, sizeof(sni)) : CLIENTHELLO_NOT_TLS;
    if (t->hello == CLIENTHELLO_NEED_MORE && !t->up.eof && len < CLIENTHELLO_MAX_BYTES)
        return false;
    if (t->hello == CLIENTHELLO_NEED_MORE)
        t->hello = CLIENTHELLO_MALFORMED; /* it ended, or grew too big, before it was whole */
    /* Kept on the heap: a tunnel lives long, and most names are short.  A name that is not
     * a host name is kept escaped, for the record of the tunnel it closes. */
    if ((t->hello == CLIENTHELLO_FOUND || t->hello == CLIENTHELLO_BAD_NAME) && sni[0] != '\0')
        t->sni = strdup(sni);
    t->peeking = false;
    return true;
}

/* The client's first bytes arrived while peeking: hold them until the peek is over. */
static struct outcome tunnel_peek_read(struct tunnel *t)
{
    struct tunnel_dir *d = &t->up;
    size_t held = d->buf != NULL ? evbuffer_get_length(d->buf) : 0;
    ssize_t n = tunnel_read_buf(d, CLIENTHELLO_MAX_BYTES - held, NULL);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return outcome_of(OUTCOME_MORE);
    if (n < 0)
        return tunnel_failed(d->from_side);
    if (n == 0)
        d->eof = true;
    d->bytes += (uint64_t)n;
    if (!tunnel_peek_done(t))
        return outcome_of(OUTCOME_MORE);
    /* Reading stays wanted: the session proceeds at once as a rule, and a read event that
     * comes before it does is dropped in tunnel_readable(). */
    t->holding = true;
    return outcome_of(OUTCOME_PEEKED);
}

/*
 * Reads the last bytes of a source whose peer has shut its side (closed: epoll said
 * EPOLLRDHUP).  The kernel queues a FIN after every byte before it, and read(2) (unlike
 * splice(2), which stops when the pipe runs out of slots) takes all that is queued, so a
 * read that takes less than it asked for has reached the end: the call that would only
 * return 0 is saved.  Returns as tunnel_read() does, and sets d->eof when the end came.
 */
static ssize_t tunnel_read_last(struct tunnel_dir *d)
{
    bool short_read;
    ssize_t n = tunnel_read_buf(d, TUNNEL_COPY_CHUNK, &short_read);

    if (n > 0 && short_read)
        d->eof = true;
    return n;
}

/* d's source is readable (closed: its peer has shut its side): read, write on, settle. */
static struct outcome tunnel_readable(struct tunnel *t, struct tunnel_dir *d, bool closed)
{
    ssize_t n;

    if (d == &t->up && t->peeking)
        return tunnel_peek_read(t);
    if (tunnel_pending(d) || (d == &t->up && t->holding)) {
        tunnel_set_reading(d, false); /* a stale event: the bytes before must go first */
        return outcome_of(OUTCOME_MORE);
    }
    n = closed ? tunnel_read_last(d) : tunnel_read(t, d);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return outcome_of(OUTCOME_MORE);
    if (n < 0)
        return tunnel_failed(d->from_side);
    if (n == 0 || d->eof) {
        d->eof = true;
        tunnel_set_reading(d, false);
    }
    d->bytes += (uint64_t)n;
    if (tunnel_flush(t, d) < 0)
        return tunnel_failed(d->to_side);
    return tunnel_settle(t, d);
}

/* d's destination has room again. */
static struct outcome tunnel_writable(struct tunnel *t, struct tunnel_dir *d)
{
    if (tunnel_flush(t, d) < 0)
        return tunnel_failed(d->to_side);
    return tunnel_settle(t, d);
}

/* Sets up one direction between two borrowed socks. */
static int tunnel_dir_open(struct tunnel_dir *d, struct sock *from, struct sock *to, char from_side,
                           char to_side)
{
    d->from_sock = from;
    d->to_sock = to;
    d->from = sock_fd(from);
    d->to = sock_fd(to);
    d->from_side = from_side;
    d->to_side = to_side;
    if (d->buf == NULL)
        d->buf = evbuffer_new(); /* for what the socks carry over; freed once it is written */
    return d->buf != NULL ? 0 : -1;
}

/*
 * Buffered: once d's source ended and its destination took everything, passes the end on
 * (close_notify, then the half-close).  DONE once both ends were passed on.
 */
static struct outcome tunnel_buffered_settle(struct tunnel *t, struct tunnel_dir *d)
{
    struct tunnel_dir *other = d == &t->up ? &t->down : &t->up;

    if (d->eof && !d->shut && evbuffer_get_length(sock_out(d->to_sock)) == 0) {
        d->shut = true;
        /* An end without close_notify goes on as one: a cut stream still looks cut. */
        if (sock_ended_cleanly(d->from_sock))
            sock_shutdown_write(d->to_sock);
        else
            sock_shutdown_write_bare(d->to_sock);
    }
    return outcome_of(d->shut && other->shut ? OUTCOME_DONE : OUTCOME_MORE);
}

/*
 * Buffered: moves what d's source holds to its destination's output and writes it;
 * reading the source pauses while that output holds the high watermark.
 */
static struct outcome tunnel_buffered_move(struct tunnel *t, struct tunnel_dir *d,
                                           struct relay_flow *f)
{
    struct evbuffer *in = sock_in(d->from_sock);
    size_t n = evbuffer_get_length(in);

    if (n > 0) {
        d->bytes += n;
        evbuffer_add_buffer(sock_out(d->to_sock), in);
        sock_flush(d->to_sock);
        (void)relay_flow_room(f);
    }
    /* The end is taken from the sock, not only from its report: it may have come before
     * the tunnel began, or with the last bytes. */
    if (sock_eof(d->from_sock))
        d->eof = true;
    return tunnel_buffered_settle(t, d);
}

/* Buffered: one event of a sock, which is the source of one direction and the
 * destination of the other. */
static struct outcome tunnel_buffered_event(struct tunnel *t, struct sock *so, short what)
{
    bool is_client = so == t->up.from_sock;
    struct tunnel_dir *from = is_client ? &t->up : &t->down; /* so is its source */
    struct tunnel_dir *into = is_client ? &t->down : &t->up; /* so is its destination */
    struct outcome o;

    if ((what & SOCK_EV_ERROR) != 0)
        return tunnel_failed(from->from_side);
    if ((what & SOCK_EV_DRAINED) != 0) {
        (void)relay_flow_resume(is_client ? &t->down_flow : &t->up_flow);
        o = tunnel_buffered_settle(t, into);
        if (o.kind != OUTCOME_MORE)
            return o;
    }
    if ((what & SOCK_EV_EOF) != 0)
        from->eof = true;
    return tunnel_buffered_move(t, from, is_client ? &t->up_flow : &t->down_flow);
}

/* tunnel_begin() for socks of which one speaks TLS: their buffers carry the bytes. */
static struct outcome tunnel_begin_buffered(struct tunnel *t, const struct tunnel_ctx *ctx,
                                            struct sock *client, struct sock *upstream,
                                            const char *prefix)
{
    struct outcome o;

    t->buffered = true;
    t->up.from_sock = t->down.to_sock = client;
    t->up.to_sock = t->down.from_sock = upstream;
    t->up.from_side = t->down.to_side = TERM_CLIENT;
    t->up.to_side = t->down.from_side = TERM_SERVER;
    relay_flow_init(&t->up_flow, client, upstream);
    relay_flow_init(&t->down_flow, upstream, client);
    sock_setcb(client, ctx->cb, ctx->arg);
    sock_setcb(upstream, ctx->cb, ctx->arg);
    /* Each read takes at most SOCK_READ_MAX and goes straight on; the flows bound what
     * waits for the other side. */
    sock_set_read_limit(client, 0);
    sock_set_read_limit(upstream, 0);
    sock_set_reading(client, true);
    sock_set_reading(upstream, true);
    if (prefix != NULL)
        evbuffer_add(sock_out(client), prefix, strlen(prefix));
    /* A side that failed while the exchange ran was told to it, not to the tunnel. */
    if (sock_error(upstream) != 0)
        return tunnel_failed(TERM_SERVER);
    if (sock_error(client) != 0)
        return tunnel_failed(TERM_CLIENT);
    o = tunnel_buffered_move(t, &t->down, &t->down_flow);
    if (o.kind != OUTCOME_MORE)
        return o;
    return tunnel_buffered_move(t, &t->up, &t->up_flow);
}

/* Turns two socks into a tunnel; see the header. */
struct outcome tunnel_begin(struct tunnel *t, const struct tunnel_ctx *ctx, struct sock *client,
                            struct sock *upstream, const char *prefix, bool peek)
{
    struct outcome o;

    t->started = true;
    t->pipes = ctx->pipes;
    if (sock_tls(client) != NULL || sock_tls(upstream) != NULL)
        return tunnel_begin_buffered(t, ctx, client, upstream, prefix);
    if (tunnel_dir_open(&t->up, client, upstream, TERM_CLIENT, TERM_SERVER) < 0 ||
        tunnel_dir_open(&t->down, upstream, client, TERM_SERVER, TERM_CLIENT) < 0)
        return outcome_fail(503, "proxy_internal_error", TERM_RESOURCE, TERM_PH_TUNNEL,
                            "out of memory while starting the tunnel");
    /* The events start as the socks left them (the client's read event, added for its
     * request, stays as it is: wanting it again costs nothing in the kernel). */
    sock_set_raw(client, ctx->cb, ctx->arg);
    sock_set_raw(upstream, ctx->cb, ctx->arg);
    t->up.reading = (sock_raw_wanted(client) & EV_READ) != 0;
    t->down.writing = (sock_raw_wanted(client) & EV_WRITE) != 0;
    t->down.reading = (sock_raw_wanted(upstream) & EV_READ) != 0;
    t->up.writing = (sock_raw_wanted(upstream) & EV_WRITE) != 0;
    /* What was queued for a side goes before what the other side sent since: for the
     * client, the rest of an earlier response first (a CONNECT may be pipelined behind a
     * request whose answer is still on its way), then the prefix. */
    evbuffer_add_buffer(t->down.buf, sock_out(client));
    if (prefix != NULL)
        evbuffer_add(t->down.buf, prefix, strlen(prefix));
    t->down.bytes = evbuffer_get_length(sock_in(upstream));
    evbuffer_add_buffer(t->down.buf, sock_in(upstream));
    evbuffer_add_buffer(t->up.buf, sock_out(upstream));
    t->up.bytes = evbuffer_get_length(sock_in(client));
    evbuffer_add_buffer(t->up.buf, sock_in(client));
    if (evbuffer_get_length(t->up.buf) == 0) {
        evbuffer_free(t->up.buf); /* nothing carried over: wait for bytes without a buffer */
        t->up.buf = NULL;
    }
    t->peeking = peek;
    if (peek && tunnel_peek_done(t)) {
        t->holding = true;
        return outcome_of(OUTCOME_PEEKED);
    }
    o = tunnel_writable(t, &t->down);
    if (o.kind != OUTCOME_MORE)
        return o;
    if (!peek)
        return tunnel_writable(t, &t->up);
    tunnel_set_reading(&t->up, true);
    return outcome_of(OUTCOME_MORE);
}

/* Relays the bytes the peek held, and what follows. */
struct outcome tunnel_proceed(struct tunnel *t)
{
    struct outcome o;

    t->holding = false;
    o = tunnel_writable(t, &t->down);

    if (o.kind != OUTCOME_MORE)
        return o;
    return tunnel_writable(t, &t->up);
}

/* Dispatches one event to its direction. */
struct outcome tunnel_on_event(struct tunnel *t, struct sock *so, short what)
{
    if (t->buffered)
        return tunnel_buffered_event(t, so, what);
    /* A sock has one event for reading and one for writing: each brings one kind. */
    if ((what & EV_READ) != 0)
        return tunnel_readable(t, so == t->up.from_sock ? &t->up : &t->down,
                               (what & EV_CLOSED) != 0);
    if ((what & EV_WRITE) != 0)
        return tunnel_writable(t, so == t->up.to_sock ? &t->up : &t->down);
    return outcome_of(OUTCOME_MORE);
}

/* Frees one direction's buffer and pipe. */
static void tunnel_dir_close(struct tunnel *t, struct tunnel_dir *d)
{
    d->reading = d->writing = false;
    if (d->buf != NULL)
        evbuffer_free(d->buf);
    d->buf = NULL;
    if (t->pipes != NULL)
        pipes_put(t->pipes, d->pipe, d->in_pipe == 0);
    d->in_pipe = 0;
}

/* Frees what the tunnel holds. */
void tunnel_end(struct tunnel *t)
{
    if (!t->started)
        return;
    tunnel_dir_close(t, &t->up);
    tunnel_dir_close(t, &t->down);
    free(t->sni);
    t->sni = NULL;
    t->started = false;
}
