//! The built-in web UI end to end in headless Chromium, driven through chromedriver's W3C
//! WebDriver HTTP API (Debian's `chromium` and `chromium-driver`).
//!
//! vigil scrapes the synthetic targets every second, on top of an hour of the same series imported with
//! `vigil tsdb import openmetrics`, so a one-hour graph is full. The test types a metric name
//! with the completion list, runs it as a table, shows a bad expression's `bad_data` error,
//! draws a one-hour graph and checks one SVG line and one legend entry per series the API
//! returns, hovers the chart for the tooltip, lists the targets as UP, walks the other pages
//! through the navigation bar, and loads the UI under `--web.route-prefix`.
//!
//! Screenshots go to `$VIGIL_UI_SCREENSHOT_DIR` when set (`docs/` for the README's images),
//! else to the test's temporary directory; the viewport is 1366×768 unless
//! `VIGIL_UI_VIEWPORT=1920x1080` (say) asks for another.
//!
//! Without `/usr/bin/chromium` the test fails, unless `VIGIL_SKIP_INTEROP=1`, when it skips.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const TARGETS: u16 = 3;
/// Series asked for per target.
const SERIES: u32 = 30;

/// A chromedriver process and one browser session in it.
struct Browser {
    http: reqwest::blocking::Client,
    base: String,
    _driver: Proc,
}

impl Browser {
    fn start(profile: &Path) -> Browser {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (apt-get install chromium-driver)");
        let driver = Proc {
            child,
            name: "chromedriver",
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let root = format!("http://127.0.0.1:{port}");
        wait_for(Duration::from_secs(15), "chromedriver ready", || {
            http.get(format!("{root}/status"))
                .send()
                .ok()
                .and_then(|r| r.text().ok())
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .is_some_and(|v| v["value"]["ready"] == true)
        });
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-quic",
                    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                    "--window-size=1366,768",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let r: Value = http
            .post(format!("{root}/session"))
            .header("Content-Type", "application/json")
            .body(caps.to_string())
            .send()
            .expect("new WebDriver session")
            .text()
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap();
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"));
        Browser {
            http,
            base: format!("{root}/session/{id}"),
            _driver: driver,
        }
    }

    /// One WebDriver command; its `value`. Panics with the driver's message on an error.
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self
                .http
                .post(url)
                .header("Content-Type", "application/json")
                .body(body.unwrap_or_else(|| json!({})).to_string()),
        };
        let resp = req
            .send()
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let v: Value = serde_json::from_str(&resp.text().unwrap()).unwrap();
        assert!(
            status.is_success(),
            "{method} {path}: {status} {}",
            v["value"]["message"]
        );
        v["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    fn js(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Waits until `script` returns something truthy; returns it.
    fn wait_js(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let v = self.js(script, json!([]));
            if !(v.is_null() || v == false || v == 0 || v == "") {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; page: {}",
                self.js(
                    "return document.getElementById('main')?.innerText.slice(0, 2000)",
                    json!([])
                )
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let r = self
                .http
                .post(format!("{}/element", self.base))
                .header("Content-Type", "application/json")
                .body(json!({"using": "css selector", "value": css}).to_string())
                .send()
                .unwrap();
            if r.status().is_success() {
                let v: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
                return v["value"][ELEMENT]
                    .as_str()
                    .unwrap_or_else(|| panic!("find {css}: {v}"))
                    .to_string();
            }
            assert!(Instant::now() < deadline, "no element {css}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn click(&self, css: &str) {
        let el = self.find(css);
        self.cmd("POST", &format!("/element/{el}/click"), None);
    }

    fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.cmd(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn clear(&self, css: &str) {
        let el = self.find(css);
        self.cmd("POST", &format!("/element/{el}/clear"), None);
    }

    /// Moves the mouse to `css`, offset from its centre.
    fn hover(&self, css: &str, dx: i64, dy: i64) {
        let el = self.find(css);
        self.cmd(
            "POST",
            "/actions",
            Some(json!({"actions": [{
                "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
                "actions": [{"type": "pointerMove", "duration": 0, "x": dx, "y": dy,
                             "origin": {ELEMENT: el}}],
            }]})),
        );
    }

    /// Sizes the window so that the page's viewport is `w`×`h` CSS pixels.
    fn set_viewport(&self, w: i64, h: i64) {
        for _ in 0..3 {
            let inner = self.js("return [innerWidth, innerHeight]", json!([]));
            let (iw, ih) = (inner[0].as_i64().unwrap(), inner[1].as_i64().unwrap());
            if (iw, ih) == (w, h) {
                return;
            }
            let rect = self.cmd("GET", "/window/rect", None);
            let (ow, oh) = (
                rect["width"].as_i64().unwrap(),
                rect["height"].as_i64().unwrap(),
            );
            self.cmd(
                "POST",
                "/window/rect",
                Some(json!({"width": ow + w - iw, "height": oh + h - ih})),
            );
        }
        let inner = self.js("return [innerWidth, innerHeight]", json!([]));
        println!("viewport {inner} (wanted {w}x{h})");
    }

    fn screenshot(&self, path: &Path) {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64_decode(b64.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        std::fs::write(path, png).unwrap();
        println!("screenshot: {}", path.display());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.http.delete(&self.base).send();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("bad base64 byte {c}"),
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, c)| n | (u32::from(val(*c)) << (18 - 6 * i)));
        let k = chunk.len() - 1;
        out.extend_from_slice(&n.to_be_bytes()[1..1 + k]);
    }
    out
}

/// `name{a="b", c="d"}` as the UI's legend writes a series (labels sorted, values quoted).
fn series_name(metric: &Value) -> String {
    let m = metric.as_object().unwrap();
    let name = m.get("__name__").and_then(Value::as_str).unwrap_or("");
    let mut keys: Vec<&String> = m.keys().filter(|k| *k != "__name__").collect();
    keys.sort();
    let labels: Vec<String> = keys
        .iter()
        .map(|k| format!("{k}={}", m[k.as_str()]))
        .collect();
    format!("{name}{{{}}}", labels.join(", "))
}

fn screenshot_dir(fallback: &Path) -> PathBuf {
    match std::env::var_os("VIGIL_UI_SCREENSHOT_DIR") {
        Some(d) => {
            // Relative to the workspace root (tests run in the crate's directory).
            let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(d);
            std::fs::create_dir_all(&d).unwrap();
            d
        }
        None => fallback.to_path_buf(),
    }
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The HTTP side of the UI: pages, assets, content types and caching.
fn check_http(port: u16) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    for page in [
        "/",
        "/query",
        "/graph",
        "/targets",
        "/service-discovery",
        "/rules",
        "/alerts",
        "/config",
        "/flags",
        "/tsdb-status",
    ] {
        let r = http.get(url(page)).send().unwrap();
        assert_eq!(r.status(), 200, "{page}");
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        assert!(
            r.text().unwrap().contains("src=\"assets/app.js\""),
            "{page}"
        );
    }
    for (asset, ctype) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("chart.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let r = http.get(url(&format!("/assets/{asset}"))).send().unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        assert_eq!(r.headers()["content-type"], ctype, "{asset}");
        assert_eq!(r.headers()["cache-control"], "no-cache", "{asset}");
        let tag = r.headers()["etag"].clone();
        let again = http
            .get(url(&format!("/assets/{asset}")))
            .header("If-None-Match", tag)
            .send()
            .unwrap();
        assert_eq!(again.status(), 304, "{asset} revalidation");
    }
    assert_eq!(
        http.get(url("/assets/missing.js")).send().unwrap().status(),
        404
    );
}

#[test]
fn web_ui_in_headless_chromium() {
    if !Path::new(CHROMIUM).exists() {
        if std::env::var("VIGIL_SKIP_INTEROP").as_deref() == Ok("1") {
            println!("skipped: {CHROMIUM} is missing and VIGIL_SKIP_INTEROP=1");
            return;
        }
        panic!("{CHROMIUM} is missing: apt-get install chromium chromium-driver");
    }
    assert!(
        Path::new(CHROMEDRIVER).exists(),
        "{CHROMEDRIVER} is missing: apt-get install chromium-driver"
    );
    let t0 = Instant::now();

    let (_sim, base) = start_targets(TARGETS, SERIES, 1000);
    let dir = tempdir("web-ui");
    // An hour of history for the same series (the targets' values are a function of time).
    let now = now_secs() as i64;
    let om = dir.join("history.om");
    let history = History {
        base_port: base,
        ..History::new(TARGETS, SERIES, now - 3600, 3600)
    };
    write_openmetrics(&om, &history);
    let data = dir.join("data");
    let st = Command::new(vigil_bin())
        .args(["tsdb", "import", "openmetrics"])
        .arg(&om)
        .arg(&data)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "vigil tsdb import failed");
    let targets: Vec<String> = (0..TARGETS)
        .map(|i| format!("\"127.0.0.1:{}\"", base + i))
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: synth\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    std::fs::write(dir.join("prometheus.yml"), &config).unwrap();
    let (_vigil, port) = start_vigil_in(&dir, &data, &[], "vigil.log", &ready_200);
    wait_for(Duration::from_secs(20), "all targets up", || {
        let (_, v) = api(port, "/api/v1/query?query=sum(up)");
        v["data"]["result"][0]["value"][1].as_str() == Some(&TARGETS.to_string())
    });
    check_http(port);

    let shots = screenshot_dir(&dir);
    let b = Browser::start(&dir.join("chromium-profile"));
    let page = |p: &str| format!("http://127.0.0.1:{port}{p}");

    // `/` shows the query page under its own path.
    b.goto(&page("/"));
    // A laptop screen; VIGIL_UI_VIEWPORT=1920x1080 for another size.
    let (vw, vh) = std::env::var("VIGIL_UI_VIEWPORT")
        .ok()
        .and_then(|v| {
            let (w, h) = v.split_once('x')?;
            Some((w.parse().ok()?, h.parse().ok()?))
        })
        .unwrap_or((1366, 768));
    b.set_viewport(vw, vh);
    b.wait_js(
        "the query page",
        "return location.pathname === '/query' && document.getElementById('expr')",
    );

    // Completion of a metric name from api/v1/label/__name__/values.
    b.type_into("#expr", "model_acc");
    b.wait_js(
        "completion list",
        "const l = document.getElementById('completions'); return !l.hidden && [...l.querySelectorAll('.completion-name')].some(e => e.textContent === 'model_accuracy')",
    );
    b.screenshot(&dir.join("ui-completion.png"));
    b.type_into("#expr", "\u{E004}"); // Tab accepts the selected entry
    let expr = b.js("return document.getElementById('expr').value", json!([]));
    assert_eq!(expr, "model_accuracy");

    // Table view: one row per series of the instant query.
    b.click("#execute");
    let (_, inst) = api(port, "/api/v1/query?query=model_accuracy");
    let n_inst = inst["data"]["result"].as_array().unwrap().len();
    assert!(
        n_inst >= 2,
        "the query should return several series: {inst}"
    );
    b.wait_js(
        "table rows",
        &format!("return document.querySelectorAll('#table-view .result-row').length === {n_inst}"),
    );

    // A bad expression: the API's bad_data error next to the expression box.
    b.clear("#expr");
    b.type_into("#expr", "sum(model_accuracy\u{E007}");
    let err = b.wait_js(
        "the error box",
        "return document.querySelectorAll('#table-view .result-row').length === 0 \
         && document.querySelector('#query-error .alert-error')?.textContent",
    );
    assert!(err.as_str().unwrap().contains("bad_data"), "{err}");
    b.screenshot(&dir.join("ui-error.png"));
    b.clear("#expr");
    b.type_into("#expr", "model_accuracy");

    // Graph view over an hour.
    b.click("[data-tab=graph]");
    b.click("[data-range='1h']");
    let end = now_secs();
    let (_, range) = api(
        port,
        &format!(
            "/api/v1/query_range?query=model_accuracy&start={}&end={end}&step=14",
            end - 3600.0
        ),
    );
    let want: Vec<String> = range["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| series_name(&s["metric"]))
        .collect();
    assert!(want.len() >= 2, "{range}");
    let paths = b.wait_js(
        "one line per series",
        &format!(
            "const p = [...document.querySelectorAll('#chart path.series-line')]; \
             return p.length === {} && document.getElementById('query-stats').textContent.includes('step 14s') \
               && p.map(e => e.getAttribute('d'))",
            want.len()
        ),
    );
    for d in paths.as_array().unwrap() {
        let d = d.as_str().unwrap();
        let points = d.matches(['M', 'L']).count();
        assert!(points > 100, "an hour at 15 s is > 200 points: {d:.200}");
        let ys: std::collections::BTreeSet<&str> = d
            .split(['M', 'L'])
            .filter_map(|p| p.split(',').nth(1))
            .collect();
        assert!(ys.len() > 3, "a flat or empty line: {d:.200}");
    }
    let mut legend: Vec<String> = b
        .js(
            "return [...document.querySelectorAll('#legend .legend-item')].map(e => e.textContent)",
            json!([]),
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut want_sorted = want.clone();
    legend.sort();
    want_sorted.sort();
    assert_eq!(legend, want_sorted, "the legend lists the API's series");

    // Hover: crosshair and a tooltip with a value per series.
    b.hover(".chart-overlay", 120, -40);
    let rows = b.wait_js(
        "tooltip",
        "const t = document.querySelector('.chart-tooltip'); \
         return t && !t.hidden && document.querySelector('.crosshair').getAttribute('visibility') === 'visible' \
           && t.querySelectorAll('.tip-row').length",
    );
    assert_eq!(rows, want.len().min(10));
    b.screenshot(&shots.join("ui-graph.png"));

    // Targets: every target listed and UP.
    b.click("a[data-nav=targets]");
    b.wait_js(
        "targets listed UP",
        &format!(
            "const r = [...document.querySelectorAll('.target-row')]; \
             return r.length === {TARGETS} && r.every(e => e.dataset.health === 'up' && e.textContent.includes('UP'))"
        ),
    );
    b.screenshot(&shots.join("ui-targets.png"));

    // The other pages, through the navigation bar (client-side routing) and deep links.
    for (nav, check) in [
        (
            "service-discovery",
            &*format!(
                "document.querySelectorAll('#service-discovery .sd-row[data-state=active]').length === {TARGETS} \
                 && document.querySelector('#service-discovery .pool .count')?.textContent === '{TARGETS} / {TARGETS} active targets'"
            ),
        ),
        (
            "rules",
            "document.querySelector('#rules .empty, #rules .rule-row')",
        ),
        (
            "alerts",
            "document.querySelectorAll('#alerts .summary-item').length === 3",
        ),
        (
            "config",
            "document.querySelector('#config pre')?.textContent.includes('job_name: synth')",
        ),
        (
            "flags",
            "document.querySelectorAll('#flags .flag-row').length > 5",
        ),
        (
            "tsdb-status",
            "document.querySelector('#tsdb-status')?.textContent.includes('3.5.0') && document.querySelectorAll('#tsdb-status .top-table').length === 4",
        ),
    ] {
        b.click(&format!("a[data-nav='{nav}']:not(.brand)"));
        b.wait_js(
            nav,
            &format!("return location.pathname === '/{nav}' && {check}"),
        );
        assert_eq!(
            b.js(
                "return document.querySelectorAll('.alert-error').length",
                json!([])
            ),
            0,
            "{nav} shows an error"
        );
        b.goto(&page(&format!("/{nav}")));
        b.wait_js(&format!("{nav} (deep link)"), &format!("return {check}"));
    }
    // Alert links open the table view of the query page.
    b.goto(&page("/graph?g0.expr=up&g0.tab=1"));
    b.wait_js(
        "graph?g0.expr=up",
        &format!(
            "return document.querySelectorAll('#table-view .result-row').length === {TARGETS}"
        ),
    );

    // Under a route prefix: the root redirects into the prefix and relative API calls work.
    let (_prefixed, pport, _pdir) =
        start_vigil_ready(&config, &["--web.route-prefix=/prom"], &|p| {
            http_get(&format!("http://127.0.0.1:{p}/prom/-/ready")).is_ok_and(|(s, _)| s == 200)
        });
    b.goto(&format!("http://127.0.0.1:{pport}/prom"));
    b.wait_js(
        "the prefixed query page",
        "return location.pathname === '/prom/query' && document.getElementById('expr')",
    );
    b.goto(&format!("http://127.0.0.1:{pport}/prom/targets"));
    b.wait_js(
        "prefixed targets",
        &format!("return document.querySelectorAll('.target-row').length === {TARGETS}"),
    );
    b.goto(&format!("http://127.0.0.1:{pport}/prom/"));
    b.wait_js(
        "the prefixed root",
        "return location.pathname === '/prom/query' && document.getElementById('expr')",
    );

    let took = t0.elapsed();
    println!("web UI checks took {took:?}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
}
