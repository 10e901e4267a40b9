//! Answer normalisation as the official SQuAD v1.1 evaluation script does it: lower-case,
//! drop ASCII punctuation, drop the articles *a*, *an*, *the* (as whole words), and collapse
//! whitespace.

/// A "word" character in the sense of Python's `\b` on text: a letter, digit or underscore.
fn word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whitespace as Python's `str.split()` sees it (Unicode whitespace plus the ASCII
/// information separators).
fn python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The SQuAD-normalised text.
pub fn squad(text: &str) -> String {
    let lowered = text.to_lowercase();
    let no_punc: String = lowered.chars().filter(|c| !c.is_ascii_punctuation()).collect();
    let no_articles = remove_articles(&no_punc);
    no_articles
        .split(python_space)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The normalised tokens (SQuAD's `normalize_answer(s).split()`).
pub fn tokens(text: &str) -> Vec<String> {
    squad(text)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Replaces each whole-word `a`, `an` or `the` with a space (`re.sub(r'\b(a|an|the)\b', ' ', s)`).
fn remove_articles(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let before_ok = i == 0 || !word_char(chars[i - 1]);
        if before_ok {
            let hit = ["the", "an", "a"].iter().find_map(|a| {
                let n = a.len();
                let matches = chars.len() >= i + n
                    && chars[i..i + n].iter().copied().eq(a.chars())
                    && (i + n == chars.len() || !word_char(chars[i + n]));
                matches.then_some(n)
            });
            if let Some(n) = hit {
                out.push(' ');
                i += n;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_official_script() {
        // Worked by hand against SQuAD v1.1's normalize_answer.
        assert_eq!(squad("The Eiffel Tower!"), "eiffel tower");
        assert_eq!(squad("  an  Apple,\ta pear "), "apple pear");
        assert_eq!(squad("Theatre of the Absurd"), "theatre of absurd");
        assert_eq!(squad("A.D. 1066"), "ad 1066");
        assert_eq!(squad("the—cat"), "—cat");
        assert_eq!(squad("Saint-Étienne"), "saintétienne");
        assert_eq!(squad("a"), "");
        assert_eq!(squad("$1,000.50"), "100050");
        assert_eq!(tokens("The cat, the hat."), ["cat", "hat"]);
    }
}
