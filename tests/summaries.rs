//! Summaries and briefs with tiny random models: map-reduce over long texts reaches every chunk, the brief of
//! each seed article has the documented structure and JSON schema, task defaults come from the config, and a
//! T5 model works as a translator with a prefix.

mod common;

use brief::generate::Overrides;
use brief::service::{self, Article, BriefOptions, SummaryOptions};
use brief::tokenize::segment::Document;

fn summary_options(chunk_tokens: usize) -> SummaryOptions {
    SummaryOptions {
        overrides: Overrides {
            num_beams: Some(2),
            max_new_tokens: Some(16),
            min_new_tokens: Some(3),
            ..Default::default()
        },
        chunk_tokens,
    }
}

/// About 2,000 words of real English news (NTREX-128 sources), no sentence repeated.
fn long_english() -> String {
    let text = std::fs::read_to_string(common::shared().join("evaldata").join("mt").join("ntrex128.en")).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if out.split_whitespace().count() >= 2000 {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn a_2000_word_text_is_summarized_chunk_by_chunk_and_every_chunk_reaches_the_model() {
    let engine = common::t5_engine("t5-v1_1", Some("summarization"), Some("summarize: "));
    let text = long_english();
    assert!(text.split_whitespace().count() >= 2000);
    let sentences: Vec<String> = Document::parse(&text).sentences().map(str::to_string).collect();
    let before = engine.stats();
    let summary = service::summarize(&engine, &text, &summary_options(512), None).unwrap();
    let after = engine.stats();

    let first = &summary.rounds[0];
    assert!(first.len() >= 4, "{} chunks in the first round", first.len());
    // The chunks tile the sentences: contiguous, in order, nothing left out, each within the budget.
    assert_eq!(first[0].start, 0);
    assert_eq!(first.last().unwrap().end, sentences.len());
    for pair in first.windows(2) {
        assert_eq!(pair[0].end, pair[1].start);
    }
    for chunk in first {
        assert!(chunk.tokens <= 512, "a chunk of {} tokens", chunk.tokens);
        let joined = sentences[chunk.start..chunk.end].join(" ");
        assert_eq!(engine.count_tokens(&joined).unwrap(), chunk.tokens);
    }
    // Every chunk of every round was a model input; the last round is a single call.
    let calls: usize = summary.rounds.iter().map(Vec::len).sum();
    assert_eq!((after.sequences - before.sequences) as usize, calls);
    assert_eq!(summary.rounds.last().unwrap().len(), 1);
    assert!(summary.rounds.len() >= 2);
    assert!(!summary.text.is_empty());
}

#[test]
fn a_short_text_is_summarized_in_one_call() {
    let engine = common::t5_engine("t5-v1_0", Some("summarization"), Some("summarize: "));
    let before = engine.stats().sequences;
    let summary = service::summarize(
        &engine,
        "Rice prices rose again. The government promised to act.",
        &summary_options(512),
        None,
    )
    .unwrap();
    assert_eq!(summary.rounds.len(), 1);
    assert_eq!(summary.rounds[0].len(), 1);
    assert_eq!(engine.stats().sequences - before, 1);
    assert_eq!(service::summarize(&engine, "  \n ", &summary_options(512), None).unwrap().text, "");
}

#[test]
fn briefs_of_the_seed_articles_have_the_documented_structure() {
    let tmp = tempfile::tempdir().unwrap();
    let translator = common::marian_engine("tiny", tmp.path());
    let summarizer = common::t5_engine("t5-v1_1", Some("summarization"), Some("summarize: "));
    let options = BriefOptions {
        translate: Overrides { num_beams: Some(2), max_new_tokens: Some(10), ..Default::default() },
        summary: summary_options(512),
        keep_boilerplate: false,
    };
    let mut seeds: Vec<_> =
        std::fs::read_dir(common::shared().join("seeds")).unwrap().map(|e| e.unwrap().path()).collect();
    seeds.sort();
    assert_eq!(seeds.len(), 5);
    for path in seeds {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let brief = service::make_brief(&translator, &summarizer, &Article::new(&name, &text), &options, None).unwrap();
        // Every non-blank line is a paragraph of the brief or a line left out as boilerplate (tests/boilerplate.rs).
        let left_out: Vec<usize> = brief.dropped.iter().map(|d| d.line).collect();
        let source_paragraphs: Vec<&str> = text
            .lines()
            .enumerate()
            .filter(|(i, l)| !l.trim().is_empty() && !left_out.contains(&(i + 1)))
            .map(|(_, l)| l)
            .collect();
        assert!(!brief.dropped.is_empty(), "{name}: every seed has boilerplate");
        assert_eq!(brief.headline.source, source_paragraphs[0].trim(), "{name}: the headline is the first line");
        assert_eq!(brief.paragraphs.len() + 1, source_paragraphs.len(), "{name}: one paragraph per source paragraph");
        for (pair, source) in brief.paragraphs.iter().zip(&source_paragraphs[1..]) {
            assert_eq!(
                pair.source.split_whitespace().collect::<Vec<_>>(),
                source.split_whitespace().collect::<Vec<_>>(),
                "{name}: paragraphs in order"
            );
        }
        assert!(!brief.summary.is_empty(), "{name}: a summary");
        assert_eq!(brief.source.name, name);
        assert_eq!(brief.source.paragraphs, source_paragraphs.len());
        assert_eq!(brief.models.translate.model_type, "marian");
        assert_eq!(brief.models.summarize.model_type, "t5");
        assert!(brief.models.translate.id.ends_with("tiny") && brief.models.summarize.id.ends_with("t5-v1_1"));
        assert_eq!(brief.id.len(), 16);

        let json: serde_json::Value = serde_json::from_str(&brief.to_json()).unwrap();
        common::assert_valid_brief_json(&json);
        let back: brief::service::Brief = serde_json::from_value(json).unwrap();
        assert_eq!(back, brief);

        let md = brief.to_markdown();
        assert!(md.starts_with("# "));
        assert!(md.contains("\n## Summary\n") && md.contains("\n## Translation\n"));
        assert!(md.contains(&brief.models.translate.id) && md.contains(&brief.models.summarize.revision));
    }
}

#[test]
fn an_empty_article_is_the_callers_error() {
    let tmp = tempfile::tempdir().unwrap();
    let translator = common::marian_engine("tiny", tmp.path());
    let summarizer = common::t5_engine("t5-v1_0", Some("summarization"), None);
    let err = service::make_brief(
        &translator,
        &summarizer,
        &Article::new("empty.txt", " \n\n"),
        &BriefOptions::default(),
        None,
    )
    .unwrap_err();
    assert!(err.is_client_error() && err.to_string().contains("empty.txt: the article is empty"), "{err}");
}

#[test]
fn summarization_defaults_come_from_task_specific_params() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t5");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(common::fixtures().join("t5").join("t5-v1_0")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let path = dir.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["task_specific_params"] = serde_json::json!({"summarization": {
        "early_stopping": true, "length_penalty": 2.0, "max_length": 17, "min_length": 5,
        "no_repeat_ngram_size": 3, "num_beams": 3, "prefix": "summarize: "}});
    std::fs::write(&path, config.to_string()).unwrap();

    let engine = common::engine_at(dir.clone(), Some("summarization"), None);
    assert_eq!(engine.prefix(), "summarize: ");
    let o = engine.search_options(&Overrides::default()).unwrap();
    assert_eq!((o.num_beams, o.max_length, o.min_length, o.no_repeat_ngram_size), (3, 17, 5, 3));
    assert_eq!(o.length_penalty, 2.0);
    assert_eq!(o.early_stopping, brief::models::config::EarlyStopping::Always);
    // The command line wins over the task defaults.
    let o = engine
        .search_options(&Overrides { num_beams: Some(1), max_new_tokens: Some(8), ..Default::default() })
        .unwrap();
    assert_eq!((o.num_beams, o.max_length), (1, 9));
    // Without the task, the plain generation config applies.
    let plain = common::engine_at(dir, None, None);
    assert_eq!(plain.prefix(), "");
    assert_eq!(plain.search_options(&Overrides::default()).unwrap().num_beams, 1);
}

#[test]
fn a_t5_model_translates_with_a_prefix() {
    let engine = common::t5_engine("t5-v1_1", None, Some("<2en> "));
    let text = "Harga beras naik lagi.";
    let overrides = Overrides { num_beams: Some(2), max_new_tokens: Some(10), ..Default::default() };
    let got = service::translate_lines(&engine, &[text.to_string()], &overrides).unwrap();
    let ids = engine.tokenizer().encode(&format!("<2en> {text}")).unwrap();
    assert_eq!(engine.count_tokens(text).unwrap(), ids.len());
    let options = engine.search_options(&overrides).unwrap();
    let want = engine.generate_ids(&[ids], &options).unwrap();
    assert_eq!(got[0], engine.tokenizer().decode(&want[0][0]).unwrap());
    assert_eq!(engine.info().model_type, "t5");
}

#[test]
fn the_schema_rejects_a_brief_that_breaks_it() {
    let tmp = tempfile::tempdir().unwrap();
    let translator = common::marian_engine("tiny", tmp.path());
    let summarizer = common::t5_engine("t5-v1_0", Some("summarization"), None);
    let text = "Judul\nIsi berita.";
    let brief =
        service::make_brief(&translator, &summarizer, &Article::new("a.txt", text), &BriefOptions::default(), None)
            .unwrap();
    let good: serde_json::Value = serde_json::from_str(&brief.to_json()).unwrap();
    common::assert_valid_brief_json(&good);
    for (field, bad) in [("summary", serde_json::Value::Null), ("id", "XYZ".into()), ("created_at", "yesterday".into())]
    {
        let mut broken = good.clone();
        broken[field] = bad;
        let result = std::panic::catch_unwind(|| common::assert_valid_brief_json(&broken));
        assert!(result.is_err(), "a brief with a bad {field} passed the schema");
    }
}
