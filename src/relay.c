/* One direction of a relay between two bufferevents; see include/sluice/relay.h. */
#include "sluice/relay.h"

#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/event.h>

/* The most relay_read_more() reads in one call. */
#define RELAY_READ_CHUNK (256 * 1024)
/* libevent 2.1 reads at most this much per readiness event (EVBUFFER_MAX_READ). */
#define RELAY_LIBEVENT_READ 4096

/* Points a flow at two sides. */
void relay_flow_init(struct relay_flow *f, struct bufferevent *from, struct bufferevent *to)
{
    f->from = from;
    f->to = to;
    f->paused = false;
}

/* Reads straight into bev's input; see the header. */
size_t relay_read_more(struct bufferevent *bev, size_t max)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec vec[4];
    struct iovec iov[4];
    ssize_t got;
    size_t left;
    int n, used = 0;

    /* Chains below malloc's mmap threshold are recycled cheaply; bigger ones are not. */
    if (max > RELAY_READ_CHUNK)
        max = RELAY_READ_CHUNK;
    /* A bufferevent keeps the tail of its input frozen except while it reads itself. */
    evbuffer_unfreeze(in, 0);
    n = max > 0 ? evbuffer_reserve_space(in, (ev_ssize_t)max, vec, 4) : 0;
    if (n <= 0) {
        evbuffer_freeze(in, 0);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        iov[i].iov_base = vec[i].iov_base;
        iov[i].iov_len = vec[i].iov_len;
    }
    got = readv(bufferevent_getfd(bev), iov, n);
    for (left = got > 0 ? (size_t)got : 0; left > 0 && used < n; used++) {
        if (vec[used].iov_len > left)
            vec[used].iov_len = left;
        left -= vec[used].iov_len;
    }
    evbuffer_commit_space(in, vec, used);
    evbuffer_freeze(in, 0);
    return got > 0 ? (size_t)got : 0;
}

/*
 * Reads more only when libevent's own read took all it takes at once: a shorter read
 * means the socket is empty, and asking again would cost a syscall that says EAGAIN.
 */
void relay_flow_fill(struct relay_flow *f)
{
    size_t queued = evbuffer_get_length(bufferevent_get_output(f->to));

    if (f->paused || queued >= RELAY_HIGH_WATERMARK ||
        evbuffer_get_length(bufferevent_get_input(f->from)) < RELAY_LIBEVENT_READ)
        return;
    relay_read_more(f->from, RELAY_HIGH_WATERMARK - queued);
}

/* True while to has room; pauses from at the watermark. */
bool relay_flow_room(struct relay_flow *f)
{
    if (evbuffer_get_length(bufferevent_get_output(f->to)) < RELAY_HIGH_WATERMARK)
        return true;
    if (!f->paused) {
        bufferevent_disable(f->from, EV_READ);
        f->paused = true;
    }
    return false;
}

/* Moves what from holds to to. */
size_t relay_flow_move_all(struct relay_flow *f)
{
    struct evbuffer *in = bufferevent_get_input(f->from);
    size_t n;

    relay_flow_fill(f);
    n = evbuffer_get_length(in);
    if (n > 0)
        evbuffer_add_buffer(bufferevent_get_output(f->to), in);
    (void)relay_flow_room(f);
    return n;
}

/* Resumes a paused flow. */
bool relay_flow_resume(struct relay_flow *f)
{
    if (!f->paused)
        return false;
    f->paused = false;
    bufferevent_enable(f->from, EV_READ);
    return true;
}
