//! The dashboard in a real browser: headless Chromium (Debian's `chromium`)
//! loads the page from a real server at a laptop's width (1440 px) and a
//! phone's (390 px), driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: no port, no extra crate). At each width:
//! the page logs no console message (it has no script, so any message is
//! a fault: a blocked load, a CSP violation); it does not overflow
//! (`document.documentElement.scrollWidth` equals the viewport's width);
//! every chart is whole on the screen, its text inside it and drawn at a
//! readable size; and a screenshot of the whole page shows the charts in
//! their status colours.
//!
//! Skipped, with a message, when /usr/bin/chromium is missing. With
//! VCHECKD_DASHBOARD_PNG=FILE the laptop-width screenshot is also copied to
//! FILE, and the phone-width one beside it (FILE's name with `-390`).

mod common;
mod http_support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::*;
use http_support::*;
use vcheckd::config::Config;
use vcheckd::daemon::RunningServer;

const CHROMIUM: &str = "/usr/bin/chromium";

/// A headless Chromium and one page in it, over the DevTools protocol:
/// messages are JSON, each ended by a NUL byte, on the browser's fd 3 (to
/// it) and fd 4 (from it).
struct Browser {
    child: Child,
    to: std::io::PipeWriter,
    from: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    /// Console messages, log entries and exceptions, as they arrived.
    console: Vec<String>,
}

impl Browser {
    fn start(profile: &Path) -> Browser {
        let (to_read, to) = std::io::pipe().unwrap();
        let (from_read, from_write) = std::io::pipe().unwrap();
        let (fd_in, fd_out) = (
            std::os::fd::AsRawFd::as_raw_fd(&to_read),
            std::os::fd::AsRawFd::as_raw_fd(&from_write),
        );
        let mut command = Command::new(CHROMIUM);
        command
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
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: between fork and exec only async-signal-safe calls
        // (fcntl, dup2, close) on descriptors this process owns. The ends
        // are first moved above 10, so that dup2 onto 3 and 4 never
        // overwrites one of them.
        unsafe {
            command.pre_exec(move || {
                let a = libc::fcntl(fd_in, libc::F_DUPFD, 10);
                let b = libc::fcntl(fd_out, libc::F_DUPFD, 10);
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(a);
                libc::close(b);
                Ok(())
            });
        }
        let child = command.spawn().expect("start chromium");
        drop((to_read, from_write));
        let (tx, from) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(from_read);
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                message.pop_if(|b| *b == 0);
                if let Ok(v) = serde_json::from_slice(&message) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
                message.clear();
            }
        });
        let mut browser = Browser {
            child,
            to,
            from,
            next_id: 0,
            session: String::new(),
            console: Vec::new(),
        };
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"}));
        let attached = browser.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            browser.call(domain, json!({}));
        }
        browser
    }

    /// Sends a command (to the page once attached) and waits for its
    /// result, keeping the console events that arrive meanwhile.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("chromium: no answer to {method}: {e}"));
            if v["id"] == id {
                assert!(v.get("error").is_none(), "chromium: {method}: {v}");
                return v["result"].clone();
            }
            self.keep_console(&v);
        }
    }

    fn keep_console(&mut self, event: &Value) {
        let p = &event["params"];
        match event["method"].as_str() {
            Some("Runtime.consoleAPICalled") => {
                self.console.push(format!("console: {}", p["args"]))
            }
            Some("Runtime.exceptionThrown") => self.console.push(format!("exception: {p}")),
            // The browser's own log (a blocked load, a CSP violation); its
            // verbose level is performance notes, not faults.
            Some("Log.entryAdded") if p["entry"]["level"] != "verbose" => {
                self.console.push(format!(
                    "{} {}: {}",
                    p["entry"]["source"], p["entry"]["level"], p["entry"]["text"]
                ))
            }
            _ => {}
        }
    }

    fn eval(&mut self, expression: &str) -> Value {
        let out = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        assert!(out.get("exceptionDetails").is_none(), "{expression}: {out}");
        out["result"]["value"].clone()
    }

    /// Shows `url` at `width` x `height` CSS pixels and waits until it is
    /// loaded.
    fn open(&mut self, url: &str, width: u32, height: u32) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}),
        );
        self.call("Page.navigate", json!({"url": url}));
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.eval("document.readyState") != "complete" {
            assert!(Instant::now() < deadline, "{url} did not load in a minute");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A PNG of the whole page, as wide as the viewport.
    fn screenshot(&mut self) -> Vec<u8> {
        let width = self.eval("document.documentElement.clientWidth");
        let height = self.eval("document.documentElement.scrollHeight");
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true, "clip": {
                "x": 0, "y": 0, "scale": 1, "width": width, "height": height,
            }}),
        );
        data_encoding::BASE64
            .decode(shot["data"].as_str().unwrap().as_bytes())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the page measures of itself: the document's width beside the
/// viewport's, and each chart shown (its drawing's scale, where it is,
/// and how much of its text lies outside it).
const MEASURE: &str = r#"(() => {
  const charts = [...document.querySelectorAll('svg.chart')]
    .filter(s => getComputedStyle(s).display !== 'none');
  return {
    viewport: window.innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
    charts: charts.map(s => {
      const r = s.getBoundingClientRect();
      const outside = [...s.querySelectorAll('text')].filter(t => {
        const b = t.getBoundingClientRect();
        return b.width > 0 && (b.left < r.left - 0.5 || b.right > r.right + 0.5);
      });
      return {
        id: s.id, left: r.left, right: r.right,
        scale: r.width / s.viewBox.baseVal.width,
        textOutside: outside.map(t => t.textContent),
      };
    }),
  };
})()"#;

/// Pixels of each colour, in a decoded RGB(A) screenshot.
fn count_colours(png_bytes: &[u8], colours: &[[u8; 3]]) -> (u32, u32, Vec<usize>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
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

/// The charts, by the id of their wide drawing.
const CHARTS: [&str; 5] = [
    "chart-versions",
    "chart-adoption",
    "chart-release",
    "chart-insecure",
    "chart-activity",
];

/// Text drawn at 12 units reads at this size (CSS px) or larger.
const SMALLEST_TEXT_PX: f64 = 10.0;

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
    let mut browser = Browser::start(&work.path().join("profile"));

    // The console check can fail: a page that logs an error is caught.
    browser.open(
        "data:text/html,<script>console.error('probe-7f3a')</script>",
        800,
        600,
    );
    browser.call("Runtime.evaluate", json!({"expression": "1"}));
    assert!(
        browser.console.iter().any(|l| l.contains("probe-7f3a")),
        "the console probe was not seen: {:?}",
        browser.console
    );
    browser.console.clear();

    // Every chart is in the page, drawn at both widths.
    browser.open(&url, 1440, 1000);
    let html = browser
        .eval("document.documentElement.outerHTML")
        .as_str()
        .unwrap()
        .to_string();
    for id in CHARTS {
        for drawn in [id.to_string(), format!("{id}-narrow")] {
            assert!(
                html.contains(&format!("<svg id=\"{drawn}\"")),
                "{drawn} missing in the DOM"
            );
        }
    }
    assert_eq!(
        html.matches("<g class=\"bar\">").count(),
        2 * 9,
        "8 named and other, at each width"
    );
    assert!(html.matches("<polygon class=\"layer\"").count() >= 2 * 2);
    assert!(html.contains("Adoption of 2.4.1"));
    // The date fields read as ISO dates, whatever the browser's locale.
    let since = browser.eval("document.querySelector('input[name=since]').value");
    assert_eq!(since, vcheckd::clock::date_of_day(today() - 29));
    assert_eq!(
        browser.eval("document.querySelector('input[name=since]').type"),
        "text"
    );

    // One colour per status on every chart: bars, stacked layers, lines.
    let colours = [
        rgb("#2f9e44"), // up to date
        rgb("#e8a317"), // upgrade available
        rgb("#d9480f"), // upgrade required (insecure)
    ];
    for (width, height, suffix) in [(1440, 1000, ""), (390, 844, "-390")] {
        browser.open(&url, width, height);
        let m = browser.eval(MEASURE);
        println!(
            "{width} px: scrollWidth {}, viewport {}, charts {}",
            m["scrollWidth"], m["viewport"], m["charts"]
        );
        assert_eq!(m["viewport"], width, "{m}");
        assert_eq!(
            m["scrollWidth"], width,
            "the page is wider than the screen at {width} px: {m}"
        );
        let charts = m["charts"].as_array().unwrap();
        let shown: Vec<&str> = charts.iter().map(|c| c["id"].as_str().unwrap()).collect();
        let drawing = |id: &str| {
            if width < 600 {
                format!("{id}-narrow")
            } else {
                id.to_string()
            }
        };
        assert_eq!(
            shown,
            CHARTS.iter().map(|id| drawing(id)).collect::<Vec<_>>(),
            "one drawing of each chart shown, the one for {width} px"
        );
        for c in charts {
            let (left, right) = (c["left"].as_f64().unwrap(), c["right"].as_f64().unwrap());
            assert!(
                left >= 0.0 && right <= f64::from(width),
                "{} is not whole on a {width} px screen: {c}",
                c["id"]
            );
            let text_px = 12.0 * c["scale"].as_f64().unwrap();
            assert!(
                text_px >= SMALLEST_TEXT_PX,
                "{}'s text is drawn at {text_px:.1} px at {width} px: {c}",
                c["id"]
            );
            assert_eq!(
                c["textOutside"],
                json!([]),
                "{}'s text is cut at {width} px",
                c["id"]
            );
        }
        let png_bytes = browser.screenshot();
        let (w, h, counts) = count_colours(&png_bytes, &colours);
        println!("{width} px: screenshot {w}x{h}, status colours {counts:?}");
        assert_eq!(w, width);
        assert!(h >= height, "{h}");
        for (c, n) in colours.iter().zip(&counts) {
            assert!(
                *n > 200,
                "too few pixels of {c:?} ({n}) at {width} px: a chart is missing"
            );
        }
        if let Ok(dest) = std::env::var("VCHECKD_DASHBOARD_PNG") {
            let dest = Path::new(&dest);
            let name = format!(
                "{}{suffix}.png",
                dest.file_stem().unwrap_or_default().to_string_lossy()
            );
            let dest = dest.with_file_name(name);
            std::fs::write(&dest, &png_bytes).unwrap();
            println!("screenshot at {width} px written to {}", dest.display());
        }
    }
    assert!(
        browser.console.is_empty(),
        "console messages:\n{}",
        browser.console.join("\n")
    );
    drop(browser);
    rt.block_on(server.shutdown()).unwrap();
}
