/*
 * libFuzzer target for procid_command_line(): a local process chooses its own arguments,
 * and they go into every record of its requests.  The input, cut at NUL bytes, is the
 * argument list as /proc gives it (at most PROCID_MAX_ARGS bytes).  The line it makes into
 * small capacities (1 to 64, where a cut happens) and into one of 1024 is NUL-terminated
 * inside the capacity; and in the large one, the argument after "--password" never shows:
 * its longest run of letters and digits, when 8 or more long and found once in the input,
 * is not in the line.  (The value whole is no test: the line's own spaces, quotes and
 * "<redacted>" can make the same text around other arguments.)
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "sluice/procid.h"
#include "fuzzcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * How many times s (n bytes) is in the arguments data holds, joined with spaces as the
 * line joins them: a value may also show as the end of one argument, the space, and the
 * start of the next.
 */
static size_t occurrences(const uint8_t *data, size_t size, const char *s, size_t n)
{
    static uint8_t joined[PROCID_MAX_ARGS];
    size_t count = 0, len = size < sizeof(joined) ? size : sizeof(joined);

    for (size_t i = 0; i < len; i++)
        joined[i] = data[i] == '\0' ? ' ' : data[i];
    for (const uint8_t *p = joined; (p = memmem(p, len - (size_t)(p - joined), s, n)) != NULL; p++)
        count++;
    return count;
}

/* True for the bytes of a run looked for: letters and digits. */
static bool alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/*
 * What of the value after an argument "--password" must never show: its longest run of
 * letters and digits, into run; NULL when there is no such value, or the run is shorter
 * than 8, found more than once (it may show as another argument, rightly), or part of
 * "<redacted>".
 */
static const char *planted(const struct procid_proc *p, const uint8_t *data, size_t size,
                           char run[PROCID_MAX_ARGS])
{
    for (size_t off = 0; off < p->args_len; off += strlen(p->args + off) + 1) {
        size_t next = off + strlen(p->args + off) + 1, best = 0, at = 0;
        const char *v = p->args + next;

        if (strcmp(p->args + off, "--password") != 0 || next >= p->args_len)
            continue;
        for (size_t i = 0, n = 0; v[i] != '\0'; i++) {
            n = alnum(v[i]) ? n + 1 : 0;
            if (n > best) {
                best = n;
                at = i + 1 - n;
            }
        }
        if (best < 8)
            return NULL;
        memcpy(run, v + at, best);
        run[best] = '\0';
        if (occurrences(data, size, run, best) != 1 || strstr("redacted", run) != NULL)
            return NULL;
        return run;
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct procid_proc p;
    static char run[PROCID_MAX_ARGS];
    static const size_t caps[] = {1, 2, 3, 4, 5, 6, 8, 11, 16, 24, 33, 64};
    char out[1024];
    const char *secret;

    memset(&p, 0, sizeof(p));
    p.args_len = size < sizeof(p.args) - 1 ? size : sizeof(p.args) - 1;
    memcpy(p.args, data, p.args_len);
    if (p.args_len > 0 && p.args[p.args_len - 1] != '\0')
        p.args[p.args_len++] = '\0'; /* /proc ends the last argument with a NUL too */
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        size_t cap = caps[i];
        memset(out, 'x', sizeof(out));
        procid_command_line(&p, out, cap);
        CHECK(memchr(out, '\0', cap) != NULL);
        CHECK(out[cap] == 'x');
    }
    procid_command_line(&p, out, sizeof(out));
    CHECK(memchr(out, '\0', sizeof(out)) != NULL);
    secret = planted(&p, data, size, run);
    CHECK(secret == NULL || strlen(out) >= sizeof(out) - 4 || strstr(out, secret) == NULL);
    return 0;
}
