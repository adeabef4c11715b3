//! The tokenizer (SPEC §2 pipeline): lowercase, strip punctuation, split hyphens and
//! letter/digit boundaries, `#14` → `14`, keep clock tokens and decimal / thousands numbers
//! whole so they can be refused, then normalize multiword lexemes longest-first.

use crate::lexicon::{Entry, Role, lexicon};
use crate::outcome::{Reject, RejectReason};

/// Longest accepted final, in bytes (4 KiB). Finals are one utterance; anything longer is
/// not dictation and is refused before any work is done.
pub const MAX_FINAL_BYTES: usize = 4096;

/// Most tokens accepted in one final. A full-mouth run would be 192 values; the parser's
/// bounded backtracking is linear in this bound.
pub const MAX_TOKENS: usize = 256;

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A lexicon phrase (index into the lexicon).
    Word(usize),
    /// A digit string (display text).
    Numeral {
        /// Its value (saturating; long strings are split digit by digit, never used whole).
        value: u32,
        /// Its length in digits.
        len: usize,
        /// Written with a leading `#` (a tooth marker).
        hash: bool,
    },
    /// `h:mm` or `hh:mm`.
    Clock {
        /// Hour part.
        hour: u8,
        /// Minute part.
        minute: u8,
    },
    /// A number with `.` or `,` inside (refused, rule N3), or another malformed number.
    Decimal,
    /// A comma between words: separates clauses and tooth-list items; multiword lexemes
    /// never span it.
    Sep,
    /// Not in the lexicon.
    Oov,
}

/// One token: its kind and the text it was read from (normalized, lower case).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// Kind.
    pub kind: Kind,
    /// Normalized text (the lexicon phrase for words).
    pub text: String,
}

impl Token {
    /// The lexicon entry of a word token.
    #[must_use]
    pub fn entry(&self) -> Option<&'static Entry> {
        match self.kind {
            Kind::Word(i) => lexicon().entry(i),
            _ => None,
        }
    }

    /// The first role of a word token matching `f`.
    pub fn role<T>(&self, f: impl Fn(Role) -> Option<T>) -> Option<T> {
        self.entry()?.find(f)
    }

    /// Whether a word token has a role matching `f`.
    pub fn is(&self, f: impl Fn(Role) -> bool) -> bool {
        self.entry().is_some_and(|e| e.has(f))
    }

    /// Whether the token counts as core vocabulary (rule A1).
    #[must_use]
    pub fn is_core(&self) -> bool {
        match self.kind {
            Kind::Word(_) => self.entry().is_some_and(Entry::is_core),
            Kind::Numeral { .. } | Kind::Clock { .. } | Kind::Decimal => true,
            Kind::Sep | Kind::Oov => false,
        }
    }
}

/// A tokenized final.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Tokens, fillers removed.
    pub tokens: Vec<Token>,
    /// Fillers dropped, in order.
    pub fillers: Vec<String>,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Piece {
    None,
    Word,
    Number,
}

struct Scanner {
    raw: Vec<(Piece, String, bool)>,
    cur: String,
    piece: Piece,
    hash: bool,
}

impl Scanner {
    fn flush(&mut self) {
        if self.piece != Piece::None && !self.cur.is_empty() {
            let text = std::mem::take(&mut self.cur);
            self.raw.push((self.piece, text, self.hash));
        }
        self.cur.clear();
        self.piece = Piece::None;
        self.hash = false;
    }

    fn push(&mut self, piece: Piece, c: char) {
        if self.piece != piece {
            self.flush();
            self.piece = piece;
        }
        self.cur.push(c);
    }
}

/// Splits a final into tokens.
///
/// Refuses (before parsing) a final over [`MAX_FINAL_BYTES`] or [`MAX_TOKENS`].
pub fn tokenize(text: &str) -> Result<Tokens, Reject> {
    if text.len() > MAX_FINAL_BYTES {
        return Err(Reject::new(
            RejectReason::TooLong,
            format!("{} bytes", text.len()),
        ));
    }
    let chars: Vec<char> = text.to_lowercase().chars().collect();
    let mut sc = Scanner {
        raw: Vec::new(),
        cur: String::new(),
        piece: Piece::None,
        hash: false,
    };
    let mut hash_next = false;
    for (i, &c) in chars.iter().enumerate() {
        let next_is_digit = chars.get(i + 1).is_some_and(char::is_ascii_digit);
        let hash = std::mem::take(&mut hash_next);
        if c.is_ascii_digit() {
            let starting = sc.piece != Piece::Number;
            sc.push(Piece::Number, c);
            if starting {
                sc.hash = hash;
            }
        } else if matches!(c, '.' | ',' | ':') && sc.piece == Piece::Number && next_is_digit {
            sc.cur.push(c);
        } else if c == ',' {
            sc.flush();
            if sc.raw.last().is_some_and(|(p, _, _)| *p != Piece::None) {
                sc.raw.push((Piece::None, ",".to_owned(), false));
            }
        } else if c == '#' {
            sc.flush();
            hash_next = true;
        } else if matches!(c, '\'' | '\u{2019}') {
            // "let's" → "lets": apostrophes join.
        } else if c.is_alphanumeric() {
            sc.push(Piece::Word, c);
        } else {
            sc.flush();
        }
        if sc.raw.len() > MAX_TOKENS {
            return Err(Reject::new(
                RejectReason::TooManyTokens,
                format!("more than {MAX_TOKENS} tokens"),
            ));
        }
    }
    sc.flush();
    if sc.raw.len() > MAX_TOKENS {
        return Err(Reject::new(
            RejectReason::TooManyTokens,
            format!("{} tokens", sc.raw.len()),
        ));
    }
    Ok(normalize(sc.raw))
}

fn number_token(text: String, hash: bool) -> Token {
    let kind = if text.bytes().all(|b| b.is_ascii_digit()) {
        let value = text.bytes().fold(0u32, |acc, b| {
            acc.saturating_mul(10).saturating_add(u32::from(b - b'0'))
        });
        Kind::Numeral {
            value,
            len: text.len(),
            hash,
        }
    } else if let Some((h, m)) = text.split_once(':').filter(|(h, m)| {
        (1..=2).contains(&h.len())
            && m.len() == 2
            && h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit())
    }) {
        Kind::Clock {
            hour: h.parse().unwrap_or(u8::MAX),
            minute: m.parse().unwrap_or(u8::MAX),
        }
    } else {
        Kind::Decimal
    };
    Token { kind, text }
}

fn normalize(raw: Vec<(Piece, String, bool)>) -> Tokens {
    let lex = lexicon();
    let mut out = Tokens::default();
    let mut words: Vec<String> = Vec::new();
    let flush_words = |words: &mut Vec<String>, out: &mut Tokens| {
        let mut i = 0;
        let mut phrase = String::new();
        while i < words.len() {
            let mut matched = None;
            for n in (1..=lex.max_words().min(words.len() - i)).rev() {
                phrase.clear();
                for (k, w) in words.iter().skip(i).take(n).enumerate() {
                    if k > 0 {
                        phrase.push(' ');
                    }
                    phrase.push_str(w);
                }
                if let Some(idx) = lex.index_of(&phrase) {
                    matched = Some((idx, n));
                    break;
                }
            }
            if let Some((idx, n)) = matched {
                let entry = lex.entry(idx);
                let text = entry.map(|e| e.phrase.clone()).unwrap_or_default();
                if entry.is_some_and(|e| e.roles == [Role::Filler]) {
                    out.fillers.push(text);
                } else {
                    out.tokens.push(Token {
                        kind: Kind::Word(idx),
                        text,
                    });
                }
                i += n;
            } else {
                let text = words.get(i).cloned().unwrap_or_default();
                out.tokens.push(Token {
                    kind: Kind::Oov,
                    text,
                });
                i += 1;
            }
        }
        words.clear();
    };
    for (piece, text, hash) in raw {
        match piece {
            Piece::Word => words.push(text),
            Piece::Number => {
                flush_words(&mut words, &mut out);
                out.tokens.push(number_token(text, hash));
            }
            Piece::None => {
                flush_words(&mut words, &mut out);
                out.tokens.push(Token {
                    kind: Kind::Sep,
                    text,
                });
            }
        }
    }
    flush_words(&mut words, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<String> {
        tokenize(s)
            .unwrap()
            .tokens
            .into_iter()
            .map(|t| t.text)
            .collect()
    }

    fn kinds(s: &str) -> Vec<Kind> {
        tokenize(s)
            .unwrap()
            .tokens
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn splitting_and_normalizing() {
        let cases: &[(&str, &[&str])] = &[
            ("Jump to 2:30.", &["jump", "to", "2:30"]),
            ("twenty-one", &["twenty", "one"]),
            ("UR6", &["ur", "6"]),
            ("#14", &["14"]),
            (
                "go back to tooth three mesial buccal six",
                &["go back", "to", "tooth", "three", "mesial buccal", "six"],
            ),
            (
                "bleeding distal, lingual",
                &["bleeding", "distal", ",", "lingual"],
            ),
            ("B O P", &["b o p"]),
            ("through and through", &["through and through"]),
            ("let's", &["lets"]),
            ("1,010 and 3.5", &["1,010", "and", "3.5"]),
            ("scratch that!", &["scratch that"]),
        ];
        for (input, want) in cases {
            assert_eq!(texts(input), *want, "{input}");
        }
    }

    #[test]
    fn kinds_of_numbers() {
        assert_eq!(
            kinds("#14"),
            vec![Kind::Numeral {
                value: 14,
                len: 2,
                hash: true
            }]
        );
        assert_eq!(
            kinds("323"),
            vec![Kind::Numeral {
                value: 323,
                len: 3,
                hash: false
            }]
        );
        assert_eq!(
            kinds("2:30"),
            vec![Kind::Clock {
                hour: 2,
                minute: 30
            }]
        );
        assert_eq!(kinds("3.5"), vec![Kind::Decimal]);
        assert_eq!(kinds("12:345"), vec![Kind::Decimal]);
        assert_eq!(
            kinds("99999999999999999999"),
            vec![Kind::Numeral {
                value: u32::MAX,
                len: 20,
                hash: false
            }]
        );
    }

    #[test]
    fn fillers_are_dropped_and_unknown_words_kept() {
        let t = tokenize("three um four uh").unwrap();
        assert_eq!(t.fillers, vec!["um", "uh"]);
        assert_eq!(t.tokens.len(), 2);
        assert_eq!(kinds("gums"), vec![Kind::Oov]);
    }

    #[test]
    fn limits() {
        let long = "a".repeat(MAX_FINAL_BYTES + 1);
        assert_eq!(
            tokenize(&long).unwrap_err(),
            Reject::new(RejectReason::TooLong, "4097 bytes")
        );
        let many = "one ".repeat(MAX_TOKENS + 1);
        assert_eq!(
            tokenize(&many).unwrap_err().reason,
            RejectReason::TooManyTokens
        );
        assert!(tokenize(&"one ".repeat(MAX_TOKENS)).is_ok());
    }
}
