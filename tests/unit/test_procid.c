/* Unit tests for src/procid.c: what the record shows of a process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/procid.h"

/* A process whose command line is the words of argv (NULL-terminated). */
static void proc_with(struct procid_proc *p, const char *const *argv)
{
    memset(p, 0, sizeof(*p));
    for (size_t i = 0; argv[i] != NULL; i++) {
        size_t len = strlen(argv[i]) + 1;
        assert_true(p->args_len + len <= sizeof(p->args));
        memcpy(p->args + p->args_len, argv[i], len);
        p->args_len += len;
    }
}

/* The record's command line for argv. */
static const char *shown(const char *const *argv)
{
    static char out[700];
    struct procid_proc p;

    proc_with(&p, argv);
    procid_command_line(&p, out, sizeof(out));
    return out;
}

/* Secrets in the usual spellings are redacted; the rest is kept as it is. */
static void test_command_line_redacted(void **state)
{
    (void)state;
    assert_string_equal(shown((const char *[]){"tool", "--token=abc", "run", NULL}),
                        "tool --token=<redacted> run");
    assert_string_equal(shown((const char *[]){"tool", "--api-key", "abc", "x", NULL}),
                        "tool --api-key <redacted> x");
    assert_string_equal(shown((const char *[]){"env", "OPENAI_API_KEY=sk-1", "node", NULL}),
                        "env OPENAI_API_KEY=<redacted> node");
    assert_string_equal(
        shown((const char *[]){"curl", "-H", "Authorization: Bearer abc", "https://h/", NULL}),
        "curl -H Authorization: <redacted> https://h/");
    assert_string_equal(shown((const char *[]){"curl", "-H", "x-api-key:abc", NULL}),
                        "curl -H x-api-key: <redacted>");
    assert_string_equal(
        shown((const char *[]){"git", "clone", "https://me:hunter2@git.example/r.git", NULL}),
        "git clone https://me:<redacted>@git.example/r.git");
    assert_string_equal(shown((const char *[]){"tool", "--Password", "pw", NULL}),
                        "tool --Password <redacted>");
    /* curl's attached forms: -uUSER:PASSWORD, --user=USER:PASSWORD. */
    assert_string_equal(shown((const char *[]){"curl", "-ualice:pw1", "https://h/", NULL}),
                        "curl -ualice:<redacted> https://h/");
    assert_string_equal(shown((const char *[]){"curl", "-Ubob:pw2", NULL}),
                        "curl -Ubob:<redacted>");
    assert_string_equal(shown((const char *[]){"curl", "--user=alice:pw3", NULL}),
                        "curl --user=alice:<redacted>");
    assert_string_equal(shown((const char *[]){"curl", "--proxy-user=alice:pw4", NULL}),
                        "curl --proxy-user=alice:<redacted>");
    /* Form data: every parameter is looked at, not only the first. */
    assert_string_equal(shown((const char *[]){"curl", "-d", "user=bob&password=pw5", NULL}),
                        "curl -d user=bob&password=<redacted>");
    assert_string_equal(shown((const char *[]){"curl", "--data=user=bob&token=t6", NULL}),
                        "curl --data=user=bob&token=<redacted>");
    assert_string_equal(shown((const char *[]){"curl", "--data=password=pw7", NULL}),
                        "curl --data=password=<redacted>");
    /* A header whose value holds '=' (base64 padding) is hidden whole. */
    assert_string_equal(
        shown((const char *[]){"curl", "-H", "Authorization: Basic dXNlcjpwYXNz==", NULL}),
        "curl -H Authorization: <redacted>");
    assert_string_equal(shown((const char *[]){"curl", "https://h/?jwt=a&sid=b&side=1", NULL}),
                        "curl https://h/?jwt=<redacted>&sid=<redacted>&side=1");
    /* A header or a URL inside NAME=VALUE; a cluster of curl's options ending in -u. */
    assert_string_equal(
        shown((const char *[]){"git", "-c", "http.extraHeader=Authorization: Bearer t8", "clone",
                               NULL}),
        "git -c http.extraHeader=Authorization: <redacted> clone");
    assert_string_equal(
        shown((const char *[]){"wget", "--header=Authorization: Basic dXNlcjpw==", NULL}),
        "wget --header=Authorization: <redacted>");
    assert_string_equal(
        shown((const char *[]){"curl", "-d", "client_secret=s9&redirect_uri=https://app/cb", NULL}),
        "curl -d client_secret=<redacted>");
    assert_string_equal(shown((const char *[]){
                            "curl", "-d", "user=bob&password=p10&next=https://x/?token=t", NULL}),
                        "curl -d user=bob&password=<redacted>&next=https://x/?token=<redacted>");
    assert_string_equal(shown((const char *[]){"curl", "-fsSu", "alice:p11", NULL}),
                        "curl -fsSu alice:<redacted>");
    /* Joined to a short option, in git's per-URL header key, in a cookie, and the short
     * -p of programs where it is a password. */
    assert_string_equal(
        shown((const char *[]){"curl", "-HAuthorization: Bearer t12", "-xhttp://u:p13@px:3128",
                               "-fsSuuser:p14", NULL}),
        "curl -HAuthorization: <redacted> -xhttp://u:<redacted>@px:3128 -fsSuuser:<redacted>");
    assert_string_equal(
        shown((const char *[]){"git", "-c",
                               "http.https://github.com/.extraheader=AUTHORIZATION: basic eC1h",
                               "fetch", NULL}),
        "git -c http.https://github.com/.extraheader=AUTHORIZATION: <redacted> fetch");
    assert_string_equal(shown((const char *[]){"curl", "-b", "lang=en; sid=p15", NULL}),
                        "curl -b lang=en; sid=<redacted>");
    assert_string_equal(shown((const char *[]){"mysql", "-uroot", "-pp16", "db", NULL}),
                        "mysql -uroot -p<redacted> db");
    assert_string_equal(
        shown((const char *[]){"docker", "login", "-u", "bob", "-p", "p17", "ghcr.io", NULL}),
        "docker login -u bob -p <redacted> ghcr.io");
    assert_string_equal(shown((const char *[]){"docker", "run", "-p", "8080:80", "img", NULL}),
                        "docker run -p 8080:80 img");
    assert_string_equal(shown((const char *[]){"rsync", "-avu", "host:/src", "/dst", NULL}),
                        "rsync -avu host:/src /dst");
    /* A flag named like a secret before --password PW, and a password that starts with
     * "--" (found by fuzz_cmdline): neither value shows. */
    assert_string_equal(
        shown((const char *[]){"tool", "--password-stdin", "--password", "p21", NULL}),
        "tool --password-stdin <redacted> <redacted>");
    assert_string_equal(shown((const char *[]){"tool", "--password", "--p22-secret", "x", NULL}),
                        "tool --password <redacted> <redacted>");
    /* JSON bodies: members named like secrets, strings or not, nested or escaped. */
    assert_string_equal(
        shown((const char *[]){"curl", "-d",
                               "{\"user\":\"bob\", \"password\" : \"p\\\"18\", \"n\":1, "
                               "\"auth\":{\"api_key\":19}, \"pin\":[1]}",
                               NULL}),
        "curl -d {\"user\":\"bob\", \"password\" : \"<redacted>\", \"n\":1, "
        "\"auth\":<redacted>, \"pin\":[1]}");
    assert_string_equal(
        shown((const char *[]){"curl", "--data-raw", "[{\"token\":\"t20\"}]", NULL}),
        "curl --data-raw [{\"token\":\"<redacted>\"}]");
    /* Nothing secret: left alone, a port in a URL included. */
    assert_string_equal(
        shown((const char *[]){"curl", "-v", "https://h:8443/a?b=c", "--max-time", "5", NULL}),
        "curl -v https://h:8443/a?b=c --max-time 5");
    /* An '@' in a path is no password. */
    assert_string_equal(shown((const char *[]){"npm", "i", "https://h/@scope/p:1", NULL}),
                        "npm i https://h/@scope/p:1");
    assert_string_equal(shown((const char *[]){"make", "CC=gcc", "-ux", "a=b&c=d", NULL}),
                        "make CC=gcc -ux a=b&c=d");
}

/* A long command line is cut with "..." and never overruns. */
static void test_command_line_bounded(void **state)
{
    char out[16];
    struct procid_proc p;

    (void)state;
    proc_with(&p, (const char *[]){"a-rather-long-program", "and-its-argument", NULL});
    procid_command_line(&p, out, sizeof(out));
    assert_int_equal(strlen(out), sizeof(out) - 1);
    assert_string_equal(out + strlen(out) - 3, "...");
}

/* The chain by names, nearest first. */
static void test_chain_names(void **state)
{
    struct procid c;
    char out[64];

    (void)state;
    memset(&c, 0, sizeof(c));
    c.nchain = 3;
    strcpy(c.chain[0].exe, "/usr/bin/curl");
    strcpy(c.chain[1].exe, "");
    strcpy(c.chain[2].exe, "/usr/bin/bash");
    procid_chain_names(&c, out, sizeof(out));
    assert_string_equal(out, "curl<?<bash");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_command_line_redacted),
        cmocka_unit_test(test_command_line_bounded),
        cmocka_unit_test(test_chain_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
