/*
 * A growable byte buffer for tests: bytes read from sockets, bodies, collected headers.
 * Always NUL-terminated after its last byte so it can be searched as a string.
 */
#ifndef SLUICE_TEST_TBUF_H
#define SLUICE_TEST_TBUF_H

#include <stdbool.h>
#include <stddef.h>

/* The buffer owns data; a zeroed struct tbuf is a valid empty buffer. */
struct tbuf {
    char *data; /* len bytes then a NUL; NULL while nothing was ever appended */
    size_t len; /* bytes held */
    size_t cap; /* bytes allocated, NUL included */
};

/* Appends n bytes; aborts the test process on allocation failure. */
void tbuf_append(struct tbuf *b, const void *p, size_t n);

/* Appends a NUL-terminated string. */
void tbuf_append_str(struct tbuf *b, const char *s);

/* Appends printf-formatted text. */
void tbuf_printf(struct tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Removes the first n bytes (all of them when n >= len). */
void tbuf_consume(struct tbuf *b, size_t n);

/* Empties the buffer and keeps its memory. */
void tbuf_reset(struct tbuf *b);

/* Frees the memory; the buffer is empty and usable again afterwards. */
void tbuf_free(struct tbuf *b);

/* Returns the contents as a C string ("" when empty); valid until the next change. */
const char *tbuf_str(const struct tbuf *b);

#endif /* SLUICE_TEST_TBUF_H */
