/* Unit tests for src/metrics.c: label escaping, the cap on label values, the text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/metrics.h"

/* Every case starts from nothing counted. */
static int reset(void **state)
{
    (void)state;
    metrics_reset();
    return 0;
}

/* Renders the text; the caller frees it. */
static char *render(void)
{
    size_t len = 0;
    char *text = metrics_render(&len);

    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

/* Number of lines of text that start with prefix. */
static size_t count_lines(const char *text, const char *prefix)
{
    size_t n = 0;

    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, prefix, strlen(prefix)) == 0)
            n++;
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return n;
}

/* A record of a finished request, blocked by rule when rule is not NULL. */
static struct audit_record record(const char *tool, const char *decision, const char *rule)
{
    struct audit_record r = {.tool = tool, .decision = decision, .rule = rule, .error = ""};

    r.sent = 10;
    r.received = 100;
    return r;
}

/* Backslash, double quote and line feed are escaped; nothing else is touched. */
static void test_escape_specials(void **state)
{
    char out[256];

    (void)state;
    assert_string_equal(metrics_escape_label(out, sizeof(out), "plain-tool_1.2"), "plain-tool_1.2");
    assert_string_equal(metrics_escape_label(out, sizeof(out), "a\\b"), "a\\\\b");
    assert_string_equal(metrics_escape_label(out, sizeof(out), "say \"hi\""), "say \\\"hi\\\"");
    assert_string_equal(metrics_escape_label(out, sizeof(out), "two\nlines"), "two\\nlines");
    assert_string_equal(metrics_escape_label(out, sizeof(out), "tab\there"), "tab\there");
    assert_string_equal(metrics_escape_label(out, sizeof(out), "h\xc3\xa9"), "h\xc3\xa9");
}

/* A byte that is no UTF-8 becomes U+FFFD, so the text stays valid UTF-8. */
static void test_escape_invalid_utf8(void **state)
{
    char out[64];

    (void)state;
    assert_string_equal(metrics_escape_label(out, sizeof(out),
                                             "a\xff"
                                             "b"),
                        "a\xef\xbf\xbd"
                        "b");
    assert_string_equal(metrics_escape_label(out, sizeof(out), "\xc3"), "\xef\xbf\xbd");
    assert_string_equal(metrics_escape_label(out, sizeof(out), "\xed\xa0\x80"),
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* a surrogate */
}

/* Output that does not fit is cut before an escape, never inside one. */
static void test_escape_cut(void **state)
{
    char out[4];

    (void)state;
    assert_string_equal(metrics_escape_label(out, sizeof(out), "ab\"c"), "ab");
    assert_string_equal(metrics_escape_label(out, sizeof(out), "a\xc3\xa9\xc3\xa9"), "a\xc3\xa9");
    assert_string_equal(metrics_escape_label(out, sizeof(out), "abcdef"), "abc");
}

/* A label value with every special byte comes out escaped in the text. */
static void test_render_escapes_rule(void **state)
{
    struct audit_record r = record("t", "block", "allow:we\"ird\\group\nx");
    char *text;

    (void)state;
    metrics_count_record(&r);
    text = render();
    assert_non_null(
        strstr(text, "sluice_blocked_total{rule=\"allow:we\\\"ird\\\\group\\nx\"} 1\n"));
    free(text);
}

/* Past METRICS_MAX_RULES distinct rules, the rest are counted as one series, "other". */
static void test_rule_cap(void **state)
{
    char rule[64], *text;

    (void)state;
    for (unsigned i = 0; i < METRICS_MAX_RULES + 500; i++) {
        struct audit_record r;

        snprintf(rule, sizeof(rule), "allow-asns:%u", 64500 + i);
        r = record("curl", "block", rule);
        metrics_count_record(&r);
    }
    text = render();
    assert_int_equal(count_lines(text, "sluice_blocked_total{"), METRICS_MAX_RULES + 1);
    assert_non_null(strstr(text, "sluice_blocked_total{rule=\"allow-asns:64500\"} 1\n"));
    assert_non_null(strstr(text, "sluice_blocked_total{rule=\"other\"} 500\n"));
    /* A known one still counts in its own series once the table is full. */
    {
        struct audit_record r = record("curl", "block", "allow-asns:64501");
        metrics_count_record(&r);
    }
    free(text);
    text = render();
    assert_non_null(strstr(text, "sluice_blocked_total{rule=\"allow-asns:64501\"} 2\n"));
    assert_non_null(strstr(text, "sluice_blocked_total{rule=\"other\"} 500\n"));
    free(text);
}

/* Tools past their cap fold into tool="other" too; a tool named other is that series. */
static void test_tool_cap(void **state)
{
    char tool[32], *text;

    (void)state;
    for (unsigned i = 0; i < METRICS_MAX_TOOLS + 3; i++) {
        struct audit_record r;

        snprintf(tool, sizeof(tool), "tool-%u", i);
        r = record(tool, "allow", "allow:api");
        metrics_count_record(&r);
    }
    {
        struct audit_record r = record("other", "allow", "allow:api");
        metrics_count_record(&r);
    }
    text = render();
    assert_int_equal(count_lines(text, "sluice_requests_total{"), METRICS_MAX_TOOLS + 1);
    assert_non_null(
        strstr(text, "sluice_requests_total{tool=\"other\",decision=\"allow\",kind=\"http\"} 4\n"));
    free(text);
}

/* Requests, bytes, decisions and kinds add up per series; errors split by side. */
static void test_counts(void **state)
{
    struct audit_record a = record("claude-code", "allow", "allow:api");
    struct audit_record b = record("claude-code", "block", "telemetry:statsig");
    struct audit_record c = record("unidentified", "-", "-");
    struct audit_record d = record("claude-code", "allow", "allow:api");
    char *text;

    (void)state;
    b.is_connect = true;
    c.error = "http_request_error";
    d.error = "connection_refused";
    metrics_count_record(&a);
    metrics_count_record(&a);
    metrics_count_record(&b);
    metrics_count_record(&c);
    metrics_count_record(&d);
    metrics_connection_opened();
    metrics_connection_opened();
    metrics_connection_closed();
    metrics_tunnel_opened();
    metrics_reload_failed();
    metrics_observe_identification(0.0003);
    metrics_observe_identification(0.002);
    metrics_count_upstream_handshake(false);
    metrics_count_upstream_handshake(true);
    metrics_count_upstream_handshake(true);
    text = render();
    assert_non_null(strstr(
        text, "sluice_requests_total{tool=\"claude-code\",decision=\"allow\",kind=\"http\"} 3\n"));
    assert_non_null(strstr(
        text,
        "sluice_sent_bytes_total{tool=\"claude-code\",decision=\"allow\",kind=\"http\"} 30\n"));
    assert_non_null(strstr(text, "sluice_received_bytes_total{tool=\"claude-code\",decision="
                                 "\"allow\",kind=\"http\"} 300\n"));
    assert_non_null(strstr(
        text,
        "sluice_requests_total{tool=\"claude-code\",decision=\"block\",kind=\"tunnel\"} 1\n"));
    assert_non_null(strstr(
        text, "sluice_requests_total{tool=\"unidentified\",decision=\"none\",kind=\"http\"} 1\n"));
    assert_non_null(strstr(text, "sluice_blocked_total{rule=\"telemetry:statsig\"} 1\n"));
    assert_int_equal(count_lines(text, "sluice_blocked_total{"), 1);
    assert_non_null(strstr(text, "sluice_upstream_errors_total{type=\"connection_refused\"} 1\n"));
    assert_non_null(strstr(text, "sluice_request_errors_total{type=\"http_request_error\"} 1\n"));
    assert_non_null(strstr(text, "\nsluice_connections_total 2\n"));
    assert_non_null(strstr(text, "\nsluice_open_connections 1\n"));
    assert_non_null(strstr(text, "\nsluice_open_tunnels 1\n"));
    assert_non_null(strstr(text, "\nsluice_policy_reload_failures_total 1\n"));
    assert_non_null(strstr(text, "sluice_tls_upstream_handshakes_total{resumed=\"false\"} 1\n"));
    assert_non_null(strstr(text, "sluice_tls_upstream_handshakes_total{resumed=\"true\"} 2\n"));
    assert_non_null(
        strstr(text, "sluice_identification_duration_seconds_bucket{le=\"0.00025\"} 0\n"));
    assert_non_null(
        strstr(text, "sluice_identification_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
    assert_non_null(strstr(text, "sluice_identification_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(text, "sluice_identification_duration_seconds_sum 0.002300000\n"));
    assert_non_null(strstr(text, "sluice_identification_duration_seconds_count 2\n"));
    free(text);
}

/* Every family has HELP and TYPE, once, before its samples. */
static void test_help_and_type(void **state)
{
    char *text;
    size_t help, type;

    (void)state;
    text = render();
    help = count_lines(text, "# HELP ");
    type = count_lines(text, "# TYPE ");
    assert_int_equal(help, type);
    assert_true(help >= 17);
    assert_non_null(strstr(text, "# TYPE sluice_identification_duration_seconds histogram\n"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_specials),
        cmocka_unit_test(test_escape_invalid_utf8),
        cmocka_unit_test(test_escape_cut),
        cmocka_unit_test_setup(test_render_escapes_rule, reset),
        cmocka_unit_test_setup(test_rule_cap, reset),
        cmocka_unit_test_setup(test_tool_cap, reset),
        cmocka_unit_test_setup(test_counts, reset),
        cmocka_unit_test_setup(test_help_and_type, reset),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
