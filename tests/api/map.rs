//! The map page: how it is served (content types, CSP, caching, public with
//! tokens on), and what a person sees in a real headless Chromium driven through
//! chromedriver: Aleppo in HTS's colour on 30 November and contested on 29
//! November, the slider and the log-position control, the panel with its source,
//! the reporter's form (a change that arrives through the live feed, a field
//! error), a `#as_of=` link, the token box, a phone-width screen, and no console
//! errors. Screenshots go to `target/browser/` (also on failure).
//!
//! Chromium and chromedriver come from the system (Debian's `chromium` and
//! `chromium-driver`, installed by `.ci/run`; `SITREP_CHROMIUM` and
//! `SITREP_CHROMEDRIVER` override the paths). Without them the browser test is
//! skipped with a message, except under `CI`, where it fails.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::{json, Value};
use sitrep::startup::{Application, Settings};

use crate::helpers::{assert_problem, spawn_demo_app, spawn_with, tokens_in, TestApp};
use crate::process::{tokens_file, ServerProcess};

/// Longest wait for anything the page should show.
const WAIT: Duration = Duration::from_secs(20);
/// Between two looks at the page while waiting.
const POLL: Duration = Duration::from_millis(100);
/// Longest wait for chromedriver to answer at start.
const DRIVER_START: Duration = Duration::from_secs(20);
/// Flags that keep a headless Chromium off the network and quick to start.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
];
const DESKTOP: (u32, u32) = (1400, 900);
const PHONE: (u32, u32) = (390, 844);

// ---------------------------------------------------------------------------
// Served right: no browser needed
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_types_csp_and_caching() {
    let app = spawn_demo_app().await;
    let res = app.get("/").await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-cache");
    let csp = h["content-security-policy"].to_str().unwrap().to_owned();
    for directive in [
        "default-src 'self'",
        "script-src 'self';",
        "style-src 'self';",
        "connect-src 'self'",
    ] {
        assert!(csp.contains(directive), "CSP lacks {directive}: {csp}");
    }
    assert!(!csp.contains("unsafe") && !csp.contains("http"), "{csp}");
    let etag = h["etag"].to_str().unwrap().to_owned();
    let html = res.text().await.unwrap();
    let res = app
        .client
        .get(app.url("/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);

    // Every asset the page names: right type, a year of immutable caching.
    let assets: Vec<&str> = html.split('"').filter(|s| s.starts_with("/assets/")).collect();
    assert!(assets.len() >= 5, "{assets:?}");
    for path in &assets {
        let res = app.get(path).await;
        assert_eq!(res.status(), 200, "{path}");
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        let want = match path.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected asset {path} ({other:?})"),
        };
        assert_eq!(ct, want, "{path}");
        assert_eq!(
            res.headers()["cache-control"],
            "public, max-age=31536000, immutable",
            "{path}"
        );
    }
    // Compressed when the browser asks for it.
    let js = assets.iter().find(|p| p.ends_with("leaflet.js")).unwrap();
    let res = app
        .client
        .get(app.url(js))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");
    // An asset under another build's digest is not this content.
    let stale = js.replacen("/assets/", "/assets/0000000000000000-", 1);
    assert_eq!(app.get(&stale).await.status(), 404);
    assert_eq!(app.get("/assets/nothing/js/main.js").await.status(), 404);
    // The docs and the spec they render.
    let res = app.get("/docs").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self';"));
    let res = app.get("/docs/openapi.yaml").await;
    assert_eq!(res.headers()["content-type"], "application/yaml");
    assert!(res.text().await.unwrap().contains("\nopenapi: 3.1"));
    // Only GET and HEAD.
    let res = app.client.post(app.url("/")).body("x").send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, HEAD");
    let res = app.client.head(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn with_tokens_the_page_is_public_and_the_data_is_not() {
    let secured = Secured::spawn().await;
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{}{path}", secured.address)).send();
    let html = get("/").await.unwrap();
    assert_eq!(html.status(), 200);
    let html = html.text().await.unwrap();
    let css = html.split('"').find(|s| s.ends_with("app.css")).unwrap();
    assert_eq!(get(css).await.unwrap().status(), 200);
    assert_eq!(get("/docs").await.unwrap().status(), 200);
    assert_eq!(get("/v1/locations").await.unwrap().status(), 401);
    assert_eq!(get("/v1/events/stream").await.unwrap().status(), 401);
    secured.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_are_judged_on_their_route_like_the_api() {
    let tmp = Arc::new(tempfile::tempdir().unwrap());
    let (file, tokens) = tokens_in(tmp.path(), &[("prom", "metrics")]);
    let app = spawn_with(tmp, |s| {
        s.tokens = Some(file);
        s.demo = true;
    })
    .await;
    let html = app.get("/").await;
    assert_eq!(html.status(), 200, "the page needs no token");
    let html = html.text().await.unwrap();
    let assets: Vec<String> = html
        .split('"')
        .filter(|s| s.starts_with("/assets/"))
        .map(str::to_owned)
        .collect();
    assert!(assets.len() >= 5, "{assets:?}");
    for path in &assets {
        assert_eq!(app.get(path).await.status(), 200, "{path} needs no token");
    }
    assert_eq!(app.get("/assets/0000000000000000/js/main.js").await.status(), 404);
    // A made-up method is refused as on the API: 405 with the route's Allow,
    // without echoing the method and without asking for a token.
    let made_up = format!("BREW{}", "X".repeat(2_000));
    for path in ["/", "/docs", "/docs/openapi.yaml", assets[0].as_str()] {
        for method in [made_up.as_str(), "POST", "DELETE"] {
            let res = app
                .client
                .request(Method::from_bytes(method.as_bytes()).unwrap(), app.url(path))
                .body("x")
                .send()
                .await
                .unwrap();
            assert_eq!(
                res.headers().get("allow").map(|v| v.to_str().unwrap()),
                Some("GET, HEAD"),
                "{path}"
            );
            let body = assert_problem(res, 405, "method_not_allowed").await;
            assert!(!body.to_string().contains("XXXX"), "{path}: the method was echoed");
        }
    }
    // Every asset counts under the one asset route; no file name is a label.
    let metrics = app.text_with("/metrics", &tokens["prom"]).await;
    crate::hardening::assert_closed_labels(&metrics);
    for series in [
        r#"{method="GET",route="/assets/{digest}/{path:.+}",status="200"}"#,
        r#"{method="GET",route="/assets/{digest}/{path:.+}",status="404"}"#,
        r#"{method="other",route="/docs",status="405"}"#,
    ] {
        assert!(metrics.contains(series), "no {series} in\n{metrics}");
    }
    assert!(
        !metrics.contains("leaflet") && !metrics.contains("main.js"),
        "{metrics}"
    );
}

// ---------------------------------------------------------------------------
// A real browser
// ---------------------------------------------------------------------------

/// Chromium and chromedriver, or `None` (skip) outside CI.
fn browser_paths() -> Option<(PathBuf, PathBuf)> {
    let pick = |var: &str, default: &str| PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.to_owned()));
    let chromium = pick("SITREP_CHROMIUM", "/usr/bin/chromium");
    let driver = pick("SITREP_CHROMEDRIVER", "/usr/bin/chromedriver");
    if chromium.exists() && driver.exists() {
        return Some((chromium, driver));
    }
    let msg = format!(
        "the browser test needs {} and {} (apt-get install chromium chromium-driver)",
        chromium.display(),
        driver.display()
    );
    assert!(std::env::var_os("CI").is_none(), "CI is set: {msg}");
    eprintln!("SKIPPED: {msg}");
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// chromedriver as a child process, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start(path: &PathBuf) -> Driver {
        let port = free_port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", path.display()));
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + DRIVER_START;
        loop {
            let up = reqwest::get(format!("{}/status", driver.url)).await;
            if up.is_ok_and(|r| r.status().is_success()) {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer within {DRIVER_START:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver's browser log (console messages, uncaught errors, CSP
/// refusals, failed loads), which W3C WebDriver does not cover.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

/// A browser session on one page, with a screenshot directory.
struct Page {
    client: Client,
    base: String,
    shots: PathBuf,
    _profile: tempfile::TempDir,
}

impl Page {
    async fn open(driver: &Driver, chromium: &PathBuf, base: &str) -> Page {
        let profile = tempfile::tempdir().expect("a profile dir");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!("--window-size={},{}", DESKTOP.0, DESKTOP.1));
        let caps = json!({
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let caps = caps.as_object().unwrap().clone().into_iter().collect();
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .expect("a Chromium session");
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser");
        std::fs::create_dir_all(&shots).expect("target/browser");
        Page {
            client,
            base: base.to_owned(),
            shots,
            _profile: profile,
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// Run `script` (a function body; `arguments` are `args`) in the page.
    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Wait until `script` returns something truthy; returns it.
    async fn until(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + WAIT;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            last = self.js(script, args.clone()).await;
            if !matches!(&last, Value::Null | Value::Bool(false)) && last != json!("") {
                return last;
            }
            tokio::time::sleep(POLL).await;
        }
        self.shot("failure").await;
        panic!("waited {WAIT:?} for: {what} (last: {last})");
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"))
    }

    /// Wait until the element for `css` exists; click it.
    async fn click(&self, css: &str) {
        self.until(
            &format!("{css} to be shown"),
            "const e = document.querySelector(arguments[0]); return !!e && e.getClientRects().length > 0;",
            vec![json!(css)],
        )
        .await;
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// A location's drawn marker: (status, controller, fill).
    async fn marker(&self, id: &str) -> Value {
        self.js(
            "const p = document.querySelector(`path[data-loc=\"${arguments[0]}\"]`);
             return p && {status: p.dataset.status, controller: p.dataset.controller,
                          fill: p.getAttribute('fill'), dash: p.getAttribute('stroke-dasharray')};",
            vec![json!(id)],
        )
        .await
    }

    /// The colour the legend shows for `actor`.
    async fn legend_colour(&self, actor: &str) -> String {
        self.until(
            &format!("a legend entry for {actor}"),
            "const r = [...document.querySelectorAll('.legend-row[data-actor]')]
               .find((r) => r.dataset.actor.split(' ').includes(arguments[0]));
             return r && r.querySelector('circle').getAttribute('fill');",
            vec![json!(actor)],
        )
        .await
        .as_str()
        .expect("a colour")
        .to_owned()
    }

    async fn wait_marker(&self, id: &str, status: &str, controller: &str) -> Value {
        self.until(
            &format!("{id} drawn as {status} {controller}"),
            "const p = document.querySelector(`path[data-loc=\"${arguments[0]}\"]`);
             return p && p.dataset.status === arguments[1] && p.dataset.controller === arguments[2]
               && p.getAttribute('fill');",
            vec![json!(id), json!(status), json!(controller)],
        )
        .await;
        self.marker(id).await
    }

    /// The open panel's facts (each `dt` to its `dd`), once `key` is among them
    /// with a text that starts with `starts` (the panel follows a link without
    /// a reload, so until then it may still show the moment before).
    async fn facts(&self, what: &str, key: &str, starts: &str) -> Value {
        self.until(
            what,
            "const p = document.querySelector('#panel');
             if (p.hidden) return null;
             const out = {};
             for (const dt of p.querySelectorAll('dl.facts dt')) out[dt.textContent] = dt.nextElementSibling.textContent;
             return arguments[0] in out && out[arguments[0]].startsWith(arguments[1]) && out;",
            vec![json!(key), json!(starts)],
        )
        .await
    }

    async fn shot(&self, name: &str) {
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(self.shots.join(format!("{name}.png")), png);
        }
    }

    /// Console errors, uncaught exceptions, CSP refusals and failed loads so far.
    async fn errors(&self) -> Vec<String> {
        let log = self.client.issue_cmd(BrowserLog).await.expect("the browser log");
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// A demo server with tokens, in this process (the token box).
struct Secured {
    address: String,
    handle: sitrep::startup::StopHandle,
    running: tokio::task::JoinHandle<std::io::Result<()>>,
    _tmp: tempfile::TempDir,
}

impl Secured {
    async fn spawn() -> Secured {
        let tmp = tempfile::tempdir().expect("temp dir");
        let (_, hash) = sitrep::auth::new_token();
        let path = tmp.path().join("tokens");
        std::fs::write(&path, format!("rita reader {hash}\n")).expect("tokens file");
        let mut settings = Settings::new(tmp.path().join("data"), "127.0.0.1:0");
        settings.demo = true;
        settings.workers = 2;
        settings.tokens = Some(path);
        let app = Application::build(settings).await.expect("the server starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.stop_handle();
        let running = tokio::spawn(app.run_until_stopped());
        Secured {
            address,
            handle,
            running,
            _tmp: tmp,
        }
    }

    async fn stop(self) {
        self.handle.stop().await;
        self.running.await.expect("server task").expect("server ran");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_can_read_replay_and_report_on_the_map() {
    let Some((chromium, driver_path)) = browser_paths() else {
        return;
    };
    let app = spawn_demo_app().await;
    let driver = Driver::start(&driver_path).await;
    let page = Page::open(&driver, &chromium, &app.address).await;
    read_and_replay(&page).await;
    report(&page, &app).await;
    sources_casualties_and_retractions(&page, &app).await;
    // The docs render the spec the server embeds.
    page.goto("/docs").await;
    page.until(
        "the rendered spec",
        "const t = document.querySelector('.swagger-ui .info .title');
         return t && t.textContent.includes('sitrep API')
           && document.querySelectorAll('.opblock').length >= 10;",
        vec![],
    )
    .await;
    page.shot("docs").await;
    phone(&page).await;
    // The one refusal the test provoked (the bad post) is logged by the
    // browser as a failed load; anything else is an error of the page.
    let errors: Vec<String> = page
        .errors()
        .await
        .into_iter()
        .filter(|e| !(e.contains("/v1/events ") && e.contains("status of 422")))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");

    // The token box: a server with tokens (the real binary, whose tokens a
    // SIGHUP reloads) shows the page, asks for a token, and then reads and
    // follows the log with it.
    let tmp = tempfile::tempdir().expect("temp dir");
    let tokens = tmp.path().join("tokens");
    let reader = tokens_file(&tokens, &[("rita", "reader"), ("ada", "admin")]).remove(0);
    let secured = ServerProcess::start(
        &tmp.path().join("data"),
        &["--demo", "--tokens", tokens.to_str().unwrap()],
    );
    page.client.set_window_size(DESKTOP.0, DESKTOP.1).await.unwrap();
    page.client
        .goto(&format!("{}/#as_of=2024-11-30T12:00:00Z", secured.address))
        .await
        .unwrap();
    page.until(
        "the token box to open",
        "return document.querySelector('#token-dialog').open;",
        vec![],
    )
    .await;
    page.shot("token-box").await;
    page.client
        .find(Locator::Css("#token-input"))
        .await
        .unwrap()
        .send_keys(&reader)
        .await
        .unwrap();
    page.click("#token-save").await;
    page.wait_marker("aleppo", "controlled", "hts").await;
    page.until(
        "the live feed with the token",
        "return document.querySelector('#live').dataset.state === 'live';",
        vec![],
    )
    .await;
    let url = page.client.current_url().await.unwrap();
    assert!(!url.as_str().contains(&reader), "the token is in the URL: {url}");
    let kept = page.js("return sessionStorage.getItem('sitrep.token');", vec![]).await;
    assert_eq!(kept, json!(reader));
    // The token is removed from the tokens file: its feed ends, and the page
    // says so and asks for another token.
    let kept: String = std::fs::read_to_string(&tokens)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("rita "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&tokens, kept).unwrap();
    secured.signal("-HUP");
    page.until(
        "the token box once the token is removed",
        "return document.querySelector('#token-dialog').open
           && document.querySelector('#live').dataset.state === 'refused'
           && document.querySelector('#token-input').value === ''
           && document.querySelector('#token-why').textContent.includes('not accepted');",
        vec![],
    )
    .await;
    page.shot("token-removed").await;
    // The 401s that made the page ask for a token are the only errors allowed here.
    let errors: Vec<String> = page
        .errors()
        .await
        .into_iter()
        .filter(|e| !e.contains("status of 401"))
        .collect();
    assert!(errors.is_empty(), "console errors with tokens: {errors:#?}");

    page.client.close().await.unwrap();
    drop(secured);
    app.stop().await;
}

/// Section 10 on the page, with the demo's own members: since with its
/// precision and whether it is settled, casualty ranges with an unbounded high,
/// Aleppo's polygon, Arabic names and aliases in the panel and the places
/// search, the form's precision and estimate inputs with their field errors,
/// and an amendment in the history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_precision_estimates_names_and_shapes() {
    let Some((chromium, driver_path)) = browser_paths() else {
        return;
    };
    let app = spawn_demo_app().await;
    let driver = Driver::start(&driver_path).await;
    let page = Page::open(&driver, &chromium, &app.address).await;

    // Aleppo changed hands on 30 November, known to the day: at noon that day
    // the change is not settled yet; on 1 December it is.
    page.goto("/#as_of=2024-11-30T12:00:00Z&loc=aleppo").await;
    let facts = page.facts("the panel's since and settled", "Settled", "not yet").await;
    assert_eq!(facts["Since"], json!("30 Nov 2024 (to the day)"), "{facts}");
    assert!(facts["Settled"].as_str().unwrap().starts_with("not yet"), "{facts}");
    // Its Arabic name and its alias.
    let names = page
        .until(
            "the names in the panel",
            "const p = document.querySelector('#panel');
             const ar = p.querySelector('.names [lang=ar]');
             return ar && {ar: ar.textContent, dir: ar.getAttribute('dir'),
                           aliases: p.querySelector('.aliases')?.textContent ?? ''};",
            vec![],
        )
        .await;
    assert_eq!(names["ar"], json!("حلب"), "{names}");
    assert_eq!(names["dir"], json!("auto"), "{names}");
    assert!(names["aliases"].as_str().unwrap().contains("Halab"), "{names}");
    // The city is drawn as its shape: a polygon of straight edges, many pixels
    // wide, not a round marker.
    let shape = page
        .until(
            "Aleppo drawn as its polygon",
            "const p = document.querySelector('path[data-loc=aleppo]');
             if (!p) return null;
             const d = p.getAttribute('d') || '';
             const r = p.getBoundingClientRect();
             return {geometry: p.dataset.geometry, arcs: /a/i.test(d), corners: (d.match(/L/g) || []).length,
                     w: r.width, h: r.height, fill: p.getAttribute('fill')};",
            vec![],
        )
        .await;
    assert_eq!(shape["geometry"], json!("Polygon"), "{shape}");
    assert_eq!(shape["arcs"], json!(false), "a polygon has no arcs: {shape}");
    assert!(shape["corners"].as_u64().unwrap() >= 3, "{shape}");
    // Wider than a city's round marker (radius 9 px).
    assert!(
        shape["w"].as_f64().unwrap() > 24.0 && shape["h"].as_f64().unwrap() > 24.0,
        "{shape}"
    );
    assert_eq!(shape["fill"], json!(page.legend_colour("hts").await), "{shape}");
    page.shot("polygon").await;

    page.goto("/#as_of=2024-12-01T00:00:00Z&loc=aleppo").await;
    let facts = page.facts("settled on 1 December", "Settled", "yes").await;
    assert_eq!(facts["Settled"], json!("yes"), "{facts}");
    assert_eq!(facts["Since"], json!("30 Nov 2024 (to the day)"), "{facts}");

    // The demo's army report gives lower bounds only: no upper bound.
    page.goto("/#loc=northwest-syria").await;
    let facts = page.facts("the demo's casualty range", "Killed", "at least").await;
    assert_eq!(facts["Killed"], json!("at least 0"), "{facts}");
    assert_eq!(facts["Wounded"], json!("at least 0"), "{facts}");
    // A bounded range with its best estimate, and an unbounded one.
    let (status, body) = app
        .post_json(&json!({"type": "casualties_reported", "location": "aleppo-south",
            "occurred_at": "2024-11-30T00:00:00Z", "occurred_precision": "day", "place_precision": "near",
            "source": {"name": "Field hospital", "kind": "monitor"},
            "data": {"killed_low": 12, "wounded": 5, "wounded_low": 3, "wounded_high": 9}}))
        .await;
    assert_eq!(status, 201, "{body}");
    page.goto("/#loc=aleppo-south").await;
    let facts = page
        .facts("aleppo-south's casualty ranges", "Killed", "at least 12")
        .await;
    assert_eq!(facts["Killed"], json!("at least 12"), "{facts}");
    assert_eq!(facts["Wounded"], json!("5 (3–9)"), "{facts}");
    let item = page
        .until(
            "the report's precisions in the history",
            "const li = document.querySelector(`#panel .history li[data-seq=\"${arguments[0]}\"]`);
             return li && li.textContent;",
            vec![body["seq"].clone()],
        )
        .await;
    let item = item.as_str().unwrap();
    assert!(
        item.contains("30 Nov 2024") && item.contains("in the vicinity"),
        "{item}"
    );

    // An amendment: an Arabic name, seen in the history and the panel.
    let (status, body) = app
        .post_json(&json!({"type": "location_amended", "location": "aleppo-south",
            "data": {"names": {"ar": "جنوب حلب"}, "aliases": ["South Aleppo"]}}))
        .await;
    assert_eq!(status, 201, "{body}");
    let amended = page
        .until(
            "the amendment in the history and the new name in the panel",
            "const p = document.querySelector('#panel');
             const li = p.querySelector(`.history li[data-seq=\"${arguments[0]}\"]`);
             const ar = p.querySelector('.names [lang=ar]');
             return li && ar && {item: li.textContent, ar: ar.textContent};",
            vec![body["seq"].clone()],
        )
        .await;
    assert_eq!(amended["ar"], json!("جنوب حلب"), "{amended}");
    let item = amended["item"].as_str().unwrap();
    assert!(
        item.contains("Location amended") && item.contains("names") && item.contains("aliases"),
        "{item}"
    );

    // The places search finds by an Arabic name (with or without its harakat)
    // and by an alias, as the API's `?q=` does.
    for (query, want) in [
        ("جنوب", vec!["aleppo-south"]),
        (
            "حَلَب",
            vec![
                "aleppo",
                "aleppo-governorate",
                "aleppo-international-airport",
                "aleppo-south",
            ],
        ),
        ("halab", vec!["aleppo"]),
        ("South Aleppo", vec!["aleppo-south"]),
    ] {
        let filter = page.find("#places-filter").await;
        filter.clear().await.unwrap();
        filter.send_keys(query).await.unwrap();
        let found = page
            .until(
                &format!("the places found by {query}"),
                "const ids = [...document.querySelectorAll('#places-list button.place')].map((b) => b.dataset.loc).sort();
                 return JSON.stringify(ids) === JSON.stringify(arguments[0]) && ids;",
                vec![json!(want)],
            )
            .await;
        assert_eq!(found, json!(want), "{query}");
    }
    page.find("#places-filter").await.clear().await.unwrap();

    // The form: a time not at the start of its day and a low above the best
    // estimate are refused, each shown by its field; fixed, the post lands.
    page.click("#report-open").await;
    page.find("#f-type")
        .await
        .select_by_value("casualties_reported")
        .await
        .unwrap();
    page.find("#f-location")
        .await
        .select_by_value("aleppo-south")
        .await
        .unwrap();
    page.find("#f-occurred-precision")
        .await
        .select_by_value("day")
        .await
        .unwrap();
    page.find("#f-place-precision")
        .await
        .select_by_value("region")
        .await
        .unwrap();
    page.js(
        "document.querySelector('#f-occurred').value = '2024-11-30T05:00:00';",
        vec![],
    )
    .await;
    page.find("#f-data-killed").await.send_keys("3").await.unwrap();
    page.find("#f-data-killed_low").await.send_keys("5").await.unwrap();
    page.find("#f-source-name")
        .await
        .send_keys("Civil defence")
        .await
        .unwrap();
    page.click("#report-submit").await;
    let errors = page
        .until(
            "the field errors for the time and the low estimate",
            "const at = (f) => document.querySelector(`[data-error-for=\"${f}\"]`)?.textContent;
             return at('occurred_at') && at('data.killed_low') && {occurred_at: at('occurred_at'),
               killed_low: at('data.killed_low'),
               invalid: document.querySelector('#f-data-killed_low').getAttribute('aria-invalid')};",
            vec![],
        )
        .await;
    assert!(
        errors["occurred_at"].as_str().unwrap().contains("start of a day"),
        "{errors}"
    );
    assert!(
        errors["killed_low"].as_str().unwrap().contains("at most killed"),
        "{errors}"
    );
    assert_eq!(errors["invalid"], json!("true"), "{errors}");
    page.shot("form-precision-errors").await;
    page.js(
        "document.querySelector('#f-occurred').value = '2024-11-30T00:00:00';",
        vec![],
    )
    .await;
    let low = page.find("#f-data-killed_low").await;
    low.clear().await.unwrap();
    low.send_keys("2").await.unwrap();
    page.find("#f-data-killed_high").await.send_keys("4").await.unwrap();
    page.click("#report-submit").await;
    // Back through the live feed: 12 and more, plus 2 to 4, is still unbounded.
    let stored = page
        .until(
            "the posted report in the history",
            "const li = [...document.querySelectorAll('#panel .history li')]
               .find((l) => l.textContent.includes('Civil defence'));
             return li && li.textContent;",
            vec![],
        )
        .await;
    let stored = stored.as_str().unwrap();
    assert!(
        stored.contains("30 Nov 2024") && stored.contains("only the wider area is known") && stored.contains("(2–4)"),
        "{stored}"
    );
    let facts = page
        .facts("the casualties after the post", "Killed", "at least 14")
        .await;
    assert_eq!(facts["Killed"], json!("at least 14"), "{facts}");

    let errors: Vec<String> = page
        .errors()
        .await
        .into_iter()
        .filter(|e| !(e.contains("/v1/events ") && e.contains("status of 422")))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    page.client.close().await.unwrap();
    app.stop().await;
}

async fn read_and_replay(page: &Page) {
    // A link with `as_of`: Aleppo held by HTS on 30 November, in HTS's colour.
    page.goto("/#as_of=2024-11-30T12:00:00Z").await;
    let aleppo = page.wait_marker("aleppo", "controlled", "hts").await;
    let hts = page.legend_colour("hts").await;
    assert_eq!(aleppo["fill"], json!(hts), "Aleppo is drawn in HTS's colour");
    // The army's withdrawal was the army's own claim: drawn dashed.
    assert!(aleppo["dash"].is_string(), "a claimed status is dashed: {aleppo}");
    let label = page
        .js(
            "return [...document.querySelectorAll('.loc-label')].map((l) => l.textContent);",
            vec![],
        )
        .await;
    assert!(label.as_array().unwrap().contains(&json!("Aleppo")), "{label}");
    page.until(
        "the timeline",
        "return document.documentElement.dataset.timeline === 'ready';",
        vec![],
    )
    .await;
    page.until(
        "the basemap",
        "return !!document.documentElement.dataset.basemap;",
        vec![],
    )
    .await;
    page.shot("aleppo-30-nov").await;

    // 29 November: contested, hatched in the colours of both.
    page.goto("/#as_of=2024-11-29T12:00:00Z").await;
    let aleppo = page.wait_marker("aleppo", "contested", "").await;
    let fill = aleppo["fill"].as_str().unwrap().to_owned();
    assert!(fill.starts_with("url(#hatch"), "contested is hatched: {fill}");
    let saa = page.legend_colour("saa").await;
    assert_ne!(hts, saa, "HTS and the army look different");
    let stripes = page
        .js(
            "return [...document.querySelector(arguments[0]).querySelectorAll('rect')].map((r) => r.getAttribute('fill'));",
            vec![json!(fill.trim_start_matches("url(").trim_end_matches(')'))],
        )
        .await;
    assert_eq!(
        stripes,
        json!([hts, saa]),
        "the stripes are HTS's and the army's colours"
    );
    page.until(
        "a contested legend entry",
        "return !!document.querySelector('.legend-row[data-status=contested]');",
        vec![],
    )
    .await;
    page.shot("aleppo-29-nov").await;

    // Step forward to the next development (30 November, 00:00): held by HTS.
    page.click("#tl-fwd").await;
    page.wait_marker("aleppo", "controlled", "hts").await;
    page.until(
        "the date and the URL to follow the step",
        "return document.querySelector('#tl-date').textContent === '30 Nov 2024, 00:00 UTC'
           && location.hash.includes('as_of=2024-11-30T00:00:00Z');",
        vec![],
    )
    .await;
    // And back by keyboard, on the slider itself.
    page.client
        .find(Locator::Css("#tl-slider"))
        .await
        .unwrap()
        .send_keys(&char::from(fantoccini::key::Key::Left).to_string())
        .await
        .unwrap();
    page.wait_marker("aleppo", "contested", "").await;
    // Play runs the moments forward by itself; pause stops it.
    page.click("#tl-play").await;
    page.wait_marker("aleppo", "controlled", "hts").await;
    page.click("#tl-play").await;
    page.until(
        "play to pause",
        "return document.querySelector('#tl-play').getAttribute('aria-pressed') === 'false';",
        vec![],
    )
    .await;

    // As the log knew it at seq 21 (before the army's withdrawal was recorded),
    // 30 November was still contested.
    page.goto("/#as_of=2024-11-30T12:00:00Z&at_seq=21").await;
    page.wait_marker("aleppo", "contested", "").await;
    page.until(
        "the log position to show",
        "return document.querySelector('#seq-label').textContent.startsWith('seq 21 of 32');",
        vec![],
    )
    .await;
    page.click("#seq-latest").await;
    page.wait_marker("aleppo", "controlled", "hts").await;

    // Compare 29 and 30 November: Aleppo is listed and ringed as changed.
    page.goto("/#as_of=2024-11-30T12:00:00Z&cmp=1&cmp_as_of=2024-11-29T12:00:00Z")
        .await;
    page.until(
        "Aleppo listed as changed",
        "const li = document.querySelector('#compare-list li[data-loc=aleppo]');
         return li && !document.querySelector('#compare').hidden && li.textContent.includes('→')
           && !!document.querySelector('path[data-changed=aleppo]');",
        vec![],
    )
    .await;
    page.shot("compare").await;

    // By keyboard: filter the places, open one with Enter, close it with Escape.
    page.goto("/#as_of=2024-11-30T12:00:00Z").await;
    page.find("#places-filter").await.send_keys("airport").await.unwrap();
    let enter = char::from(fantoccini::key::Key::Enter).to_string();
    page.until(
        "the filtered list",
        "return document.querySelectorAll('#places-list button.place').length === 1;",
        vec![],
    )
    .await;
    page.find("button.place[data-loc=aleppo-international-airport]")
        .await
        .send_keys(&enter)
        .await
        .unwrap();
    page.until(
        "the airport's panel, focused",
        "const p = document.querySelector('#panel');
         return !p.hidden && p.textContent.includes('Aleppo International Airport')
           && document.activeElement.id === 'panel-title' && p.textContent.includes('closed');",
        vec![],
    )
    .await;
    let escape = char::from(fantoccini::key::Key::Escape).to_string();
    page.find("#panel-title").await.send_keys(&escape).await.unwrap();
    page.until(
        "the panel to close",
        "return document.querySelector('#panel').hidden;",
        vec![],
    )
    .await;
    page.find("#places-filter").await.clear().await.unwrap();

    // The panel: open it by clicking the marker; the change and its source.
    page.goto("/#as_of=2024-11-30T12:00:00Z").await;
    page.wait_marker("aleppo", "controlled", "hts").await;
    page.click("path[data-loc=aleppo]").await;
    let text = page
        .until(
            "the panel with the source",
            "const p = document.querySelector('#panel');
             return !p.hidden && p.textContent.includes('What changed it') && p.textContent;",
            vec![],
        )
        .await;
    let text = text.as_str().unwrap();
    for want in [
        "Aleppo",
        "Held by Hay'at Tahrir al-Sham",
        "Forces withdrew",
        "Syrian army general command",
        "claim by Syrian Arab Army",
        "Subdivisions (3)",
    ] {
        assert!(text.contains(want), "the panel lacks {want:?}:\n{text}");
    }
    assert!(
        page.js("return location.hash;", vec![])
            .await
            .as_str()
            .unwrap()
            .contains("loc=aleppo"),
        "the URL holds the open panel"
    );
    page.shot("panel").await;
}

async fn report(page: &Page, app: &TestApp) {
    // Now, live: the army re-establishes control, posted through the form.
    page.goto("/#loc=aleppo").await;
    page.wait_marker("aleppo", "controlled", "hts").await;
    page.until(
        "the live feed",
        "return document.querySelector('#live').dataset.state === 'live';",
        vec![],
    )
    .await;
    // A mark that a reload would wipe.
    page.js("window.notReloaded = true;", vec![]).await;

    // First a bad post: no source name. The server's message sits by the field.
    page.click("#report-open").await;
    page.find("#f-type")
        .await
        .select_by_value("control_established")
        .await
        .unwrap();
    page.find("#f-location").await.select_by_value("aleppo").await.unwrap();
    page.find("#f-data-actor").await.select_by_value("saa").await.unwrap();
    page.click("#report-submit").await;
    let error = page
        .until(
            "the field error for the source name",
            "return document.querySelector('[data-error-for=\"source.name\"]').textContent;",
            vec![],
        )
        .await;
    assert_eq!(error, json!("must not be empty"));
    assert_eq!(
        page.js(
            "return document.querySelector('#f-source-name').getAttribute('aria-invalid');",
            vec![]
        )
        .await,
        json!("true")
    );
    page.shot("form-error").await;

    // Fixed and posted: the marker changes when the event comes back on the feed.
    page.find("#f-source-name")
        .await
        .send_keys("Witness in Aleppo")
        .await
        .unwrap();
    page.find("#f-source-kind")
        .await
        .select_by_value("witness")
        .await
        .unwrap();
    page.js(
        "document.querySelector('#f-occurred').value = '2024-12-01T00:00:00';",
        vec![],
    )
    .await;
    page.click("#report-submit").await;
    let aleppo = page.wait_marker("aleppo", "controlled", "saa").await;
    assert_eq!(aleppo["fill"], json!(page.legend_colour("saa").await));
    // Someone else posts through the API: it arrives too, without a reload.
    let (status, body) = app
        .post_json(
            &json!({"type": "forces_entered", "location": "aleppo", "occurred_at": "2024-12-02T00:00:00Z",
                           "source": {"name": "Reuters", "kind": "news_agency"}, "data": {"actor": "hts"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    page.wait_marker("aleppo", "contested", "").await;
    page.until(
        "the live list to show the post",
        "return document.querySelector('#feed-list').textContent.includes('forces entered');",
        vec![],
    )
    .await;
    assert_eq!(
        page.js("return window.notReloaded === true;", vec![]).await,
        json!(true)
    );
    page.shot("live").await;
}

async fn sources_casualties_and_retractions(page: &Page, app: &TestApp) {
    let post = |body: Value| async move {
        let (status, receipt) = app.post_json(&body).await;
        assert_eq!(status, 201, "{receipt}");
        receipt
    };
    // A graded source with a link behind a change of control.
    post(
        json!({"type": "control_established", "location": "aleppo-international-airport",
                "occurred_at": "2024-12-02T00:00:00Z", "data": {"actor": "hts"},
                "source": {"name": "Monitor desk", "kind": "monitor", "claimant": "hts",
                           "reliability": "B", "credibility": 2,
                           "url": "https://example.org/reports/airport"}}),
    )
    .await;
    // Casualties, and a report that is then retracted.
    post(
        json!({"type": "casualties_reported", "location": "aleppo", "occurred_at": "2024-12-02T01:00:00Z",
                "source": {"name": "Hospital count", "kind": "monitor"},
                "data": {"killed": 12, "wounded": 30}}),
    )
    .await;
    let rumour = post(
        json!({"type": "report", "location": "aleppo", "occurred_at": "2024-12-02T02:00:00Z",
                             "source": {"name": "Rumour", "kind": "other"},
                             "data": {"summary": "The citadel changed hands"}}),
    )
    .await;
    post(
        json!({"type": "event_retracted", "location": "aleppo", "occurred_at": "2024-12-02T03:00:00Z",
                "source": {"name": "Desk", "kind": "other"},
                "data": {"event_id": rumour["id"], "reason": "no second source"}}),
    )
    .await;

    page.goto("/#loc=aleppo-international-airport").await;
    let source = page
        .until(
            "the graded source and its link",
            "const s = document.querySelector('#panel .changed-by .source');
             const a = s && s.querySelector('a');
             return s && a && {text: s.textContent, grading: s.querySelector('abbr')?.textContent,
                               href: a.getAttribute('href'), rel: a.getAttribute('rel')};",
            vec![],
        )
        .await;
    assert_eq!(source["grading"], json!("B2"), "{source}");
    assert_eq!(source["href"], json!("https://example.org/reports/airport"));
    assert!(source["rel"].as_str().unwrap().contains("noopener"), "{source}");
    let text = source["text"].as_str().unwrap();
    assert!(
        text.contains("Monitor desk") && text.contains("claim by Hay'at Tahrir al-Sham"),
        "{source}"
    );

    page.goto("/#loc=aleppo").await;
    let panel = page
        .until(
            "the casualties and the retraction",
            "const p = document.querySelector('#panel');
             const del = p.querySelector('.history li.retracted del');
             const killed = p.querySelector('[data-casualties=killed]');
             return del && killed && {killed: killed.textContent,
               wounded: p.querySelector('[data-casualties=wounded]').textContent,
               struck: del.textContent,
               note: p.querySelector('.history li.retracted .retraction-note').textContent};",
            vec![],
        )
        .await;
    assert_eq!(panel["killed"], json!("12"), "{panel}");
    assert_eq!(panel["wounded"], json!("30"), "{panel}");
    assert!(
        panel["struck"].as_str().unwrap().contains("The citadel changed hands"),
        "{panel}"
    );
    assert!(panel["note"].as_str().unwrap().contains("no second source"), "{panel}");
    page.shot("panel-sources").await;
}

async fn phone(page: &Page) {
    page.client.set_window_size(PHONE.0, PHONE.1).await.unwrap();
    page.goto("/#as_of=2024-11-30T12:00:00Z&loc=aleppo").await;
    page.wait_marker("aleppo", "controlled", "hts").await;
    page.until(
        "the basemap",
        "return !!document.documentElement.dataset.basemap;",
        vec![],
    )
    .await;
    let fits = page
        .until(
            "the page to fit a phone",
            "const w = document.documentElement.clientWidth;
             const map = document.querySelector('#map').getBoundingClientRect();
             return !document.querySelector('#panel').hidden && map.width > 0 && map.height > 200
               && document.documentElement.scrollWidth <= w && {w, map: map.width};",
            vec![],
        )
        .await;
    assert!(fits["w"].as_f64().unwrap() <= f64::from(PHONE.0), "{fits}");
    page.shot("phone").await;
    page.js("document.querySelector('#panel').scrollIntoView();", vec![])
        .await;
    page.shot("phone-panel").await;
    // The reporter's form fits the phone too.
    page.js("window.scrollTo(0, 0);", vec![]).await;
    page.click("#report-open").await;
    let form = page
        .until(
            "the form on a phone",
            "const d = document.querySelector('#report');
             const r = d.getBoundingClientRect();
             return d.open && {left: r.left, right: r.right, w: document.documentElement.clientWidth,
                               inner: d.scrollWidth <= d.clientWidth};",
            vec![],
        )
        .await;
    page.shot("phone-report").await;
    assert!(
        form["left"].as_f64().unwrap() >= 0.0
            && form["right"].as_f64().unwrap() <= form["w"].as_f64().unwrap()
            && form["inner"] == json!(true),
        "the form does not fit a phone: {form}"
    );
    page.click("#report [data-close]").await;
}

// ---------------------------------------------------------------------------
// Figures (not a test: prints what it measures)
// ---------------------------------------------------------------------------

/// Locations in the large log of the figures.
const LARGE_LOG_LOCATIONS: usize = 10_000;
/// Events a batch post carries (the API's largest batch).
const BATCH: usize = 1000;

/// Page weight and time to first map render, in a cold headless Chromium, on
/// the demo and on a log of 10,000 located places. Run against the release
/// binary:
///
/// ```sh
/// cargo build --release
/// SITREP_BIN=target/release/sitrep cargo test --test api map_figures -- --ignored --nocapture
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints figures; run by hand"]
async fn map_figures() {
    let Some((chromium, driver_path)) = browser_paths() else {
        return;
    };
    let bin = std::env::var("SITREP_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_sitrep").to_owned());
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Command::new(&bin)
        .args([
            "serve",
            "--demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(tmp.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sitrep starts");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + DRIVER_START;
    while client.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(POLL).await;
    }
    let driver = Driver::start(&driver_path).await;
    println!("server: {bin}");
    measure(&driver, &chromium, &base, "demo").await;

    let started = Instant::now();
    let per_batch = BATCH / 2;
    for b in 0..LARGE_LOG_LOCATIONS / per_batch {
        let mut events = Vec::with_capacity(BATCH);
        for i in b * per_batch..(b + 1) * per_batch {
            let id = format!("place-{i:05}");
            // A grid over Syria's extent, so points crowd as villages do.
            let (lat, lon) = (32.5 + (i / 100) as f64 * 0.045, 36.0 + (i % 100) as f64 * 0.06);
            events.push(json!({"type": "location_registered", "location": id,
                "data": {"name": format!("Place {i}"), "kind": if i % 10 == 0 { "town" } else { "village" },
                         "lat": lat, "lon": lon}}));
            events.push(
                json!({"type": "control_established", "location": id, "occurred_at": "2024-11-30T00:00:00Z",
                "source": {"name": "Figures", "kind": "other"},
                "data": {"actor": if i % 3 == 0 { "saa" } else { "hts" }}}),
            );
        }
        let res = client
            .post(format!("{base}/v1/events"))
            .json(&events)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    }
    println!(
        "registered {LARGE_LOG_LOCATIONS} located places (and a control event each) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    measure(&driver, &chromium, &base, "10k").await;
    let _ = server.kill();
    let _ = server.wait();
}

async fn measure(driver: &Driver, chromium: &PathBuf, base: &str, name: &str) {
    let page = Page::open(driver, chromium, base).await;
    page.goto("/").await;
    page.until(
        "the first render",
        "return document.documentElement.dataset.firstRender;",
        vec![],
    )
    .await;
    page.until(
        "the basemap",
        "return document.documentElement.dataset.basemap;",
        vec![],
    )
    .await;
    page.until(
        "the timeline",
        "return document.documentElement.dataset.timeline;",
        vec![],
    )
    .await;
    let f = page
        .js(
            "const nav = performance.getEntriesByType('navigation')[0];
             const res = performance.getEntriesByType('resource');
             const assets = res.filter((r) => r.name.includes('/assets/'));
             const sum = (list, k) => list.reduce((n, r) => n + r[k], 0);
             return {
               firstRender: Number(document.documentElement.dataset.firstRender),
               read: Math.round(performance.getEntriesByName('sitrep:statuses-read')[0].startTime),
               basemap: Number(document.documentElement.dataset.basemap),
               places: document.querySelectorAll('path[data-loc]').length,
               labels: document.querySelectorAll('.loc-label').length,
               pageTransfer: nav.transferSize + sum(assets, 'transferSize'),
               pageDecoded: nav.decodedBodySize + sum(assets, 'decodedBodySize'),
               apiTransfer: sum(res.filter((r) => r.name.includes('/v1/')), 'transferSize'),
             };",
            vec![],
        )
        .await;
    let kb = |k: &str| f[k].as_f64().unwrap() / 1024.0;
    println!(
        "{name}: page {:.0} KB transferred (gzip; {:.0} KB decoded), API {:.0} KB; {} places drawn, {} labels; \
         first map render (statuses drawn) {} ms (statuses read at {} ms), basemap drawn {} ms after navigation start",
        kb("pageTransfer"),
        kb("pageDecoded"),
        kb("apiTransfer"),
        f["places"],
        f["labels"],
        f["firstRender"],
        f["read"],
        f["basemap"]
    );
    page.shot(&format!("figures-{name}")).await;
    page.client.clone().close().await.unwrap();
}
