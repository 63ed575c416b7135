/*
 * libFuzzer target for the audit trail's record and for the hiding of secrets in URLs.
 * The input is split at NUL bytes into the fields a client, an upstream or a local
 * process chooses: target, User-Agent, proxy user, offered user, command line, process
 * chain, executable, SNI, host, path and media type; the first byte picks the decision,
 * the kind of exchange and whether it is an interim record.
 *
 *   The record, ended as the writer ends it, is one line of strictly valid JSON (objects,
 *   arrays, strings with only valid escapes and valid UTF-8, numbers, true), of at most
 *   AUDITLOG_LINE_MAX bytes, with its decision and termination members whatever the
 *   other fields hold.
 *
 *   redact_url never writes past its room, always ends its output with a NUL at the
 *   length it returns, and hides nothing twice: its output, when not cut, is its own
 *   redaction.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/auditlog.h"
#include "sluice/redact.h"
#include "fuzzcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A strict JSON reader: true when s[*i..n) starts with one value, *i moved past it. */
static bool json_value(const char *s, size_t n, size_t *i, int depth);

static void json_ws(const char *s, size_t n, size_t *i)
{
    while (*i < n && (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\n' || s[*i] == '\r'))
        (*i)++;
}

/* The length of a valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4;
    else
        return 0;
    cp = s[0] & (0x7fu >> len);
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static bool json_string(const char *s, size_t n, size_t *i)
{
    if (*i >= n || s[*i] != '"')
        return false;
    (*i)++;
    while (*i < n) {
        unsigned char c = (unsigned char)s[*i];
        size_t len;

        if (c == '"') {
            (*i)++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (*i + 1 >= n)
                return false;
            c = (unsigned char)s[*i + 1];
            if (c == 'u') {
                if (*i + 6 > n)
                    return false;
                for (size_t k = 2; k < 6; k++)
                    if (strchr("0123456789abcdefABCDEF", s[*i + k]) == NULL || s[*i + k] == 0)
                        return false;
                *i += 6;
            } else if (strchr("\"\\/bfnrt", c) != NULL && c != 0) {
                *i += 2;
            } else {
                return false;
            }
            continue;
        }
        if ((len = utf8_len((const unsigned char *)s + *i, n - *i)) == 0)
            return false;
        *i += len;
    }
    return false;
}

static bool json_number(const char *s, size_t n, size_t *i)
{
    size_t start = *i;

    while (*i < n && s[*i] >= '0' && s[*i] <= '9')
        (*i)++;
    return *i > start && (s[start] != '0' || *i == start + 1);
}

/* Objects and arrays: members (key: value) or elements, separated by commas. */
static bool json_container(const char *s, size_t n, size_t *i, int depth, bool object)
{
    char close = object ? '}' : ']';

    (*i)++;
    json_ws(s, n, i);
    if (*i < n && s[*i] == close) {
        (*i)++;
        return true;
    }
    for (;;) {
        json_ws(s, n, i);
        if (object) {
            if (!json_string(s, n, i))
                return false;
            json_ws(s, n, i);
            if (*i >= n || s[*i] != ':')
                return false;
            (*i)++;
        }
        if (!json_value(s, n, i, depth + 1))
            return false;
        json_ws(s, n, i);
        if (*i < n && s[*i] == ',') {
            (*i)++;
            continue;
        }
        if (*i < n && s[*i] == close) {
            (*i)++;
            return true;
        }
        return false;
    }
}

static bool json_value(const char *s, size_t n, size_t *i, int depth)
{
    if (depth > 16)
        return false;
    json_ws(s, n, i);
    if (*i >= n)
        return false;
    switch (s[*i]) {
    case '{':
        return json_container(s, n, i, depth, true);
    case '[':
        return json_container(s, n, i, depth, false);
    case '"':
        return json_string(s, n, i);
    case 't':
        if (n - *i >= 4 && memcmp(s + *i, "true", 4) == 0) {
            *i += 4;
            return true;
        }
        return false;
    default:
        return json_number(s, n, i);
    }
}

/* The next field of the input: up to a NUL or the end; "" when none is left. */
static const char *next_field(const uint8_t **data, size_t *size, char *out, size_t cap)
{
    size_t n = 0;

    while (*size > 0 && **data != 0 && n + 1 < cap) {
        out[n++] = (char)**data;
        (*data)++;
        (*size)--;
    }
    while (*size > 0 && **data != 0) { /* the rest of a field too long for its room */
        (*data)++;
        (*size)--;
    }
    if (*size > 0) {
        (*data)++;
        (*size)--;
    }
    out[n] = '\0';
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char key[REDACT_KEY_BYTES] = {7};
    static bool configured;
    static char fields[11][8192], red[4096], again[4096], line[AUDITLOG_LINE_MAX + 200];
    static const char *const decisions[] = {"allow", "block", "report", "-"};
    struct audit_record r = {0};
    struct redact_seen seen = {0};
    uint8_t how;
    const char *body;
    size_t n, i = 0;

    if (!configured) {
        char err[200];
        CHECK(redact_configure("x-team", key, err, sizeof(err)) == 0);
        configured = true;
    }
    if (size == 0)
        return 0;
    how = data[0];
    data++;
    size--;
    for (size_t f = 0; f < 11; f++)
        next_field(&data, &size, fields[f], sizeof(fields[f]));

    /* redact_url: bounded, NUL-ended, and nothing hidden twice. */
    n = redact_url(fields[0], strlen(fields[0]), red, sizeof(red));
    CHECK(n < sizeof(red) && red[n] == '\0' && strlen(red) == n);
    if (n + 4 < sizeof(red) && strstr(red, "...") == NULL) {
        size_t m = redact_url(red, n, again, sizeof(again));
        CHECK(m == n && memcmp(red, again, n) == 0);
    }

    seen.n = (uint8_t)(how % (REDACT_SEEN_MAX + 1));
    seen.more = how;
    r.client = "127.0.0.1:40000";
    r.method = "GET";
    r.target = red;
    r.is_connect = (how & 0x10) != 0;
    r.user_agent = fields[1][0] != '\0' ? fields[1] : NULL;
    r.user = fields[2];
    r.offered = fields[3];
    r.pid = (how & 0x20) != 0 ? 4242 : 0;
    r.uid = 1000;
    r.cmd = fields[4];
    r.chain = fields[5];
    r.exe = fields[6];
    r.parent_pid = 1;
    r.parent_exe = fields[6];
    r.sni = fields[7];
    r.host = fields[8];
    r.path = fields[9];
    r.media_type = fields[10];
    r.term = (how & 0x40) != 0 ? "" : "--";
    r.interim = (how & 0x40) != 0;
    r.tool = "unidentified";
    r.id_source = "none";
    r.error = "";
    r.decision = decisions[how & 3];
    r.rule = "rule";
    r.rule_file = fields[5];
    r.dest_ip = "127.0.0.1";
    r.country = "-";
    r.version = "";
    r.mismatch = "";
    r.exe_sha256 = "";
    r.req_secrets = &seen;
    r.resp_secrets = &seen;
    {
        /* Codings come from the network; the rest from sluice. */
        static struct capture_ref req, resp;
        memset(&req, 0, sizeof(req));
        req.present = true;
        req.lost = (how & 0x80) != 0;
        memset(req.sha256, 'a', CAPTURE_HASH_HEX - 1);
        req.bytes = how * 1000u;
        req.truncated = (how & 4) != 0;
        memcpy(req.codings, fields[10], sizeof(req.codings) - 1); /* its last byte stays 0 */
        resp = req;
        resp.lost = !req.lost;
        r.req_capture = (how & 8) != 0 ? &req : NULL;
        r.resp_capture = &resp;
    }

    body = auditlog_format(&r, &n);
    CHECK(n == strlen(body));
    CHECK(n <= AUDITLOG_LINE_MAX - 200);
    snprintf(line, sizeof(line), "%s\"record_id\":1,\"prev_hash\":\"%064d\"}}", body, 0);
    n = strlen(line);
    CHECK(json_value(line, n, &i, 0));
    json_ws(line, n, &i);
    CHECK(i == n);
    CHECK(strstr(line, "\"record_id\":1,") != NULL);
    if ((how & 3) != 3)
        CHECK(strstr(line, "\"decision\":\"") != NULL);
    if ((how & 0x40) == 0)
        CHECK(strstr(line, "\"termination\":\"--\"") != NULL);
    return 0;
}
