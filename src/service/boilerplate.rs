//! Boilerplate of Indonesian news pages (links to other articles, video and live prompts, ad slots, photo
//! captions, share prompts, page labels) recognised line by line, so that it is left out before any model sees it.
//!
//! All rules are in [`RULES`]. Each matches a whole line (trimmed, with Markdown markers and emphasis around it
//! ignored), and only a line of at most [`MAX_CHARS`] characters: a longer line is prose, whatever it starts with.
//! A credit that shares its line with a news paragraph (`Foto: Antara Jakarta - Pemerintah …`) keeps the whole
//! line: translating a credit costs less than losing a sentence, so the caption rule never matches a line that
//! holds a dateline dash (` - `, ` – `). The headline, the first non-blank line no rule matches, is never dropped.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Longest line (in characters) a rule may drop; links, prompts and captions are one title or one sentence long.
pub const MAX_CHARS: usize = 200;

/// A line of the article that was left out before translation, and the rule that matched it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedLine {
    /// 1-based line number in the source text.
    pub line: usize,
    pub text: String,
    /// The name of the rule that matched.
    pub rule: String,
}

/// How a rule recognises a line.
#[derive(Debug, Clone, Copy)]
pub enum Matcher {
    /// The line matches `pattern` (a `regex` pattern over the whole line) and not `unless`.
    Pattern { pattern: &'static str, unless: Option<&'static str> },
    /// The line repeats the headline (spacing and case aside): the page's title shown again above its photo.
    RepeatsHeadline,
}

/// One kind of non-article line.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The name in a brief's `dropped` list.
    pub name: &'static str,
    /// A real line of this kind (from the seeds and evaldata articles, titles shortened).
    pub example: &'static str,
    pub matcher: Matcher,
}

/// The rules, tried in this order; the first that matches names the line. Documented in README.md (Boilerplate).
pub const RULES: &[Rule] = &[
    Rule {
        name: "scroll-prompt",
        example: "SCROLL TO CONTINUE WITH CONTENT",
        matcher: Matcher::Pattern { pattern: r"(?i)^scroll\s+to\s+continue(\s+with\s+content)?$", unless: None },
    },
    Rule {
        name: "advertisement",
        example: "[iklan_2]",
        matcher: Matcher::Pattern {
            pattern: r"(?i)^(advertisement|iklan|\[\s*(iklan|ads?|advertisement)[\s_-]?\d*\s*\])$",
            unless: None,
        },
    },
    Rule {
        // A link to another article: "Baca juga:" (read also) and a title.
        name: "read-also",
        example: "BACA JUGA:Syarat Putin ke Ukraina, …",
        matcher: Matcher::Pattern { pattern: r"(?i)^baca\s+(juga|pula)\s*(:|$)", unless: None },
    },
    Rule {
        // A link to a video: "Simak/Lihat/Tonton juga Video …", "Tonton juga "…" di sini:".
        name: "video-prompt",
        example: "Simak juga Video 'KPK Jerat 21 Tersangka …':",
        matcher: Matcher::Pattern {
            pattern: r#"(?i)^((simak|lihat|tonton|saksikan)\s+(juga\s+)?video\b|(simak|lihat|tonton)\s+juga\s*[:"“'‘])"#,
            unless: None,
        },
    },
    Rule {
        // The link to a live stream: "Saksikan Live Detikpagi :".
        name: "live-prompt",
        example: "Saksikan LiveDetikpagi:",
        matcher: Matcher::Pattern { pattern: r"(?i)^(saksikan|tonton)\s+live", unless: None },
    },
    Rule {
        // An invitation to follow the site elsewhere.
        name: "follow-prompt",
        example: "Cek Berita dan Artikel yang lain di Google News",
        matcher: Matcher::Pattern {
            pattern: r"(?i)^(cek|ikuti|follow|baca)\b.*\b(google\s+news|whatsapp(\s+channel)?|saluran\s+whatsapp|telegram|instagram|tiktok|twitter|facebook|youtube)[.!]?$",
            unless: None,
        },
    },
    Rule {
        name: "share-prompt",
        example: "Bagikan artikel ini",
        matcher: Matcher::Pattern {
            pattern: r"(?i)^(bagikan|share)(\s+(artikel|berita|ini|ke|via|this)\b[^.!?]*)?\s*:?$",
            unless: None,
        },
    },
    Rule {
        // A photo or video caption: "Foto: …", a caption ending in a credit such as "-Screenshoot/YouTube-",
        // "(Sumber: KCNA) |" or "(Foto: Antara/…)".
        name: "photo-caption",
        example: "Foto : Pertemuan Putin dan Kim Jong Un di Korea Utara.-…-CNN",
        matcher: Matcher::Pattern {
            pattern: r"(?i)^\(?(foto|video|ilustrasi|gambar)\s*:\s*\S|-[^-\s/]{1,40}/[^-/]{1,40}-$|\((sumber|foto|dok\.?|dokumentasi)\s*:[^()]*\)\s*\|$|\((foto|dok\.?)\s*:[^()]*\)$",
            unless: Some(r"\s[-–—]\s"),
        },
    },
    Rule {
        // A label whose link or value was lost with the page: "Sumber:", "Editor:".
        name: "bare-label",
        example: "Sumber:",
        matcher: Matcher::Pattern {
            pattern: r"(?i)^(sumber|source|foto|video|editor|penulis|reporter|pewarta|redaktur)\s*:?$",
            unless: None,
        },
    },
    Rule {
        // A staff credit: "Editor: Sandro Gatra" (a name, no sentence).
        name: "staff-credit",
        example: "Editor: Sandro Gatra",
        matcher: Matcher::Pattern {
            pattern: r"(?i)^(editor|penyunting|penulis|reporter|pewarta|redaktur|kontributor)\s*:\s*[^\s.!?,][^.!?]{0,60}$",
            unless: None,
        },
    },
    Rule {
        name: "comment-count",
        example: "Komentar (0)",
        matcher: Matcher::Pattern { pattern: r"(?i)^komentar\s*\(\d+\)$", unless: None },
    },
    Rule { name: "repeated-headline", example: "(the headline, again)", matcher: Matcher::RepeatsHeadline },
];

/// A rule with its patterns compiled.
struct Compiled {
    name: &'static str,
    pattern: Option<(Regex, Option<Regex>)>,
}

static COMPILED: LazyLock<Vec<Compiled>> = LazyLock::new(|| {
    let compile = |p: &str| Regex::new(p).expect("the boilerplate patterns are valid");
    RULES
        .iter()
        .map(|rule| Compiled {
            name: rule.name,
            pattern: match rule.matcher {
                Matcher::Pattern { pattern, unless } => Some((compile(pattern), unless.map(compile))),
                Matcher::RepeatsHeadline => None,
            },
        })
        .collect()
});

/// An article's text with its boilerplate lines taken out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The lines no rule matched (blank ones included), joined by `\n`.
    pub kept: String,
    /// The lines taken out, in order, numbered as in the original text.
    pub dropped: Vec<DroppedLine>,
}

/// The line as the rules see it: trimmed, without a Markdown marker or emphasis around it.
fn plain(line: &str) -> &str {
    line.trim().trim_start_matches(['#', '>', '*', '_', '+', '-', ' ', '\t']).trim_end_matches(['*', '_', ' ', '\t'])
}

fn same_words(a: &str, b: &str) -> bool {
    a.split_whitespace().map(str::to_lowercase).eq(b.split_whitespace().map(str::to_lowercase))
}

/// The rule that drops `line`, if any; `headline` is the article's headline once it is known.
pub fn rule_for(line: &str, headline: Option<&str>) -> Option<&'static str> {
    let line = plain(line);
    if line.is_empty() || line.chars().count() > MAX_CHARS {
        return None;
    }
    COMPILED.iter().find_map(|rule| {
        let hit = match &rule.pattern {
            Some((pattern, unless)) => pattern.is_match(line) && !unless.as_ref().is_some_and(|u| u.is_match(line)),
            None => headline.is_some_and(|h| same_words(line, plain(h))),
        };
        hit.then_some(rule.name)
    })
}

/// Whether some rule would drop `line` in the body of an article.
pub fn is_boilerplate(line: &str) -> bool {
    rule_for(line, None).is_some()
}

/// Splits `text` (lines ending in `\n` or `\r\n`) into the lines kept and those dropped as boilerplate.
pub fn split(text: &str) -> Split {
    let mut kept: Vec<&str> = Vec::new();
    let mut dropped = Vec::new();
    let mut headline: Option<&str> = None;
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        match rule_for(line, headline) {
            Some(rule) => dropped.push(DroppedLine { line: i + 1, text: line.trim().to_string(), rule: rule.into() }),
            None => {
                if headline.is_none() && !line.trim().is_empty() {
                    headline = Some(line);
                }
                kept.push(line);
            }
        }
    }
    Split { kept: kept.join("\n"), dropped }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `rule` drops each of `yes` and no rule drops any of `no`.
    fn check(rule: &str, yes: &[&str], no: &[&str]) {
        for line in yes {
            assert_eq!(rule_for(line, None), Some(rule), "{line:?}");
        }
        for line in no {
            assert_eq!(rule_for(line, None), None, "{line:?}");
        }
    }

    #[test]
    fn every_rule_has_a_unique_name_and_its_example_matches_it() {
        let mut names: Vec<&str> = RULES.iter().map(|r| r.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), RULES.len());
        for rule in RULES.iter().filter(|r| matches!(r.matcher, Matcher::Pattern { .. })) {
            assert_eq!(rule_for(rule.example, None), Some(rule.name), "{}", rule.example);
        }
    }

    #[test]
    fn scroll_prompt() {
        check(
            "scroll-prompt",
            &["SCROLL TO CONTINUE WITH CONTENT", "  Scroll to continue with content ", "SCROLL TO CONTINUE"],
            &["SCROLL TO CONTINUE WITH CONTENT dan berita lain", "Warga scroll to continue membaca."],
        );
    }

    #[test]
    fn advertisement() {
        check(
            "advertisement",
            &["ADVERTISEMENT", "Advertisement", "[iklan_2]", "[Iklan]", "IKLAN", "[ads1]"],
            &["Iklan rokok dilarang tayang pada jam anak-anak.", "Advertisement revenue naik 20 persen."],
        );
    }

    #[test]
    fn read_also() {
        check(
            "read-also",
            &[
                "BACA JUGA:Syarat Putin ke Ukraina, Serahkan Banyak Wilayah atau Perang Berlanjut",
                "Baca Juga : Pejabat Rusia: Emoji Gay Harus Dilarang",
                "**Baca juga:** [Harga Cabai Naik](https://example.com/a)",
                "> Baca pula: Harga beras",
                "Baca juga",
            ],
            &["Baca juga buku panduan yang dibagikan di sekolah, kata dia.", "Bacaan juga: tidak ada"],
        );
    }

    #[test]
    fn video_prompt() {
        check(
            "video-prompt",
            &[
                "Lihat juga Video: Seputar THR-Gaji ke-13 ASN yang Merogoh APBN Rp 99,5 T",
                "Simak juga Video 'Realisasi Investasi RI Kuartal III Tembus Rp 491,4 Triliun':",
                "Simak juga Video Prabowo: Jaga Kebun Kelapa Sawit Kita, Itu Aset Negara",
                "Tonton juga \"Staf Prabowo Bisa Ketipu Love Scam, Data Kepresidenan Aman?\" di sini:",
                "Tonton juga video \"Ombudsman Ungkap Ada Yayasan MBG Terafiliasi Politik\" di sini:",
                "Simak Video: Banjir di Pantura",
            ],
            &[
                "Simak informasinya!",
                "Lihat juga bagaimana pemerintah menyalurkan bantuan ke desa-desa.",
                "Tonton videonya membuat warga geram.",
                "Yuk, simak rangkuman di bawah ini.",
            ],
        );
    }

    #[test]
    fn live_prompt() {
        check(
            "live-prompt",
            &["Saksikan LiveDetikpagi:", "Saksikan Live Detikpagi :", "Tonton live streaming di sini"],
            &["Saksikan bagaimana warga hidup di tepi sungai.", "Ribuan warga menyaksikan live musik di alun-alun."],
        );
    }

    #[test]
    fn follow_prompt() {
        check(
            "follow-prompt",
            &[
                "Cek Berita dan Artikel yang lain di Google News",
                "Ikuti kami di Instagram!",
                "Baca berita lain di Google News.",
            ],
            &["Cek kesehatan gratis tersedia di puskesmas.", "Video itu diunggah ke YouTube oleh warga."],
        );
    }

    #[test]
    fn share_prompt() {
        check(
            "share-prompt",
            &["Bagikan artikel ini", "Share:", "Bagikan", "Bagikan ke WhatsApp"],
            &["Bagikan pengalaman Anda, kata panitia.", "Share pasar ponsel naik 5 persen."],
        );
    }

    #[test]
    fn photo_caption() {
        check(
            "photo-caption",
            &[
                "Foto : Pertemuan Putin dan Kim Jong Un di Korea Utara.-Bahas Strategis Keamanan-CNN",
                "Vladimir Putin Tiba di Korut Disambut Kim Jong Un-Screenshoot/YouTube-",
                "Pemimpin Korea Utara Kim Jong Un (kiri) dan Presiden Rusia Putin. (Sumber: KCNA) |",
                "Warga mengungsi ke masjid. (Foto: Antara/Sigid Kurniawan)",
                "(Foto: Dok. Humas Polri)",
                "Ilustrasi: kantor pajak",
            ],
            &[
                // A dateline paragraph with a credit stuck to its start or end keeps the whole line.
                "Foto: Antara Jakarta - Pemerintah menaikkan harga beras mulai pekan depan.",
                "Jakarta - Harga beras naik, kata menteri. (Foto: Antara/Aditya)",
                "Angka kemiskinan turun menjadi 9 persen (Sumber: BPS).",
                "Angka kemiskinan turun menjadi 9 persen (Sumber: BPS)",
                "Harga naik pada 2024-2025 menurut data BPS.",
                "Fotografer itu memotret banjir di Demak.",
            ],
        );
    }

    #[test]
    fn bare_label_staff_credit_and_comment_count() {
        check(
            "bare-label",
            &["Sumber:", "Sumber", "Editor :", "SUMBER"],
            &["Sumber: Kementerian Keuangan menyebut defisit naik."],
        );
        check(
            "staff-credit",
            &["Editor: Sandro Gatra", "Penulis : Tim detikcom", "Reporter: Ahmad Bil Wahid"],
            &["Penulis: buku ini ditulis di penjara, katanya.", "Editor majalah itu dipanggil polisi."],
        );
        check("comment-count", &["Komentar (0)", "Komentar(12)"], &["Komentar (0) itu viral di media sosial."]);
    }

    #[test]
    fn a_long_line_is_prose_whatever_it_starts_with() {
        let long = format!("Baca juga: {}", "kata ".repeat(50));
        assert!(long.chars().count() > MAX_CHARS);
        assert_eq!(rule_for(&long, None), None);
    }

    #[test]
    fn split_keeps_the_headline_numbers_lines_and_drops_its_repeat() {
        let text = "SCROLL TO CONTINUE WITH CONTENT\r\nHarga Beras Naik\r\n\r\nharga  beras NAIK\nJakarta - Harga beras naik.\nBaca juga: Harga cabai\nSumber:";
        let parts = split(text);
        assert_eq!(parts.kept, "Harga Beras Naik\n\nJakarta - Harga beras naik.");
        let dropped: Vec<(usize, &str, &str)> =
            parts.dropped.iter().map(|d| (d.line, d.text.as_str(), d.rule.as_str())).collect();
        assert_eq!(
            dropped,
            [
                (1, "SCROLL TO CONTINUE WITH CONTENT", "scroll-prompt"),
                (4, "harga  beras NAIK", "repeated-headline"),
                (6, "Baca juga: Harga cabai", "read-also"),
                (7, "Sumber:", "bare-label"),
            ]
        );
        assert_eq!(
            split("Harga Beras Naik\nIsi berita."),
            Split { kept: "Harga Beras Naik\nIsi berita.".into(), dropped: vec![] }
        );
        assert_eq!(split("").kept, "");
    }
}
