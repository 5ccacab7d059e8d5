/*
 * worker_main.c - funnel-worker: parse the command line, load the config,
 * install signal handlers, and run one subcommand. The command table below
 * (name, usage, summary, options, run function) drives the dispatch, the
 * usage text and each command's --help; the run functions only turn flags
 * into the arguments of the module that does the work.
 *
 *   funnel-worker train      [--model DIR] [--init_from DIR] [options] LOG...
 *   funnel-worker predict    (--model DIR | --ps ENDPOINTS) --in LOG... --out FILE [options]
 *   funnel-worker eval       --pred FILE --log LOG... [--model DIR] [--truth FILE] [--json]
 *   funnel-worker check-data [options] LOG...
 *   funnel-worker ctl        stats|flush|checkpoint|begin-day|shutdown --ps ENDPOINTS ...
 *   funnel-worker print-conf [options]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cluster_env.h"
#include "common/log.h"
#include "data/reader.h"
#include "model/dense.h"
#include "worker/check_data.h"
#include "worker/ctl.h"
#include "worker/eval.h"
#include "worker/fuse.h"
#include "worker/predict.h"
#include "worker/train.h"
#include "worker/worker_conf.h"

#define MAX_POS 4096

/* Options of one subcommand that are not config keys. */
typedef struct flag {
    const char *name; /* without "--" */
    int takes_value;  /* 0: a switch; 1: a value; FLAG_LOG: a log, kept among the arguments */
    const char *help;
} flag_t;

/* takes_value of a flag whose value is one more log: `--in A --in B C`
 * reads A, B and C in that order (the values join the trailing arguments
 * where they stand). */
#define FLAG_LOG 2

typedef struct worker_state worker_state_t;
typedef struct cmd cmd_t;

/* Run command c with the parsed state. Returns the exit status (0; 1 from
 * check-data when lines were rejected or the slots do not fit the log; 2
 * for a usage error, printed), or a
 * negative ERR_* with eb filled. */
typedef int cmd_run_fn(worker_state_t *st, const cmd_t *c, errbuf_t *eb);

struct cmd {
    const char *name;
    const char *usage;
    const char *summary;
    const flag_t *flags;
    cmd_run_fn *run;
    int log_rank;            /* log lines carry --rank (a training worker) */
    const char *const *keys; /* config keys --help lists (NULL: all) */
    const char *keys_note;   /* after them, or NULL */
};

struct worker_state {
    worker_conf_t conf;
    const char *flag_val[8]; /* values of the command's flags, by index */
    char *pos[MAX_POS];
    int npos;
    volatile sig_atomic_t stop;
};

static const flag_t train_flags[] = {
    {"model", 1, "model directory to write (default: model)"},
    {"init_from", 1, "continue from this saved model directory (also --init-from)"},
    {NULL, 0, NULL},
};
static const flag_t predict_flags[] = {
    {"model", 1,
     "saved model directory or checkpoint (any shard count) to predict with; its META gives "
     "model_type, slots, dims, towers and format (or use --ps for a running cluster)"},
    {"in", FLAG_LOG,
     "log to predict; repeat it, or give more logs as arguments: all are read, in order"},
    {"out", 1, "prediction file to write (FORMAT.md: pctr pcvr pctcvr [pctavr])"},
    /* serving bundle (issue 14) */
    {"bundle", 1, "serving bundle to predict with (funnel-emb bundle; docs/BUNDLE.md), verified"},
    {NULL, 0, NULL},
};
static const flag_t eval_flags[] = {
    {"pred", 1, "prediction file"},
    {"log", FLAG_LOG,
     "the log(s) the predictions were made for (repeat it, or give more as "
     "arguments; Ali-CCP: the skeleton and common_features files)"},
    {"model", 1, "the model the predictions came from: its META gives the log format"},
    {"truth", 1, "truth file of a synthetic log (adds oracle AUCs and regret)"},
    {"json", 0, "one JSON object instead of a table"},
    /* serving bundle (issue 14) */
    {"bundle", 1, "the serving bundle the predictions came from: its META gives the log format"},
    {NULL, 0, NULL},
};
static const flag_t ctl_flags[] = {
    {"name", 1, "checkpoint: name to write under each shard's checkpoint_root"},
    {"out", 1, "no longer accepted (checkpoint: use --name)"},
    {"day", 1, "checkpoint, begin-day: the day number"},
    {"expire", 0, "begin-day: delete rows unseen for longer than expire_days"},
    {"json", 0, "stats: JSON instead of a table"},
    {"wait", 1, "seconds to wait for a shard to answer at all (default 5; then deadline_s)"},
    {NULL, 0, NULL},
};
/* The config keys ctl reads; checkpoint also takes the [model] keys (META). */
static const char *const ctl_keys[] = {"ps", "timeout_ms", "deadline_s", "log_level", NULL};
static const flag_t no_flags[] = {{NULL, 0, NULL}};

static const char *flag(const worker_state_t *st, const cmd_t *c, const char *name)
{
    for (int f = 0; c->flags[f].name; f++)
        if (strcmp(c->flags[f].name, name) == 0)
            return st->flag_val[f];
    return NULL;
}

/* 0, or 2 (printed) when no log was given. */
static int need_logs(const worker_state_t *st, const cmd_t *c)
{
    if (st->npos > 0)
        return 0;
    fprintf(stderr, "funnel-worker %s: no log files given (see --help)\n", c->name);
    return 2;
}

static int run_train(worker_state_t *st, const cmd_t *c, errbuf_t *eb)
{
    int rc = need_logs(st, c);

    if (rc != 0)
        return rc;
    if (flag(st, c, "init_from")) { /* layout keys not given come from its META */
        rc = predict_take_layout(&st->conf, flag(st, c, "init_from"), eb);
        if (rc != 0)
            return rc;
    }
    train_args_t ta = {
        .model_dir = flag(st, c, "model") ? flag(st, c, "model") : "model",
        .init_from = flag(st, c, "init_from"),
        .logs = st->pos,
        .nlogs = st->npos,
        .stop = &st->stop,
    };
    /* a missing log is the first thing said, not buried under the config */
    rc = reader_check_inputs(st->pos, st->npos, eb);
    if (rc != 0)
        return rc;
    conf_log_effective(&worker_conf_schema, &st->conf);
    rc = train_run(&st->conf, &ta, eb);
    return rc < 0 ? rc : 0;
}

static int run_predict(worker_state_t *st, const cmd_t *c, errbuf_t *eb)
{
    const char *model = flag(st, c, "model"), *out = flag(st, c, "out");
    int rc;

    if (!model) /* a serving bundle reads as a model: session.c knows it by its MANIFEST */
        model = flag(st, c, "bundle");

    rc = need_logs(st, c); /* --in LOG values are among the arguments, in order */
    if (rc != 0)
        return rc;
    if ((!model && !st->conf.ps.s[0]) || !out) {
        fprintf(stderr, "funnel-worker predict: --out FILE and one of --model DIR or --ps "
                        "ENDPOINTS are required\n");
        return 2;
    }
    if (model) { /* layout keys not given come from the model's META */
        rc = predict_take_layout(&st->conf, model, eb);
        if (rc != 0)
            return rc;
    }
    rc = reader_check_inputs(st->pos, st->npos, eb);
    if (rc == 0)
        rc = predict_run(&st->conf, model, st->pos, st->npos, out, eb);
    return rc < 0 ? rc : 0;
}

static int run_eval(worker_state_t *st, const cmd_t *c, errbuf_t *eb)
{
    const char *pred = flag(st, c, "pred"), *model = flag(st, c, "model");
    int rc;

    if (!model) /* serving bundle (issue 14) */
        model = flag(st, c, "bundle");

    if (!pred || st->npos == 0) { /* --log LOG values are among the arguments */
        fprintf(stderr, "funnel-worker eval: --pred FILE and --log LOG are required\n");
        return 2;
    }
    if (model) { /* the log format, unless given, is the model's */
        rc = predict_take_layout(&st->conf, model, eb);
        if (rc != 0)
            return rc;
    }
    rc = eval_run(&st->conf, pred, st->pos, st->npos, flag(st, c, "truth"),
                  flag(st, c, "json") != NULL, stdout, eb);
    return rc < 0 ? rc : 0;
}

static int run_check_data(worker_state_t *st, const cmd_t *c, errbuf_t *eb)
{
    (void)c;
    if (st->npos == 0) {
        fprintf(stderr, "funnel-worker check-data: no log files given\n");
        return 2;
    }
    return check_data_run(&st->conf, st->pos, st->npos, stdout, eb);
}

static int run_ctl(worker_state_t *st, const cmd_t *c, errbuf_t *eb)
{
    const char *day = flag(st, c, "day"), *wait = flag(st, c, "wait");
    ctl_args_t ca = {
        .cmd = st->npos > 0 ? st->pos[0] : "",
        .out = flag(st, c, "out"),
        .name = flag(st, c, "name"),
        .day = day ? atoi(day) : -1,
        .expire = flag(st, c, "expire") != NULL,
        .json = flag(st, c, "json") != NULL,
        .wait_s = wait ? atoi(wait) : 0,
    };

    if (wait && ca.wait_s <= 0) {
        fprintf(stderr, "funnel-worker ctl: --wait %s: give a whole number of seconds >= 1\n",
                wait);
        return 2;
    }
    int rc = ctl_run(&st->conf, &ca, stdout, eb);

    return rc < 0 ? rc : 0;
}

static int run_print_conf(worker_state_t *st, const cmd_t *c, errbuf_t *eb)
{
    static const char *const sections[] = {"model", "data", "train", "cluster", NULL};

    (void)st;
    (void)c;
    (void)eb;
    conf_print_ini(&worker_conf_schema, sections, stdout);
    return 0;
}

/* score fusion (issue 15): flags, run function */
static const flag_t fuse_flags[] = {
    {"pred", 1, "prediction file (predict's output) of the validation log"},
    {"log", FLAG_LOG, "the validation log(s) the predictions were made for, in the same order"},
    {"model", 1, "the model the predictions came from: its META gives the log format"},
    {"metric", 1,
     "what to maximise: buy_auc (default), click_auc, ndcg (buy NDCG per request; the log's "
     "lines need @req:ID) or click_ndcg"},
    {"form", 1,
     "product (pctr * pcvr^b * pctavr^c, default) or sum (pctr + 10^u pctavr + 10^v "
     "pctcvr)"},
    {"search", 1, "grid, bo (Bayesian optimization) or both (default)"},
    {"grid", 1, "grid points per weight (default 11)"},
    {"evals", 1, "evaluations of the Bayesian optimization (default 30); seed: --seed"},
    {NULL, 0, NULL},
};

static int run_fuse(worker_state_t *st, const cmd_t *c, errbuf_t *eb)
{
    const char *pred = flag(st, c, "pred"), *model = flag(st, c, "model");
    const char *grid = flag(st, c, "grid"), *evals = flag(st, c, "evals");
    fuse_args_t a = {.metric = FUSE_BUY_AUC,
                     .form = FUSE_PRODUCT,
                     .search = FUSE_BOTH,
                     .grid = grid ? atoi(grid) : 11,
                     .evals = evals ? atoi(evals) : 30,
                     .seed = (uint64_t)st->conf.seed};
    int rc;

    if (!pred || st->npos == 0) {
        fprintf(stderr, "funnel-worker fuse: --pred FILE and --log LOG are required\n");
        return 2;
    }
    rc =
        fuse_parse_words(&a, flag(st, c, "metric"), flag(st, c, "form"), flag(st, c, "search"), eb);
    if (rc == 0 && model)
        rc = predict_take_layout(&st->conf, model, eb);
    if (rc == 0)
        rc = fuse_run(&st->conf, pred, st->pos, st->npos, &a, stdout, eb);
    return rc < 0 ? rc : 0;
}

static const cmd_t cmds[] = {
    {"train", "train [--model DIR] [--init_from DIR] [options] LOG...",
     "train the model on logs; in process, or with a cluster given by --ps", train_flags, run_train,
     1, NULL,
     "Without --rank/--workers/--ps (flag or config) they come from the environment:\n"
     "FUNNEL_RANK/FUNNEL_WORKERS, Open MPI, Slurm, a Kubernetes Indexed Job; FUNNEL_PS.\n"
     "--ps takes a comma list, @FILE or tcp://funnel-ps-{0..3}.funnel-ps:7700 (README\n"
     "\"Running on a cluster\").\n"},
    {"predict", "predict (--model DIR | --ps ENDPOINTS) --in LOG... --out FILE [options]",
     "write pctr/pcvr/pctcvr for every accepted line of the logs", predict_flags, run_predict, 0,
     NULL, NULL},
    {"eval", "eval --pred FILE --log LOG... [--model DIR] [--truth FILE] [--json]",
     "AUC, log-loss and calibration per task (and the oracle's, with a truth file)", eval_flags,
     run_eval, 0, NULL, NULL},
    {"check-data", "check-data [options] LOG...",
     "validate logs before a long job; exits 1 if any line is rejected or the slots do not fit "
     "the log (undeclared slots, declared ones without tokens: see allow_unknown_slots)",
     no_flags, run_check_data, 0, NULL, NULL},
    {"ctl",
     "ctl stats|flush|checkpoint|begin-day|shutdown --ps ENDPOINTS [--name NAME] [--day D] "
     "[--wait S]",
     "operate a running cluster: counters, flush, checkpoint, start a day, stop", ctl_flags,
     run_ctl, 0, ctl_keys,
     "checkpoint also takes the [model] keys the cluster was started with (--conf FILE, or\n"
     "see `funnel-worker train --help`): they are recorded in the checkpoint's META.\n"},
    {"print-conf", "print-conf [options]",
     "print every key with its default, as a documented config file", no_flags, run_print_conf, 0,
     NULL, NULL},
    {"fuse",
     "fuse --pred FILE --log LOG... [--metric M] [--form F] [--search S] [--grid N] [--evals N]",
     "tune a ranking score fused from the predictions (grid and Bayesian optimization) on a "
     "validation log",
     fuse_flags, run_fuse, 0, NULL, NULL},
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

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
    conf_print_help_keys(&worker_conf_schema, c->keys, stdout);
    if (c->keys_note)
        printf("\n%s", c->keys_note);
}

/* The first n bytes of arg spell flag name: flags are spelled like config
 * keys (--init_from), and a '-' where the name has '_' is accepted too (the
 * older --init-from). */
static int same_name(const char *arg, const char *name, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (arg[i] != name[i] && !(name[i] == '_' && arg[i] == '-'))
            return 0;
    return 1;
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
            if (!same_name(a + 2, c->flags[f].name, nl) || (a[2 + nl] && a[2 + nl] != '='))
                continue;
            matched = 1;
            if (c->flags[f].takes_value == FLAG_LOG) { /* the value joins the logs, here */
                if (a[2 + nl] == '=')
                    argv[out++] = (char *)a + 3 + nl;
                else if (i + 1 < *argc)
                    argv[out++] = argv[++i];
                else {
                    fprintf(stderr, "funnel-worker %s: %s needs a value\n", c->name, a);
                    return 2;
                }
                st->flag_val[f] = argv[out - 1];
            } else if (!c->flags[f].takes_value)
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

int main(int argc, char **argv)
{
    static worker_state_t st;
    const cmd_t *c = NULL;
    errbuf_t eb = {{0}};
    int help, rc;

    dense_blas_choose_core(argv);
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
    rc = conf_parse_args_given(&worker_conf_schema, &st.conf, &st.conf.given, nargs, args, st.pos,
                               MAX_POS, &st.npos, &help, &eb);
    if (help) {
        cmd_help(c);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "funnel-worker %s: %s\n", c->name, eb.msg);
        return 2;
    }
    /* cluster_env: endpoints (and a trainer's rank) from the cluster manager */
    cluster_said_t who = {{0}}, eps = {{0}};
    rc = cluster_env_endpoints(environ, conf_key_from(&worker_conf_schema, nargs, args, "ps"),
                               st.conf.ps.s, sizeof(st.conf.ps.s), &eps, &eb);
    if (rc > 0 && c->log_rank) /* a rank means something only on a cluster */
        rc = cluster_env_worker(environ, conf_key_from(&worker_conf_schema, nargs, args, "rank"),
                                conf_key_from(&worker_conf_schema, nargs, args, "workers"),
                                &st.conf.rank, &st.conf.workers, &who, &eb);
    if (rc < 0) {
        fprintf(stderr, "funnel-worker %s: %s\n", c->name, eb.msg);
        return 2;
    }
    log_init("worker", c->log_rank ? (int)st.conf.rank : -1, st.conf.log_level, NULL);
    if (c->log_rank && st.conf.ps.s[0])
        LOG_INFO("cluster: %s; %s", who.line, eps.line);
    g_stop = &st.stop;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    rc = c->run(&st, c, &eb);
    conf_release(&worker_conf_schema, &st.conf); /* slot lists: any length, on the heap */
    if (rc < 0) {
        LOG_ERROR("%s: %s", c->name, eb.msg[0] ? eb.msg : err_strerror(rc));
        return 1;
    }
    return rc;
}
