/*
 * worker_main.c - funnel-worker: parse the command line, load the config,
 * install signal handlers, and run one subcommand.
 *
 *   funnel-worker train      [options] LOG...   train (in process, or on a cluster with --ps)
 *   funnel-worker predict    --model DIR --out FILE [options] LOG...
 *   funnel-worker eval       --pred FILE --log LOG [--truth FILE] [--json]
 *   funnel-worker check-data [options] LOG...
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/check_data.h"
#include "worker/ctl.h"
#include "worker/eval.h"
#include "common/log.h"
#include "worker/predict.h"
#include "worker/train.h"
#include "worker/worker_conf.h"

#define MAX_POS 4096

/* Options of one subcommand that are not config keys. */
typedef struct flag {
    const char *name;  /* without "--" */
    int takes_value;
    const char *help;
} flag_t;

typedef struct cmd {
    const char *name;
    const char *usage;
    const char *summary;
    const flag_t *flags;
} cmd_t;

static const flag_t train_flags[] = {
    {"model", 1, "model directory to write (default: model)"},
    {"init-from", 1, "continue from this saved model directory"},
    {NULL, 0, NULL},
};
static const flag_t predict_flags[] = {
    {"model", 1, "saved model directory to predict with (or use --ps for a running cluster)"},
    {"in", 1, "log to predict (more logs may follow as arguments)"},
    {"out", 1, "prediction file to write (FORMAT.md: pctr pcvr pctcvr [pctavr])"},
    {NULL, 0, NULL},
};
static const flag_t eval_flags[] = {
    {"pred", 1, "prediction file"},
    {"log", 1, "the log the predictions were made for"},
    {"truth", 1, "truth file of a synthetic log (adds oracle AUCs and regret)"},
    {"json", 0, "one JSON object instead of a table"},
    {NULL, 0, NULL},
};
static const flag_t ctl_flags[] = {
    {"out", 1, "checkpoint: directory to write"},
    {"day", 1, "checkpoint, begin-day: the day number"},
    {"expire", 0, "begin-day: delete rows unseen for longer than expire_days"},
    {"json", 0, "stats: JSON instead of a table"},
    {NULL, 0, NULL},
};
static const flag_t no_flags[] = {{NULL, 0, NULL}};

static const cmd_t cmds[] = {
    {"train", "train [--model DIR] [--init-from DIR] [options] LOG...",
     "train the model on logs; in process, or with a cluster given by --ps", train_flags},
    {"predict", "predict (--model DIR | --ps ENDPOINTS) --in LOG --out FILE [options]",
     "write pctr/pcvr/pctcvr for every accepted line of the logs", predict_flags},
    {"eval", "eval --pred FILE --log LOG [--truth FILE] [--json]",
     "AUC, log-loss and calibration per task (and the oracle's, with a truth file)", eval_flags},
    {"check-data", "check-data [options] LOG...",
     "validate logs before a long job; exits 1 if any line is rejected", no_flags},
    {"ctl", "ctl stats|flush|checkpoint|begin-day|shutdown --ps ENDPOINTS [--out DIR] [--day D]",
     "operate a running cluster: counters, flush, checkpoint, start a day, stop", ctl_flags},
    {"print-conf", "print-conf [options]",
     "print every key with its default, as a documented config file", no_flags},
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

typedef struct worker_state {
    worker_conf_t conf;
    const char *flag_val[8];   /* values of the command's flags, by index */
    char *pos[MAX_POS];
    int npos;
    volatile sig_atomic_t stop;
} worker_state_t;

static volatile sig_atomic_t *g_stop;

static void on_signal(int sig)
{
    (void)sig;
    if (g_stop)
        *g_stop = 1;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: funnel-worker COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(out, "  %-11s %s\n", cmds[i].name, cmds[i].summary);
    fprintf(out, "\n'funnel-worker COMMAND --help' lists a command's options.\n");
}

static void cmd_help(const cmd_t *c)
{
    printf("usage: funnel-worker %s\n\n%s\n\n", c->usage, c->summary);
    if (c->flags[0].name) {
        printf("Command options:\n");
        for (const flag_t *f = c->flags; f->name; f++)
            printf("  --%-22s %s\n", f->name, f->help);
        printf("\n");
    }
    conf_print_help(&worker_conf_schema, stdout);
}

/* Take the command's own flags out of argv; the rest goes to the config
 * parser. Returns 0 or 2 (usage error, printed). */
static int take_flags(const cmd_t *c, worker_state_t *st, int *argc, char **argv)
{
    int out = 0;

    for (int i = 0; i < *argc; i++) {
        const char *a = argv[i];
        int matched = 0;

        for (int f = 0; a[0] == '-' && a[1] == '-' && c->flags[f].name; f++) {
            size_t nl = strlen(c->flags[f].name);
            if (strncmp(a + 2, c->flags[f].name, nl) != 0 || (a[2 + nl] && a[2 + nl] != '='))
                continue;
            matched = 1;
            if (!c->flags[f].takes_value)
                st->flag_val[f] = "1";
            else if (a[2 + nl] == '=')
                st->flag_val[f] = a + 3 + nl;
            else if (i + 1 < *argc)
                st->flag_val[f] = argv[++i];
            else {
                fprintf(stderr, "funnel-worker %s: %s needs a value\n", c->name, a);
                return 2;
            }
            break;
        }
        if (!matched)
            argv[out++] = argv[i];
    }
    *argc = out;
    return 0;
}

static const char *flag(const worker_state_t *st, const cmd_t *c, const char *name)
{
    for (int f = 0; c->flags[f].name; f++)
        if (strcmp(c->flags[f].name, name) == 0)
            return st->flag_val[f];
    return NULL;
}

int main(int argc, char **argv)
{
    static worker_state_t st;
    const cmd_t *c = NULL;
    errbuf_t eb = {{0}};
    int help, rc;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < NCMDS; i++)
        if (strcmp(argv[1], cmds[i].name) == 0)
            c = &cmds[i];
    if (!c) {
        fprintf(stderr, "funnel-worker: unknown command '%s'\n\n", argv[1]);
        usage(stderr);
        return 2;
    }
    int nargs = argc - 2;
    char **args = argv + 2;
    if (take_flags(c, &st, &nargs, args) != 0)
        return 2;
    rc = conf_parse_args(&worker_conf_schema, &st.conf, nargs, args, st.pos, MAX_POS, &st.npos,
                         &help, &eb);
    if (help) {
        cmd_help(c);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "funnel-worker %s: %s\n", c->name, eb.msg);
        return 2;
    }
    log_init("worker", strcmp(c->name, "train") == 0 ? (int)st.conf.rank : -1,
             st.conf.log_level, NULL);
    g_stop = &st.stop;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    if (strcmp(c->name, "print-conf") == 0) {
        static const char *const sections[] = {"model", "data", "train", "cluster", NULL};
        conf_print_ini(&worker_conf_schema, sections, stdout);
        return 0;
    }
    if (strcmp(c->name, "ctl") == 0) {
        const char *day = flag(&st, c, "day");
        ctl_args_t ca = {
            .cmd = st.npos > 0 ? st.pos[0] : "",
            .out = flag(&st, c, "out"),
            .day = day ? atoi(day) : -1,
            .expire = flag(&st, c, "expire") != NULL,
            .json = flag(&st, c, "json") != NULL,
        };
        rc = ctl_run(&st.conf, &ca, stdout, &eb);
        if (rc < 0)
            goto fail;
        return 0;
    }
    if (strcmp(c->name, "check-data") == 0) {
        if (st.npos == 0) {
            fprintf(stderr, "funnel-worker check-data: no log files given\n");
            return 2;
        }
        rc = check_data_run(&st.conf, st.pos, st.npos, stdout, &eb);
        if (rc < 0)
            goto fail;
        return rc;
    }
    if (strcmp(c->name, "eval") == 0) {
        const char *pred = flag(&st, c, "pred"), *log = flag(&st, c, "log");
        if (!pred || !log) {
            fprintf(stderr, "funnel-worker eval: --pred FILE and --log LOG are required\n");
            return 2;
        }
        char *logs[1] = {(char *)log};
        rc = eval_run(&st.conf, pred, logs, 1, flag(&st, c, "truth"),
                      flag(&st, c, "json") != NULL, stdout, &eb);
        if (rc < 0)
            goto fail;
        return 0;
    }
    if (strcmp(c->name, "predict") == 0 && flag(&st, c, "in")) {
        memmove(st.pos + 1, st.pos, (size_t)(st.npos < MAX_POS - 1 ? st.npos : MAX_POS - 1) *
                                        sizeof(char *));
        st.pos[0] = (char *)flag(&st, c, "in");
        st.npos = st.npos < MAX_POS - 1 ? st.npos + 1 : MAX_POS;
    }
    if (st.npos == 0) {
        fprintf(stderr, "funnel-worker %s: no log files given (see --help)\n", c->name);
        return 2;
    }
    if (strcmp(c->name, "train") == 0) {
        train_args_t ta = {
            .model_dir = flag(&st, c, "model") ? flag(&st, c, "model") : "model",
            .init_from = flag(&st, c, "init-from"),
            .logs = st.pos,
            .nlogs = st.npos,
            .stop = &st.stop,
        };
        conf_log_effective(&worker_conf_schema, &st.conf);
        rc = train_run(&st.conf, &ta, &eb);
    } else {
        const char *model = flag(&st, c, "model"), *out = flag(&st, c, "out");
        if ((!model && !st.conf.ps.s[0]) || !out) {
            fprintf(stderr, "funnel-worker predict: --out FILE and one of --model DIR or --ps "
                            "ENDPOINTS are required\n");
            return 2;
        }
        rc = predict_run(&st.conf, model, st.pos, st.npos, out, &eb);
    }
    if (rc < 0)
        goto fail;
    return 0;
fail:
    LOG_ERROR("%s: %s", c->name, eb.msg[0] ? eb.msg : err_strerror(rc));
    return 1;
}
