//! Work over many practices in which one practice's failure stops only that practice.
//!
//! Every job and command that walks the practices of an installation (start-up encryption,
//! retention, note verification, …) goes through [`each_practice`]: a practice whose data
//! cannot be processed is reported (an alert naming the practice id and the job, never data)
//! and skipped, and the others go on. The caller decides what a failure means for its exit
//! status; it can never mean that the other practices were not processed.

use std::fmt::Display;

use domain::PracticeId;

/// What a pass over several practices did.
#[derive(Debug)]
pub struct PerPractice<T, E> {
    /// Each practice processed, with its result.
    pub done: Vec<(PracticeId, T)>,
    /// Each practice whose data could not be processed, with the reason; skipped.
    pub failed: Vec<(PracticeId, E)>,
}

impl<T, E> PerPractice<T, E> {
    /// Whether every practice was processed.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Runs `f` for each practice in turn. A practice for which `f` fails is logged on the
/// `chartroom::alert` target (practice id, job and reason) and skipped; the rest go on.
pub async fn each_practice<T, E: Display, F: Future<Output = Result<T, E>>>(
    job: &'static str,
    practices: impl IntoIterator<Item = PracticeId>,
    mut f: impl FnMut(PracticeId) -> F,
) -> PerPractice<T, E> {
    let mut out = PerPractice {
        done: Vec::new(),
        failed: Vec::new(),
    };
    for practice in practices {
        match f(practice).await {
            Ok(t) => out.done.push((practice, t)),
            Err(e) => {
                tracing::error!(
                    target: "chartroom::alert",
                    %practice,
                    job,
                    error = %e,
                    "a practice's data could not be processed: skipped it, the other practices go on"
                );
                out.failed.push((practice, e));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 14.1: one practice's failure stops only that practice.
    #[test]
    fn a_failing_practice_is_skipped_and_the_rest_go_on() {
        let ids: Vec<PracticeId> = (0..4).map(|_| PracticeId::new()).collect();
        let bad = ids[1];
        let mut seen = Vec::new();
        let pass = futures::executor::block_on(each_practice("test", ids.clone(), |p| {
            seen.push(p);
            async move { if p == bad { Err("cannot") } else { Ok(p) } }
        }));
        assert_eq!(seen, ids);
        assert_eq!(pass.failed, vec![(bad, "cannot")]);
        let done: Vec<PracticeId> = pass.done.iter().map(|d| d.0).collect();
        assert_eq!(done, vec![ids[0], ids[2], ids[3]]);
        assert!(!pass.is_complete());
    }
}
