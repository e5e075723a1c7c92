//! The Kubernetes recipe in `contrib/kubernetes/`: every manifest passes the Kubernetes API
//! schemas (`kubernetes-validate --strict`, PyPI package `kubernetes-validate`, installed by
//! `.ci/run`; skipped without it, except under `CI=true`), and the files agree with each other,
//! with the Dockerfile and with the settings mm-edge knows: names referenced exist, selectors
//! pick the right pods, container ports are the listeners `mm-edge check` reports for the
//! ConfigMap, probes run the image's `mm-edge healthcheck`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use mm_edge::config::SETTINGS;
use serde::Deserialize;
use serde_norway::Value;

/// Kubernetes versions the manifests are validated against: the oldest the recipe supports
/// (the preStop `sleep` action is on by default from 1.30) and the newest the pinned
/// kubernetes-validate (1.37.0, `.ci/run`) knows.
const KUBERNETES_VERSIONS: &[&str] = &["1.30.0", "1.37.0"];

/// The settings that hold the Redis secret: they must come from the Secret.
const SECRET_SETTINGS: &[&str] = &[
    "MM_EDGE_RATE_LIMIT_REDIS",
    "MM_EDGE_RATE_LIMIT_REDIS_PASSWORD",
];

const EDGE: &str = "mm-edge";
const REDIS: &str = "mm-edge-redis";
const CONFIGMAP: &str = "mm-edge-settings";

/// How long `mm-edge healthcheck` waits for an answer before it fails (src/healthcheck.rs).
const HEALTHCHECK_OWN_TIMEOUT_SECS: i64 = 5;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/kubernetes")
}

/// The manifest files, sorted by name.
fn files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .expect("contrib/kubernetes")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .into_string()
                .expect("utf-8")
        })
        .collect();
    names.sort();
    for name in &names {
        assert!(
            name.ends_with(".yaml"),
            "contrib/kubernetes/{name}: every file there is a manifest (*.yaml) that the schema \
             check validates"
        );
    }
    names
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of every manifest, as (file, document).
fn docs() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for file in files() {
        let text = read(&dir().join(&file));
        for doc in serde_norway::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{file}: {e}"));
            if !v.is_null() {
                out.push((file.clone(), v));
            }
        }
    }
    out
}

/// The value at a dotted path, or a failure naming the path.
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, part| match v.get(part) {
        Some(next) => next,
        None => panic!("{path}: no `{part}` in {v:?}"),
    })
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

fn int_at(v: &Value, path: &str) -> i64 {
    at(v, path)
        .as_i64()
        .unwrap_or_else(|| panic!("{path} is not an integer"))
}

fn seq<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    at(v, path)
        .as_sequence()
        .unwrap_or_else(|| panic!("{path} is not a list"))
}

/// A list that may be absent (empty then).
fn maybe_seq<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_sequence)
        .map_or(&[], Vec::as_slice)
}

/// Asserts that the boolean at `path` is `want` (in `who`'s manifest).
fn flag(v: &Value, path: &str, want: bool, who: &str) {
    assert_eq!(at(v, path).as_bool(), Some(want), "{who}: {path}");
}

fn kind(v: &Value) -> &str {
    str_at(v, "kind")
}

fn name(v: &Value) -> &str {
    str_at(v, "metadata.name")
}

fn find<'a>(docs: &'a [(String, Value)], want_kind: &str, want_name: &str) -> &'a Value {
    docs.iter()
        .map(|(_, v)| v)
        .find(|v| kind(v) == want_kind && name(v) == want_name)
        .unwrap_or_else(|| {
            let have: Vec<String> = docs
                .iter()
                .map(|(f, v)| format!("{f}: {}/{}", kind(v), name(v)))
                .collect();
            panic!("no {want_kind} named {want_name} in contrib/kubernetes ({have:?})")
        })
}

fn of_kind<'a>(docs: &'a [(String, Value)], want: &'a str) -> impl Iterator<Item = &'a Value> {
    docs.iter().map(|(_, v)| v).filter(move |v| kind(v) == want)
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    serde_norway::from_value(v.clone()).expect("labels: a map of strings")
}

/// Whether a selector (a label map) picks a pod with `pod` labels.
fn selects(selector: &BTreeMap<String, String>, pod: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| pod.get(k) == Some(v))
}

fn pod_labels(deployment: &Value) -> BTreeMap<String, String> {
    labels(at(deployment, "spec.template.metadata.labels"))
}

fn container<'a>(deployment: &'a Value, want: &str) -> &'a Value {
    seq(deployment, "spec.template.spec.containers")
        .iter()
        .find(|c| name_of_item(c) == want)
        .unwrap_or_else(|| panic!("deployment {} has no container {want}", name(deployment)))
}

fn name_of_item(v: &Value) -> &str {
    str_at(v, "name")
}

/// The ConfigMap's settings, as the environment `envFrom` makes of them.
fn configmap_env(docs: &[(String, Value)]) -> BTreeMap<String, String> {
    labels(at(find(docs, "ConfigMap", CONFIGMAP), "data"))
}

/// Settings shown commented out in configmap.yaml (`  #NAME: value`), for the reader to turn on.
fn commented_settings() -> Vec<(String, String)> {
    read(&dir().join("configmap.yaml"))
        .lines()
        .filter_map(|l| {
            let (k, v) = l.trim().strip_prefix('#')?.split_once(": ")?;
            k.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                .then(|| (k.to_owned(), v.trim().trim_matches('"').to_owned()))
        })
        .collect()
}

/// `mm-edge check` with `env` as its whole environment: exits 0, and its effective settings
/// by TOML key (`listen.http` -> `[::]:80`).
fn effective(env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = common::run(&env, &["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mm-edge check refuses the settings of configmap.yaml ({env:?}):\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| {
            let (k, rest) = l.split_once(" = \"")?;
            Some((k.to_owned(), rest.split_once('"')?.0.to_owned()))
        })
        .collect()
}

fn port_of(addr: &str) -> i64 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("{addr}: no port"))
}

fn seconds(duration: &str) -> i64 {
    let (n, unit) = duration.split_at(duration.trim_end_matches(char::is_alphabetic).len());
    let n: i64 = n.parse().unwrap_or_else(|_| panic!("duration {duration}"));
    n * match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => panic!("duration {duration}: unit {unit}"),
    }
}

/// A line of the Dockerfile's final stage starting with `instr ` (the last one wins).
fn dockerfile(instr: &str) -> String {
    let text = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"));
    text.lines()
        .filter_map(|l| l.strip_prefix(instr)?.strip_prefix(' '))
        .next_back()
        .unwrap_or_else(|| panic!("Dockerfile has no {instr}"))
        .trim()
        .to_owned()
}

/// The schema checker, or `None` (skip) outside CI when it is missing.
fn validator() -> Option<PathBuf> {
    common::tool_from(
        "kubernetes-validate",
        "pip install kubernetes-validate==1.37.0",
    )
}

fn kubernetes_validate(version: &str, paths: &[PathBuf]) -> std::process::Output {
    let tool = validator().expect("checked by the caller");
    Command::new(tool)
        .args(["--strict", "--kubernetes-version", version])
        .args(paths)
        .output()
        .expect("run kubernetes-validate")
}

#[test]
fn every_manifest_passes_the_kubernetes_schemas() {
    if validator().is_none() {
        return;
    }
    let docs = docs();
    let paths: Vec<PathBuf> = files().iter().map(|f| dir().join(f)).collect();
    for version in KUBERNETES_VERSIONS {
        let out = kubernetes_validate(version, &paths);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "kubernetes-validate --strict -k {version}:\n{text}"
        );
        // Each document was validated, not skipped.
        for (file, doc) in &docs {
            let what = format!(
                "{file} passed for resource {}/{}",
                kind(doc).to_ascii_lowercase(),
                name(doc)
            );
            assert!(text.contains(&what), "`{what}` missing:\n{text}");
        }
    }

    // The check is strict: a misspelt field is refused, not ignored.
    let tmp = tempfile::tempdir().expect("tempdir");
    let typo = tmp.path().join("deployment.yaml");
    let text = read(&dir().join("deployment.yaml"));
    let misspelt = text.replacen("readOnlyRootFilesystem:", "readOnlyRootFileSystem:", 1);
    assert_ne!(text, misspelt);
    std::fs::write(&typo, misspelt).expect("write");
    let out = kubernetes_validate(KUBERNETES_VERSIONS[0], &[typo]);
    assert!(
        !out.status.success(),
        "kubernetes-validate --strict accepted an unknown field"
    );
}

#[test]
fn the_configmap_and_the_deployment_set_only_settings_mm_edge_knows() {
    let docs = docs();
    let known = |env: &str| SETTINGS.iter().any(|s| s.env == env);
    let data = configmap_env(&docs);
    let commented = commented_settings();
    assert!(
        !commented.is_empty(),
        "configmap.yaml shows the optional settings commented out"
    );
    for env in data.keys().chain(commented.iter().map(|(k, _)| k)) {
        assert!(
            known(env),
            "configmap.yaml: {env} is not an mm-edge setting"
        );
        let secret = SETTINGS.iter().any(|s| s.env == env && s.is_secret());
        assert!(
            !secret,
            "configmap.yaml: {env} is a secret: it belongs in a Secret"
        );
    }
    let edge = container(find(&docs, "Deployment", EDGE), EDGE);
    for var in seq(edge, "env") {
        let env = name_of_item(var);
        assert!(
            known(env),
            "deployment.yaml: {env} is not an mm-edge setting"
        );
    }

    // The values are valid: as given, and with the commented-out alternatives turned on.
    let settings = effective(&data);
    assert_eq!(settings["site.host"], data["MATTERMOST_HOST"]);
    let mut alternatives = data.clone();
    alternatives.extend(commented);
    let settings = effective(&alternatives);
    assert_eq!(settings["listen.proxy_protocol"], "on");
}

#[test]
fn every_reference_between_the_manifests_resolves() {
    let docs = docs();
    let exists = |k: &str, n: &str| of_kind(&docs, k).any(|v| name(v) == n);
    for deployment in of_kind(&docs, "Deployment") {
        let pod = at(deployment, "spec.template.spec");
        for c in seq(pod, "containers") {
            for from in maybe_seq(c, "envFrom") {
                let cm = str_at(from, "configMapRef.name");
                assert!(exists("ConfigMap", cm), "no ConfigMap {cm}");
            }
            for var in maybe_seq(c, "env") {
                let Some(secret_ref) = var.get("valueFrom").and_then(|v| v.get("secretKeyRef"))
                else {
                    continue;
                };
                let secret = find(&docs, "Secret", str_at(secret_ref, "name"));
                let key = str_at(secret_ref, "key");
                assert!(
                    at(secret, "stringData").get(key).is_some(),
                    "Secret {} has no key {key} (for {})",
                    name(secret),
                    name_of_item(var)
                );
            }
            let volumes: BTreeSet<&str> = seq(pod, "volumes").iter().map(name_of_item).collect();
            for mount in seq(c, "volumeMounts") {
                let v = name_of_item(mount);
                assert!(volumes.contains(v), "{}: no volume {v}", name(deployment));
            }
        }
        for volume in seq(pod, "volumes") {
            if let Some(claim) = volume.get("persistentVolumeClaim") {
                let claim = str_at(claim, "claimName");
                assert!(exists("PersistentVolumeClaim", claim), "no PVC {claim}");
            }
        }
    }
    // The Redis URL and password reach mm-edge from the Secret, never as plain values.
    let edge = container(find(&docs, "Deployment", EDGE), EDGE);
    for env in SECRET_SETTINGS {
        let var = seq(edge, "env")
            .iter()
            .find(|v| name_of_item(v) == *env)
            .unwrap_or_else(|| panic!("deployment.yaml does not set {env}"));
        assert!(
            var.get("value").is_none(),
            "{env} must come from the Secret"
        );
        at(var, "valueFrom.secretKeyRef.name");
    }
}

#[test]
fn services_and_the_budget_select_their_own_pods_only() {
    let docs = docs();
    let deployments: Vec<&Value> = of_kind(&docs, "Deployment").collect();
    assert!(deployments.len() >= 2, "mm-edge and Redis");
    for d in &deployments {
        let pods = pod_labels(d);
        assert!(
            selects(&labels(at(d, "spec.selector.matchLabels")), &pods),
            "{}: its selector does not match its pod labels",
            name(d)
        );
        for spread in maybe_seq(at(d, "spec.template.spec"), "topologySpreadConstraints") {
            let sel = labels(at(spread, "labelSelector.matchLabels"));
            assert!(
                selects(&sel, &pods),
                "{}: topology spread selector",
                name(d)
            );
        }
    }
    // Each Service and the PDB select the pods of the Deployment of their name, no others.
    let selectors = of_kind(&docs, "Service")
        .map(|s| (s, labels(at(s, "spec.selector"))))
        .chain(
            of_kind(&docs, "PodDisruptionBudget")
                .map(|p| (p, labels(at(p, "spec.selector.matchLabels")))),
        );
    for (v, selector) in selectors {
        for d in &deployments {
            assert_eq!(
                selects(&selector, &pod_labels(d)),
                name(d) == name(v),
                "{} {}: selector {selector:?} against the pods of {}",
                kind(v),
                name(v),
                name(d)
            );
        }
    }
    // A Service's target ports are named ports of its pods.
    for service in of_kind(&docs, "Service") {
        let d = find(&docs, "Deployment", name(service));
        let ports: BTreeSet<&str> = seq(d, "spec.template.spec.containers")
            .iter()
            .flat_map(|c| seq(c, "ports"))
            .map(name_of_item)
            .collect();
        for port in seq(service, "spec.ports") {
            let target = str_at(port, "targetPort");
            assert!(
                ports.contains(target),
                "{}: no pod port {target}",
                name(service)
            );
        }
    }
}

#[test]
fn container_ports_are_the_listeners_and_the_service_publishes_80_and_443() {
    let docs = docs();
    let settings = effective(&configmap_env(&docs));
    let deployment = find(&docs, "Deployment", EDGE);
    let c = container(deployment, EDGE);
    let ports: BTreeMap<&str, i64> = seq(c, "ports")
        .iter()
        .map(|p| (name_of_item(p), int_at(p, "containerPort")))
        .collect();
    let mut expected = BTreeMap::from([
        ("http", port_of(&settings["listen.http"])),
        ("https", port_of(&settings["listen.https"])),
    ]);
    if !settings["metrics.listen"].is_empty() {
        expected.insert("metrics", port_of(&settings["metrics.listen"]));
    }
    assert_eq!(ports, expected, "containerPorts against `mm-edge check`");

    // uid 2000 binds a port below 1024 only with the unprivileged-port sysctl.
    let sysctl = maybe_seq(
        at(deployment, "spec.template.spec.securityContext"),
        "sysctls",
    )
    .iter()
    .find(|s| name_of_item(s) == "net.ipv4.ip_unprivileged_port_start")
    .map(|s| str_at(s, "value").parse::<i64>().expect("a number"));
    let lowest = ports.values().min().copied().unwrap_or(0);
    assert!(
        lowest >= 1024 || sysctl.is_some_and(|start| start <= lowest),
        "port {lowest} needs net.ipv4.ip_unprivileged_port_start <= {lowest} (have {sysctl:?})"
    );

    let service = find(&docs, "Service", EDGE);
    assert_eq!(str_at(service, "spec.type"), "LoadBalancer");
    assert_eq!(
        str_at(service, "spec.externalTrafficPolicy"),
        "Local",
        "client addresses are kept (or turn on the PROXY protocol)"
    );
    let published: BTreeMap<i64, &str> = seq(service, "spec.ports")
        .iter()
        .map(|p| (int_at(p, "port"), str_at(p, "targetPort")))
        .collect();
    assert_eq!(
        published,
        BTreeMap::from([(80, "http"), (443, "https")]),
        "the Service publishes the two listeners on 80 and 443, and not the metrics"
    );
}

#[test]
fn probes_run_the_image_healthcheck_in_time() {
    let docs = docs();
    let c = container(find(&docs, "Deployment", EDGE), EDGE);
    let entrypoint: Vec<String> =
        serde_json::from_str(&dockerfile("ENTRYPOINT")).expect("ENTRYPOINT in exec form");
    let mut expected = entrypoint.clone();
    expected.push("healthcheck".to_owned());
    for probe in ["readinessProbe", "livenessProbe"] {
        let command: Vec<String> =
            serde_norway::from_value(at(c, probe)["exec"]["command"].clone())
                .unwrap_or_else(|e| panic!("{probe}.exec.command: {e}"));
        assert_eq!(command, expected, "{probe} runs `mm-edge healthcheck`");
        let timeout = int_at(at(c, probe), "timeoutSeconds");
        assert!(
            timeout > HEALTHCHECK_OWN_TIMEOUT_SECS,
            "{probe}: timeoutSeconds {timeout} would kill the healthcheck before it reports"
        );
    }
}

#[test]
fn pods_run_non_root_on_a_read_only_root_with_bounded_resources() {
    let docs = docs();
    for d in of_kind(&docs, "Deployment") {
        let pod = at(d, "spec.template.spec");
        let who = name(d);
        flag(pod, "securityContext.runAsNonRoot", true, who);
        assert_eq!(
            str_at(pod, "securityContext.seccompProfile.type"),
            "RuntimeDefault"
        );
        // Service links would put MATTERMOST_PORT=tcp://... (an old docker-mattermost
        // variable mm-edge reads) into the pods when a Service is named "mattermost".
        flag(pod, "enableServiceLinks", false, who);
        flag(pod, "automountServiceAccountToken", false, who);
        for c in seq(pod, "containers") {
            let sc = at(c, "securityContext");
            flag(sc, "allowPrivilegeEscalation", false, who);
            flag(sc, "readOnlyRootFilesystem", true, who);
            assert_eq!(seq(sc, "capabilities.drop"), [Value::from("ALL")], "{who}");
            for bound in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    at(c, &format!("resources.{bound}.{resource}"));
                }
            }
        }
    }

    // mm-edge runs as the image's user and can write where it writes: the state dir (the
    // shared, ReadWriteMany claim) and /tmp.
    let d = find(&docs, "Deployment", EDGE);
    let pod = at(d, "spec.template.spec");
    let user = dockerfile("USER");
    let (uid, gid) = user.split_once(':').expect("USER uid:gid");
    assert_eq!(int_at(pod, "securityContext.runAsUser").to_string(), uid);
    assert_eq!(int_at(pod, "securityContext.runAsGroup").to_string(), gid);
    let settings = effective(&configmap_env(&docs));
    let mounts: BTreeMap<&str, &str> = seq(container(d, EDGE), "volumeMounts")
        .iter()
        .map(|m| (str_at(m, "mountPath"), name_of_item(m)))
        .collect();
    let state = mounts
        .get(settings["state_dir"].as_str())
        .unwrap_or_else(|| panic!("no volume at the state dir {}", settings["state_dir"]));
    assert!(mounts.contains_key("/tmp"), "/tmp on a read-only root");
    let volume = seq(pod, "volumes")
        .iter()
        .find(|v| name_of_item(v) == *state)
        .expect("state volume");
    let claim = find(
        &docs,
        "PersistentVolumeClaim",
        str_at(volume, "persistentVolumeClaim.claimName"),
    );
    assert_eq!(
        seq(claim, "spec.accessModes"),
        [Value::from("ReadWriteMany")]
    );
}

#[test]
fn replicas_go_down_one_at_a_time_and_drain_before_they_are_killed() {
    let docs = docs();
    let d = find(&docs, "Deployment", EDGE);
    let replicas = int_at(d, "spec.replicas");
    assert_eq!(replicas, 2);
    assert_eq!(int_at(d, "spec.strategy.rollingUpdate.maxUnavailable"), 0);
    let pdb = find(&docs, "PodDisruptionBudget", EDGE);
    let min = int_at(pdb, "spec.minAvailable");
    assert!(
        (1..replicas).contains(&min),
        "minAvailable {min} of {replicas}: at least one serves, and a drain can proceed"
    );
    let settings = effective(&configmap_env(&docs));
    let grace = seconds(&settings["server.shutdown_grace"]);
    let pre_stop = int_at(container(d, EDGE), "lifecycle.preStop.sleep.seconds");
    let kill_after = int_at(d, "spec.template.spec.terminationGracePeriodSeconds");
    assert!(
        kill_after > pre_stop + grace,
        "terminationGracePeriodSeconds {kill_after} <= preStop {pre_stop} s + shutdown grace {grace} s"
    );
}

#[test]
fn the_redis_url_names_the_redis_service_and_both_share_one_password() {
    let docs = docs();
    let secret_ref = |c: &Value, env: &str| {
        let var = seq(c, "env")
            .iter()
            .find(|v| name_of_item(v) == env)
            .unwrap_or_else(|| panic!("no {env}"));
        let r = at(var, "valueFrom.secretKeyRef");
        (str_at(r, "name").to_owned(), str_at(r, "key").to_owned())
    };
    let edge = container(find(&docs, "Deployment", EDGE), EDGE);
    let redis_deployment = find(&docs, "Deployment", REDIS);
    let redis = container(redis_deployment, "redis");
    let (secret, url_key) = secret_ref(edge, SECRET_SETTINGS[0]);
    let url = str_at(at(find(&docs, "Secret", &secret), "stringData"), &url_key);
    let authority = url
        .strip_prefix("redis://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("{url}: not redis://HOST:PORT/DB"));
    let service = find(&docs, "Service", REDIS);
    let port = int_at(&seq(service, "spec.ports")[0], "port");
    assert_eq!(authority, format!("{}:{port}", name(service)));

    assert_eq!(
        secret_ref(edge, SECRET_SETTINGS[1]),
        secret_ref(redis, "REDIS_PASSWORD"),
        "mm-edge and Redis take the password from the same key"
    );
    let args: Vec<String> = serde_norway::from_value(at(redis, "args").clone()).expect("args");
    let requirepass = args.iter().position(|a| a == "--requirepass");
    assert_eq!(
        requirepass
            .and_then(|i| args.get(i + 1))
            .map(String::as_str),
        Some("$(REDIS_PASSWORD)"),
        "Redis requires the password: {args:?}"
    );
}

#[test]
fn readme_explains_the_recipe_file_by_file() {
    let readme = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"));
    let start = readme
        .find("\n## Running several edges\n")
        .expect("README section \"Running several edges\"");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    for file in files() {
        assert!(
            section.contains(&format!("`{file}`")),
            "README \"Running several edges\" does not mention `{file}`"
        );
    }
}
