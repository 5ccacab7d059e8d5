#!/usr/bin/env python3
"""Check that deploy/k8s agrees with the programs it runs.

  deploy/check-manifests.py [--bin BINDIR] [--manifests DIR] [--no-run]

Without a cluster, this is what can be checked of the manifests:

 static  every file parses as YAML; the kinds are there (a StatefulSet behind
         a headless Service with a claim per shard, an Indexed Job, the
         ConfigMap, the Secret deploy/make-secret.sh prints); the Service's
         port = the containers' port = the port of the config's `listen`;
         `shards` = replicas and the config's `ps` expands to exactly
         funnel-ps-I.<service>:PORT for every replica; `workers` =
         completions = parallelism; every --flag in a command or probe is in
         that program's --help; every file the config names (keys, data) is
         under a mount of each container whose programs read it, and a
         Secret item with that name exists; the variables the pods rely on
         (JOB_COMPLETION_INDEX, KUBERNETES_SERVICE_HOST) are the ones
         common/cluster_env.h reads; funnel-worker accepts the config.
 run     (unless --no-run) the shard container's command, with the config's
         paths moved into a scratch folder and `listen` onto a free
         loopback port, serves with the Secret's CURVE keys; its readiness
         probe fails before the shard is up and passes after; a worker
         given only JOB_COMPLETION_INDEX takes that rank of `workers`.

Exit status 0 when everything agrees; 1 with one line per disagreement.
"""
import argparse
import base64
import configparser
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import yaml

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
problems = []


def bad(msg):
    problems.append(msg)


def load_docs(mdir):
    docs = []
    for name in sorted(os.listdir(mdir)):
        if not name.endswith((".yaml", ".yml")):
            continue
        path = os.path.join(mdir, name)
        try:
            with open(path) as f:
                for d in yaml.safe_load_all(f):
                    if d is not None:
                        docs.append((name, d))
        except yaml.YAMLError as e:
            bad("%s: not valid YAML: %s" % (path, e))
    return docs


def one(docs, kind, pred=lambda d: True):
    found = [d for _, d in docs if d.get("kind") == kind and pred(d)]
    if len(found) != 1:
        bad("expected one %s, found %d" % (kind, len(found)))
        return None
    return found[0]


def expand(spec):
    """The endpoint list as cluster_env_expand() reads it (comma list, {A..B})."""
    out = []
    for item in [s.strip() for s in spec.split(",")]:
        m = re.fullmatch(r"(.*)\{(\d+)\.\.(\d+)\}(.*)", item)
        if m:
            out += ["%s%d%s" % (m.group(1), i, m.group(4))
                    for i in range(int(m.group(2)), int(m.group(3)) + 1)]
        else:
            out.append(item)
    return out


def help_text(bindir, cmd):
    prog = os.path.join(bindir, os.path.basename(cmd[0]))
    args = [prog]
    if cmd[0] == "funnel-worker" and len(cmd) > 1:
        args.append(cmd[1])
    r = subprocess.run(args + ["--help"], capture_output=True, text=True, timeout=30)
    return r.stdout + r.stderr


def check_flags(bindir, where, cmd):
    if not cmd or not cmd[0].startswith("funnel-"):
        bad("%s: runs %r, not a funnel program" % (where, cmd[:1]))
        return
    if not os.access(os.path.join(bindir, cmd[0]), os.X_OK):
        bad("%s: %s is not a program in %s" % (where, cmd[0], bindir))
        return
    text = help_text(bindir, cmd)
    for tok in cmd[1:]:
        if tok.startswith("--"):
            flag = tok.split("=", 1)[0]
            if not re.search(re.escape(flag) + r"(\s|=|$)", text):
                bad("%s: %s %s is not in `%s --help`" % (where, cmd[0], flag, " ".join(cmd[:2])))


def pod_containers(doc):
    return doc["spec"]["template"]["spec"]["containers"]


def pod_volumes(doc):
    return {v["name"]: v for v in doc["spec"]["template"]["spec"].get("volumes", [])}


def conf_sections_read(prog):
    return ["ps", "model"] if prog == "funnel-ps" else ["cluster", "model", "data", "train"]


def check_paths(where, conf, progs, container, volumes, claim_names, secret):
    """Every absolute path a program's config sections name is mounted."""
    mounts = container.get("volumeMounts", [])
    for prog in progs:
        for sect in conf_sections_read(prog):
            if not conf.has_section(sect):
                continue
            for key, val in conf.items(sect):
                if not val.startswith("/"):
                    continue
                m = max((m for m in mounts if val == m["mountPath"] or
                         val.startswith(m["mountPath"].rstrip("/") + "/")),
                        key=lambda m: len(m["mountPath"]), default=None)
                if not m:
                    bad("%s: [%s] %s = %s (read by %s) is under no volumeMount" %
                        (where, sect, key, val, prog))
                    continue
                vol = volumes.get(m["name"])
                if vol is None and m["name"] not in claim_names:
                    bad("%s: mount %s names no volume" % (where, m["name"]))
                    continue
                if vol and "secret" in vol:
                    rel = val[len(m["mountPath"].rstrip("/")) + 1:]
                    items = vol["secret"].get("items")
                    keys = [i["key"] for i in items if i["path"] == rel] if items else [rel]
                    if not keys:
                        bad("%s: [%s] %s = %s: volume %s projects no item %s" %
                            (where, sect, key, val, m["name"], rel))
                    for k in keys:
                        if secret is not None and k not in secret.get("data", {}):
                            bad("%s: [%s] %s = %s: the Secret has no key %s" %
                                (where, sect, key, val, k))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_checks(bindir, conf_text, ps_cmd, probe, keys_dir, scratch):
    """Start the shard container's command on loopback with the Secret's keys;
    the probe must fail before and pass after. A worker with only
    JOB_COMPLETION_INDEX takes that rank."""
    port = free_port()
    text = conf_text.replace("/etc/funnel/keys/", keys_dir + "/")
    text = text.replace("/data/", scratch + "/data/")
    text = re.sub(r"(?m)^listen\s*=.*$", "listen = tcp://127.0.0.1:%d" % port, text)
    conf_path = os.path.join(scratch, "funnel.conf")
    with open(conf_path, "w") as f:
        f.write(text)

    def localize(cmd):
        out = [os.path.join(bindir, cmd[0])]
        for tok in cmd[1:]:
            tok = tok.replace("/etc/funnel/funnel.conf", conf_path)
            out.append(tok.replace("127.0.0.1:7700", "127.0.0.1:%d" % port))
        return out

    env = dict(os.environ, FUNNEL_SHARD="0")
    for k in ("FUNNEL_RANK", "FUNNEL_WORKERS", "FUNNEL_PS", "SLURM_PROCID", "SLURM_NTASKS",
              "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "JOB_COMPLETION_INDEX"):
        env.pop(k, None)
    r = subprocess.run(localize(probe), capture_output=True, text=True, timeout=60, env=env)
    if r.returncode == 0:
        bad("run: the readiness probe passed with no shard running")
    log = open(os.path.join(scratch, "ps.log"), "w")
    shard = subprocess.Popen(localize(ps_cmd), stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        ok = False
        for _ in range(30):
            r = subprocess.run(localize(probe), capture_output=True, text=True, timeout=60, env=env)
            if r.returncode == 0:
                ok = True
                break
            if shard.poll() is not None:
                break
            time.sleep(0.5)
        if not ok:
            bad("run: the readiness probe never passed: %s / shard log: %s" %
                (r.stderr.strip()[-300:], open(os.path.join(scratch, "ps.log")).read()[-500:]))
        elif not re.search(r"curve\s+1", r.stdout):
            bad("run: the shard does not speak CURVE with the Secret's keys: %s" % r.stdout[-300:])
    finally:
        shard.terminate()
        try:
            shard.wait(30)
        except subprocess.TimeoutExpired:
            shard.kill()
            shard.wait()
        log.close()
    workers = conf.getint("cluster", "workers")
    wenv = dict(env, JOB_COMPLETION_INDEX=str(workers - 1))
    r = subprocess.run([os.path.join(bindir, "funnel-worker"), "train", "--conf", conf_path,
                        os.path.join(scratch, "no-such-log.tsv")],
                       capture_output=True, text=True, timeout=60, env=wenv)
    want = "rank %d (JOB_COMPLETION_INDEX=%d, Kubernetes Indexed Job) of %d workers (config)" % (
        workers - 1, workers - 1, workers)
    if want not in r.stderr:
        bad("run: a worker given JOB_COMPLETION_INDEX=%d did not say '%s': %s" %
            (workers - 1, want, r.stderr.strip()[-300:]))


def main():
    global conf
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(TOP, "bin"), help="funnel's programs")
    ap.add_argument("--manifests", default=os.path.join(TOP, "deploy", "k8s"))
    ap.add_argument("--no-run", action="store_true", help="static checks only")
    a = ap.parse_args()
    bindir = os.path.abspath(a.bin)

    docs = load_docs(a.manifests)
    scratch = tempfile.mkdtemp(prefix="funnel-deploy-")
    try:
        keys_dir = os.path.join(scratch, "keys")
        r = subprocess.run([os.path.join(TOP, "deploy", "make-secret.sh"), "--keys", keys_dir,
                            "--bin", bindir], capture_output=True, text=True, timeout=60)
        secret = yaml.safe_load(r.stdout) if r.returncode == 0 else None
        if secret is None:
            bad("deploy/make-secret.sh failed: %s" % r.stderr.strip())
        else:
            for k, v in secret.get("data", {}).items():
                base64.b64decode(v, validate=True)

        cm = one(docs, "ConfigMap")
        svc = one(docs, "Service", lambda d: d["spec"].get("clusterIP") == "None")
        sts = one(docs, "StatefulSet")
        job = one(docs, "Job")
        if None in (cm, svc, sts, job):
            return finish()
        conf_text = cm["data"].get("funnel.conf", "")
        conf = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=None)
        conf.read_string(conf_text)
        conf_path = os.path.join(scratch, "as-shipped.conf")
        with open(conf_path, "w") as f:
            f.write(conf_text)
        r = subprocess.run([os.path.join(bindir, "funnel-worker"), "print-conf", "--conf",
                            conf_path], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            bad("ConfigMap funnel.conf: funnel-worker refuses it: %s" % r.stderr.strip())

        # names and ports
        listen = conf.get("ps", "listen", fallback="")
        m = re.fullmatch(r"tcp://[^:]+:(\d+)", listen)
        port = int(m.group(1)) if m else None
        if port is None:
            bad("ConfigMap: [ps] listen = %r is not tcp://HOST:PORT" % listen)
        if sts["spec"].get("serviceName") != svc["metadata"]["name"]:
            bad("StatefulSet serviceName %r is not the headless Service %r" %
                (sts["spec"].get("serviceName"), svc["metadata"]["name"]))
        labels = sts["spec"]["template"]["metadata"]["labels"]
        for k, v in svc["spec"]["selector"].items():
            if labels.get(k) != v:
                bad("Service selector %s=%s does not select the StatefulSet's pods" % (k, v))
        svc_ports = [p["port"] for p in svc["spec"]["ports"]]
        cports = [p["containerPort"] for c in pod_containers(sts) for p in c.get("ports", [])]
        if svc_ports != [port] or cports != [port]:
            bad("ports disagree: Service %s, container %s, config listen %s" %
                (svc_ports, cports, port))
        replicas = sts["spec"].get("replicas", 1)
        if conf.getint("ps", "shards", fallback=1) != replicas:
            bad("config [ps] shards = %s but the StatefulSet has %d replicas" %
                (conf.get("ps", "shards", fallback="1"), replicas))
        want = ["tcp://%s-%d.%s:%s" % (sts["metadata"]["name"], i, svc["metadata"]["name"], port)
                for i in range(replicas)]
        got = expand(conf.get("cluster", "ps", fallback=""))
        if got != want:
            bad("config [cluster] ps expands to %s, the StatefulSet's pods are %s" % (got, want))
        claims = [t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])]
        if not claims:
            bad("StatefulSet: no volumeClaimTemplates (a claim per shard)")
        if job["spec"].get("completionMode") != "Indexed":
            bad("Job: completionMode is not Indexed")
        workers = conf.getint("cluster", "workers", fallback=1)
        for k in ("completions", "parallelism"):
            if job["spec"].get(k) != workers:
                bad("Job %s = %s but config [cluster] workers = %d" % (k, job["spec"].get(k),
                                                                        workers))
        # what the pods rely on is what cluster_env reads
        with open(os.path.join(TOP, "common", "cluster_env.h")) as f:
            ce = f.read()
        for var in ("JOB_COMPLETION_INDEX", "KUBERNETES_SERVICE_HOST"):
            if var not in ce:
                bad("common/cluster_env.h does not read %s, which the manifests rely on" % var)
        for name, kind_doc in (("StatefulSet", sts), ("Job", job)):
            for c in pod_containers(kind_doc):
                for e in c.get("env", []):
                    if e["name"].startswith("FUNNEL_") and e["name"] not in ce:
                        bad("%s %s: env %s is read by no program" % (name, c["name"], e["name"]))

        # flags and mounts
        ps_cmd = probe = None
        for name, d in (("StatefulSet", sts), ("Job", job)):
            vols = pod_volumes(d)
            for c in pod_containers(d):
                where = "%s %s" % (name, c["name"])
                cmd = c.get("command", []) + c.get("args", [])
                check_flags(bindir, where, cmd)
                progs = [cmd[0]] if cmd else []
                rp = c.get("readinessProbe", {}).get("exec", {}).get("command")
                if rp:
                    check_flags(bindir, where + " readinessProbe", rp)
                    progs.append(rp[0])
                if name == "StatefulSet":
                    ps_cmd, probe = cmd, rp
                    if not rp:
                        bad("StatefulSet: no exec readinessProbe")
                    if not any(m["name"] in claims for m in c.get("volumeMounts", [])):
                        bad("StatefulSet %s: mounts none of its claims %s" % (c["name"], claims))
                check_paths(where, conf, progs, c, vols, claims, secret)
                for v in vols.values():
                    if "secret" in v and secret is not None and \
                            v["secret"]["secretName"] != secret["metadata"]["name"]:
                        bad("%s: volume %s names Secret %s, make-secret.sh makes %s" %
                            (where, v["name"], v["secret"]["secretName"],
                             secret["metadata"]["name"]))
        if not a.no_run and not problems and ps_cmd and probe:
            run_checks(bindir, conf_text, ps_cmd, probe, keys_dir, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return finish()


def finish():
    for p in problems:
        print("check-manifests: " + p, file=sys.stderr)
    if not problems:
        print("check-manifests: deploy/k8s agrees with the programs")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
