//! Boilerplate removal on the real examples of ../shared: the exact lines each rule drops from every seed and
//! evaldata article, no sentence of the evaldata references taken for boilerplate, and briefs whose dropped lines
//! never reach the translator (and reach it with `keep_boilerplate`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use brief::engine::{Codec, Engine};
use brief::generate::Overrides;
use brief::service::boilerplate::{self, is_boilerplate};
use brief::service::{self, Article, BriefOptions, Generated, Generator, ServiceError, SummaryOptions};
use brief::tokenize::segment::Document;

const SCROLL: &str = "scroll-prompt";
const VIDEO: &str = "video-prompt";
const LIVE: &str = "live-prompt";

/// Lines dropped per rule in each file of ../shared (seeds/ and evaldata/articles/); every file is listed.
const EXPECTED: &[(&str, &[(&str, usize)])] = &[
    (
        "seeds/000_b37d670be988eed1.txt",
        &[("photo-caption", 1), ("read-also", 2), ("follow-prompt", 1), ("bare-label", 1)],
    ),
    (
        "seeds/001_cb28f318b6ed366c.txt",
        &[("photo-caption", 1), ("advertisement", 1), ("bare-label", 1), ("comment-count", 1)],
    ),
    (
        "seeds/002_b97072e3ac22c414.txt",
        &[("repeated-headline", 1), ("photo-caption", 1), ("read-also", 2), ("follow-prompt", 1), ("bare-label", 1)],
    ),
    ("seeds/003_b27938b8af6da2e0.txt", &[("advertisement", 1), ("bare-label", 1), ("comment-count", 1)]),
    ("seeds/004_86ab6c33f251c52c.txt", &[("read-also", 3)]),
    ("evaldata/articles/detik_0002_ekonomi.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0028_ekonomi.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0052_ekonomi.txt", &[(SCROLL, 1), (VIDEO, 1)]),
    ("evaldata/articles/detik_0076_ekonomi.txt", &[(SCROLL, 1), (VIDEO, 1)]),
    ("evaldata/articles/detik_0104_ekonomi.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0113_ekonomi.txt", &[(SCROLL, 1), (VIDEO, 1)]),
    ("evaldata/articles/detik_0131_ekonomi.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0167_ekonomi.txt", &[(VIDEO, 1)]),
    ("evaldata/articles/detik_0201_hukum.txt", &[(SCROLL, 1), (LIVE, 1), (VIDEO, 1)]),
    ("evaldata/articles/detik_0228_hukum.txt", &[(SCROLL, 1), (VIDEO, 1)]),
    ("evaldata/articles/detik_0254_hukum.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0278_hukum.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0306_hukum.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0335_hukum.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0360_hukum.txt", &[(SCROLL, 1), (VIDEO, 1)]),
    ("evaldata/articles/detik_0365_hukum.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0401_politik.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0403_politik.txt", &[(SCROLL, 1), (VIDEO, 1)]),
    ("evaldata/articles/detik_0433_politik.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0457_politik.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0487_politik.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0515_politik.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0542_politik.txt", &[(SCROLL, 1), (LIVE, 1)]),
    ("evaldata/articles/detik_0570_politik.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0601_lingkungan.txt", &[(SCROLL, 1), (VIDEO, 1)]),
    ("evaldata/articles/detik_0627_lingkungan.txt", &[(SCROLL, 1), (VIDEO, 1)]),
    ("evaldata/articles/detik_0641_lingkungan.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0656_lingkungan.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0684_lingkungan.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0713_lingkungan.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0740_lingkungan.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0773_lingkungan.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0801_sosial.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0819_sosial.txt", &[(SCROLL, 1), (VIDEO, 1)]),
    ("evaldata/articles/detik_0826_sosial.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0861_sosial.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0885_sosial.txt", &[(SCROLL, 1)]),
    ("evaldata/articles/detik_0911_sosial.txt", &[(SCROLL, 1), (VIDEO, 1)]),
    ("evaldata/articles/detik_0942_sosial.txt", &[(SCROLL, 1), (VIDEO, 1)]),
    ("evaldata/articles/detik_0971_sosial.txt", &[(SCROLL, 1)]),
];

/// The article files of ../shared, as paths relative to it.
fn shared_articles() -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["seeds", "evaldata/articles"] {
        for entry in std::fs::read_dir(common::shared().join(dir)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".txt") {
                files.push(format!("{dir}/{name}"));
            }
        }
    }
    files.sort();
    files
}

fn first_line(text: &str) -> &str {
    text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap()
}

#[test]
fn every_real_example_in_shared_drops_exactly_its_boilerplate_and_keeps_its_headline() {
    let mut listed: Vec<String> = EXPECTED.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(listed, shared_articles(), "the table lists every article of ../shared");
    let mut totals: BTreeMap<String, usize> = BTreeMap::new();
    for (file, expected) in EXPECTED {
        let text = std::fs::read_to_string(common::shared().join(file)).unwrap();
        let split = boilerplate::split(&text);
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for d in &split.dropped {
            *counts.entry(d.rule.clone()).or_default() += 1;
            *totals.entry(d.rule.clone()).or_default() += 1;
        }
        let expected: BTreeMap<String, usize> = expected.iter().map(|(r, n)| (r.to_string(), *n)).collect();
        assert_eq!(counts, expected, "{file}: lines dropped per rule");

        let lines: Vec<&str> = text.split('\n').collect();
        for d in &split.dropped {
            assert_eq!(lines[d.line - 1].trim(), d.text, "{file}: line {} as dropped", d.line);
        }
        let dropped: Vec<usize> = split.dropped.iter().map(|d| d.line).collect();
        for (i, line) in lines.iter().enumerate() {
            let lower = line.to_lowercase();
            if ["scroll to continue with content", "baca juga", "simak juga", "lihat juga"]
                .iter()
                .any(|k| lower.contains(k))
            {
                assert!(dropped.contains(&(i + 1)), "{file}: line {} is boilerplate", i + 1);
            }
        }
        assert_eq!(first_line(&split.kept), first_line(&text), "{file}: the headline is kept");
        assert!(!dropped.contains(&1), "{file}: the headline line is not dropped");
        // The kept text is the original without the dropped lines.
        let kept: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| !dropped.contains(&(i + 1)))
            .map(|(_, l)| l.strip_suffix('\r').unwrap_or(l))
            .collect();
        assert_eq!(split.kept, kept.join("\n"), "{file}");
    }
    let expected_totals: BTreeMap<String, usize> = [
        (SCROLL, 39),
        (VIDEO, 13),
        (LIVE, 2),
        ("read-also", 7),
        ("photo-caption", 3),
        ("follow-prompt", 2),
        ("bare-label", 4),
        ("advertisement", 2),
        ("comment-count", 2),
        ("repeated-headline", 1),
    ]
    .into_iter()
    .map(|(r, n)| (r.to_string(), n))
    .collect();
    assert_eq!(totals, expected_totals);
}

#[test]
fn no_sentence_of_the_evaldata_references_is_boilerplate() {
    let dir = common::shared().join("evaldata").join("mt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "id"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4);
    let mut checked = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        for (i, line) in text.lines().enumerate() {
            assert!(!is_boilerplate(line), "{name}:{}: {line:?}", i + 1);
            for sentence in Document::parse(line).sentences() {
                assert!(!is_boilerplate(sentence), "{name}:{}: {sentence:?}", i + 1);
                checked += 1;
            }
        }
        assert!(boilerplate::split(&text).dropped.is_empty(), "{name}: nothing dropped from the whole file");
    }
    assert!(checked > 6000, "{checked} sentences");
}

/// A generator that records every text it is given and passes it on to `inner`.
struct Recording<'a> {
    inner: &'a Engine,
    seen: Mutex<Vec<String>>,
}

impl Generator for Recording<'_> {
    fn codec(&self) -> &Codec {
        self.inner.codec()
    }

    fn generate(
        &self,
        texts: &[String],
        overrides: &Overrides,
        deadline: Option<Instant>,
    ) -> Result<Vec<Generated>, ServiceError> {
        self.seen.lock().unwrap().extend(texts.iter().cloned());
        Generator::generate(self.inner, texts, overrides, deadline)
    }
}

fn options(keep_boilerplate: bool) -> BriefOptions {
    BriefOptions {
        translate: Overrides { num_beams: Some(1), max_new_tokens: Some(6), ..Default::default() },
        summary: SummaryOptions {
            overrides: Overrides { num_beams: Some(1), max_new_tokens: Some(6), ..Default::default() },
            chunk_tokens: 512,
        },
        keep_boilerplate,
    }
}

fn sentences(text: &str) -> Vec<String> {
    Document::parse(text).sentences().map(str::to_string).collect()
}

fn seed(name: &str) -> (String, String) {
    let path: &Path = &common::shared().join("seeds").join(name);
    (name.to_string(), std::fs::read_to_string(path).unwrap())
}

#[test]
fn dropped_lines_never_reach_the_translator_and_keep_boilerplate_sends_them() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::marian_engine("tiny", tmp.path());
    let summarizer = common::t5_engine("t5-v1_0", Some("summarization"), Some("summarize: "));
    let (name, text) = seed("002_b97072e3ac22c414.txt");
    let non_blank = text.lines().filter(|l| !l.trim().is_empty()).count();

    let translator = Recording { inner: &engine, seen: Mutex::new(Vec::new()) };
    let brief =
        service::make_brief(&translator, &summarizer, &Article::new(&name, &text), &options(false), None).unwrap();
    let seen = translator.seen.into_inner().unwrap();
    let dropped: Vec<(usize, &str)> = brief.dropped.iter().map(|d| (d.line, d.rule.as_str())).collect();
    assert_eq!(
        dropped,
        [
            (3, "repeated-headline"),
            (5, "photo-caption"),
            (15, "read-also"),
            (25, "read-also"),
            (35, "follow-prompt"),
            (37, "bare-label")
        ]
    );
    // The translator saw the sentences of the other lines, each once, in order, and none of a dropped line.
    let lines: Vec<&str> = text.lines().collect();
    let kept: Vec<&str> =
        lines.iter().enumerate().filter(|(i, _)| !dropped.iter().any(|d| d.0 == i + 1)).map(|(_, l)| *l).collect();
    assert_eq!(seen, sentences(&kept.join("\n")));
    assert_eq!(seen.iter().filter(|s| s.as_str() == first_line(&text)).count(), 1, "the headline, once");
    for d in &brief.dropped {
        assert!(!brief.paragraphs.iter().any(|p| p.source.contains(&d.text)), "{:?} is in the translation", d.text);
    }
    assert!(seen.iter().all(|s| !s.to_lowercase().contains("baca juga")), "{seen:?}");
    assert_eq!(brief.headline.source, first_line(&text));
    assert_eq!(brief.source.paragraphs, brief.paragraphs.len() + 1);
    assert_eq!(brief.source.paragraphs + brief.dropped.len(), non_blank);
    assert_eq!(brief.id, service::brief::brief_id(&text), "the id is that of the text as given");
    assert_eq!(brief.source.bytes, text.len());
    common::assert_valid_brief_json(&serde_json::from_str(&brief.to_json()).unwrap());
    let md = brief.to_markdown();
    let left_out = md.split("\n## Left out\n").nth(1).expect("a Left out section");
    assert!(left_out.contains("- line 15 (read-also): BACA JUGA:Lindungi Jembatan Krimea"), "{md}");
    assert_eq!(left_out.matches("\n- line ").count(), 6, "{md}");

    let translator = Recording { inner: &engine, seen: Mutex::new(Vec::new()) };
    let kept =
        service::make_brief(&translator, &summarizer, &Article::new(&name, &text), &options(true), None).unwrap();
    let seen = translator.seen.into_inner().unwrap();
    assert!(kept.dropped.is_empty());
    assert_eq!(kept.source.paragraphs, non_blank);
    assert_eq!(kept.paragraphs.len() + 1, non_blank);
    assert_eq!(kept.id, brief.id);
    assert_eq!(seen, sentences(&text), "every line reached the translator");
    assert!(!kept.to_markdown().contains("## Left out"));
}

#[test]
fn an_article_of_nothing_but_boilerplate_is_the_callers_error() {
    let tmp = tempfile::tempdir().unwrap();
    let translator = common::marian_engine("tiny", tmp.path());
    let summarizer = common::t5_engine("t5-v1_0", Some("summarization"), None);
    let text = "SCROLL TO CONTINUE WITH CONTENT\n\nBaca juga: Harga cabai naik\nADVERTISEMENT\n";
    let results = service::make_briefs(
        &translator,
        &summarizer,
        &[
            service::Article { name: "ads.txt".into(), text: text.into(), meta: Default::default() },
            service::Article {
                name: "ok.txt".into(),
                text: format!("Harga Beras Naik\n{text}"),
                meta: Default::default(),
            },
        ],
        &options(false),
        None,
    );
    let err = results[0].as_ref().unwrap_err();
    assert!(err.is_client_error(), "{err}");
    assert_eq!(
        err.to_string(),
        "ads.txt: the article is nothing but boilerplate (3 lines left out; keep_boilerplate keeps them)"
    );
    let ok = results[1].as_ref().unwrap();
    assert_eq!((ok.headline.source.as_str(), ok.paragraphs.len(), ok.dropped.len()), ("Harga Beras Naik", 0, 3));
    let kept =
        service::make_brief(&translator, &summarizer, &Article::new("ads.txt", text), &options(true), None).unwrap();
    assert_eq!(kept.headline.source, "SCROLL TO CONTINUE WITH CONTENT");
}
