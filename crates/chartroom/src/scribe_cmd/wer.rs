//! Word error rate: words normalized (lower case, punctuation dropped, numbers spelled out),
//! then the edit distance between reference and hypothesis over the reference's length.

/// The words of `text` as scored: lower case, letters, digits and apostrophes only, numbers
/// from 0 to 9,999 written out (`14` and `fourteen` are the same word, `3.5` is
/// `three point five`).
#[must_use]
pub fn normalize(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect();
    for token in cleaned.split_whitespace() {
        // A dot is a decimal point between digits, punctuation anywhere else.
        let parts: Vec<&str> = token.split('.').filter(|p| !p.is_empty()).collect();
        let decimal = parts.len() == 2
            && token.matches('.').count() == 1
            && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()));
        if decimal {
            if let [int, frac] = parts.as_slice() {
                push_number(int, &mut words);
                words.push("point".to_owned());
                for d in frac.chars() {
                    push_number(&d.to_string(), &mut words);
                }
            }
            continue;
        }
        for part in parts {
            let part = part.trim_matches('\'');
            if part.is_empty() {
                continue;
            }
            if part.chars().all(|c| c.is_ascii_digit()) {
                push_number(part, &mut words);
            } else {
                words.push(part.to_owned());
            }
        }
    }
    words
}

fn push_number(digits: &str, words: &mut Vec<String>) {
    match digits.parse::<u32>() {
        Ok(n) if n < 10_000 => words.extend(spell(n).split(' ').map(str::to_owned)),
        _ => words.extend(digits.chars().filter_map(|c| c.to_digit(10)).map(spell)),
    }
}

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "ten", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// `n` (below 10,000) in words, as espeak-ng reads it ("one hundred and five" without "and").
#[must_use]
pub fn spell(n: u32) -> String {
    let word = |i: u32, table: &[&str]| {
        table
            .get(usize::try_from(i).unwrap_or(usize::MAX))
            .copied()
            .unwrap_or("")
            .to_owned()
    };
    if n < 20 {
        return word(n, &ONES);
    }
    if n < 100 {
        let (t, o) = (n / 10, n % 10);
        return if o == 0 {
            word(t, &TENS)
        } else {
            format!("{} {}", word(t, &TENS), word(o, &ONES))
        };
    }
    let (big, unit, rest) = if n < 1000 {
        (n / 100, "hundred", n % 100)
    } else {
        (n / 1000, "thousand", n % 1000)
    };
    if rest == 0 {
        format!("{} {unit}", spell(big))
    } else {
        format!("{} {unit} {}", spell(big), spell(rest))
    }
}

/// Word-level edit distance (substitutions, insertions, deletions) between two word lists.
#[must_use]
pub fn edits(reference: &[String], hypothesis: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut cur = Vec::with_capacity(hypothesis.len() + 1);
        cur.push(i + 1);
        for (j, h) in hypothesis.iter().enumerate() {
            let diag = prev.get(j).copied().unwrap_or(usize::MAX - 1) + usize::from(r != h);
            let up = prev.get(j + 1).copied().unwrap_or(usize::MAX - 1) + 1;
            let left = cur.get(j).copied().unwrap_or(usize::MAX - 1) + 1;
            cur.push(diag.min(up).min(left));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

/// Word error rate of `hypothesis` against `reference` (0 for an empty reference and
/// hypothesis).
#[must_use]
pub fn rate(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (normalize(reference), normalize(hypothesis));
    ratio(edits(&r, &h), r.len())
}

/// `edits / words` as a rate (0 when both are 0).
#[must_use]
#[expect(clippy::cast_precision_loss, reason = "word counts are small")]
pub fn ratio(edits: usize, words: usize) -> f64 {
    if words == 0 {
        return if edits == 0 { 0.0 } else { 1.0 };
    }
    edits as f64 / words as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_punctuation_are_normalized() {
        assert_eq!(
            normalize("Probing 3-2-3 on #14, it's 3.5 mm."),
            [
                "probing", "three", "two", "three", "on", "fourteen", "it's", "three", "point",
                "five", "mm"
            ]
        );
        assert_eq!(spell(105), "one hundred five");
        assert_eq!(spell(2026), "two thousand twenty six");
        assert_eq!(spell(40), "forty");
        assert_eq!(normalize("Fourteen"), normalize("14"));
    }

    #[test]
    fn word_error_rate_counts_substitutions_insertions_and_deletions() {
        assert!((rate("a b c d", "a b c d") - 0.0).abs() < 1e-9);
        assert!((rate("a b c d", "a x c d") - 0.25).abs() < 1e-9);
        assert!((rate("a b c d", "a b c") - 0.25).abs() < 1e-9);
        assert!((rate("a b c d", "a b y c d") - 0.25).abs() < 1e-9);
        assert!((rate("a b", "") - 1.0).abs() < 1e-9);
        assert!((rate("", "") - 0.0).abs() < 1e-9);
        assert!((rate("", "x") - 1.0).abs() < 1e-9);
    }
}
