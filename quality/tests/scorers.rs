//! Scorers against hand-worked examples.

use oae_quality::task::parse;
use oae_quality::{TaskItem, scorer};

fn item(json: &str) -> TaskItem {
    parse(json, "t").unwrap().remove(0)
}

fn score(name: &str, output: &str, item: &TaskItem) -> f64 {
    scorer(name)
        .unwrap_or_else(|| panic!("scorer {name}"))
        .score(output, item)
}

#[test]
fn squad_exact_match_normalises_like_the_official_script() {
    let it = item(r#"{"id":"a","question":"q","references":["the Seine","Seine River"],"answer_type":"extractive"}"#);
    assert_eq!(score("em", "Seine", &it), 1.0);
    assert_eq!(score("em", "The  seine.", &it), 1.0);
    assert_eq!(score("em", "seine river!", &it), 1.0, "second reference");
    assert_eq!(score("em", "The river Seine", &it), 0.0);
    assert_eq!(score("em", "", &it), 0.0);
}

#[test]
fn squad_f1_is_a_multiset_overlap_best_over_references() {
    let it =
        item(r#"{"id":"a","question":"q","references":["Denver Broncos","the Broncos"],"answer_type":"extractive"}"#);
    // "the Denver Broncos won" → [denver, broncos, won] vs [denver, broncos]: p = 2/3, r = 1.
    let f = score("f1", "The Denver Broncos won", &it);
    assert!((f - 0.8).abs() < 1e-12, "{f}");
    // vs [broncos]: p = 1/3, r = 1 → 0.5; the best is 0.8.
    assert_eq!(score("f1", "Broncos", &it), 1.0);
    assert_eq!(score("f1", "Carolina Panthers", &it), 0.0);
    // Repeated tokens count once each: [broncos, broncos] vs [denver, broncos] → p = r = 1/2.
    let f = score("f1", "Broncos broncos", &it);
    assert!((f - 2.0 / 3.0).abs() < 1e-12, "{f}");
    // An answer of only articles and punctuation normalises to nothing: 0.
    assert_eq!(score("f1", "The.", &it), 0.0);
}

#[test]
fn contains_matches_whole_words_only() {
    let it = item(r#"{"id":"a","question":"q","references":["Paris"]}"#);
    assert_eq!(score("contains", "I think it is Paris, France.", &it), 1.0);
    assert_eq!(score("contains", "Parisian cafés", &it), 0.0);
    let it = item(r#"{"id":"a","question":"q","references":["New York City"]}"#);
    assert_eq!(score("contains", "It was the new york city marathon", &it), 1.0);
    assert_eq!(score("contains", "New city of York", &it), 0.0);
}

#[test]
fn numeric_follows_gsm8k_conventions() {
    let it = item(r#"{"id":"a","question":"q","references":["1,234"],"answer_type":"numeric"}"#);
    assert_eq!(
        score("numeric", "She pays 2 × 617 = 1234 dollars.\n#### 1,234", &it),
        1.0
    );
    assert_eq!(score("numeric", "So the answer is $1,234.", &it), 1.0);
    assert_eq!(score("numeric", "1234.00", &it), 1.0);
    assert_eq!(
        score("numeric", "#### 1,234 is wrong, the answer is 5", &it),
        1.0,
        "#### wins"
    );
    assert_eq!(
        score("numeric", "The answer is 1,234 apples, not 12", &it),
        1.0,
        "answer is wins over the last number"
    );
    assert_eq!(
        score("numeric", "Total 1234 then minus 4 = 1230", &it),
        0.0,
        "the last number"
    );
    assert_eq!(score("numeric", "no idea", &it), 0.0);
    let neg = item("{\"id\":\"b\",\"question\":\"q\",\"references\":[\"#### -7\"],\"answer_type\":\"numeric\"}");
    assert_eq!(score("numeric", "The temperature fell to -7 degrees.", &neg), 1.0);
    assert_eq!(score("numeric", "The temperature fell 7 degrees.", &neg), 0.0);
    let dec = item(r#"{"id":"c","question":"q","references":["3.5"],"answer_type":"numeric"}"#);
    assert_eq!(score("numeric", "#### 3.50", &dec), 1.0);
    assert_eq!(score("numeric", "It costs $3.5.", &dec), 1.0);
}

#[test]
fn choice_reads_the_letter_the_answer_picks() {
    let it =
        item(r#"{"id":"a","question":"q","choices":["red","green","blue"],"references":["B"],"answer_type":"choice"}"#);
    assert_eq!(score("choice", "B", &it), 1.0);
    assert_eq!(score("choice", "B. green", &it), 1.0);
    assert_eq!(score("choice", "I would say (b) because", &it), 1.0);
    assert_eq!(score("choice", "The answer is B.", &it), 1.0);
    assert_eq!(score("choice", "It is green, of course.", &it), 1.0, "option text");
    assert_eq!(score("choice", "C", &it), 0.0);
    assert_eq!(score("choice", "red or green", &it), 0.0, "two options named: no pick");
    assert_eq!(score("choice", "D", &it), 0.0, "out of range");
    let by_text =
        item(r#"{"id":"b","question":"q","choices":["red","green"],"references":["green"],"answer_type":"choice"}"#);
    assert_eq!(score("choice", "(B)", &by_text), 1.0);
}

#[test]
fn registry_names_are_unique_and_scores_bounded() {
    let names: Vec<_> = oae_quality::registry().iter().map(|s| s.name()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(names.len(), sorted.len());
    let it = item(r#"{"id":"a","question":"q","choices":["x","y"],"references":["A"],"answer_type":"choice"}"#);
    for s in oae_quality::registry() {
        for out in ["", "A", "x y z 1 2 3", "#### 4", "(A) x"] {
            let v = s.score(out, &it);
            assert!((0.0..=1.0).contains(&v), "{} on {out:?}: {v}", s.name());
        }
    }
}
