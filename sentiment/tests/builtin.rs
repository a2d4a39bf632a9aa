//! Tests of the shipped model (`model/default.kslm`) and of the public API.

use keel_sentiment::train::{evaluate, read_labelled_csv, train, TrainConfig};
use keel_sentiment::{DefaultModel, Label, Scores};

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

fn load(rel: &str) -> Vec<keel_sentiment::train::Example> {
    let path = format!("{CRATE}/{rel}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    read_labelled_csv(&text).unwrap()
}

fn sums_to_one(s: &Scores) {
    let t = s.negative + s.neutral + s.positive;
    assert!((t - 1.0).abs() < 1e-5, "{s:?} sums to {t}");
    for p in s.as_array() {
        assert!((0.0..=1.0).contains(&p) && p.is_finite(), "{s:?}");
    }
}

#[test]
fn builtin_loads_and_is_small() {
    let bytes = std::fs::read(format!("{CRATE}/model/default.kslm")).unwrap();
    assert!(
        bytes.len() <= 3 * 1024 * 1024,
        "model is {} bytes",
        bytes.len()
    );
    let m = DefaultModel::builtin();
    assert_eq!(m, DefaultModel::from_bytes(&bytes).unwrap());
    assert_eq!(m.to_bytes(), bytes);
    assert!(std::ptr::eq(
        DefaultModel::builtin_ref(),
        DefaultModel::builtin_ref()
    ));
}

#[test]
fn clear_sentences_get_sensible_labels() {
    let m = DefaultModel::builtin();
    let cases = [
        ("Shares plunge after profit warning", Label::Negative),
        (
            "Company beats estimates and raises guidance",
            Label::Positive,
        ),
        (
            "Stock downgraded to sell at Goldman, price target cut",
            Label::Negative,
        ),
        (
            "Analyst upgrades the stock to buy on strong growth",
            Label::Positive,
        ),
        (
            "The company will report earnings on Thursday",
            Label::Neutral,
        ),
        (
            "Revenue declined 12% year over year due to weaker demand.",
            Label::Negative,
        ),
        (
            "Operating margin expanded to 21%, beating guidance.",
            Label::Positive,
        ),
        ("Moved to QA.", Label::Neutral),
    ];
    for (text, want) in cases {
        let s = m.score(text);
        sums_to_one(&s);
        assert_eq!(s.label(), want, "{text:?} scored {s:?}");
        assert_eq!(m.label(text), want);
    }
}

#[test]
fn negation_changes_the_prediction() {
    let m = DefaultModel::builtin();
    let pos = m.score("Results beat expectations");
    let neg = m.score("Results did not beat expectations");
    assert!(neg.positive < pos.positive, "{pos:?} vs {neg:?}");
}

#[test]
fn edge_case_inputs() {
    let m = DefaultModel::builtin();
    for text in ["", "   ", "🚀🚀🚀", "$", "https://t.co/abc", "\u{0}\r\n\t"] {
        let s = m.score(text);
        sums_to_one(&s);
    }
    // Empty text: only the biases speak, which favour the majority class.
    assert_eq!(m.label(""), Label::Neutral);
    let long = "Revenue declined sharply and the release slipped again. ".repeat(20_000);
    let s = m.score(&long);
    sums_to_one(&s);
    assert_eq!(s.label(), Label::Negative);
    let huge_word = "a".repeat(100_000);
    sums_to_one(&m.score(&huge_word));
}

#[test]
fn batch_matches_single_and_is_deterministic() {
    let m = DefaultModel::builtin();
    let texts = [
        "Shares plunge",
        "",
        "Moved to QA.",
        "Beats estimates",
        "Shares plunge",
    ];
    let batch = m.score_batch(&texts);
    assert_eq!(batch.len(), texts.len());
    for (t, s) in texts.iter().zip(&batch) {
        assert_eq!(*s, m.score(t));
    }
    assert_eq!(batch[0], batch[4]);
    assert!(m.score_batch(&[]).is_empty());
    // Same results from other threads (thread-local buffers are independent).
    let other = std::thread::spawn(move || DefaultModel::builtin().score_batch(&texts))
        .join()
        .unwrap();
    assert_eq!(other, batch);
}

#[test]
fn labels_serialise_lowercase() {
    assert_eq!(
        serde_json::to_string(&Label::Negative).unwrap(),
        "\"negative\""
    );
    assert_eq!(
        serde_json::to_string(&Label::Neutral).unwrap(),
        "\"neutral\""
    );
    assert_eq!(
        serde_json::from_str::<Label>("\"positive\"").unwrap(),
        Label::Positive
    );
    assert_eq!(Label::Positive.to_string(), "positive");
    let s = Scores::from_logits([0.0, 0.0, 0.0]);
    let json = serde_json::to_string(&s).unwrap();
    assert!(
        json.contains("\"negative\"") && json.contains("\"positive\""),
        "{json}"
    );
    assert_eq!(s.label(), Label::Neutral, "ties go to neutral");
}

/// The tweet targets, on the valid split shipped in `data/`.
#[test]
fn builtin_meets_targets_on_valid() {
    let valid = load("data/valid.csv");
    assert_eq!(valid.len(), 2388);
    let c = evaluate(&DefaultModel::builtin(), &valid);
    println!("valid:\n{c}");
    assert!(c.accuracy() >= 0.82, "accuracy {}", c.accuracy());
    assert!(c.macro_f1() >= 0.75, "macro F1 {}", c.macro_f1());
}

/// Hand-written formal / Jira-style sentences. Prints the accuracy; asserts
/// only a floor so that honest regressions are visible but not flaky.
#[test]
fn formal_sentences_accuracy() {
    let m = DefaultModel::builtin();
    for (file, floor) in [
        ("tests/formal_sentences.csv", 0.75),
        ("tests/formal_sentences_holdout.csv", 0.65),
    ] {
        let data = load(file);
        let c = evaluate(&m, &data);
        println!("{file}:\n{c}");
        assert!(c.accuracy() >= floor, "{file}: accuracy {}", c.accuracy());
    }
}

/// The shipped model is exactly what the trainer produces from `data/`
/// (byte-identical; float math is IEEE and single-threaded, in a fixed order).
#[test]
fn shipped_model_is_reproducible_from_data() {
    let train_set = load("data/train.csv");
    assert_eq!(train_set.len(), 9543);
    let model = train(&TrainConfig::default(), &train_set).unwrap();
    let shipped = std::fs::read(format!("{CRATE}/model/default.kslm")).unwrap();
    assert!(
        model.to_bytes() == shipped,
        "retraining with the default config did not reproduce model/default.kslm; \
         rerun train-default-sentiment if the features or trainer changed on purpose"
    );
}
