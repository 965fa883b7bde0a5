//! The same answers as seen by BIND's dig, an independent DNS client. Skips
//! (with a message) where dig is not installed; `.ci/run` installs it.

mod common;

use std::process::Command;

use common::*;
use vcheckd::config::Config;
use vcheckd::daemon::RunningServer;

fn dig(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+tries=1", "+time=3"])
        .args(args)
        .output()
        .ok()?;
    assert!(out.status.success(), "dig {args:?}: {out:?}");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn dig_sees_the_hint_over_udp_and_tcp() {
    if Command::new("dig").arg("-v").output().is_err() {
        eprintln!("skipped: dig is not installed (apt-get install bind9-dnsutils)");
        return;
    }
    let setup = Setup::new();
    let server = RunningServer::start(&Config::load(&setup.config_path()).unwrap())
        .await
        .unwrap();
    let port = server.local_addrs()[0].port();
    let name = setup.name("c", "n", "2.3.1");
    let run = |args: Vec<&str>| {
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            dig(port, &refs).unwrap()
        })
    };
    let txt = run(vec![&name, "TXT", "+short"]).await.unwrap();
    assert_eq!(
        txt.trim(),
        "\"v=vc1 status=2 latest=2.4.1 msg=2.4.1 is available\""
    );
    assert_eq!(
        run(vec![&name, "A", "+short"]).await.unwrap().trim(),
        "127.2.4.1"
    );
    assert_eq!(
        run(vec![&name, "AAAA", "+short"]).await.unwrap().trim(),
        "fd76:6364:2:2:4:1::"
    );
    assert_eq!(
        run(vec![&name, "TXT", "+short", "+tcp"]).await.unwrap(),
        txt
    );
    // dig follows TC to TCP by itself.
    let big = run(vec!["big.vc.example.com", "TXT", "+noedns"])
        .await
        .unwrap();
    assert!(big.contains("Truncated, retrying in TCP mode"), "{big}");
    assert!(big.contains("ANSWER: 1"), "{big}");
    let partial = run(vec!["abc.vc.example.com", "A"]).await.unwrap();
    assert!(partial.contains("status: NOERROR"), "{partial}");
    assert!(partial.contains("flags: qr aa"), "{partial}");
    assert!(partial.contains("ANSWER: 0, AUTHORITY: 1"), "{partial}");
    let outside = run(vec!["example.org", "A"]).await.unwrap();
    assert!(outside.contains("status: REFUSED"), "{outside}");
    let badvers = run(vec![
        "vc.example.com",
        "SOA",
        "+edns=1",
        "+noednsnegotiation",
    ])
    .await
    .unwrap();
    assert!(badvers.contains("status: BADVERS"), "{badvers}");
    // The same name asked 4 times: taken once, the 3 exact repeats
    // answered and not taken again.
    let repeats = server
        .metrics()
        .intake_repeats
        .load(std::sync::atomic::Ordering::Relaxed);
    server.shutdown().await.unwrap();
    assert_eq!(repeats, 3);
    assert_eq!(
        rows(&setup.db_path()),
        vec![("2.3.1".to_string(), 0, false)]
    );
}
