/* Starting a tool through sluice; see include/sluice/launch.h. */
#include "sluice/launch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where Debian keeps the system's CAs in one file (ca-certificates). */
#define LAUNCH_SYSTEM_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

/* The variables every runtime reads for its proxy, and those that name a CA bundle. */
static const char *const launch_proxy_vars[] = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                                                "http_proxy", "https_proxy", "all_proxy"};
static const char *const launch_ca_vars[] = {
    "SSL_CERT_FILE",     "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",    "GIT_SSL_CAINFO",      "PIP_CERT",
    "CARGO_HTTP_CAINFO", "DENO_CERT",           "AWS_CA_BUNDLE"};

/* The address a client dials for a; see the header. */
void launch_client_address(const struct listener_addr *a, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "127.0.0.1";

    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)&a->ss;
        if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
            snprintf(ip, sizeof(ip), "::1");
        else
            inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        snprintf(out, cap, "[%s]:%u", ip, ntohs(sin6->sin6_port));
        return;
    }
    {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)&a->ss;
        if (sin->sin_addr.s_addr != htonl(INADDR_ANY))
            inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(out, cap, "%s:%u", ip, ntohs(sin->sin_port));
    }
}

/* Appends one variable to out[*n], unless it is full. */
static void launch_set(struct launch_var *out, size_t cap, size_t *n, const char *name,
                       const char *value)
{
    if (*n == cap)
        return;
    snprintf(out[*n].name, sizeof(out[*n].name), "%s", name);
    snprintf(out[*n].value, sizeof(out[*n].value), "%s", value);
    (*n)++;
}

/* The variables; see the header. */
size_t launch_vars(const char *tool, const char *token, const char *address, const char *ca_bundle,
                   char *const *extra, size_t nextra, struct launch_var *out, size_t cap)
{
    char url[LAUNCH_VALUE_MAX];
    size_t n = 0;

    snprintf(url, sizeof(url), "http://%s:%s@%s", tool, token, address);
    for (size_t i = 0; i < sizeof(launch_proxy_vars) / sizeof(launch_proxy_vars[0]); i++)
        launch_set(out, cap, &n, launch_proxy_vars[i], url);
    /* Nothing bypasses sluice: a NO_PROXY of the user's own would let hosts go direct. */
    launch_set(out, cap, &n, "NO_PROXY", "");
    launch_set(out, cap, &n, "no_proxy", "");
    /* Node's fetch reads the proxy variables only when told to (Node 24 and later). */
    launch_set(out, cap, &n, "NODE_USE_ENV_PROXY", "1");
    /* git sends proxy credentials only when challenged, unless told to send them. */
    launch_set(out, cap, &n, "GIT_HTTP_PROXY_AUTHMETHOD", "basic");
    for (size_t i = 0; ca_bundle != NULL && i < sizeof(launch_ca_vars) / sizeof(launch_ca_vars[0]);
         i++)
        launch_set(out, cap, &n, launch_ca_vars[i], ca_bundle);
    for (size_t i = 0; i < nextra; i++) {
        const char *eq = strchr(extra[i], '=');
        char name[64];

        if (eq == NULL || (size_t)(eq - extra[i]) >= sizeof(name))
            continue; /* the loader let none such through */
        memcpy(name, extra[i], (size_t)(eq - extra[i]));
        name[eq - extra[i]] = '\0';
        launch_set(out, cap, &n, name, eq + 1);
    }
    return n;
}

/* Tries a connection; see the header. */
bool launch_listening(const struct listener_addr *a, int timeout_ms)
{
    struct pollfd pfd;
    int err = 0, fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    socklen_t len = sizeof(err);
    struct listener_addr dial = *a;
    bool ok = false;

    if (fd < 0)
        return false;
    /* A wildcard listener is dialled on loopback, as a local client would. */
    if (dial.ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)(void *)&dial.ss;
        if (sin->sin_addr.s_addr == htonl(INADDR_ANY))
            sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (dial.ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)&dial.ss;
        if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
            sin6->sin6_addr = in6addr_loopback;
    }
    if (connect(fd, (struct sockaddr *)&dial.ss, dial.len) == 0) {
        ok = true;
    } else if (errno == EINPROGRESS) {
        pfd.fd = fd;
        pfd.events = POLLOUT;
        ok = poll(&pfd, 1, timeout_ms) == 1 &&
             getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    }
    close(fd);
    return ok;
}

/* Copies the file at from to the open file out; false on a read or write error. */
static bool launch_copy(const char *from, FILE *out)
{
    char buf[8192];
    size_t n;
    FILE *in = fopen(from, "r");
    bool ok = in != NULL;

    while (ok && (n = fread(buf, 1, sizeof(buf), in)) > 0)
        ok = fwrite(buf, 1, n, out) == n;
    if (in != NULL) {
        ok = ok && !ferror(in);
        fclose(in);
    }
    return ok;
}

/* Writes the bundle; see the header. */
int launch_ca_bundle(const char *ca_cert, char *out, size_t cap, char *err, size_t errcap)
{
    const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[3800], tmp[4000];
    FILE *f;
    bool ok;

    if (cache != NULL && cache[0] == '/')
        snprintf(dir, sizeof(dir), "%s/sluice", cache);
    else if (home != NULL && home[0] == '/')
        snprintf(dir, sizeof(dir), "%s/.cache/sluice", home);
    else {
        snprintf(err, errcap, "no cache directory for the CA bundle: set HOME or XDG_CACHE_HOME");
        return -1;
    }
    {
        char parent[3800];
        snprintf(parent, sizeof(parent), "%s", dir);
        *strrchr(parent, '/') = '\0';
        (void)mkdir(parent, 0700);
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errcap, "cannot make %s: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(out, cap, "%s/ca-bundle.pem", dir);
    snprintf(tmp, sizeof(tmp), "%s.%ld", out, (long)getpid());
    if ((f = fopen(tmp, "w")) == NULL) {
        snprintf(err, errcap, "cannot write the CA bundle in %s: %s", dir, strerror(errno));
        return -1;
    }
    ok = launch_copy(LAUNCH_SYSTEM_BUNDLE, f) && fputc('\n', f) != EOF && launch_copy(ca_cert, f);
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, out) < 0) {
        (void)unlink(tmp);
        snprintf(err, errcap, "cannot write the CA bundle %s from %s and %s", out,
                 LAUNCH_SYSTEM_BUNDLE, ca_cert);
        return -1;
    }
    return 0;
}
