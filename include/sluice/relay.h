/*
 * One direction of a relay between two bufferevents: bytes read from one side are queued
 * on the other side's output, and reading stops while that output holds the high
 * watermark, resuming once it drains.  Forwarding (request body, response) and tunnels
 * use the same helper for each of their two directions, so both sides behave alike.
 */
#ifndef SLUICE_RELAY_H
#define SLUICE_RELAY_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/bufferevent.h>

/* Reading from one side pauses while the other side's output holds this much. */
#define RELAY_HIGH_WATERMARK (256 * 1024)
/* A write callback fires once an output drained to this. */
#define RELAY_LOW_WATERMARK (64 * 1024)

/* One direction: from's input flows to to's output.  Neither bufferevent is owned. */
struct relay_flow {
    struct bufferevent *from;
    struct bufferevent *to;
    bool paused; /* reading from is stopped because to's output is full */
};

/* Points f at from -> to, not paused. */
void relay_flow_init(struct relay_flow *f, struct bufferevent *from, struct bufferevent *to);

/*
 * Reads more from from's socket while to has room (libevent reads 4 KiB per event, which
 * caps a bulk transfer); call it when from's input has bytes and the flow is not paused.
 */
void relay_flow_fill(struct relay_flow *f);

/*
 * True when to's output is below the high watermark; otherwise stops reading from and
 * marks the flow paused.
 */
bool relay_flow_room(struct relay_flow *f);

/* Moves all of from's input to to's output, then pauses at the watermark.  Returns bytes. */
size_t relay_flow_move_all(struct relay_flow *f);

/* to's output drained: resumes reading from if the flow was paused.  True if it was. */
bool relay_flow_resume(struct relay_flow *f);

/*
 * Reads up to max more bytes from bev's socket straight into its input buffer and returns
 * how many.  EOF and errors are left for libevent's own next read to report.
 */
size_t relay_read_more(struct bufferevent *bev, size_t max);

#endif /* SLUICE_RELAY_H */
