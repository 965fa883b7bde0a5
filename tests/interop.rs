//! vcheckd behind real resolvers: runs `tests/interop/run.sh` with the
//! `vcheckd` binary cargo built. The script builds a delegation chain on
//! 127.53.N.0/24 (NSD root, NSD parent, vcheckd) and resolves reports
//! through Unbound, Knot Resolver and PowerDNS Recursor, then probes vcheckd
//! directly with dig and kdig (RFC 8906, BIND's EDNS cases).
//!
//! It needs root (port 53) and the Debian packages nsd, unbound,
//! knot-resolver, pdns-recursor, knot-dnsutils and bind9-dnsutils. Without
//! them it skips, printing why, and passes; `.ci/run` installs them. With
//! `VCHECKD_INTEROP_REQUIRE=1` a skip is a failure. A failure names the
//! resolver (group) and the case, with the evidence (the dig output).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vcheckd");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/run.sh");
/// The script takes about a minute; this bounds a hung run.
const DEADLINE: Duration = Duration::from_secs(300);
/// The script's exit status when nothing could run.
const EXIT_SKIPPED: i32 = 77;

/// Printed past the test harness's capture, so that a skip shows in a plain
/// `cargo test` run too.
fn notice(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

#[test]
fn vcheckd_works_behind_real_resolvers() {
    if Command::new("bash").arg("--version").output().is_err() {
        notice("interop: skipped: bash is not installed");
        return;
    }
    let mut child = Command::new("bash")
        .arg(SCRIPT)
        .arg(BIN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run tests/interop/run.sh");

    // Both streams, line by line, into one channel.
    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    for stream in [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ] {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        }));
    }
    drop(tx);

    let started = Instant::now();
    let mut lines = Vec::new();
    let mut timed_out = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                eprintln!("{line}"); // shown with --nocapture, or on failure
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if !timed_out && started.elapsed() > DEADLINE {
            // SIGTERM lets the script's trap stop what it started.
            timed_out = true;
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        if timed_out && started.elapsed() > DEADLINE + Duration::from_secs(20) {
            let _ = child.kill();
            break;
        }
    }
    let status = child.wait().expect("waiting for run.sh");
    for r in readers {
        let _ = r.join();
    }

    let with_prefix = |p: &str| -> Vec<&str> {
        lines
            .iter()
            .filter(|l| l.starts_with(p))
            .map(String::as_str)
            .collect()
    };
    let summary = with_prefix("SUMMARY").join("\n");
    let skips = with_prefix("SKIP ");
    assert!(
        !timed_out,
        "interop suite did not finish within {DEADLINE:?}; output:\n{}",
        lines.join("\n")
    );

    match status.code() {
        Some(EXIT_SKIPPED) => {
            notice(&format!("interop: skipped:\n  {}", skips.join("\n  ")));
        }
        Some(0) => {
            if !skips.is_empty() {
                notice(&format!(
                    "interop: some groups skipped:\n  {}",
                    skips.join("\n  ")
                ));
            }
            notice(&format!("interop: {summary}"));
        }
        _ => {
            // Each FAIL line names the group (resolver) and the case; the
            // evidence follows it, indented with "    | ".
            let mut report = Vec::new();
            let mut in_failure = false;
            for line in &lines {
                if line.starts_with("SKIP ") || line.starts_with("VCHECKD_INTEROP_REQUIRE") {
                    report.push(line.as_str());
                    in_failure = false;
                } else if line.starts_with("FAIL ") {
                    in_failure = true;
                    report.push(line.as_str());
                } else if in_failure && line.starts_with("    | ") {
                    report.push(line.as_str());
                } else {
                    in_failure = false;
                }
            }
            panic!(
                "interop suite failed ({status}):\n{}\n{summary}\n{}",
                report.join("\n"),
                lines
                    .iter()
                    .filter(|l| l.starts_with("# kept"))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}
