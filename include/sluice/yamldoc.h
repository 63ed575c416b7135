/*
 * YAML documents for sluice's own files (configuration, policies): loading with bounded
 * size, node helpers, and the error list every loader fills, each error as
 * "file:line:column: message".
 */
#ifndef SLUICE_YAMLDOC_H
#define SLUICE_YAMLDOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <yaml.h>

#define YAMLDOC_MAX_ERRORS 64
#define YAMLDOC_MAX_BYTES  (4u << 20)

/* Every problem found while loading, in file order. */
struct yamldoc_errors {
    size_t count;                    /* problems found; the first YAMLDOC_MAX_ERRORS kept */
    char *lines[YAMLDOC_MAX_ERRORS]; /* "file:line:column: message"; owned */
};

/*
 * Parses data[0..len) (named file in messages) into *doc.  Returns 0, or -1 with a syntax
 * error (and its position) added to errs; *doc then needs no cleanup.
 */
int yamldoc_parse(const char *file, const char *data, size_t len, yaml_document_t *doc,
                  struct yamldoc_errors *errs);

/*
 * Reads the file at path (at most YAMLDOC_MAX_BYTES) into an owned buffer.  Returns it with
 * *len set, or NULL with an error added to errs.
 */
char *yamldoc_read_file(const char *path, size_t *len, struct yamldoc_errors *errs);

/* Adds "file:line:column: message" for node n, or "file: message" when n is NULL, to errs. */
void yamldoc_error(struct yamldoc_errors *errs, const char *file, const yaml_node_t *n,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* "a mapping", "a list" or "a value", for "found ..." messages. */
const char *yamldoc_kind(const yaml_node_t *n);

/* The text of a scalar node (NUL-terminated by libyaml), or NULL for other nodes. */
const char *yamldoc_scalar(const yaml_node_t *n);

/* The text of a scalar, escaped for a message, in buf. */
const char *yamldoc_shown(const yaml_node_t *n, char *buf, size_t cap);

/* Writes every error line to out, then a count. */
void yamldoc_errors_print(const struct yamldoc_errors *errs, FILE *out);

/* Frees the error lines and zeroes errs. */
void yamldoc_errors_clear(struct yamldoc_errors *errs);

#endif /* SLUICE_YAMLDOC_H */
