//! Key files as the real `vcheckd serve` process treats them: the demo key
//! it makes is private (0600), its log never shows key material (at trace
//! level, through a query and a reload), and a key file that others can
//! read, or that is malformed, is refused with an error naming the file.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::BinEncodable;
use vcheckd::client::v1::Check;
use vcheckd::client::Reporter;
use vcheckd::protocol::{Key, ZoneName};

const BIN: &str = env!("CARGO_BIN_EXE_vcheckd");

/// `vcheckd serve ARGS` in `cwd` at trace level, its stderr lines on a channel.
fn serve(cwd: &Path, args: &[&str]) -> (std::process::Child, Receiver<String>) {
    let args = [args, &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]].concat();
    spawn_serve_logging(cwd, &args, "trace")
}

/// Lines up to and including the first that contains `needle`.
fn until(rx: &Receiver<String>, needle: &str, log: &mut Vec<String>) -> String {
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no log line with {needle:?} in\n{}", log.join("\n")));
        log.push(line.clone());
        if line.contains(needle) {
            return line;
        }
    }
}

fn signal(child: &std::process::Child, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn demo_key_is_private_and_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, rx) = serve(dir.path(), &[]);
    let mut log = Vec::new();
    let line = until(&rx, "addr=", &mut log);
    let addr: SocketAddr = line
        .split("addr=")
        .nth(1)
        .unwrap()
        .trim()
        .trim_matches('"')
        .parse()
        .unwrap();

    let key_path = dir.path().join("data/demo.key");
    assert_eq!(mode(&key_path), 0o600, "the demo key is private");
    let key = Key::load(&key_path).unwrap();

    // A real report, answered: the decrypting path runs.
    let check = Check {
        zone: ZoneName::new(ZONE).unwrap(),
        key: key.clone(),
        version: semver::Version::parse("2.3.1").unwrap(),
        reporter: Some(Reporter {
            cluster_id: "c".into(),
            node_id: "n".into(),
        }),
    };
    let name = check.prepare().unwrap().name;
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let request = query(&name, RecordType::TXT, None).to_bytes().unwrap();
    socket.send_to(&request, addr).unwrap();
    let mut buf = [0u8; 2048];
    let (len, _) = socket.recv_from(&mut buf).expect("an answer");
    assert_eq!(Message::from_vec(&buf[..len]).unwrap().answers.len(), 1);

    // A reload reads the key again.
    signal(&child, "HUP");
    until(&rx, "reloaded", &mut log);
    signal(&child, "TERM");
    assert!(child.wait().unwrap().success());
    log.extend(rx.iter());

    let log = log.join("\n");
    assert!(log.contains("DEMO v1 key"), "{log}");
    assert!(log.contains("DEMO v2 key pair"), "{log}");
    let hex = data_encoding::HEXLOWER.encode(key.secret());
    assert!(
        !log.to_lowercase().contains(&hex),
        "key material in the log:\n{log}"
    );
    // The v2 pair: the private half private, neither secret logged.
    let private_path = dir.path().join("data/demo.v2.private");
    assert_eq!(mode(&private_path), 0o600);
    assert_eq!(mode(&dir.path().join("data/demo.v2.public")), 0o644);
    let private = vcheckd::protocol::v2::PrivateKey::load(&private_path).unwrap();
    let token = private.to_token();
    for secret in token.split(':').skip(2) {
        assert!(!log.contains(secret), "v2 key material in the log:\n{log}");
    }
}

#[test]
fn a_v2_private_key_others_can_read_is_refused_by_name() {
    let setup = Setup::new();
    let private = vcheckd::protocol::v2::PrivateKey::generate(
        vcheckd::protocol::KeyId(2),
        vcheckd::clock::unix_now() as u64,
    );
    let path = setup.dir.path().join("v2.private");
    write_private(&path, &private.to_token());
    let text = std::fs::read_to_string(setup.config_path())
        .unwrap()
        .replace(
            "keys = [\"test.key\"]",
            "keys = [\"test.key\"]\nprivate_keys = [\"v2.private\"]",
        );
    std::fs::write(setup.config_path(), text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for bad in [0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bad)).unwrap();
        let out = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(setup.config_path())
            .args(["--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "mode {bad:o} accepted: {err}");
        assert!(
            err.contains(&format!("run `chmod 600 {}`", path.display())),
            "{err}"
        );
        for secret in private.to_token().split(':').skip(2) {
            assert!(!err.contains(secret), "{err}");
        }
    }
}

#[test]
fn key_files_others_can_read_or_malformed_are_refused_by_name() {
    let setup = Setup::new();
    let key_path = setup.key_path();
    let hex = data_encoding::HEXLOWER.encode(setup.key.secret());
    let config = setup.config_path();
    let config = config.to_str().unwrap();

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config", config, "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "configuration: {err}");
    assert!(
        err.contains(&format!("run `chmod 600 {}`", key_path.display())),
        "{err}"
    );
    assert!(!err.contains(&hex), "{err}");

    // A typo in the key (one digit short): the file is named, its text is not shown.
    write_private(
        &key_path,
        &setup.key.to_token()[..setup.key.to_token().len() - 1],
    );
    assert_eq!(mode(&key_path), 0o600);
    let out = Command::new(BIN)
        .args(["serve", "--config", config, "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "configuration: {err}");
    assert!(
        err.contains(&format!(
            "key file {} does not hold a key",
            key_path.display()
        )),
        "{err}"
    );
    assert!(!err.contains(&hex[..hex.len() - 1]), "{err}");
}

#[test]
fn a_forwarding_key_is_made_private_and_a_bad_one_is_refused_by_name() {
    let setup = Setup::new();
    let path = setup.dir.path().join("ns2.forward.key");
    let out = Command::new(BIN)
        .args(["keygen", "--forward"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&path), 0o600);
    let key = std::fs::read(&path).unwrap();
    assert_eq!(key.len(), 32);
    // Never replaced unless asked.
    let again = Command::new(BIN)
        .args(["keygen", "--forward"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert_eq!(std::fs::read(&path).unwrap(), key);

    let text = std::fs::read_to_string(setup.config_path()).unwrap();
    std::fs::write(
        setup.config_path(),
        format!("[forward]\nprimary = \"127.0.0.1:9\"\nname = \"ns2\"\nkey = \"ns2.forward.key\"\n\n{text}"),
    )
    .unwrap();
    let serve = || {
        let out = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(setup.config_path())
            .args(["--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = serve();
    assert!(
        err.contains(&format!("run `chmod 600 {}`", path.display())),
        "{err}"
    );
    write_private(&path, "not a key");
    let err = serve();
    assert!(err.contains("holds 9 bytes, not 32"), "{err}");
    assert!(err.contains("vcheckd keygen --forward"), "{err}");
}
