//! The dashboard in a real browser: headless Chromium (Debian's `chromium`)
//! loads the page from a real server, logs no console message (the page has
//! no script, so any message is a fault: a blocked load, a CSP violation),
//! and the screenshot shows the charts in their colours.
//!
//! Skipped, with a message, when /usr/bin/chromium is missing. With
//! VCHECKD_DASHBOARD_PNG=FILE the screenshot is also copied to FILE.

mod common;
mod http_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use http_support::*;
use vcheckd::config::Config;
use vcheckd::dns::server::RunningServer;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs headless Chromium with a fresh profile, killed after a minute.
fn chromium(profile: &Path, args: &[&str]) -> Output {
    let child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &id.to_string()])
                .status();
            panic!("chromium did not finish within a minute");
        }
    }
}

/// The page's console messages in Chromium's log.
fn console_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect()
}

/// Pixels of each colour, in a decoded RGB(A) screenshot.
fn count_colours(png_file: &Path, colours: &[[u8; 3]]) -> (u32, u32, Vec<usize>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_file).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    let mut counts = vec![0; colours.len()];
    for px in buf[..info.buffer_size()].chunks_exact(step) {
        if let Some(i) = colours.iter().position(|c| c[..] == px[..3]) {
            counts[i] += 1;
        }
    }
    (info.width, info.height, counts)
}

fn rgb(hex: &str) -> [u8; 3] {
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap();
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

#[test]
fn dashboard_in_headless_chromium() {
    if !Path::new(CHROMIUM).exists() {
        let msg = format!(
            "SKIPPED dashboard_in_headless_chromium: {CHROMIUM} is missing \
             (apt-get install -y chromium to run it)"
        );
        println!("{msg}");
        eprintln!("{msg}");
        return;
    }
    let setup = Setup::new();
    let mut text = std::fs::read_to_string(setup.config_path()).unwrap();
    text.push_str(&http_section(8));
    std::fs::write(setup.config_path(), text).unwrap();
    // Weeks of a fleet upgrading through five releases, plus a long tail
    // of over a hundred old versions.
    let truth = write_fleet(&setup.db_path(), 400, 110, &[ZONE]);
    assert!(truth.versions(today() - 6, today()).len() > 100);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(async {
        RunningServer::start(&Config::load(&setup.config_path()).unwrap())
            .await
            .unwrap()
    });
    let url = format!("http://{}/", server.http_addr().unwrap());
    let work = tempfile::tempdir().unwrap();
    let profile = |name: &str| -> PathBuf { work.path().join(name) };

    // The console check can fail: a page that logs an error is caught.
    let probe = chromium(
        &profile("probe"),
        &[
            "--dump-dom",
            "data:text/html,<script>console.error('probe-7f3a')</script>",
        ],
    );
    assert!(
        console_lines(&probe)
            .iter()
            .any(|l| l.contains("probe-7f3a")),
        "the console probe was not seen; stderr:\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );

    // The page loads, with every chart, and the console stays silent.
    let started = Instant::now();
    let dom = chromium(&profile("dom"), &["--dump-dom", &url]);
    assert!(dom.status.success(), "{dom:?}");
    let console = console_lines(&dom);
    assert!(
        console.is_empty(),
        "console messages:\n{}",
        console.join("\n")
    );
    let html = String::from_utf8_lossy(&dom.stdout);
    for id in [
        "chart-versions",
        "chart-adoption",
        "chart-release",
        "chart-insecure",
        "chart-activity",
    ] {
        assert!(
            html.contains(&format!("<svg id=\"{id}\"")),
            "{id} missing in the DOM"
        );
    }
    assert_eq!(
        html.matches("<g class=\"bar\">").count(),
        9,
        "8 named and other"
    );
    assert!(html.matches("<polygon class=\"layer\"").count() >= 2);
    assert!(html.contains("Adoption of 2.4.1"));
    println!("DOM check took {:?}", started.elapsed());

    // The screenshot at a laptop's size shows the charts in their colours.
    let shot = work.path().join("dashboard.png");
    let out = chromium(
        &profile("shot"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1440,1000",
            &url,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let console = console_lines(&out);
    assert!(
        console.is_empty(),
        "console messages:\n{}",
        console.join("\n")
    );
    // One colour per status on every chart: bars, stacked layers, lines.
    let colours = [
        rgb("#2f9e44"), // up to date
        rgb("#e8a317"), // upgrade available
        rgb("#d9480f"), // upgrade required (insecure)
    ];
    let (width, height, counts) = count_colours(&shot, &colours);
    assert_eq!((width, height), (1440, 1000));
    for (c, n) in colours.iter().zip(&counts) {
        assert!(
            *n > 200,
            "too few pixels of {c:?} ({n}): a chart is missing"
        );
    }
    if let Ok(dest) = std::env::var("VCHECKD_DASHBOARD_PNG") {
        std::fs::copy(&shot, &dest).unwrap();
        println!("screenshot copied to {dest}");
    }
    rt.block_on(server.shutdown()).unwrap();
}
