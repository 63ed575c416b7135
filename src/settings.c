/* Runtime settings: defaults and the parsers for values given on the command line. */
#include "sluice/settings.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Fills s with the documented defaults. */
void settings_init(struct sluice_settings *s)
{
    memset(s, 0, sizeof(*s));
    http1_limits_default(&s->request_limits);
    http1_limits_default(&s->response_limits);
    /* Origins send more fields than clients (cookies, security headers), and old ones
     * end lines with LF alone; neither changes where a response ends. */
    s->response_limits.max_fields = 256;
    s->response_limits.allow_bare_lf = true;
    s->max_connections = 16384;
    s->max_conns_per_client = SETTINGS_BY_MODE;
    s->min_upload_rate = SETTINGS_BY_MODE;
    s->upload_grace_ms = 10 * 1000;
    s->connect_ports[0] = 443;
    s->nconnect_ports = 1;
    s->timeout_head_ms = 10 * 1000;
    s->timeout_keepalive_ms = 60 * 1000;
    s->timeout_connect_ms = 10 * 1000;
    s->timeout_response_ms = 15 * 60 * 1000;
    s->timeout_idle_ms = 300 * 1000;
    s->timeout_tunnel_ms = 3600 * 1000;
    s->drain_ms = 10 * 1000;
    s->upstream_idle_max = 1024;
    s->upstream_idle_per_host = 256;
    s->upstream_idle_ms = 30 * 1000;
    s->capture_message_kib = 1024;
    s->resolv_conf = "/etc/resolv.conf";
    s->hosts_file = "/etc/hosts";
}

/* Resolves the limits left to the mode. */
void settings_apply_mode(struct sluice_settings *s, bool gateway)
{
    if (s->max_conns_per_client == SETTINGS_BY_MODE)
        s->max_conns_per_client = gateway ? SETTINGS_GATEWAY_PER_CLIENT : 0;
    if (s->min_upload_rate == SETTINGS_BY_MODE)
        s->min_upload_rate = gateway ? SETTINGS_GATEWAY_UPLOAD_RATE : 0;
}

/* Parses a duration with an optional ms/s/m unit into milliseconds. */
int settings_parse_duration(const char *text, uint32_t *ms, const char **errstr)
{
    char *end = NULL;
    double value, scale = 1000.0;

    errno = 0;
    value = strtod(text, &end);
    if (end == text || errno != 0 || !isfinite(value) || value < 0) {
        *errstr = "not a duration (a number with an optional unit: 500ms, 2s, 1m)";
        return -1;
    }
    if (strcmp(end, "ms") == 0)
        scale = 1.0;
    else if (strcmp(end, "m") == 0)
        scale = 60000.0;
    else if (*end != '\0' && strcmp(end, "s") != 0) {
        *errstr = "unknown unit: use ms, s or m";
        return -1;
    }
    value *= scale;
    if (value < 1.0 || value > 7.0 * 86400.0 * 1000.0) {
        *errstr = "duration must be between 1ms and 7 days";
        return -1;
    }
    *ms = (uint32_t)value;
    return 0;
}

/* Parses an unsigned decimal integer within [min, max]. */
int settings_parse_uint(const char *text, uint32_t min, uint32_t max, uint32_t *out,
                        const char **errstr)
{
    char *end = NULL;
    unsigned long long v;

    if (*text < '0' || *text > '9') {
        *errstr = "expected a number";
        return -1;
    }
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0') {
        *errstr = "expected a number";
        return -1;
    }
    if (v < min || v > max) {
        *errstr = "number out of range";
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* Parses "443,8443" into the CONNECT port list, replacing the default. */
int settings_parse_ports(struct sluice_settings *s, const char *text, const char **errstr)
{
    size_t n = 0;
    const char *p = text;

    while (*p != '\0') {
        char item[8];
        size_t len = strcspn(p, ",");
        uint32_t port;

        if (len == 0 || len >= sizeof(item)) {
            *errstr = "expected a comma-separated list of ports such as 443,8443";
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (settings_parse_uint(item, 1, 65535, &port, errstr) < 0)
            return -1;
        if (n == SETTINGS_MAX_CONNECT_PORTS) {
            *errstr = "too many ports (at most 64)";
            return -1;
        }
        s->connect_ports[n++] = (uint16_t)port;
        p += len;
        if (*p == ',')
            p++;
    }
    if (n == 0) {
        *errstr = "expected at least one port";
        return -1;
    }
    s->nconnect_ports = n;
    return 0;
}

/* True when port is in the CONNECT list. */
bool settings_connect_port_allowed(const struct sluice_settings *s, uint16_t port)
{
    for (size_t i = 0; i < s->nconnect_ports; i++)
        if (s->connect_ports[i] == port)
            return true;
    return false;
}

/* Checks the shape of a tool id; see the header. */
bool settings_is_tool_id(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && n < SETTINGS_TOOL_ID_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-_.") == n;
}
