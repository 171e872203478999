//! The small models of the primitive suites (the sync facade's, the
//! in-memory transport's): one body, checked by this build's checker.

/// Check `f` under this build's checker: loom, exhaustively at
/// `preemption_bound`; shuttle, `schedules` PCT (depth 3) executions and as
/// many under the random scheduler. Both shuttle schedulers, because they
/// have different blind spots: PCT at depth 3 never ran a just-spawned
/// thread to its end before main's next lock in 2,000 schedules of a facade
/// test; the random scheduler did in 13 %.
pub fn check(preemption_bound: usize, schedules: usize, f: impl Fn() + Send + Sync + 'static) {
    #[cfg(wsdrain_loom)]
    {
        let _ = schedules;
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(preemption_bound);
        builder.check(f);
    }
    #[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
    {
        let _ = preemption_bound;
        let f = std::sync::Arc::new(f);
        let pct = f.clone();
        shuttle::check_pct(move || pct(), schedules, 3);
        shuttle::check_random(move || f(), schedules);
    }
}
