//! `target/wsdrain/report.html`: the verdict tables, the budgets and every
//! counterexample as a swimlane timeline (one lane per task, time flowing
//! down, arrows for the happens-before edges that explain it), in one
//! self-contained file: inline CSS and SVG, no script, no network.

use std::fmt::Write as _;

use wsdrain_loom_tests::listing::{EdgeKind, Listing};

use crate::report::{Counterexample, Report};

/// Escape text for HTML content and attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1d2330; background: #fff; }
h1 { font-size: 22px; margin: 0 0 8px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #d8dde6; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 22px 0 6px; }
.verdict { display: inline-block; padding: 6px 12px; border-radius: 6px; font-weight: 600; }
.ok { background: #e3f5e8; color: #17622f; }
.bad { background: #fde7e7; color: #8c1c1c; }
table.matrix { border-collapse: collapse; margin: 6px 0 4px; font-size: 13px; }
table.matrix th, table.matrix td { border: 1px solid #d8dde6; padding: 4px 8px; text-align: left; white-space: nowrap; }
table.matrix th { background: #f3f5f9; }
td.pass { background: #e8f6ec; } td.caught { background: #e6eefc; }
td.FAILED, td.ESCAPED { background: #fbdada; font-weight: 600; }
td.incomplete { background: #fff4d6; } td.na { color: #8a93a3; background: #fafbfc; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12.5px; }
pre { background: #f6f8fa; padding: 10px; overflow-x: auto; border-radius: 4px; }
.meta { color: #4a5468; }
ul.budgets li { margin: 2px 0; }
svg text { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12px; }
.legend span { display: inline-block; margin-right: 14px; }
.sw { display: inline-block; width: 22px; height: 3px; vertical-align: middle; margin-right: 4px; }
"#;

/// The whole report as an HTML document.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>wsdrain verify report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>wsdrain: verification report</h1>\n"
    );
    if report.ok {
        let _ = writeln!(
            out,
            "<p><span class=\"verdict ok\">verdict: OK</span> the fixed client passes every scenario; every applicable bug is caught ({:.0} s on {} cores)</p>",
            report.elapsed_s, report.cores
        );
    } else {
        let _ = writeln!(
            out,
            "<p><span class=\"verdict bad\">verdict: FAILED</span> ({:.0} s on {} cores)</p>\n<ul>",
            report.elapsed_s, report.cores
        );
        for problem in &report.problems {
            let _ = writeln!(out, "<li>{}</li>", esc(problem));
        }
        let _ = writeln!(out, "</ul>");
    }

    let _ = writeln!(out, "<h2>Verdict tables</h2>");
    for table in &report.tables {
        let _ = writeln!(
            out,
            "<h3>{}</h3>\n<table class=\"matrix\">\n<tr><th>variant</th>",
            esc(table.checker.name())
        );
        if let Some(row) = table.rows.first() {
            for cell in &row.cells {
                let _ = write!(out, "<th>{}</th>", esc(&cell.scenario));
            }
        }
        let _ = writeln!(out, "</tr>");
        for row in &table.rows {
            let _ = write!(out, "<tr><th>{}</th>", esc(&row.variant));
            for cell in &row.cells {
                let class = cell.status.css_class();
                let title = cell
                    .note
                    .clone()
                    .or_else(|| cell.oracle.map(|o| o.name().to_owned()))
                    .unwrap_or_default();
                let text = esc(&crate::report::cell_text(table.checker, cell));
                let has_example = report.counterexamples.iter().any(|c| {
                    c.checker == table.checker
                        && c.variant == row.variant
                        && c.scenario == cell.scenario
                });
                let text = if has_example {
                    format!(
                        "<a href=\"#{}\">{text}</a>",
                        esc(&anchor(table.checker.name(), &row.variant, &cell.scenario))
                    )
                } else {
                    text
                };
                let _ = write!(
                    out,
                    "<td class=\"{}\" title=\"{}\">{text}</td>",
                    esc(class),
                    esc(&title),
                );
            }
            let _ = writeln!(out, "</tr>");
        }
        let _ = writeln!(out, "</table>");
    }

    crate::generated::html(&mut out, &report.settings, &report.generated);
    coverage(&mut out, &report.coverage);

    let _ = writeln!(out, "<h2>Budgets</h2>\n<ul class=\"budgets\">");
    for line in &report.budgets {
        let _ = writeln!(out, "<li>{}</li>", esc(line));
    }
    let _ = writeln!(out, "</ul>");

    let _ = writeln!(
        out,
        "<h2>Counterexamples ({})</h2>\n<p class=\"legend\">Time flows down; one lane per task. \
         Arrows: <span><i class=\"sw\" style=\"background:#2f6fdf\"></i>wait group add/done &rarr; wait</span>\
         <span><i class=\"sw\" style=\"background:#3a9a56\"></i>spawn &rarr; first step</span>\
         <span><i class=\"sw\" style=\"background:#8a6d3b\"></i>lock release &rarr; next acquire</span>\
         dashed lines: switch points (the running task changes); red: the last step before the failure. \
         A cell of the tables links to its counterexample.</p>",
        report.counterexamples.len()
    );
    for example in &report.counterexamples {
        counterexample(&mut out, example);
    }
    let _ = writeln!(out, "</body>\n</html>");
    out
}

/// The race-window coverage table: per scenario and window, the executions
/// of the fixed client that hit it, per checker.
fn coverage(out: &mut String, rows: &[crate::coverage::CoverageRow]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "<h2>Race-window coverage</h2>\n<p class=\"meta\">Fixed client: executions that hit each \
         window the scenario exists to hit / executions explored. A window never hit fails the run.</p>\n\
         <table class=\"matrix\">\n<tr><th>scenario</th><th>window</th><th>loom</th><th>shuttle</th></tr>"
    );
    for row in rows {
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td>",
            esc(&row.scenario),
            esc(&row.window)
        );
        for hits in [row.loom, row.shuttle] {
            let (class, text) = match hits {
                None => ("na", "-".to_owned()),
                Some(h) if h.hits == 0 => ("FAILED", format!("never / {}", h.executions)),
                Some(h) => {
                    let percent = 100.0 * h.hits as f64 / h.executions.max(1) as f64;
                    let percent = if percent < 0.1 {
                        "<0.1".to_owned()
                    } else {
                        format!("{percent:.1}")
                    };
                    (
                        "pass",
                        format!("{} / {} ({percent}%)", h.hits, h.executions),
                    )
                }
            };
            let _ = write!(out, "<td class=\"{class}\">{}</td>", esc(&text));
        }
        let _ = writeln!(out, "</tr>");
    }
    let _ = writeln!(out, "</table>");
}

/// The anchor of a counterexample, linked from its cell in the table.
fn anchor(checker: &str, variant: &str, scenario: &str) -> String {
    format!("cx-{checker}-{variant}-{scenario}")
}

fn counterexample(out: &mut String, example: &Counterexample) {
    let mut lines = example.report.lines();
    let headline = lines.next().unwrap_or_default();
    let _ = writeln!(
        out,
        "<h3 id=\"{}\">{} / {} / {}</h3>\n<p class=\"meta\">{}</p>",
        esc(&anchor(
            example.checker.name(),
            &example.variant,
            &example.scenario
        )),
        esc(&example.variant),
        esc(&example.scenario),
        esc(example.checker.name()),
        esc(headline)
    );
    for line in example.report.lines().skip(1).take(2) {
        let _ = writeln!(out, "<p class=\"meta\"><code>{}</code></p>", esc(line));
    }
    match &example.listing {
        Some(listing) if !listing.steps.is_empty() => {
            let _ = writeln!(
                out,
                "<p class=\"meta\">{}</p>\n{}",
                esc(listing.heading().trim_end().trim_end_matches(':')),
                swimlanes(listing)
            );
        }
        _ => {
            let _ = writeln!(out, "<p class=\"meta\">(no interleaving recorded)</p>");
        }
    }
    if let Some(replay) = &example.replay {
        let _ = writeln!(out, "<p>replay: <code>{}</code></p>", esc(replay));
    }
}

fn color(kind: EdgeKind) -> &'static str {
    match kind {
        EdgeKind::WaitGroup => "#2f6fdf",
        EdgeKind::Spawn => "#3a9a56",
        EdgeKind::Lock => "#8a6d3b",
    }
}

/// The interleaving as an SVG swimlane timeline.
pub fn swimlanes(listing: &Listing) -> String {
    const LANE: f64 = 350.0;
    const ROW: f64 = 30.0;
    const TOP: f64 = 44.0;
    const LEFT: f64 = 46.0;
    const LOCATION: f64 = 210.0;
    const CHARS: usize = 43;
    let tasks = listing.tasks();
    let steps = &listing.steps;
    let width = LEFT + LANE * tasks.len() as f64 + LOCATION;
    let height = TOP + ROW * steps.len() as f64 + 16.0;
    let lane_x =
        |task: &str| LEFT + LANE * tasks.iter().position(|t| *t == task).unwrap_or(0) as f64 + 8.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"swimlane timeline\">"
    );
    let _ = writeln!(svg, "<defs>");
    for kind in [EdgeKind::WaitGroup, EdgeKind::Spawn, EdgeKind::Lock] {
        let _ = writeln!(
            svg,
            "<marker id=\"arrow-{kind:?}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" \
             markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{}\"/></marker>",
            color(kind)
        );
    }
    let _ = writeln!(svg, "</defs>");
    // Lanes and their headers.
    for (i, task) in tasks.iter().enumerate() {
        let x = LEFT + LANE * i as f64;
        let fill = if i % 2 == 0 { "#f7f9fc" } else { "#eef2f8" };
        let _ = writeln!(
            svg,
            "<rect x=\"{x:.0}\" y=\"0\" width=\"{LANE:.0}\" height=\"{height:.0}\" fill=\"{fill}\"/>\
             <text x=\"{:.0}\" y=\"24\" font-weight=\"bold\" font-size=\"14\">{}</text>",
            x + 10.0,
            esc(task)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.0}\" y=\"24\" font-weight=\"bold\" font-size=\"14\" fill=\"#4a5468\">at</text>",
        LEFT + LANE * tasks.len() as f64 + 10.0
    );
    let switches = listing.switch_points();
    for (i, step) in steps.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        if switches.contains(&i) {
            let _ = writeln!(
                svg,
                "<line x1=\"0\" y1=\"{:.1}\" x2=\"{width:.0}\" y2=\"{:.1}\" stroke=\"#b9c2d0\" stroke-dasharray=\"4 3\"/>",
                y - 3.0,
                y - 3.0
            );
        }
        let _ = writeln!(
            svg,
            "<text x=\"6\" y=\"{:.1}\" fill=\"#8a93a3\">{}</text>",
            y + 16.0,
            listing.elided + i + 1
        );
        let x = lane_x(&step.task);
        let shown: String = if step.op.chars().count() > CHARS {
            step.op.chars().take(CHARS - 1).chain(['…']).collect()
        } else {
            step.op.clone()
        };
        let last = i + 1 == steps.len();
        let (fill, stroke) = if last {
            ("#fde7e7", "#c23b3b")
        } else {
            ("#ffffff", "#9aa5b8")
        };
        let _ = writeln!(
            svg,
            "<g><title>{} — {}:{}</title><rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{:.0}\" height=\"{:.0}\" rx=\"4\" \
             fill=\"{fill}\" stroke=\"{stroke}\"/><text x=\"{:.0}\" y=\"{:.1}\">{}</text></g>",
            esc(&step.op),
            esc(&step.file),
            step.line,
            LANE - 16.0,
            ROW - 8.0,
            x + 6.0,
            y + 16.0,
            esc(&shown)
        );
        let _ = writeln!(
            svg,
            "<text x=\"{:.0}\" y=\"{:.1}\" fill=\"#6b7487\">{}:{}</text>",
            LEFT + LANE * tasks.len() as f64 + 10.0,
            y + 16.0,
            esc(step.file.rsplit('/').next().unwrap_or(&step.file)),
            step.line
        );
    }
    for edge in listing.edges() {
        let (a, b) = (&steps[edge.from], &steps[edge.to]);
        let (xa, xb) = (lane_x(&a.task), lane_x(&b.task));
        let ya = TOP + ROW * edge.from as f64 + (ROW - 8.0) / 2.0;
        let yb = TOP + ROW * edge.to as f64 + (ROW - 8.0) / 2.0;
        // Leave the source box on the side facing the target.
        let (x1, x2) = if xb > xa {
            (xa + LANE - 16.0, xb)
        } else {
            (xa, xb + LANE - 16.0)
        };
        let bend = (x1 + x2) / 2.0;
        let _ = writeln!(
            svg,
            "<path d=\"M{x1:.0},{ya:.1} C{bend:.0},{ya:.1} {bend:.0},{yb:.1} {x2:.0},{yb:.1}\" fill=\"none\" \
             stroke=\"{}\" stroke-width=\"1.6\" marker-end=\"url(#arrow-{:?})\" opacity=\"0.85\"/>",
            color(edge.kind),
            edge.kind
        );
    }
    let _ = writeln!(svg, "</svg>");
    svg
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use wsdrain_loom_tests::listing::ListedStep;

    fn step(task: &str, op: &str) -> ListedStep {
        ListedStep {
            task: task.into(),
            op: op.into(),
            file: "src/client.rs".into(),
            line: 1,
        }
    }

    pub(crate) fn h5_listing() -> Listing {
        Listing {
            recorded: 30,
            hidden: 24,
            elided: 0,
            steps: vec![
                step("caller", "client.state.lock() (acquired)"),
                step("caller", "stream_workspace: publish stream 1"),
                step("caller", "client.state.unlock()"),
                step("main", "client.state.lock() (acquired)"),
                step("main", "client.state.unlock()"),
                step("main", "tasks.wait() -> counter 0, returns at once"),
                step("caller", "stream#1.wg.add(2) -> counter 2, waiters 0"),
                step("caller", "tasks.add(2) -> counter 2, waiters 0"),
                step("caller", "spawn reader#1 and writer#1"),
                step("reader#1", "handler called <&>"),
            ],
            ..Listing::default()
        }
    }

    #[test]
    fn edges_explain_the_interleaving() {
        use wsdrain_loom_tests::listing::Edge;
        let listing = h5_listing();
        let found = listing.edges();
        assert!(found.contains(&Edge {
            from: 2,
            to: 3,
            kind: EdgeKind::Lock
        }));
        assert!(found.contains(&Edge {
            from: 8,
            to: 9,
            kind: EdgeKind::Spawn
        }));
        // main's wait came before any add: no wait-group edge to draw.
        assert!(
            !found.iter().any(|e| e.kind == EdgeKind::WaitGroup),
            "{found:?}"
        );
        let mut later = listing.clone();
        later.steps.push(step("main", "tasks.wait() -> released"));
        assert!(later.edges().contains(&Edge {
            from: 7,
            to: 10,
            kind: EdgeKind::WaitGroup
        }));
    }

    /// A small well-formedness check: every tag closes in order (void
    /// elements aside), attributes are quoted, no raw `<` or `&` in text.
    fn well_formed(html: &str) -> Result<(), String> {
        const VOID: [&str; 4] = ["meta", "br", "hr", "img"];
        let mut open: Vec<String> = Vec::new();
        let mut rest = html.strip_prefix("<!DOCTYPE html>").ok_or("no doctype")?;
        while let Some(at) = rest.find(['<', '&']) {
            rest = &rest[at..];
            if rest.starts_with('&') {
                let end = rest.find(';').ok_or("unterminated entity")?;
                let entity = &rest[1..end];
                let known = ["amp", "lt", "gt", "quot", "#39", "rarr"];
                if !known.contains(&entity) {
                    return Err(format!("unknown entity &{entity};"));
                }
                rest = &rest[end + 1..];
                continue;
            }
            let end = rest.find('>').ok_or("unterminated tag")?;
            let tag = &rest[1..end];
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                match open.pop() {
                    Some(top) if top == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
                continue;
            }
            if tag.contains('<') || tag.matches('"').count() % 2 == 1 {
                return Err(format!("malformed tag <{tag}>"));
            }
            let name: String = tag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if name.is_empty() {
                return Err(format!("bad tag <{tag}>"));
            }
            if !tag.ends_with('/') && !VOID.contains(&name.as_str()) {
                open.push(name);
            }
        }
        if open.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed: {open:?}"))
        }
    }

    #[test]
    fn verify_writes_a_well_formed_self_contained_report() {
        use crate::shard::tests::{args, whole_run};
        let args = args(&["--seeds", "2"]);
        let scenarios = crate::matrix::selected(&args, &wsdrain_loom_tests::Scenario::ALL).unwrap();
        let report = crate::report::Report::build(
            &args,
            &scenarios,
            &crate::shard::tests::catalogs(),
            whole_run(&args),
            std::time::Duration::from_secs(3),
        );
        let dir = std::env::temp_dir().join(format!("wsdrain-html-test-{}", std::process::id()));
        let json = dir.join("verify.json");
        crate::matrix::write_report(&report, &json).unwrap();
        let html = std::fs::read_to_string(dir.join("report.html")).expect("report.html written");
        well_formed(&html).unwrap();
        assert!(
            html.contains("verdict: FAILED"),
            "the synthetic run has an escape"
        );
        assert!(html.contains("<svg"), "a swimlane timeline");
        assert!(html.contains("tasks.wait() -&gt; counter 0, returns at once"));
        assert!(html.contains("<table class=\"matrix\">"));
        assert!(html.contains("<h2>Race-window coverage</h2>"));
        assert!(html.contains("close() after the start"));
        // Self-contained: nothing fetched from anywhere.
        for reference in ["http://", "https://", "src=", "<link", "<script"] {
            let outside_svg_ns = html.replace("http://www.w3.org/2000/svg", "");
            assert!(!outside_svg_ns.contains(reference), "{reference}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_checker_refuses_broken_html() {
        assert!(well_formed("<!DOCTYPE html><p><b>x</p></b>").is_err());
        assert!(well_formed("<!DOCTYPE html><p>a < b</p>").is_err());
        assert!(well_formed("<!DOCTYPE html><p>a &amp; b</p>").is_ok());
    }

    #[test]
    fn the_svg_escapes_and_has_a_lane_per_task() {
        let svg = swimlanes(&h5_listing());
        assert!(svg.contains("handler called &lt;&amp;&gt;"));
        assert!(!svg.contains("<&>"));
        for task in ["caller", "main", "reader#1"] {
            assert!(svg.contains(&format!(">{task}</text>")), "{task}");
        }
    }
}
