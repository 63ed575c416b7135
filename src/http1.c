/*
 * Strict HTTP/1.1 message framing; see include/sluice/http1.h.
 *
 * The head parser works a line at a time: it looks for the next LF from where it stopped
 * (so every byte is scanned a bounded number of times however the head arrives), then
 * checks the complete line.  Facts that decide where the message ends (Content-Length,
 * Transfer-Encoding) are gathered field by field and judged once the head is complete.
 */
#include "sluice/http1.h"

#include <arpa/inet.h>
#include <string.h>

/* Parser states. */
enum {
    P_START = 0, /* expecting the start line */
    P_FIELDS,    /* expecting a field line or the empty line */
    P_DONE,      /* the head is complete */
    P_ERROR,     /* the head was refused */
};

/* Chunked decoder states; the order matters to chunk_byte(). */
enum {
    C_SIZE = 0,        /* first hex digit of a chunk size */
    C_SIZE_MORE,       /* further hex digits, or what may follow them */
    C_SIZE_BWS,        /* whitespace after the size: only ";" may follow */
    C_EXT_NAME_START,  /* after ";": whitespace, then an extension name */
    C_EXT_NAME,        /* inside an extension name */
    C_EXT_AFTER_NAME,  /* whitespace after a name: "=", ";" or the line end */
    C_EXT_VALUE_START, /* after "=": whitespace, then a token or a quoted string */
    C_EXT_TOKEN,       /* inside a token value */
    C_EXT_QUOTED,      /* inside a quoted-string value */
    C_EXT_QUOTED_ESC,  /* after a backslash inside a quoted string */
    C_EXT_AFTER_VALUE, /* after a value: whitespace, ";" or the line end */
    C_SIZE_LF,         /* LF ending the size line */
    C_DATA,            /* chunk data */
    C_DATA_CR,         /* CR after chunk data */
    C_DATA_LF,         /* LF after chunk data */
    C_TRAILER,         /* start of a trailer line, or the final CRLF */
    C_TRAILER_NAME,    /* inside a trailer field name */
    C_TRAILER_VALUE,   /* inside a trailer field value */
    C_TRAILER_LF,      /* LF ending a trailer field line */
    C_END_LF,          /* LF ending the body */
    C_DONE,            /* body complete */
    C_ERROR,           /* body refused */
};

#define HTTP1_MAX_EMPTY_LINES 4
#define HTTP1_MAX_CL_DIGITS   18
#define HTTP1_MAX_CHUNK       ((uint64_t)1 << 62)

/* RFC 9110 tchar: the bytes allowed in tokens (methods, field names, codings). */
static bool is_tchar(unsigned char ch)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";

    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch != '\0' && strchr(extra, ch) != NULL;
}

/* Bytes allowed in a field value or reason phrase: HTAB, SP, VCHAR, obs-text. */
static bool is_field_vchar(unsigned char ch)
{
    return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

/* ASCII lower-casing. */
static unsigned char lower(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch + 32) : ch;
}

/* Case-insensitive comparison of s[0..n) with the NUL-terminated lit. */
static bool eq_ci(const char *s, size_t n, const char *lit)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (lit[i] == '\0' || lower((unsigned char)s[i]) != lower((unsigned char)lit[i]))
            return false;
    return lit[i] == '\0';
}

/* Sets the documented defaults. */
void http1_limits_default(struct http1_limits *lim)
{
    lim->max_line = 8192;
    lim->max_head = 65536;
    lim->max_fields = 100;
    lim->allow_bare_lf = false;
}

/* Prepares a parser for one head. */
void http1_parser_init(struct http1_parser *p, enum http1_kind kind, const struct http1_limits *lim,
                       struct http1_head *head, struct http1_field *fields, uint32_t cap_fields)
{
    memset(p, 0, sizeof(*p));
    memset(head, 0, sizeof(*head));
    p->kind = kind;
    p->limits = *lim;
    p->head = head;
    p->cap_fields = cap_fields;
    head->fields = fields;
    head->host_field = -1;
}

/* Records a refusal and returns -1. */
static int64_t fail(struct http1_parser *p, enum http1_error err, size_t pos)
{
    p->state = P_ERROR;
    p->error = err;
    p->error_pos = (uint32_t)pos;
    return -1;
}

/* Parses "HTTP/1.x" at s[0..n); returns the minor version, or -1 / -2 (unsupported). */
static int parse_version(const char *s, size_t n)
{
    if (n != 8 || memcmp(s, "HTTP/", 5) != 0 || s[6] != '.' || s[5] < '0' || s[5] > '9' ||
        s[7] < '0' || s[7] > '9')
        return -1;
    if (s[5] != '1' || (s[7] != '0' && s[7] != '1'))
        return -2;
    return s[7] - '0';
}

/* Checks and records a request line at buf[start..end). */
static int64_t parse_request_line(struct http1_parser *p, const char *buf, size_t start, size_t end)
{
    struct http1_head *h = p->head;
    size_t i = start, sp1, sp2;
    int minor;

    while (i < end && is_tchar((unsigned char)buf[i]))
        i++;
    if (i == start || i == end || buf[i] != ' ')
        return fail(p, HTTP1_E_METHOD, i);
    sp1 = i;
    /* The version follows the last SP, so a space inside the target is reported as such. */
    sp2 = end;
    while (sp2 > sp1 + 1 && buf[sp2 - 1] != ' ')
        sp2--;
    sp2 = sp2 > sp1 + 1 ? sp2 - 1 : end;
    minor = sp2 < end ? parse_version(buf + sp2 + 1, end - sp2 - 1) : 1;
    if (minor == -2)
        return fail(p, HTTP1_E_VERSION_UNSUPP, sp2 + 1);
    if (minor < 0)
        return fail(p, HTTP1_E_VERSION, sp2 + 1);
    for (i = sp1 + 1; i < sp2; i++)
        if ((unsigned char)buf[i] <= 0x20 || (unsigned char)buf[i] >= 0x7f)
            return fail(p, HTTP1_E_TARGET, i);
    if (sp2 == sp1 + 1)
        return fail(p, HTTP1_E_TARGET, sp2);
    if (sp2 == end)
        return fail(p, HTTP1_E_VERSION, end); /* "GET /": HTTP/0.9 */
    h->method.off = (uint32_t)start;
    h->method.len = (uint32_t)(sp1 - start);
    h->target.off = (uint32_t)(sp1 + 1);
    h->target.len = (uint32_t)(sp2 - sp1 - 1);
    h->version_minor = (unsigned)minor;
    return 0;
}

/* Checks and records a status line at buf[start..end): HTTP-version SP 3DIGIT [SP reason]. */
static int64_t parse_status_line(struct http1_parser *p, const char *buf, size_t start, size_t end)
{
    struct http1_head *h = p->head;
    const char *sp = memchr(buf + start, ' ', end - start);
    size_t vend = sp != NULL ? (size_t)(sp - buf) : end, code = vend + 1;
    int minor = parse_version(buf + start, vend - start);

    if (minor == -2)
        return fail(p, HTTP1_E_VERSION_UNSUPP, start);
    if (minor < 0)
        return fail(p, HTTP1_E_VERSION, start);
    if (sp == NULL || end - code < 3)
        return fail(p, HTTP1_E_STATUS, vend);
    for (size_t i = code; i < code + 3; i++)
        if (buf[i] < '0' || buf[i] > '9')
            return fail(p, HTTP1_E_STATUS, i);
    h->status =
        (unsigned)((buf[code] - '0') * 100 + (buf[code + 1] - '0') * 10 + (buf[code + 2] - '0'));
    if (h->status < 100)
        return fail(p, HTTP1_E_STATUS, code);
    if (code + 3 < end && buf[code + 3] != ' ')
        return fail(p, HTTP1_E_STATUS, code + 3);
    for (size_t i = code + 4; i < end; i++)
        if (!is_field_vchar((unsigned char)buf[i]))
            return fail(p, HTTP1_E_FIELD_VALUE, i);
    h->version_minor = (unsigned)minor;
    h->reason.off = (uint32_t)(code + 3 < end ? code + 4 : end);
    h->reason.len = (uint32_t)(end - h->reason.off);
    return 0;
}

/* Parses one Content-Length value (a list of equal decimal numbers) into the head. */
static int64_t note_content_length(struct http1_parser *p, const char *v, size_t n, size_t pos)
{
    struct http1_head *h = p->head;
    size_t i = 0;

    while (i <= n) {
        uint64_t value = 0;
        size_t digits = 0;

        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        while (i < n && v[i] >= '0' && v[i] <= '9') {
            if (++digits > HTTP1_MAX_CL_DIGITS)
                return fail(p, HTTP1_E_CL_INVALID, pos + i);
            value = value * 10 + (uint64_t)(v[i] - '0');
            i++;
        }
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (digits == 0 || (i < n && v[i] != ','))
            return fail(p, HTTP1_E_CL_INVALID, pos + i);
        if (h->has_content_length && h->content_length != value)
            return fail(p, HTTP1_E_CL_CONFLICT, pos + i);
        h->has_content_length = true;
        h->content_length = value;
        i++; /* past the comma, or past the end */
    }
    return 0;
}

/* Adds the codings of one Transfer-Encoding value to what earlier fields said. */
static int64_t note_transfer_encoding(struct http1_parser *p, const char *v, size_t n, size_t pos)
{
    struct http1_head *h = p->head;
    size_t i = 0;

    h->has_transfer_encoding = true;
    while (i <= n) {
        size_t start, end;

        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        start = i;
        while (i < n && v[i] != ',')
            i++;
        end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end == start)
            return fail(p, HTTP1_E_TE_INVALID, pos + start);
        p->te_codings++;
        h->chunked = eq_ci(v + start, end - start, "chunked");
        if (h->chunked) {
            if (p->te_chunked_seen)
                return fail(p, HTTP1_E_TE_INVALID, pos + start);
            p->te_chunked_seen = true;
        }
        i++;
    }
    return 0;
}

/* Records what a field means for framing and connection handling. */
static int64_t note_field(struct http1_parser *p, const char *buf, const struct http1_field *f)
{
    struct http1_head *h = p->head;
    const char *v = buf + f->value.off;
    size_t n = f->value.len;

    if (http1_span_eq_ci(buf, f->name, "content-length"))
        return note_content_length(p, v, n, f->value.off);
    if (http1_span_eq_ci(buf, f->name, "transfer-encoding"))
        return note_transfer_encoding(p, v, n, f->value.off);
    if (http1_span_eq_ci(buf, f->name, "connection")) {
        h->conn_close |= http1_list_has_token(v, n, "close");
        h->conn_keep_alive |= http1_list_has_token(v, n, "keep-alive");
        h->conn_upgrade |= http1_list_has_token(v, n, "upgrade");
    } else if (http1_span_eq_ci(buf, f->name, "upgrade")) {
        h->has_upgrade = true;
    } else if (http1_span_eq_ci(buf, f->name, "expect")) {
        h->expect_continue |= eq_ci(v, n, "100-continue");
    } else if (http1_span_eq_ci(buf, f->name, "host") && p->kind == HTTP1_REQUEST) {
        if (h->host_field >= 0)
            return fail(p, HTTP1_E_HOST_DUPLICATE, f->name.off);
        h->host_field = (int32_t)h->nfields;
    }
    return 0;
}

/* Checks and records a field line at buf[start..end). */
static int64_t parse_field_line(struct http1_parser *p, const char *buf, size_t start, size_t end)
{
    struct http1_head *h = p->head;
    struct http1_field *f;
    size_t i = start, vstart, vend;

    if (buf[start] == ' ' || buf[start] == '\t')
        return fail(p, HTTP1_E_OBS_FOLD, start);
    while (i < end && is_tchar((unsigned char)buf[i]))
        i++;
    if (i == start || i == end || buf[i] != ':')
        return fail(p, HTTP1_E_FIELD_NAME, i);
    vstart = i + 1;
    while (vstart < end && (buf[vstart] == ' ' || buf[vstart] == '\t'))
        vstart++;
    vend = end;
    while (vend > vstart && (buf[vend - 1] == ' ' || buf[vend - 1] == '\t'))
        vend--;
    for (size_t k = vstart; k < vend; k++)
        if (!is_field_vchar((unsigned char)buf[k]))
            return fail(p, HTTP1_E_FIELD_VALUE, k);
    if (h->nfields >= p->limits.max_fields || h->nfields >= p->cap_fields)
        return fail(p, HTTP1_E_TOO_MANY_FIELDS, start);
    f = &h->fields[h->nfields];
    f->name.off = (uint32_t)start;
    f->name.len = (uint32_t)(i - start);
    f->value.off = (uint32_t)vstart;
    f->value.len = (uint32_t)(vend - vstart);
    if (note_field(p, buf, f) < 0)
        return -1;
    h->nfields++;
    return 0;
}

/* Judges the framing facts once the head is complete. */
static int64_t finish_head(struct http1_parser *p, size_t head_len)
{
    struct http1_head *h = p->head;

    if (h->has_content_length && h->has_transfer_encoding)
        return fail(p, HTTP1_E_CL_AND_TE, 0);
    if (h->has_transfer_encoding && p->kind == HTTP1_REQUEST && (p->te_codings != 1 || !h->chunked))
        return fail(p, HTTP1_E_TE_NOT_CHUNKED, 0);
    h->head_len = (uint32_t)head_len;
    p->state = P_DONE;
    return (int64_t)head_len;
}

/* Handles one complete line buf[start..end) (line end excluded); next is past its LF. */
static int64_t parse_line(struct http1_parser *p, const char *buf, size_t start, size_t end,
                          size_t next)
{
    if (p->state == P_START) {
        if (end == start && p->kind == HTTP1_REQUEST) {
            /* Empty lines before a request line are tolerated (RFC 9112 section 2.2). */
            if (++p->skipped > HTTP1_MAX_EMPTY_LINES)
                return fail(p, HTTP1_E_METHOD, start);
            return 0;
        }
        p->state = P_FIELDS;
        return p->kind == HTTP1_REQUEST ? parse_request_line(p, buf, start, end)
                                        : parse_status_line(p, buf, start, end);
    }
    if (end == start)
        return finish_head(p, next);
    return parse_field_line(p, buf, start, end);
}

/*
 * Checks the line from p->line_start to the LF at buf[lf]: its length (start line only),
 * its line end and stray CRs, in that order, then hands its content to parse_line().
 */
static int64_t take_line(struct http1_parser *p, const char *buf, size_t lf)
{
    size_t start = p->line_start, end = lf;
    bool crlf = end > start && buf[end - 1] == '\r';
    const char *cr;

    if (crlf)
        end--;
    /* Checked first, as the early check in need_more() would have refused it anyway. */
    if (p->state == P_START && end - start > p->limits.max_line)
        return fail(p, HTTP1_E_LINE_TOO_LONG, start + p->limits.max_line);
    if (!crlf && !p->limits.allow_bare_lf)
        return fail(p, HTTP1_E_BARE_LF, lf);
    cr = memchr(buf + start, '\r', end - start);
    if (cr != NULL)
        return fail(p, HTTP1_E_BARE_CR, (size_t)(cr - buf));
    p->pos = p->line_start = (uint32_t)(lf + 1);
    return parse_line(p, buf, start, end, lf + 1);
}

/*
 * Where the search for the current line's LF must stop: a start line holds at most
 * max_line bytes plus CRLF, and every line of a head ends within max_head bytes.
 */
static size_t scan_limit(const struct http1_parser *p, size_t len)
{
    size_t limit = p->limits.max_head;

    if (p->state == P_START && (size_t)p->line_start + p->limits.max_line + 2 < limit)
        limit = (size_t)p->line_start + p->limits.max_line + 2;
    return len < limit ? len : limit;
}

/*
 * Decides, with no LF in sight, whether more bytes could still make a valid head: a start
 * line may go on to max_line bytes and one CR, the head to max_head bytes.  Returns 0 to
 * wait or -1.  The answer depends only on the bytes, not on how they were split.
 */
static int64_t need_more(struct http1_parser *p, const char *buf)
{
    if (p->state == P_START) {
        size_t n = p->pos - p->line_start, max = p->limits.max_line;
        if (n > max + 1 || (n == max + 1 && buf[p->pos - 1] != '\r'))
            return fail(p, HTTP1_E_LINE_TOO_LONG, p->line_start + max);
    }
    if (p->pos >= p->limits.max_head)
        return fail(p, HTTP1_E_HEAD_TOO_LARGE, p->limits.max_head);
    return 0;
}

/* Parses the head incrementally, each byte scanned for LF once; see the header. */
int64_t http1_parse_head(struct http1_parser *p, const char *buf, size_t len)
{
    for (;;) {
        size_t stop;
        const char *lf = NULL;
        int64_t r;

        if (p->state == P_DONE)
            return (int64_t)p->head->head_len;
        if (p->state == P_ERROR)
            return -1;
        stop = scan_limit(p, len);
        if (p->pos < stop)
            lf = memchr(buf + p->pos, '\n', stop - p->pos);
        if (lf == NULL) {
            if (p->pos < stop)
                p->pos = (uint32_t)stop;
            return need_more(p, buf);
        }
        r = take_line(p, buf, (size_t)(lf - buf));
        if (r != 0)
            return r;
    }
}

/* The phrase for an error. */
const char *http1_error_str(enum http1_error err)
{
    switch (err) {
    case HTTP1_OK:
        return "no error";
    case HTTP1_E_LINE_TOO_LONG:
        return "request or status line too long";
    case HTTP1_E_HEAD_TOO_LARGE:
        return "header section too large";
    case HTTP1_E_TOO_MANY_FIELDS:
        return "too many header fields";
    case HTTP1_E_METHOD:
        return "invalid method";
    case HTTP1_E_TARGET:
        return "invalid request target";
    case HTTP1_E_VERSION:
        return "missing or invalid HTTP version (HTTP/0.9 is not supported)";
    case HTTP1_E_VERSION_UNSUPP:
        return "HTTP version not supported (use HTTP/1.1)";
    case HTTP1_E_STATUS:
        return "invalid status code";
    case HTTP1_E_BARE_CR:
        return "bare CR in the message head";
    case HTTP1_E_BARE_LF:
        return "line ends with LF without CR";
    case HTTP1_E_OBS_FOLD:
        return "obsolete line folding";
    case HTTP1_E_FIELD_NAME:
        return "invalid header field name";
    case HTTP1_E_FIELD_VALUE:
        return "control character in a header field value";
    case HTTP1_E_CL_INVALID:
        return "invalid Content-Length";
    case HTTP1_E_CL_CONFLICT:
        return "conflicting Content-Length values";
    case HTTP1_E_CL_AND_TE:
        return "Content-Length together with Transfer-Encoding";
    case HTTP1_E_TE_NOT_CHUNKED:
        return "Transfer-Encoding other than chunked";
    case HTTP1_E_TE_INVALID:
        return "invalid Transfer-Encoding";
    case HTTP1_E_HOST_DUPLICATE:
        return "more than one Host header";
    case HTTP1_E_CHUNK_SIZE:
        return "invalid chunk size";
    case HTTP1_E_CHUNK_EXT:
        return "invalid chunk extension";
    case HTTP1_E_CHUNK_DATA_END:
        return "chunk data not followed by CRLF";
    case HTTP1_E_TRAILER:
        return "invalid trailer section";
    }
    return "invalid message";
}

/* Prepares a chunked decoder. */
void http1_chunked_init(struct http1_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->state = C_SIZE;
    c->max_line = 4096;
    c->max_trailer = 65536;
}

/* True once the body is complete. */
bool http1_chunked_done(const struct http1_chunked *c)
{
    return c->state == C_DONE;
}

/* Records a chunked refusal; returns false for the caller to pass on. */
static bool chunk_fail(struct http1_chunked *c, enum http1_error err)
{
    c->state = C_ERROR;
    c->error = err;
    return false;
}

/* Value of a hex digit, or -1. */
static int hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = lower(ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* SP or HTAB: the whitespace (BWS) allowed around chunk-extension punctuation. */
static bool is_ws(unsigned char ch)
{
    return ch == ' ' || ch == '\t';
}

/* The size line ended: start the data, or the trailer section after the last chunk. */
static void chunk_size_done(struct http1_chunked *c)
{
    c->state = c->remaining > 0 ? C_DATA : C_TRAILER;
    c->line_len = 0;
    c->ndigits = 0;
}

/* Ends a framing line at CR (wait_lf then expects the LF) or at a bare LF, if allowed. */
static bool chunk_eol(struct http1_chunked *c, unsigned char ch, int wait_lf)
{
    if (ch == '\r') {
        c->state = wait_lf;
        return true;
    }
    if (!c->allow_bare_lf)
        return chunk_fail(c, HTTP1_E_BARE_LF);
    if (wait_lf == C_SIZE_LF)
        chunk_size_done(c);
    else
        c->state = wait_lf == C_TRAILER_LF ? C_TRAILER : C_DONE;
    return true;
}

/* Takes one hex digit of a chunk size: at most 16 digits and a value of at most 2^62. */
static bool chunk_digit(struct http1_chunked *c, int v)
{
    if (++c->ndigits > 16 || c->remaining > (HTTP1_MAX_CHUNK >> 4))
        return chunk_fail(c, HTTP1_E_CHUNK_SIZE);
    c->remaining = (c->remaining << 4) | (uint64_t)v;
    if (c->remaining > HTTP1_MAX_CHUNK)
        return chunk_fail(c, HTTP1_E_CHUNK_SIZE);
    c->state = C_SIZE_MORE;
    return true;
}

/* Takes one byte of a chunk size or of the whitespace that may follow it. */
static bool chunk_size_byte(struct http1_chunked *c, unsigned char ch)
{
    int v = hex_value(ch);

    if (v >= 0 && c->state != C_SIZE_BWS)
        return chunk_digit(c, v);
    if (c->state == C_SIZE)
        return chunk_fail(c, HTTP1_E_CHUNK_SIZE);
    if (ch == ';') {
        c->state = C_EXT_NAME_START;
        return true;
    }
    if (is_ws(ch)) {
        c->state = C_SIZE_BWS; /* "5 \r\n" is refused: BWS may only precede ";" */
        return true;
    }
    if ((ch == '\r' || ch == '\n') && c->state == C_SIZE_MORE)
        return chunk_eol(c, ch, C_SIZE_LF);
    return chunk_fail(c, HTTP1_E_CHUNK_SIZE);
}

/* Takes a byte inside a quoted-string extension value (RFC 9110 section 5.6.4). */
static bool chunk_quoted_byte(struct http1_chunked *c, unsigned char ch)
{
    if (c->state == C_EXT_QUOTED_ESC) {
        if (!is_field_vchar(ch))
            return chunk_fail(c, HTTP1_E_CHUNK_EXT);
        c->state = C_EXT_QUOTED;
    } else if (ch == '"') {
        c->state = C_EXT_AFTER_VALUE;
    } else if (ch == '\\') {
        c->state = C_EXT_QUOTED_ESC;
    } else if (!is_field_vchar(ch)) {
        return chunk_fail(c, HTTP1_E_CHUNK_EXT);
    }
    return true;
}

/* Takes the first byte after ";" or "=", where whitespace may come before the word. */
static bool chunk_ext_word_start(struct http1_chunked *c, unsigned char ch)
{
    if (is_tchar(ch))
        c->state = c->state == C_EXT_NAME_START ? C_EXT_NAME : C_EXT_TOKEN;
    else if (ch == '"' && c->state == C_EXT_VALUE_START)
        c->state = C_EXT_QUOTED;
    else if (!is_ws(ch))
        return chunk_fail(c, HTTP1_E_CHUNK_EXT);
    return true;
}

/* Takes one byte of the extensions: *( BWS ";" BWS name [ BWS "=" BWS value ] ). */
static bool chunk_ext_byte(struct http1_chunked *c, unsigned char ch)
{
    int st = c->state;
    bool in_name = st == C_EXT_NAME || st == C_EXT_AFTER_NAME;

    if (st == C_EXT_QUOTED || st == C_EXT_QUOTED_ESC)
        return chunk_quoted_byte(c, ch);
    if (st == C_EXT_NAME_START || st == C_EXT_VALUE_START)
        return chunk_ext_word_start(c, ch);
    if ((st == C_EXT_NAME || st == C_EXT_TOKEN) && is_tchar(ch))
        return true;
    if (is_ws(ch))
        c->state = in_name ? C_EXT_AFTER_NAME : C_EXT_AFTER_VALUE;
    else if (ch == ';')
        c->state = C_EXT_NAME_START;
    else if (ch == '=' && in_name)
        c->state = C_EXT_VALUE_START;
    else if (ch == '\r' || ch == '\n')
        return chunk_eol(c, ch, C_SIZE_LF);
    else
        return chunk_fail(c, HTTP1_E_CHUNK_EXT);
    return true;
}

/* Takes one byte of a size line, which max_line bounds, extensions included. */
static bool chunk_line_byte(struct http1_chunked *c, unsigned char ch)
{
    if (c->state == C_SIZE_LF) {
        if (ch != '\n')
            return chunk_fail(c, HTTP1_E_BARE_CR);
        chunk_size_done(c);
        return true;
    }
    if (ch != '\r' && ch != '\n' && ++c->line_len > c->max_line)
        return chunk_fail(c, c->state <= C_SIZE_MORE ? HTTP1_E_CHUNK_SIZE : HTTP1_E_CHUNK_EXT);
    if (c->state <= C_SIZE_BWS)
        return chunk_size_byte(c, ch);
    return chunk_ext_byte(c, ch);
}

/* Takes one of the two bytes that must follow chunk data. */
static bool chunk_data_end_byte(struct http1_chunked *c, unsigned char ch)
{
    if (c->state == C_DATA_CR && ch == '\r')
        c->state = C_DATA_LF;
    else if (ch == '\n' && (c->state == C_DATA_LF || c->allow_bare_lf))
        c->state = C_SIZE;
    else
        return chunk_fail(c, HTTP1_E_CHUNK_DATA_END);
    return true;
}

/* Takes one byte of the trailer section: field lines as in a head, then an empty line. */
static bool chunk_trailer_byte(struct http1_chunked *c, unsigned char ch)
{
    if (++c->trailer_len > c->max_trailer)
        return chunk_fail(c, HTTP1_E_TRAILER);
    switch (c->state) {
    case C_TRAILER:
        if (ch == '\r' || ch == '\n')
            return chunk_eol(c, ch, C_END_LF);
        if (!is_tchar(ch))
            return chunk_fail(c, HTTP1_E_TRAILER); /* folding, or not a field name */
        c->state = C_TRAILER_NAME;
        return true;
    case C_TRAILER_NAME:
        if (ch == ':')
            c->state = C_TRAILER_VALUE;
        else if (!is_tchar(ch))
            return chunk_fail(c, HTTP1_E_TRAILER);
        return true;
    case C_TRAILER_VALUE:
        if (ch == '\r' || ch == '\n')
            return chunk_eol(c, ch, C_TRAILER_LF);
        if (!is_field_vchar(ch))
            return chunk_fail(c, HTTP1_E_TRAILER);
        return true;
    default: /* C_TRAILER_LF, C_END_LF */
        if (ch != '\n')
            return chunk_fail(c, HTTP1_E_BARE_CR);
        c->state = c->state == C_TRAILER_LF ? C_TRAILER : C_DONE;
        return true;
    }
}

/* Feeds one framing byte to whichever part of the grammar the decoder is in. */
static bool chunk_byte(struct http1_chunked *c, unsigned char ch)
{
    if (c->state <= C_SIZE_LF)
        return chunk_line_byte(c, ch);
    if (c->state == C_DATA_CR || c->state == C_DATA_LF)
        return chunk_data_end_byte(c, ch);
    return chunk_trailer_byte(c, ch);
}

/* Decodes framing or hands out data; see the header for the contract. */
int64_t http1_chunked_step(struct http1_chunked *c, const char *in, size_t len, size_t *data_len)
{
    size_t used = 0;

    *data_len = 0;
    if (c->state == C_ERROR)
        return -1;
    if (c->state == C_DATA && len > 0) {
        size_t n = len < c->remaining ? len : (size_t)c->remaining;
        if (n > INT64_MAX)
            n = INT64_MAX;
        c->remaining -= n;
        if (c->remaining == 0)
            c->state = C_DATA_CR;
        *data_len = n;
        return (int64_t)n;
    }
    /* Data is handed out by a call of its own; the end of the body stops the decoder. */
    while (used < len && used < INT64_MAX && c->state != C_DATA && c->state != C_DONE) {
        if (!chunk_byte(c, (unsigned char)in[used]))
            return -1;
        used++;
    }
    return (int64_t)used;
}

/* Checks host bytes: a DNS-style name of letters, digits, '-', '.', '_'. */
static bool valid_reg_name(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.' || ch == '_'))
            return false;
    }
    return true;
}

/* Parses a decimal port 1..65535 from s[0..n). */
static int parse_port(const char *s, size_t n, uint16_t *out)
{
    uint32_t v = 0;

    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

/* Splits an authority at buf[off..off+n) into host and port (port_required or default). */
static int parse_authority_at(const char *buf, uint32_t off, uint32_t n, bool port_required,
                              uint16_t default_port, struct http1_target *out)
{
    const char *a = buf + off;
    uint32_t host_end, port_start;

    if (n > 0 && a[0] == '[') {
        const char *close = memchr(a, ']', n);
        char v6[64];
        unsigned char tmp[16];
        size_t len;

        if (close == NULL)
            return -1;
        len = (size_t)(close - a) - 1;
        if (len == 0 || len >= sizeof(v6))
            return -1;
        memcpy(v6, a + 1, len);
        v6[len] = '\0';
        if (inet_pton(AF_INET6, v6, tmp) != 1)
            return -1;
        out->host.off = off + 1;
        out->host.len = (uint32_t)len;
        out->host_is_ipv6 = true;
        host_end = (uint32_t)(close - a) + 1;
        if (host_end != n && a[host_end] != ':')
            return -1;
    } else {
        const char *colon = memchr(a, ':', n);
        host_end = colon != NULL ? (uint32_t)(colon - a) : n;
        if (!valid_reg_name(a, host_end))
            return -1;
        out->host.off = off;
        out->host.len = host_end;
    }
    if (host_end == n) {
        if (port_required)
            return -1;
        out->port = default_port;
        return 0;
    }
    port_start = host_end + 1;
    return parse_port(a + port_start, n - port_start, &out->port);
}

/* Splits an absolute-form http:// target. */
int http1_parse_absolute_target(const char *buf, struct http1_span span, struct http1_target *out)
{
    const char *t = buf + span.off;
    uint32_t n = span.len, auth_start = 7, auth_end;

    memset(out, 0, sizeof(*out));
    if (n < 8 || !eq_ci(t, 7, "http://"))
        return -1;
    if (memchr(t, '#', n) != NULL)
        return -1;
    auth_end = auth_start;
    while (auth_end < n && t[auth_end] != '/' && t[auth_end] != '?')
        auth_end++;
    if (memchr(t + auth_start, '@', auth_end - auth_start) != NULL)
        return -1;
    out->scheme.off = span.off;
    out->scheme.len = 4;
    if (parse_authority_at(buf, span.off + auth_start, auth_end - auth_start, false, 80, out) < 0)
        return -1;
    out->path.off = span.off + auth_end;
    out->path.len = n - auth_end;
    return 0;
}

/* Splits an authority-form CONNECT target. */
int http1_parse_authority(const char *buf, struct http1_span span, struct http1_target *out)
{
    memset(out, 0, sizeof(*out));
    if (memchr(buf + span.off, '@', span.len) != NULL ||
        memchr(buf + span.off, '/', span.len) != NULL)
        return -1;
    return parse_authority_at(buf, span.off, span.len, true, 0, out);
}

/* The next element of a comma-separated list, without its whitespace. */
bool http1_list_next(const char *v, size_t n, size_t *pos, struct http1_span *elem)
{
    size_t i = *pos;

    for (;;) {
        size_t start, end;

        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        if (i >= n) {
            *pos = i;
            return false;
        }
        start = i;
        while (i < n && v[i] != ',')
            i++;
        end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end > start) {
            *pos = i;
            elem->off = (uint32_t)start;
            elem->len = (uint32_t)(end - start);
            return true;
        }
    }
}

/* True when the comma-separated list holds token. */
bool http1_list_has_token(const char *v, size_t n, const char *token)
{
    struct http1_span e;
    size_t pos = 0;

    while (http1_list_next(v, n, &pos, &e))
        if (eq_ci(v + e.off, e.len, token))
            return true;
    return false;
}

/* True when the span equals lit, ASCII case-insensitively. */
bool http1_span_eq_ci(const char *buf, struct http1_span s, const char *lit)
{
    return eq_ci(buf + s.off, s.len, lit);
}
