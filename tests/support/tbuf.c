/* Growable byte buffer for the test support library. */
#include "tbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for n more bytes plus the terminating NUL. */
static void tbuf_reserve(struct tbuf *b, size_t n)
{
    size_t need = b->len + n + 1;
    size_t cap = b->cap ? b->cap : 256;
    char *p;

    if (need <= b->cap)
        return;
    while (cap < need)
        cap *= 2;
    p = realloc(b->data, cap);
    if (p == NULL) {
        fprintf(stderr, "tbuf: out of memory (%zu bytes)\n", cap);
        abort();
    }
    b->data = p;
    b->cap = cap;
}

/* Appends n bytes and keeps the buffer NUL-terminated. */
void tbuf_append(struct tbuf *b, const void *p, size_t n)
{
    tbuf_reserve(b, n);
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* Appends a C string without its NUL. */
void tbuf_append_str(struct tbuf *b, const char *s)
{
    tbuf_append(b, s, strlen(s));
}

/* Appends formatted text, growing as needed. */
void tbuf_printf(struct tbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    tbuf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    (void)vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Drops the first n bytes, moving the rest to the front. */
void tbuf_consume(struct tbuf *b, size_t n)
{
    if (n >= b->len) {
        tbuf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

/* Empties the buffer but keeps the allocation. */
void tbuf_reset(struct tbuf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

/* Releases the allocation. */
void tbuf_free(struct tbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* Gives the contents as a string. */
const char *tbuf_str(const struct tbuf *b)
{
    return b->data != NULL ? b->data : "";
}
