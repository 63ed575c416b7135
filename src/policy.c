/* The decision hook; see include/sluice/policy.h. */
#include "sluice/policy.h"

/* Decides a request: CONNECT only to the configured ports, everything else allowed. */
void policy_decide(const struct policy_query *q, struct policy_decision *d)
{
    if (q->is_connect && !settings_connect_port_allowed(q->settings, q->port)) {
        d->verdict = POLICY_BLOCK;
        d->rule = "connect-ports";
        d->reason = "CONNECT to this port is not allowed; allow it with --connect-ports";
        return;
    }
    d->verdict = POLICY_ALLOW;
    d->rule = "default-allow";
    d->reason = "";
}
