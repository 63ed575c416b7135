/*
 * What a step of a relay (forward, tunnel) or of reaching the upstream (dial) comes to,
 * handed back to the session that drives the connection, which alone changes its phase.
 * The modules below the session never call back into it: they return one of these.
 */
#ifndef SLUICE_OUTCOME_H
#define SLUICE_OUTCOME_H

#include <stdbool.h>

/* Who ended an exchange: the first character of the termination code. */
#define TERM_NORMAL   '-' /* nobody: it ended as it should */
#define TERM_CLIENT   'C' /* the client closed, reset or broke the protocol */
#define TERM_CLIENT_T 'c' /* the client was too slow (a timeout on its side) */
#define TERM_SERVER   'S' /* the upstream closed, reset, refused or broke the protocol */
#define TERM_SERVER_T 's' /* the upstream was too slow */
#define TERM_PROXY    'P' /* sluice refused it: policy, a malformed request, a limit */
#define TERM_RESOURCE 'R' /* sluice ran out of memory or descriptors */
#define TERM_DRAIN    'D' /* sluice was shutting down */
#define TERM_KILLED   'K' /* a policy reload blocked what was already under way */

/* In which phase: the second character of the termination code. */
#define TERM_PH_NONE     '-' /* between exchanges, or after a complete one */
#define TERM_PH_REQUEST  'R' /* reading the request head */
#define TERM_PH_RESOLVE  'N' /* resolving the upstream's name */
#define TERM_PH_CONNECT  'C' /* connecting to the upstream */
#define TERM_PH_RESPONSE 'H' /* waiting for or reading the response head */
#define TERM_PH_DATA     'D' /* moving a message body */
#define TERM_PH_TUNNEL   'T' /* relaying a tunnel */

/* What the session is to do next. */
enum outcome_kind {
    OUTCOME_MORE = 0,  /* nothing: wait for the next event */
    OUTCOME_DONE,      /* the exchange or tunnel finished cleanly */
    OUTCOME_UPGRADE,   /* the origin switched protocols (101): relay bytes from now on */
    OUTCOME_RETRY,     /* a kept (pooled or pinned) upstream died before answering an
                          idempotent request without a body: send it again on a new one */
    OUTCOME_CONNECTED, /* the upstream is connected */
    OUTCOME_DENIED,    /* the address guard refused every address the name resolved to */
    OUTCOME_PEEKED,    /* a tunnel's first client bytes were examined (the SNI is known) */
    OUTCOME_FAIL,      /* answer status when nothing was sent yet, else cut the client off */
    OUTCOME_CLOSE,     /* end the connection without an answer */
};

/* One outcome; returned by value, so what stays valid as long as the caller keeps it. */
struct outcome {
    enum outcome_kind kind;
    char who;               /* TERM_* of a FAIL or CLOSE */
    char phase;             /* TERM_PH_* of a FAIL or CLOSE */
    bool reset;             /* CLOSE: with a TCP reset, so a cut body cannot pass for whole */
    unsigned status;        /* FAIL: the status to answer with */
    const char *error_type; /* FAIL, or a CLOSE the upstream caused: the RFC 9209
                               Proxy-Status error type (static), for the access line */
    char what[200];         /* FAIL: one sentence for the client and the log */
};

/* An outcome of the given kind with nothing else set. */
struct outcome outcome_of(enum outcome_kind kind);

/* A FAIL: answer status with error_type (static) and what, printf-style; term who+phase. */
struct outcome outcome_fail(unsigned status, const char *error_type, char who, char phase,
                            const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A CLOSE with termination code who+phase, with a reset when reset is true. */
struct outcome outcome_close(char who, char phase, bool reset);

#endif /* SLUICE_OUTCOME_H */
