/* Outcomes of relay and dial steps; see include/sluice/outcome.h. */
#include "sluice/outcome.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* An outcome of one kind. */
struct outcome outcome_of(enum outcome_kind kind)
{
    struct outcome o;

    memset(&o, 0, sizeof(o));
    o.kind = kind;
    return o;
}

/* A failure to answer with a status. */
struct outcome outcome_fail(unsigned status, const char *error_type, char who, char phase,
                            const char *fmt, ...)
{
    struct outcome o = outcome_of(OUTCOME_FAIL);
    va_list ap;

    o.status = status;
    o.error_type = error_type;
    o.who = who;
    o.phase = phase;
    va_start(ap, fmt);
    vsnprintf(o.what, sizeof(o.what), fmt, ap);
    va_end(ap);
    return o;
}

/* A close without an answer. */
struct outcome outcome_close(char who, char phase, bool reset)
{
    struct outcome o = outcome_of(OUTCOME_CLOSE);

    o.who = who;
    o.phase = phase;
    o.reset = reset;
    return o;
}
