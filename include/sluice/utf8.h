/*
 * UTF-8 as the reports write it: the audit trail's JSON and the metrics' label values keep
 * well-formed sequences and stand in for every other byte.
 */
#ifndef SLUICE_UTF8_H
#define SLUICE_UTF8_H

#include <stddef.h>

/*
 * The length of the well-formed UTF-8 sequence at s (n bytes there, at least one): 1 for
 * ASCII, 2 to 4 for a sequence with no overlong form, no surrogate and nothing past
 * U+10FFFF, or 0 when s does not start one.
 */
size_t utf8_seq_len(const unsigned char *s, size_t n);

#endif /* SLUICE_UTF8_H */
