/* One direction of a relay between two socks; see include/sluice/relay.h. */
#include "sluice/relay.h"

/* Points a flow at two sides. */
void relay_flow_init(struct relay_flow *f, struct sock *from, struct sock *to)
{
    f->from = from;
    f->to = to;
    f->paused = false;
}

/* True while to has room; pauses from at the watermark. */
bool relay_flow_room(struct relay_flow *f)
{
    if (evbuffer_get_length(sock_out(f->to)) < RELAY_HIGH_WATERMARK)
        return true;
    if (!f->paused) {
        sock_set_reading(f->from, false);
        f->paused = true;
    }
    return false;
}

/* Resumes a paused flow. */
bool relay_flow_resume(struct relay_flow *f)
{
    if (!f->paused)
        return false;
    f->paused = false;
    sock_set_reading(f->from, true);
    return true;
}
