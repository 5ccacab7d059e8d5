/*
 * conf.c - the configuration engine behind every role's key table.
 * See conf.h. INI files are tokenized by inih; everything else (types,
 * ranges, overrides, help, dump) is driven by the role's conf_key_t table.
 */
#include "common/conf.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/parse.h"

const conf_key_t *conf_find(const conf_schema_t *sc, const char *name)
{
    for (size_t i = 0; i < sc->nkeys; i++)
        if (strcmp(sc->keys[i].name, name) == 0)
            return &sc->keys[i];
    return NULL;
}

int conf_parse_size(const char *s, uint64_t *out)
{
    char *end;
    double v;
    double mult = 1;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || errno != 0 || v < 0 || !isfinite(v))
        return ERR_PARSE;
    while (*end == ' ')
        end++;
    switch (toupper((unsigned char)*end)) {
    case '\0': break;
    case 'K':
        mult = 1024.0;
        end++;
        break;
    case 'M':
        mult = 1024.0 * 1024;
        end++;
        break;
    case 'G':
        mult = 1024.0 * 1024 * 1024;
        end++;
        break;
    case 'T':
        mult = 1024.0 * 1024 * 1024 * 1024;
        end++;
        break;
    default: return ERR_PARSE;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end != '\0')
        return ERR_PARSE;
    if (v * mult >= 18446744073709551616.0) /* 2^64: no uint64_t holds it */
        return ERR_PARSE;
    *out = (uint64_t)(v * mult);
    return 0;
}

int conf_split_list(char *buf, char sep, char **items, int max)
{
    int n = 0;
    char *p = buf;

    while (isspace((unsigned char)*p))
        p++;
    if (*p == '\0')
        return 0;
    for (;;) {
        char *q = strchr(p, sep);
        char *e;

        if (q)
            *q = '\0';
        while (isspace((unsigned char)*p))
            p++;
        e = p + strlen(p);
        while (e > p && isspace((unsigned char)e[-1]))
            *--e = '\0';
        if (n == max)
            return ERR_TOOBIG;
        items[n++] = p;
        if (!q)
            break;
        p = q + 1;
    }
    return n;
}

static int enum_index(const char *choices, const char *v)
{
    size_t vl = strlen(v);
    int idx = 0;
    const char *p = choices;

    for (;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);

        if (len == vl && strncmp(p, v, len) == 0)
            return idx;
        if (!bar)
            return -1;
        p = bar + 1;
        idx++;
    }
}

static const char *enum_name(const char *choices, int idx, char *buf, size_t len)
{
    const char *p = choices;

    for (int i = 0; i < idx; i++) {
        p = strchr(p, '|');
        if (!p)
            return "?";
        p++;
    }
    const char *bar = strchr(p, '|');
    size_t n = bar ? (size_t)(bar - p) : strlen(p);
    if (n >= len)
        n = len - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return buf;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};

    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return ERR_PARSE;
}

static int set_value(const conf_key_t *k, void *obj, const char *v, const char *where, errbuf_t *eb)
{
    char *field = (char *)obj + k->offset;

    switch (k->type) {
    case CONF_INT: {
        int64_t x;
        if (parse_int_str(v, INT64_MIN, INT64_MAX, &x) != 0)
            return errbuf_set(eb, ERR_CONFIG, "%s: key '%s': '%s' is not an integer", where,
                              k->name, v);
        if ((double)x < k->min || (double)x > k->max)
            return errbuf_set(eb, ERR_CONFIG, "%s: key '%s': %lld is out of range [%.17g, %.17g]",
                              where, k->name, (long long)x, k->min, k->max);
        *(int64_t *)field = x;
        return 0;
    }
    case CONF_FLOAT: {
        double x;
        if (parse_double_str(v, &x) != 0)
            return errbuf_set(eb, ERR_CONFIG, "%s: key '%s': '%s' is not a number", where, k->name,
                              v);
        if (x < k->min || x > k->max)
            return errbuf_set(eb, ERR_CONFIG, "%s: key '%s': %g is out of range [%g, %g]", where,
                              k->name, x, k->min, k->max);
        *(double *)field = x;
        return 0;
    }
    case CONF_BOOL:
        if (parse_bool(v, (int *)field) != 0)
            return errbuf_set(eb, ERR_CONFIG,
                              "%s: key '%s': '%s' is not a boolean (true/false/yes/no/on/off/1/0)",
                              where, k->name, v);
        return 0;
    case CONF_SIZE: {
        uint64_t x;
        if (conf_parse_size(v, &x) != 0)
            return errbuf_set(eb, ERR_CONFIG,
                              "%s: key '%s': '%s' is not a size (e.g. 512M, 4G, 1048576)", where,
                              k->name, v);
        if ((double)x < k->min || (double)x > k->max)
            return errbuf_set(eb, ERR_CONFIG, "%s: key '%s': %s is out of range [%.0f, %.0f]",
                              where, k->name, v, k->min, k->max);
        *(uint64_t *)field = x;
        return 0;
    }
    case CONF_STR: {
        size_t n = strlen(v);
        if (n >= CONF_STR_MAX)
            return errbuf_set(eb, ERR_CONFIG, "%s: key '%s': value longer than %d bytes", where,
                              k->name, CONF_STR_MAX - 1);
        memcpy(((conf_str_t *)field)->s, v, n + 1);
        return 0;
    }
    case CONF_TEXT: {
        conf_text_t *t = (conf_text_t *)field;
        char *copy = strdup(v);
        if (!copy)
            return errbuf_set(eb, ERR_NOMEM, "%s: key '%s': out of memory", where, k->name);
        if (t->s && t->s != k->def)
            free(t->s);
        t->s = copy;
        return 0;
    }
    case CONF_ENUM: {
        int idx = enum_index(k->choices, v);
        if (idx < 0)
            return errbuf_set(eb, ERR_CONFIG, "%s: key '%s': '%s' is not one of %s", where, k->name,
                              v, k->choices);
        *(int *)field = idx;
        return 0;
    }
    }
    return errbuf_set(eb, ERR_CONFIG, "%s: key '%s': bad key type", where, k->name);
}

int conf_set(const conf_schema_t *sc, void *obj, const char *name, const char *value,
             const char *where, errbuf_t *eb)
{
    const conf_key_t *k = conf_find(sc, name);

    if (!k) {
        errbuf_set(eb, ERR_CONFIG, "%s: unknown key '%s' for %s (see --help)", where, name,
                   sc->role);
        return ERR_NOTFOUND;
    }
    return set_value(k, obj, value, where, eb);
}

void conf_release(const conf_schema_t *sc, void *obj)
{
    for (size_t i = 0; i < sc->nkeys; i++) {
        const conf_key_t *k = &sc->keys[i];
        conf_text_t *t = (conf_text_t *)((char *)obj + k->offset);

        if (k->type != CONF_TEXT)
            continue;
        if (t->s && t->s != k->def)
            free(t->s);
        t->s = (char *)k->def;
    }
}

int conf_defaults(const conf_schema_t *sc, void *obj, errbuf_t *eb)
{
    for (size_t i = 0; i < sc->nkeys; i++) {
        if (sc->keys[i].type == CONF_TEXT) { /* the default text itself: nothing to free */
            ((conf_text_t *)((char *)obj + sc->keys[i].offset))->s = (char *)sc->keys[i].def;
            continue;
        }
        int rc = set_value(&sc->keys[i], obj, sc->keys[i].def, "default", eb);
        if (rc != 0)
            return rc;
    }
    return 0;
}

typedef struct ini_ctx {
    const conf_schema_t *sc;
    void *obj;
    conf_given_t *given; /* NULL: not recorded */
    const char *path;
    int lineno;     /* line being handled, counted by our reader */
    int err;        /* first error code */
    errbuf_t first; /* first error message */
    FILE *fp;
} ini_ctx_t;

static int section_known(const conf_schema_t *sc, const char *section, int *ours)
{
    *ours = 0;
    for (size_t i = 0; i < sc->nkeys; i++)
        if (strcmp(sc->keys[i].section, section) == 0) {
            *ours = 1;
            return 1;
        }
    for (const char *const *s = sc->other_sections; s && *s; s++)
        if (strcmp(*s, section) == 0)
            return 1;
    return 0;
}

/* 1 if key k of obj holds its default value. A config file line that
 * repeats the default (the shipped files list every key so) does not count
 * as given: only a value that differs, or a command-line option, does. */
static int is_default(const conf_key_t *k, void *obj)
{
    union {
        int64_t i;
        double f;
        uint64_t u;
        conf_str_t s;
    } saved;
    char now[CONF_STR_MAX + 64], def[CONF_STR_MAX + 64];
    char *field = (char *)obj + k->offset;
    size_t size = k->type == CONF_STR                            ? sizeof(conf_str_t)
                  : k->type == CONF_BOOL || k->type == CONF_ENUM ? sizeof(int)
                  : k->type == CONF_FLOAT                        ? sizeof(double)
                                                                 : sizeof(int64_t);

    if (k->type == CONF_TEXT) /* setting the default would free the value */
        return strcmp(((const conf_text_t *)field)->s, k->def) == 0;
    conf_format_value(k, obj, now, sizeof(now));
    memcpy(&saved, field, size);
    if (set_value(k, obj, k->def, "default", NULL) != 0) {
        memcpy(field, &saved, size);
        return 0;
    }
    conf_format_value(k, obj, def, sizeof(def));
    memcpy(field, &saved, size);
    return strcmp(now, def) == 0;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    ini_ctx_t *c = user;
    char where[CONF_STR_MAX + 32];
    errbuf_t eb;
    int ours;
    int rc;

    snprintf(where, sizeof(where), "%s:%d", c->path, c->lineno);
    if (section[0] == '\0') {
        rc = errbuf_set(&eb, ERR_CONFIG, "%s: key '%s' is outside any [section]", where, name);
        goto fail;
    }
    if (!section_known(c->sc, section, &ours)) {
        rc =
            errbuf_set(&eb, ERR_CONFIG, "%s: key '%s': unknown section [%s]", where, name, section);
        goto fail;
    }
    if (!ours)
        return 1;
    const conf_key_t *k = conf_find(c->sc, name);
    if (!k || strcmp(k->section, section) != 0) {
        rc = errbuf_set(&eb, ERR_CONFIG, "%s: unknown key '%s' in [%s]", where, name, section);
        goto fail;
    }
    rc = set_value(k, c->obj, value, where, &eb);
    if (rc == 0) {
        if (c->given && k - c->sc->keys < CONF_GIVEN_MAX && !is_default(k, c->obj))
            c->given->key[k - c->sc->keys] = 1;
        return 1;
    }
fail:
    if (c->err == 0) {
        c->err = rc;
        c->first = eb;
    }
    return 0;
}

/* inih reads through this so that we know the line number of each key. */
static char *read_line(char *str, int num, void *stream)
{
    ini_ctx_t *c = stream;
    char *r = fgets(str, num, c->fp);

    if (r)
        c->lineno++;
    return r;
}

static int load_file(const conf_schema_t *sc, void *obj, conf_given_t *given, const char *path,
                     errbuf_t *eb)
{
    ini_ctx_t c = {.sc = sc, .obj = obj, .given = given, .path = path};
    int rc;

    c.fp = fopen(path, "r");
    if (!c.fp)
        return errbuf_set(eb, ERR_IO, "config %s: %s", path, strerror(errno));
    /* Lines of any length (a slots list grows with the data): a heap line
     * buffer that inih grows as needed, up to CONF_LINE_MAX. */
    ini_use_stack = false;
    ini_allow_realloc = true;
    ini_max_line = CONF_LINE_MAX;
    rc = ini_parse_stream(read_line, &c, on_key, &c);
    fclose(c.fp);
    if (c.err != 0) {
        if (eb)
            *eb = c.first;
        return c.err;
    }
    if (rc > 0)
        return errbuf_set(eb, ERR_CONFIG, "%s:%d: syntax error (expected [section] or key = value)",
                          path, rc);
    if (rc < 0)
        return errbuf_set(eb, ERR_IO, "config %s: cannot read", path);
    return 0;
}

int conf_load_file(const conf_schema_t *sc, void *obj, const char *path, errbuf_t *eb)
{
    return load_file(sc, obj, NULL, path, eb);
}

int conf_key_given(const conf_schema_t *sc, const conf_given_t *given, const char *name)
{
    const conf_key_t *k = conf_find(sc, name);

    if (!k || k - sc->keys >= CONF_GIVEN_MAX)
        return -1;
    return given->key[k - sc->keys];
}

int conf_parse_args(const conf_schema_t *sc, void *obj, int argc, char **argv, char **pos,
                    int maxpos, int *npos, int *help, errbuf_t *eb)
{
    return conf_parse_args_given(sc, obj, NULL, argc, argv, pos, maxpos, npos, help, eb);
}

int conf_parse_args_given(const conf_schema_t *sc, void *obj, conf_given_t *given, int argc,
                          char **argv, char **pos, int maxpos, int *npos, int *help, errbuf_t *eb)
{
    int rc;

    *npos = 0;
    *help = 0;
    if (given)
        memset(given, 0, sizeof(*given));
    rc = conf_defaults(sc, obj, eb);
    if (rc != 0)
        return rc;
    /* The file first, so that command-line overrides win wherever they are. */
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--conf") == 0) {
            if (i + 1 >= argc)
                return errbuf_set(eb, ERR_CONFIG, "--conf needs a file name");
            rc = load_file(sc, obj, given, argv[++i], eb);
            if (rc != 0)
                return rc;
        } else if (strncmp(argv[i], "--conf=", 7) == 0) {
            rc = load_file(sc, obj, given, argv[i] + 7, eb);
            if (rc != 0)
                return rc;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        char name[128];
        const char *val = NULL;
        const conf_key_t *k;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = 1;
            continue;
        }
        if (strcmp(a, "--conf") == 0) {
            i++;
            continue;
        }
        if (strncmp(a, "--conf=", 7) == 0)
            continue;
        if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++) {
                if (*npos >= maxpos)
                    return errbuf_set(eb, ERR_CONFIG, "too many arguments (at most %d)", maxpos);
                pos[(*npos)++] = argv[i];
            }
            break;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (*npos >= maxpos)
                return errbuf_set(eb, ERR_CONFIG, "unexpected argument '%s'", a);
            pos[(*npos)++] = argv[i];
            continue;
        }
        const char *eq = strchr(a + 2, '=');
        size_t nl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (nl >= sizeof(name))
            return errbuf_set(eb, ERR_CONFIG, "unknown option '%s' (see --help)", a);
        memcpy(name, a + 2, nl);
        name[nl] = '\0';
        for (char *p = name; *p; p++)
            if (*p == '-')
                *p = '_';
        k = conf_find(sc, name);
        if (!k)
            return errbuf_set(eb, ERR_CONFIG, "unknown option '%s' (see --help)", a);
        if (eq) {
            val = eq + 1;
        } else if (k->type == CONF_BOOL) {
            int b;
            if (i + 1 < argc && parse_bool(argv[i + 1], &b) == 0)
                val = argv[++i];
            else
                val = "true";
        } else {
            if (i + 1 >= argc)
                return errbuf_set(eb, ERR_CONFIG, "option '%s' needs a value", a);
            val = argv[++i];
        }
        char where[160];
        snprintf(where, sizeof(where), "--%s", k->name);
        rc = set_value(k, obj, val, where, eb);
        if (rc != 0)
            return rc;
        if (given && k - sc->keys < CONF_GIVEN_MAX)
            given->key[k - sc->keys] = 1;
    }
    return 0;
}

static const char *type_name(const conf_key_t *k)
{
    switch (k->type) {
    case CONF_INT: return "int";
    case CONF_FLOAT: return "float";
    case CONF_BOOL: return "bool";
    case CONF_SIZE: return "size";
    case CONF_STR: return "string";
    case CONF_ENUM: return k->choices;
    case CONF_TEXT: return "string";
    }
    return "?";
}

void conf_print_help(const conf_schema_t *sc, FILE *out)
{
    conf_print_help_keys(sc, NULL, out);
}

void conf_print_help_keys(const conf_schema_t *sc, const char *const *only, FILE *out)
{
    const char *last = "";

    fprintf(out, "Options (also settable in the config file given by --conf FILE):\n");
    for (size_t i = 0; i < sc->nkeys; i++) {
        const conf_key_t *k = &sc->keys[i];
        char range[96] = "";
        int want = only == NULL;

        for (const char *const *o = only; o && *o; o++)
            want |= strcmp(*o, k->name) == 0;
        if (!want)
            continue;

        if (strcmp(k->section, last) != 0) {
            fprintf(out, "\n  [%s]\n", k->section);
            last = k->section;
        }
        if (k->type == CONF_INT || k->type == CONF_FLOAT)
            snprintf(range, sizeof(range), " range [%g, %g]", k->min, k->max);
        fprintf(out, "  --%-22s %s (default: %s)%s\n", k->name, type_name(k),
                k->def[0] ? k->def : "\"\"", range);
        fprintf(out, "      %s\n", k->help);
    }
}

void conf_print_ini(const conf_schema_t *sc, const char *const *only, FILE *out)
{
    const char *last = "";

    for (size_t i = 0; i < sc->nkeys; i++) {
        const conf_key_t *k = &sc->keys[i];
        int want = only == NULL;

        for (const char *const *o = only; o && *o; o++)
            want |= strcmp(*o, k->section) == 0;
        if (!want)
            continue;
        if (strcmp(k->section, last) != 0) {
            fprintf(out, "%s[%s]\n", last[0] ? "\n" : "", k->section);
            last = k->section;
        }
        fprintf(out, "\n# %s\n", k->help);
        if (k->type == CONF_ENUM)
            fprintf(out, "# one of: %s\n", k->choices);
        else if (k->type == CONF_INT || k->type == CONF_FLOAT)
            fprintf(out, "# range: %g .. %g\n", k->min, k->max);
        else if (k->type == CONF_SIZE)
            fprintf(out, "# bytes; suffixes K, M, G, T\n");
        else if (k->type == CONF_BOOL)
            fprintf(out, "# true or false\n");
        fprintf(out, "%s = %s\n", k->name, k->def);
    }
}

void conf_format_value(const conf_key_t *k, const void *obj, char *buf, size_t len)
{
    const char *field = (const char *)obj + k->offset;

    switch (k->type) {
    case CONF_INT: snprintf(buf, len, "%lld", (long long)*(const int64_t *)field); break;
    case CONF_FLOAT: snprintf(buf, len, "%g", *(const double *)field); break;
    case CONF_BOOL: snprintf(buf, len, "%s", *(const int *)field ? "true" : "false"); break;
    case CONF_SIZE: snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)field); break;
    case CONF_STR: snprintf(buf, len, "%s", ((const conf_str_t *)field)->s); break;
    case CONF_ENUM: enum_name(k->choices, *(const int *)field, buf, len); break;
    case CONF_TEXT: snprintf(buf, len, "%s", ((const conf_text_t *)field)->s); break;
    }
}

void conf_log_effective(const conf_schema_t *sc, const void *obj)
{
    char v[CONF_STR_MAX];

    if (!log_enabled(LOG_LEVEL_INFO))
        return;
    LOG_INFO("effective %s configuration:", sc->role);
    for (size_t i = 0; i < sc->nkeys; i++) {
        conf_format_value(&sc->keys[i], obj, v, sizeof(v));
        if (sc->keys[i].type == CONF_TEXT) /* whole, however long */
            LOG_INFO("  %s.%s = %s", sc->keys[i].section, sc->keys[i].name,
                     ((const conf_text_t *)((const char *)obj + sc->keys[i].offset))->s);
        else
            LOG_INFO("  %s.%s = %s", sc->keys[i].section, sc->keys[i].name, v);
    }
}

/* ---- where a key was set (cluster_env) ---- */

typedef struct from_ctx {
    const conf_key_t *k;
    int found;
} from_ctx_t;

static int on_key_from(void *user, const char *section, const char *name, const char *value)
{
    from_ctx_t *c = user;

    (void)value;
    if (strcmp(section, c->k->section) == 0 && strcmp(name, c->k->name) == 0)
        c->found = 1;
    return 1;
}

conf_from_t conf_key_from(const conf_schema_t *sc, int argc, char **argv, const char *name)
{
    const conf_key_t *k = conf_find(sc, name);
    from_ctx_t c = {.k = k};
    size_t nl = strlen(name);

    if (!k)
        return CONF_FROM_DEFAULT;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        size_t j;

        if (strcmp(a, "--") == 0)
            break;
        if (strcmp(a, "--conf") == 0) {
            i++;
            continue;
        }
        if (strncmp(a, "--", 2) != 0)
            continue;
        for (j = 0; j < nl; j++)
            if (a[2 + j] != name[j] && !(name[j] == '_' && a[2 + j] == '-'))
                break;
        if (j == nl && (a[2 + nl] == '\0' || a[2 + nl] == '='))
            return CONF_FROM_FLAG;
    }
    for (int i = 0; i < argc; i++) {
        const char *path = NULL;

        if (strcmp(argv[i], "--conf") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strncmp(argv[i], "--conf=", 7) == 0)
            path = argv[i] + 7;
        if (path)
            ini_parse(path, on_key_from, &c);
    }
    return c.found ? CONF_FROM_FILE : CONF_FROM_DEFAULT;
}
