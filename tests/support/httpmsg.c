/* Small, lenient HTTP/1.1 helpers used by the scripted origin and the raw client. */
#include "httpmsg.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Finds CRLF CRLF. */
size_t httpmsg_head_len(const char *buf, size_t len)
{
    size_t i;

    for (i = 3; i < len; i++) {
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
            return i + 1;
    }
    return 0;
}

/* Trims spaces and tabs from both ends of [*s, *e). */
static void httpmsg_trim(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

/*
 * Walks the field lines of a head; calls back for each one whose name matches.
 * Returns how many matched before the callback asked to stop (by returning true).
 */
static unsigned httpmsg_walk(const char *head, size_t len, const char *name,
                             bool (*fn)(const char *v, size_t vl, void *arg), void *arg)
{
    const char *p = memchr(head, '\n', len);
    const char *end = head + len;
    size_t nl = strlen(name);
    unsigned n = 0;

    if (p == NULL)
        return 0;
    p++;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le;
        const char *colon;

        if (eol == NULL)
            eol = end;
        le = eol;
        if (le > p && le[-1] == '\r')
            le--;
        if (le == p)
            break;
        colon = memchr(p, ':', (size_t)(le - p));
        if (colon != NULL && (size_t)(colon - p) == nl && strncasecmp(p, name, nl) == 0) {
            const char *vs = colon + 1;
            const char *ve = le;

            httpmsg_trim(&vs, &ve);
            n++;
            if (fn != NULL && fn(vs, (size_t)(ve - vs), arg))
                return n;
        }
        p = eol + 1;
    }
    return n;
}

/* Arguments of httpmsg_field_cb. */
struct httpmsg_find {
    unsigned want;
    unsigned seen;
    char *out;
    size_t cap;
    bool found;
};

/* Copies the wanted occurrence. */
static bool httpmsg_field_cb(const char *v, size_t vl, void *arg)
{
    struct httpmsg_find *f = arg;

    if (f->seen++ != f->want)
        return false;
    if (f->cap > 0) {
        size_t n = vl < f->cap - 1 ? vl : f->cap - 1;

        memcpy(f->out, v, n);
        f->out[n] = '\0';
    }
    f->found = true;
    return true;
}

/* Looks one field value up. */
bool httpmsg_field(const char *head, size_t len, const char *name, unsigned idx, char *out,
                   size_t cap)
{
    struct httpmsg_find f = {.want = idx, .out = out, .cap = cap};

    (void)httpmsg_walk(head, len, name, httpmsg_field_cb, &f);
    return f.found;
}

/* Counts fields with a given name. */
unsigned httpmsg_field_count(const char *head, size_t len, const char *name)
{
    return httpmsg_walk(head, len, name, NULL, NULL);
}

/* Arguments of httpmsg_token_cb. */
struct httpmsg_token {
    const char *token;
    bool found;
};

/* Scans a comma-separated list for the token. */
static bool httpmsg_token_cb(const char *v, size_t vl, void *arg)
{
    struct httpmsg_token *t = arg;
    const char *end = v + vl;
    size_t tl = strlen(t->token);

    while (v < end) {
        const char *comma = memchr(v, ',', (size_t)(end - v));
        const char *s = v;
        const char *e = comma != NULL ? comma : end;

        httpmsg_trim(&s, &e);
        if ((size_t)(e - s) == tl && strncasecmp(s, t->token, tl) == 0) {
            t->found = true;
            return true;
        }
        v = comma != NULL ? comma + 1 : end;
    }
    return false;
}

/* True when a list-valued field carries token. */
bool httpmsg_field_has_token(const char *head, size_t len, const char *name, const char *token)
{
    struct httpmsg_token t = {.token = token};

    (void)httpmsg_walk(head, len, name, httpmsg_token_cb, &t);
    return t.found;
}

/* Parses the three-digit status after "HTTP/1.x ". */
int httpmsg_status(const char *head, size_t len)
{
    if (len < 12 || strncmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ')
        return -1;
    if (head[9] < '0' || head[9] > '9' || head[10] < '0' || head[10] > '9' || head[11] < '0' ||
        head[11] > '9')
        return -1;
    return (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
}

/* Applies RFC 9112 section 6.3 in its simple form. */
enum httpmsg_framing httpmsg_framing(const char *head, size_t len, bool is_response,
                                     bool head_request, uint64_t *length)
{
    char v[64];

    *length = 0;
    if (is_response) {
        int st = httpmsg_status(head, len);

        if (head_request || (st >= 100 && st < 200) || st == 204 || st == 304)
            return HTTPMSG_NONE;
    }
    if (httpmsg_field_count(head, len, "Transfer-Encoding") > 0) {
        unsigned n = httpmsg_field_count(head, len, "Transfer-Encoding");
        char te[256];
        size_t tl;

        /* Chunked only when it is the final coding; a response coded otherwise ends at
         * close, a request is malformed (the tests never send one). */
        if (!httpmsg_field(head, len, "Transfer-Encoding", n - 1, te, sizeof(te)))
            return is_response ? HTTPMSG_CLOSE : HTTPMSG_NONE;
        tl = strlen(te);
        while (tl > 0 && (te[tl - 1] == ' ' || te[tl - 1] == '\t'))
            tl--;
        if (tl >= 7 && strncasecmp(te + tl - 7, "chunked", 7) == 0 &&
            (tl == 7 || te[tl - 8] == ',' || te[tl - 8] == ' ' || te[tl - 8] == '\t'))
            return HTTPMSG_CHUNKED;
        return is_response ? HTTPMSG_CLOSE : HTTPMSG_NONE;
    }
    if (httpmsg_field(head, len, "Content-Length", 0, v, sizeof(v))) {
        *length = strtoull(v, NULL, 10);
        return HTTPMSG_LENGTH;
    }
    return is_response ? HTTPMSG_CLOSE : HTTPMSG_NONE;
}

/* Decoder states. */
enum {
    DC_SIZE = 0,     /* reading hex digits of a chunk size */
    DC_EXT,          /* skipping a chunk extension up to CR */
    DC_SIZE_LF,      /* expecting LF after the size line's CR */
    DC_DATA,         /* copying chunk data */
    DC_DATA_CR,      /* expecting CR after data */
    DC_DATA_LF,      /* expecting LF after data */
    DC_TRAILER,      /* at the start of a trailer line */
    DC_TRAILER_LINE, /* inside a trailer line */
    DC_TRAILER_LF,   /* expecting LF ending a trailer line (or the section) */
    DC_END_LF,       /* expecting the final LF */
};

/* Starts a new body. */
void httpmsg_dechunk_init(struct httpmsg_dechunk *d)
{
    memset(d, 0, sizeof(*d));
}

/* Value of a hex digit, or -1. */
static int httpmsg_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Runs the chunked state machine over the input. */
long long httpmsg_dechunk(struct httpmsg_dechunk *d, const char *in, size_t len, struct tbuf *out)
{
    size_t i = 0;

    while (i < len && !d->done) {
        char c = in[i];

        switch (d->state) {
        case DC_SIZE:
            if (httpmsg_hex(c) >= 0) {
                if (++d->ndigits > 15)
                    return -1;
                d->remaining = d->remaining * 16 + (uint64_t)httpmsg_hex(c);
            } else if (c == ';' || c == ' ' || c == '\t') {
                d->state = DC_EXT;
            } else if (c == '\r') {
                d->state = DC_SIZE_LF;
            } else {
                return -1;
            }
            if (d->state != DC_SIZE && d->ndigits == 0)
                return -1;
            i++;
            break;
        case DC_EXT:
            if (c == '\r')
                d->state = DC_SIZE_LF;
            i++;
            break;
        case DC_SIZE_LF:
            if (c != '\n')
                return -1;
            i++;
            d->ndigits = 0;
            d->state = d->remaining > 0 ? DC_DATA : DC_TRAILER;
            break;
        case DC_DATA: {
            size_t n = len - i;

            if (n > d->remaining)
                n = (size_t)d->remaining;
            if (out != NULL)
                tbuf_append(out, in + i, n);
            i += n;
            d->remaining -= n;
            if (d->remaining == 0)
                d->state = DC_DATA_CR;
            break;
        }
        case DC_DATA_CR:
            if (c != '\r')
                return -1;
            d->state = DC_DATA_LF;
            i++;
            break;
        case DC_DATA_LF:
            if (c != '\n')
                return -1;
            d->state = DC_SIZE;
            i++;
            break;
        case DC_TRAILER:
            d->state = c == '\r' ? DC_END_LF : DC_TRAILER_LINE;
            i++;
            break;
        case DC_TRAILER_LINE:
            if (c == '\r')
                d->state = DC_TRAILER_LF;
            i++;
            break;
        case DC_TRAILER_LF:
            if (c != '\n')
                return -1;
            d->state = DC_TRAILER;
            i++;
            break;
        case DC_END_LF:
            if (c != '\n')
                return -1;
            d->done = true;
            i++;
            break;
        default:
            return -1;
        }
    }
    return (long long)i;
}
