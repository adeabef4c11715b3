//! The address rule: which street addresses may leave Chartroom (a geocoding query), given
//! the practice's own clients' addresses. One home for "is this a client's address, or near
//! one".
//!
//! An address is read as a house number (the first number that is not a unit number) and a
//! street (its other words, lower case, common abbreviations spelled out: `St` → `street`,
//! `Ave` → `avenue`, …; unit designators such as `Apt 4` or `Flat 2` dropped). A query is
//! refused when its street is a client's street (one contained in the other, word by word)
//! and
//! - the house numbers are within [`NEAR_HOUSE_NUMBERS`] of each other, or either has none
//!   (a whole street where a client lives is near that client), or
//! - the postcodes are the same (compared without spaces, case-insensitively),
//!
//! so a client's exact address, a neighbour's and the client's street are all refused.

/// House numbers this close on the same street are "near" (both sides of the street,
/// a few doors either way).
pub const NEAR_HOUSE_NUMBERS: u32 = 10;
/// Longest address line or postcode read, characters.
const MAX_FIELD_CHARS: usize = 300;

/// A client's address as the gate knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientAddress {
    /// The street line (`12 Oak Street`, `Flat 2, 7 Mill Rd`).
    pub line: String,
    /// The postcode, when known.
    pub postcode: Option<String>,
}

/// Why an address was refused (the address itself is never repeated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressRefusal {
    /// It is a client's address (same street and number).
    #[error("the address is a client's address")]
    ClientAddress,
    /// It is near a client's address (same street, a near number, no number, or the same
    /// postcode).
    #[error("the address is near a client's address")]
    NearClientAddress,
    /// It has no street words, or is too long.
    #[error("the address cannot be read")]
    Unreadable,
}

/// An address as compared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed {
    number: Option<u32>,
    street: Vec<String>,
    postcode: Option<String>,
}

/// The gate: the practice's clients' addresses.
#[derive(Debug, Clone, Default)]
pub struct AddressGate {
    clients: Vec<Parsed>,
}

fn expand(word: &str) -> &str {
    match word {
        "st" | "str" => "street",
        "rd" => "road",
        "ave" | "av" => "avenue",
        "blvd" => "boulevard",
        "dr" => "drive",
        "ln" => "lane",
        "ct" => "court",
        "pl" => "place",
        "sq" => "square",
        "hwy" => "highway",
        "pkwy" => "parkway",
        "cres" => "crescent",
        "tce" | "terr" => "terrace",
        "cl" => "close",
        "mt" => "mount",
        "n" => "north",
        "s" => "south",
        "e" => "east",
        "w" => "west",
        other => other,
    }
}

const UNIT_WORDS: [&str; 9] = [
    "apt",
    "apartment",
    "unit",
    "flat",
    "suite",
    "ste",
    "floor",
    "fl",
    "room",
];

/// The leading number of a token (`12`, `12b`, `12-14` → 12), if it starts with a digit.
fn leading_number(token: &str) -> Option<u32> {
    let digits: String = token.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() || digits.len() > 7 {
        return None;
    }
    digits.parse().ok()
}

fn parse_line(line: &str, postcode: Option<&str>) -> Result<Parsed, AddressRefusal> {
    if line.chars().count() > MAX_FIELD_CHARS
        || postcode.is_some_and(|p| p.chars().count() > MAX_FIELD_CHARS)
    {
        return Err(AddressRefusal::Unreadable);
    }
    let lower = line.to_lowercase();
    let tokens: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | ';' | '/'))
        .filter(|t| !t.is_empty())
        .collect();
    let mut number = None;
    let mut street = Vec::new();
    let mut i = 0;
    while let Some(t) = tokens.get(i) {
        let t = t.trim_matches(|c: char| !c.is_alphanumeric() && c != '#' && c != '-');
        if UNIT_WORDS.contains(&t) {
            i += 2; // the designator and its number
            continue;
        }
        if t.starts_with('#') {
            i += 1;
            continue;
        }
        if let Some(n) = leading_number(t) {
            if number.is_none() {
                number = Some(n);
            }
            i += 1;
            continue;
        }
        for w in t
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            street.push(expand(w).to_owned());
        }
        i += 1;
    }
    if street.is_empty() {
        return Err(AddressRefusal::Unreadable);
    }
    let postcode = postcode
        .map(|p| {
            p.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_ascii_uppercase()
        })
        .filter(|p| !p.is_empty());
    Ok(Parsed {
        number,
        street,
        postcode,
    })
}

/// Whether `a` occurs in `b` as consecutive words.
fn contains_words(b: &[String], a: &[String]) -> bool {
    !a.is_empty() && b.windows(a.len()).any(|w| w == a)
}

fn same_street(a: &[String], b: &[String]) -> bool {
    contains_words(a, b) || contains_words(b, a)
}

impl AddressGate {
    /// A gate over the clients' addresses (unreadable ones are skipped: they cannot be
    /// compared, and a query must still be readable to pass).
    pub fn new<'a>(clients: impl IntoIterator<Item = &'a ClientAddress>) -> Self {
        let clients: Vec<Parsed> = clients
            .into_iter()
            .filter_map(|c| parse_line(&c.line, c.postcode.as_deref()).ok())
            .collect();
        Self { clients }
    }

    /// A gate over the scanner's known clients' address lines (no postcodes).
    pub fn from_known_clients<'a>(
        clients: impl IntoIterator<Item = &'a crate::KnownClient>,
    ) -> Self {
        let addresses: Vec<ClientAddress> = clients
            .into_iter()
            .flat_map(|c| c.address_lines.iter())
            .map(|l| ClientAddress {
                line: l.clone(),
                postcode: None,
            })
            .collect();
        Self::new(&addresses)
    }

    /// How many client addresses the gate compares against.
    #[must_use]
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether the gate knows no address.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Checks an address that is about to leave (`line`, with its postcode when the query
    /// carries one).
    ///
    /// # Errors
    /// [`AddressRefusal`].
    pub fn check(&self, line: &str, postcode: Option<&str>) -> Result<(), AddressRefusal> {
        let q = parse_line(line, postcode)?;
        let mut near = false;
        for c in &self.clients {
            if !same_street(&q.street, &c.street) {
                continue;
            }
            match (q.number, c.number) {
                (Some(a), Some(b)) if a == b => return Err(AddressRefusal::ClientAddress),
                (Some(a), Some(b)) if a.abs_diff(b) <= NEAR_HOUSE_NUMBERS => near = true,
                (None, _) | (_, None) => near = true,
                _ => {}
            }
            if q.postcode.is_some() && q.postcode == c.postcode {
                near = true;
            }
        }
        if near {
            Err(AddressRefusal::NearClientAddress)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> AddressGate {
        AddressGate::new(&[
            ClientAddress {
                line: "Flat 2, 12 Oak Street".into(),
                postcode: Some("ab1 2cd".into()),
            },
            ClientAddress {
                line: "400 Harbour Rd".into(),
                postcode: None,
            },
        ])
    }

    #[test]
    fn exact_and_abbreviated_addresses_are_refused() {
        let g = gate();
        assert_eq!(
            g.check("12 Oak St", None),
            Err(AddressRefusal::ClientAddress)
        );
        assert_eq!(
            g.check("12, oak street.", Some("AB12CD")),
            Err(AddressRefusal::ClientAddress)
        );
        assert_eq!(
            g.check("Unit 9 400 Harbour Road", None),
            Err(AddressRefusal::ClientAddress)
        );
    }

    #[test]
    fn near_addresses_are_refused() {
        let g = gate();
        for (line, pc) in [
            ("14 Oak Street", None),
            ("3 Oak Street", None),
            ("22 Oak Street", None),
            ("Oak Street", None),
            ("90 Oak Street", Some("AB1 2CD")),
            ("405 Harbour Road", None),
        ] {
            assert_eq!(
                g.check(line, pc),
                Err(AddressRefusal::NearClientAddress),
                "{line}"
            );
        }
    }

    #[test]
    fn other_addresses_pass() {
        let g = gate();
        assert_eq!(g.check("90 Oak Street", Some("ZZ9 9ZZ")), Ok(()));
        assert_eq!(g.check("12 Elm Street", Some("AB1 2CD")), Ok(()));
        assert_eq!(g.check("1 Harbour View", None), Ok(()));
        assert_eq!(g.check("12", None), Err(AddressRefusal::Unreadable));
    }
}
