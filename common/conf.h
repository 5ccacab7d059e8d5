/*
 * conf.h - table-driven configuration: one table of keys per role drives
 * the INI parser, validation, `--key value` overrides, --help and the dump
 * of the effective configuration.
 *
 * A role (worker, ps, gen, emb) declares its keys once with an X-macro
 *   X(section, name, TYPE, "default", min, max, "choices", "help")
 * and builds both its struct (CONF_FIELD) and its key table (CONF_ROW) from
 * that one list. Files are INI (parsed by inih): a key is looked up in its
 * section, so `[model]` keys may be shared by several roles while `[ps]`
 * keys are only read by the parameter server. A section a role does not
 * use but knows of (listed in the schema) is skipped; anything else - an
 * unknown section or key, a value of the wrong type or out of range - is an
 * error naming the file, the line and the key.
 *
 * Types: INT (int64_t), FLOAT (double), BOOL (int 0/1: true/false/yes/no/
 * on/off/1/0), SIZE (uint64_t bytes, suffixes K/M/G/T, powers of 1024),
 * STR (conf_str_t), ENUM (int index into "a|b|c"), TEXT (conf_text_t: a
 * string of any length on the heap, for lists that grow with the data such
 * as the per-slot keys; free with conf_release()).
 *
 * Thread-safety: none needed; configuration is loaded once by main.
 */
#ifndef FUNNEL_CONF_H
#define FUNNEL_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"

#define CONF_STR_MAX 1024
#define CONF_LINE_MAX (16 << 20) /* bytes of a config file line: what a TEXT value may hold */

typedef struct conf_str {
    char s[CONF_STR_MAX];
} conf_str_t;

/* A TEXT value: s points to the key's default text (never written
 * through) or to a heap copy of the value set; never NULL after
 * conf_defaults(). */
typedef struct conf_text {
    char *s;
} conf_text_t;

typedef enum {
    CONF_INT,
    CONF_FLOAT,
    CONF_BOOL,
    CONF_SIZE,
    CONF_STR,
    CONF_ENUM,
    CONF_TEXT
} conf_type_t;

#define CONF_CTYPE_INT int64_t
#define CONF_CTYPE_FLOAT double
#define CONF_CTYPE_BOOL int
#define CONF_CTYPE_SIZE uint64_t
#define CONF_CTYPE_STR conf_str_t
#define CONF_CTYPE_ENUM int
#define CONF_CTYPE_TEXT conf_text_t

/* Struct member for one key: use as X-macro callback inside a struct. */
#define CONF_FIELD(sect, name, type, def, lo, hi, choices, help) CONF_CTYPE_##type name;

typedef struct conf_key {
    const char *section; /* INI section, e.g. "model" */
    const char *name;    /* key, also the --name override */
    conf_type_t type;
    size_t offset;       /* of the field in the role's struct */
    const char *def;     /* default, as text */
    double min, max;     /* range for INT/FLOAT/SIZE (inclusive) */
    const char *choices; /* "a|b|c" for ENUM, else NULL */
    const char *help;
} conf_key_t;

/* Table row for one key of struct type ST (pass ST through a wrapper macro). */
#define CONF_ROW(ST, sect, name, type, def, lo, hi, choices, help) \
    {#sect, #name, CONF_##type, offsetof(ST, name), def, lo, hi, choices, help},

/* Same, for a key stored in a nested struct member (e.g. model_conf_t model). */
#define CONF_ROW_IN(ST, member, sect, name, type, def, lo, hi, choices, help) \
    {#sect, #name, CONF_##type, offsetof(ST, member.name), def, lo, hi, choices, help},

/* Which keys a config file or a `--key` option set (not just the default):
 * one flag per key of the schema, by index (conf_parse_args_given). */
#define CONF_GIVEN_MAX 512 /* keys of a schema that can be tracked */
typedef struct conf_given {
    unsigned char key[CONF_GIVEN_MAX]; /* 1: given */
} conf_given_t;

typedef struct conf_schema {
    const char *role; /* "worker", "ps", ... */
    const conf_key_t *keys;
    size_t nkeys;
    const char *const *other_sections; /* NULL-terminated; skipped in files */
} conf_schema_t;

/* Set every key of obj to its default. Returns 0 or ERR_CONFIG (a bad
 * default is a programming error but is reported, not asserted). */
int conf_defaults(const conf_schema_t *sc, void *obj, errbuf_t *eb);

/* Free the TEXT values of obj that are not their default (each back to
 * its default); the other keys keep their values. Call once a role is done
 * with its configuration; accepts an obj never set up (all zero). */
void conf_release(const conf_schema_t *sc, void *obj);

/* Load an INI file over obj. Missing file: ERR_IO naming it; bad content:
 * ERR_CONFIG "path:line: key 'k': reason". */
int conf_load_file(const conf_schema_t *sc, void *obj, const char *path, errbuf_t *eb);

/* Set one key from text. `where` prefixes error messages ("--emb_dim",
 * "conf/x.conf:12"). Unknown key: ERR_NOTFOUND. */
int conf_set(const conf_schema_t *sc, void *obj, const char *name, const char *value,
             const char *where, errbuf_t *eb);

/* Find a key by name, or NULL. */
const conf_key_t *conf_find(const conf_schema_t *sc, const char *name);

/*
 * Parse a command line: defaults, then `--conf FILE` (anywhere), then every
 * `--key value` / `--key=value` in order (a BOOL key may stand alone).
 * Arguments that are not options are collected, in order, into pos[]
 * (up to maxpos; *npos set). `--help`/`-h` sets *help = 1.
 * Returns 0, or ERR_CONFIG / ERR_IO with eb filled.
 */
int conf_parse_args(const conf_schema_t *sc, void *obj, int argc, char **argv, char **pos,
                    int maxpos, int *npos, int *help, errbuf_t *eb);

/* conf_parse_args() that also records in *given (cleared first) which
 * keys the user set, for conf_key_given(): every `--key` option, and every
 * config file line whose value differs from the key's default (a file that
 * lists the defaults, as the shipped ones do, pins nothing). */
int conf_parse_args_given(const conf_schema_t *sc, void *obj, conf_given_t *given, int argc,
                          char **argv, char **pos, int maxpos, int *npos, int *help, errbuf_t *eb);

/* 1 if key `name` was set by a `--name` option or a config file line
 * (other than the default) as recorded in given, 0 if not (it holds its default, or a value the
 * program filled with conf_set(), such as one read from a saved model's
 * META), -1 for a key the schema does not have. */
int conf_key_given(const conf_schema_t *sc, const conf_given_t *given, const char *name);

/* Print every key: --name TYPE (default) [range] help, grouped by section. */
void conf_print_help(const conf_schema_t *sc, FILE *out);

/* The same for the keys named in `only` (NULL-terminated; NULL: every key). */
void conf_print_help_keys(const conf_schema_t *sc, const char *const *only, FILE *out);

/* Print every key of the schema as a documented INI file with its default
 * value (one "# help" comment line per key), grouped by section; only
 * sections listed in `only` (NULL-terminated) when it is not NULL. This is
 * how the shipped conf/ files are made, so they cannot drift from the table. */
void conf_print_ini(const conf_schema_t *sc, const char *const *only, FILE *out);

/* Write the effective configuration, one `section.key = value` per line,
 * through the logger at INFO level. */
void conf_log_effective(const conf_schema_t *sc, const void *obj);

/* Format a key's current value as text into buf. */
void conf_format_value(const conf_key_t *k, const void *obj, char *buf, size_t len);

/* Parse a byte size with optional K/M/G/T suffix. Returns 0 or ERR_PARSE. */
int conf_parse_size(const char *s, uint64_t *out);

/* Split "a,b,c" into up to max trimmed items (pointers into buf, which is
 * modified). Returns the count, or ERR_TOOBIG if there are more than max. */
int conf_split_list(char *buf, char sep, char **items, int max);

/* Where a key's value comes from on a command line (cluster_env: an explicit
 * setting beats the cluster manager's environment). */
typedef enum { CONF_FROM_DEFAULT = 0, CONF_FROM_FILE, CONF_FROM_FLAG } conf_from_t;

/* CONF_FROM_FLAG if argv overrides key `name` (--name V, --name=V, '-' for
 * '_'), else CONF_FROM_FILE if a --conf file in argv sets it in its
 * section, else CONF_FROM_DEFAULT. Call after conf_parse_args() accepted
 * the same argv (unreadable files count as not setting the key). */
conf_from_t conf_key_from(const conf_schema_t *sc, int argc, char **argv, const char *name);

#endif
