//! Every shell command in README.md and docs/DEPLOY.md, run: one mechanism
//! for both documents. Each ```sh block has a marker comment above it,
//! `<!-- test: SCENARIO -->`, naming the set-up it runs in; a block without
//! one, or with an unknown one, fails. The block's text is run by
//! `bash -euo pipefail` as written, after the replacements its scenario
//! lists (documentation addresses and ports to the ones the test bound,
//! `cargo run --release --` to the binary cargo built):
//!
//! - `setup`, `quick-start` (README): the embedded default server, started
//!   by the set-up block's `serve` line, and the quick start against it;
//! - `ci`: commands .ci/run runs itself (building and installing the
//!   Debian package); each line must be in .ci/run;
//! - `installed` (DEPLOY sections 5 and 8): the installed package, as root,
//!   with `tests/docs/systemctl` standing in for systemd as PID 1 (it starts
//!   the installed unit's ExecStart as its User=, with its credentials) and
//!   `tests/docs/editor` for the operator's editor (it moves `listen` to a
//!   free loopback port). Skipped where the package is not installed;
//!   VCHECKD_INTEROP_REQUIRE=1 (CI) makes that a failure;
//! - `servers` (DEPLOY section 2): two name servers, each a real `vcheckd
//!   serve` with a report, and `ssh`/`scp` standing in for the hosts (each
//!   host is a folder: its `/var/lib/vcheckd` and `/tmp` live there);
//! - `parent` (DEPLOY section 8): NSD serving section 1's parent zone;
//! - `interop`: the command tests/interop.rs runs (`tests/interop/run.sh`
//!   with the binary cargo built);
//! - `clickhouse` (DEPLOY section 9): not run here: it needs a ClickHouse
//!   server, which tests/clickhouse.rs starts and migrates.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vcheckd");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SCENARIOS: [&str; 8] = [
    "setup",
    "quick-start",
    "ci",
    "installed",
    "servers",
    "parent",
    "interop",
    "clickhouse",
];

#[derive(Debug, Clone)]
struct Block {
    file: &'static str,
    line: usize,
    scenario: String,
    text: String,
}

fn blocks(file: &'static str) -> Vec<Block> {
    let text = std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_start() == "```sh" {
            let marker = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .and_then(|l| l.trim().strip_prefix("<!-- test: "))
                .and_then(|l| l.strip_suffix(" -->"))
                .unwrap_or_else(|| {
                    panic!(
                        "{file}:{}: a ```sh block without `<!-- test: SCENARIO -->` above it",
                        i + 1
                    )
                });
            let end = i
                + 1
                + lines[i + 1..]
                    .iter()
                    .position(|l| l.trim() == "```")
                    .unwrap();
            out.push(Block {
                file,
                line: i + 1,
                scenario: marker.to_string(),
                text: lines[i + 1..end].join("\n") + "\n",
            });
            i = end;
        }
        i += 1;
    }
    out
}

fn all_blocks() -> Vec<Block> {
    [
        blocks("README.md"),
        blocks("docs/DEPLOY.md"),
        blocks("docs/CLIENTS.md"),
    ]
    .concat()
}

fn of(scenario: &str) -> Vec<Block> {
    all_blocks()
        .into_iter()
        .filter(|b| b.scenario == scenario)
        .collect()
}

/// The commands of a block, one per line (continuations joined, comments
/// and blank lines left out).
fn commands(text: &str) -> Vec<String> {
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .map(|l| l.split(" #").next().unwrap_or(l).trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

fn notice(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// A skip, or a failure where CI asks for every real component.
fn skip(what: &str, why: &str) {
    assert!(
        std::env::var_os("VCHECKD_INTEROP_REQUIRE").is_none(),
        "docs: {what}: {why}, and VCHECKD_INTEROP_REQUIRE is set"
    );
    notice(&format!("docs: {what} skipped: {why}"));
}

fn have(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a block as written, after `replace`, in `cwd`, with `path` first on
/// PATH and `env` set; fails the test with the block and its output.
fn run(
    b: &Block,
    replace: &[(&str, &str)],
    cwd: &Path,
    path: &[&Path],
    env: &[(&str, &str)],
) -> String {
    let mut text = b.text.clone();
    for (from, to) in replace {
        text = text.replace(from, to);
    }
    let mut dirs: Vec<PathBuf> = path.iter().map(|p| p.to_path_buf()).collect();
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let path_var = std::env::join_paths(dirs).unwrap();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &text])
        .current_dir(cwd)
        .env("PATH", &path_var)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{}:{} ({}) failed with {}:\n{text}\noutput:\n{shown}",
        b.file,
        b.line,
        b.scenario,
        out.status
    );
    shown
}

/// A folder with `vcheckd` in it: the binary cargo built.
fn bin_dir(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join("vcheckd");
    if !link.exists() {
        std::os::unix::fs::symlink(BIN, link).unwrap();
    }
    bin
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `vcheckd ARGS` started in `cwd`; its DNS and HTTP addresses from its log.
fn serve(cwd: &Path, args: &[&str]) -> (Killed, SocketAddr, Option<SocketAddr>) {
    let (child, log) = common::spawn_serve(cwd, args);
    let child = Killed(child);
    let (mut dns, mut http) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while dns.is_none() || (args.contains(&"--http") && http.is_none()) {
        let line = log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("vcheckd serve did not start");
        if let Some(rest) = line.split("addr=").nth(1) {
            dns = Some(rest.trim().trim_matches('"').parse().unwrap());
        }
        if let Some(rest) = line.split("on http://").nth(1) {
            http = Some(rest.trim().trim_end_matches('/').parse().unwrap());
        }
    }
    (child, dns.unwrap(), http)
}

#[test]
fn every_block_names_a_scenario_and_the_contents_list_every_section() {
    let all = all_blocks();
    assert!(all.len() >= 12, "{}", all.len());
    let used: BTreeSet<&str> = all.iter().map(|b| b.scenario.as_str()).collect();
    for s in &used {
        assert!(SCENARIOS.contains(s), "unknown scenario {s}");
    }
    // DEPLOY.md's contents: every section, each link to its own heading.
    let deploy = std::fs::read_to_string(Path::new(ROOT).join("docs/DEPLOY.md")).unwrap();
    let headings: Vec<&str> = deploy
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .collect();
    let contents = &deploy[..deploy.find("\n## ").unwrap()];
    for h in &headings {
        let anchor: String = h
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let (number, title) = h.split_once(". ").unwrap();
        assert!(
            contents.contains(&format!("{number}. [{title}](#{anchor})")),
            "DEPLOY.md contents lack `{number}. [{title}](#{anchor})`"
        );
    }
}

/// The fenced block right below `marker` in `file`.
fn block_below(file: &str, marker: &str) -> String {
    let text = std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == marker)
        .unwrap_or_else(|| panic!("{file} has no `{marker}`"));
    assert!(
        lines[at + 1].starts_with("```"),
        "{file}: `{marker}` must sit right above a fenced block"
    );
    let end = at + 2 + lines[at + 2..].iter().position(|l| *l == "```").unwrap();
    lines[at + 2..end].join("\n") + "\n"
}

/// docs/CLIENTS.md's embedding examples are the files each client's tests
/// run as written: the Rust example (crates/vcheckd-client/tests/live.rs),
/// the Go one (clients/go/readme_test.go) and the Python README's
/// (clients/python/tests/test_readme.py).
#[test]
fn clients_md_examples_are_the_tested_files() {
    let doc = "docs/CLIENTS.md";
    for path in [
        "crates/vcheckd-client/examples/check.rs",
        "clients/go/examples/embed/main.go",
    ] {
        let file = std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap();
        assert_eq!(
            block_below(doc, &format!("<!-- example: {path} -->")),
            file,
            "{doc}'s example is not {path} word for word"
        );
    }
    let check =
        std::fs::read_to_string(Path::new(ROOT).join("crates/vcheckd-client/examples/check.rs"))
            .unwrap();
    assert_eq!(
        block_below(
            "crates/vcheckd-client/README.md",
            "<!-- example: examples/check.rs -->"
        ),
        check,
        "the crate's README example is not examples/check.rs"
    );
    assert_eq!(
        block_below(doc, "<!-- example: clients/python/README.md#embed -->"),
        block_below("clients/python/README.md", "<!-- test: embed -->"),
        "{doc}'s Python example is not clients/python/README.md's"
    );
    // README links the page.
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    assert!(
        readme.contains("(docs/CLIENTS.md)"),
        "README.md does not link docs/CLIENTS.md"
    );
}

#[test]
fn ci_blocks_are_what_ci_runs() {
    let ci = std::fs::read_to_string(Path::new(ROOT).join(".ci/run")).unwrap();
    let blocks = of("ci");
    assert!(!blocks.is_empty());
    for b in blocks {
        for c in commands(&b.text) {
            assert!(
                ci.contains(&c),
                "{}:{}: .ci/run does not run `{c}`",
                b.file,
                b.line
            );
        }
    }
    // README's test command is the one .ci/run runs.
    let setup = &of("setup")[0];
    assert!(commands(&setup.text).contains(&"cargo test".to_string()));
    assert!(ci.lines().any(|l| l.trim() == "cargo test"));
}

#[test]
fn interop_block_is_what_tests_interop_runs() {
    for b in of("interop") {
        assert_eq!(
            commands(&b.text),
            ["cargo build && tests/interop/run.sh target/debug/vcheckd"]
        );
    }
    let runner = std::fs::read_to_string(Path::new(ROOT).join("tests/interop.rs")).unwrap();
    assert!(runner.contains("/tests/interop/run.sh") && runner.contains("CARGO_BIN_EXE_vcheckd"));
}

#[test]
fn readme_quick_start() {
    if !have("dig") {
        return skip(
            "README quick start",
            "dig is missing (apt-get install bind9-dnsutils)",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = bin_dir(dir.path());
    // The set-up block's serve line, on free ports instead of 5300 and 8053.
    let setup = &of("setup")[0];
    let serve_line = commands(&setup.text)
        .into_iter()
        .find(|c| c.ends_with(" serve"))
        .expect("README's set-up block starts the server");
    assert_eq!(serve_line, "cargo run --release -- serve");
    let (_server, dns, _) = serve(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let addr = dns.to_string();
    let port = format!("-p {}", dns.port());
    let state = dir.path().join("state");
    let replace = [
        ("cargo run -q --release --", "vcheckd"),
        ("cargo run --release --", "vcheckd"),
        ("127.0.0.1:5300", addr.as_str()),
        ("-p 5300", port.as_str()),
    ];
    let env = [("XDG_STATE_HOME", state.to_str().unwrap())];
    // Each command on its own, as a reader types them; `stats` once the
    // report `check` sent is in the database (it travels through the
    // journal first, which on a loaded machine takes a moment).
    let db = dir.path().join("data/vcheckd.sqlite");
    let mut output = String::new();
    for b in of("quick-start") {
        for command in commands(&b.text) {
            if command.contains(" stats") {
                common::wait_for_rows(&db, 1);
            }
            let one = Block {
                text: command,
                ..b.clone()
            };
            output += &run(&one, &replace, dir.path(), &[&bin], &env);
        }
    }
    for want in [
        "vcheckd: 2.4.1 is available (running 2.3.1)",
        "VERSION",
        "2.3.1",
        "\"v=vc1 status=2 latest=2.4.1 msg=2.4.1 is available\"",
        "answered",
    ] {
        assert!(output.contains(want), "{want:?} missing in:\n{output}");
    }
}

#[test]
fn two_servers_backed_up_and_merged() {
    if !have("sqlite3") {
        return skip(
            "DEPLOY section 2",
            "sqlite3 is missing (apt-get install sqlite3)",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let bin = bin_dir(root);
    // Each host a folder: its /var/lib/vcheckd and /tmp.
    let key = vcheckd::protocol::Key::generate(vcheckd::protocol::KeyId(1));
    let mut servers = Vec::new();
    for host in ["ns1", "ns2"] {
        let lib = root.join(host).join("var/lib/vcheckd");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::create_dir_all(root.join(host).join("tmp")).unwrap();
        common::write_private(&lib.join("test.key"), &key.to_token());
        std::fs::write(lib.join("zone.txt"), common::zone_file()).unwrap();
        std::fs::write(
            lib.join("config.toml"),
            common::config_text(common::RELEASES),
        )
        .unwrap();
        servers.push(serve(&lib, &["--config", "config.toml"]));
    }
    std::fs::write(root.join("zone.key"), format!("{}\n", key.to_token())).unwrap();
    std::fs::set_permissions(
        root.join("zone.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    for (i, (_, dns, _)) in servers.iter().enumerate() {
        let out = Command::new(BIN)
            .args([
                "check",
                "--server",
                &dns.to_string(),
                "--zone",
                common::ZONE,
                "--key",
                "zone.key",
            ])
            .args([
                "--cluster-id",
                &format!("cluster-{i}"),
                "--node-id",
                "n",
                "--version",
                "2.4.1",
            ])
            .current_dir(root)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    // Each server's report in its database before the copies are made.
    for host in ["ns1", "ns2"] {
        common::wait_for_rows(&root.join(host).join("var/lib/vcheckd/vcheckd.sqlite"), 1);
    }
    let shims = root.join("shims");
    std::fs::create_dir_all(&shims).unwrap();
    let ssh = "#!/bin/bash\n# ssh HOST CMD: CMD run here, on HOST's folder\nhost=\"$1\"; shift\n\
               cmd=\"$*\"; cmd=\"${cmd//\\/tmp\\//$HOSTS/$host/tmp/}\"\n\
               cmd=\"${cmd//\\/var\\/lib\\/vcheckd\\//$HOSTS/$host/var/lib/vcheckd/}\"\nexec bash -c \"$cmd\"\n";
    let scp = "#!/bin/bash\n# scp HOST:PATH... DEST: copies from HOST's folder\nargs=(\"$@\"); dest=\"${args[-1]}\"\n\
               for a in \"${args[@]:0:${#args[@]}-1}\"; do cp \"$HOSTS/${a%%:*}${a#*:}\" \"$dest\"; done\n";
    for (name, text) in [("ssh", ssh), ("scp", scp)] {
        std::fs::write(shims.join(name), text).unwrap();
        std::fs::set_permissions(
            shims.join(name),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    let work = root.join("here");
    std::fs::create_dir_all(&work).unwrap();
    let mut output = String::new();
    for b in of("servers") {
        output += &run(
            &b,
            &[],
            &work,
            &[&shims, &bin],
            &[("HOSTS", root.to_str().unwrap())],
        );
    }
    // Both servers' reports, merged: two active clusters.
    let json_start = output.find('[').expect("summary --json printed");
    let summary: serde_json::Value = serde_json::Deserializer::from_str(&output[json_start..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    let week = summary[0]["active"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["days"] == 7)
        .unwrap()
        .clone();
    assert_eq!(week["clusters"], 2, "{output}");
}

#[test]
fn parent_referral_with_glue() {
    if !have("nsd") || !have("dig") {
        return skip(
            "DEPLOY section 8 (parent)",
            "nsd or dig is missing (apt-get install nsd bind9-dnsutils)",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let deploy = std::fs::read_to_string(Path::new(ROOT).join("docs/DEPLOY.md")).unwrap();
    // Section 1's records for the parent zone, in a parent zone of its own.
    let start = deploy
        .find("; delegation of vc.example.com to vcheckd")
        .unwrap();
    let records = &deploy[start..start + deploy[start..].find("```").unwrap()];
    let zone = format!(
        "$ORIGIN example.com.\n$TTL 3600\n@ IN SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 300\n\
         @ IN NS ns.example.com.\nns IN A 127.0.0.1\n{records}"
    );
    std::fs::write(dir.path().join("example.com.zone"), zone).unwrap();
    let d = dir.path().display();
    for attempt in 0..5 {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = format!(
            "server:\n  ip-address: 127.0.0.1@{port}\n  do-ip6: no\n  server-count: 1\n  username: \"\"\n  chroot: \"\"\n\
             zonesdir: \"{d}\"\n  database: \"\"\n  zonelistfile: \"{d}/zl{attempt}\"\n  xfrdfile: \"{d}/xfrd{attempt}\"\n\
             xfrdir: \"{d}\"\n  pidfile: \"{d}/nsd{attempt}.pid\"\n  logfile: \"{d}/nsd{attempt}.log\"\n  rrl-ratelimit: 0\n\
             remote-control:\n  control-enable: no\nzone:\n  name: \"example.com\"\n  zonefile: \"example.com.zone\"\n"
        );
        let conf_path = dir.path().join(format!("nsd{attempt}.conf"));
        std::fs::write(&conf_path, conf).unwrap();
        let _nsd = Killed(
            Command::new("nsd")
                .args(["-d", "-c", conf_path.to_str().unwrap()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let at = format!("127.0.0.1 -p {port}");
        let ready = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            Command::new("dig")
                .args([
                    "+short",
                    "+time=1",
                    "+tries=1",
                    "-p",
                    &port.to_string(),
                    "@127.0.0.1",
                    "example.com",
                    "SOA",
                ])
                .output()
                .is_ok_and(|o| !o.stdout.is_empty())
        });
        if !ready {
            continue; // the port was taken: another one
        }
        let mut output = String::new();
        for b in of("parent") {
            output += &run(
                &b,
                &[("\"$(dig +short example.com NS | head -1)\"", &at)],
                dir.path(),
                &[],
                &[],
            );
        }
        for want in [
            "ns1.vc.example.com.",
            "ns2.vc.example.com.",
            "192.0.2.53",
            "2001:db8::53",
            "AUTHORITY",
        ] {
            assert!(output.contains(want), "{want} missing in:\n{output}");
        }
        return;
    }
    panic!("NSD did not start in 5 tries ({d})");
}

/// Undoes what the installed scenario did to the machine, whatever failed.
struct Installed {
    state: PathBuf,
    shims: PathBuf,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new(self.shims.join("systemctl"))
            .args(["stop", "vcheckd"])
            .env("VCHECKD_DOCS_STATE", &self.state)
            .status();
        let _ = Command::new("systemctl")
            .args(["disable", "vcheckd"])
            .output();
        for f in [
            "vc.example.com.v2.private",
            "vc.example.com.key",
            "v2.example.com.v2.private",
            "v2.example.com.zone",
        ] {
            let _ = std::fs::remove_file(Path::new("/etc/vcheckd").join(f));
        }
        let _ = std::fs::write(
            "/etc/vcheckd/vcheckd.toml",
            include_str!("../systemd/vcheckd.toml"),
        );
        let _ = std::fs::remove_dir_all("/etc/systemd/system/vcheckd.service.d");
        let _ = std::fs::remove_dir_all("/run/credentials/vcheckd.service");
    }
}

#[test]
fn installed_package() {
    let installed = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "vcheckd"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"));
    if !installed {
        return skip(
            "the installed package (DEPLOY sections 5 and 8)",
            "the vcheckd package is not installed (.ci/run builds and installs it)",
        );
    }
    assert!(
        nix_is_root(),
        "the vcheckd package is installed but this test is not root: run it as root"
    );
    for tool in ["dig", "systemd-analyze", "setpriv"] {
        assert!(have(tool), "{tool} is missing");
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let shims = Path::new(ROOT).join("tests/docs");
    let guard = Installed {
        state: state.clone(),
        shims: shims.clone(),
    };
    // A fresh machine's /etc/vcheckd, also when a run before this failed.
    drop(Installed {
        state: state.clone(),
        shims: shims.clone(),
    });
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let at = format!("@127.0.0.1 -p {port}");
    let server = format!("127.0.0.1:{port}");
    let replace = [
        ("@127.0.0.1", at.as_str()),
        ("@192.0.2.53", at.as_str()),
        ("@198.51.100.53", at.as_str()),
    ];
    let env = [
        ("VCHECKD_DOCS_STATE", state.to_str().unwrap()),
        ("VCHECKD_DOCS_PORT", port.as_str()),
        // `check` asks the system's resolver unless told: here, the server.
        ("VCHECKD_SERVER", server.as_str()),
        ("XDG_STATE_HOME", state.to_str().unwrap()),
    ];
    let mut output = String::new();
    for b in of("installed") {
        output += &run(&b, &replace, dir.path(), &[&shims], &env);
    }
    for want in [
        "active (running)",
        "status: NOERROR",
        "Overall exposure level for vcheckd.service",
        "2.4.1 is available (running 2.3.1)",
        "v2.example.com.\t",
    ] {
        assert!(output.contains(want), "{want:?} missing in:\n{output}");
    }
    // It ran as the package's user, with the unit's credentials.
    let log = std::fs::read_to_string(state.join("vcheckd.log")).unwrap();
    assert!(log.contains("listening on UDP and TCP"), "{log}");
    drop(guard);
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}
