/*
 * Strict HTTP/1.1 message framing (RFC 9112).
 *
 * A resumable, allocation-free parser for request and response heads that returns spans
 * (offsets into the caller's buffer), a chunked-body decoder, and the small helpers the
 * forwarder needs to rewrite a head (request-target forms, token lists).  Everything that
 * could let two parsers disagree about where a message ends is refused, never repaired.
 */
#ifndef SLUICE_HTTP1_H
#define SLUICE_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Which start line a parser expects. */
enum http1_kind {
    HTTP1_REQUEST,  /* method SP request-target SP HTTP-version */
    HTTP1_RESPONSE, /* HTTP-version SP status-code SP [reason-phrase] */
};

/* Why a message was refused; http1_error_str() gives the phrase a client sees. */
enum http1_error {
    HTTP1_OK = 0,
    HTTP1_E_LINE_TOO_LONG,   /* request or status line longer than limits.max_line */
    HTTP1_E_HEAD_TOO_LARGE,  /* header section longer than limits.max_head */
    HTTP1_E_TOO_MANY_FIELDS, /* more than limits.max_fields header fields */
    HTTP1_E_METHOD,          /* empty method or a byte outside RFC 9110's tchar set */
    HTTP1_E_TARGET,          /* empty request-target or a control byte or space in it */
    HTTP1_E_VERSION,         /* missing (HTTP/0.9) or malformed HTTP-version */
    HTTP1_E_VERSION_UNSUPP,  /* well-formed HTTP-version other than 1.0 or 1.1 */
    HTTP1_E_STATUS,          /* status code that is not three digits 100..999 */
    HTTP1_E_BARE_CR,         /* CR not followed by LF */
    HTTP1_E_BARE_LF,         /* LF without CR where bare LF is not allowed */
    HTTP1_E_OBS_FOLD,        /* obsolete line folding (field line starts with SP/HTAB) */
    HTTP1_E_FIELD_NAME,      /* empty name, a non-tchar byte, or space before the colon */
    HTTP1_E_FIELD_VALUE,     /* NUL or another control byte in a field value */
    HTTP1_E_CL_INVALID,      /* Content-Length that is not plain digits, or overflows */
    HTTP1_E_CL_CONFLICT,     /* several Content-Length values that differ */
    HTTP1_E_CL_AND_TE,       /* Content-Length together with Transfer-Encoding */
    HTTP1_E_TE_NOT_CHUNKED,  /* request Transfer-Encoding other than exactly "chunked" */
    HTTP1_E_TE_INVALID,      /* chunked applied twice, or an empty coding in the list */
    HTTP1_E_HOST_DUPLICATE,  /* more than one Host field in a request */
    HTTP1_E_CHUNK_SIZE,      /* chunk size missing, not hex, or overflowing */
    HTTP1_E_CHUNK_EXT,       /* chunk extension too long or with a control byte */
    HTTP1_E_CHUNK_DATA_END,  /* chunk data not followed by CRLF */
    HTTP1_E_TRAILER,         /* malformed or oversized trailer section */
};

/* A byte range of the buffer handed to the parser; offsets survive the buffer moving. */
struct http1_span {
    uint32_t off; /* offset from the first byte of the message */
    uint32_t len; /* length in bytes */
};

/* One header field line; the value has surrounding whitespace trimmed. */
struct http1_field {
    struct http1_span name;
    struct http1_span value;
};

/* Bounds a parser enforces; http1_limits_default() gives the documented defaults. */
struct http1_limits {
    uint32_t max_line;   /* start line, CRLF excluded (default 8192) */
    uint32_t max_head;   /* whole head: start line, fields and the empty line (default 65536) */
    uint32_t max_fields; /* header field lines (default 100) */
    bool allow_bare_lf;  /* accept LF alone as a line end (responses from old servers only) */
};

/* What a complete head says; all spans point into the buffer given to the parser. */
struct http1_head {
    /* Start line: method and target for requests, status and reason for responses. */
    struct http1_span method;
    struct http1_span target;
    unsigned status;
    struct http1_span reason;
    unsigned version_minor; /* 0 for HTTP/1.0, 1 for HTTP/1.1 */

    /* Field lines, in order, stored in the array the caller gave to http1_parser_init(). */
    struct http1_field *fields;
    uint32_t nfields;

    /* Framing and connection facts gathered while parsing. */
    uint64_t content_length;    /* valid when has_content_length */
    bool has_content_length;    /* one or more Content-Length fields, all equal */
    bool has_transfer_encoding; /* a Transfer-Encoding field was present */
    bool chunked;               /* final transfer coding is chunked */
    bool conn_close;            /* Connection lists "close" */
    bool conn_keep_alive;       /* Connection lists "keep-alive" */
    bool conn_upgrade;          /* Connection lists "upgrade" */
    bool has_upgrade;           /* an Upgrade field was present */
    bool expect_continue;       /* Expect: 100-continue (requests) */
    int32_t host_field;         /* index of the Host field in fields, or -1 */
    uint32_t head_len;          /* bytes of the whole head, final empty line included */
};

/* Resumable parser state: the caller passes the growing head again after every read. */
struct http1_parser {
    enum http1_kind kind;
    struct http1_limits limits;
    struct http1_head *head; /* filled in place; owned by the caller */
    uint32_t cap_fields;     /* capacity of head->fields */
    uint32_t pos;            /* bytes scanned so far; a call resumes here, never at 0 */
    uint32_t line_start;     /* start of the line being examined */
    uint32_t skipped;        /* empty lines skipped before a request line */
    int state;               /* internal; 0 = expecting the start line */
    uint32_t te_codings;     /* transfer codings seen so far, all fields together */
    bool te_chunked_seen;    /* "chunked" appeared among them */
    enum http1_error error;  /* why the last call failed */
    uint32_t error_pos;      /* offset of the offending byte */
};

/* Sets *lim to the defaults: 8 KiB line, 64 KiB head, 100 fields, bare LF refused. */
void http1_limits_default(struct http1_limits *lim);

/*
 * Prepares p to parse one head of the given kind into *head, whose field lines go into
 * fields[0..cap_fields).  head and fields stay owned by the caller and must outlive p.
 */
void http1_parser_init(struct http1_parser *p, enum http1_kind kind, const struct http1_limits *lim,
                       struct http1_head *head, struct http1_field *fields, uint32_t cap_fields);

/*
 * Parses the head at buf[0..len), resuming where the previous call stopped (buf must hold
 * the same bytes as before, possibly at another address, plus any new ones).
 * Returns the head length (> 0) once the empty line ending the head is seen, 0 if more
 * bytes are needed, or -1 on a malformed head (p->error and p->error_pos say why and where).
 * Never reads past buf[len - 1]; bytes after the head are left alone.  Never allocates.
 */
int64_t http1_parse_head(struct http1_parser *p, const char *buf, size_t len);

/* A short English phrase for err, suitable for a 400 body and a log line. */
const char *http1_error_str(enum http1_error err);

/* Decoder state for a chunked body (RFC 9112 section 7.1); trailers are checked, dropped. */
struct http1_chunked {
    int state;            /* internal */
    uint64_t remaining;   /* data bytes left in the current chunk */
    uint32_t line_len;    /* bytes seen on the current size or trailer line */
    uint32_t ndigits;     /* hex digits seen in the current chunk size */
    uint32_t trailer_len; /* bytes of trailer section seen */
    uint32_t max_line;    /* bound on a chunk-size line with extensions (default 4096) */
    uint32_t max_trailer; /* bound on the whole trailer section (default 65536) */
    bool allow_bare_lf;   /* accept LF alone in framing lines */
    enum http1_error error;
};

/* Prepares c for a new chunked body with default bounds; bare LF refused. */
void http1_chunked_init(struct http1_chunked *c);

/*
 * Feeds in[0..len) to the decoder.  Returns the number of bytes consumed (> 0 whenever
 * len > 0 and the body is not finished), or -1 on malformed framing (c->error says why).
 * If *data_len is set non-zero, in[0..*data_len) is body data and the call consumed
 * exactly those bytes; otherwise the consumed bytes were framing.  Once the last chunk
 * and the trailer section have been read, http1_chunked_done() is true and the decoder
 * consumes nothing more (returns 0), so the bytes after the body are left alone.
 */
int64_t http1_chunked_step(struct http1_chunked *c, const char *in, size_t len, size_t *data_len);

/* True once the last chunk and its trailer section have been consumed. */
bool http1_chunked_done(const struct http1_chunked *c);

/* Where a proxy request points: the parts of an absolute-form or authority-form target. */
struct http1_target {
    struct http1_span scheme; /* "http" (absolute-form only; empty for authority-form) */
    struct http1_span host;   /* host name or IP literal, IPv6 without its brackets */
    uint16_t port;            /* explicit port, or 80 for http absolute-form */
    bool host_is_ipv6;        /* host was a bracketed IPv6 literal */
    struct http1_span path;   /* path and query for origin-form ("/" when empty: len 0) */
};

/*
 * Splits an absolute-form target ("http://host[:port][/path?query]") found at
 * buf[span.off..] into *out.  Only the "http" scheme (any case) is accepted; userinfo,
 * an empty or malformed host, a fragment, and a port outside 1..65535 are refused.
 * Host bytes must be letters, digits, '-', '.', '_' or a bracketed IPv6 literal.
 * Returns 0 or -1.
 */
int http1_parse_absolute_target(const char *buf, struct http1_span span, struct http1_target *out);

/*
 * Splits an authority-form target ("host:port", "[v6]:port") for CONNECT into *out; the
 * port is required.  Same host rules as http1_parse_absolute_target().  Returns 0 or -1.
 */
int http1_parse_authority(const char *buf, struct http1_span span, struct http1_target *out);

/*
 * Steps through the comma-separated list v[0..n): from *pos, finds the next non-empty
 * element, sets *elem to it (offsets into v, surrounding whitespace left out) and moves
 * *pos past it.  Returns false when none is left.  Start with *pos = 0.
 */
bool http1_list_next(const char *v, size_t n, size_t *pos, struct http1_span *elem);

/* True when the comma-separated list v[0..n) holds token (ASCII case-insensitive, OWS ok). */
bool http1_list_has_token(const char *v, size_t n, const char *token);

/* True when span s of buf equals the NUL-terminated lit, ASCII case-insensitively. */
bool http1_span_eq_ci(const char *buf, struct http1_span s, const char *lit);

#endif /* SLUICE_HTTP1_H */
