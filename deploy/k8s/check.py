"""The Kubernetes manifests, checked and prepared for `podman kube play`.

`check`: the kustomization structurally (no kustomize here): every resource exists and parses,
the writer is one replica with Recreate and a PersistentVolumeClaim, the replicas have readiness
on /ready, liveness on /health, requests and limits, tokens and S3 keys come from the Secret,
the Services select the pods, the shards are an Indexed Job whose count is their `--shard N`
and share one lake, the image is the one `images:` names.

`play OUT --image I --writer-port P --replica-port Q --data-claim C --publication-claim D`: one
YAML for `podman kube play` (podman 4.3), from the same manifests with what that engine needs
here: hostNetwork (its default bridge uses private addresses that are never a target here), so
each pod binds 127.0.0.1 on a port of its own (no port mappings; the probes name the port);
one replica; the test's image and volumes; no
Services (kube play has no cluster network) and no optional secret references (it would look
for a podman secret).
"""

import argparse
import pathlib
import sys

import yaml

HERE = pathlib.Path(__file__).resolve().parent


def load(name):
    return list(yaml.safe_load_all((HERE / name).read_text()))


def documents():
    kustomization = yaml.safe_load((HERE / "kustomization.yaml").read_text())
    docs = []
    for resource in kustomization["resources"]:
        assert (HERE / resource).is_file(), f"kustomization names {resource}, which is missing"
        docs += [d for d in load(resource) if d]
    return kustomization, docs


def by_kind(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"one {kind} {name}, found {len(found)}"
    return found[0]


def container(deployment):
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def check():
    kustomization, docs = documents()
    writer = by_kind(docs, "Deployment", "coincast-writer")
    assert writer["spec"]["replicas"] == 1, "one writer"
    assert writer["spec"]["strategy"]["type"] == "Recreate", "the old writer stops first"
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in writer["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    for claim in claims:
        by_kind(docs, "PersistentVolumeClaim", claim)
    assert "coincast-data" in claims, "the writer's data on a claim"
    replica = by_kind(docs, "Deployment", "coincast-replica")
    rc = container(replica)
    assert "--role" in rc["args"] and "replica" in rc["args"], rc["args"]
    assert rc["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert rc["livenessProbe"]["httpGet"]["path"] == "/health"
    for part in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(rc["resources"][part]), f"replica {part}"
    wc = container(writer)
    assert wc["livenessProbe"]["httpGet"]["path"] == "/health"
    for c in (wc, rc):
        secrets = {
            e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
            for e in c["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        for var in ("COINCAST__SERVE__API_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert secrets.get(var) == "coincast-secrets", f"{c['name']}: {var} from the Secret"
        assert {"configMapRef": {"name": "coincast-config"}} in c["envFrom"]
    config = by_kind(docs, "ConfigMap", "coincast-config")["data"]
    assert config["COINCAST__PUBLISH__URL"], "both roles share publish.url"
    for service, component in (("coincast", "replica"), ("coincast-writer", "writer")):
        selector = by_kind(docs, "Service", service)["spec"]["selector"]
        assert selector["app.kubernetes.io/component"] == component, service
    shards = by_kind(docs, "CronJob", "coincast-shards")
    job = shards["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed", "JOB_COMPLETION_INDEX names each shard"
    assert job["completions"] == job["parallelism"], "every shard at once"
    (sc,) = job["template"]["spec"]["containers"]
    args = sc["args"]
    assert args[:2] == ["run", "--shard"] and int(args[2]) == job["completions"], args
    lake = {e["name"] for e in sc["env"]}
    assert {"COINCAST__LAKE__CATALOG", "COINCAST__LAKE__DATA_PATH"} <= lake, "one shared lake"
    images = {i["name"] for i in kustomization.get("images", [])}
    for c in (wc, rc, sc):
        assert c["image"] in images, f"{c['image']} is not in the kustomization's images"
    print(f"deploy/k8s: {len(docs)} resources, structure ok")


def play(out, image, writer_port, replica_port, data_claim, publication_claim):
    _, docs = documents()
    played = []
    for d in docs:
        # No cluster network, and kube play rejects Jobs: the shards' pods run in the lake's
        # test (tests/it/lake.rs) instead.
        if d["kind"] in ("Service", "CronJob"):
            continue
        if d["kind"] == "PersistentVolumeClaim":
            continue
        if d["kind"] == "Deployment":
            spec = d["spec"]
            spec["replicas"] = 1
            pod = spec["template"]["spec"]
            pod["hostNetwork"] = True
            pod.pop("securityContext", None)
            (c,) = pod["containers"]
            c["image"] = image
            port = writer_port if "writer" in d["metadata"]["name"] else replica_port
            c["args"] = [a if "0.0.0.0:" not in a else f"127.0.0.1:{port}" for a in c["args"]]
            # With hostNetwork a port is the process's own: kube play refuses port mappings.
            c.pop("ports", None)
            for probe in ("readinessProbe", "livenessProbe"):
                if probe in c:
                    c[probe]["httpGet"]["port"] = port
            c["env"] = [
                e for e in c["env"] if "secretKeyRef" not in e.get("valueFrom", {})
            ] + [
                {"name": "COINCAST__SERVE__API_TOKEN", "value": "kube-play"},
                {"name": "COINCAST__COINGECKO__BASE_URL", "value": "http://127.0.0.1:9/api/v3"},
                {"name": "COINCAST__COINGECKO__MAX_RETRIES", "value": "0"},
                {"name": "COINCAST__SERVE__MAX_DATA_AGE_HOURS", "value": "100000"},
                {"name": "COINCAST__SERVE__RETRAIN_SCHEDULE", "value": ""},
                {"name": "COINCAST__SERVE__WRITER_URL", "value": f"http://127.0.0.1:{writer_port}"},
            ]
            for v in pod["volumes"]:
                claim = v.get("persistentVolumeClaim")
                if claim:
                    claim["claimName"] = {
                        "coincast-data": data_claim,
                        "coincast-publication": publication_claim,
                    }[claim["claimName"]]
        if d["kind"] == "ConfigMap":
            d["data"]["COINCAST__COINS"] = "bitcoin,solana"
            d["data"]["COINCAST__PUBLISH__POLL_SECS"] = "1"
        played.append(d)
    pathlib.Path(out).write_text(yaml.safe_dump_all(played, sort_keys=False))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check")
    p = sub.add_parser("play")
    p.add_argument("out")
    p.add_argument("--image", required=True)
    p.add_argument("--writer-port", type=int, required=True)
    p.add_argument("--replica-port", type=int, required=True)
    p.add_argument("--data-claim", required=True)
    p.add_argument("--publication-claim", required=True)
    args = parser.parse_args()
    if args.command == "check":
        check()
    else:
        play(args.out, args.image, args.writer_port, args.replica_port, args.data_claim,
             args.publication_claim)
    return 0


if __name__ == "__main__":
    sys.exit(main())
