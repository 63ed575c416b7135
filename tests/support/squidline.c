/* A reader of Squid native access.log lines; see squidline.h. */
#include "squidline.h"

#include <string.h>

/* Splits a line; see the header. */
int squidline_split(const char *line, size_t len, struct squidline_col cols[SQUIDLINE_COLUMNS],
                    const char **why)
{
    size_t k = 0, start = 0;

    if (len == 0 || line[len - 1] != '\n') {
        *why = "the line does not end in a newline";
        return -1;
    }
    for (size_t i = 0; i + 1 < len; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] >= 0x7f) {
            *why = "a byte outside printable ASCII";
            return -1;
        }
    for (size_t i = 0; i < len; i++) {
        if (line[i] != ' ' && line[i] != '\n')
            continue;
        /* The blanks before the elapsed column (%6tr) are Squid's own padding. */
        if (k == 1 && i == start && line[i] == ' ') {
            start = i + 1;
            continue;
        }
        if (i == start) {
            *why = "an empty column (two spaces, or one at an end)";
            return -1;
        }
        if (k == SQUIDLINE_COLUMNS) {
            *why = "more than ten columns";
            return -1;
        }
        cols[k].p = line + start;
        cols[k].n = i - start;
        k++;
        start = i + 1;
    }
    if (k != SQUIDLINE_COLUMNS) {
        *why = "fewer than ten columns";
        return -1;
    }
    return 0;
}

/* The value of an upper-case hex digit, or -1. */
static int hexval(char c)
{
    const char *digits = "0123456789ABCDEF", *p = c != '\0' ? strchr(digits, c) : NULL;

    return p != NULL ? (int)(p - digits) : -1;
}

/* Decodes a column; see the header. */
long squidline_decode(struct squidline_col col, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < col.n; i++) {
        int hi, lo;

        if (col.p[i] != '%') {
            out[o++] = col.p[i];
            continue;
        }
        if (i + 2 >= col.n || (hi = hexval(col.p[i + 1])) < 0 || (lo = hexval(col.p[i + 2])) < 0)
            return -1;
        out[o++] = (char)(hi << 4 | lo);
        i += 2;
    }
    out[o] = '\0';
    return (long)o;
}
