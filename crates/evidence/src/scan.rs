//! The test scanner: which test proves which requirement.
//!
//! # The convention (the only one the pack reads)
//!
//! - `// req: ID[, ID…]` on a comment line in the block of comments and attributes directly
//!   above a test function (no blank line between) tags that test. Text may follow the list
//!   after a space or a dash (`// req: PR-01 — the deadline is 30 days`), but no further id:
//!   every id goes in the list.
//! - `//! req: ID[, ID…]` among a module's inner doc lines (the top of a file, or the top of
//!   an inline `mod name { … }`) tags every test in that module and the modules inside it.
//! - A test function is a `fn` whose attributes include one whose path ends in `test`:
//!   `#[test]`, `#[tokio::test]`, `#[tokio::test(flavor = …)]`, `#[sqlx::test]`, also
//!   inside `proptest! { … }`.
//!
//! Anything else that looks like a tag is a [`Problem`]: a comment starting with `req` that is
//! not exactly `req: ID…` (`// req AC-12`, `/// req: AC-12`, `// req: some words`), a tag
//! that is not directly above a test, an id after the list's free text. Prose that mentions
//! a requirement in passing (`… (req AU-05)`) is neither a tag nor a problem.
//!
//! The scan is textual, with a small lexer that knows comments, strings (raw and byte
//! strings too) and character literals, so braces and `#[test]` inside a string literal
//! (a test's own fixture source, say) are never read as code.

use std::path::{Path, PathBuf};

/// One requirement id as written (`AC-02`).
pub type ReqId = String;

/// A test function found by the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedTest {
    /// The package directory name (`chartroom`, `domain`).
    pub package: String,
    /// The root source file of the test binary, relative to the package (`src/lib.rs`,
    /// `tests/it/main.rs`): what cargo prints after `Running`.
    pub target_root: String,
    /// The libtest name: module path inside the binary and function name
    /// (`access_requests::pr_01_access_request_deadline_extension_and_denial`).
    pub name: String,
    /// The file, relative to the scanned root.
    pub file: String,
    /// The 1-based line of the `fn`.
    pub line: usize,
    /// The requirement ids that tag it (its own and its modules'), sorted, deduplicated.
    pub ids: Vec<ReqId>,
}

/// A tag that does not follow the convention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, relative to the scanned root.
    pub file: String,
    /// The 1-based line.
    pub line: usize,
    /// What is wrong and how to write it.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// What a scan found: every test function (tagged or not) and every problem.
#[derive(Debug, Default)]
pub struct Scan {
    /// Every test function found; `ids` is empty for an untagged one.
    pub tests: Vec<TaggedTest>,
    /// Tags that break the convention.
    pub problems: Vec<Problem>,
}

/// Whether `s` is a requirement id: 2–4 capital letters, a dash, two digits.
#[must_use]
pub fn is_req_id(s: &str) -> bool {
    let Some((letters, digits)) = s.split_once('-') else {
        return false;
    };
    (2..=4).contains(&letters.len())
        && letters.bytes().all(|b| b.is_ascii_uppercase())
        && digits.len() == 2
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The ids of a tag's text after `req:`, or why it is not a tag.
fn parse_id_list(text: &str) -> Result<Vec<ReqId>, String> {
    let mut ids = Vec::new();
    let mut rest = text.trim_start();
    loop {
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(rest.len());
        let (token, after) = rest.split_at(end);
        if !is_req_id(token) {
            if ids.is_empty() {
                return Err("a `req:` tag starts with a requirement id (`// req: AC-02`)".into());
            }
            return Err(format!("`{token}` is not a requirement id"));
        }
        ids.push(token.to_owned());
        let after_trim = after.trim_start();
        if let Some(next) = after_trim.strip_prefix(',') {
            rest = next.trim_start();
            continue;
        }
        if after_trim.is_empty() {
            return Ok(ids);
        }
        // Free text follows; it must not carry another id.
        if !after.starts_with(char::is_whitespace) {
            return Err(format!(
                "after `{token}` comes a comma, the end of the line or a space"
            ));
        }
        if let Some(stray) = after_trim
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .find(|w| is_req_id(w))
        {
            return Err(format!(
                "`{stray}` is in the free text: put every id in the list (`req: A, B — text`)"
            ));
        }
        return Ok(ids);
    }
}

/// How a comment line reads as a tag.
enum TagLine {
    /// Not a tag at all (prose, or not a comment).
    None,
    /// A valid tag with these ids.
    Ids(Vec<ReqId>),
    /// Looks like a tag but breaks the convention.
    Bad(String),
}

/// Reads a comment's text (after `//`, `///` or `//!`) as a tag.
fn tag_of(comment: &str, kind: CommentKind) -> TagLine {
    let text = comment.trim_start();
    let Some(after) = text.strip_prefix("req") else {
        return TagLine::None;
    };
    // `required`, `request…`: prose.
    if after.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
        return TagLine::None;
    }
    let Some(list) = after.strip_prefix(": ") else {
        return TagLine::Bad(format!(
            "write the tag as `{} req: ID[, ID…]` (a colon and a space after `req`)",
            kind.marker()
        ));
    };
    if kind == CommentKind::OuterDoc {
        return TagLine::Bad(
            "a tag is a plain `// req:` comment (or `//! req:` for a whole module), not `///`"
                .into(),
        );
    }
    match parse_id_list(list) {
        Ok(ids) => TagLine::Ids(ids),
        Err(e) => TagLine::Bad(e),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommentKind {
    Plain,
    OuterDoc,
    InnerDoc,
}

impl CommentKind {
    fn marker(self) -> &'static str {
        match self {
            Self::Plain => "//",
            Self::OuterDoc => "///",
            Self::InnerDoc => "//!",
        }
    }
}

/// Per line of a source file: the brace depth at its start, and whether it starts in code
/// (not inside a string literal or a block comment).
#[derive(Debug, Clone, Copy)]
struct LineState {
    depth: i64,
    in_code: bool,
}

/// The lexer's state between characters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lex {
    Code,
    LineComment,
    Block(u32),
    Str,
    RawStr(usize),
}

/// Lexes `src` into per-line states (brace depth counts `{` and `}` in code only).
#[allow(
    clippy::too_many_lines,
    reason = "one state machine over the characters, each state beside the others"
)]
fn lex_lines(src: &str) -> Vec<LineState> {
    let chars: Vec<char> = src.chars().collect();
    let mut lines = vec![LineState {
        depth: 0,
        in_code: true,
    }];
    let mut state = Lex::Code;
    let mut depth: i64 = 0;
    let mut i = 0;
    let at = |k: usize| chars.get(k).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = at(i);
        if c == '\n' {
            if state == Lex::LineComment {
                state = Lex::Code;
            }
            lines.push(LineState {
                depth,
                in_code: state == Lex::Code,
            });
            i += 1;
            continue;
        }
        match state {
            Lex::Code => {
                if c == '/' && at(i + 1) == '/' {
                    state = Lex::LineComment;
                    i += 2;
                    continue;
                }
                if c == '/' && at(i + 1) == '*' {
                    state = Lex::Block(1);
                    i += 2;
                    continue;
                }
                if c == '"' {
                    state = Lex::Str;
                    i += 1;
                    continue;
                }
                // Raw strings: r"…", r#"…"#, br#"…"# (not part of an identifier).
                let prev_ident = i > 0 && (at(i - 1).is_alphanumeric() || at(i - 1) == '_');
                if !prev_ident && (c == 'r' || (c == 'b' && at(i + 1) == 'r')) {
                    let start = if c == 'b' { i + 2 } else { i + 1 };
                    let mut k = start;
                    while at(k) == '#' {
                        k += 1;
                    }
                    if at(k) == '"' {
                        state = Lex::RawStr(k - start);
                        i = k + 1;
                        continue;
                    }
                }
                if c == '\'' {
                    // A character literal ('x', '\n', '\u{1F600}', '{') or a lifetime.
                    if at(i + 1) == '\\' {
                        // Past the escaped character (`'\''`), then to the closing quote.
                        let mut k = i + 3;
                        while k < chars.len() && at(k) != '\'' && at(k) != '\n' {
                            k += 1;
                        }
                        i = k + 1;
                        continue;
                    }
                    if at(i + 2) == '\'' && at(i + 1) != '\n' {
                        i += 3;
                        continue;
                    }
                    i += 1;
                    continue;
                }
                if c == '{' {
                    depth += 1;
                } else if c == '}' {
                    depth -= 1;
                }
                i += 1;
            }
            Lex::LineComment => i += 1,
            Lex::Block(n) => {
                if c == '*' && at(i + 1) == '/' {
                    state = if n == 1 { Lex::Code } else { Lex::Block(n - 1) };
                    i += 2;
                } else if c == '/' && at(i + 1) == '*' {
                    state = Lex::Block(n + 1);
                    i += 2;
                } else {
                    i += 1;
                }
            }
            Lex::Str => {
                if c == '\\' {
                    // Skip the escaped character, but never past a line end (a `\` newline
                    // continuation still starts a new line).
                    i += if at(i + 1) == '\n' { 1 } else { 2 };
                } else {
                    if c == '"' {
                        state = Lex::Code;
                    }
                    i += 1;
                }
            }
            Lex::RawStr(hashes) => {
                if c == '"' && (1..=hashes).all(|h| at(i + h) == '#') {
                    state = Lex::Code;
                    i += 1 + hashes;
                } else {
                    i += 1;
                }
            }
        }
    }
    lines
}

/// The last path segment of an attribute's path (`tokio::test(flavor…)` → `test`).
fn attribute_is_test(attr_text: &str) -> bool {
    let path: String = attr_text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    path.rsplit("::").next() == Some("test")
}

/// The name of a function declared on `line` (trimmed), if it declares one.
fn fn_name(line: &str) -> Option<&str> {
    let mut rest = line;
    loop {
        let word_end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
        let (word, after) = rest.split_at(word_end);
        match word {
            "pub" => {
                rest = after.trim_start();
                if rest.starts_with('(') {
                    rest = rest.get(rest.find(')')? + 1..)?.trim_start();
                }
            }
            "const" | "async" | "unsafe" => rest = after.trim_start(),
            "extern" => {
                rest = after.trim_start();
                if rest.starts_with('"') {
                    let close = rest.get(1..)?.find('"')? + 2;
                    rest = rest.get(close..)?.trim_start();
                }
            }
            "fn" => {
                let name = after.trim_start();
                let end = name
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(name.len());
                return name.get(..end).filter(|n| !n.is_empty());
            }
            _ => return None,
        }
    }
}

/// The name of an inline module opened on `line` (`mod tests {`, `pub(crate) mod x {`).
fn inline_mod_name(line: &str) -> Option<&str> {
    let mut rest = line;
    if let Some(after) = rest.strip_prefix("pub") {
        rest = after.trim_start();
        if rest.starts_with('(') {
            rest = rest.get(rest.find(')')? + 1..)?.trim_start();
        }
    }
    let name_part = rest.strip_prefix("mod ")?.trim_start();
    let end = name_part.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    let (name, tail) = name_part.split_at(end);
    tail.trim_start().starts_with('{').then_some(name)
}

/// Where a source file sits: its test binary's root and its module path in that binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePlace {
    /// The binary's root file relative to the package (`src/lib.rs`, `tests/it/main.rs`).
    pub target_root: String,
    /// Module path segments from the binary's root to this file.
    pub modules: Vec<String>,
}

/// Places a file given its path relative to the package directory, or `None` when it belongs
/// to no test binary cargo builds by convention (`tests/ui/*.rs` fixtures, say, are still
/// placed: they simply hold no test functions). `has_lib` says whether the package has
/// `src/lib.rs` (else `src/` modules belong to `src/main.rs`).
#[must_use]
pub fn place_file(rel: &Path, has_lib: bool) -> Option<FilePlace> {
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let (first, rest) = parts.split_first()?;
    let modules_of = |segs: &[String]| -> Vec<String> {
        let mut out: Vec<String> = segs
            .iter()
            .map(|s| s.strip_suffix(".rs").unwrap_or(s).to_owned())
            .collect();
        if out.last().is_some_and(|l| l == "mod") {
            out.pop();
        }
        // A binary's or library's root file is the root module.
        if out.len() == 1 && out.first().is_some_and(|m| m == "main" || m == "lib") {
            out.clear();
        }
        out
    };
    // `dir/<name>.rs` is a binary of its own; `dir/<name>/…` are the modules of
    // `dir/<name>/main.rs`.
    let binary = |dir: &str, segs: &[String]| -> Option<FilePlace> {
        let (name, inner) = segs.split_first()?;
        Some(if inner.is_empty() {
            FilePlace {
                target_root: format!("{dir}/{name}"),
                modules: Vec::new(),
            }
        } else {
            FilePlace {
                target_root: format!("{dir}/{name}/main.rs"),
                modules: modules_of(inner),
            }
        })
    };
    match first.as_str() {
        "src" if rest.first().is_some_and(|s| s == "bin") => binary("src/bin", rest.get(1..)?),
        "src" => Some(FilePlace {
            target_root: if has_lib { "src/lib.rs" } else { "src/main.rs" }.to_owned(),
            modules: modules_of(rest),
        }),
        "tests" => binary("tests", rest),
        _ => None,
    }
}

/// An open module scope while scanning a file.
struct Scope {
    /// The brace depth outside the module (it ends when the depth returns there).
    outer_depth: i64,
    name: Option<String>,
    ids: Vec<ReqId>,
    /// Opened under `#[cfg(test)]`.
    test: bool,
}

/// The block of comments and attributes above the current line.
#[derive(Default)]
struct Pending {
    tags: Vec<(usize, Vec<ReqId>)>,
    has_test_attr: bool,
    cfg_test: bool,
}

/// Scans one file's source. `package`, `place` and `file` label what is found.
#[allow(
    clippy::too_many_lines,
    reason = "one pass over the lines: each kind of line beside the others"
)]
pub fn scan_source(src: &str, package: &str, place: &FilePlace, file: &str, out: &mut Scan) {
    let states = lex_lines(src);
    // Test code: a file under `tests/`, a `tests.rs` module, a `#[cfg(test)]` module, or a
    // test function's body. Problems are reported in test code only: production code may
    // mention a requirement however it likes.
    let file_is_test = place.target_root.starts_with("tests/")
        || place.modules.last().is_some_and(|m| m == "tests");
    let mut scopes = vec![Scope {
        outer_depth: i64::MIN,
        name: None,
        ids: Vec::new(),
        test: file_is_test,
    }];
    // Inside a test function's body: the depth outside it.
    let mut test_fn_depth: Option<i64> = None;
    let mut pending = Pending::default();
    // Inside a multi-line attribute: its remaining bracket depth.
    let mut attr_open: i64 = 0;
    let problem = |out: &mut Scan, in_test: bool, line: usize, message: String| {
        if in_test {
            out.problems.push(Problem {
                file: file.to_owned(),
                line,
                message,
            });
        }
    };
    let orphan = |out: &mut Scan, in_test: bool, pending: &mut Pending| {
        pending.has_test_attr = false;
        pending.cfg_test = false;
        if !in_test {
            pending.tags.clear();
            return;
        }
        for (line, _) in pending.tags.drain(..) {
            out.problems.push(Problem {
                file: file.to_owned(),
                line,
                message: "a `// req:` tag must sit directly above a test function \
                          (`#[test]`, `#[tokio::test]`, …), with no blank line between"
                    .into(),
            });
        }
    };
    for (idx, raw) in src.lines().enumerate() {
        let lineno = idx + 1;
        let state = states.get(idx).copied().unwrap_or(LineState {
            depth: 0,
            in_code: false,
        });
        if !state.in_code {
            continue;
        }
        while scopes.len() > 1 && scopes.last().is_some_and(|s| state.depth <= s.outer_depth) {
            scopes.pop();
        }
        if test_fn_depth.is_some_and(|d| state.depth <= d) {
            test_fn_depth = None;
        }
        let in_test = test_fn_depth.is_some() || scopes.iter().any(|s| s.test);
        let line = raw.trim();
        if attr_open > 0 {
            attr_open += bracket_delta(line);
            continue;
        }
        if let Some(comment) = line.strip_prefix("//") {
            let (kind, text) = if let Some(t) = comment.strip_prefix('!') {
                (CommentKind::InnerDoc, t)
            } else if let Some(t) = comment.strip_prefix('/').filter(|t| !t.starts_with('/')) {
                (CommentKind::OuterDoc, t)
            } else {
                (CommentKind::Plain, comment)
            };
            match tag_of(text, kind) {
                TagLine::None => {}
                TagLine::Bad(msg) => problem(out, in_test, lineno, msg),
                TagLine::Ids(ids) => {
                    if kind == CommentKind::InnerDoc {
                        if let Some(scope) = scopes.last_mut() {
                            scope.ids.extend(ids);
                        }
                    } else {
                        pending.tags.push((lineno, ids));
                    }
                }
            }
            continue;
        }
        if line.is_empty() {
            orphan(out, in_test, &mut pending);
            continue;
        }
        if let Some(attr) = line.strip_prefix("#[") {
            let attr = attr.trim_start();
            if attribute_is_test(attr) {
                pending.has_test_attr = true;
            }
            if attr.starts_with("cfg(test)") {
                pending.cfg_test = true;
            }
            attr_open = 1 + bracket_delta(attr);
            continue;
        }
        if line.starts_with("#![") {
            continue;
        }
        if let Some(name) = fn_name(line) {
            if pending.has_test_attr {
                let mut ids: Vec<ReqId> = pending.tags.drain(..).flat_map(|(_, i)| i).collect();
                for scope in &scopes {
                    ids.extend(scope.ids.iter().cloned());
                }
                ids.sort();
                ids.dedup();
                let mut path: Vec<&str> = place.modules.iter().map(String::as_str).collect();
                path.extend(scopes.iter().filter_map(|s| s.name.as_deref()));
                path.push(name);
                out.tests.push(TaggedTest {
                    package: package.to_owned(),
                    target_root: place.target_root.clone(),
                    name: path.join("::"),
                    file: file.to_owned(),
                    line: lineno,
                    ids,
                });
                pending.has_test_attr = false;
                pending.cfg_test = false;
                test_fn_depth = Some(state.depth);
                continue;
            }
            orphan(out, in_test, &mut pending);
            continue;
        }
        if let Some(name) = inline_mod_name(line) {
            let test = pending.cfg_test || name == "tests";
            orphan(out, in_test, &mut pending);
            scopes.push(Scope {
                outer_depth: state.depth,
                name: Some(name.to_owned()),
                ids: Vec::new(),
                test,
            });
            continue;
        }
        // Any other code: a macro opening (`proptest! {`) keeps nothing pending either.
        orphan(out, in_test, &mut pending);
    }
    let in_test = scopes.iter().any(|s| s.test);
    orphan(out, in_test, &mut pending);
}

/// `[` minus `]` on a line of attribute text (brackets in strings are rare enough in
/// attributes to ignore).
fn bracket_delta(text: &str) -> i64 {
    let mut d = 0;
    for c in text.chars() {
        match c {
            '[' => d += 1,
            ']' => d -= 1,
            _ => {}
        }
    }
    d
}

/// Scans every package under `crates_dir` (each directory with a `Cargo.toml`): the `.rs`
/// files under its `src/` and `tests/`. Paths in the result are relative to `label_root`.
pub fn scan_crates(crates_dir: &Path, label_root: &Path) -> std::io::Result<Scan> {
    let mut out = Scan::default();
    let mut packages: Vec<PathBuf> = std::fs::read_dir(crates_dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    packages.sort();
    for pkg in packages {
        let package = pkg
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let has_lib = pkg.join("src/lib.rs").is_file();
        let mut files = Vec::new();
        for sub in ["src", "tests"] {
            collect_rs(&pkg.join(sub), &mut files)?;
        }
        files.sort();
        for path in files {
            let Ok(rel) = path.strip_prefix(&pkg) else {
                continue;
            };
            let Some(place) = place_file(rel, has_lib) else {
                continue;
            };
            let src = std::fs::read_to_string(&path)?;
            let label = path
                .strip_prefix(label_root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            scan_source(&src, &package, &place, &label, &mut out);
        }
    }
    Ok(out)
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_rs(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(src: &str) -> Scan {
        let mut out = Scan::default();
        let place = FilePlace {
            target_root: "tests/it/main.rs".into(),
            modules: vec!["access_requests".into()],
        };
        scan_source(src, "chartroom", &place, "x.rs", &mut out);
        out
    }

    fn names_ids(s: &Scan) -> Vec<(String, Vec<String>)> {
        s.tests
            .iter()
            .map(|t| (t.name.clone(), t.ids.clone()))
            .collect()
    }

    fn pair(name: &str, ids: &[&str]) -> (String, Vec<String>) {
        (name.into(), ids.iter().map(|s| (*s).to_owned()).collect())
    }

    // req: OPS-07 — the scanner reads exactly the convention: a tag directly above a test,
    // module tags, every test attribute, nested modules.
    #[test]
    fn tags_above_tests_module_tags_and_nested_modules() {
        let src = r##"//! Requests (req PR-01): prose, not a tag.
//! req: AC-02

use x::y;

// req: PR-01, AUD-01 — the deadline is 30 days
/// Some doc.
#[tokio::test(flavor = "multi_thread")]
async fn deadline() {
    let s = "#[test] fn fake() { {{";
    let c = '{';
    let (q, e) = ('"', '\'');
    let r = r#"
#[test]
fn inside_string() {}
"#;
}

#[test]
fn untagged_but_module() {}

// req: SIG-08
#[sqlx::test]
#[ignore = "slow"]
pub(crate) async fn sqlx_one() {}

#[cfg(test)]
mod tests {
    //! req: IR-02
    use super::*;

    proptest! {
        // req: IR-01
        #[test]
        fn prop(x in 0..3u8) { let _ = x; }
    }

    mod deeper {
        #[test]
        fn inner<'a>() { let _: &'a str = "}"; }
    }
}

#[test]
fn after_modules() {}
"##;
        let s = scan(src);
        assert_eq!(s.problems, vec![], "no problems");
        assert_eq!(
            names_ids(&s),
            vec![
                pair("access_requests::deadline", &["AC-02", "AUD-01", "PR-01"]),
                pair("access_requests::untagged_but_module", &["AC-02"]),
                pair("access_requests::sqlx_one", &["AC-02", "SIG-08"]),
                pair("access_requests::tests::prop", &["AC-02", "IR-01", "IR-02"]),
                pair("access_requests::tests::deeper::inner", &["AC-02", "IR-02"]),
                pair("access_requests::after_modules", &["AC-02"]),
            ]
        );
        assert_eq!(s.tests.first().map(|t| t.line), Some(9));
    }

    // req: OPS-07 — what breaks the convention is reported with its line, and tags nothing.
    #[test]
    fn malformed_and_orphan_tags_are_problems() {
        let src = r"// req AC-12
#[test]
fn no_colon() {}

/// req: AC-12
#[test]
fn outer_doc() {}

// req: audit tamper — event changed
#[test]
fn words() {}

// req: AC-02 (deny), AC-03 (objects)
#[test]
fn id_in_text() {}

// req: AC-04

#[test]
fn blank_line_between() {}

// req: AC-05
fn not_a_test() {}

#[test]
fn body_tag() {
    // req: AC-06
}

// Prose: see req: nothing. Requests are required (req AU-05).
#[test]
fn prose() {}
";
        let prod = "\
/// Throttled (see the
/// req AU-03). Production code may say it so.
pub fn login() {
    // req: AU-08 — credentials never travel in URLs.
}
";
        let s = scan(src);
        let lines: Vec<usize> = s.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![1, 5, 9, 13, 17, 22, 27], "{:#?}", s.problems);
        assert!(s.tests.iter().all(|t| t.ids.is_empty()), "{:#?}", s.tests);
        assert_eq!(s.tests.len(), 7);
        let mut out = Scan::default();
        let lib = FilePlace {
            target_root: "src/lib.rs".into(),
            modules: vec!["auth".into()],
        };
        scan_source(prod, "server", &lib, "auth.rs", &mut out);
        assert_eq!(out.problems, vec![], "production code is not test code");
    }

    #[test]
    fn id_lists() {
        assert_eq!(
            parse_id_list("AC-02, AC-03 — text"),
            Ok(vec!["AC-02".into(), "AC-03".into()])
        );
        assert_eq!(parse_id_list("OPS-07"), Ok(vec!["OPS-07".into()]));
        assert!(parse_id_list("AC-2").is_err());
        assert!(parse_id_list("AC-02(x)").is_err());
        assert!(parse_id_list("AC-02 and also AC-03").is_err());
        assert!(is_req_id("AUD-08") && !is_req_id("AUDIT-08") && !is_req_id("ac-01"));
    }

    #[test]
    fn file_places() {
        let p = |s: &str, lib| place_file(Path::new(s), lib);
        let fp = |root: &str, m: &[&str]| {
            Some(FilePlace {
                target_root: root.into(),
                modules: m.iter().map(|s| (*s).to_owned()).collect(),
            })
        };
        assert_eq!(p("src/lib.rs", true), fp("src/lib.rs", &[]));
        assert_eq!(
            p("src/registry/tests.rs", true),
            fp("src/lib.rs", &["registry", "tests"])
        );
        assert_eq!(p("src/notes/mod.rs", true), fp("src/lib.rs", &["notes"]));
        assert_eq!(p("src/serve.rs", false), fp("src/main.rs", &["serve"]));
        assert_eq!(p("tests/cluster.rs", true), fp("tests/cluster.rs", &[]));
        assert_eq!(p("tests/it/main.rs", true), fp("tests/it/main.rs", &[]));
        assert_eq!(
            p("tests/it/access_requests.rs", true),
            fp("tests/it/main.rs", &["access_requests"])
        );
        assert_eq!(p("src/bin/schema.rs", true), fp("src/bin/schema.rs", &[]));
        assert_eq!(p("benches/x.rs", true), None);
    }
}
