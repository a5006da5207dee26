//! Article segmentation: lines into paragraphs (blank lines and Markdown markers kept) and paragraphs into
//! sentences, with Indonesian abbreviations, initials, numbers, dates and quotes handled.

/// A document as translation sees it: every line of the input, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub lines: Vec<Line>,
}

/// One input line. Blank lines carry no text; a paragraph keeps its indentation and Markdown marker verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Blank(String),
    Paragraph { prefix: String, sentences: Vec<String> },
}

impl Document {
    /// Splits `text` into lines (`\n` or `\r\n`) and each non-blank line into sentences.
    pub fn parse(text: &str) -> Self {
        let lines = text
            .split('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .map(|line| {
                if line.trim().is_empty() {
                    Line::Blank(line.to_string())
                } else {
                    let (prefix, body) = split_prefix(line);
                    Line::Paragraph { prefix: prefix.to_string(), sentences: split_sentences(body) }
                }
            })
            .collect();
        Self { lines }
    }

    /// The paragraphs (non-blank lines).
    pub fn paragraphs(&self) -> impl Iterator<Item = &Vec<String>> {
        self.lines.iter().filter_map(|l| match l {
            Line::Paragraph { sentences, .. } => Some(sentences),
            Line::Blank(_) => None,
        })
    }

    /// Every sentence, in reading order.
    pub fn sentences(&self) -> impl Iterator<Item = &str> {
        self.paragraphs().flat_map(|p| p.iter().map(String::as_str))
    }

    /// Rebuilds the text with each sentence replaced by the next of `translated` (as many as [`Self::sentences`]
    /// yields), the non-empty ones of a paragraph joined by a space; line structure, prefixes and blank lines
    /// unchanged.
    pub fn render(&self, translated: &[String]) -> String {
        let mut next = translated.iter();
        let lines: Vec<String> = self
            .lines
            .iter()
            .map(|line| match line {
                Line::Blank(s) => s.clone(),
                Line::Paragraph { prefix, sentences } => {
                    let parts: Vec<&str> = sentences
                        .iter()
                        .map(|_| next.next().map(String::as_str).unwrap_or(""))
                        .filter(|s| !s.is_empty())
                        .collect();
                    format!("{prefix}{}", parts.join(" "))
                }
            })
            .collect();
        lines.join("\n")
    }
}

/// Leading indentation and a Markdown block marker (`#`, `>`, `-`, `*`, `+`, `1.`), which are not translated.
fn split_prefix(line: &str) -> (&str, &str) {
    let indent = line.len() - line.trim_start().len();
    let rest = &line[indent..];
    let marker_len = if let Some(hashes) = rest.find(|c| c != '#').filter(|&n| n > 0 && n <= 6) {
        rest[hashes..].starts_with(' ').then_some(hashes + 1)
    } else if rest.starts_with("> ") || rest.starts_with("- ") || rest.starts_with("* ") || rest.starts_with("+ ") {
        Some(2)
    } else {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
        (digits > 0 && digits <= 3 && (rest[digits..].starts_with(". ") || rest[digits..].starts_with(") ")))
            .then_some(digits + 2)
    };
    let prefix_len = indent + marker_len.unwrap_or(0);
    let body_start = prefix_len + (line[prefix_len..].len() - line[prefix_len..].trim_start().len());
    (&line[..body_start], line[body_start..].trim_end())
}

/// Abbreviations that end in a period without ending a sentence (compared case-sensitively, without the period).
const ABBREVIATIONS: &[&str] = &[
    // Titles and honorifics.
    "Dr", "dr", "Drs", "Dra", "Ir", "Prof", "H", "Hj", "KH", "Tn", "Ny", "Nn", "Sdr", "Sdri", "Bpk", "Bp", "Yth", "St",
    "Mr", "Mrs", "Ms", "Jr", "Sr", "Kak", "Pak", "Bu",
    // Degrees (the last part of S.H., M.Si., S.Kom. ...).
    "SH", "SE", "MH", "MM", "MSi", "Si", "Pd", "Kom", "Ag", "Sos", "Ked", "Kes", "Hum", "Ikom", "Psi", "Sp", "Tr", "MA",
    "MBA", "MPA", "MT", "Ph", "PhD", // Military and police ranks.
    "Jend", "Jenderal", "Letjen", "Mayjen", "Brigjen", "Kol", "Letkol", "Mayor", "Kapt", "Lettu", "Letda", "Serka",
    "Serma", "Sertu", "Serda", "Kopda", "Pratu", "Irjen", "Komjen", "Kombes", "AKBP", "AKP", "Ipda", "Iptu", "Aiptu",
    "Aipda", "Bripka", "Brigpol", "Pol", // Places and addresses.
    "Kec", "Kab", "Kel", "Ds", "Desa", "Jl", "Jln", "Gg", "Prov", "Kota", "Kp", "Kav", "Blok", "No", "RT", "RW", "Tlp",
    "Telp", "Hp", "Fax", // Organisations and money.
    "PT", "CV", "Tbk", "Persero", "Rp", "USD", "Co", "Inc", "Ltd", "Corp", // Common abbreviations of words.
    "dkk", "dll", "dsb", "dst", "tsb", "yg", "dgn", "utk", "spt", "krn", "jl", "no", "hal", "vol", "hlm", "ttd", "an",
    "up", "al", "vs", "etc", "ca", "cf", "ps", "sd", "Sept", "Okt", "Des", "Feb", "Agu", "Agt", "Jan", "Mar", "Apr",
    "Jun", "Jul", "Nov",
];

/// Characters that may close a sentence after its final punctuation.
fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | '”' | '’' | '»' | ')' | ']' | '}')
}

fn is_opener(c: char) -> bool {
    matches!(c, '"' | '\'' | '“' | '‘' | '«' | '(' | '[')
}

/// Whether a `.` ends the word before it as an abbreviation, initial or dotted short form (`S.H`, `a.n`, `M`).
fn is_abbreviation(word: &str) -> bool {
    let word = word.trim_start_matches(|c: char| is_opener(c) || c == ',');
    if word.is_empty() {
        return false;
    }
    // Dotted short forms (S.H, M.Si, a.n, U.S) and single-letter initials.
    let chars: Vec<char> = word.chars().collect();
    if chars.len() == 1 && chars[0].is_alphabetic() {
        return true;
    }
    if word.contains('.')
        && word.split('.').all(|p| !p.is_empty() && p.chars().count() <= 3 && p.chars().all(char::is_alphabetic))
    {
        return true;
    }
    let last = word.rsplit('.').next().unwrap_or(word);
    ABBREVIATIONS.contains(&word) || ABBREVIATIONS.contains(&last)
}

/// Splits one paragraph into sentences. A boundary is `.`, `!`, `?` or `…` (with any closing quotes or brackets)
/// followed by whitespace and a capital letter, digit or opening quote; a `.` after an abbreviation is not one.
pub fn split_sentences(paragraph: &str) -> Vec<String> {
    let text = paragraph.trim();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut sentences = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let (_, c) = chars[i];
        if !matches!(c, '.' | '!' | '?' | '…') {
            i += 1;
            continue;
        }
        // Extend over repeated terminators ("?!", "...") and closing quotes/brackets.
        let mut end = i + 1;
        while end < chars.len() && (matches!(chars[end].1, '.' | '!' | '?' | '…') || is_closer(chars[end].1)) {
            end += 1;
        }
        let followed_by_space = end < chars.len() && chars[end].1.is_whitespace();
        let mut next = end;
        while next < chars.len() && chars[next].1.is_whitespace() {
            next += 1;
        }
        let starts_sentence = next < chars.len() && {
            let n = chars[next].1;
            n.is_uppercase() || n.is_ascii_digit() || is_opener(n) || matches!(n, '“' | '‘' | '-' | '–' | '—')
        };
        let single_period = c == '.' && (end == i + 1 || is_closer(chars[i + 1].1));
        let abbreviation = single_period && {
            let word_start = chars[..i].iter().rposition(|(_, ch)| ch.is_whitespace()).map_or(0, |p| p + 1);
            let word = &text[chars[word_start].0.min(chars[i].0)..chars[i].0];
            is_abbreviation(word)
        };
        if followed_by_space && starts_sentence && !abbreviation {
            let byte_end = chars.get(end).map_or(text.len(), |(b, _)| *b);
            sentences.push(text[start..byte_end].trim().to_string());
            start = chars.get(next).map_or(text.len(), |(b, _)| *b);
            i = next;
        } else {
            i = end;
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        sentences.push(rest.to_string());
    }
    sentences
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_plain_sentences() {
        assert_eq!(
            split_sentences("Harga beras naik. Pemerintah akan bertindak! Apa kata menteri? 2024 adalah tahun pemilu."),
            ["Harga beras naik.", "Pemerintah akan bertindak!", "Apa kata menteri?", "2024 adalah tahun pemilu."]
        );
    }

    #[test]
    fn abbreviations_titles_and_degrees_do_not_end_sentences() {
        let s = "Dr. Siti Nurhaliza, S.H., M.Si. bertemu Prof. Budi di Kec. Cilandak, Kab. Bogor. Mereka membahas Jl. Sudirman No. 5.";
        assert_eq!(
            split_sentences(s),
            [
                "Dr. Siti Nurhaliza, S.H., M.Si. bertemu Prof. Budi di Kec. Cilandak, Kab. Bogor.",
                "Mereka membahas Jl. Sudirman No. 5."
            ]
        );
        assert_eq!(split_sentences("Kapolres AKBP. Joko hadir."), ["Kapolres AKBP. Joko hadir."]);
        assert_eq!(split_sentences("Pelaku berinisial A. Budi ditangkap."), ["Pelaku berinisial A. Budi ditangkap."]);
    }

    #[test]
    fn numbers_and_dates_do_not_end_sentences() {
        let s = "Anggaran Rp 1.250,5 miliar disetujui pada 12/3/2024 pukul 10.30 WIB. Dana cair bulan depan.";
        assert_eq!(
            split_sentences(s),
            ["Anggaran Rp 1.250,5 miliar disetujui pada 12/3/2024 pukul 10.30 WIB.", "Dana cair bulan depan."]
        );
        assert_eq!(split_sentences("Harganya Rp. 5.000 per kg."), ["Harganya Rp. 5.000 per kg."]);
    }

    #[test]
    fn quotes_stay_with_their_sentence() {
        let s = "\"Belum, belum. 2026 belum,\" kata Rofyanto. \"Itu jangka menengah.\" Dia pergi.";
        assert_eq!(
            split_sentences(s),
            ["\"Belum, belum.", "2026 belum,\" kata Rofyanto.", "\"Itu jangka menengah.\"", "Dia pergi."]
        );
        assert_eq!(
            split_sentences("“Kami bersyukur,” kata Ushakov. Menurutnya, itu penting."),
            ["“Kami bersyukur,” kata Ushakov.", "Menurutnya, itu penting."]
        );
        assert_eq!(split_sentences("\"Siapa dia?\" tanya Budi."), ["\"Siapa dia?\" tanya Budi."]);
    }

    #[test]
    fn ellipses_and_lowercase_continuations() {
        assert_eq!(split_sentences("Dia menunggu... lalu pergi."), ["Dia menunggu... lalu pergi."]);
        assert_eq!(split_sentences("Dia menunggu... Lalu pergi."), ["Dia menunggu...", "Lalu pergi."]);
    }

    #[test]
    fn documents_keep_lines_blank_lines_and_markers() {
        let text = "Judul Berita\n\n## Bagian satu\n- Butir pertama. Butir kedua.\n  \nParagraf akhir.\r\n";
        let doc = Document::parse(text);
        assert_eq!(doc.lines.len(), 7);
        assert_eq!(doc.paragraphs().count(), 4);
        assert_eq!(
            doc.sentences().collect::<Vec<_>>(),
            ["Judul Berita", "Bagian satu", "Butir pertama.", "Butir kedua.", "Paragraf akhir."]
        );
        let english: Vec<String> = ["Headline", "Part one", "First item.", "Second item.", "Last paragraph."]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(doc.render(&english), "Headline\n\n## Part one\n- First item. Second item.\n  \nLast paragraph.\n");
    }

    #[test]
    fn empty_and_whitespace_documents() {
        assert_eq!(Document::parse("").sentences().count(), 0);
        assert_eq!(Document::parse("  \n\t\n").sentences().count(), 0);
        assert_eq!(Document::parse("  \n\t\n").render(&[]), "  \n\t\n");
    }
}
