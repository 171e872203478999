//! The generated explorer's part of `verify`: its jobs (programs x
//! schedules under shuttle, the programs that fit loom's threads under
//! loom), and its block of the report (programs, executions, time for the
//! fixed client and every catalog bug).

use std::fmt::Write as _;

use serde::Serialize;
use wsdrain_loom_tests::cell::{Catalog, CellCommand, CellOutcome, CellResult, Checker, Oracle};

use crate::matrix::{Job, JobKind, VerifyArgs};
use crate::report::{Counterexample, Status};

/// The scenario id of generated cells.
pub const ID: &str = "G";

/// Programs per fixed-client job under shuttle (the jobs run in parallel
/// and shard).
const CHUNK: u64 = 250;

/// Whether the run includes the generated explorer (no `--scenario`, or
/// `--scenario G` among them).
pub fn selected(args: &VerifyArgs) -> bool {
    args.scenario.is_empty() || args.scenario.iter().any(|s| s.eq_ignore_ascii_case(ID))
}

/// The generated explorer's jobs for one checker.
pub fn jobs(checker: Checker, catalog: &Catalog, args: &VerifyArgs) -> Vec<Job> {
    let mut jobs = Vec::new();
    if !selected(args) {
        return jobs;
    }
    let job = |command: CellCommand| Job {
        checker,
        command,
        kind: JobKind::Generated,
    };
    match checker {
        Checker::Shuttle => {
            let mut first = 0;
            while first < args.programs {
                let count = CHUNK.min(args.programs - first);
                jobs.push(job(CellCommand::generated("fixed", first, count)
                    .schedules(args.schedules)
                    .no_trace()));
                first += count;
            }
            for bug in catalog
                .bugs
                .iter()
                .filter(|b| b.generated_not_applicable.is_none())
            {
                jobs.push(job(
                    CellCommand::generated(&bug.id, 0, args.programs).schedules(args.schedules)
                ));
            }
        }
        Checker::Loom => {
            jobs.push(job(CellCommand::generated("fixed", 0, args.loom_programs)
                .bound(args.loom_program_bound)
                .max_seconds(args.loom_seconds)
                .no_trace()));
            for bug in catalog
                .bugs
                .iter()
                .filter(|b| b.generated_not_applicable.is_none())
            {
                jobs.push(job(CellCommand::generated(&bug.id, 0, args.loom_programs)
                    .bound(args.loom_program_bound)
                    .max_seconds(args.loom_seconds)));
            }
        }
    }
    jobs
}

/// One row of the block: a variant under one checker.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratedCell {
    pub checker: Checker,
    pub variant: String,
    pub status: Status,
    pub oracle: Option<Oracle>,
    /// Programs explored (to detection, for a bug).
    pub programs: u64,
    /// Executions (to detection, for a bug).
    pub executions: usize,
    pub elapsed_ms: f64,
    pub note: Option<String>,
}

/// The block's cells, with the problems and counterexamples they add.
pub fn build(
    args: &VerifyArgs,
    catalogs: &[Catalog],
    results: &[(Job, CellResult)],
    problems: &mut Vec<String>,
    counterexamples: &mut Vec<Counterexample>,
) -> Vec<GeneratedCell> {
    let mut cells = Vec::new();
    if !selected(args) {
        return cells;
    }
    for catalog in catalogs {
        let checker = catalog.checker;
        let variants = std::iter::once(("fixed".to_owned(), None)).chain(
            catalog
                .bugs
                .iter()
                .map(|b| (b.id.clone(), Some(b.generated_not_applicable.clone()))),
        );
        for (variant, not_applicable) in variants {
            if let Some(Some(reason)) = not_applicable {
                cells.push(GeneratedCell {
                    checker,
                    variant,
                    status: Status::NotApplicable,
                    oracle: None,
                    programs: 0,
                    executions: 0,
                    elapsed_ms: 0.0,
                    note: Some(reason),
                });
                continue;
            }
            let runs: Vec<&CellResult> = results
                .iter()
                .filter(|(job, r)| {
                    job.kind == JobKind::Generated && r.checker == checker && r.variant == variant
                })
                .map(|(_, r)| r)
                .collect();
            if runs.is_empty() {
                continue;
            }
            let caught = runs.iter().find(|r| r.caught());
            let fixed = variant == "fixed";
            let status = match (fixed, caught) {
                (true, Some(r)) => {
                    problems.push(format!(
                        "the fixed client failed a generated program under {checker}: {}",
                        r.message.clone().unwrap_or_default()
                    ));
                    Status::Failed
                }
                (true, None) if runs.iter().any(|r| r.result == CellOutcome::Incomplete) => {
                    Status::Incomplete
                }
                (true, None) => Status::Pass,
                (false, Some(_)) => Status::Caught,
                (false, None) => {
                    problems.push(format!(
                        "{variant} escaped the generated explorer under {checker} ({} programs, {} executions)",
                        runs.iter().map(|r| r.programs.unwrap_or(0)).sum::<u64>(),
                        runs.iter().map(|r| r.executions).sum::<usize>()
                    ));
                    Status::Escaped
                }
            };
            if let Some(r) = caught
                && let Some(report) = &r.report
            {
                counterexamples.push(Counterexample::of(r, report));
            }
            let counted: Vec<&&CellResult> = match caught {
                Some(r) if !fixed => runs.iter().filter(|x| std::ptr::eq(**x, *r)).collect(),
                _ => runs.iter().collect(),
            };
            cells.push(GeneratedCell {
                checker,
                variant,
                status,
                oracle: caught.and_then(|r| r.oracle),
                programs: counted.iter().map(|r| r.programs.unwrap_or(0)).sum(),
                executions: counted.iter().map(|r| r.executions).sum(),
                elapsed_ms: counted.iter().map(|r| r.elapsed_ms).sum(),
                note: None,
            });
        }
    }
    cells
}

fn time(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1}s", ms / 1e3)
    } else {
        format!("{ms:.0}ms")
    }
}

fn text(cell: &GeneratedCell) -> String {
    let figures = format!(
        "{}p {}x {}",
        cell.programs,
        cell.executions,
        time(cell.elapsed_ms)
    );
    match cell.status {
        Status::NotApplicable => "n/a".into(),
        Status::Pass => format!("pass {figures}"),
        Status::Incomplete => format!("part {figures}"),
        Status::Failed => format!("FAIL {}", crate::report::short(cell.oracle)),
        Status::Escaped => format!("ESCAPED {figures}"),
        Status::Caught => format!("{} {figures}", crate::report::short(cell.oracle)),
    }
}

/// The block for the terminal.
pub fn render(args: &crate::report::Settings, cells: &[GeneratedCell], out: &mut String) {
    if cells.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\ngenerated programs (shuttle: programs 0..{} x {} schedules, PCT depth 3 + random, until \
         the first failure; loom: programs 0..{} that fit its 5 threads, exhaustive at bound {}). \
         cell: oracle or verdict, programs, executions (to detection for bugs), wall time",
        args.programs, args.schedules, args.loom_programs, args.loom_program_bound
    );
    let width = 34;
    let _ = writeln!(out, "{:<8}{:<width$}{:<width$}", "", "shuttle", "loom");
    let mut variants: Vec<&str> = Vec::new();
    for cell in cells {
        if !variants.contains(&cell.variant.as_str()) {
            variants.push(&cell.variant);
        }
    }
    for variant in variants {
        let _ = write!(out, "{variant:<8}");
        for checker in [Checker::Shuttle, Checker::Loom] {
            let cell = cells
                .iter()
                .find(|c| c.checker == checker && c.variant == variant);
            let _ = write!(out, "{:<width$}", cell.map_or("-".to_owned(), text));
        }
        let _ = writeln!(out);
    }
    for cell in cells.iter().filter(|c| c.note.is_some()) {
        let _ = writeln!(
            out,
            "  n/a {} under {}: {}",
            cell.variant,
            cell.checker,
            cell.note.as_deref().unwrap_or_default()
        );
    }
}

/// The block in the HTML report.
pub fn html(out: &mut String, settings: &crate::report::Settings, cells: &[GeneratedCell]) {
    use crate::html::esc;
    if cells.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "<h2>Generated programs</h2>\n<p class=\"meta\">shuttle: programs 0..{} x {} schedules \
         (PCT depth 3 + random); loom: programs 0..{} that fit its five threads, bound {}. Cell: \
         oracle or verdict, programs, executions (to detection for bugs), wall time.</p>\n\
         <table class=\"matrix\">\n<tr><th>variant</th><th>shuttle</th><th>loom</th></tr>",
        settings.programs, settings.schedules, settings.loom_programs, settings.loom_program_bound
    );
    let mut variants: Vec<&str> = Vec::new();
    for cell in cells {
        if !variants.contains(&cell.variant.as_str()) {
            variants.push(&cell.variant);
        }
    }
    for variant in variants {
        let _ = write!(out, "<tr><th>{}</th>", esc(variant));
        for checker in [Checker::Shuttle, Checker::Loom] {
            let cell = cells
                .iter()
                .find(|c| c.checker == checker && c.variant == variant);
            let (class, text, title) = match cell {
                None => ("na", "-".to_owned(), String::new()),
                Some(c) => (
                    c.status.css_class(),
                    text(c),
                    c.note.clone().unwrap_or_default(),
                ),
            };
            let _ = write!(
                out,
                "<td class=\"{class}\" title=\"{}\">{}</td>",
                esc(&title),
                esc(&text)
            );
        }
        let _ = writeln!(out, "</tr>");
    }
    let _ = writeln!(out, "</table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::tests::{args, catalogs};

    fn result(checker: Checker, variant: &str, caught: bool, programs: u64) -> CellResult {
        let mut r = CellResult::new(checker, ID, variant.into(), "generated".into());
        r.programs = Some(programs);
        r.executions = 100 * programs as usize;
        if caught {
            r.result = CellOutcome::Caught;
            r.oracle = Some(Oracle::DrainBarrier);
            r.report = Some(format!("counterexample: {variant} / G generated program"));
        }
        r
    }

    #[test]
    fn the_block_has_every_variant_and_an_escape_is_a_problem() {
        let args = args(&["--scenario", "G", "--programs", "500"]);
        assert!(selected(&args));
        let catalogs = catalogs();
        let shuttle = &catalogs[1];
        assert_eq!(shuttle.checker, Checker::Shuttle);
        let jobs = jobs(Checker::Shuttle, shuttle, &args);
        // Two chunks of the fixed client's 500 programs, one job per bug.
        assert_eq!(jobs.len(), 2 + shuttle.bugs.len());
        let mut results: Vec<(Job, CellResult)> = Vec::new();
        for job in jobs {
            let argv = job.command.args().to_vec();
            let variant = argv[2].clone();
            let r = result(Checker::Shuttle, &variant, variant == "H1", 250);
            results.push((job, r));
        }
        let (mut problems, mut examples) = (Vec::new(), Vec::new());
        let cells = build(
            &args,
            &catalogs[1..],
            &results,
            &mut problems,
            &mut examples,
        );
        let fixed = cells.iter().find(|c| c.variant == "fixed").unwrap();
        assert_eq!((fixed.status, fixed.programs), (Status::Pass, 500));
        let h1 = cells.iter().find(|c| c.variant == "H1").unwrap();
        assert_eq!(
            (h1.status, h1.programs, h1.executions),
            (Status::Caught, 250, 25_000)
        );
        assert_eq!(examples.len(), 1);
        // H2 and H8 were not caught: escapes, each a problem.
        assert_eq!(problems.len(), 2, "{problems:?}");
        let mut out = String::new();
        let settings = crate::report::Report::build(
            &args,
            &[],
            &catalogs[1..],
            results.clone(),
            std::time::Duration::ZERO,
        )
        .settings;
        render(&settings, &cells, &mut out);
        assert!(
            out.contains("generated programs") && out.contains("ESCAPED"),
            "{out}"
        );
    }

    #[test]
    fn a_scenario_filter_without_g_leaves_the_block_out() {
        let args = args(&[]);
        assert!(!selected(&args));
        assert!(jobs(Checker::Shuttle, &catalogs()[1], &args).is_empty());
    }
}
