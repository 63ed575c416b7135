/* Per-test environment: temp directory, DNS stub, hosts file, resolv.conf, sluice. */
#include "testenv.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tio.h"

#define TESTENV_MAX_ARGS 48

/* Creates the directory and the two name-service files. */
struct testenv *testenv_new(void)
{
    struct testenv *env = calloc(1, sizeof(*env));
    const char *tmp = getenv("TMPDIR");
    char text[128];

    if (env == NULL)
        return NULL;
    snprintf(env->dir, sizeof(env->dir), "%s/sluice-it-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(env->dir) == NULL) {
        free(env);
        return NULL;
    }
    env->dns = dnsstub_start();
    if (env->dns == NULL)
        goto fail;
    snprintf(env->hosts_path, sizeof(env->hosts_path), "%s/hosts", env->dir);
    snprintf(env->resolv_path, sizeof(env->resolv_path), "%s/resolv.conf", env->dir);
    snprintf(text, sizeof(text), "nameserver 127.0.0.1:%u\n", dnsstub_port(env->dns));
    if (tio_write_file(env->resolv_path, text) != 0 ||
        tio_write_file(env->hosts_path, "127.0.0.1 localhost origin.test\n"
                                        "::1 localhost6 origin6.test\n"
                                        "::1 dual.test\n"
                                        "127.0.0.1 dual.test\n"
                                        "127.0.1.1 de.test\n"
                                        "127.0.2.1 kp.test\n") != 0)
        goto fail;
    return env;
fail:
    testenv_free(env);
    return NULL;
}

/* True when args holds s. */
static bool testenv_has_arg(const char *const args[], const char *s)
{
    size_t i;

    for (i = 0; args != NULL && args[i] != NULL; i++) {
        if (strcmp(args[i], s) == 0)
            return true;
    }
    return false;
}

/* Builds the command line and starts sluice. */
struct sluiceproc *testenv_start_proxy(struct testenv *env, const char *const args[])
{
    const char *argv[TESTENV_MAX_ARGS + 16];
    size_t n = 0;
    size_t i;

    if (!testenv_has_arg(args, "--listen") && !testenv_has_arg(args, "-l")) {
        argv[n++] = "--listen";
        argv[n++] = "127.0.0.1:0";
    }
    if (!testenv_has_arg(args, "--drain-timeout")) {
        argv[n++] = "--drain-timeout";
        argv[n++] = "2s";
    }
    argv[n++] = "-w";
    argv[n++] = "2";
    argv[n++] = "-v";
    argv[n++] = "--resolv-conf";
    argv[n++] = env->resolv_path;
    argv[n++] = "--hosts-file";
    argv[n++] = env->hosts_path;
    for (i = 0; args != NULL && args[i] != NULL && i < TESTENV_MAX_ARGS; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    sluiceproc_free(env->proxy);
    env->proxy = sluiceproc_spawn(env->dir, argv);
    if (env->proxy == NULL)
        return NULL;
    if (!sluiceproc_wait_ready(env->proxy, 15000)) {
        fprintf(stderr, "testenv: sluice did not become ready\n");
        sluiceproc_dump_log(env->proxy, 8192);
        sluiceproc_free(env->proxy);
        env->proxy = NULL;
        return NULL;
    }
    env->proxy_port = sluiceproc_port(env->proxy, 0);
    return env->proxy;
}

/* Stops the proxy and judges how it ended. */
bool testenv_stop_proxy(struct testenv *env)
{
    int st;
    bool ok;

    if (env->proxy == NULL)
        return true;
    st = sluiceproc_stop(env->proxy, 10000);
    ok = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
         !sluiceproc_sanitizer_report(env->proxy);
    if (!ok) {
        if (st == -1)
            fprintf(stderr, "testenv: sluice could not be reaped\n");
        else if (WIFSIGNALED(st))
            fprintf(stderr, "testenv: sluice died of signal %d\n", WTERMSIG(st));
        else
            fprintf(stderr, "testenv: sluice exited with status %d\n", WEXITSTATUS(st));
        sluiceproc_dump_log(env->proxy, 16384);
    }
    sluiceproc_free(env->proxy);
    env->proxy = NULL;
    return ok;
}

/* Joins the directory and a name into the caller's buffer. */
const char *testenv_path(const struct testenv *env, const char *name, char *buf, size_t cap)
{
    size_t dl = strlen(env->dir);
    size_t nl = strlen(name);

    if (cap == 0)
        return "";
    if (dl + nl + 2 > cap) {
        buf[0] = '\0';
        return buf;
    }
    memcpy(buf, env->dir, dl);
    buf[dl] = '/';
    memcpy(buf + dl + 1, name, nl + 1);
    return buf;
}

/* Removes the files in the (flat) directory, then the directory. */
static void testenv_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        char path[600];

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        (void)unlink(path);
    }
    closedir(d);
    (void)rmdir(dir);
}

/* Releases everything. */
void testenv_free(struct testenv *env)
{
    if (env == NULL)
        return;
    if (env->proxy != NULL)
        (void)testenv_stop_proxy(env);
    dnsstub_stop(env->dns);
    if (getenv("SLUICE_IT_KEEP") != NULL)
        fprintf(stderr, "testenv: kept %s\n", env->dir);
    else
        testenv_rmdir(env->dir);
    free(env);
}
