//! The self-contained HTML report, opened in headless Chromium (Debian `chromium`,
//! installed by scripts/install-prereqs.sh): the script runs, the matrix has the expected
//! rows and columns and pages at 100 rows, filtering to failures works, and the page makes
//! no network request (Chromium's own network log is checked). Screenshots are kept under
//! the target directory as test artifacts.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{self, TempProject, promptlab, text};

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!(
        "no headless Chromium found: run scripts/install-prereqs.sh (Debian package `chromium`)"
    );
}

/// Chromium, headless and offline (a dead proxy catches anything that tries to leave),
/// with its network log in `netlog`.
fn headless(args: &[String], netlog: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--proxy-server=127.0.0.1:9",
            "--window-size=1280,1000",
            "--virtual-time-budget=5000",
            &format!("--user-data-dir={}", profile.path().display()),
            &format!("--log-net-log={}", netlog.display()),
        ])
        .args(args)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artifacts/html-report");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// URLs the page itself requested (a page opened from a file has a `file://` network
/// isolation key; Chromium's own background services, which this test cannot switch off
/// entirely, have none), other than files.
fn requests(netlog: &Path) -> Vec<String> {
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(netlog).expect("net log written"))
            .expect("net log is JSON");
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].clone();
    let mut urls: Vec<String> = Vec::new();
    for event in log["events"].as_array().into_iter().flatten() {
        let params = &event["params"];
        let from_page = params["network_isolation_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("file://"));
        if event["type"] == start_job
            && from_page
            && let Some(url) = params["url"].as_str()
            && !url.starts_with("file://")
            && !urls.iter().any(|u| u == url)
        {
            urls.push(url.to_string());
        }
    }
    urls
}

/// The request check itself: a page that does load something is caught.
#[test]
fn the_request_check_catches_a_page_that_loads_something() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page.html");
    std::fs::write(
        &page,
        "<html><body><img src=\"http://127.0.0.1:9/canary.png\"><script>fetch('http://127.0.0.1:9/fetched')</script></body></html>",
    )
    .unwrap();
    let netlog = dir.path().join("netlog.json");
    headless(
        &["--dump-dom".into(), format!("file://{}", page.display())],
        &netlog,
    );
    assert_eq!(
        requests(&netlog),
        [
            "http://127.0.0.1:9/canary.png",
            "http://127.0.0.1:9/fetched"
        ]
    );
}

#[test]
fn the_report_opens_offline_pages_and_filters_in_a_real_browser() {
    let project = TempProject::new();
    project.write(
        "prompts/echo.yaml",
        "name: echo\ncompletion: '{{ answer }}'\n",
    );
    project.write(
        "prompts/shout.yaml",
        "name: shout\ncompletion: '{{ answer | upper }}'\n",
    );
    // 150 cases, 2 columns: every fifth answer is wrong for both, and `shout` also fails
    // every case whose answer has a lowercase "yes" expected.
    let mut cases = String::new();
    for i in 0..150 {
        let answer = if i % 5 == 0 { "no" } else { "yes" };
        cases.push_str(&format!(
            "  - id: c{i:03}\n    vars: {{answer: \"{answer} <b>&</b> https://example.com/{i}\"}}\n    assert: [{{type: contains, value: \"yes\"}}]\n"
        ));
    }
    project.write(
        "eval-sets/many.yaml",
        &format!("prompts: [echo, shout]\nmodels: [echo]\ncases:\n{cases}"),
    );
    let out = promptlab(
        &[
            "eval",
            "eval-sets/many.yaml",
            "--no-store",
            "-o",
            "report.html",
            "--quiet",
        ],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = project.root().join("report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("Content-Security-Policy"));
    assert!(
        !html.contains("<script src") && !html.contains("<link"),
        "external resource"
    );
    assert!(!html.contains("<b>&</b>"), "case text is escaped");

    let url = format!("file://{}", report.display());
    let netlog = project.root().join("netlog.json");
    let dom = headless(&["--dump-dom".into(), url.clone()], &netlog);
    assert!(
        dom.contains("data-ready=\"1\""),
        "the script ran: {dom:.2000}"
    );
    // Page one of two: 100 case rows, each with the case cell and two column cells.
    assert_eq!(dom.matches("class=\"case-row\"").count(), 100);
    assert!(
        dom.contains("150 of 150 cases · page 1 of 2"),
        "{dom:.3000}"
    );
    assert_eq!(
        dom.matches("<th>").count(),
        3 + 8,
        "matrix and summary headers"
    );
    assert_eq!(
        requests(&netlog),
        Vec::<String>::new(),
        "the page made requests"
    );

    // Filtered to failures: 30 wrong answers fail in both columns, and `shout` fails the
    // other 120 too (its output is upper case), so all 150 cases have a failure; filtered
    // to disagreements, exactly the 120 where only `shout` fails.
    let dom = headless(
        &["--dump-dom".into(), format!("{url}#filter=failures")],
        &netlog,
    );
    assert!(dom.contains("150 of 150 cases"), "{dom:.3000}");
    let dom = headless(
        &["--dump-dom".into(), format!("{url}#filter=disagreements")],
        &netlog,
    );
    assert!(
        dom.contains("120 of 150 cases · page 1 of 2"),
        "{dom:.3000}"
    );
    assert_eq!(dom.matches("class=\"case-row\"").count(), 100);
    assert!(
        !dom.contains("data-case=\"0\""),
        "case c000 fails in both columns"
    );
    assert_eq!(requests(&netlog), Vec::<String>::new());

    // Sorted by the first column's score, worst first: its 30 failures (c000, c005, …)
    // lead; descending, its passes; the header shows which way.
    let dom = headless(&["--dump-dom".into(), format!("{url}#sort=1")], &netlog);
    let order: Vec<&str> = dom
        .split("class=\"case-row\" data-case=\"")
        .skip(1)
        .take(3)
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert_eq!(order, ["0", "5", "10"], "{dom:.3000}");
    assert!(dom.contains("aria-sort=\"ascending\""), "{dom:.3000}");
    let dom = headless(&["--dump-dom".into(), format!("{url}#sort=-1")], &netlog);
    let first = dom
        .split("class=\"case-row\" data-case=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next());
    assert_eq!(first, Some("1"), "{dom:.3000}");

    // A case opened side by side: both outputs, the second as a word diff against the
    // first, and the failing column's reason.
    let dom = headless(&["--dump-dom".into(), format!("{url}#case=c003")], &netlog);
    assert!(dom.contains("Case c003"), "{dom:.3000}");
    assert!(
        dom.contains("<del>yes</del><ins>YES</ins>"),
        "word diff: {dom:.6000}"
    );
    assert!(
        dom.contains("contains: expected output to contain"),
        "{dom:.6000}"
    );

    let shots = artifacts();
    for (name, fragment) in [
        ("matrix", ""),
        ("disagreements", "#filter=disagreements"),
        ("side-by-side", "#case=c003"),
    ] {
        let png = shots.join(format!("{name}.png"));
        headless(
            &[
                format!("--screenshot={}", png.display()),
                format!("{url}{fragment}"),
            ],
            &netlog,
        );
        assert!(
            std::fs::metadata(&png)
                .map(|m| m.len() > 10_000)
                .unwrap_or(false)
        );
    }
}

/// Issue 21: `#case=6` opened the seventh case (an index counted from 0, where the page
/// shows ids counted from 1), and clicking a case did not put it in the URL. A click is
/// made by a script added after the report's own (the page allows inline scripts only).
#[test]
fn case_links_name_the_case_id_and_clicks_update_the_url() {
    let project = TempProject::new();
    project.write(
        "prompts/echo.yaml",
        "name: echo\ncompletion: '{{ answer }}'\n",
    );
    let cases: String = (1..=8)
        .map(|i| format!("  - vars: {{answer: \"answer {i}\"}}\n    assert: [{{type: contains, value: \"3\"}}]\n"))
        .collect();
    project.write(
        "eval-sets/eight.yaml",
        &format!("prompts: [echo]\nmodels: [echo]\ncases:\n{cases}"),
    );
    let out = promptlab(
        &[
            "eval",
            "eval-sets/eight.yaml",
            "--no-store",
            "-o",
            "report.html",
            "--quiet",
        ],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = project.root().join("report.html");
    let url = format!("file://{}", report.display());
    let netlog = project.root().join("netlog.json");
    let title = |dom: &str| {
        dom.split("id=\"detail-title\">")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .unwrap_or_default()
            .to_string()
    };
    let dom = headless(&["--dump-dom".into(), format!("{url}#case=6")], &netlog);
    assert_eq!(title(&dom), "Case 6 · answer 6", "{dom:.3000}");

    let html = std::fs::read_to_string(&report).unwrap();
    let clicked = project.root().join("clicked.html");
    let click = |selector: &str| {
        std::fs::write(
            &clicked,
            html.replace(
                "</body>",
                &format!(
                    "<script>document.querySelector('{selector}').click(); document.body.setAttribute('data-hash', location.hash);</script></body>"
                ),
            ),
        )
        .unwrap();
    };
    let clicked_url = format!("file://{}", clicked.display());
    click("tr.case-row[data-case=\"2\"]");
    let dom = headless(&["--dump-dom".into(), clicked_url.clone()], &netlog);
    assert!(dom.contains("data-hash=\"#case=3\""), "{dom:.3000}");
    assert_eq!(title(&dom), "Case 3 · answer 3");
    // The filter and the sort stay in the URL beside the case (case 2 fails, so the
    // failures filter shows it).
    click("tr.case-row[data-case=\"1\"]");
    let dom = headless(
        &[
            "--dump-dom".into(),
            format!("{clicked_url}#filter=failures&sort=-1"),
        ],
        &netlog,
    );
    assert!(
        dom.contains("data-hash=\"#filter=failures&amp;sort=-1&amp;case=2\""),
        "{dom:.3000}"
    );
    assert_eq!(requests(&netlog), Vec::<String>::new());
}

/// The shipped sentiment sweep (3 temperatures × 2 prompt variants × SmolLM2 and
/// Qwen2.5-0.5B), on its first 3 reviews: one stored run per setting, and a report whose
/// parallel-coordinates plot has one line per point, brushes from the URL, and sorts the
/// table best first.
#[test]
fn a_sweep_report_plots_one_line_per_point() {
    let project = TempProject::new();
    project.write(
        "models/models.yaml",
        &format!(
            "models:\n  smollm2:\n    path: {}\n    context_size: 2048\n  qwen2.5-0.5b:\n    path: {}\n    context_size: 4096\n",
            common::real_model(common::SMOLLM2).display(),
            common::real_model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf").display()
        ),
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "prompts/sentiment.yaml",
        "eval-sets/sentiment.yaml",
        "eval-sets/data/movie-reviews.csv",
    ] {
        let to = project.root().join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo.join(file), to).unwrap();
    }
    let out = promptlab(
        &[
            "sweep",
            "eval-sets/sentiment.yaml",
            "--limit",
            "3",
            "-o",
            "sweep.html",
            "-o",
            "sweep.json",
            "--threads",
            "2",
        ],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Three cases cannot tell twelve points apart: the sweep says so instead of naming one.
    let said = text(&out);
    assert!(
        said.contains("best: sentiment:")
            || said.contains("no clear best: sentiment:")
            || said.contains("no single best:"),
        "{said}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.root().join("sweep.json")).unwrap())
            .unwrap();
    let points = json["points"].as_array().unwrap();
    assert_eq!(points.len(), 12, "3 temperatures × 2 variants × 2 models");
    let runs: std::collections::BTreeSet<i64> = points
        .iter()
        .map(|p| p["run_id"].as_i64().unwrap())
        .collect();
    assert_eq!(runs.len(), 3, "one run per setting");

    let url = format!("file://{}", project.root().join("sweep.html").display());
    let netlog = project.root().join("netlog.json");
    let dom = headless(&["--dump-dom".into(), url.clone()], &netlog);
    assert!(dom.contains("data-ready=\"1\""));
    assert_eq!(dom.matches("<polyline").count(), 12, "one line per point");
    assert_eq!(dom.matches("class=\"point-row\"").count(), 12);
    assert!(dom.contains("12 of 12 points"));
    assert_eq!(requests(&netlog), Vec::<String>::new());
    // Brushing the pass-rate axis to [0.5, 1] keeps exactly the points that reach it.
    let reaching = points
        .iter()
        .filter(|p| p["pass_rate"].as_f64().unwrap() >= 0.5)
        .count();
    let dom = headless(
        &[
            "--dump-dom".into(),
            format!("{url}#brush=pass%20rate:0.5:1"),
        ],
        &netlog,
    );
    assert!(
        dom.contains(&format!("{reaching} of 12 points")),
        "{dom:.3000}"
    );
    assert_eq!(dom.matches("class=\"point dim\"").count(), 12 - reaching);
    headless(
        &[
            format!("--screenshot={}", artifacts().join("sweep.png").display()),
            url,
        ],
        &netlog,
    );

    // The same sweep, read back from the store.
    let out = promptlab(
        &["report", "sweep:latest", "-o", "again.json"],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.root().join("again.json")).unwrap())
            .unwrap();
    assert_eq!(again["points"], json["points"]);

    // `-o -`: the report as JSON on standard output (every cell from the cache now; a
    // sweep of its own, so last),
    // the table on stderr.
    // `--models` narrows the sweep; a bare set name is found in `--project`.
    let root = project.root().display().to_string();
    let piped = promptlab(
        &[
            "sweep",
            "sentiment",
            "--project",
            root.as_str(),
            "--models",
            "smollm2",
            "--limit",
            "3",
            "-o",
            "-",
            "--threads",
            "2",
            "--quiet",
        ],
        project.root(),
    );
    assert_eq!(piped.status.code(), Some(0), "{}", text(&piped));
    let streamed: serde_json::Value = serde_json::from_slice(&piped.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&piped.stdout)));
    assert_eq!(
        streamed["points"].as_array().map(Vec::len),
        Some(6),
        "3 temperatures × 2 variants × smollm2"
    );
    assert!(
        streamed["points"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["model"] == "smollm2")
    );
    assert!(
        String::from_utf8_lossy(&piped.stderr).contains("pass rate"),
        "{}",
        text(&piped)
    );
}

/// A digit-CNN training run (8×8 digits, 3 epochs) as an HTML page: both curves per chart
/// over every epoch, the 10×10 confusion matrix, and no request from the page.
#[test]
fn a_training_run_report_has_curves_and_the_confusion_matrix() {
    let project = TempProject::new();
    let out = promptlab(
        &[
            "vision",
            "digits",
            "train",
            "--dataset",
            "digits",
            "--preset",
            "small",
            "--epochs",
            "3",
            "--output",
            "models/d.safetensors",
        ],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = promptlab(
        &["report", "training:latest", "-o", "training.html"],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // `-o -` streams the same page; another extension is refused before anything is written.
    let piped = promptlab(&["report", "training:latest", "-o", "-"], project.root());
    assert_eq!(piped.status.code(), Some(0), "{}", text(&piped));
    assert_eq!(
        piped.stdout,
        std::fs::read(project.root().join("training.html")).unwrap()
    );
    let refused = promptlab(
        &["report", "training:latest", "-o", "-", "-o", "t.md"],
        project.root(),
    );
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(refused.stdout.is_empty());
    let url = format!("file://{}", project.root().join("training.html").display());
    let netlog = project.root().join("netlog.json");
    let dom = headless(&["--dump-dom".into(), url.clone()], &netlog);
    assert_eq!(
        dom.matches("class=\"series\"").count(),
        4,
        "train and validation, loss and accuracy"
    );
    let points = dom
        .split("class=\"series\" points=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default();
    assert_eq!(
        points.split(' ').count(),
        3,
        "one point per epoch: {points}"
    );
    // The network drawn: the `small` preset's six layers and the classes layer.
    let network = dom.split("id=\"network\"").nth(1).unwrap_or_default();
    let network = network.split("</svg>").next().unwrap_or_default();
    assert_eq!(network.matches("class=\"block\"").count(), 7, "{network}");
    let confusion = dom.split("id=\"confusion\"").nth(1).unwrap_or_default();
    let confusion = confusion.split("</table>").next().unwrap_or_default();
    assert_eq!(confusion.matches("<td").count(), 100, "10×10 cells");
    assert_eq!(requests(&netlog), Vec::<String>::new());
    headless(
        &[
            format!(
                "--screenshot={}",
                artifacts().join("training.png").display()
            ),
            url,
        ],
        &netlog,
    );
}

/// Training runs on 200 and all of the 8×8 digits, compared as a learning curve: one line
/// with a point (and an interval) per run, and a table row each.
#[test]
fn training_runs_compare_as_learning_curves() {
    let project = TempProject::new();
    for limit in ["200", "1797"] {
        let out = promptlab(
            &[
                "vision",
                "digits",
                "train",
                "--dataset",
                "digits",
                "--preset",
                "small",
                "--epochs",
                "3",
                "--limit",
                limit,
                "-o",
                "models/d.safetensors",
            ],
            project.root(),
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let out = promptlab(
        &["report", "training:curve", "-o", "curve.html"],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let html = std::fs::read_to_string(project.root().join("curve.html")).unwrap();
    assert_eq!(
        html.matches("class=\"learning-curve\"").count(),
        1,
        "one data set"
    );
    assert_eq!(
        html.matches("class=\"curve\" points=").count(),
        1,
        "one start"
    );
    assert_eq!(html.matches("class=\"point\"").count(), 2, "{html}");
    assert!(html.contains("small from scratch"), "{html}");
    // 200 labelled images, then all 1,437 the split leaves for training and validation.
    let table = html.split("<tbody>").nth(1).unwrap_or_default();
    assert!(
        table.find(">200<").unwrap_or(usize::MAX) < table.find(">1437<").unwrap_or(0),
        "{table}"
    );
}

/// A sweep of digit-CNN training (2 learning rates × augmentation on/off on the 8×8
/// digits): four stored training runs, one plot line each, test accuracy as the rate.
#[test]
fn a_training_sweep_report_plots_one_line_per_training_run() {
    let project = TempProject::new();
    let out = promptlab(
        &[
            "vision",
            "digits",
            "sweep",
            "--dataset",
            "digits",
            "--preset",
            "small",
            "--epochs",
            "2",
            "--sweep-lr",
            "0.001,0.003",
            "--sweep-augment",
            "--output",
            "models/d.safetensors",
            "--report",
            "t.html",
            "--report",
            "-",
        ],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("best: "), "{}", text(&out));
    assert!(
        std::fs::read_to_string(project.root().join("t.html"))
            .unwrap()
            .to_lowercase()
            .contains("best: "),
        "the page says which point is best, or that none is clearly"
    );
    // `--report -`: the JSON on standard output, the table on stderr.
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(json["metric"], "test accuracy");
    let points = json["points"].as_array().unwrap();
    assert_eq!(points.len(), 4);
    for point in points {
        let accuracy = point["pass_rate"].as_f64().unwrap();
        assert!(accuracy > 0.3 && accuracy <= 1.0, "{point}");
    }
    let url = format!("file://{}", project.root().join("t.html").display());
    let netlog = project.root().join("netlog.json");
    let dom = headless(&["--dump-dom".into(), url], &netlog);
    assert_eq!(dom.matches("<polyline").count(), 4);
    assert!(dom.contains(">test accuracy<"), "{dom:.3000}");
    assert!(
        !dom.contains(">prompt<"),
        "no prompt axis for training runs"
    );
    assert_eq!(requests(&netlog), Vec::<String>::new());

    let out = promptlab(
        &["report", "sweep:latest", "-o", "again.json"],
        project.root(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.root().join("again.json")).unwrap())
            .unwrap();
    assert_eq!(again["points"].as_array().unwrap().len(), 4);
    assert_eq!(again["metric"], "test accuracy");
}
