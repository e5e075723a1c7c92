//! The container image, built from the real `Dockerfile` and run, without a Docker engine.
//!
//! `tests/container-stand-ins.sh` makes local stand-ins for the two base images (a
//! debootstrapped Debian trixie with this machine's Rust toolchain for `rust:*-trixie`, and a
//! root of glibc, libgcc, CA certificates and distroless's users for
//! `gcr.io/distroless/cc-debian13`); `buildah bud` (vfs storage, chroot isolation, docker
//! format) builds the `Dockerfile` on them once per run through `BUILDER_IMAGE` and
//! `RUNTIME_IMAGE`. The image is then met as a user meets it: its configuration is read with
//! `buildah inspect`, and its entrypoint, command and `HEALTHCHECK` run with `buildah run
//! --isolation chroot` inside the image's filesystem, as the image's user, in the host's
//! network namespace (so the edge listens on 127.0.0.1 high ports the test can reach).
//!
//! Needs root, `buildah` and `debootstrap` (and the Debian archive and crates.io over the
//! network); skips without them, except under `CI=true` (`.ci/run` installs both).

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{tool, Backend, PATIENCE};

/// The uid and gid the image runs as (the official Mattermost image's user).
const UID: u32 = 2000;

/// Bound for making the stand-ins (a debootstrap and a toolchain copy when the cache is cold).
const STAND_INS_LIMIT: Duration = Duration::from_secs(20 * 60);

/// Bound for `buildah bud` (two release builds of the crate and its dependencies on two cores).
const BUILD_LIMIT: Duration = Duration::from_secs(40 * 60);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The output's last `n` lines, stdout then stderr, for a failure message.
fn tail(out: &Output, n: usize) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Kills the process group led by `pid` (buildah's helpers and the command it runs included).
fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg(format!("-{pid}"))
        .status();
}

/// Runs `f` (a blocking wait) on its own thread; `None` when it has not returned within `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// Runs `cmd` to completion in its own process group; one still running after `limit` is
/// killed with its group and fails the test.
fn run_bounded(mut cmd: Command, limit: Duration, what: &str) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => panic!("cannot start {what}: {e}"),
    };
    let pid = child.id();
    match within(limit, move || child.wait_with_output()) {
        Some(Ok(out)) => out,
        Some(Err(e)) => panic!("waiting for {what}: {e}"),
        None => {
            kill_group(pid);
            panic!("{what} did not end within {limit:?}");
        }
    }
}

/// Fails the test unless `out` exited with `code`, showing the end of its output.
fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(out.status.code(), Some(code), "{what}: {}", tail(out, 30));
}

/// A dedicated buildah storage (vfs driver) in a temporary directory, so the test neither
/// meets nor leaves images in the default storage; its containers and images go on drop.
struct Buildah {
    dir: tempfile::TempDir,
}

impl Buildah {
    fn new() -> Buildah {
        let dir = tempfile::Builder::new()
            .prefix("mm-edge-buildah-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("temp dir for buildah's storage");
        Buildah { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn runroot(&self) -> PathBuf {
        self.dir.path().join("runroot")
    }

    /// `buildah --root … --runroot … --storage-driver vfs`.
    fn command(&self) -> Command {
        let mut cmd = Command::new("buildah");
        cmd.arg("--root")
            .arg(self.root())
            .arg("--runroot")
            .arg(self.runroot())
            .args(["--storage-driver", "vfs"]);
        cmd
    }

    /// Runs a short buildah command that must succeed; its stdout, trimmed.
    fn ok(&self, args: &[&str]) -> String {
        let mut cmd = self.command();
        cmd.args(args);
        let out = run_bounded(cmd, PATIENCE, &format!("buildah {args:?}"));
        assert!(
            out.status.success(),
            "buildah {args:?} failed: {}",
            tail(&out, 30)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `buildah run --isolation chroot [-v …] [-e …] CTR -- ARGV`, not started yet.
    fn run_command(
        &self,
        ctr: &str,
        volumes: &[String],
        env: &[String],
        argv: &[String],
    ) -> Command {
        let mut cmd = self.command();
        cmd.args(["run", "--isolation", "chroot"]);
        for v in volumes {
            cmd.arg("-v").arg(v);
        }
        for e in env {
            cmd.arg("-e").arg(e);
        }
        cmd.arg(ctr).arg("--").args(argv);
        cmd
    }

    /// Runs `argv` inside the working container `ctr` to completion (bounded by [`PATIENCE`]).
    fn run(&self, ctr: &str, volumes: &[String], env: &[String], argv: &[String]) -> Output {
        run_bounded(
            self.run_command(ctr, volumes, env, argv),
            PATIENCE,
            &format!("buildah run {argv:?}"),
        )
    }
}

impl Drop for Buildah {
    fn drop(&mut self) {
        for args in [&["rm", "--all"][..], &["rmi", "--all", "--force"][..]] {
            let mut cmd = self.command();
            cmd.args(args).stdout(Stdio::null()).stderr(Stdio::null());
            let _ = cmd.status();
        }
    }
}

/// The edge running from the image (`buildah run` and, under it, mm-edge); its process group
/// is killed on drop.
struct Running {
    child: Option<Child>,
    group: u32,
    /// stderr (the edge's log), collected line by line.
    log: mpsc::Receiver<String>,
    seen: String,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().expect("start buildah run");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            group: child.id(),
            child: Some(child),
            log: rx,
            seen: String::new(),
        }
    }

    /// Blocks until the log shows `needle` ([`PATIENCE`] bounds a failure).
    fn wait_for_log(&mut self, needle: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                }
                Err(_) => panic!("the edge never logged {needle:?}; log:\n{}", self.seen),
            }
        }
    }

    /// Waits for `buildah run` to exit (bounded by [`PATIENCE`]).
    fn wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("not waited for yet");
        match within(PATIENCE, move || child.wait()) {
            Some(status) => status.expect("wait for buildah run"),
            None => {
                kill_group(self.group);
                panic!("the edge did not exit; log:\n{}", self.seen);
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(self.group);
            let _ = child.wait();
        }
    }
}

/// The process under `ancestor` (any depth) whose argv[0] is `exe`: the command `buildah run`
/// started inside the container, as the kernel sees it.
fn descendant_running(ancestor: u32, exe: &str) -> Option<u32> {
    let mut parents = std::collections::BTreeMap::new();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // /proc/PID/stat: "PID (comm) STATE PPID …"; comm may hold spaces, so split after ')'.
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.insert(pid, ppid);
        }
    }
    let under = |mut pid: u32| {
        while let Some(&ppid) = parents.get(&pid) {
            if ppid == ancestor {
                return true;
            }
            pid = ppid;
        }
        false
    };
    parents.keys().copied().find(|&pid| {
        under(pid)
            && fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).next() == Some(exe.as_bytes()))
    })
}

/// The `Uid:`/`Gid:` line of /proc/PID/status: real, effective, saved, filesystem ids.
fn proc_ids(pid: u32, field: &str) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| {
            v.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The address the edge's start-up line gives for listener `name` (`https`, `http`).
fn bound(log: &str, name: &str) -> std::net::SocketAddr {
    log.lines()
        .find(|l| l.contains("mm-edge listening"))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or_else(|| panic!("no {name}= address in the listening line:\n{log}"))
}

/// A string array from the image configuration.
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn owner(path: &Path) -> (u32, u32) {
    match fs::metadata(path) {
        Ok(m) => (m.uid(), m.gid()),
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

/// Whether this process runs as root (buildah with vfs storage and chroot isolation needs it).
fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[test]
fn the_image_builds_and_runs_as_uid_2000_with_its_healthcheck_and_clean_stop() {
    let (Some(_), Some(_)) = (tool("buildah"), tool("debootstrap")) else {
        return;
    };
    if !is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "buildah (vfs, chroot isolation) needs root; CI=true, so this test cannot be skipped"
        );
        eprintln!("skipping: not root (buildah with vfs storage and chroot isolation needs it)");
        return;
    }
    let started = Instant::now();
    let buildah = Buildah::new();

    // ---- the stand-ins for the two base images
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("tests/container-stand-ins.sh"))
        .arg(buildah.root())
        .arg(buildah.runroot());
    let out = run_bounded(cmd, STAND_INS_LIMIT, "tests/container-stand-ins.sh");
    assert!(
        out.status.success(),
        "making the stand-in base images failed:\n{}",
        tail(&out, 40)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stderr).trim_end());
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let [builder, runtime] = names.as_slice() else {
        panic!("the stand-in script should print two image names: {names:?}");
    };
    eprintln!("stand-ins ready after {:.0?}", started.elapsed());

    // ---- the real Dockerfile, once
    let image = format!("localhost/mm-edge-test:{}", std::process::id());
    let build_started = Instant::now();
    let mut cmd = buildah.command();
    cmd.args(["bud", "--isolation", "chroot", "--format", "docker"])
        .args(["--pull=never", "--build-arg"])
        .arg(format!("BUILDER_IMAGE={builder}"))
        .arg("--build-arg")
        .arg(format!("RUNTIME_IMAGE={runtime}"))
        .args(["--tag", &image, "--file"])
        .arg(repo().join("Dockerfile"))
        .arg(repo());
    let out = run_bounded(cmd, BUILD_LIMIT, "buildah bud");
    assert!(
        out.status.success(),
        "buildah bud of the Dockerfile failed:\n{}",
        tail(&out, 60)
    );
    eprintln!("image built in {:.0?}", build_started.elapsed());

    // ---- the image's configuration, as `docker inspect` would show it
    let inspect: Value = serde_json::from_str(&buildah.ok(&["inspect", "--type", "image", &image]))
        .expect("buildah inspect prints JSON");
    let config = &inspect["Docker"]["config"];
    assert_eq!(
        config["User"].as_str(),
        Some("2000:2000"),
        "the image's user: {config}"
    );
    let entrypoint = strings(&config["Entrypoint"]);
    let cmd_default = strings(&config["Cmd"]);
    assert!(
        entrypoint.first().is_some_and(|e| e.ends_with("/mm-edge")),
        "the entrypoint should be mm-edge: {entrypoint:?}"
    );
    assert!(
        config["Volumes"].get("/var/lib/mm-edge").is_some(),
        "/var/lib/mm-edge should be a volume: {config}"
    );
    let health = strings(&config["Healthcheck"]["Test"]);
    let health_cmd: Vec<String> = match health.split_first() {
        Some((kind, argv)) if kind == "CMD" && !argv.is_empty() => argv.to_vec(),
        _ => panic!(
            "the HEALTHCHECK should be an exec-form CMD (the image has no shell): {health:?}"
        ),
    };
    let stop_signal = config["StopSignal"].as_str().unwrap_or("SIGTERM");
    let with_entrypoint =
        |args: &[String]| -> Vec<String> { entrypoint.iter().chain(args).cloned().collect() };

    // ---- a working container from the image; its root seen from here
    let ctr = buildah.ok(&["from", "--pull=never", &image]);
    let rootfs = PathBuf::from(buildah.ok(&["mount", &ctr]));
    for dir in ["var/lib/mm-edge", "mattermost/config"] {
        assert_eq!(
            owner(&rootfs.join(dir)),
            (UID, UID),
            "/{dir} in the image should belong to 2000:2000"
        );
    }
    for shell in ["bin/sh", "bin/bash", "usr/bin/sh"] {
        assert!(
            fs::symlink_metadata(rootfs.join(shell)).is_err(),
            "the runtime stand-in should hold no shell, like distroless: /{shell}"
        );
    }

    let run = |volumes: &[String], env: &[String], argv: &[String]| -> Output {
        buildah.run(&ctr, volumes, env, argv)
    };

    // `docker run IMAGE --version`: the entrypoint with other arguments.
    let out = run(&[], &[], &with_entrypoint(&["--version".into()]));
    assert_exit(&out, 0, "--version");
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.contains(&format!("mm-edge {}", env!("CARGO_PKG_VERSION"))),
        "--version printed {version:?}"
    );

    // `check` with the image's own environment plus the one setting a user must give.
    let site = "MATTERMOST_HOST=chat.example.com".to_owned();
    let out = run(
        &[],
        std::slice::from_ref(&site),
        &with_entrypoint(&["check".into()]),
    );
    assert_exit(&out, 0, "check");

    // write-mattermost-config into the image's /mattermost/config, then into a bind mount.
    let write = with_entrypoint(&["write-mattermost-config".into()]);
    let target = "MM_EDGE_MATTERMOST_CONFIG=/mattermost/config/config.json".to_owned();
    let out = run(&[], &[site.clone(), target.clone()], &write);
    assert_exit(&out, 0, "write-mattermost-config");
    let written = rootfs.join("mattermost/config/config.json");
    assert_eq!(owner(&written), (UID, UID), "config.json in the image");

    let host_dir = tempfile::tempdir().expect("temp dir for the bind mount");
    std::os::unix::fs::chown(host_dir.path(), Some(UID), Some(UID)).expect("chown the mount");
    let mount = format!("{}:/mattermost/config", host_dir.path().display());
    let out = run(&[mount], &[site.clone(), target], &write);
    assert_exit(&out, 0, "write-mattermost-config into a bind mount");
    let written = host_dir.path().join("config.json");
    assert_eq!(owner(&written), (UID, UID), "config.json in the bind mount");
    let json: Value =
        serde_json::from_str(&fs::read_to_string(&written).expect("read config.json"))
            .expect("config.json is JSON");
    assert_eq!(
        json["ServiceSettings"]["SiteURL"].as_str(),
        Some("https://chat.example.com"),
        "{json}"
    );

    // ---- the default command, serving, on 127.0.0.1 high ports in front of a fake Mattermost
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let backend = rt.block_on(Backend::start());
    // Ephemeral ports, read back from the start-up line: a port found free, released and
    // given to the container later could be taken by another test meanwhile.
    let serve_env = vec![
        "MATTERMOST_HOST=localhost".to_owned(),
        "MM_EDGE_HTTPS_LISTEN=127.0.0.1:0".to_owned(),
        "MM_EDGE_HTTP_LISTEN=127.0.0.1:0".to_owned(),
        format!("MM_EDGE_UPSTREAMS={}", backend.url()),
    ];
    let default = with_entrypoint(&cmd_default);
    let mut edge = Running::start(buildah.run_command(&ctr, &[], &serve_env, &default));
    edge.wait_for_log("mm-edge listening");
    let https = bound(&edge.seen, "https").port();
    let http = bound(&edge.seen, "http").port();
    let listen = vec![
        "MATTERMOST_HOST=localhost".to_owned(),
        format!("MM_EDGE_HTTPS_LISTEN=127.0.0.1:{https}"),
        format!("MM_EDGE_HTTP_LISTEN=127.0.0.1:{http}"),
    ];
    let pid = descendant_running(edge.group, &entrypoint[0])
        .unwrap_or_else(|| panic!("no {} process under buildah run", entrypoint[0]));
    for field in ["Uid:", "Gid:"] {
        assert_eq!(
            proc_ids(pid, field),
            vec![UID; 4],
            "mm-edge's {field} ids in /proc/{pid}/status"
        );
    }

    // The self-signed certificate, created on first start in the state directory as the
    // process sees it (buildah gives the VOLUME an anonymous volume, as Docker does).
    let state = PathBuf::from(format!("/proc/{pid}/root/var/lib/mm-edge"));
    let cert = state.join("self-signed-cert.pem");
    assert_eq!(owner(&cert), (UID, UID), "the generated certificate");
    assert_eq!(owner(&state), (UID, UID), "the state volume");

    // A request through the edge to the fake Mattermost, trusting that certificate.
    let pem = fs::read(&cert).expect("read the generated certificate");
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("PEM certificate"))
        .resolve("localhost", ([127, 0, 0, 1], https).into())
        .timeout(PATIENCE)
        .build()
        .expect("client");
    let status = rt.block_on(async {
        client
            .get(format!("https://localhost:{https}/api/v4/system/ping"))
            .send()
            .await
            .expect("request through the edge")
            .status()
    });
    assert_eq!(status, 200, "a request through the edge from the image");
    assert!(
        backend.requests() >= 1,
        "the fake Mattermost saw no request"
    );

    // The HEALTHCHECK, as inspect gives it, with the container's environment.
    let out = run(&[], &listen, &health_cmd);
    assert_exit(&out, 0, "the HEALTHCHECK against the running edge");

    // The stop signal to the container's main process: a clean exit 0.
    let sig = stop_signal.trim_start_matches("SIG");
    let killed = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success());
    assert!(killed, "kill -{sig} {pid}");
    let status = edge.wait();
    edge.wait_for_log("shutting down");
    assert_eq!(
        status.code(),
        Some(0),
        "exit after {stop_signal}; log:\n{}",
        edge.seen
    );

    // Nothing listening: the HEALTHCHECK says so with 1. Asked at a refused address rather than
    // at the port the edge just released, which another test may have been given since.
    let (_guard, refused) = common::refused_addr();
    let gone = vec![
        "MATTERMOST_HOST=localhost".to_owned(),
        format!("MM_EDGE_HTTPS_LISTEN={refused}"),
    ];
    let out = run(&[], &gone, &health_cmd);
    assert_exit(&out, 1, "the HEALTHCHECK with nothing listening");

    eprintln!("container test done in {:.0?}", started.elapsed());
}
