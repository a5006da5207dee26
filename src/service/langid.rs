//! Telling Indonesian from English for `source=auto` and `/detect`: lingua's n-gram models for the two languages,
//! with a function-word count deciding the inputs of one to three words that contain one (docs/BENCHMARKS.md,
//! "Language detection").

use std::sync::LazyLock;

use lingua::{Language, LanguageDetector, LanguageDetectorBuilder};

/// A detected language: ISO 639-1 code and confidence in percent (as LibreTranslate reports it).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Detection {
    pub language: &'static str,
    pub confidence: f64,
}

const INDONESIAN: &[&str] = &[
    "yang",
    "dan",
    "di",
    "ini",
    "itu",
    "dengan",
    "untuk",
    "tidak",
    "dari",
    "dalam",
    "akan",
    "pada",
    "juga",
    "ke",
    "karena",
    "ada",
    "oleh",
    "saya",
    "kami",
    "kita",
    "mereka",
    "adalah",
    "tersebut",
    "atau",
    "bahwa",
    "sudah",
    "telah",
    "bisa",
    "lebih",
    "para",
    "seperti",
    "kata",
    "menjadi",
    "secara",
    "hingga",
    "namun",
    "saat",
    "tahun",
    "orang",
    "harga",
    "naik",
    "pemerintah",
    "dia",
    "ia",
    "belum",
    "masih",
    "hari",
    "tetapi",
    "jika",
    "agar",
];

const ENGLISH: &[&str] = &[
    "the", "and", "of", "to", "in", "is", "that", "for", "it", "with", "as", "was", "on", "be", "by", "this", "are",
    "from", "at", "or", "an", "have", "not", "but", "they", "which", "has", "had", "were", "will", "would", "their",
    "been", "said", "there", "we", "he", "she", "his", "her", "its", "who", "what", "than", "more",
];

/// Inputs of at most this many words are short: a function word among them decides, if there is one.
const SHORT_WORDS: usize = 3;

/// Below this, lingua's `en` for a short input is answered `id`: `source=auto` refuses English, so a wrong `en`
/// refuses an Indonesian request, while a wrong `id` only sends English through the id→en model.
const SHORT_EN_MIN_CONFIDENCE: f64 = 70.0;

/// lingua restricted to the two languages brief tells apart; the models (about 8 MB, compiled in) load on first use.
static LINGUA: LazyLock<LanguageDetector> =
    LazyLock::new(|| LanguageDetectorBuilder::from_languages(&[Language::English, Language::Indonesian]).build());

/// Indonesian or English, with the hand-written parts kept only where they measured better than lingua alone
/// (docs/BENCHMARKS.md, "Language detection"): a short input (1–3 words) with a function word of one language and
/// not the other goes by [`function_words`], 2–3 points better on English and no worse on Indonesian; a short
/// input lingua calls `en` below 70% is `id` (names and single words: "Halo" is `en` at 58%). Everything else is
/// lingua's answer; text without letters is `id` at 50%.
pub fn detect(text: &str) -> Detection {
    let short = text.split_whitespace().count() <= SHORT_WORDS;
    if short {
        let (id, en) = count_function_words(text);
        if id != en {
            return function_words(text);
        }
    }
    let Some(&(language, value)) = LINGUA.compute_language_confidence_values(text).first() else {
        return Detection { language: "id", confidence: 50.0 };
    };
    let confidence = (100.0 * value).round();
    match language {
        _ if value == 0.0 => Detection { language: "id", confidence: 50.0 },
        Language::English if short && confidence < SHORT_EN_MIN_CONFIDENCE => {
            Detection { language: "id", confidence: 100.0 - confidence }
        }
        Language::English => Detection { language: "en", confidence },
        _ => Detection { language: "id", confidence },
    }
}

/// How many of the words are Indonesian and how many English function words.
fn count_function_words(text: &str) -> (usize, usize) {
    let (mut id, mut en) = (0usize, 0usize);
    for word in text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()) {
        let w = word.to_lowercase();
        id += usize::from(INDONESIAN.contains(&w.as_str()));
        en += usize::from(ENGLISH.contains(&w.as_str()));
    }
    (id, en)
}

/// Indonesian or English by the share of each language's function words; Indonesian at 50% when neither shows.
/// brief's detector before lingua, kept for short inputs and as the baseline in `examples/langid_eval.rs`.
pub fn function_words(text: &str) -> Detection {
    let (id, en) = count_function_words(text);
    if id + en == 0 {
        return Detection { language: "id", confidence: 50.0 };
    }
    let (language, hits) = if en > id { ("en", en) } else { ("id", id) };
    let confidence = (100.0 * hits as f64 / (id + en) as f64).round();
    Detection { language, confidence }
}

#[cfg(test)]
mod tests {
    use super::{detect, function_words};

    fn answer(text: &str) -> (&'static str, f64) {
        let d = detect(text);
        (d.language, d.confidence)
    }

    #[test]
    fn tells_evaldata_sentences_apart() {
        // NTREX-128 line 5, PANL news test line 10, NusaX test line 3: each Indonesian line and its English pair.
        let pairs = [
            (
                "Seorang AM partai buruh mengatakan bahwa kelompoknya prihatin, “Sebutan itu senada dengan Twp dan Pwp.”",
                "One Labour AM said his group was concerned \"it rhymes with Twp and Pwp.\"",
            ),
            (
                "Bambang belum mengetahui kapan pembentukan RT/RW di Tanah Merah ini akan rampung.",
                "Sugiyono does not know yet when the RT/RW formation in Tanah Merah completed.",
            ),
            (
                "Kangkungnya lumayan tapi kepiting saus padangnya mengecewakan kami dikasih kepiting yang kopong akhir kami \
                 tidak makan keptingnya dan dikembalikan.",
                "The water spinach was alright but the crab with Padang sauce was disappointing.",
            ),
        ];
        let answers: Vec<_> = pairs.iter().map(|(id, en)| (answer(id), answer(en))).collect();
        assert_eq!(
            answers,
            [(("id", 100.0), ("en", 100.0)), (("id", 100.0), ("en", 64.0)), (("id", 100.0), ("en", 100.0))]
        );
    }

    #[test]
    fn tells_headlines_apart() {
        // A Detik title and two NTREX document titles, the third in both languages.
        assert_eq!(
            answer("Gubernur Abdul Wahid Luncurkan Mobil Topling, Inovasi Kendalikan Inflasi di Riau"),
            ("id", 100.0)
        );
        assert_eq!(answer("Macedonians go to polls in referendum on changing country's name"), ("en", 99.0));
        assert_eq!(answer("Welsh AMs worried about 'looking like muppets'"), ("en", 100.0));
        assert_eq!(
            answer("Anggota Majelis (AM) Welsh khawatir bila mereka ‘tampak seperti boneka muppets'."),
            ("id", 100.0)
        );
    }

    #[test]
    fn short_inputs_go_by_function_words_then_lingua_with_70_percent_for_english() {
        assert_eq!(answer("Presiden mengatakan bahwa"), ("id", 100.0));
        assert_eq!(answer("The President said"), ("en", 100.0));
        // lingua says `en` at 58%: below 70%, a short input stays Indonesian.
        assert_eq!(answer("Halo"), ("id", 42.0));
        assert_eq!(answer("Apa kabar?"), ("id", 96.0));
        assert_eq!(answer("Good morning"), ("en", 94.0));
        assert_eq!(answer("Rice prices rose"), ("en", 93.0));
        assert_eq!(answer("Selamat pagi"), ("id", 96.0));
    }

    #[test]
    fn text_without_letters_is_indonesian_at_even_odds() {
        assert_eq!(answer("2019"), ("id", 50.0));
        assert_eq!(answer("27/3, 1.500"), ("id", 50.0));
        assert_eq!(answer(""), ("id", 50.0));
    }

    #[test]
    fn function_words_count_shares() {
        let d = function_words("Harga beras naik lagi di pasar yang ramai.");
        assert_eq!((d.language, d.confidence), ("id", 100.0));
        let d = function_words("The price of rice rose again in the busy market.");
        assert_eq!((d.language, d.confidence), ("en", 100.0));
        let d = function_words("Jokowi");
        assert_eq!((d.language, d.confidence), ("id", 50.0));
    }
}
