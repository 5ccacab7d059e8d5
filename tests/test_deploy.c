/*
 * test_deploy.c - the Kubernetes manifests (deploy/k8s) agree with the
 * programs: deploy/check-manifests.py passes on them as shipped (parsing,
 * names, ports, flags, mounts, the Secret's keys, and a real shard started
 * from the StatefulSet's command whose readiness probe passes), and fails,
 * naming the disagreement, on copies with one thing changed each.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/util.h"

static char dir[512], bin[700];

static int setup(void)
{
    char p[700];

    if (tu_mkdtemp(dir, sizeof(dir), "deploy") != 0)
        return -1;
    tu_bin(p, sizeof(p), "funnel-ps");
    snprintf(bin, sizeof(bin), "%s", p);
    *strrchr(bin, '/') = '\0';
    return 0;
}

static int teardown(void)
{
    tu_rmtree(dir);
    return 0;
}

static void test_as_shipped(void)
{
    char out[700];
    char *text;

    snprintf(out, sizeof(out), "%s/ok.log", dir);
    CU_ASSERT_EQUAL(tu_sh(out, "python3 deploy/check-manifests.py --bin %s", bin), 0);
    text = tu_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "agrees with the programs") : NULL);
    if (text && !strstr(text, "agrees"))
        printf("\n%s\n", text);
    free(text);
}

/* One change to one manifest, and what the checker must say about it. */
typedef struct mutation {
    const char *file;
    const char *sed;
    const char *want;
} mutation_t;

static const mutation_t mutations[] = {
    {"ps.yaml", "s/      port: 7700/      port: 7701/", "ports disagree: Service [7701]"},
    {"ps.yaml", "s/\"--wait\", \"2\"/\"--waitx\", \"2\"/", "--waitx is not in"},
    {"ps.yaml", "s/replicas: 2/replicas: 3/", "config [ps] shards = 2 but the StatefulSet has 3"},
    {"ps.yaml", "s/serviceName: funnel-ps/serviceName: funnel/", "serviceName 'funnel'"},
    {"ps.yaml", "/- key: allow/,+1d", "projects no item allow"},
    {"ps.yaml", "s/mountPath: \\/data$/mountPath: \\/var\\/data/",
     "[ps] data = /data/ps (read by funnel-ps) is under no volumeMount"},
    {"ps.yaml", "s/secretName: funnel-keys/secretName: keys/", "names Secret keys"},
    {"train.yaml", "s/completions: 4/completions: 3/", "Job completions = 3"},
    {"train.yaml", "s/completionMode: Indexed/completionMode: NonIndexed/", "not Indexed"},
    {"train.yaml", "/- key: worker.key/,+1d", "projects no item worker.key"},
    {"configmap.yaml", "s/funnel-ps-{0..1}/funnel-ps-{0..2}/", "[cluster] ps expands to"},
    {"configmap.yaml", "s/towers = /towerz = /", "funnel-worker refuses it"},
    {"configmap.yaml", "s/^    curve_secret_key = \\/etc\\/funnel\\/keys\\/worker.key$//",
     "the readiness probe never passed"},
    {"ps.yaml", "s/^  replicas: 2/  replicas: 2\\n  bad: [/", "not valid YAML"},
};

static void test_mutations(void)
{
    for (size_t i = 0; i < sizeof(mutations) / sizeof(mutations[0]); i++) {
        const mutation_t *m = &mutations[i];
        char md[700], out[800];
        char *text;

        snprintf(md, sizeof(md), "%s/m%zu", dir, i);
        CU_ASSERT_EQUAL_FATAL(
            tu_sh(NULL, "cp -r deploy/k8s %s && sed -i '%s' %s/%s", md, m->sed, md, m->file), 0);
        /* the mutation took */
        CU_ASSERT_NOT_EQUAL(tu_sh(NULL, "cmp -s deploy/k8s/%s %s/%s", m->file, md, m->file), 0);
        snprintf(out, sizeof(out), "%s/m%zu.log", dir, i);
        CU_ASSERT_EQUAL(
            tu_sh(out, "python3 deploy/check-manifests.py --bin %s --manifests %s", bin, md), 1);
        text = tu_slurp(out, NULL);
        if (!text || !strstr(text, m->want))
            printf("\nmutation %zu (%s: %s): want '%s', got:\n%s\n", i, m->file, m->sed, m->want,
                   text ? text : "(nothing)");
        CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, m->want) : NULL);
        free(text);
    }
}

int test_deploy_register(void)
{
    CU_pSuite s = CU_add_suite("deploy", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "check-manifests passes on deploy/k8s as shipped (and runs the probe)",
                test_as_shipped);
    CU_add_test(s, "check-manifests names each planted disagreement", test_mutations);
    return CU_get_error();
}
