/*
 * libFuzzer target for the audit sinks' formats.  The input is split at NUL bytes into
 * the fields a client or an upstream chooses: target, proxy user, method, content type,
 * SNI, executable and rule; the first byte picks the decision and the kind of exchange.
 *
 *   The Squid line always has exactly ten columns, one newline at its end and only
 *   printable ASCII; the method, user and content type decode to what was given (or a
 *   prefix of it, when cut), and the URL column is the target with every byte that could
 *   split a column as %XX (or a prefix of that, never cut inside an escape).
 *
 *   The syslog message is one RFC 5424 message with one SD element, read strictly
 *   (tests/support/syslog5424.c), at most SYSLOGSINK_MSG_MAX bytes, each parameter named
 *   once; the user and URL values decode to what was given, bytes outside printable
 *   ASCII as \xHH (or, ending in "...", a prefix of that).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "squidline.h"
#include "sluice/squidlog.h"
#include "sluice/syslogsink.h"
#include "syslog5424.h"
#include "fuzzcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NFIELDS 7

/* True for a byte a Squid column cannot hold as it is. */
static bool splits(unsigned char c)
{
    return c <= 0x20 || c >= 0x7f;
}

/* Checks that col is s with splitting bytes (and, when strict, '%') as %XX, or a prefix. */
static void check_encoded(struct squidline_col col, const char *s, bool strict)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *u = (const unsigned char *)s;
    size_t j = 0;

    for (size_t i = 0; u[i] != '\0' && j < col.n; i++) {
        if (splits(u[i]) || (strict && u[i] == '%')) {
            CHECK(j + 3 <= col.n && col.p[j] == '%' && col.p[j + 1] == hex[u[i] >> 4] &&
                  col.p[j + 2] == hex[u[i] & 15]);
            j += 3;
        } else {
            CHECK(col.p[j] == (char)u[i]);
            j++;
        }
    }
    CHECK(j == col.n);
}

/* Checks a strict column: "-" for nothing, "%2D" for "-", else s encoded (or a prefix). */
static void check_strict(struct squidline_col col, const char *s)
{
    if (s[0] == '\0')
        CHECK(col.n == 1 && col.p[0] == '-');
    else if (strcmp(s, "-") == 0)
        CHECK(col.n == 3 && memcmp(col.p, "%2D", 3) == 0);
    else
        check_encoded(col, s, true);
}

/*
 * Checks a decoded SD value v against s: printable bytes as they are, others as \xHH; or,
 * ending in "...", a prefix of that which ends between two bytes' forms.
 */
static void check_value(const char *v, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(v), len = strlen(s), o = 0;
    char *want = malloc(4 * len + 1);
    bool *edge = calloc(4 * len + 1, sizeof(bool)); /* edge[k]: a byte's form ends at k */

    CHECK(want != NULL && edge != NULL);
    edge[0] = true;
    for (size_t i = 0; i < len; i++) {
        if (u[i] < 0x20 || u[i] >= 0x7f)
            o += (size_t)snprintf(want + o, 5, "\\x%02x", u[i]);
        else
            want[o++] = (char)u[i];
        edge[o] = true;
    }
    want[o] = '\0';
    if (!(n == o && memcmp(v, want, o) == 0))
        CHECK(n >= 3 && memcmp(v + n - 3, "...", 3) == 0 && n - 3 < o && edge[n - 3] &&
              memcmp(v, want, n - 3) == 0);
    free(want);
    free(edge);
}

/* One input: the record, then both formats and their checks. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const decisions[] = {"allow", "block", "report", "-"};
    static const char *const terms[] = {"--", "CD", "SC", "PR"};
    static struct syslog5424 m;
    static char line[SQUIDLOG_LINE_MAX], msg[SYSLOGSINK_MSG_MAX + 1];
    const struct timespec now = {.tv_sec = 1796537474, .tv_nsec = 973000000};
    const char *f[NFIELDS] = {"", "", "", "", "", "", ""}, *why = NULL;
    struct squidline_col cols[SQUIDLINE_COLUMNS];
    struct audit_record r;
    char *copy;
    size_t k = 0, n;

    if (size < 1)
        return 0;
    copy = malloc(size); /* the fields, each ended by a NUL (the last by the one added) */
    CHECK(copy != NULL);
    memcpy(copy, data + 1, size - 1);
    copy[size - 1] = '\0';
    f[k++] = copy;
    for (size_t i = 0; i + 1 < size && k < NFIELDS; i++)
        if (copy[i] == '\0')
            f[k++] = copy + i + 1;
    memset(&r, 0, sizeof(r));
    r.client = "127.0.0.1:40000";
    r.target = f[0];
    r.user = f[1];
    r.method = f[2];
    r.media_type = f[3];
    r.sni = f[4];
    r.exe = f[5];
    r.rule = f[6];
    r.is_connect = (data[0] & 4) != 0;
    r.status = (data[0] & 8) != 0 ? 200 : 403;
    r.decision = decisions[data[0] & 3];
    r.term = terms[data[0] >> 4 & 3];
    r.tool = "unidentified";
    r.id_source = "none";
    r.dest_ip = (data[0] & 64) != 0 ? "127.0.0.1" : "-";
    r.country = "-";

    n = squidlog_format(&r, &now, line, sizeof(line));
    CHECK(n == strlen(line));
    CHECK(squidline_split(line, n, cols, &why) == 0);
    check_strict(cols[5], strcmp(r.method, "-") == 0 ? "NONE" : r.method);
    if (r.target[0] != '\0' && strcmp(r.target, "-") != 0)
        check_encoded(cols[6], r.target, false);
    check_strict(cols[7], r.user);
    check_strict(cols[9], r.media_type);

    n = syslogsink_format(&r, 16, &now, "host", 1, msg, sizeof(msg));
    CHECK(n > 0 && n <= SYSLOGSINK_MSG_MAX && n == strlen(msg));
    CHECK(syslog5424_parse(msg, n, &m, &why) == 0);
    CHECK(m.nelements == 1 && strcmp(m.sd_id, SYSLOGSINK_SD_ID) == 0);
    for (size_t i = 0; i < m.nparams; i++)
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(m.params[i].name, m.params[j].name) != 0);
    if (syslog5424_param(&m, "user") != NULL)
        check_value(syslog5424_param(&m, "user"), r.user);
    if (syslog5424_param(&m, "url") != NULL)
        check_value(syslog5424_param(&m, "url"), r.target);
    free(copy);
    return 0;
}
