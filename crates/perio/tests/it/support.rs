//! Helpers: build sessions from a context and describe outcomes in one short line.

use perio::outcome::{Event, Outcome, Status};
use perio::session::Session;

/// A session from a JSON context (`{}` = SPEC C0), with `finals` applied in order; every
/// earlier final must succeed.
pub fn session(ctx: &str, finals: &[&str]) -> Session {
    let ctx: serde_json::Value = serde_json::from_str(ctx).unwrap();
    let mut s = Session::from_ctx(&ctx).unwrap();
    for f in finals {
        let o = s.apply_final(f);
        assert!(
            matches!(o.status, Status::Ok | Status::NeedsConfirmation),
            "{f}: {}",
            brief(&o)
        );
    }
    s
}

/// One event in short notation: `pd 3DB=4`, `+bleeding 3MB`, `@3F.DB`, `3 missing`, …
pub fn event(e: &Event) -> String {
    match e {
        Event::Pd { tooth, site, mm } => format!("pd {tooth}{site}={mm}"),
        Event::Recession { tooth, site, mm } => format!("rec {tooth}{site}={mm}"),
        Event::KgWidth { tooth, site, mm } => format!("kg {tooth}{site}={mm}"),
        Event::Flag {
            tooth,
            site,
            flag,
            on,
        } => format!(
            "{}{} {tooth}{site}",
            if *on { "+" } else { "-" },
            flag.name()
        ),
        Event::Mobility { tooth, grade, note } => {
            format!("mob {tooth}={grade}{}", note.as_deref().unwrap_or(""))
        }
        Event::Furcation {
            tooth,
            entrance,
            grade,
            glickman_iv,
        } => {
            format!(
                "furc {tooth}{}={grade}{}",
                entrance.name(),
                if *glickman_iv { " iv" } else { "" }
            )
        }
        Event::ToothStatus { tooth, status } => format!("{tooth} {}", status.name()),
        Event::Cursor {
            tooth,
            surface,
            site,
        } => format!("@{tooth}{surface}.{site}"),
        Event::Mode { mode } => format!("mode {}", mode.name()),
        Event::Undo { scope } => format!("undo {scope:?}"),
        Event::Session { action } => format!("session {action:?}"),
    }
}

/// An outcome in one line: `ok [pd 1DB=3, …] @2F.DB {warning, …}` or
/// `rejected reason "heard"`.
pub fn brief(o: &Outcome) -> String {
    let status = serde_json::to_value(o.status)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    if let Some(r) = &o.reject {
        return format!("{status} {} {:?}", r.reason, r.heard);
    }
    let events: Vec<String> = o.events.iter().map(event).collect();
    let mut line = format!(
        "{status} [{}] @{}{}.{}",
        events.join(", "),
        o.cursor_after.tooth,
        o.cursor_after.surface(),
        o.cursor_after.site
    );
    if !o.alternatives.is_empty() {
        let alts: Vec<String> = o
            .alternatives
            .iter()
            .map(|a| a.events.iter().map(event).collect::<Vec<_>>().join(", "))
            .collect();
        line = format!("{line} alts [{}]", alts.join(" | "));
    }
    if !o.warnings.is_empty() {
        let w: Vec<String> = o.warnings.iter().map(ToString::to_string).collect();
        line = format!("{line} {{{}}}", w.join(", "));
    }
    line
}

/// Applies `utterance` to `session(ctx, history)` and returns the brief.
pub fn run(ctx: &str, history: &[&str], utterance: &str) -> String {
    let mut s = session(ctx, history);
    brief(&s.apply_final(utterance))
}
