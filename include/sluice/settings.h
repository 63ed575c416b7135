/*
 * Runtime settings of the proxy core: limits, timeouts and the CONNECT port list, filled
 * from defaults, the configuration file and the command line (config.c), and the shape
 * of a tool id, which the configuration and the policies share.  Immutable once the
 * workers start.
 */
#ifndef SLUICE_SETTINGS_H
#define SLUICE_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/http1.h"

#define SETTINGS_MAX_CONNECT_PORTS 64
/* Room for a tool id, NUL included. */
#define SETTINGS_TOOL_ID_MAX 64

/* A limit whose value depends on the mode until settings_apply_mode() sets it ("auto"). */
#define SETTINGS_BY_MODE UINT32_MAX

/* Connections one client address may hold in gateway mode unless configured. */
#define SETTINGS_GATEWAY_PER_CLIENT 256
/* Bytes per second a request body must keep up in gateway mode unless configured. */
#define SETTINGS_GATEWAY_UPLOAD_RATE 1024

/* Every tunable of the core, with the defaults documented in settings_init(). */
struct sluice_settings {
    struct http1_limits request_limits;  /* bounds on a client's request head */
    struct http1_limits response_limits; /* bounds on an upstream's response head */
    uint32_t max_connections;            /* open client connections, all workers together */
    uint32_t max_conns_per_client;       /* of those, from one client address (/64 for IPv6) */
    uint32_t min_upload_rate;            /* bytes/s a request body keeps up after the grace */
    uint32_t upload_grace_ms;            /* how long a body may take before that rate applies */
    uint16_t connect_ports[SETTINGS_MAX_CONNECT_PORTS]; /* ports CONNECT may reach */
    uint32_t connect_http_port; /* a CONNECT to this port is read as plain HTTP; 0: none */
    size_t nconnect_ports;
    uint32_t timeout_head_ms;        /* whole request head, from its first byte (slowloris) */
    uint32_t timeout_keepalive_ms;   /* idle client between two requests */
    uint32_t timeout_connect_ms;     /* name resolution plus connect, all addresses together */
    uint32_t timeout_response_ms;    /* request sent, no response head yet */
    uint32_t timeout_idle_ms;        /* no byte either way while a message body flows */
    uint32_t timeout_tunnel_ms;      /* no byte either way in a tunnel */
    uint32_t drain_ms;               /* shutdown: time left to requests in flight */
    uint32_t upstream_idle_max;      /* idle upstream connections kept per worker */
    uint32_t upstream_idle_per_host; /* of those, per (host, port) */
    uint32_t upstream_idle_ms;       /* how long an idle upstream connection is kept */
    uint32_t identify_processes;     /* 1: a loopback client's process names its tool */
    uint32_t audit_interim_ms;       /* interim records of exchanges this long, and every
                                        this long after; 0: none */
    uint32_t audit_fail_open;        /* 1: requests go on while the audit trail cannot be written */
    uint32_t capture_message_kib;    /* bytes of one captured body kept at most, in KiB */
    const char *resolv_conf;         /* nameservers for evdns; not owned */
    const char *hosts_file;          /* hosts file for evdns; not owned */
};

/* Fills s with the defaults. */
void settings_init(struct sluice_settings *s);

/*
 * Sets the limits left to the mode ("auto"): a gateway bounds what one client can hold
 * (connections per address, a minimum upload rate), a laptop proxy, whose every client is
 * 127.0.0.1, does not.
 */
void settings_apply_mode(struct sluice_settings *s, bool gateway);

/*
 * Parses a duration ("500ms", "2s", "1.5", "3m"; no unit means seconds) into *ms.
 * Accepts 1 ms to 7 days.  Returns 0, or -1 with *errstr set.
 */
int settings_parse_duration(const char *text, uint32_t *ms, const char **errstr);

/*
 * Parses a comma-separated list of ports 1..65535 into s->connect_ports.
 * Returns 0, or -1 with *errstr set.
 */
int settings_parse_ports(struct sluice_settings *s, const char *text, const char **errstr);

/* Parses an unsigned integer in [min, max] into *out.  Returns 0 or -1 with *errstr. */
int settings_parse_uint(const char *text, uint32_t min, uint32_t max, uint32_t *out,
                        const char **errstr);

/* True when CONNECT may reach port under s. */
/* True when s is a tool id: 1 to 63 lower-case letters, digits, '-', '_' or '.'. */
bool settings_is_tool_id(const char *s);

bool settings_connect_port_allowed(const struct sluice_settings *s, uint16_t port);

#endif /* SLUICE_SETTINGS_H */
