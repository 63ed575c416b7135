/* Listening sockets; see include/sluice/listener.h. */
#include "sluice/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Parses an address with a mandatory port (0 allowed: the kernel picks one). */
int listener_parse(const char *text, struct listener_addr *out, const char **errstr)
{
    const char *colon = strrchr(text, ':');
    char host[64];
    size_t hlen;
    unsigned long port = 0;

    memset(out, 0, sizeof(*out));
    *errstr = "expected ADDR:PORT with a numeric address, e.g. 127.0.0.1:3128 or [::1]:3128";
    if (colon == NULL || colon[1] == '\0' || strlen(text) >= sizeof(out->text))
        return -1;
    for (const char *p = colon + 1; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || port > 65535)
            return -1;
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535)
        return -1;
    hlen = (size_t)(colon - text);
    if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']') {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)&out->ss;
        if (hlen - 2 >= sizeof(host))
            return -1;
        memcpy(host, text + 1, hlen - 2);
        host[hlen - 2] = '\0';
        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
            return -1;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        out->len = sizeof(*sin6);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)(void *)&out->ss;
        if (hlen == 0 || hlen >= sizeof(host))
            return -1;
        memcpy(host, text, hlen);
        host[hlen] = '\0';
        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            return -1;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        out->len = sizeof(*sin);
    }
    snprintf(out->text, sizeof(out->text), "%s", text);
    return 0;
}

/* Opens a non-blocking listening socket on a. */
int listener_open(const struct listener_addr *a)
{
    int fd, one = 1, saved;

    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    if (a->ss.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
        goto fail;
    /* Heads and small bodies must not wait for Nagle.  Linux gives accepted sockets the
     * listener's TCP_NODELAY, which saves a call per connection. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        goto fail;
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
        goto fail;
    if (listen(fd, 4096) < 0)
        goto fail;
    return fd;

fail:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* The local port of a bound socket. */
uint16_t listener_bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)(void *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)(void *)&ss)->sin6_port);
    return 0;
}

/* Overwrites the port of a. */
void listener_set_port(struct listener_addr *a, uint16_t port)
{
    if (a->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)(void *)&a->ss)->sin_port = htons(port);
    else if (a->ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)(void *)&a->ss)->sin6_port = htons(port);
}

/* Formats a for messages and the ready file. */
void listener_format(const struct listener_addr *a, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)&a->ss;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(out, cap, "%s:%u", ip, ntohs(sin->sin_port));
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)&a->ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        snprintf(out, cap, "[%s]:%u", ip, ntohs(sin6->sin6_port));
    }
}
