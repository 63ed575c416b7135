/*
 * Unit tests for the configuration loader: a valid file, defaults, and one case per class
 * of error, each checking the exact file:line:column and that every error is reported.
 * Then the command line generated from the same table (src/cli.c): the same bounds and
 * messages as the file, every option in getopt's table and the usage, and the keys a
 * reload reports as needing a restart.
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

#include "sluice/cli.h"
#include "sluice/config.h"

/* A temporary directory holding the file under test. */
struct fixture {
    char dir[64];
    char path[128];
    struct yamldoc_errors errs;
};

/* Makes the temporary directory. */
static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/sluice-config-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/sluice.yaml", f->dir);
    *state = f;
    return 0;
}

/* Removes the directory and what the test put in it. */
static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[160];

    yamldoc_errors_clear(&f->errs);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* Writes text as the configuration file. */
static void write_file(struct fixture *f, const char *text)
{
    FILE *out = fopen(f->path, "w");

    assert_non_null(out);
    fputs(text, out);
    assert_int_equal(fclose(out), 0);
}

/* Loads text and expects it to fail with exactly n errors. */
static void load_expect_errors(struct fixture *f, const char *text, size_t n)
{
    yamldoc_errors_clear(&f->errs); /* the loader starts a new list */
    write_file(f, text);
    assert_null(config_load(f->path, &f->errs));
    if (f->errs.count != n)
        yamldoc_errors_print(&f->errs, stderr);
    assert_int_equal(f->errs.count, n);
}

/* Asserts error i starts with "<path>:<line>:<col>: " and contains needle. */
static void assert_error(struct fixture *f, size_t i, unsigned line, unsigned col,
                         const char *needle)
{
    char prefix[192];

    snprintf(prefix, sizeof(prefix), "%s:%u:%u: ", f->path, line, col);
    assert_non_null(f->errs.lines[i]);
    if (strncmp(f->errs.lines[i], prefix, strlen(prefix)) != 0 ||
        strstr(f->errs.lines[i], needle) == NULL)
        fail_msg("error %zu is \"%s\", expected \"%s...%s...\"", i, f->errs.lines[i], prefix,
                 needle);
}

/* connect_http_port may not be one of connect_ports: TLS tunnels there could not work. */
static void test_connect_http_port_apart(void **state)
{
    struct fixture *f = *state;
    struct sluice_config *cfg;

    yamldoc_errors_clear(&f->errs);
    write_file(f, "connect_ports: [443, 80]\n");
    cfg = config_load(f->path, &f->errs);
    assert_non_null(cfg);
    assert_int_equal(config_check(cfg, &f->errs), -1);
    assert_int_equal(f->errs.count, 1);
    assert_non_null(strstr(f->errs.lines[0], "connect_http_port 80 is also in connect_ports"));
    config_free(cfg);

    yamldoc_errors_clear(&f->errs);
    write_file(f, "connect_ports: [443, 80]\nconnect_http_port: 0\n");
    cfg = config_load(f->path, &f->errs);
    assert_non_null(cfg);
    assert_int_equal(config_check(cfg, &f->errs), 0);
    config_free(cfg);

    yamldoc_errors_clear(&f->errs);
    write_file(f, "connect_ports: [443]\n");
    cfg = config_load(f->path, &f->errs);
    assert_non_null(cfg);
    assert_int_equal(cfg->settings.connect_http_port, 80); /* the default */
    assert_int_equal(config_check(cfg, &f->errs), 0);
    config_free(cfg);
}

/* A full valid file sets every kind of value. */
static void test_valid_file(void **state)
{
    struct fixture *f = *state;
    struct sluice_config *cfg;
    char hosts[160];

    snprintf(hosts, sizeof(hosts), "%s/hosts", f->dir);
    write_file(f, "");
    {
        FILE *h = fopen(hosts, "w");
        assert_non_null(h);
        fputs("127.0.0.1 localhost\n", h);
        fclose(h);
    }
    write_file(f, "mode: gateway\n"
                  "workers: 2\n"
                  "listen:\n"
                  "  - 127.0.0.1:3128\n"
                  "  - address: \"[::1]:3129\"\n"
                  "    tool: claude-code\n"
                  "connect_ports: [443, 8443]\n"
                  "limits:\n"
                  "  max_connections: 20000\n"
                  "  max_header_fields: 50\n"
                  "timeouts:\n"
                  "  head: 5s\n"
                  "  tunnel: 30m\n"
                  "  connect: 1500ms\n"
                  "dns:\n"
                  "  hosts_file: hosts\n");
    cfg = config_load(f->path, &f->errs);
    if (cfg == NULL)
        yamldoc_errors_print(&f->errs, stderr);
    assert_non_null(cfg);
    assert_int_equal(cfg->mode, CONFIG_MODE_GATEWAY);
    assert_int_equal(cfg->workers, 2);
    assert_int_equal(cfg->nlisteners, 2);
    assert_string_equal(cfg->listeners[0].address, "127.0.0.1:3128");
    assert_string_equal(cfg->listeners[0].tool, "");
    assert_string_equal(cfg->listeners[1].address, "[::1]:3129");
    assert_string_equal(cfg->listeners[1].tool, "claude-code");
    assert_int_equal(cfg->settings.nconnect_ports, 2);
    assert_int_equal(cfg->settings.connect_ports[1], 8443);
    assert_int_equal(cfg->settings.max_connections, 20000);
    assert_int_equal(cfg->settings.request_limits.max_fields, 50);
    assert_int_equal(cfg->settings.timeout_head_ms, 5000);
    assert_int_equal(cfg->settings.timeout_tunnel_ms, 30 * 60 * 1000);
    assert_int_equal(cfg->settings.timeout_connect_ms, 1500);
    assert_string_equal(cfg->hosts_file, hosts); /* relative to the file's directory */
    assert_string_equal(cfg->settings.hosts_file, hosts);
    config_free(cfg);
}

/* An empty file is every default. */
static void test_defaults(void **state)
{
    struct fixture *f = *state;
    struct sluice_config *cfg;

    write_file(f, "# nothing set\n");
    cfg = config_load(f->path, &f->errs);
    assert_non_null(cfg);
    assert_int_equal(cfg->mode, CONFIG_MODE_LOCAL);
    assert_int_equal(cfg->workers, 0);
    assert_int_equal(cfg->nlisteners, 1); /* the table's default listener */
    assert_string_equal(cfg->listeners[0].address, "127.0.0.1:3128");
    assert_int_equal(cfg->settings.max_connections, 16384);
    assert_int_equal(cfg->settings.request_limits.max_line, 8192);
    assert_int_equal(cfg->settings.request_limits.max_head, 65536);
    assert_int_equal(cfg->settings.timeout_head_ms, 10000);
    assert_int_equal(cfg->settings.nconnect_ports, 1);
    assert_int_equal(cfg->settings.connect_ports[0], 443);
    assert_string_equal(cfg->settings.resolv_conf, "/etc/resolv.conf");
    assert_null(cfg->policy_dir);
    config_free(cfg);
}

/*
 * The limits left to the mode: a gateway bounds each client (256 connections, 1024 bytes/s
 * of upload), a laptop proxy does not; a value set in the file wins in either mode, and
 * "auto" or a number outside the range is checked like any value.
 */
static void test_limits_by_mode(void **state)
{
    struct fixture *f = *state;
    struct sluice_config *cfg;

    write_file(f, "mode: gateway\n");
    cfg = config_load(f->path, &f->errs);
    assert_non_null(cfg);
    assert_int_equal(cfg->settings.timeout_response_ms, 15 * 60 * 1000);
    assert_int_equal(cfg->settings.max_conns_per_client, SETTINGS_BY_MODE);
    settings_apply_mode(&cfg->settings, cfg->mode == CONFIG_MODE_GATEWAY);
    assert_int_equal(cfg->settings.max_conns_per_client, 256);
    assert_int_equal(cfg->settings.min_upload_rate, 1024);
    config_free(cfg);

    write_file(f, "mode: local\n");
    cfg = config_load(f->path, &f->errs);
    assert_non_null(cfg);
    settings_apply_mode(&cfg->settings, false);
    assert_int_equal(cfg->settings.max_conns_per_client, 0);
    assert_int_equal(cfg->settings.min_upload_rate, 0);
    config_free(cfg);

    write_file(f, "mode: gateway\nlimits:\n  max_connections_per_client: 0\n"
                  "  min_upload_rate: auto\n");
    cfg = config_load(f->path, &f->errs);
    assert_non_null(cfg);
    settings_apply_mode(&cfg->settings, true);
    assert_int_equal(cfg->settings.max_conns_per_client, 0);
    assert_int_equal(cfg->settings.min_upload_rate, 1024);
    config_free(cfg);

    load_expect_errors(f, "limits:\n  max_connections_per_client: lots\n", 1);
    assert_error(f, 0, 2, 31,
                 "limits.max_connections_per_client: 'lots': expected a number; expected a number "
                 "from 0 (no cap) to 1000000, or auto (256 in gateway mode, no cap in local mode)");
}

/* An unknown key names itself and the keys that are allowed there. */
static void test_unknown_key(void **state)
{
    struct fixture *f = *state;

    load_expect_errors(f, "limits:\n  max_conections: 5\n", 1);
    assert_error(f, 0, 2, 3, "unknown key 'max_conections'; expected one of: max_connections");
}

/* A list where a number belongs. */
static void test_wrong_type(void **state)
{
    struct fixture *f = *state;

    load_expect_errors(f, "workers: [1, 2]\n", 1);
    assert_error(f, 0, 1, 10, "workers: found a list; expected a number of worker threads");
}

/* A number outside its bounds. */
static void test_out_of_range(void **state)
{
    struct fixture *f = *state;

    load_expect_errors(f, "limits:\n  max_request_line: 100\n", 1);
    assert_error(f, 0, 2, 21, "limits.max_request_line: '100': number out of range");
}

/* Something that is not a number. */
static void test_not_a_number(void **state)
{
    struct fixture *f = *state;

    load_expect_errors(f, "workers: two\n", 1);
    assert_error(f, 0, 1, 10, "workers: 'two': expected a number");
}

/* A duration with an unknown unit. */
static void test_bad_duration(void **state)
{
    struct fixture *f = *state;

    load_expect_errors(f, "timeouts:\n  head: 10 years\n", 1);
    assert_error(f, 0, 2, 9, "timeouts.head: '10 years'");
}

/* A mode that does not exist. */
static void test_bad_mode(void **state)
{
    struct fixture *f = *state;

    load_expect_errors(f, "mode: laptop\n", 1);
    assert_error(f, 0, 1, 7, "mode: 'laptop' is not a mode; expected local or gateway");
}

/*
 * A listener's load balancers for the PROXY protocol: a list or one value in the file,
 * proxy-from= (repeatable) on the command line; a bad address or an empty list is an
 * error that names the listener and the value.
 */
static void test_listener_proxy_from(void **state)
{
    struct fixture *f = *state;
    struct sluice_config *cfg;
    const struct config_key *listen = NULL;

    write_file(f,
               "listen:\n"
               "  - {address: 127.0.0.1:3128, proxy_protocol: [10.0.0.5/32, \"2001:db8::/64\"]}\n"
               "  - {address: 127.0.0.1:3129, proxy_protocol: 192.0.2.1}\n"
               "  - 127.0.0.1:3130\n");
    cfg = config_load(f->path, &f->errs);
    if (cfg == NULL)
        yamldoc_errors_print(&f->errs, stderr);
    assert_non_null(cfg);
    assert_string_equal(cfg->listeners[0].proxy_from, "10.0.0.5/32 2001:db8::/64");
    assert_string_equal(cfg->listeners[1].proxy_from, "192.0.2.1");
    assert_string_equal(cfg->listeners[2].proxy_from, "");
    for (size_t i = 0; i < config_nkeys; i++)
        if (strcmp(config_keys[i].name, "listen") == 0)
            listen = &config_keys[i];
    assert_non_null(listen);
    cfg->nlisteners = 0;
    assert_int_equal(config_set(cfg, listen,
                                "127.0.0.1:1,tool=git,proxy-from=10.0.0.0/8,proxy-from=::1",
                                &f->errs),
                     0);
    assert_string_equal(cfg->listeners[0].tool, "git");
    assert_string_equal(cfg->listeners[0].proxy_from, "10.0.0.0/8 ::1");
    assert_int_equal(config_set(cfg, listen, "127.0.0.1:2,proxy-from=banana", &f->errs), -1);
    assert_int_equal(config_set(cfg, listen, "127.0.0.1:3,proxy-from=", &f->errs), -1);
    assert_int_equal(config_set(cfg, listen, "127.0.0.1:4,color=red", &f->errs), -1);
    config_free(cfg);

    load_expect_errors(f, "listen:\n  - {address: 127.0.0.1:1, proxy_protocol: [nope]}\n", 1);
    assert_error(f, 0, 2, 44, "'nope' is not the address or CIDR of a load balancer");
}

/* A listener address that does not parse, and a tool id with capitals. */
static void test_bad_listeners(void **state)
{
    struct fixture *f = *state;

    load_expect_errors(f, "listen:\n  - localhost:3128\n  - address: 127.0.0.1:1\n    tool: Bad\n",
                       2);
    assert_error(f, 0, 2, 5, "listen: 'localhost:3128'");
    assert_error(f, 1, 4, 11, "tool 'Bad' is not a tool id");
}

/* Ports outside 1..65535. */
static void test_bad_ports(void **state)
{
    struct fixture *f = *state;

    load_expect_errors(f, "connect_ports: [443, 70000]\n", 1);
    assert_error(f, 0, 1, 16, "connect_ports: number out of range");
}

/* A file that must be readable and is not there. */
static void test_missing_file(void **state)
{
    struct fixture *f = *state;

    load_expect_errors(f, "dns:\n  hosts_file: /nonexistent/hosts\n", 1);
    assert_error(f, 0, 2, 15, "dns.hosts_file: cannot use /nonexistent/hosts");
}

/* A directory that must exist. */
static void test_policy_dir_not_a_directory(void **state)
{
    struct fixture *f = *state;

    load_expect_errors(f, "policy_dir: sluice.yaml\n", 1);
    assert_error(f, 0, 1, 13, "is not a directory");
}

/* A section given a value. */
static void test_section_not_mapping(void **state)
{
    struct fixture *f = *state;

    load_expect_errors(f, "timeouts: 10s\n", 1);
    assert_error(f, 0, 1, 11, "timeouts: found a value; expected a mapping of head, keepalive");
}

/* The same key twice. */
static void test_duplicate_key(void **state)
{
    struct fixture *f = *state;

    load_expect_errors(f, "workers: 1\nworkers: 2\n", 1);
    assert_error(f, 0, 2, 1, "workers: given twice");
}

/* A list at the top. */
static void test_top_not_mapping(void **state)
{
    struct fixture *f = *state;

    load_expect_errors(f, "- a\n- b\n", 1);
    assert_error(f, 0, 1, 1, "found a list at the top");
}

/* YAML that does not parse reports where. */
static void test_yaml_syntax_error(void **state)
{
    struct fixture *f = *state;

    load_expect_errors(f, "limits:\n  max_connections: [1, 2\n", 1);
    assert_non_null(strstr(f->errs.lines[0], "YAML syntax error"));
    assert_int_equal(strncmp(f->errs.lines[0], f->path, strlen(f->path)), 0);
}

/* Every error in a file is reported, in file order. */
static void test_all_errors_reported(void **state)
{
    struct fixture *f = *state;

    load_expect_errors(f,
                       "mode: nope\n"
                       "limits:\n"
                       "  max_connections: 0\n"
                       "colour: blue\n"
                       "timeouts:\n"
                       "  idle: soon\n",
                       4);
    assert_error(f, 0, 1, 7, "mode");
    assert_error(f, 1, 3, 20, "limits.max_connections");
    assert_error(f, 2, 4, 1, "unknown key 'colour'");
    assert_error(f, 3, 6, 9, "timeouts.idle");
}

/* A file that cannot be opened. */
static void test_missing_config(void **state)
{
    struct fixture *f = *state;

    assert_null(config_load("/nonexistent/sluice.yaml", &f->errs));
    assert_int_equal(f->errs.count, 1);
    assert_non_null(strstr(f->errs.lines[0], "/nonexistent/sluice.yaml: cannot read"));
}

/* Applies "sluice ARGS..." (at most 7) to cfg through the generated options. */
static int apply_args(struct fixture *f, struct sluice_config *cfg, const char *const *args)
{
    char store[8][64];
    char *argv[9];
    int argc = 0;
    struct cli c;

    assert_int_equal(cli_init(&c, NULL, 0), 0);
    snprintf(store[0], sizeof(store[0]), "sluice");
    argv[argc++] = store[0];
    for (size_t i = 0; args[i] != NULL; i++) {
        assert_true(argc < 8);
        snprintf(store[argc], sizeof(store[argc]), "%s", args[i]);
        argv[argc] = store[argc];
        argc++;
    }
    argv[argc] = NULL;
    yamldoc_errors_clear(&f->errs);
    return cli_apply_args(&c, argc, argv, cfg, &f->errs);
}

/* The part of line after the first occurrence of marker. */
static const char *after(const char *line, const char *marker)
{
    const char *at = strstr(line, marker);

    if (at == NULL)
        fail_msg("\"%s\" is not in \"%s\"", marker, line);
    return at + strlen(marker);
}

/*
 * A value given as an option goes through the file's parser and bounds: the same values
 * are refused with the same reason, and the error names the option as it was typed.
 */
static void test_option_same_as_file(void **state)
{
    static const struct {
        const char *file, *shown, *option, *value, *cli_error;
    } cases[] = {
        {"timeouts:\n  head: 0\n", "'0'", "--timeout-head", "0",
         "sluice: --timeout-head 0: duration must be between 1ms and 7 days; expected a "
         "duration such as 10s"},
        {"limits:\n  max_request_line: 100\n", "'100'", "--max-request-line", "100",
         "sluice: --max-request-line 100: number out of range; expected a number of bytes from "
         "256 to 1048576"},
        {"workers: 257\n", "'257'", "--workers", "257",
         "sluice: --workers 257: number out of range; expected a number of worker threads from "
         "1 to 256, or 0 for one per core"},
        {"timeouts:\n  drain: 2d\n", "'2d'", "--drain-timeout", "2d",
         "sluice: --drain-timeout 2d: unknown unit: use ms, s or m; expected a duration such "
         "as 10s"},
        {"mode: laptop\n", "'laptop'", "--mode", "laptop",
         "sluice: --mode laptop is not a mode; expected local or gateway"},
    };
    struct fixture *f = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *args[] = {cases[i].option, cases[i].value, NULL};
        struct sluice_config *cfg;
        char file_error[512], option[96];

        load_expect_errors(f, cases[i].file, 1);
        snprintf(file_error, sizeof(file_error), "%s", f->errs.lines[0]);
        yamldoc_errors_clear(&f->errs);
        cfg = config_defaults(&f->errs);
        assert_non_null(cfg);
        assert_int_equal(apply_args(f, cfg, args), -1);
        assert_int_equal(f->errs.count, 1);
        assert_string_equal(f->errs.lines[0], cases[i].cli_error);
        snprintf(option, sizeof(option), "%s %s", cases[i].option, cases[i].value);
        assert_string_equal(after(f->errs.lines[0], option), after(file_error, cases[i].shown));
        config_free(cfg);
    }
}

/* The lowest value the file takes, the option takes too, and it overrides the file. */
static void test_option_overrides_file(void **state)
{
    struct fixture *f = *state;
    const char *const args[] = {"--max-request-line", "256", "--timeout-head", "1500ms", NULL};
    struct sluice_config *cfg;

    write_file(f, "limits:\n  max_request_line: 4096\ntimeouts:\n  head: 5s\n  idle: 1m\n");
    cfg = config_load(f->path, &f->errs);
    assert_non_null(cfg);
    assert_int_equal(apply_args(f, cfg, args), 0);
    assert_int_equal(cfg->settings.request_limits.max_line, 256);
    assert_int_equal(cfg->settings.timeout_head_ms, 1500);
    assert_int_equal(cfg->settings.timeout_idle_ms, 60000); /* the file's, untouched */
    config_free(cfg);
}

/* --workers 0 means one per core, as workers: 0 does in the file; so does -w 0. */
static void test_workers_zero(void **state)
{
    struct fixture *f = *state;
    const char *const long_form[] = {"--workers", "0", NULL};
    const char *const short_form[] = {"-w", "0", NULL};
    struct sluice_config *cfg;

    write_file(f, "workers: 4\n");
    cfg = config_load(f->path, &f->errs);
    assert_non_null(cfg);
    assert_int_equal(apply_args(f, cfg, long_form), 0);
    assert_int_equal(cfg->workers, 0);
    cfg->workers = 4;
    assert_int_equal(apply_args(f, cfg, short_form), 0);
    assert_int_equal(cfg->workers, 0);
    config_free(cfg);
}

/* The command line's listeners replace the file's, tools included; repeated ones add up. */
static void test_listen_replaces_file(void **state)
{
    struct fixture *f = *state;
    const char *const args[] = {"-l", "127.0.0.1:1", "--listen", "[::1]:2,tool=alpha", NULL};
    const char *const bad[] = {"--listen", "127.0.0.1:3,tool=", NULL};
    struct sluice_config *cfg;

    write_file(f, "listen:\n"
                  "  - {address: 127.0.0.1:7, tool: claude-code}\n"
                  "  - 127.0.0.1:8\n"
                  "  - 127.0.0.1:9\n");
    cfg = config_load(f->path, &f->errs);
    assert_non_null(cfg);
    assert_int_equal(apply_args(f, cfg, args), 0);
    assert_int_equal(cfg->nlisteners, 2);
    assert_string_equal(cfg->listeners[0].address, "127.0.0.1:1");
    assert_string_equal(cfg->listeners[0].tool, ""); /* not the file's claude-code */
    assert_string_equal(cfg->listeners[1].address, "[::1]:2");
    assert_string_equal(cfg->listeners[1].tool, "alpha");
    assert_int_equal(apply_args(f, cfg, bad), -1);
    assert_string_equal(f->errs.lines[0], "sluice: --listen 127.0.0.1:3,tool=: tool '' is not a "
                                          "tool id; expected lower-case letters, digits, '-', "
                                          "'_' or '.'");
    config_free(cfg);
}

/* Collapses every run of white space in s to one space, so wrapped lines read as one. */
static void collapse_space(char *s)
{
    char *out = s;

    for (const char *p = s; *p != '\0'; p++)
        if (*p != ' ' && *p != '\n')
            *out++ = *p;
        else if (out == s || out[-1] != ' ')
            *out++ = ' ';
    *out = '\0';
}

/* A mistyped option or command is answered with the nearest name, or none when none is near. */
static void test_suggestions(void **state)
{
    static const char *const commands[] = {"check", "help"};
    static const struct {
        const char *given;
        const char *want; /* NULL: no suggestion */
    } cases[] = {
        {"--lisen", "listen"},
        {"--listne", "listen"},
        {"--polcy-dir=x", "policy-dir"},
        {"--timeout-tunel", "timeout-tunnel"},
        {"--max-conections-per-client", "max-connections-per-client"},
        {"--conect-ports", "connect-ports"},
        {"--worker", "workers"},
        {"--hel", "help"},
        {"--zzzzzz", NULL},
        {"--x", NULL},
        {"--colour", NULL},
    };
    struct cli c;

    (void)state;
    assert_int_equal(cli_init(&c, NULL, 0), 0);
    /* The program's own options are in the table too; "help" is added here as main does. */
    c.longopts[c.nlong].name = "help";
    c.nlong++;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = cli_suggest(&c, cases[i].given);

        if (cases[i].want == NULL && got != NULL)
            fail_msg("%s: suggested %s, expected nothing", cases[i].given, got);
        if (cases[i].want != NULL && (got == NULL || strcmp(got, cases[i].want) != 0))
            fail_msg("%s: suggested %s, expected %s", cases[i].given, got ? got : "nothing",
                     cases[i].want);
    }
    assert_string_equal(cli_nearest("chek", commands, 2), "check");
    assert_string_equal(cli_nearest("hlep", commands, 2), "help");
    assert_null(cli_nearest("run", commands, 2));
}

/*
 * Each row with a long option is in getopt's table (with its letter, when it has one) and
 * in the usage with its argument, then its help, then its default; nothing else is.
 */
static void test_options_generated(void **state)
{
    static const struct cli_option program[] = {{"ready-file", 256, "FILE", "write it here"}};
    struct cli c;
    char *usage = NULL, needle[256], expected[256];
    size_t len = 0, noptions = 0;
    FILE *out;

    (void)state;
    assert_int_equal(cli_init(&c, program, 1), 0);
    out = open_memstream(&usage, &len);
    assert_non_null(out);
    cli_usage(&c, out);
    assert_int_equal(fclose(out), 0);
    collapse_space(usage);
    assert_non_null(strstr(usage, " --ready-file FILE write it here "));
    for (size_t i = 0; i < config_nkeys; i++) {
        const struct config_key *k = &config_keys[i];
        const char *row;
        bool listed = false;

        if (k->option == NULL)
            continue;
        noptions++;
        for (size_t j = 0; j < c.nlong; j++)
            if (strcmp(c.longopts[j].name, k->option) == 0) {
                listed = true;
                assert_int_equal(c.longopts[j].has_arg, required_argument);
                assert_int_equal(c.longopts[j].val,
                                 k->letter != 0 ? k->letter : CLI_KEY_BASE + (int)i);
            }
        assert_true(listed);
        assert_non_null(k->help);
        if (k->letter != 0) {
            snprintf(needle, sizeof(needle), "%c:", k->letter);
            assert_non_null(strstr(c.shortopts, needle));
            snprintf(needle, sizeof(needle), " -%c, --%s ", k->letter, k->option);
        } else {
            snprintf(needle, sizeof(needle), " --%s ", k->option);
        }
        row = strstr(usage, needle);
        if (row == NULL)
            fail_msg("the usage has no \"%s\"", needle);
        row += strlen(needle);
        row += strcspn(row, " ") + 1; /* the argument's name */
        if (k->def != NULL)
            snprintf(expected, sizeof(expected), "%s (default %s)", k->help, k->def);
        else
            snprintf(expected, sizeof(expected), "%s", k->help);
        if (strncmp(row, expected, strlen(expected)) != 0)
            fail_msg("the usage of --%s reads \"%.*s\", expected \"%s\"", k->option,
                     (int)strlen(expected), row, expected);
    }
    assert_int_equal(c.nlong, noptions + 1);
    free(usage);
}

/* The key named name. */
static const struct config_key *key(const char *name)
{
    for (size_t i = 0; i < config_nkeys; i++)
        if (strcmp(config_keys[i].name, name) == 0)
            return &config_keys[i];
    fail_msg("no key %s", name);
    return NULL;
}

/* Asserts the restart-only keys that differ between a and b are exactly names, in order. */
static void assert_restart_changes(const struct sluice_config *a, const struct sluice_config *b,
                                   const char *const *names)
{
    size_t pos = 0, n = 0;
    const char *changed;

    while ((changed = config_next_restart_change(a, b, &pos)) != NULL) {
        if (names[n] == NULL || strcmp(changed, names[n]) != 0)
            fail_msg("reported %s, expected %s", changed, names[n] != NULL ? names[n] : "none");
        n++;
    }
    if (names[n] != NULL)
        fail_msg("%s not reported", names[n]);
}

/*
 * A reload reports the restart-only keys whose value differs (a timeout, a listener's
 * tool) and not the ones it applies (mode, policy_dir, geoip).
 */
static void test_restart_changes(void **state)
{
    struct fixture *f = *state;
    struct sluice_config *run = config_defaults(&f->errs), *next = config_defaults(&f->errs);
    const char *const none[] = {NULL};
    const char *const head[] = {"timeouts.head", NULL};
    const char *const three[] = {"listen", "connect_ports", "timeouts.head", NULL};

    assert_non_null(run);
    assert_non_null(next);
    assert_restart_changes(run, next, none);
    assert_int_equal(config_set(next, key("mode"), "gateway", &f->errs), 0);
    assert_int_equal(config_set(next, key("policy_dir"), f->dir, &f->errs), 0);
    assert_restart_changes(run, next, none);
    assert_int_equal(config_set(next, key("timeouts.head"), "5s", &f->errs), 0);
    assert_restart_changes(run, next, head);
    next->nlisteners = 0;
    assert_int_equal(config_set(next, key("listen"), "127.0.0.1:3128,tool=alpha", &f->errs), 0);
    assert_int_equal(config_set(next, key("connect_ports"), "443,8443", &f->errs), 0);
    assert_restart_changes(run, next, three);
    config_free(run);
    config_free(next);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_valid_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_by_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_number, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_duration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_listeners, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_proxy_from, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_ports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_dir_not_a_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_section_not_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_top_not_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml_syntax_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_errors_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_option_same_as_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_option_overrides_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workers_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listen_replaces_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_options_generated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_suggestions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_http_port_apart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
