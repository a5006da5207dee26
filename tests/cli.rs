//! The `brief translate` and `brief cache check` commands as a user runs them: exit codes, one line out per line in,
//! UTF-8 errors, option errors that name the problem, damage in the cache reported and repaired.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn brief(args: &[&str], stdin: &[u8]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_brief"))
        .args(args)
        .env_remove("BRIEF_TRANSLATE_MODEL")
        .env("HF_HUB_OFFLINE", "1")
        .env("BRIEF_CACHE_DIR", cache.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails on its options exits before it reads its input, so a closed pipe is not an error here;
    // the exit status and stderr, which the tests check, say what happened.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

fn tiny() -> String {
    common::fixtures().join("marian").join("tiny").display().to_string()
}

#[test]
fn lines_mode_prints_exactly_one_line_per_input_line() {
    let input = "Harga beras naik lagi.\n\nPresiden meresmikan bendungan baru di Subang.\n   \nYa.\n";
    let out =
        brief(&["translate", "--model", &tiny(), "--lines", "--beams", "2", "--max-new-tokens", "6"], input.as_bytes());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.split_terminator('\n').collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[1], "");
    assert_eq!(lines[3], "");
}

#[test]
fn bf16_and_int8_on_the_cpu_are_the_reduced_precision_modes_on_every_kernel_family() {
    let input = "Harga beras naik lagi.\nPresiden meresmikan bendungan baru di Subang.\n";
    let run = |dtype: &str, isa: &str| {
        let args = ["translate", "--model", &tiny(), "--lines", "--beams", "1", "--max-new-tokens", "6"];
        let out = brief(&[&args[..], &["--dtype", dtype, "--cpu-isa", isa]].concat(), input.as_bytes());
        assert!(out.status.success(), "{dtype} {isa}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let full = run("f32", "portable");
    assert_eq!(full.lines().count(), 2, "{full:?}");
    for isa in brief::models::kernels::isa::available() {
        // The tiny model's logits are far apart next to bf16's and int8's rounding, so every precision and
        // every kernel family picks the same words.
        for dtype in ["f32", "bf16", "int8"] {
            assert_eq!(run(dtype, isa.name()), full, "{dtype} on {isa}");
        }
    }
}

#[test]
fn the_cpu_kernel_family_is_chosen_reported_and_checked() {
    let out = brief(&["models", "--cpu-isa", "portable"], b"");
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("cpu kernels: portable (this CPU runs: "), "{stdout}");
    let out = brief(&["translate", "--model", &tiny(), "--cpu-isa", "sse4"], b"Ya.");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("CPU kernel family \"sse4\" is not one of avx512, avx2-vnni, avx2, portable"), "{stderr}");
    // int8 weights take 7 bits on plain AVX2 (the faster kernel there) and 8 elsewhere, unless chosen.
    let int8_line = |args: &[&str]| {
        let out = brief(&[&["models"], args].concat(), b"");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout).unwrap();
        stdout.lines().find(|l| l.starts_with("int8 weights")).map(str::to_string).expect("an int8 line")
    };
    let bits = |n: u32| {
        format!("int8 weights (--dtype int8): {n} bits (BRIEF_INT8_WEIGHT_BITS or --int8-weight-bits to choose)")
    };
    assert_eq!(int8_line(&["--cpu-isa", "portable"]), bits(8));
    assert_eq!(int8_line(&["--cpu-isa", "portable", "--int8-weight-bits", "7"]), bits(7));
    if brief::models::kernels::Isa::Avx2.supported() {
        assert_eq!(int8_line(&["--cpu-isa", "avx2"]), bits(7));
        assert_eq!(int8_line(&["--cpu-isa", "avx2", "--int8-weight-bits", "8"]), bits(8));
    }
    let out = brief(&["translate", "--model", &tiny(), "--int8-weight-bits", "6"], b"Ya.");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("6 is not in 7..=8"));
    let out = brief(&["translate", "--model", &tiny(), "--dtype", "f16"], b"Ya.");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("--dtype f16 is for CUDA; the CPU computes in f32, bf16 or int8"));
}

#[test]
fn document_mode_keeps_the_line_structure_of_a_seed_article() {
    let seed = common::shared().join("seeds").join("001_cb28f318b6ed366c.txt");
    let tmp = tempfile::tempdir().unwrap();
    let model = common::marian_model_dir("opus-shape", tmp.path());
    let out = brief(
        &[
            "translate",
            "--model",
            model.to_str().unwrap(),
            "--beams",
            "1",
            "--max-new-tokens",
            "4",
            seed.to_str().unwrap(),
        ],
        b"",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let source = std::fs::read_to_string(&seed).unwrap();
    let english = String::from_utf8(out.stdout).unwrap();
    assert_eq!(english.split('\n').count(), source.split('\n').count());
    for (src, en) in source.split('\n').zip(english.split('\n')) {
        // (A random-weight model may answer a real line with an immediate end token, so only blank lines are
        // known in advance.)
        if src.trim().is_empty() {
            assert_eq!(en, src, "blank lines stay as they are");
        }
    }
}

#[test]
fn input_that_is_not_utf8_is_rejected_with_its_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("latin1.txt");
    std::fs::write(&file, b"Harga beras naik \xe9 lagi.\n").unwrap();
    let out = brief(&["translate", "--model", &tiny(), file.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not UTF-8 text (invalid byte at offset 17)"), "{stderr}");
    let out = brief(&["translate", "--model", &tiny()], b"\xff\xfe");
    assert!(String::from_utf8_lossy(&out.stderr).contains("standard input is not UTF-8"));
}

#[test]
fn bad_options_and_models_fail_with_a_message_not_a_panic() {
    let cases: &[(&[&str], &str)] = &[
        (&["translate", "--model", "/no/such/model"], "missing model directory"),
        (&["translate", "--model", "brief-test/not-cached"], "HF_HUB_OFFLINE"),
        (&["translate", "--beams", "0"], "beams must be at least 1"),
        (&["translate", "--max-new-tokens", "100000"], "new tokens fit this model"),
        (&["translate", "--device", "cuda"], "no CUDA support"),
        (&["translate", "--device", "tpu"], "not one of cpu, cuda, cuda:N"),
        (&["translate", "--dtype", "f16"], "f16 is for CUDA"),
        (&["translate", "--dtype", "f8"], "not one of f32, f16, bf16"),
        (&["translate", "--batch-size", "0"], "must be positive"),
    ];
    for (args, needle) in cases {
        let mut args = args.to_vec();
        let model = tiny();
        if !args.contains(&"--model") {
            args.extend(["--model", model.as_str()]);
        }
        let out = brief(&args, b"Halo.\n");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr:?} should mention {needle:?}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn models_lists_the_manifest() {
    let out = brief(&["models"], b"");
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("Helsinki-NLP/opus-mt-id-en") && stdout.contains("google/flan-t5-base"), "{stdout}");
}

fn t5(name: &str) -> String {
    common::fixtures().join("t5").join(name).display().to_string()
}

#[test]
fn summarize_lines_prints_one_summary_per_line() {
    let input = "Rice prices rose again. The government promised to act.\n\nThe dam was inaugurated on Tuesday.\n";
    let out = brief(
        &[
            "summarize",
            "--lines",
            "--summary-model",
            &t5("t5-v1_0"),
            "--summary-beams",
            "2",
            "--summary-max-new-tokens",
            "8",
        ],
        input.as_bytes(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap().split_terminator('\n').count(), 3);
}

#[test]
fn article_json_follows_the_schema_and_markdown_has_the_sections() {
    let seed = common::shared().join("seeds").join("003_b27938b8af6da2e0.txt");
    let base =
        ["article", "--model", &tiny(), "--summary-model", &t5("t5-v1_1"), "--beams", "1", "--max-new-tokens", "6"];
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["--summary-max-new-tokens", "8", "--json", "--outlet", "Tempo", "--published-at", "2024-05-01"]);
    args.push(seed.to_str().unwrap());
    let out = brief(&args, b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    common::assert_valid_brief_json(&json);
    assert_eq!(json["source"]["name"], "003_b27938b8af6da2e0.txt");
    let rules: Vec<&str> = json["dropped"].as_array().unwrap().iter().map(|d| d["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["advertisement", "bare-label", "comment-count"]);

    args.insert(1, "--keep-boilerplate");
    let out = brief(&args, b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let kept: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((kept["dropped"].clone(), kept["source"]["paragraphs"].clone()), (serde_json::json!([]), 17.into()));
    assert_eq!(
        (&json["source"]["outlet"], &json["source"]["published_at"]),
        (&"Tempo".into(), &"2024-05-01T00:00:00Z".into())
    );
    let mut bad: Vec<&str> = base.to_vec();
    bad.extend(["--url", "kompas.com/a", seed.to_str().unwrap()]);
    let out = brief(&bad, b"");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("url: \"kompas.com/a\" is not an absolute address"), "{stderr}");

    let mut args: Vec<&str> = base.to_vec();
    args.push(seed.to_str().unwrap());
    let out = brief(&args, b"");
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(
        md.starts_with("# ") && md.contains("## Summary") && md.contains("## Translation") && md.contains("Models: "),
        "{md}"
    );
    assert!(
        md.contains("## Left out\n\n- line 15 (advertisement): [iklan_2]\n- line 16 (bare-label): Sumber\n"),
        "{md}"
    );
}

#[test]
fn keep_boilerplate_is_documented_on_article_batch_and_serve() {
    for command in ["article", "batch", "serve"] {
        let out = brief(&[command, "--help"], b"");
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("--keep-boilerplate") && help.contains("BRIEF_KEEP_BOILERPLATE"), "{command}: {help}");
    }
}

#[test]
fn cache_check_reports_damage_and_repair_deletes_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().to_str().unwrap();
    let out = brief(
        &["translate", "--lines", "--model", &tiny(), "--cache-dir", cache_dir],
        b"Harga beras naik.\nApa kabar?\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let check = |repair: bool| {
        let mut args = vec!["cache", "--cache-dir", cache_dir, "check"];
        if repair {
            args.push("--repair");
        }
        let out = brief(&args, b"");
        (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let (code, stdout, _) = check(false);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("integrity       ok\ntexts           2 (0 damaged)\nbriefs          0 (0 damaged)\nsound\n"),
        "{stdout}"
    );

    let db = rusqlite::Connection::open(dir.path().join(brief::store::FILE_NAME)).unwrap();
    db.execute("UPDATE entries SET output = output || '!' WHERE input = 'Apa kabar?'", []).unwrap();
    drop(db);
    let (code, stdout, stderr) = check(false);
    assert_eq!(code, Some(1));
    assert!(stdout.contains("texts           2 (1 damaged)"), "{stdout}");
    assert!(stderr.contains("`brief cache check --repair` deletes them"), "{stderr}");
    let (code, stdout, _) = check(true);
    assert_eq!(
        (code, stdout.ends_with("repaired: deleted the damaged entries and briefs\n")),
        (Some(0), true),
        "{stdout}"
    );
    let (code, stdout, _) = check(false);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("texts           1 (0 damaged)") && stdout.ends_with("sound\n"), "{stdout}");

    // A file that is not a store at all.
    std::fs::write(dir.path().join(brief::store::FILE_NAME), b"garbage ".repeat(1000)).unwrap();
    let (code, _, stderr) = check(false);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("file is not a database"), "{stderr}");
}

#[test]
fn a_search_option_that_is_not_a_number_is_refused_not_run() {
    // A NaN length penalty once hung the worker (options with a NaN equal nothing, so no batch held anything).
    for penalty in ["NaN", "inf", "-inf"] {
        let option = format!("--length-penalty={penalty}");
        let out = brief(&["translate", "--model", &tiny(), &option], b"Harga beras naik lagi.");
        assert_eq!(out.status.code(), Some(1), "{penalty}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(&format!("the length penalty must be a finite number, not {penalty}")), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}
