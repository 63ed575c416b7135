/*
 * URL path normaliser; see include/sluice/urlpath.h.
 *
 * The path is walked twice, segment by segment from right to left.  Going that way, a
 * segment's fate is known when it is reached: it survives unless a ".." to its right is
 * still waiting for a segment to remove (the ".."s are counted, like closing brackets).
 * The first walk adds up the output length and the flags without writing anything, so a
 * buffer that holds the final text is enough even when the input names long segments
 * that a ".." later removes; the second walk writes the survivors from the end of the
 * path backwards.  Nothing needs a stack, so nothing is allocated.
 *
 * Within a segment, the input is read as items: a raw byte, or a %XX.  What a segment is
 * (empty, ".", "..", a dot parameter) and which flags it raises are decided on the items,
 * that is after decoding, so "%2e%2E" is ".." and "%2e%2e;x" is a dot parameter.
 */
#include "sluice/urlpath.h"

#include <limits.h>
#include <stdbool.h>
#include <string.h>

/* What one item of a segment stands for once decoded. */
enum item_kind {
    ITEM_LIT, /* a byte written as itself: raw, or decoded (decodes_to_itself) */
    ITEM_ENC, /* a byte that stays percent-encoded, written %XX in upper case */
    ITEM_BAD, /* a '%' not followed by two hex digits */
};

/* One item: a raw byte or a %XX of the input. */
struct item {
    enum item_kind kind;
    unsigned char byte; /* the byte it stands for; '%' for ITEM_BAD */
    size_t next;        /* input offset just past it */
};

/* What a segment is, once decoded. */
enum seg_kind {
    SEG_EMPTY,  /* nothing between two slashes */
    SEG_DOT,    /* "." */
    SEG_DOTDOT, /* ".." */
    SEG_NORMAL, /* anything else, kept */
};

/* Flag names, in bit order. */
static const char *const flag_names[] = {
    "encoded-slash", "backslash",    "nul",      "above-root",      "dot-param",
    "bad-percent",   "empty-dotdot", "overlong", "leading-slashes",
};

/* The value of hex digit c, or -1 when c is not one. */
static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/*
 * True for the characters whose %XX a path-routing server reads as the character itself:
 * RFC 3986's unreserved ones, and the sub-delimiters, ':' and '@' that a path segment may
 * hold raw (pchar) -- an origin decodes "/logs%3Awrite" to "/logs:write" before routing.
 * ';' stays encoded (it starts segment parameters, see urlpath_strip_params), as do '/',
 * '?', '#', '%' and everything else.
 */
static bool decodes_to_itself(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-._~!$&'()*+,=:@", c) != NULL);
}

/* True when an item is written as a hex digit, so that a bare '%' before it could pair. */
static bool item_is_hex(const struct item *it)
{
    return it->kind == ITEM_LIT && hex_value(it->byte) >= 0;
}

/* Reads the item at in[p], p < e, without looking past the segment end e. */
static void item_at(const char *in, size_t p, size_t e, struct item *it)
{
    unsigned char c = (unsigned char)in[p];
    int hi, lo;

    it->kind = ITEM_LIT;
    it->byte = c;
    it->next = p + 1;
    if (c != '%')
        return;
    it->kind = ITEM_BAD;
    if (e - p < 3)
        return;
    hi = hex_value((unsigned char)in[p + 1]);
    lo = hex_value((unsigned char)in[p + 2]);
    if (hi < 0 || lo < 0)
        return;
    it->byte = (unsigned char)(hi << 4 | lo);
    it->kind = decodes_to_itself(it->byte) ? ITEM_LIT : ITEM_ENC;
    it->next = p + 3;
}

/*
 * True when a '%' whose item ends at p must be written %25: when the next two items of
 * the segment would be written as hex digits, so that a bare '%' would make a new %XX.
 */
static bool bad_needs_escape(const char *in, size_t p, size_t e)
{
    struct item a, b;

    if (p >= e)
        return false;
    item_at(in, p, e, &a);
    if (!item_is_hex(&a) || a.next >= e)
        return false;
    item_at(in, a.next, e, &b);
    return item_is_hex(&b);
}

/*
 * True when byte b after byte prev is part of an overlong UTF-8 sequence: C0 and C1 only
 * ever start one, E0 80..9F, F0 80..8F, F8 80..87 and FC 80..83 are the 3- to 6-byte
 * forms that encode what fits in fewer bytes (old decoders turned %C0%AE into '.').
 */
static bool is_overlong(unsigned char prev, unsigned char b)
{
    if (b == 0xc0 || b == 0xc1)
        return true;
    if (b < 0x80 || b > 0xbf)
        return false;
    return (prev == 0xe0 && b <= 0x9f) || (prev == 0xf0 && b <= 0x8f) ||
           (prev == 0xf8 && b <= 0x87) || (prev == 0xfc && b <= 0x83);
}

/* Writes the item it (a '%' as %25 when escape) at dst[n] when dst is set; returns its length. */
static size_t item_put(const struct item *it, bool escape, char *dst, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";

    if (it->kind == ITEM_LIT || (it->kind == ITEM_BAD && !escape)) {
        if (dst != NULL)
            dst[n] = (char)it->byte;
        return 1;
    }
    if (dst != NULL) {
        dst[n] = '%';
        dst[n + 1] = hex[it->byte >> 4];
        dst[n + 2] = hex[it->byte & 0xf];
    }
    return 3;
}

/*
 * Reads the segment in[s..e): sets *kind, ORs its flags into *flags, writes its output
 * to dst[0..) when dst is not NULL, and returns the output length.
 */
static size_t seg_scan(const char *in, size_t s, size_t e, char *dst, enum seg_kind *kind,
                       unsigned *flags)
{
    struct item it;
    size_t n = 0, items = 0, lead_dots = 0, p = s;
    bool in_lead = true; /* every item so far has been a '.' */
    unsigned char prev = 0;

    while (p < e) {
        bool escape = false;
        item_at(in, p, e, &it);
        if (in_lead && it.kind == ITEM_LIT && it.byte == '.') {
            lead_dots++;
        } else if (in_lead) {
            /* Tomcat and Spring cut a segment at ';' before they look for dot segments;
             * %3B counts too, for servers that decode first. */
            in_lead = false;
            if (it.byte == ';' && lead_dots <= 2)
                *flags |= URLPATH_F_DOT_PARAM;
        }
        if (it.kind == ITEM_BAD) {
            *flags |= URLPATH_F_BAD_PERCENT;
            escape = bad_needs_escape(in, it.next, e);
        } else if (it.byte == '\0') {
            *flags |= URLPATH_F_NUL;
        } else if (it.kind == ITEM_ENC && (it.byte == '/' || it.byte == '\\')) {
            *flags |= URLPATH_F_ENCODED_SLASH;
        } else if (it.kind == ITEM_LIT && it.byte == '\\') {
            *flags |= URLPATH_F_BACKSLASH;
        }
        if (is_overlong(prev, it.byte))
            *flags |= URLPATH_F_OVERLONG;
        prev = it.byte;
        n += item_put(&it, escape, dst, n);
        items++;
        p = it.next;
    }
    if (items == 0)
        *kind = SEG_EMPTY;
    else if (in_lead && items == 1)
        *kind = SEG_DOT;
    else if (in_lead && items == 2)
        *kind = SEG_DOTDOT;
    else
        *kind = SEG_NORMAL;
    return n;
}

/*
 * Walks the path segments of in[start..end) from right to left and returns the length of
 * the normalised path, ORing the flags into *flags; when dst is not NULL, also writes the
 * path into dst[0..plen), plen being what the walk without dst returned.
 */
static size_t path_walk(const char *in, size_t start, size_t end, char *dst, size_t plen,
                        unsigned *flags)
{
    size_t e = end, total = 1, pos = plen, pending = 0, dotdots = 0;
    bool last = true; /* the segment at hand is the path's last one */

    for (;;) {
        size_t s = e, n;
        enum seg_kind kind;

        while (s > start && in[s - 1] != '/')
            s--;
        n = seg_scan(in, s, e, NULL, &kind, flags);
        if (kind == SEG_EMPTY && !last && dotdots > 0) {
            /* Merged first, the ".." removes the segment before the slashes; in RFC 3986 it
             * removes the empty segment between them. */
            *flags |= URLPATH_F_EMPTY_DOTDOT;
        } else if (kind == SEG_DOTDOT) {
            pending++;
            dotdots++;
        } else if (kind == SEG_NORMAL && pending > 0) {
            pending--;
        } else if (kind == SEG_NORMAL) {
            /* Each kept segment ends in '/', except a last one: a path ending in a dot
             * segment or a slash names a directory. */
            total += n + !last;
            if (dst != NULL) {
                if (!last)
                    dst[--pos] = '/';
                pos -= n;
                seg_scan(in, s, e, dst + pos, &kind, flags);
            }
        }
        if (s == start)
            break;
        e = s - 1;
        last = false;
    }
    if (pending > 0)
        *flags |= URLPATH_F_ABOVE_ROOT;
    if (dst != NULL)
        dst[--pos] = '/';
    return total;
}

/*
 * True when the path in[start..end) (start just past its first '/'), its dot segments
 * resolved as RFC 3986 section 5.2.4 does (empty segments kept), starts with an empty
 * segment that more follows: "/.//v1/admin" and "/a/..//v1/admin" become "//v1/admin",
 * which a server that resolves dots and then reads the target as a URL reference takes
 * for the host v1.  The resolved path is a stack of "empty" marks of which the first 256
 * are kept: deeper ones are only counted, as only the first and the depth are asked.
 */
static bool path_resolves_to_leading_slashes(const char *in, size_t start, size_t end)
{
    bool empty[256];
    size_t depth = 0;
    unsigned ignored = 0;

    for (size_t s = start; s <= end;) {
        size_t e = s;
        enum seg_kind kind;

        while (e < end && in[e] != '/')
            e++;
        seg_scan(in, s, e, NULL, &kind, &ignored);
        if (kind == SEG_DOTDOT) {
            if (depth > 0)
                depth--;
        } else if (kind != SEG_DOT) {
            if (depth < sizeof(empty) / sizeof(empty[0]))
                empty[depth] = kind == SEG_EMPTY;
            depth++;
        }
        s = e + 1;
    }
    return depth > 1 && empty[0];
}

/* Normalises a request target for policy matching. */
int urlpath_normalize(const char *in, size_t len, char *out, size_t cap, unsigned *flags)
{
    const char *q = len > 0 ? memchr(in, '?', len) : NULL;
    size_t qpos = q != NULL ? (size_t)(q - in) : len;
    size_t start = qpos > 0 && in[0] == '/' ? 1 : 0;
    size_t plen, total;
    unsigned seen = 0, again = 0;

    plen = path_walk(in, start, qpos, NULL, 0, &seen);
    /* The walk merges the empty first segment like any other; a parser that reads the
     * target as a URL reference takes the segment after it for a host name. */
    /* Resolving dot segments can only bring an empty segment (a "//" in the target) to
     * the front when there is a dot segment, spelled with '.' or '%': most paths have
     * neither, and take no second pass. */
    if ((qpos >= 2 && in[0] == '/' && in[1] == '/') ||
        (start == 1 && memmem(in, qpos, "//", 2) != NULL &&
         (memchr(in, '.', qpos) != NULL || memchr(in, '%', qpos) != NULL) &&
         path_resolves_to_leading_slashes(in, 1, qpos)))
        seen |= URLPATH_F_LEADING_SLASHES;
    total = plen + (len - qpos);
    if (flags != NULL)
        *flags |= seen;
    if (out == NULL || total >= cap || total > INT_MAX)
        return -1;
    path_walk(in, start, qpos, out, plen, &again);
    if (len > qpos)
        memcpy(out + plen, in + qpos, len - qpos);
    out[total] = '\0';
    return (int)total;
}

/* Reads a path as a server that never resolves dot segments does; see the header. */
int urlpath_literal(const char *in, size_t len, char *out, size_t cap)
{
    const char *q = len > 0 ? memchr(in, '?', len) : NULL;
    size_t qpos = q != NULL ? (size_t)(q - in) : len;
    size_t s = qpos > 0 && in[0] == '/' ? 1 : 0, n = 1;
    unsigned flags = 0; /* urlpath_normalize reports them */

    if (cap < 2)
        return -1;
    out[0] = '/';
    while (s <= qpos) {
        size_t e = s, w;
        enum seg_kind kind;

        while (e < qpos && in[e] != '/')
            e++;
        w = seg_scan(in, s, e, NULL, &kind, &flags);
        if (kind != SEG_EMPTY) {
            size_t sep = out[n - 1] != '/';
            if (n + sep + w >= cap)
                return -1;
            if (sep)
                out[n++] = '/';
            n += seg_scan(in, s, e, out + n, &kind, &flags);
        }
        s = e + 1;
    }
    /* A path that ends in a slash names a directory, here as in the normal form. */
    if (qpos > 0 && in[qpos - 1] == '/' && out[n - 1] != '/') {
        if (n + 1 >= cap)
            return -1;
        out[n++] = '/';
    }
    if (n + (len - qpos) >= cap || n + (len - qpos) > INT_MAX)
        return -1;
    memcpy(out + n, in + qpos, len - qpos);
    n += len - qpos;
    out[n] = '\0';
    return (int)n;
}

/* Removes the parameters of every path segment; see the header. */
int urlpath_strip_params(const char *in, size_t len, char *out, size_t cap)
{
    size_t n = 0, i = 0;
    bool in_params = false, in_query = false;

    while (i < len) {
        char c = in[i];
        if (!in_query && c == '?') {
            in_query = true;
            in_params = false;
        } else if (!in_query && c == '/') {
            in_params = false;
        } else if (!in_query && !in_params &&
                   (c == ';' || (c == '%' && i + 2 < len && in[i + 1] == '3' &&
                                 (in[i + 2] == 'B' || in[i + 2] == 'b')))) {
            in_params = true;
        }
        if (!in_params) {
            if (n + 1 >= cap)
                return -1;
            out[n++] = c;
        }
        i++;
    }
    if (n >= cap || n > INT_MAX)
        return -1;
    out[n] = '\0';
    return (int)n;
}

/* Writes every flag name of a set, comma-separated. */
size_t urlpath_flags_format(unsigned flags, char *out, size_t cap)
{
    char buf[128];
    size_t n = 0, k;

    for (size_t i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]); i++) {
        if (!(flags & (1u << i)))
            continue;
        k = strlen(flag_names[i]);
        if (n > 0)
            buf[n++] = ',';
        memcpy(buf + n, flag_names[i], k);
        n += k;
    }
    if (n == 0) {
        memcpy(buf, "none", 4);
        n = 4;
    }
    if (cap > 0) {
        k = n < cap - 1 ? n : cap - 1;
        memcpy(out, buf, k);
        out[k] = '\0';
    }
    return n;
}
