//! Telling Indonesian from English for `source=auto`: function words are frequent and distinctive enough for the
//! only question brief has to answer (is this input for the id→en model?).

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

/// Indonesian or English, by the share of each language's function words; Indonesian when neither shows.
pub fn detect(text: &str) -> Detection {
    let (mut id, mut en) = (0usize, 0usize);
    for word in text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()) {
        let w = word.to_lowercase();
        id += usize::from(INDONESIAN.contains(&w.as_str()));
        en += usize::from(ENGLISH.contains(&w.as_str()));
    }
    if id + en == 0 {
        return Detection { language: "id", confidence: 50.0 };
    }
    let (language, hits) = if en > id { ("en", en) } else { ("id", id) };
    let confidence = (100.0 * hits as f64 / (id + en) as f64).round();
    Detection { language, confidence }
}

#[cfg(test)]
mod tests {
    use super::detect;

    #[test]
    fn tells_indonesian_from_english() {
        assert_eq!(detect("Harga beras naik lagi di pasar yang ramai.").language, "id");
        assert_eq!(detect("The price of rice rose again in the busy market.").language, "en");
        let unknown = detect("Jokowi");
        assert_eq!((unknown.language, unknown.confidence), ("id", 50.0));
        assert_eq!(detect("Presiden mengatakan bahwa dia akan datang.").confidence, 100.0);
    }
}
