/*
 * URL path normaliser: the one spelling of a request path that policy path rules are
 * matched against, and the ways a path can mean different things to different servers.
 *
 * A rule on the raw target is fooled by spelling: "/v1/../admin" and "/v1/%2e%2e/admin"
 * start with "/v1/", "/%74elemetry", "/./telemetry" and "/x/../telemetry" do not start
 * with "/telemetry".  The proxy matches rules on urlpath_normalize()'s output and refuses
 * (400) a target for which it reports any URLPATH_AMBIGUOUS flag: there, origin servers
 * disagree on what the path is, so no single normal form is right for all of them.
 *
 * Pure: never allocates, keeps no state, safe from any number of threads.
 */
#ifndef SLUICE_URLPATH_H
#define SLUICE_URLPATH_H

#include <stddef.h>

/* Ways a path can mean different things to different servers, as bits. */
enum urlpath_flag {
    URLPATH_F_ENCODED_SLASH = 1u << 0, /* %2F or %5C: one segment to some servers, two to others */
    URLPATH_F_BACKSLASH = 1u << 1,     /* a raw '\': IIS and others read it as '/' */
    URLPATH_F_NUL = 1u << 2,           /* %00 (or a raw NUL): C servers cut the path there */
    URLPATH_F_ABOVE_ROOT = 1u << 3,    /* a ".." that climbs above "/" */
    URLPATH_F_DOT_PARAM = 1u << 4,     /* "..;x", ".;x" or ";x": Java drops ";x", reads a dot
                                          or an empty segment */
    URLPATH_F_BAD_PERCENT = 1u << 5,   /* '%' not followed by two hex digits */
    URLPATH_F_EMPTY_DOTDOT = 1u << 6,  /* a ".." after a repeated slash ("/a//../b"): "/b" where
                                          slashes are merged first, "/a/b" under RFC 3986 */
    URLPATH_F_OVERLONG = 1u << 7,      /* overlong UTF-8 (%C0%AE, %E0%80%AE): old decoders read
                                          the ASCII character it spells, '.' or '/' */
    URLPATH_F_LEADING_SLASHES = 1u << 8, /* a path that starts with "//": a path to servers
                                            that merge slashes, a "//host/path" reference
                                            to WHATWG parsers (Node's new URL(target, base))
                                            and Python's urlsplit, which route "/path" */
};

/* Every flag: the proxy refuses a target with any of them. */
#define URLPATH_AMBIGUOUS ((unsigned)((1u << 9) - 1))

/* The flags whose cause normalising removes: they never come back from normalised output. */
#define URLPATH_RESOLVED                                                                           \
    ((unsigned)(URLPATH_F_ABOVE_ROOT | URLPATH_F_EMPTY_DOTDOT | URLPATH_F_LEADING_SLASHES))

/*
 * Normalises the origin-form target in[0..len) -- a path, optionally followed by "?query"
 * -- into out[0..cap) for policy matching.  The path (up to the first '?') is read as
 * segments between raw '/'s, as if it began with a '/' (so "" and "?q" are "/" and "/?q"):
 *  - a %XX of an unreserved character (ALPHA DIGIT - . _ ~), of a sub-delimiter other
 *    than ';' (! $ & ' ( ) * + , =), of ':' or of '@' is decoded: servers route on the
 *    decoded path, so "/logs%3Awrite" is "/logs:write"; every other %XX is kept, with
 *    upper-case hex digits (%2f -> %2F, %3b -> %3B, %c3%a9 -> %C3%A9); raw bytes,
 *    including '\', ';' and bytes >= 0x80, are kept as they are;
 *  - a '%' not followed by two hex digits is kept bare, or written %25 when decoding
 *    would otherwise put two hex digits after it ("%%34%31" -> "%2541", not "%41");
 *  - a segment that decodes to "." or ".." (".", "%2E", "..", ".%2e", "%2E%2e"...) is a
 *    dot segment and is removed as RFC 3986 section 5.2.4 says; a ".." at the root stays
 *    at the root ("/../a" -> "/a"); one that ends the path leaves a trailing slash
 *    ("/a/b/.." -> "/a/", "/a/." -> "/a/"); "...", ".hidden", "..;x" and "..%2F" are not
 *    dot segments;
 *  - empty segments are dropped before dot segments are resolved, so repeated slashes
 *    collapse ("//a///b" -> "/a/b", "/a//../b" -> "/b"); a trailing slash is kept; a
 *    path that starts with "//" is URLPATH_F_LEADING_SLASHES (repeated slashes further
 *    in are not: no parser reads an authority there);
 *  - the query ('?' onwards) is copied unchanged and not inspected.
 * Every ambiguity seen in the path is ORed into *flags (when flags is not NULL), also for
 * segments that a ".." then removes and also when -1 is returned.
 *
 * The output starts with '/', is at most len + 1 bytes (so cap = len + 2 always suffices),
 * and has, before its query, no "//", no "." or ".." segment, no %XX of a character it
 * decodes and no lower-case %xx.  It is a fixed point: if normalising in gives out and
 * the flags F, normalising out gives out again, byte for byte, and flags F2 that are a
 * subset of F holding nothing of URLPATH_RESOLVED.  F2 is exactly the flags whose spelling
 * is still in out: a %2F or %5C, a '\', a %00, a dot-parameter segment, an overlong
 * sequence, a bare '%'.  A flag whose only spelling was in a segment that a ".." removed
 * is not in F2 (the input was ambiguous, the output is not), nor is BAD_PERCENT when every
 * bad '%' was written %25.
 *
 * out must not overlap in; in may be NULL when len is 0.  Returns the length written (out
 * is NUL-terminated; out[0..length) may hold a NUL byte only when URLPATH_F_NUL is set), or
 * -1 when out cannot hold the output and its NUL.  Never allocates.
 */
int urlpath_normalize(const char *in, size_t len, char *out, size_t cap, unsigned *flags);

/*
 * Writes into out[0..cap) the origin-form target in[0..len) as a server that routes on the
 * path without resolving dot segments reads it: escapes decoded and repeated slashes
 * collapsed as urlpath_normalize does, but "." and ".." segments kept ("/admin/%2e%2e/v1/x"
 * -> "/admin/../v1/x", which such a server routes under /admin/).  An allow rule must hold
 * for this reading too.  Returns the length written (at most len + 1; out is NUL-
 * terminated), or -1 when out cannot hold it and its NUL.  Never allocates.
 */
int urlpath_literal(const char *in, size_t len, char *out, size_t cap);

/*
 * Writes into out[0..cap) the path in[0..len) (normally urlpath_normalize's output) as
 * Tomcat, Jetty and Spring read it: in every segment before the query, the parameters --
 * from a ';' or a %3B (any case) to the segment's end -- are removed ("/api;v=1/x;y" ->
 * "/api/x"); the query is copied unchanged.  A rule that blocks "/api/x" must see this
 * reading too.  Segments stay segments: one that would become empty, "." or ".." is a
 * URLPATH_F_DOT_PARAM one, which urlpath_normalize already reports.
 * Returns the length written (at most len; out is NUL-terminated), or -1 when out cannot
 * hold it and its NUL.  Never allocates; out must not overlap in.
 */
int urlpath_strip_params(const char *in, size_t len, char *out, size_t cap);

/*
 * Writes the names of every flag in flags, comma-separated ("encoded-slash,above-root"),
 * or "none", into out[0..cap) for messages and audit records.  The names are
 * "encoded-slash", "backslash", "nul", "above-root", "dot-param", "bad-percent",
 * "empty-dotdot", "overlong" and "leading-slashes"; unknown bits are left out.  Truncates but
 * always NUL-terminates when cap > 0; returns the length of the full text.
 */
size_t urlpath_flags_format(unsigned flags, char *out, size_t cap);

#endif /* SLUICE_URLPATH_H */
