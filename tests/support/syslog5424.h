/*
 * A strict reader of RFC 5424 syslog messages, for the tests of sluice's syslog sink:
 * every header field checked against the ABNF of section 6 (PRI, VERSION 1, a full
 * RFC 3339 TIMESTAMP, HOSTNAME, APP-NAME, PROCID and MSGID in their lengths and
 * characters), the structured data read element by element with the escapes of section
 * 6.3.3 ('"', '\' and ']' must come after a backslash; a backslash before anything else
 * stands for itself), and nothing but printable ASCII or a space anywhere in the message.
 */
#ifndef SLUICE_TEST_SYSLOG5424_H
#define SLUICE_TEST_SYSLOG5424_H

#include <stddef.h>

#define SYSLOG5424_MAX_PARAMS 32

/* One parsed message; values are decoded. */
struct syslog5424 {
    unsigned pri;
    char timestamp[40];
    char hostname[256];
    char app[49];
    char procid[129];
    char msgid[33];
    unsigned nelements; /* SD elements */
    char sd_id[33];     /* the first element's */
    size_t nparams;     /* the first element's */
    struct {
        char name[33];
        char value[2048];
    } params[SYSLOG5424_MAX_PARAMS];
    char msg[2048]; /* "" when there is none */
};

/*
 * Parses the message m[0..len), which must be all of one message (no newline at its end).
 * Returns 0, or -1 with *why saying what breaks the grammar.
 */
int syslog5424_parse(const char *m, size_t len, struct syslog5424 *out, const char **why);

/* The decoded value of the first element's parameter name, or NULL. */
const char *syslog5424_param(const struct syslog5424 *s, const char *name);

#endif /* SLUICE_TEST_SYSLOG5424_H */
