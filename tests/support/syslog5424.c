/* A strict RFC 5424 reader for the tests; see syslog5424.h. */
#include "syslog5424.h"

#include <stdbool.h>
#include <string.h>

/* Where the reader stands in the message. */
struct cursor {
    const char *p, *end;
    const char **why;
};

/* Fails with why. */
static int bad(struct cursor *c, const char *why)
{
    *c->why = why;
    return -1;
}

/* Reads a header field: 1 to max printable ASCII characters (or "-"), then one space. */
static int field(struct cursor *c, char *out, size_t max, const char *what)
{
    size_t n = 0;

    while (c->p<c->end && * c->p> 0x20 && *c->p < 0x7f && n < max)
        out[n++] = *c->p++;
    out[n] = '\0';
    if (n == 0 || c->p >= c->end || *c->p != ' ')
        return bad(c, what);
    c->p++;
    return 0;
}

/* True when s[0..n) are digits. */
static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Checks a full RFC 3339 timestamp as RFC 5424 takes it (fraction up to 6 digits). */
static bool timestamp_ok(const char *t)
{
    size_t n = strlen(t), i = 19;

    if (n < 20 || !digits(t, 4) || t[4] != '-' || !digits(t + 5, 2) || t[7] != '-' ||
        !digits(t + 8, 2) || t[10] != 'T' || !digits(t + 11, 2) || t[13] != ':' ||
        !digits(t + 14, 2) || t[16] != ':' || !digits(t + 17, 2))
        return false;
    if (t[i] == '.') {
        size_t f = 0;
        for (i++; i < n && t[i] >= '0' && t[i] <= '9'; i++)
            f++;
        if (f < 1 || f > 6)
            return false;
    }
    if (t[i] == 'Z')
        return i + 1 == n;
    return n - i == 6 && (t[i] == '+' || t[i] == '-') && digits(t + i + 1, 2) && t[i + 3] == ':' &&
           digits(t + i + 4, 2);
}

/* Reads an SD-NAME: 1 to 32 printable ASCII characters but '=', ' ', ']' and '"'. */
static size_t sd_name(struct cursor *c, char *out)
{
    size_t n = 0;

    while (c->p<c->end && * c->p> 0x20 && *c->p < 0x7f && *c->p != '=' && *c->p != ']' &&
           *c->p != '"' && n < 32)
        out[n++] = *c->p++;
    out[n] = '\0';
    return n;
}

/* Reads a quoted PARAM-VALUE after its '"', decoding the escapes, through its closing '"'. */
static int sd_value(struct cursor *c, char *out, size_t cap)
{
    size_t n = 0;

    for (;;) {
        char ch;

        if (c->p >= c->end)
            return bad(c, "a PARAM-VALUE is not closed");
        ch = *c->p++;
        if (ch == '"')
            break;
        if (ch == ']')
            return bad(c, "a ']' in a PARAM-VALUE is not escaped");
        if (ch == '\\' && c->p < c->end && (*c->p == '"' || *c->p == '\\' || *c->p == ']'))
            ch = *c->p++;
        if (n + 1 >= cap)
            return bad(c, "a PARAM-VALUE is longer than the test reads");
        out[n++] = ch;
    }
    out[n] = '\0';
    return 0;
}

/* Reads one SD-ELEMENT from its '['; the first one's parameters go into out. */
static int sd_element(struct cursor *c, struct syslog5424 *out)
{
    char name[33], scratch[2048];
    bool first = out->nelements == 0;

    c->p++; /* '[' */
    if (sd_name(c, first ? out->sd_id : name) == 0)
        return bad(c, "an SD-ID is empty or malformed");
    for (;;) {
        char *pname = name, *value = scratch;
        size_t cap = sizeof(scratch);

        if (c->p < c->end && *c->p == ']') {
            c->p++;
            break;
        }
        if (c->p >= c->end || *c->p != ' ')
            return bad(c, "an SD-ELEMENT goes on without a space or a ']'");
        c->p++;
        if (first) {
            if (out->nparams >= SYSLOG5424_MAX_PARAMS)
                return bad(c, "more SD-PARAMs than the test reads");
            pname = out->params[out->nparams].name;
            value = out->params[out->nparams].value;
            cap = sizeof(out->params[0].value);
        }
        if (sd_name(c, pname) == 0 || c->p + 1 >= c->end || c->p[0] != '=' || c->p[1] != '"')
            return bad(c, "an SD-PARAM is not NAME=\"VALUE\"");
        c->p += 2;
        if (sd_value(c, value, cap) < 0)
            return -1;
        if (first)
            out->nparams++;
    }
    out->nelements++;
    return 0;
}

/* Parses one message; see the header. */
int syslog5424_parse(const char *m, size_t len, struct syslog5424 *out, const char **why)
{
    struct cursor c = {.p = m, .end = m + len, .why = why};
    size_t n = 0;

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)m[i] < 0x20 || (unsigned char)m[i] >= 0x7f)
            return bad(&c, "a byte outside printable ASCII");
    if (len < 3 || m[0] != '<')
        return bad(&c, "no PRI");
    for (c.p = m + 1; c.p < c.end && *c.p >= '0' && *c.p <= '9' && n < 4; c.p++, n++)
        out->pri = out->pri * 10 + (unsigned)(*c.p - '0');
    if (n == 0 || n > 3 || (n > 1 && m[1] == '0') || out->pri > 191 || c.p >= c.end || *c.p != '>')
        return bad(&c, "PRI is not <0> to <191>");
    c.p++;
    if (c.end - c.p < 2 || c.p[0] != '1' || c.p[1] != ' ')
        return bad(&c, "VERSION is not 1");
    c.p += 2;
    if (field(&c, out->timestamp, sizeof(out->timestamp) - 1, "no TIMESTAMP") < 0)
        return -1;
    if (strcmp(out->timestamp, "-") != 0 && !timestamp_ok(out->timestamp))
        return bad(&c, "TIMESTAMP is not RFC 3339");
    if (field(&c, out->hostname, 255, "HOSTNAME is empty or too long") < 0 ||
        field(&c, out->app, 48, "APP-NAME is empty or too long") < 0 ||
        field(&c, out->procid, 128, "PROCID is empty or too long") < 0 ||
        field(&c, out->msgid, 32, "MSGID is empty or too long") < 0)
        return -1;
    if (c.p < c.end && *c.p == '-') {
        c.p++;
    } else {
        if (c.p >= c.end || *c.p != '[')
            return bad(&c, "STRUCTURED-DATA is neither '-' nor an element");
        while (c.p < c.end && *c.p == '[')
            if (sd_element(&c, out) < 0)
                return -1;
    }
    if (c.p < c.end) {
        if (*c.p != ' ')
            return bad(&c, "STRUCTURED-DATA is followed by something other than ' ' MSG");
        c.p++;
        if ((size_t)(c.end - c.p) >= sizeof(out->msg))
            return bad(&c, "MSG is longer than the test reads");
        memcpy(out->msg, c.p, (size_t)(c.end - c.p));
    }
    return 0;
}

/* The value of a parameter; see the header. */
const char *syslog5424_param(const struct syslog5424 *s, const char *name)
{
    for (size_t i = 0; i < s->nparams; i++)
        if (strcmp(s->params[i].name, name) == 0)
            return s->params[i].value;
    return NULL;
}
