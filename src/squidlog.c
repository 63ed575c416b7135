/* The Squid-format access log; see include/sluice/squidlog.h. */
#include "sluice/squidlog.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/linewriter.h"

/* The log's file, queue and writer. */
static struct linewriter squid = LINEWRITER_INIT;

/*
 * Writes s into out (cap bytes, NUL-terminated) as one column: every byte that could end
 * or split it (space and below, DEL and above) as %XX, and with strict '%' too, so that
 * the column decodes to exactly s.  A URL keeps its own '%' (it is already in URL syntax,
 * as Squid logs it).  Nothing, or a strict value of just "-", cannot be told from "no
 * value": those are "-" and "%2D".  What does not fit is cut, never inside a %XX.
 */
static void squidlog_column(char *out, size_t cap, const char *s, bool strict)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    if (s == NULL || s[0] == '\0') {
        snprintf(out, cap, "-");
        return;
    }
    if (strict && strcmp(s, "-") == 0) {
        snprintf(out, cap, "%%2D");
        return;
    }
    for (const unsigned char *u = (const unsigned char *)s; *u != '\0'; u++) {
        if (*u <= 0x20 || *u >= 0x7f || (strict && *u == '%')) {
            if (o + 3 >= cap)
                break;
            out[o++] = '%';
            out[o++] = hex[*u >> 4];
            out[o++] = hex[*u & 15];
        } else {
            if (o + 1 >= cap)
                break;
            out[o++] = (char)*u;
        }
    }
    out[o] = '\0';
}

/* The address part of "ip:port" or "[ipv6]:port" into out; anything else as it is. */
static void squidlog_client_ip(const char *client, char *out, size_t cap)
{
    char ip[128];
    const char *colon;
    size_t n;

    if (client == NULL || client[0] == '\0') {
        snprintf(out, cap, "-");
        return;
    }
    if (client[0] == '[' && (colon = strchr(client, ']')) != NULL) {
        client++;
        n = (size_t)(colon - client);
    } else if ((colon = strrchr(client, ':')) != NULL) {
        n = (size_t)(colon - client);
    } else {
        n = strlen(client);
    }
    if (n >= sizeof(ip))
        n = sizeof(ip) - 1;
    memcpy(ip, client, n);
    ip[n] = '\0';
    squidlog_column(out, cap, ip, true);
}

/* True when s is the decision named. */
static bool squidlog_is(const char *s, const char *name)
{
    return s != NULL && strcmp(s, name) == 0;
}

/* Squid's result code for r; see the header. */
const char *squidlog_result(const struct audit_record *r)
{
    bool client_gone = r->term != NULL && (r->term[0] == 'C' || r->term[0] == 'c');

    if (squidlog_is(r->decision, "block") || r->status == 407)
        return "TCP_DENIED";
    if (!squidlog_is(r->decision, "allow") && !squidlog_is(r->decision, "report"))
        return "NONE_NONE";
    if (r->is_connect && r->status == 200)
        return "TCP_TUNNEL"; /* a tunnel is over when either side ends it */
    return client_gone ? "TCP_MISS_ABORTED" : "TCP_MISS";
}

/* Formats one line; see the header. */
size_t squidlog_format(const struct audit_record *r, const struct timespec *now, char *out,
                       size_t cap)
{
    char client[400], method[100], url[SQUIDLOG_URL_MAX], user[400], peer[200], type[200];
    const char *target = r->target, *result = squidlog_result(r);
    int n;

    squidlog_client_ip(r->client, client, sizeof(client));
    /* Squid's words for a request that never had a method or a target. */
    squidlog_column(method, sizeof(method),
                    r->method == NULL || squidlog_is(r->method, "-") ? "NONE" : r->method, true);
    if (target == NULL || target[0] == '\0' || strcmp(target, "-") == 0)
        target = r->status == 0 ? "error:transaction-end-before-headers" : "error:invalid-request";
    squidlog_column(url, sizeof(url), target, false);
    squidlog_column(user, sizeof(user), r->user, true);
    squidlog_column(type, sizeof(type), r->media_type, true);
    /* A refused address was never dialled: Squid says HIER_NONE for what it did not fetch. */
    if (r->dest_ip != NULL && r->dest_ip[0] != '\0' && strcmp(r->dest_ip, "-") != 0 &&
        strncmp(result, "TCP_DENIED", 10) != 0 && strncmp(result, "NONE", 4) != 0) {
        char ip[150];
        squidlog_column(ip, sizeof(ip), r->dest_ip, true);
        snprintf(peer, sizeof(peer), "HIER_DIRECT/%s", ip);
    } else {
        snprintf(peer, sizeof(peer), "HIER_NONE/-");
    }
    n = snprintf(out, cap, "%lld.%03ld %6" PRIu64 " %s %s/%03u %" PRIu64 " %s %s %s %s %s\n",
                 (long long)now->tv_sec, now->tv_nsec / 1000000 % 1000, r->duration_ms, client,
                 result, r->status % 1000, r->received, method, url, user, peer, type);
    if (n < 0 || (size_t)n >= cap) {
        /* Cannot happen with cap >= SQUIDLOG_LINE_MAX; a line still ends where it should. */
        if (cap < 2)
            return 0;
        out[cap - 2] = '\n';
        out[cap - 1] = '\0';
        return cap - 1;
    }
    return (size_t)n;
}

/* Opens the log; see the header. */
int squidlog_open(const char *path, char *err, size_t cap)
{
    /* Rotated by logrotate and SIGUSR1, as Squid's own is; synced like the trail. */
    const struct linewriter_options opt = {
        .path = path, .what = "Squid log", .queue = SQUIDLOG_QUEUE, .sync_ms = 1000, .keep = 1};

    return linewriter_open(&squid, &opt, "sluice-squidlog", err, cap);
}

/* Closes the log; see the header. */
void squidlog_close(void)
{
    linewriter_close(&squid);
}

/* Opens the log's path again; see the header. */
int squidlog_reopen(char *err, size_t cap)
{
    return linewriter_reopen(&squid, err, cap);
}

bool squidlog_enabled(void)
{
    return linewriter_enabled(&squid);
}

/* Formats and queues a record; see the header. */
void squidlog_record(const struct audit_record *r)
{
    static _Thread_local char room[SQUIDLOG_LINE_MAX];
    struct timespec now;
    size_t n;

    if (!squidlog_enabled())
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    /* Made in the thread's room; the queue takes a copy. */
    n = squidlog_format(r, &now, room, sizeof(room));
    linewriter_queue(&squid, room, n);
}

uint64_t squidlog_lost(void)
{
    return linewriter_lost(&squid);
}
