/*
 * Who is calling, found without the client's help: the local process behind a loopback
 * connection (this test binary; python3; curl started by a script registered as a tool),
 * its place among the sources (it outranks proxy credentials, which are recorded as a
 * mismatch), the User-Agent as the weakest source, and --identify-processes off.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "itcommon.h"

/* The profiles of these cases: each names its tool by one kind of source. */
static const char *write_profiles(struct itcase *t)
{
    char path[600];
    const char *dir =
        it_write_policy(t, "unidentified: allow\n", "self",
                        "id: self\nidentify: {executables: [\"*/it_identity\"]}\ndefault: allow\n");

    snprintf(path, sizeof(path), "%s/tools/wrapped.yaml", dir);
    assert_int_equal(tio_write_file(path, "id: wrapped\n"
                                          "identify: {executables: [\"*/mytool.sh\"]}\n"
                                          "default: allow\n"),
                     0);
    snprintf(path, sizeof(path), "%s/tools/py.yaml", dir);
    assert_int_equal(tio_write_file(path, "id: py\n"
                                          "identify: {executables: [\"*/python3*\"]}\n"
                                          "default: allow\n"),
                     0);
    snprintf(path, sizeof(path), "%s/tools/beta.yaml", dir);
    assert_int_equal(tio_write_file(path, "id: beta\n"
                                          "identify: {proxy_users: [beta], user_agents: "
                                          "[\"betatool/*\"]}\n"
                                          "default: allow\n"),
                     0);
    return dir;
}

/* Runs argv (from PATH) to its end within 20 s, output to /dev/null; returns its status. */
static int run(const char *const argv[])
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int st = -1;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)(uintptr_t)argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 2000; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        tio_sleep_ms(10);
    }
    (void)kill(pid, SIGKILL);
    (void)waitpid(pid, &st, 0);
    return -1;
}

/* GETs path with libcurl from this process, with extra header lines (NULL: none). */
static void get_self(struct itcase *t, const char *path, const char *header)
{
    struct itcurl *c = itcurl_new(t->proxy_port);
    char url[128];

    assert_non_null(c);
    if (header != NULL)
        itcurl_add_header(c, header);
    assert_int_equal(itcurl_perform(c, it_url(t, path, url, sizeof(url))), CURLE_OK);
    assert_int_equal(itcurl_status(c), 200);
    itcurl_free(c);
}

/* The real path of this test binary, as /proc/self/exe says. */
static void self_exe(char *out, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);

    assert_true(n > 0);
    out[n] = '\0';
}

/*
 * This test binary connects without saying who it is: its process names the tool, with
 * pid and executable in the access line; proxy credentials naming another tool do not
 * change that and are recorded as a mismatch.
 */
static void test_process_names_tool(void **state)
{
    struct itcase *t = *state;
    const char *dir = write_profiles(t);
    const char *const args[] = {"--policy-dir", dir, NULL};
    char pid[24], exe[512], *line;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    get_self(t, "/self", NULL);
    line = it_access_line(t, "/self\"", NULL);
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    self_exe(exe, sizeof(exe));
    it_assert_access_field(line, "tool", "self");
    it_assert_access_field(line, "id", "process");
    it_assert_access_field(line, "pid", pid);
    it_assert_access_field(line, "exe", exe);
    free(line);
    get_self(t, "/claims-beta", "Proxy-Authorization: Basic YmV0YTp4"); /* beta:x */
    line = it_access_line(t, "/claims-beta\"", NULL);
    it_assert_access_field(line, "tool", "self");
    it_assert_access_field(line, "id", "process");
    it_assert_access_field(line, "mismatch", "proxy-user:beta");
    free(line);
}

/*
 * A script registered as a tool runs curl: curl's connection is the script's tool, found
 * through curl's parent; python3's urllib is the tool its interpreter names.
 */
static void test_ancestor_and_interpreter(void **state)
{
    struct itcase *t = *state;
    const char *dir = write_profiles(t);
    const char *const args[] = {"--policy-dir", dir, NULL};
    char script[600], text[600], proxy[64], url[128], code[400], *line;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%u", t->proxy_port);
    snprintf(script, sizeof(script), "%s/mytool.sh", t->env->dir);
    /* Not exec: curl must be a child of the shell running the script. */
    snprintf(text, sizeof(text), "#!/bin/sh\ncurl -s -o /dev/null --noproxy '' -x %s %s\nexit $?\n",
             proxy, it_url(t, "/from-script", url, sizeof(url)));
    assert_int_equal(tio_write_file(script, text), 0);
    assert_int_equal(chmod(script, 0755), 0);
    {
        const char *const argv[] = {"/bin/sh", script, NULL};
        int st = run(argv);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    line = it_access_line(t, "/from-script\"", NULL);
    it_assert_access_field(line, "tool", "wrapped");
    it_assert_access_field(line, "id", "process");
    free(line);

    snprintf(code, sizeof(code),
             "import urllib.request as u\n"
             "o = u.build_opener(u.ProxyHandler({'http': '%s'}))\n"
             "o.open('%s', timeout=10).read()\n",
             proxy, it_url(t, "/from-python", url, sizeof(url)));
    {
        const char *const argv[] = {"python3", "-c", code, NULL};
        int st = run(argv);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    line = it_access_line(t, "/from-python\"", NULL);
    it_assert_access_field(line, "tool", "py");
    it_assert_access_field(line, "id", "process");
    free(line);
}

/*
 * With --identify-processes off, the process names nothing: the User-Agent, the weakest
 * source, then names the tool, and without one the client is unidentified.
 */
static void test_user_agent_when_processes_off(void **state)
{
    struct itcase *t = *state;
    const char *dir = write_profiles(t);
    const char *const args[] = {"--policy-dir", dir, "--identify-processes", "off", NULL};
    char *line;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    get_self(t, "/ua", "User-Agent: BetaTool/3.2 (linux)");
    line = it_access_line(t, "/ua\"", NULL);
    it_assert_access_field(line, "tool", "beta");
    it_assert_access_field(line, "id", "user-agent");
    assert_null(strstr(line, " pid="));
    free(line);
    get_self(t, "/none", NULL);
    line = it_access_line(t, "/none\"", NULL);
    it_assert_access_field(line, "tool", "unidentified");
    it_assert_access_field(line, "id", "none");
    free(line);
}

/* Runs the cases, each with its own environment. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_process_names_tool, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_ancestor_and_interpreter, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_user_agent_when_processes_off, it_setup, it_teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    it_select_cases(); /* SLUICE_CASE=name runs one case */
    return cmocka_run_group_tests_name("integration_identity", tests, NULL, NULL);
}
