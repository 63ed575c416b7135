/*
 * The decision hook: every request and tunnel is put to policy_decide() after its head
 * is parsed and before any byte goes upstream.  Today it enforces the CONNECT port list;
 * the policy issue grows it into tool profiles and organisation rules.
 */
#ifndef SLUICE_POLICY_H
#define SLUICE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice/settings.h"

/* What to do with a request. */
enum policy_verdict {
    POLICY_ALLOW = 0, /* forward it */
    POLICY_BLOCK,     /* refuse it with 403 */
};

/* What the decision is about; strings are not owned. */
struct policy_query {
    const struct sluice_settings *settings;
    bool is_connect; /* a CONNECT tunnel rather than a plain HTTP request */
    const char *method;
    const char *host; /* normalised upstream host */
    uint16_t port;
};

/* The decision and the rule that made it. */
struct policy_decision {
    enum policy_verdict verdict;
    const char *rule;   /* id of the rule that decided, for the log and the 403 body */
    const char *reason; /* one sentence for the client, saying what to do */
};

/* Decides q into *d. */
void policy_decide(const struct policy_query *q, struct policy_decision *d);

#endif /* SLUICE_POLICY_H */
