/*
 * The main configuration file (YAML) and the command line over it.  A declarative table of
 * keys (name, type, bounds, default, flags, option, help) drives the loader: unknown keys,
 * wrong types and out-of-range values are errors, and every error in a file is reported,
 * each as "file:line:column: what is wrong, what was expected".  The command line's
 * options are the same keys (see cli.h).  A loaded configuration is immutable.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sluice/settings.h"
#include "sluice/yamldoc.h"

#define CONFIG_MAX_LISTENERS 16
#define CONFIG_MAX_WORKERS   256

/* How sluice is deployed; gateway mode turns on the stricter defaults of later issues. */
enum config_mode {
    CONFIG_MODE_LOCAL = 0, /* a developer's machine */
    CONFIG_MODE_GATEWAY,   /* a shared egress proxy */
};

#define CONFIG_PROXY_FROM_MAX 512

/*
 * One listener entry: where to listen and, optionally, the tool it is reserved for and
 * the load balancers whose PROXY protocol header it believes.
 */
struct config_listener {
    char address[80];                       /* "127.0.0.1:3128" or "[::1]:3128" */
    char tool[SETTINGS_TOOL_ID_MAX];        /* tool id bound to this listener, or "" */
    char proxy_from[CONFIG_PROXY_FROM_MAX]; /* CIDRs, space-separated, or "": none */
    bool ask_credentials;                   /* answer 407 to a request without credentials */
};

/* Everything the main file sets; strings are owned by the config. */
struct sluice_config {
    char *path; /* the file it was loaded from, or NULL for the built-in defaults */
    enum config_mode mode;
    uint32_t workers; /* 0 = one per core */
    struct config_listener listeners[CONFIG_MAX_LISTENERS];
    size_t nlisteners;
    struct sluice_settings settings; /* limits, timeouts, ports, DNS files */
    char *resolv_conf;
    char *hosts_file;
    char *policy_dir;
    char *geoip_country_db;
    char *geoip_asn_db;
    char *ca_cert;
    char *ca_key;
    char *tls_upstream_ca;   /* more CAs trusted for inspected origins (PEM), or NULL */
    uint32_t tls_cert_cache; /* leaves kept for inspected hosts */
    char *audit_path;
    uint32_t audit_sync_ms;         /* fdatasync the trail at most this long after a write */
    uint32_t audit_rotate_mib;      /* rotate the trail past this size; 0: never */
    uint32_t audit_keep;            /* rotated trail files kept */
    char *audit_hash_key;           /* the file of the key secrets are hashed with, or NULL */
    char *audit_secret_headers;     /* more secret header names, comma-separated, or NULL */
    char *capture_dir;              /* the capture store (captured bodies), or NULL: none */
    uint32_t capture_mib;           /* its files in all at most, in MiB */
    char *squid_log;                /* the Squid-format access log, or NULL */
    char *audit_syslog;             /* the syslog target, or NULL: off */
    uint32_t audit_syslog_facility; /* its facility's code */
    char *user;         /* when started as root: whom to become once the listeners are bound */
    char *credentials;  /* the file of users and token hashes, or NULL: none verified */
    char *admin_listen; /* "ADDR:PORT" of the admin listener (/metrics), or NULL: none */
    uint32_t admin_allow_remote; /* 1: admin_listen may be other than a loopback address */
};

/* How a key's value is read. */
enum config_type {
    CFG_MODE,      /* "local" or "gateway" into enum config_mode */
    CFG_UINT,      /* decimal number in [min, max] into uint32_t */
    CFG_DURATION,  /* "10s", "500ms", "1m" into uint32_t milliseconds in [min, max] */
    CFG_PORTS,     /* list of ports, or "443,8443", into settings.connect_ports */
    CFG_PATH,      /* file or directory path into an owned char * */
    CFG_LISTENERS, /* list of addresses or {address, tool} mappings */
    CFG_USER,      /* the name of an existing unprivileged user into an owned char * */
    CFG_SWITCH,    /* "on" or "off" into uint32_t 1 or 0 */
    CFG_NAMES,     /* list of header field names, or "a,b", into an owned comma-joined char * */
    CFG_ADDRESS,   /* one TCP "ADDR:PORT" into an owned char * */
    CFG_SYSLOG,    /* "off" (NULL), or a syslog target (syslogsink.h) into an owned char * */
    CFG_FACILITY,  /* a syslog facility's name into uint32_t its code */
};

/* Checks a CFG_PATH value must pass, and what a reload does with a key. */
#define CFG_F_READABLE  0x1u  /* a readable regular file */
#define CFG_F_DIRECTORY 0x2u  /* an existing directory */
#define CFG_F_RESTART   0x4u  /* read once at startup: a reload cannot apply it */
#define CFG_F_BY_MODE   0x8u  /* a CFG_UINT that also takes "auto": set by the mode */
#define CFG_F_MAKES_DIR 0x10u /* a CFG_PATH of a directory sluice makes when absent */

/*
 * One key of the configuration: its dotted name in the file, type, bounds, default and
 * where it goes, and how the command line spells it.  The file loader, the command line,
 * the usage text and the reload warning are all generated from these rows.
 */
struct config_key {
    const char *name; /* "timeouts.head" */
    enum config_type type;
    uint32_t min, max;
    const char *def;    /* default as it would be written in the file, or NULL */
    unsigned flags;     /* CFG_F_* */
    size_t offset;      /* into struct sluice_config */
    const char *expect; /* what a valid value looks like, for messages */
    const char *option; /* long option without "--", or NULL when only the file sets it */
    int letter;         /* short option letter, or 0 */
    const char *help;   /* one line for the usage text, without the default */
};

/* The table of every key, in the order the usage lists them. */
extern const struct config_key config_keys[];
extern const size_t config_nkeys;

/*
 * Loads the file at path.  Returns the configuration, or NULL with every problem in errs
 * (which the caller frees with yamldoc_errors_clear()).  Relative paths in the file are
 * taken relative to the file's own directory.
 */
struct sluice_config *config_load(const char *path, struct yamldoc_errors *errs);

/* Same as config_load() for text already in memory; path names it in messages. */
struct sluice_config *config_load_buffer(const char *path, const char *data, size_t len,
                                         struct yamldoc_errors *errs);

/*
 * The table's defaults alone, for running without a file.  Returns the configuration, or
 * NULL with the problem in errs.
 */
struct sluice_config *config_defaults(struct yamldoc_errors *errs);

/*
 * Sets key k of cfg to a value given on the command line, through the same parser and
 * bounds as the file (a relative path stays relative to the working directory; a listener,
 * "ADDR:PORT" or "ADDR:PORT,tool=ID", is added to the list).  Returns 0, or -1 with
 * "sluice: --option value: what is wrong; expected ..." added to errs.
 */
int config_set(struct sluice_config *cfg, const struct config_key *k, const char *value,
               struct yamldoc_errors *errs);

/*
 * Checks what no single key can: an admin listener off loopback needs admin.allow_remote;
 * connect_http_port may not be one of connect_ports.
 * Returns 0, or -1 with each problem added to errs (named after the file, or "sluice").
 */
int config_check(const struct sluice_config *cfg, struct yamldoc_errors *errs);

/*
 * Walks the keys a reload cannot apply (CFG_F_RESTART): returns the name of the next one
 * at or after *pos whose value differs between a and b, moving *pos past it, or NULL when
 * there is none left.  Start with *pos = 0.
 */
const char *config_next_restart_change(const struct sluice_config *a, const struct sluice_config *b,
                                       size_t *pos);

/* Frees a configuration.  NULL is a no-op. */
void config_free(struct sluice_config *cfg);

/* Name of a mode for messages. */
const char *config_mode_str(enum config_mode mode);

#endif /* SLUICE_CONFIG_H */
