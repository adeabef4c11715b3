//! The second line: a scanner over the final bytes of every outbound payload that fails
//! closed on anything that looks like a client's data.
//!
//! The payload is read in several views — as sent, percent-decoded (form bodies), with JSON
//! string escapes undone, quoted-printable decoded and with MIME base64 blocks decoded — and
//! each view is checked. A finding stops the send; it names the kind of finding only.

use std::collections::{BTreeSet, HashMap, HashSet};

use base64::Engine as _;

use super::slots::{LinkPurpose, PracticeName, PracticePhone, PublicPage, is_token};

/// Largest payload scanned (and therefore sent), bytes.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// Shortest family name matched on its own (shorter ones only with the given name).
const MIN_FAMILY_ALONE_CHARS: usize = 4;
/// Digit runs at least this long (without separators) are refused.
const LONG_DIGIT_RUN: usize = 9;
/// Phone numbers are compared on at most their last 10 digits, at least 7.
const PHONE_DIGITS: usize = 10;
const MIN_PHONE_DIGITS: usize = 7;

/// What the scanner found (the matched text is never kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Finding {
    /// A client's name.
    ClientName,
    /// A client's phone number.
    ClientPhone,
    /// A client's email address.
    ClientEmail,
    /// A client's street address.
    ClientAddress,
    /// An email address that is not the practice's own.
    EmailAddress,
    /// A number that passes the Luhn check (13–19 digits).
    CardNumber,
    /// A number shaped like a US social security number.
    SsnLike,
    /// A run of nine or more digits.
    LongDigitRun,
    /// A link to a host not on the allow-list.
    LinkHost,
    /// A link on an allowed host whose path is not an opaque link.
    LinkPath,
    /// The payload is larger than [`MAX_PAYLOAD_BYTES`].
    TooLarge,
}

impl Finding {
    /// A stable lower-case name (for the audit event).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::ClientName => "client_name",
            Self::ClientPhone => "client_phone",
            Self::ClientEmail => "client_email",
            Self::ClientAddress => "client_address",
            Self::EmailAddress => "email_address",
            Self::CardNumber => "card_number",
            Self::SsnLike => "ssn_like",
            Self::LongDigitRun => "long_digit_run",
            Self::LinkHost => "link_host",
            Self::LinkPath => "link_path",
            Self::TooLarge => "too_large",
        }
    }
}

/// Why a scanner could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScannerError {
    /// The allow-list of link hosts is empty.
    #[error("the scanner needs at least one allowed link host")]
    NoHosts,
}

/// One of the practice's own clients, as the scanner must recognize them.
#[derive(Debug, Clone, Default)]
pub struct KnownClient {
    /// Given name(s).
    pub given: String,
    /// Family name(s).
    pub family: String,
    /// Phone numbers, any format.
    pub phones: Vec<String>,
    /// Email addresses.
    pub emails: Vec<String>,
    /// Street address lines (e.g. `12 Oak Street`).
    pub address_lines: Vec<String>,
}

/// A pattern of words (lower case), matched as consecutive words.
type Words = Vec<String>;

/// The scanner for one practice: its clients, its own contact points and the link hosts.
#[derive(Debug, Clone)]
pub struct Scanner {
    /// First word → the word sequences that start with it (names and addresses).
    sequences: HashMap<String, Vec<(Words, Finding)>>,
    phones: HashSet<String>,
    emails: HashSet<String>,
    own_phones: HashSet<String>,
    own_emails: HashSet<String>,
    hosts: BTreeSet<String>,
}

/// The words of `s`: maximal runs of letters and digits, lower case.
fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The comparable tail of a phone number (its last 10 digits), when it has at least 7.
fn phone_key(s: &str) -> Option<String> {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    (digits.len() >= MIN_PHONE_DIGITS)
        .then(|| digits[digits.len().saturating_sub(PHONE_DIGITS)..].to_owned())
}

/// Words every template and the practice's own name use: never matched as a family name
/// alone (a client called "Book" is still matched with the given name).
fn common_words(practice: Option<&PracticeName>) -> HashSet<String> {
    let mut out: HashSet<String> = [
        "your appointment is booked for confirm cancel or reschedule reminder of on now manage \
         it cancelled to book again call please fill in forms before visit time opened up first \
         accept gets goes the you have payment make will no more texts reply start resume \
         resumed stop help messages this an automated message do not with health information \
         text a moved open http https www",
        // The owners' subprocessor notice, and the months its date is written with.
        "the list of subprocessors subprocessor this installation chartroom uses has changed \
         effective details published and its dated history january february march april may \
         june july august september october november december",
    ]
    .iter()
    .flat_map(|s| words(s))
    .collect();
    if let Some(p) = practice {
        out.extend(words(p.as_str()));
    }
    out
}

impl Scanner {
    /// A scanner for a practice's outbound payloads.
    ///
    /// `clients` are the practice's own clients (names, phones, emails, addresses);
    /// `hosts` the hosts links may point to (the practice's public origin); `own_phones` and
    /// `own_emails` the practice's own contact points, which messages may carry.
    ///
    /// # Errors
    /// [`ScannerError::NoHosts`] when `hosts` is empty.
    pub fn new<'a>(
        clients: impl IntoIterator<Item = &'a KnownClient>,
        hosts: impl IntoIterator<Item = String>,
        own_phones: &[PracticePhone],
        own_emails: &[String],
        practice: Option<&PracticeName>,
    ) -> Result<Self, ScannerError> {
        let hosts: BTreeSet<String> = hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect();
        if hosts.is_empty() {
            return Err(ScannerError::NoHosts);
        }
        let common = common_words(practice);
        let mut s = Self {
            sequences: HashMap::new(),
            phones: HashSet::new(),
            emails: HashSet::new(),
            own_phones: own_phones
                .iter()
                .filter_map(|p| phone_key(p.as_str()))
                .collect(),
            own_emails: own_emails.iter().map(|e| e.trim().to_lowercase()).collect(),
            hosts,
        };
        for c in clients {
            let (given, family) = (words(&c.given), words(&c.family));
            if !given.is_empty() && !family.is_empty() {
                s.add(
                    [given.clone(), family.clone()].concat(),
                    Finding::ClientName,
                );
                s.add([family.clone(), given].concat(), Finding::ClientName);
            }
            let alone = family.iter().map(|w| w.chars().count()).sum::<usize>()
                >= MIN_FAMILY_ALONE_CHARS
                && !(family.len() == 1 && family.iter().all(|w| common.contains(w)));
            if alone {
                s.add(family, Finding::ClientName);
            }
            s.phones
                .extend(c.phones.iter().filter_map(|p| phone_key(p)));
            s.emails.extend(
                c.emails
                    .iter()
                    .map(|e| e.trim().to_lowercase())
                    .filter(|e| e.contains('@')),
            );
            for line in &c.address_lines {
                let w = words(line);
                // "12 Oak Street" → "12 oak": the number and the street's first word.
                let pattern: Words = if w
                    .first()
                    .is_some_and(|f| f.chars().all(|c| c.is_ascii_digit()))
                {
                    w.into_iter().take(2).collect()
                } else {
                    w
                };
                if pattern.len() >= 2 {
                    s.add(pattern, Finding::ClientAddress);
                }
            }
        }
        s.phones.retain(|p| !s.own_phones.contains(p));
        Ok(s)
    }

    fn add(&mut self, pattern: Words, finding: Finding) {
        if let Some(first) = pattern.first().cloned() {
            let list = self.sequences.entry(first).or_default();
            if !list.iter().any(|(p, _)| *p == pattern) {
                list.push((pattern, finding));
            }
        }
    }

    /// Scans the final bytes of a payload. `recipient` is the phone number or email address
    /// the payload is addressed to (it may appear in the envelope, e.g. a JSON `to` field).
    ///
    /// # Errors
    /// The first [`Finding`] (in the order of [`Finding`]'s variants) in any view.
    pub fn scan(&self, payload: &[u8], recipient: Option<&str>) -> Result<(), Finding> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(Finding::TooLarge);
        }
        let recipient_phone =
            recipient.and_then(|r| (!r.contains('@')).then(|| phone_key(r)).flatten());
        let recipient_email = recipient
            .filter(|r| r.contains('@'))
            .map(|r| r.trim().to_lowercase());
        let mut findings = BTreeSet::new();
        for view in views(payload) {
            self.scan_text(
                &view,
                recipient_phone.as_deref(),
                recipient_email.as_deref(),
                &mut findings,
            );
        }
        findings.into_iter().next().map_or(Ok(()), Err)
    }

    fn scan_text(
        &self,
        text: &str,
        recipient_phone: Option<&str>,
        recipient_email: Option<&str>,
        out: &mut BTreeSet<Finding>,
    ) {
        // Links first; what is left is scanned for the rest (a link's token is opaque).
        let text = self.scan_links(text, out);
        let text = self.scan_emails(&text, recipient_email, out);
        let text = strip_uuids(&text);
        self.scan_digits(&text, recipient_phone, out);
        let w = words(&text);
        for i in 0..w.len() {
            if let Some(candidates) = w.get(i).and_then(|first| self.sequences.get(first)) {
                for (pattern, finding) in candidates {
                    if w.get(i..i + pattern.len())
                        .is_some_and(|s| s == pattern.as_slice())
                    {
                        out.insert(*finding);
                    }
                }
            }
        }
    }

    /// Checks every `http(s)://` link and `www.` host; returns the text with links removed.
    fn scan_links(&self, text: &str, out: &mut BTreeSet<Finding>) -> String {
        let lower = text.to_ascii_lowercase();
        let mut rest = String::with_capacity(text.len());
        let mut i = 0;
        while i < text.len() {
            let at = ["https://", "http://", "www."]
                .iter()
                .filter_map(|p| lower[i..].find(p).map(|j| (i + j, *p)))
                .min_by_key(|(j, _)| *j);
            let Some((start, prefix)) = at else {
                rest.push_str(&text[i..]);
                break;
            };
            rest.push_str(&text[i..start]);
            rest.push(' ');
            let end = text[start..]
                .find(|c: char| {
                    // `&` ends a link too: form bodies join fields with it, and an opaque
                    // link has no query, so what follows is scanned as text.
                    c.is_whitespace()
                        || matches!(c, '"' | '\'' | '<' | '>' | '\\' | ')' | ']' | '&')
                })
                .map_or(text.len(), |e| start + e);
            let link = text[start..end].trim_end_matches(['.', ',', ';', '!', '?']);
            let url = if prefix == "www." {
                url::Url::parse(&format!("https://{link}"))
            } else {
                url::Url::parse(link)
            };
            match url {
                Ok(u) => {
                    let host = u.host_str().unwrap_or_default().to_ascii_lowercase();
                    if !self.hosts.contains(&host) {
                        out.insert(Finding::LinkHost);
                    } else if !opaque_path(&u) {
                        out.insert(Finding::LinkPath);
                    }
                }
                Err(_) => {
                    out.insert(Finding::LinkHost);
                }
            }
            i = end.max(start + prefix.len());
        }
        rest
    }

    /// Checks every email address; returns the text with them removed.
    fn scan_emails(
        &self,
        text: &str,
        recipient: Option<&str>,
        out: &mut BTreeSet<Finding>,
    ) -> String {
        let is_local = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-');
        let is_domain = |c: char| c.is_alphanumeric() || matches!(c, '.' | '-');
        let chars: Vec<char> = text.chars().collect();
        let mut keep = vec![true; chars.len()];
        for (at, _) in chars.iter().enumerate().filter(|(_, c)| **c == '@') {
            let mut s = at;
            while s > 0 && chars.get(s - 1).is_some_and(|c| is_local(*c)) {
                s -= 1;
            }
            let mut e = at + 1;
            while chars.get(e).is_some_and(|c| is_domain(*c)) {
                e += 1;
            }
            let domain: String = chars.get(at + 1..e).unwrap_or_default().iter().collect();
            let domain = domain.trim_end_matches('.');
            if s == at || !domain.contains('.') {
                continue;
            }
            let local: String = chars.get(s..at).unwrap_or_default().iter().collect();
            let address = format!("{local}@{domain}").to_lowercase();
            if self.emails.contains(&address) && recipient != Some(address.as_str()) {
                out.insert(Finding::ClientEmail);
            } else if !self.own_emails.contains(&address) && recipient != Some(address.as_str()) {
                out.insert(Finding::EmailAddress);
            }
            for k in keep.iter_mut().take(e).skip(s) {
                *k = false;
            }
        }
        chars
            .iter()
            .zip(keep)
            .map(|(c, k)| if k { *c } else { ' ' })
            .collect()
    }

    /// Phone numbers, card numbers, SSN-like numbers and long digit runs.
    fn scan_digits(&self, text: &str, recipient_phone: Option<&str>, out: &mut BTreeSet<Finding>) {
        for group in digit_groups(text) {
            let digits: String = group.text.chars().filter(char::is_ascii_digit).collect();
            if let Some(key) = phone_key(&digits) {
                if self.phones.contains(&key) && recipient_phone != Some(key.as_str()) {
                    out.insert(Finding::ClientPhone);
                    continue;
                }
                if self.own_phones.contains(&key) || recipient_phone == Some(key.as_str()) {
                    continue;
                }
            }
            if (13..=19).contains(&digits.len()) && luhn(&digits) {
                out.insert(Finding::CardNumber);
            }
            if ssn_like(group.text) {
                out.insert(Finding::SsnLike);
            }
            if group.longest_run >= LONG_DIGIT_RUN {
                out.insert(Finding::LongDigitRun);
            }
        }
    }
}

/// Whether a link's path is `/{purpose}/{token}` or a fixed public page (`/subprocessors`)
/// and nothing else.
fn opaque_path(u: &url::Url) -> bool {
    if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() {
        return false;
    }
    let mut parts = u.path().trim_start_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(page), None, None) => PublicPage::ALL.iter().any(|p| p.segment() == page),
        (Some(purpose), Some(token), None) => {
            LinkPurpose::ALL.iter().any(|p| p.segment() == purpose) && is_token(token)
        }
        _ => false,
    }
}

/// A group of digits joined by single separators (space, `-`, `.`, `(`, `)`, `+`), not part
/// of a word with letters.
struct DigitGroup<'a> {
    text: &'a str,
    longest_run: usize,
}

fn digit_groups(text: &str) -> Vec<DigitGroup<'_>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts = b.get(i).is_some_and(u8::is_ascii_digit)
            && (i == 0 || !b.get(i - 1).is_some_and(u8::is_ascii_alphanumeric));
        if !starts {
            i += 1;
            continue;
        }
        let start = if i > 0 && matches!(b.get(i - 1), Some(b'+' | b'(')) {
            i - 1
        } else {
            i
        };
        let (mut end, mut run, mut longest) = (i, 0usize, 0usize);
        let mut j = i;
        while j < b.len() {
            match b.get(j) {
                Some(c) if c.is_ascii_digit() => {
                    run += 1;
                    longest = longest.max(run);
                    end = j + 1;
                    j += 1;
                }
                Some(b' ' | b'-' | b'.' | b'(' | b')')
                    if b.get(j + 1).is_some_and(u8::is_ascii_digit)
                        || (matches!(b.get(j), Some(b')'))
                            && b.get(j + 2).is_some_and(u8::is_ascii_digit)) =>
                {
                    run = 0;
                    j += 1;
                }
                _ => break,
            }
        }
        // Digits glued to letters (an identifier such as `cus_9f3a…` or `7f3b1234e`) are
        // not a number.
        let glued = b.get(end).is_some_and(u8::is_ascii_alphabetic);
        if !glued {
            out.push(DigitGroup {
                text: text.get(start..end).unwrap_or_default(),
                longest_run: longest,
            });
        }
        i = end.max(i + 1);
    }
    out
}

/// The Luhn check (ISO/IEC 7812-1).
fn luhn(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.bytes().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// `ddd-dd-dddd` or `ddd dd dddd`.
fn ssn_like(group: &str) -> bool {
    let parts: Vec<&str> = group.split(['-', ' ']).collect();
    matches!(parts.as_slice(), [a, b, c] if a.len() == 3 && b.len() == 2 && c.len() == 4
        && parts.iter().all(|p| p.bytes().all(|x| x.is_ascii_digit())))
}

/// Replaces UUIDs (8-4-4-4-12 hex) by spaces: identifiers, not numbers.
fn strip_uuids(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if let Some(seg) = b.get(i..i + 36)
            && is_uuid(seg)
            && (i == 0 || !b.get(i - 1).is_some_and(u8::is_ascii_hexdigit))
        {
            out.push(' ');
            i += 36;
            continue;
        }
        let ch = text[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(k, c)| {
            if matches!(k, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// The views of a payload that are scanned.
fn views(payload: &[u8]) -> Vec<String> {
    // UUIDs (opaque references) go first: a form field `ref=4a…` must not be read as a
    // quoted-printable `=4a` that cuts the UUID into digits.
    let raw = strip_uuids(&String::from_utf8_lossy(payload));
    let mut out = vec![
        percent_decode(&raw),
        json_unescape(&raw),
        quoted_printable(&raw),
    ];
    out.extend(base64_blocks(&raw));
    out.push(raw);
    out
}

fn percent_decode(s: &str) -> String {
    let replaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&replaced)
        .decode_utf8_lossy()
        .into_owned()
}

fn json_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'r' | 't') => out.push(' '),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push(' '),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn quoted_printable(s: &str) -> String {
    let joined = s.replace("=\r\n", "").replace("=\n", "");
    let b = joined.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b.get(i) == Some(&b'=')
            && let Some(hex) = b.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.extend(b.get(i).copied());
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes runs of base64 lines (MIME bodies) of at least 16 characters.
fn base64_blocks(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block = String::new();
    let flush = |block: &mut String, out: &mut Vec<String>| {
        if block.len() >= 16
            && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(block.as_bytes())
        {
            out.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        block.clear();
    };
    for line in s.lines() {
        let t = line.trim();
        if !t.is_empty()
            && t.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='))
        {
            block.push_str(t);
        } else {
            flush(&mut block, &mut out);
        }
    }
    flush(&mut block, &mut out);
    out
}

#[cfg(test)]
mod tests;
