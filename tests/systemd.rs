//! `systemd/vcheckd.service` as systemd reads it: `systemd-analyze verify`
//! and the offline security review, where systemd-analyze is installed
//! (skipped with a message otherwise), plus the hardening the unit must keep
//! (docs/DEPLOY.md explains each line), which is checked everywhere.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_vcheckd");
const UNIT: &str = include_str!("../systemd/vcheckd.service");
/// Where the unit expects the binary, as README and DEPLOY.md install it.
const INSTALLED_BIN: &str = "/usr/local/bin/vcheckd";

/// Printed past the test harness's capture, so that a skip shows in a plain
/// `cargo test` run too.
fn notice(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

fn systemd_analyze(args: &[&str]) -> Option<Output> {
    Command::new("systemd-analyze").args(args).output().ok()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The unit with ExecStart pointing at the binary cargo built: verify checks
/// that the ExecStart binary exists and is executable, and this machine has
/// no /usr/local/bin/vcheckd.
fn unit_for_this_build(dir: &Path) -> std::path::PathBuf {
    let needle = format!("ExecStart={INSTALLED_BIN} ");
    assert!(
        UNIT.contains(&needle),
        "the unit's ExecStart no longer starts with {INSTALLED_BIN}; update this test"
    );
    let path = dir.join("vcheckd.service");
    std::fs::write(&path, UNIT.replace(&needle, &format!("ExecStart={BIN} "))).unwrap();
    path
}

fn directives(section: &str) -> Vec<(String, String)> {
    let mut current = String::new();
    let mut out = Vec::new();
    for line in UNIT.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
            continue;
        }
        if current == section {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    out
}

#[test]
fn unit_keeps_its_hardening() {
    let service = directives("Service");
    let get = |key: &str| -> Vec<&str> {
        service
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let want = [
        ("DynamicUser", "yes"),
        ("StateDirectory", "vcheckd"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("KillSignal", "SIGTERM"),
    ];
    for (key, value) in want {
        assert_eq!(
            get(key),
            vec![value],
            "systemd/vcheckd.service: expected exactly {key}={value}"
        );
    }
    let exec = get("ExecStart");
    assert_eq!(exec.len(), 1, "one ExecStart");
    assert!(
        exec[0].contains(" serve --config "),
        "ExecStart runs `vcheckd serve --config FILE`: {}",
        exec[0]
    );
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let Some(version) = systemd_analyze(&["--version"]) else {
        notice("systemd: skipped: systemd-analyze is not installed (apt-get install systemd)");
        return;
    };
    assert!(
        version.status.success(),
        "systemd-analyze --version: {version:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_build(dir.path());
    let out = systemd_analyze(&["verify", unit.to_str().unwrap()]).unwrap();
    // verify exits 0 on unknown keys but warns on stderr: any output is a
    // finding.
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify {}:\nstatus {}\nstdout:\n{}\nstderr:\n{}",
        unit.display(),
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );

    // The unit exactly as shipped: on a machine without the installed
    // binary, the only complaint may be that binary.
    let shipped = dir.path().join("shipped");
    std::fs::create_dir(&shipped).unwrap();
    let path = shipped.join("vcheckd.service");
    std::fs::write(&path, UNIT).unwrap();
    let out = systemd_analyze(&["verify", path.to_str().unwrap()]).unwrap();
    if !Path::new(INSTALLED_BIN).exists() {
        let stderr = text(&out.stderr);
        for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                line.contains(INSTALLED_BIN),
                "systemd-analyze verify (shipped unit): unexpected complaint: {line}"
            );
        }
    } else {
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify (shipped unit): {out:?}"
        );
    }
}

/// `systemd-analyze security --offline=true` scores the sandboxing from 0
/// (locked down) to 10; the unit scores 2.0 ("OK") with systemd 252. Fail
/// if it gets worse than 2.5, so a dropped hardening line is noticed.
#[test]
fn systemd_analyze_security_exposure_stays_low() {
    if systemd_analyze(&["--version"]).is_none() {
        notice("systemd: skipped: systemd-analyze is not installed (apt-get install systemd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_build(dir.path());
    let out = systemd_analyze(&[
        "security",
        "--offline=true",
        "--threshold=25",
        "--no-pager",
        unit.to_str().unwrap(),
    ])
    .unwrap();
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    if !stdout.contains("Overall exposure level") {
        // systemd before 250 has no --offline: nothing to score here.
        notice(&format!(
            "systemd: security review skipped: this systemd-analyze cannot score a unit file offline ({})",
            stderr.lines().next().unwrap_or("no output")
        ));
        return;
    }
    let overall = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_default()
        .to_string();
    assert!(
        out.status.success(),
        "exposure above 2.5: {overall}\n{}",
        stdout
            .lines()
            .filter(|l| l.trim_start().starts_with('✗'))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
