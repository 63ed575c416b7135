/* YAML documents for sluice's own files; see include/sluice/yamldoc.h. */
#include "sluice/yamldoc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/log.h"

/* Adds one formatted error line. */
void yamldoc_error(struct yamldoc_errors *errs, const char *file, const yaml_node_t *n,
                   const char *fmt, ...)
{
    char msg[512], line[2048 + 64 + sizeof(msg)];
    va_list ap;
    if (errs->count++ >= YAMLDOC_MAX_ERRORS)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* A path longer than the buffer is cut; the position and message stay readable.  An
       error about a whole file (or the command line) has no position to give. */
    if (n != NULL)
        snprintf(line, sizeof(line), "%.2048s:%zu:%zu: %s", file, (size_t)n->start_mark.line + 1,
                 (size_t)n->start_mark.column + 1, msg);
    else
        snprintf(line, sizeof(line), "%.2048s: %s", file, msg);
    errs->lines[errs->count - 1] = strdup(line);
}

/* Parses a document, reporting a syntax error with its position. */
int yamldoc_parse(const char *file, const char *data, size_t len, yaml_document_t *doc,
                  struct yamldoc_errors *errs)
{
    yaml_parser_t parser;
    int ok;

    if (!yaml_parser_initialize(&parser)) {
        yamldoc_error(errs, file, NULL, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    ok = yaml_parser_load(&parser, doc);
    if (!ok) {
        yaml_node_t at = {0};
        at.start_mark = parser.problem_mark;
        yamldoc_error(errs, file, &at, "YAML syntax error: %s%s%s",
                      parser.problem != NULL ? parser.problem : "unreadable",
                      parser.context != NULL ? " " : "",
                      parser.context != NULL ? parser.context : "");
    }
    yaml_parser_delete(&parser);
    return ok ? 0 : -1;
}

/* Reads a whole file, bounded. */
char *yamldoc_read_file(const char *path, size_t *len, struct yamldoc_errors *errs)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t n = 0;

    if (f == NULL) {
        yamldoc_error(errs, path, NULL, "cannot read the file: %s", strerror(errno));
        return NULL;
    }
    data = malloc(YAMLDOC_MAX_BYTES + 1);
    if (data != NULL)
        n = fread(data, 1, YAMLDOC_MAX_BYTES + 1, f);
    if (data == NULL || ferror(f) || n > YAMLDOC_MAX_BYTES) {
        yamldoc_error(errs, path, NULL, "cannot read the file: %s",
                      data == NULL ? "out of memory"
                      : ferror(f)  ? strerror(errno)
                                   : "larger than 4 MiB");
        free(data);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len = n;
    return data;
}

/* Names the kind of a node. */
const char *yamldoc_kind(const yaml_node_t *n)
{
    if (n == NULL)
        return "nothing";
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    return "a value";
}

/* The text of a scalar node. */
const char *yamldoc_scalar(const yaml_node_t *n)
{
    return n != NULL && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* Escapes a scalar for a message. */
const char *yamldoc_shown(const yaml_node_t *n, char *buf, size_t cap)
{
    if (n == NULL || n->type != YAML_SCALAR_NODE) {
        snprintf(buf, cap, "%s", yamldoc_kind(n));
        return buf;
    }
    return log_escape(buf, cap, (const char *)n->data.scalar.value, n->data.scalar.length);
}

/* Prints every error and a count. */
void yamldoc_errors_print(const struct yamldoc_errors *errs, FILE *out)
{
    for (size_t i = 0; i < errs->count && i < YAMLDOC_MAX_ERRORS; i++)
        fprintf(out, "%s\n", errs->lines[i] != NULL ? errs->lines[i] : "(out of memory)");
    if (errs->count > YAMLDOC_MAX_ERRORS)
        fprintf(out, "... and %zu more\n", errs->count - YAMLDOC_MAX_ERRORS);
    fprintf(out, "%zu error%s\n", errs->count, errs->count == 1 ? "" : "s");
}

/* Frees the error lines. */
void yamldoc_errors_clear(struct yamldoc_errors *errs)
{
    for (size_t i = 0; i < errs->count && i < YAMLDOC_MAX_ERRORS; i++)
        free(errs->lines[i]);
    memset(errs, 0, sizeof(*errs));
}
