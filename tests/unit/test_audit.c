/*
 * Unit tests for the access line, the record of what left the machine when no audit trail
 * is open: its exact fields for a tunnel and for a request whose client process is known,
 * the escaping of every field a network peer or a local process controls (a peer must not
 * forge a field or a line), each field's bound, and the bound of the whole line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sluice/audit.h"
#include "sluice/log.h"

/* What the record of r wrote on stderr: one line, its time stamp checked and taken off. */
static char *access_line(const struct audit_record *r)
{
    static char got[8192];
    FILE *f = tmpfile();
    int saved = dup(STDERR_FILENO);
    size_t n;

    assert_non_null(f);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
    log_set_level(LOGL_ERROR); /* -q: the record is written all the same */
    audit_emit(r);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    rewind(f);
    n = fread(got, 1, sizeof(got) - 1, f);
    fclose(f);
    got[n] = '\0';
    /* "2026-12-07T14:02:17.432Z notice access ...\n" */
    assert_true(n > 32);
    assert_int_equal(got[4], '-');
    assert_int_equal(got[10], 'T');
    assert_int_equal(got[19], '.');
    assert_memory_equal(got + 23, "Z notice ", 9);
    assert_int_equal(got[n - 1], '\n');
    assert_null(memchr(got, '\n', n - 1)); /* one line, whatever the fields held */
    got[n - 1] = '\0';
    return got + 32;
}

/* A tunnel's record, every optional field empty, as sluice makes it for one. */
static struct audit_record tunnel_record(void)
{
    return (struct audit_record){.client = "127.0.0.1:40000",
                                 .method = "CONNECT",
                                 .target = "localhost:18443",
                                 .is_connect = true,
                                 .host = "localhost",
                                 .port = 18443,
                                 .user = "",
                                 .status = 200,
                                 .sent = 741,
                                 .received = 4387,
                                 .duration_ms = 12,
                                 .sni = "localhost",
                                 .tls_mode = "splice",
                                 .term = "CC",
                                 .tool = "unidentified",
                                 .id_source = "none",
                                 .offered = "",
                                 .uid = UINT32_MAX,
                                 .exe = "",
                                 .exe_sha256 = "",
                                 .cmd = "",
                                 .chain = "",
                                 .mismatch = "",
                                 .version = "",
                                 .error = "",
                                 .decision = "allow",
                                 .rule = "default",
                                 .dest_ip = "127.0.0.1",
                                 .country = "-",
                                 .asn = 0};
}

static void test_tunnel_line(void **state)
{
    struct audit_record r = tunnel_record();

    (void)state;
    assert_string_equal(access_line(&r),
                        "access client=127.0.0.1:40000 method=CONNECT target=\"localhost:18443\" "
                        "status=200 sent=741 received=4387 ms=12 sni=localhost tls=splice "
                        "term=CC tool=unidentified id=none decision=allow rule=default "
                        "dst=127.0.0.1 country=- asn=0");
    /* No server name, no TLS seen, a failure, the largest counts. */
    r.sni = "";
    r.tls_mode = NULL;
    r.error = "destination_unavailable";
    r.status = 502;
    r.sent = UINT64_MAX;
    r.received = 0;
    r.duration_ms = 1234567;
    r.asn = UINT32_MAX;
    assert_string_equal(access_line(&r),
                        "access client=127.0.0.1:40000 method=CONNECT target=\"localhost:18443\" "
                        "status=502 sent=18446744073709551615 received=0 ms=1234567 sni=- "
                        "term=CC tool=unidentified id=none decision=allow rule=default "
                        "dst=127.0.0.1 country=- asn=4294967295 error=destination_unavailable");
}

/* A request whose process is known: every field there is, each in its place. */
static void test_full_line(void **state)
{
    struct audit_record r = tunnel_record();

    (void)state;
    r.method = "POST";
    r.target = "http://api.test/v1/x?q=\"a b\"";
    r.is_connect = false;
    r.sni = "";
    r.tls_mode = "inspect";
    r.set_fields = "x-tenant,x-team";
    r.tool = "claude-code";
    r.id_source = "process";
    r.version = "1.0.3";
    r.offered = "bob";
    r.pid = 4242;
    r.uid = 1000;
    r.exe = "/usr/bin/node";
    r.exe_sha256 = "ab01";
    r.cmd = "node cli.js --key=[redacted]";
    r.chain = "node<bash<sshd";
    r.mismatch = "user-agent:cursor";
    r.decision = "block";
    r.rule = "deny_hosts";
    r.country = "DE";
    r.asn = 3320;
    assert_string_equal(
        access_line(&r),
        "access client=127.0.0.1:40000 method=POST target=\"http://api.test/v1/x?q=\\\"a b\\\"\" "
        "status=200 sent=741 received=4387 ms=12 sni=- tls=inspect set_fields=x-tenant,x-team "
        "term=CC tool=claude-code version=\"1.0.3\" id=process offered=\"bob\" pid=4242 "
        "uid=1000 exe=\"/usr/bin/node\" sha256=ab01 cmd=\"node cli.js --key=[redacted]\" "
        "chain=\"node<bash<sshd\" mismatch=\"user-agent:cursor\" decision=block "
        "rule=deny_hosts dst=127.0.0.1 country=DE asn=3320");
    /* A pid without an owner, an owner without a pid. */
    r.uid = UINT32_MAX;
    assert_non_null(strstr(access_line(&r), " pid=4242 exe="));
    r.uid = 1000;
    r.pid = 0;
    assert_non_null(strstr(access_line(&r), " offered=\"bob\" exe="));
}

/* Bytes a peer controls cannot end the line, start a field or reach a terminal. */
static void test_escaping(void **state)
{
    struct audit_record r = tunnel_record();
    const char *line;

    (void)state;
    r.method = "GE\"T";
    r.target = "/a\r\naccess client=forged\x1b[2J\\";
    r.sni = "x\ty";
    r.cmd = "sh -c \"echo\x7f\"";
    r.offered = "\xff\x01";
    line = access_line(&r);
    assert_non_null(strstr(line, " method=GE\\\"T target=\"/a\\x0d\\x0aaccess client=forged"
                                 "\\x1b[2J\\\\\" "));
    assert_non_null(strstr(line, " sni=x\\x09y "));
    assert_non_null(strstr(line, " offered=\"\\xff\\x01\" "));
    assert_non_null(strstr(line, " cmd=\"sh -c \\\"echo\\x7f\\\"\" "));
}

/* A field longer than its bound ends in "..."; the whole line stops at 4,094 bytes. */
static void test_bounds(void **state)
{
    struct audit_record r = tunnel_record();
    static char target[3000], cmd[3000], exe[3000], chain[3000], set[3000], error[300];
    char *line;
    const char *t;

    (void)state;
    memset(target, 'T', sizeof(target) - 1);
    memset(set, 'S', sizeof(set) - 1);
    memset(error, 'E', sizeof(error) - 1);
    r.target = target;
    r.set_fields = set;
    r.error = error;
    line = access_line(&r);
    /* The target keeps 1,020 bytes and "..."; the set fields 639 bytes of " set_fields=..." */
    t = strstr(line, "target=\"");
    assert_non_null(t);
    assert_int_equal(strspn(t + 8, "T"), 1020);
    assert_memory_equal(t + 8 + 1020, "...\" status=", 12);
    t = strstr(line, " set_fields=");
    assert_non_null(t);
    assert_int_equal(strspn(t + 12, "S"), 639 - 12);
    assert_memory_equal(t + 639, " term=CC", 8);
    t = strstr(line, " error=");
    assert_non_null(t);
    assert_int_equal(strlen(t + 7), 79 - 7);

    memset(cmd, 'C', sizeof(cmd) - 1);
    memset(exe, 'X', sizeof(exe) - 1);
    memset(chain, 'H', sizeof(chain) - 1);
    r.cmd = cmd;
    r.exe = exe;
    r.chain = chain;
    r.pid = 1;
    line = access_line(&r);
    /* Stamp (32 bytes) and text: 4,094 bytes before the line ending. */
    assert_int_equal(strlen(line) + 32, 4094);
    t = strstr(line, " cmd=\"");
    assert_non_null(t);
    assert_int_equal(strspn(t + 6, "C"), 1600 - 6 - 1 - 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tunnel_line),
        cmocka_unit_test(test_full_line),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_bounds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
