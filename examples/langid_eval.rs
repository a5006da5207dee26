//! Indonesian-or-English detection measured on evaldata: brief's `langid::detect`, the function-word counter that
//! preceded it, whatlang and lingua (both restricted to id/en), per set: accuracy and time per call.
//! Sets: whole sentences (mt/*.id, mt/*.en), headlines, the first 1/2/3 words of every sentence, and names or
//! numbers that appear unchanged on both sides of an NTREX pair (expected: the `id` fallback, at low confidence).
//!
//! cargo run --release --example langid_eval [-- ../shared/evaldata]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use brief::service::langid;
use lingua::{Language, LanguageDetector, LanguageDetectorBuilder};

struct Set {
    name: String,
    expected: &'static str,
    texts: Vec<String>,
}

/// A language code and a confidence in percent.
type Answer = (&'static str, f64);

struct Detector {
    name: &'static str,
    detect: Box<dyn Fn(&str) -> Answer>,
}

fn lines(dir: &Path, file: &str) -> Result<Vec<String>> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.lines().map(str::to_string).collect())
}

fn jsonl(dir: &Path, file: &str) -> Result<Vec<serde_json::Value>> {
    lines(dir, file)?.iter().map(|l| serde_json::from_str(l).context(file.to_string())).collect()
}

fn first_words(texts: &[String], n: usize) -> Vec<String> {
    texts
        .iter()
        .filter(|t| t.split_whitespace().count() >= n)
        .map(|t| t.split_whitespace().take(n).collect::<Vec<_>>().join(" "))
        .collect()
}

/// Tokens that appear unchanged in both the Indonesian and the English sentence of a pair and are a number or a
/// capitalised word that does not open the sentence: names and figures, in neither language.
fn names_and_numbers(id: &[String], en: &[String]) -> Vec<String> {
    let words = |s: &str| -> Vec<String> {
        s.split_whitespace()
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_string())
            .filter(|w| !w.is_empty())
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, e) in id.iter().zip(en) {
        let (iw, ew) = (words(i), words(e));
        for w in iw.iter().skip(1) {
            let name = w.chars().next().is_some_and(char::is_uppercase) && w.chars().skip(1).all(char::is_lowercase);
            let number = w.chars().all(|c| c.is_ascii_digit() || c == '.' || c == ',');
            if (name || number) && ew.iter().skip(1).any(|x| x == w) {
                out.insert(w.clone());
            }
        }
    }
    out.into_iter().collect()
}

fn sets(dir: &Path) -> Result<Vec<Set>> {
    let mut sets = Vec::new();
    let mut all = (Vec::new(), Vec::new());
    for corpus in ["ntrex128", "panl_news_test", "nusax_test"] {
        let (id, en) = (lines(dir, &format!("mt/{corpus}.id"))?, lines(dir, &format!("mt/{corpus}.en"))?);
        all.0.extend(id.iter().cloned());
        all.1.extend(en.iter().cloned());
        sets.push(Set { name: format!("{corpus}.id"), expected: "id", texts: id });
        sets.push(Set { name: format!("{corpus}.en"), expected: "en", texts: en });
    }
    let detik: Vec<String> = jsonl(dir, "summ/detik_aiassisted_summaries.jsonl")?
        .iter()
        .filter_map(|r| r["title"].as_str().map(str::to_string))
        .collect();
    sets.push(Set { name: "headlines: Detik titles (id)".into(), expected: "id", texts: detik });
    let docs = jsonl(dir, "mt/ntrex128_docs.jsonl")?;
    for (field, lang) in [("id_sents", "id"), ("en_sents", "en")] {
        let texts = docs.iter().filter_map(|d| d[field][0].as_str().map(str::to_string)).collect();
        sets.push(Set { name: format!("headlines: NTREX doc titles ({lang})"), expected: lang, texts });
    }
    for n in 1..=3 {
        for (texts, lang) in [(&all.0, "id"), (&all.1, "en")] {
            let name = format!("first {n} word{} ({lang})", if n == 1 { "" } else { "s" });
            sets.push(Set { name, expected: lang, texts: first_words(texts, n) });
        }
    }
    let ntrex = (lines(dir, "mt/ntrex128.id")?, lines(dir, "mt/ntrex128.en")?);
    sets.push(Set { name: "names/numbers only".into(), expected: "id", texts: names_and_numbers(&ntrex.0, &ntrex.1) });
    Ok(sets)
}

fn pair(d: langid::Detection) -> Answer {
    (d.language, d.confidence)
}

fn lingua_detect(detector: &LanguageDetector, text: &str) -> Answer {
    match detector.compute_language_confidence_values(text).first() {
        Some((language, value)) if *value > 0.0 => {
            (if *language == Language::English { "en" } else { "id" }, (value * 100.0).round())
        }
        _ => ("id", 50.0),
    }
}

fn main() -> Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "../shared/evaldata".into());
    let sets = sets(Path::new(&dir))?;
    let languages = [Language::English, Language::Indonesian];
    let high = LanguageDetectorBuilder::from_languages(&languages).build();
    let low = LanguageDetectorBuilder::from_languages(&languages).with_low_accuracy_mode().build();
    let started = Instant::now();
    lingua_detect(&high, "warm up the models");
    lingua_detect(&low, "warm up the models");
    println!("lingua: models loaded in {:.0} ms\n", started.elapsed().as_secs_f64() * 1e3);
    let whatlang = whatlang::Detector::with_allowlist(vec![whatlang::Lang::Eng, whatlang::Lang::Ind]);
    let mut detectors = vec![
        Detector { name: "brief detect", detect: Box::new(|t| pair(langid::detect(t))) },
        Detector { name: "function words", detect: Box::new(|t| pair(langid::function_words(t))) },
        Detector {
            name: "whatlang",
            detect: Box::new(move |t| match whatlang.detect(t) {
                Some(info) => {
                    (if info.lang() == whatlang::Lang::Eng { "en" } else { "id" }, (info.confidence() * 100.0).round())
                }
                None => ("id", 50.0),
            }),
        },
        Detector { name: "lingua", detect: Box::new(move |t| lingua_detect(&high, t)) },
        Detector { name: "lingua low-acc.", detect: Box::new(move |t| lingua_detect(&low, t)) },
    ];
    // brief's detector without its 70% rule for short inputs (src/service/langid.rs).
    let plain = LanguageDetectorBuilder::from_languages(&languages).build();
    detectors.push(Detector {
        name: "brief, no 70% rule",
        detect: Box::new(move |t| {
            let by_words = langid::function_words(t);
            if t.split_whitespace().count() <= 3 && by_words.confidence != 50.0 {
                pair(by_words)
            } else {
                lingua_detect(&plain, t)
            }
        }),
    });

    let header: Vec<&str> = detectors.iter().map(|d| d.name).collect();
    println!("| set | n | {} |", header.join(" | "));
    println!("|---|---:|{}", "---:|".repeat(detectors.len()));
    let mut micros = vec![(0.0, 0usize); detectors.len()];
    let mut short_micros = vec![(0.0, 0usize); detectors.len()];
    for set in &sets {
        let mut cells = Vec::new();
        for (i, d) in detectors.iter().enumerate() {
            let started = Instant::now();
            let answers: Vec<Answer> = set.texts.iter().map(|t| (d.detect)(t)).collect();
            let took = started.elapsed().as_secs_f64() * 1e6;
            let timing =
                if set.name.contains("word") || set.name.contains("names") { &mut short_micros } else { &mut micros };
            timing[i].0 += took;
            timing[i].1 += set.texts.len();
            let right = answers.iter().filter(|(l, _)| *l == set.expected).count();
            let accuracy = 100.0 * right as f64 / set.texts.len() as f64;
            if set.name.contains("names") {
                let confidence = answers.iter().map(|(_, c)| c).sum::<f64>() / answers.len() as f64;
                cells.push(format!("{accuracy:.1} (conf. {confidence:.0})"));
            } else {
                cells.push(format!("{accuracy:.1}"));
            }
        }
        println!("| {} ({}) | {} | {} |", set.name, set.expected, set.texts.len(), cells.join(" | "));
    }
    let per_call = |t: &[(f64, usize)]| t.iter().map(|(us, n)| format!("{:.1}", us / *n as f64)).collect::<Vec<_>>();
    println!("| µs per call, sentences and headlines | | {} |", per_call(&micros).join(" | "));
    println!("| µs per call, 1–3 words, names | | {} |", per_call(&short_micros).join(" | "));
    Ok(())
}
