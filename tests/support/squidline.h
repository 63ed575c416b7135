/*
 * A reader of Squid native access.log lines for the tests of sluice's Squid log: a line
 * is ten columns, each separated by one space (the elapsed time, second, may be padded
 * with more before it), none empty, ending in its one newline,
 * with nothing but printable ASCII in it; a column's %XX escapes decode to its bytes.
 */
#ifndef SLUICE_TEST_SQUIDLINE_H
#define SLUICE_TEST_SQUIDLINE_H

#include <stddef.h>

#define SQUIDLINE_COLUMNS 10

/* One column: where it starts in the line and its length. */
struct squidline_col {
    const char *p;
    size_t n;
};

/*
 * Splits line[0..len) into cols.  Returns 0, or -1 with *why when it is not one line of
 * exactly SQUIDLINE_COLUMNS columns.
 */
int squidline_split(const char *line, size_t len, struct squidline_col cols[SQUIDLINE_COLUMNS],
                    const char **why);

/*
 * Decodes col's %XX escapes into out (room for col.n + 1).  Returns the decoded length,
 * or -1 for a '%' not followed by two upper-case hex digits.
 */
long squidline_decode(struct squidline_col col, char *out);

#endif /* SLUICE_TEST_SQUIDLINE_H */
