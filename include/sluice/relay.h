/*
 * One direction of a relay between two socks: bytes read from one side are queued on the
 * other side's output, and reading stops while that output holds the high watermark,
 * resuming once it drains.  Both directions of forwarding (request body, response) use
 * the same helper, so both sides behave alike.
 */
#ifndef SLUICE_RELAY_H
#define SLUICE_RELAY_H

#include <stdbool.h>

#include "sluice/sock.h"

/* Reading from one side pauses while the other side's output holds this much. */
#define RELAY_HIGH_WATERMARK SOCK_READ_MAX

/* One direction: from's input flows to to's output.  Neither sock is owned. */
struct relay_flow {
    struct sock *from;
    struct sock *to;
    bool paused; /* reading from is stopped because to's output is full */
};

/* Points f at from -> to, not paused. */
void relay_flow_init(struct relay_flow *f, struct sock *from, struct sock *to);

/*
 * True when to's output is below the high watermark; otherwise stops reading from and
 * marks the flow paused.
 */
bool relay_flow_room(struct relay_flow *f);

/* to's output drained: resumes reading from if the flow was paused.  True if it was. */
bool relay_flow_resume(struct relay_flow *f);

#endif /* SLUICE_RELAY_H */
