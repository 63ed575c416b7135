/* Responses that sluice makes itself; see include/sluice/errpage.h. */
#include "sluice/errpage.h"

#include <stdio.h>
#include <string.h>

/* The reason phrase for the statuses sluice sends. */
const char *errpage_reason(unsigned status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

/* Copies s into a quoted-string body for Proxy-Status: drops '"' and '\\'. */
static void errpage_quote(char *dst, size_t cap, const char *s)
{
    size_t o = 0;

    for (; *s != '\0' && o + 1 < cap; s++)
        if (*s != '"' && *s != '\\' && (unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f)
            dst[o++] = *s;
    dst[o] = '\0';
}

/* Appends a complete sluice-made response with a short text body. */
size_t errpage_write(struct evbuffer *out, unsigned status, const char *error_type,
                     const char *host, const char *what)
{
    char body[1024], details[512];
    int blen;
    int hlen;

    if (host != NULL && host[0] != '\0')
        blen = snprintf(body, sizeof(body), "sluice: %s (host %s)\n", what, host);
    else
        blen = snprintf(body, sizeof(body), "sluice: %s\n", what);
    if (blen < 0)
        blen = 0;
    if ((size_t)blen >= sizeof(body))
        blen = (int)sizeof(body) - 1;
    errpage_quote(details, sizeof(details), what);
    hlen = evbuffer_add_printf(out,
                               "HTTP/1.1 %u %s\r\n"
                               "Server: sluice\r\n"
                               "Proxy-Status: sluice; error=%s; details=\"%s\"\r\n"
                               "Content-Type: text/plain; charset=utf-8\r\n"
                               "Content-Length: %d\r\n"
                               "Cache-Control: no-store\r\n"
                               "%s"
                               "Connection: close\r\n"
                               "\r\n",
                               status, errpage_reason(status), error_type, details, blen,
                               status == 407 ? "Proxy-Authenticate: Basic realm=\"sluice\", "
                                               "charset=\"UTF-8\"\r\n"
                                             : "");
    evbuffer_add(out, body, (size_t)blen);
    return (hlen > 0 ? (size_t)hlen : 0) + (size_t)blen;
}
