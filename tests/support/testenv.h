/*
 * The environment of one integration test: a private temporary directory, the DNS stub,
 * a hosts file and a resolv.conf pointing at the stub, and the sluice process started
 * with them, so that no name lookup leaves the machine.
 *
 * Hosts file: 127.0.0.1 localhost origin.test; ::1 localhost6 origin6.test;
 * dual.test on ::1 and on 127.0.0.1 (in that order); de.test 127.0.1.1 and kp.test
 * 127.0.2.1, which the test GeoIP databases place in DE and KP.  nosuch.test is in neither.
 */
#ifndef SLUICE_TEST_TESTENV_H
#define SLUICE_TEST_TESTENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dnsstub.h"
#include "sluiceproc.h"

/* Owned by the test; testenv_free() releases everything it holds. */
struct testenv {
    char dir[256];            /* private temporary directory */
    char hosts_path[300];     /* the hosts file given to sluice */
    char resolv_path[300];    /* the resolv.conf given to sluice */
    struct dnsstub *dns;      /* the NXDOMAIN stub resolv.conf names */
    struct sluiceproc *proxy; /* the last sluice started, or NULL */
    uint16_t proxy_port;      /* its first listener's port */
};

/* Makes the directory, files and DNS stub.  Returns NULL on failure. */
struct testenv *testenv_new(void);

/*
 * Starts sluice with --listen 127.0.0.1:0 (unless args has --listen/-l), -w 2, -v,
 * --drain-timeout 2s (unless args has one), --resolv-conf, --hosts-file, then args
 * (NULL-terminated, may be NULL), and waits up to 15 s for its ready file.
 * Returns the process (also kept in env->proxy) or NULL, after dumping its log.
 */
struct sluiceproc *testenv_start_proxy(struct testenv *env, const char *const args[]);

/*
 * Stops env->proxy (SIGTERM, bounded wait, SIGKILL) and frees it.  Returns true when it
 * exited with status 0 and its log has no sanitizer report; otherwise dumps the log.
 */
bool testenv_stop_proxy(struct testenv *env);

/* Writes "<dir>/<name>" into buf[cap] and returns buf ("" when it does not fit). */
const char *testenv_path(const struct testenv *env, const char *name, char *buf, size_t cap);

/* Stops everything and removes the directory (kept when $SLUICE_IT_KEEP is set). */
void testenv_free(struct testenv *env);

#endif /* SLUICE_TEST_TESTENV_H */
