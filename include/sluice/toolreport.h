/*
 * What the policy knows of the tools, for people: the commands `sluice tools` (every
 * profile and how it is recognised), `sluice tools show ID` (one profile, its groups and
 * its sources) and `sluice tools which PID` (which tool a running process would be, and
 * why).
 */
#ifndef SLUICE_TOOLREPORT_H
#define SLUICE_TOOLREPORT_H

#include <stdio.h>
#include <sys/types.h>

#include "sluice/policy.h"

/* Writes one line per profile of p: id, name, and how many ways each source knows it. */
void toolreport_list(const struct policy_snapshot *p, FILE *out);

/* Writes the profile id (or a proxy user name of it).  Returns 0, or -1 when none is. */
int toolreport_show(const struct policy_snapshot *p, const char *id, FILE *out);

/*
 * Writes which tool the process pid would be by its executable, command line and
 * ancestors, the pattern and profile that say so, and the chain.  Returns 0 when a tool
 * matched, 1 when none did, -1 when the process cannot be read.
 */
int toolreport_which(const struct policy_snapshot *p, pid_t pid, FILE *out);

#endif /* SLUICE_TOOLREPORT_H */
