//! Splitting `verify` over machines: `--shard I/N` runs a deterministic
//! 1/N of the cells, and `merge` rebuilds the table and verdict of one run
//! from the shards' JSON reports.
//!
//! Every JSON report carries its raw cell results and settings (`run`), so
//! merging is building the report again from the union of the shards' cells:
//! the same code that judges one run judges the merged one.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use wsdrain_loom_tests::Scenario;
use wsdrain_loom_tests::cell::{Catalog, CellCommand, CellResult, Checker};

use crate::matrix::{Job, JobKind, VerifyArgs};

/// Shard `index` of `count` (1-based, as written on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Whether the job at `position` in the matrix's job list belongs to
    /// this shard. Round-robin over the list, so each shard gets a share of
    /// every scenario and checker (the list's order is deterministic).
    pub fn owns(self, position: usize) -> bool {
        position % self.count == self.index - 1
    }

    /// This shard's part of `items`, keeping together the items of one
    /// group (e.g. a seed's portfolio of shuttle schedulers, judged as a
    /// whole): round-robin over the groups, in order of first appearance.
    pub fn select<T, K: PartialEq>(self, items: Vec<T>, group: impl Fn(&T) -> K) -> Vec<T> {
        let mut groups: Vec<K> = Vec::new();
        items
            .into_iter()
            .filter(|item| {
                let key = group(item);
                let position = groups.iter().position(|g| *g == key).unwrap_or_else(|| {
                    groups.push(key);
                    groups.len() - 1
                });
                self.owns(position)
            })
            .collect()
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let usage = || format!("--shard wants I/N with 1 <= I <= N (e.g. 1/4), not {text:?}");
        let (i, n) = text.split_once('/').ok_or_else(usage)?;
        let index: usize = i.trim().parse().map_err(|_| usage())?;
        let count: usize = n.trim().parse().map_err(|_| usage())?;
        if index == 0 || count == 0 || index > count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// One cell's result with what its job was for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunCell {
    pub kind: JobKind,
    pub result: CellResult,
}

/// What a report was built from: enough to build it again, alone or merged
/// with the other shards.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub args: VerifyArgs,
    /// The bug catalog of each checker run, in order.
    pub catalogs: Vec<Catalog>,
    /// Wall time of this run (shard), s.
    pub elapsed_s: f64,
    pub cells: Vec<RunCell>,
}

impl RunRecord {
    /// The record of a run of `results`.
    pub fn new(
        args: &VerifyArgs,
        catalogs: &[Catalog],
        results: &[(Job, CellResult)],
        elapsed_s: f64,
    ) -> RunRecord {
        // Only the first caught run of a cell becomes its counterexample
        // (see `Report::build`): the others keep their figures but not
        // their report and listing, which would make the JSON ten times
        // larger. Shards merged in order keep the same first ones.
        let mut shown: Vec<(Checker, &str, &str, &JobKind)> = Vec::new();
        let cells = results
            .iter()
            .map(|(job, original)| {
                let mut result = original.clone();
                let key = (
                    original.checker,
                    original.scenario.as_str(),
                    original.variant.as_str(),
                    &job.kind,
                );
                if result.report.is_some() {
                    if shown.contains(&key) {
                        result.report = None;
                        result.listing = None;
                    } else {
                        shown.push(key);
                    }
                }
                RunCell {
                    kind: job.kind.clone(),
                    result,
                }
            })
            .collect();
        RunRecord {
            args: args.clone(),
            catalogs: catalogs.to_vec(),
            elapsed_s,
            cells,
        }
    }

    /// The scenarios the run selected.
    pub fn scenarios(&self) -> Result<Vec<Scenario>, String> {
        crate::matrix::selected(&self.args, &Scenario::ALL)
    }

    /// The results as the report builder takes them.
    pub fn results(&self) -> Vec<(Job, CellResult)> {
        self.cells
            .iter()
            .map(|cell| {
                (
                    Job {
                        checker: cell.result.checker,
                        // Only what the job was for matters once it ran.
                        command: match Scenario::from_name(&cell.result.scenario) {
                            Some(scenario) => CellCommand::run(scenario, &cell.result.variant),
                            None => CellCommand::catalog(),
                        },
                        kind: cell.kind.clone(),
                    },
                    cell.result.clone(),
                )
            })
            .collect()
    }
}

/// The part of a JSON report that `merge` reads.
#[derive(Deserialize)]
struct ReportFile {
    run: RunRecord,
}

/// Read the run records of `files` and combine them into one, checking that
/// they are the shards 1..=N of one run with the same settings.
pub fn combine(files: &[PathBuf]) -> Result<RunRecord, String> {
    if files.is_empty() {
        return Err(
            "merge wants the JSON reports of the shards (verify --shard I/N --json FILE)".into(),
        );
    }
    let mut records = Vec::new();
    for file in files {
        records.push((file.as_path(), read(file)?));
    }
    combine_records(records)
}

fn read(file: &Path) -> Result<RunRecord, String> {
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("read {}: {e}", file.display()))?;
    let report: ReportFile = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not a verify JSON report with its cells (written by this version of xtask?): {e}",
            file.display()
        )
    })?;
    Ok(report.run)
}

/// The settings that must agree between shards (everything but the shard,
/// the output file and the parallelism).
fn settings_key(args: &VerifyArgs) -> String {
    let mut args = args.clone();
    args.shard = None;
    args.json = PathBuf::new();
    args.jobs = None;
    serde_json::to_string(&args).unwrap_or_default()
}

fn combine_records(records: Vec<(&Path, RunRecord)>) -> Result<RunRecord, String> {
    let (first_file, first) = &records[0];
    let count = first.args.shard.map_or(1, |s| s.count);
    let key = settings_key(&first.args);
    let mut seen = vec![None::<&Path>; count];
    for (file, record) in &records {
        let shard = record.args.shard.unwrap_or(Shard { index: 1, count: 1 });
        if shard.count != count {
            return Err(format!(
                "{} is shard {shard} but {} is of {count} shards",
                file.display(),
                first_file.display()
            ));
        }
        let checkers = |r: &RunRecord| r.catalogs.iter().map(|c| c.checker).collect::<Vec<_>>();
        if settings_key(&record.args) != key || checkers(record) != checkers(first) {
            return Err(format!(
                "{} was run with other settings than {}: shards must be run with the same flags",
                file.display(),
                first_file.display()
            ));
        }
        if let Some(other) = seen[shard.index - 1].replace(file) {
            return Err(format!(
                "shard {shard} is given twice: {} and {}",
                other.display(),
                file.display()
            ));
        }
    }
    let missing: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, f)| f.is_none())
        .map(|(i, _)| format!("{}/{count}", i + 1))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing shard(s) {}: the verdict needs every shard",
            missing.join(", ")
        ));
    }
    let mut merged = first.clone();
    merged.args.shard = None;
    merged.cells = records
        .iter()
        .flat_map(|(_, r)| r.cells.iter().cloned())
        .collect();
    // The shards ran side by side: the run took as long as the slowest.
    merged.elapsed_s = records.iter().map(|(_, r)| r.elapsed_s).fold(0.0, f64::max);
    Ok(merged)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::Parser;

    use crate::report::Report;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: VerifyArgs,
    }

    pub(crate) fn args(extra: &[&str]) -> VerifyArgs {
        let mut argv = vec!["verify", "--scenario", "S1", "--scenario", "S7"];
        argv.extend(extra);
        Cli::parse_from(argv).args
    }

    /// A catalog of three bugs for both checkers: H1 applies in S1 and
    /// S7, H2 only in S1, H8 only in S7.
    pub(crate) fn catalogs() -> Vec<Catalog> {
        let bug = |id: &str, not: &[&str]| wsdrain_loom_tests::cell::CatalogBug {
            id: id.into(),
            name: format!("bug-{id}"),
            not_applicable: not
                .iter()
                .map(|s| (s.to_string(), "not modelled here".to_string()))
                .collect(),
        };
        Checker::ALL
            .into_iter()
            .map(|checker| Catalog {
                checker,
                bugs: vec![bug("H1", &[]), bug("H2", &["S7"]), bug("H8", &["S1"])],
            })
            .collect()
    }

    fn result(
        checker: Checker,
        scenario: &str,
        variant: &str,
        caught: bool,
        seed: u64,
    ) -> CellResult {
        let mut r = CellResult::new(
            checker,
            scenario,
            variant.into(),
            format!("pct depth 3 seed {seed}"),
        );
        r.executions = 10 + seed as usize;
        r.seed = Some(seed);
        if variant == "fixed" {
            r.coverage = ["close() before the check", "close() after the start"]
                .into_iter()
                .enumerate()
                .map(|(i, window)| wsdrain_loom_tests::windows::WindowHits {
                    window: window.into(),
                    hits: 1 + i,
                })
                .collect();
        }
        if caught {
            r.result = wsdrain_loom_tests::cell::CellOutcome::Caught;
            r.oracle = Some(wsdrain_loom_tests::cell::Oracle::DrainBarrier);
            r.report = Some(format!(
                "counterexample: {variant} / {scenario} / {checker}, found after {} execution(s)\noracle: drain-barrier\nfailure: oracle[drain-barrier] violated: close() returned while 2 client task(s) still running",
                r.executions
            ));
            r.replay = Some(format!(
                "cargo xtask replay --checker {checker} --scenario {scenario} --bug {variant} target/wsdrain/counterexamples/x.json"
            ));
            r.listing = Some(crate::html::tests::h5_listing());
        }
        r
    }

    /// The synthetic results of a whole run over S1 and S7: the fixed client
    /// and every applicable bug, with one bug escaping one seed.
    pub(crate) fn whole_run(args: &VerifyArgs) -> Vec<(Job, CellResult)> {
        let scenarios = crate::matrix::selected(args, &Scenario::ALL).unwrap();
        let mut out = Vec::new();
        for catalog in catalogs() {
            let checker = catalog.checker;
            for job in crate::matrix::jobs(checker, &catalog, args, &scenarios) {
                let argv = job.command.args().to_vec();
                let scenario = argv[2].clone();
                let variant = argv[4].clone();
                let seed = argv
                    .iter()
                    .position(|a| a == "--seed")
                    .map_or(0, |i| argv[i + 1].parse().unwrap());
                // The fixed client passes; H8 escapes shuttle for seed 1.
                let escaped = checker == Checker::Shuttle && variant == "H8" && seed == 1;
                let caught = variant != "fixed" && !escaped;
                let r = result(checker, &scenario, &variant, caught, seed);
                out.push((job, r));
            }
        }
        out
    }

    fn verdict(report: &Report) -> serde_json::Value {
        // Which counterexamples are shown, each with its interleaving (which
        // seed's is shown depends on the order cells finish, in one run too).
        let examples: Vec<(Checker, &str, &str, bool)> = report
            .counterexamples
            .iter()
            .map(|c| {
                (
                    c.checker,
                    c.scenario.as_str(),
                    c.variant.as_str(),
                    c.listing.is_some(),
                )
            })
            .collect();
        serde_json::json!({
            "ok": report.ok,
            "problems": report.problems,
            "tables": report.tables,
            "counterexamples": examples,
            "coverage": report.coverage,
        })
    }

    #[test]
    fn shards_merged_give_the_verdict_of_one_run() {
        let one = args(&["--seeds", "3"]);
        let all = whole_run(&one);
        let scenarios = crate::matrix::selected(&one, &Scenario::ALL).unwrap();
        let whole = Report::build(
            &one,
            &scenarios,
            &catalogs(),
            all.clone(),
            std::time::Duration::from_secs(1),
        );
        assert!(!whole.ok, "the synthetic run has an escape");
        assert!(!whole.counterexamples.is_empty());

        let mut files = Vec::new();
        let dir = std::env::temp_dir().join(format!("wsdrain-shard-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut owned = 0;
        for index in 1..=3 {
            let shard_args = args(&["--seeds", "3", "--shard", &format!("{index}/3")]);
            let mine = shard_args
                .shard
                .unwrap()
                .select(all.clone(), |(job, _)| crate::matrix::portfolio(job));
            owned += mine.len();
            let record = RunRecord::new(&shard_args, &catalogs(), &mine, 1.0);
            let file = dir.join(format!("shard-{index}.json"));
            let json = serde_json::json!({ "ok": true, "run": record });
            std::fs::write(&file, json.to_string()).unwrap();
            files.push(file);
        }
        assert_eq!(owned, all.len(), "the shards split the cells exactly");
        let merged = combine(&files).unwrap();
        let rebuilt = Report::build(
            &merged.args,
            &merged.scenarios().unwrap(),
            &merged.catalogs,
            merged.results(),
            std::time::Duration::from_secs(1),
        );
        assert_eq!(verdict(&rebuilt), verdict(&whole));
        assert!(
            !whole.coverage.is_empty(),
            "the fixed runs' coverage is carried"
        );

        // A missing or doubled shard is refused, with the reason.
        let error = combine(&files[..2]).unwrap_err();
        assert!(error.contains("missing shard(s) 3/3"), "{error}");
        let error = combine(&[files[0].clone(), files[0].clone(), files[1].clone()]).unwrap_err();
        assert!(error.contains("given twice"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_seed_s_schedulers_stay_in_one_shard() {
        let args = args(&["--seeds", "3"]);
        let all = whole_run(&args);
        for index in 1..=2 {
            let shard = Shard { index, count: 2 };
            let mine = shard.select(all.clone(), |(job, _)| crate::matrix::portfolio(job));
            for (job, _) in &all {
                let here = mine
                    .iter()
                    .any(|(j, _)| crate::matrix::portfolio(j) == crate::matrix::portfolio(job));
                let whole = mine
                    .iter()
                    .filter(|(j, _)| crate::matrix::portfolio(j) == crate::matrix::portfolio(job))
                    .count();
                let total = all
                    .iter()
                    .filter(|(j, _)| crate::matrix::portfolio(j) == crate::matrix::portfolio(job))
                    .count();
                assert!(!here || whole == total, "{:?} is split", job.command.args());
            }
        }
    }

    #[test]
    fn the_shard_parses() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        assert!("0/4".parse::<Shard>().is_err());
        assert!("5/4".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }
}
