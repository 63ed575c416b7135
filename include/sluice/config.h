/*
 * The main configuration file (YAML).  A declarative table of keys (name, type, bounds,
 * default, flags) drives the loader: unknown keys, wrong types and out-of-range values are
 * errors, and every error in a file is reported, each as "file:line:column: what is wrong,
 * what was expected".  A loaded configuration is immutable.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sluice/settings.h"
#include "sluice/yamldoc.h"

#define CONFIG_MAX_LISTENERS 16

/* How sluice is deployed; gateway mode turns on the stricter defaults of later issues. */
enum config_mode {
    CONFIG_MODE_LOCAL = 0, /* a developer's machine */
    CONFIG_MODE_GATEWAY,   /* a shared egress proxy */
};

/* One listener entry: where to listen and, optionally, the tool it is reserved for. */
struct config_listener {
    char address[80]; /* "127.0.0.1:3128" or "[::1]:3128" */
    char tool[64];    /* tool id bound to this listener, or "" */
};

/* Everything the main file sets; strings are owned by the config. */
struct sluice_config {
    char *path; /* the file it was loaded from */
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
    char *audit_path;
};

/*
 * Loads the file at path.  Returns the configuration, or NULL with every problem in errs
 * (which the caller frees with yamldoc_errors_clear()).  Relative paths in the file are
 * taken relative to the file's own directory.
 */
struct sluice_config *config_load(const char *path, struct yamldoc_errors *errs);

/* Same as config_load() for text already in memory; path names it in messages. */
struct sluice_config *config_load_buffer(const char *path, const char *data, size_t len,
                                         struct yamldoc_errors *errs);

/* Frees a configuration.  NULL is a no-op. */
void config_free(struct sluice_config *cfg);

/* Name of a mode for messages. */
const char *config_mode_str(enum config_mode mode);

#endif /* SLUICE_CONFIG_H */
