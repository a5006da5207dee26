//! Markdown in, Markdown out: the prose is cut into pieces to translate, and everything else comes back byte for
//! byte — block markers (headings' `#`, list markers and task boxes, block quotes, table pipes), fenced and
//! indented code, code spans, link and image targets, autolinks, bare URLs, inline HTML, HTML blocks and link
//! reference definitions.
//!
//! A line reader rather than a CommonMark parser such as pulldown-cmark: a parser yields events, not the source,
//! and writing its events back out rewrites the document (list markers, emphasis, escapes, spacing); here whatever
//! is not translated is the input's own text. Each line's prose is translated on its own, as `/translate` treats
//! each line of a text as a paragraph; emphasis inside a piece is left to the model, emphasis around a whole piece
//! is kept.

/// A piece of a Markdown document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Kept as it is.
    Verbatim(String),
    /// Prose to translate, without surrounding whitespace or emphasis markers.
    Text(String),
}

/// A Markdown document cut into kept text and prose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Markdown {
    parts: Vec<Part>,
}

impl Markdown {
    /// Cuts `text` (lines ending in `\n`) into kept text and prose.
    pub fn parse(text: &str) -> Self {
        let mut out = Builder::default();
        let mut blocks = Blocks { after_blank: true, ..Blocks::default() };
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                out.verbatim("\n");
            }
            blocks.line(line, &mut out);
        }
        Self { parts: out.parts }
    }

    /// The prose to translate, in reading order.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Text(t) => Some(t.as_str()),
            Part::Verbatim(_) => None,
        })
    }

    /// The document with each piece of prose replaced by the next of `translated` (as many as [`Self::texts`]
    /// yields; a missing one keeps its source).
    pub fn render(&self, translated: &[String]) -> String {
        let mut next = translated.iter();
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Verbatim(v) => out.push_str(v),
                Part::Text(t) => out.push_str(next.next().unwrap_or(t)),
            }
        }
        out
    }
}

#[derive(Default)]
struct Builder {
    parts: Vec<Part>,
}

impl Builder {
    fn verbatim(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        match self.parts.last_mut() {
            Some(Part::Verbatim(v)) => v.push_str(s),
            _ => self.parts.push(Part::Verbatim(s.to_string())),
        }
    }

    /// Prose, without its surrounding whitespace and, when they match on both sides, emphasis markers (kept);
    /// a piece without a letter or digit (punctuation, a thematic break, a table's delimiter row) is kept.
    fn text(&mut self, s: &str) {
        let mut core = s.trim();
        let marker = |c: char| matches!(c, '*' | '_' | '~');
        let lead = &core[..core.len() - core.trim_start_matches(marker).len()];
        let trail = &core[core.trim_end_matches(marker).len()..];
        if !lead.is_empty() && lead.len() < core.len() && lead.chars().rev().eq(trail.chars()) {
            core = core[lead.len()..core.len() - trail.len()].trim();
        }
        if !core.chars().any(char::is_alphanumeric) {
            self.verbatim(s);
            return;
        }
        let start = core.as_ptr() as usize - s.as_ptr() as usize;
        self.verbatim(&s[..start]);
        self.parts.push(Part::Text(core.to_string()));
        self.verbatim(&s[start + core.len()..]);
    }
}

/// What the lines so far leave open.
#[derive(Default)]
struct Blocks {
    /// Inside a fenced code block: its fence character and length.
    fence: Option<(char, usize)>,
    /// The previous line was blank (or there was none).
    after_blank: bool,
    /// The previous non-blank line was indented code.
    in_code: bool,
    /// Inside a list, where indented lines continue items instead of starting code.
    in_list: bool,
    /// Inside an HTML block (until a blank line).
    in_html: bool,
}

impl Blocks {
    fn line(&mut self, line: &str, out: &mut Builder) {
        if let Some((fence, len)) = self.fence {
            out.verbatim(line);
            if closes_fence(line, fence, len) {
                self.fence = None;
            }
            return;
        }
        if line.trim().is_empty() {
            out.verbatim(line);
            self.after_blank = true;
            self.in_html = false;
            return;
        }
        let after_blank = std::mem::replace(&mut self.after_blank, false);
        let indent = columns(line);
        if indent >= 4 && (self.in_code || after_blank) && !self.in_list {
            out.verbatim(line);
            self.in_code = true;
            return;
        }
        self.in_code = false;
        if let Some(fence) = opens_fence(line) {
            out.verbatim(line);
            self.fence = Some(fence);
            return;
        }
        if self.in_html || starts_html_block(line) {
            out.verbatim(line);
            self.in_html = true;
            return;
        }
        if is_reference_definition(line) {
            out.verbatim(line);
            return;
        }
        let prefix = block_prefix(line);
        if prefix.list_item {
            self.in_list = true;
        } else if indent == 0 && after_blank {
            self.in_list = false;
        }
        out.verbatim(&line[..prefix.len]);
        let body = &line[prefix.len..];
        let closing = if prefix.heading { closing_hashes(body) } else { 0 };
        inline(&body[..body.len() - closing], out);
        out.verbatim(&body[body.len() - closing..]);
    }
}

/// Leading indentation in columns (a tab to the next multiple of 4).
fn columns(line: &str) -> usize {
    let mut n = 0;
    for c in line.chars() {
        match c {
            ' ' => n += 1,
            '\t' => n += 4 - n % 4,
            _ => break,
        }
    }
    n
}

/// A code fence (three or more backticks, without a backtick in the info string, or tildes): its character and
/// length.
fn opens_fence(line: &str) -> Option<(char, usize)> {
    let rest = line.trim_start();
    let fence = rest.chars().next().filter(|&c| c == '`' || c == '~')?;
    let len = rest.len() - rest.trim_start_matches(fence).len();
    let info = &rest[len..];
    (len >= 3 && !(fence == '`' && info.contains('`'))).then_some((fence, len))
}

fn closes_fence(line: &str, fence: char, len: usize) -> bool {
    let rest = line.trim();
    rest.len() >= len && rest.chars().all(|c| c == fence)
}

/// Elements that start an HTML block (CommonMark's kinds 1 and 6), which then runs to a blank line.
const HTML_BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "center",
    "details",
    "dialog",
    "dd",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "head",
    "header",
    "hr",
    "html",
    "iframe",
    "legend",
    "li",
    "link",
    "main",
    "menu",
    "nav",
    "ol",
    "p",
    "param",
    "pre",
    "script",
    "section",
    "source",
    "style",
    "summary",
    "table",
    "tbody",
    "td",
    "textarea",
    "tfoot",
    "th",
    "thead",
    "title",
    "tr",
    "ul",
];

/// A line that starts an HTML block: a comment, a declaration, a block-level tag, or a lone tag.
fn starts_html_block(line: &str) -> bool {
    if columns(line) >= 4 {
        return false;
    }
    let rest = line.trim();
    if rest.starts_with("<!") || rest.starts_with("<?") {
        return true;
    }
    let Some(tag) = rest.strip_prefix("</").or_else(|| rest.strip_prefix('<')) else { return false };
    let name_len = tag.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(tag.len());
    let name = tag[..name_len].to_ascii_lowercase();
    let ends_name = tag[name_len..].chars().next().is_none_or(|c| c.is_whitespace() || c == '>' || c == '/');
    if name.is_empty() || !ends_name {
        return false;
    }
    HTML_BLOCKS.contains(&name.as_str()) || (rest.ends_with('>') && tag_len(rest) == Some(rest.len()))
}

/// `[label]: destination` (a footnote's `[^label]:` is prose, and not one).
fn is_reference_definition(line: &str) -> bool {
    if columns(line) >= 4 {
        return false;
    }
    let rest = line.trim_start();
    let Some(label) = rest.strip_prefix('[') else { return false };
    match label.find("]:") {
        Some(end) => end > 0 && !label[..end].contains(['[', ']']) && !label.starts_with('^'),
        None => false,
    }
}

/// The block markers that open a line.
struct Prefix {
    /// Bytes of indentation and markers.
    len: usize,
    list_item: bool,
    heading: bool,
}

/// Indentation, then any nesting of block quotes (`>`), list markers (`-`, `*`, `+`, `1.`, `1)`) and task boxes
/// (`[ ]`, `[x]`), then a heading's `#`s or a footnote's `[^label]:`.
fn block_prefix(line: &str) -> Prefix {
    let mut i = 0;
    let mut list_item = false;
    let mut heading = false;
    loop {
        i += line[i..].len() - line[i..].trim_start_matches([' ', '\t']).len();
        let rest = &line[i..];
        let spaced = |n: usize| rest[n..].is_empty() || rest[n..].starts_with([' ', '\t']);
        if rest.starts_with('>') {
            i += 1;
        } else if rest.starts_with(['-', '*', '+']) && spaced(1) {
            i += 1;
            list_item = true;
        } else if let Some(n) = ordered_marker(rest) {
            i += n;
            list_item = true;
        } else if list_item && ["[ ]", "[x]", "[X]"].iter().any(|b| rest.starts_with(b)) && spaced(3) {
            i += 3;
        } else {
            let hashes = rest.len() - rest.trim_start_matches('#').len();
            if (1..=6).contains(&hashes) && spaced(hashes) {
                i += hashes;
                heading = true;
            } else if let Some(end) = rest.strip_prefix("[^").and_then(|l| l.find("]:")) {
                i += end + 4;
            }
            break;
        }
    }
    i += line[i..].len() - line[i..].trim_start_matches([' ', '\t']).len();
    Prefix { len: i, list_item, heading }
}

/// `1.` or `1)` (up to 9 digits) followed by a space or the end of the line: its length.
fn ordered_marker(rest: &str) -> Option<usize> {
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let after = &rest[digits..];
    let marked = after.starts_with(['.', ')']) && (after.len() == 1 || after[1..].starts_with([' ', '\t']));
    ((1..=9).contains(&digits) && marked).then_some(digits + 1)
}

/// The length of a heading's closing sequence (` ##`), spaces included.
fn closing_hashes(body: &str) -> usize {
    let trimmed = body.trim_end();
    let without = trimmed.trim_end_matches('#');
    if without.len() == trimmed.len() || !(without.is_empty() || without.ends_with([' ', '\t'])) {
        return 0;
    }
    body.len() - without.trim_end().len()
}

/// Cuts one line's prose at what is kept: code spans, links' and images' targets (their text is prose), autolinks,
/// inline HTML, bare URLs and table pipes.
fn inline(s: &str, out: &mut Builder) {
    let mut text_start = 0;
    let mut i = 0;
    while let Some(c) = s[i..].chars().next() {
        let rest = &s[i..];
        let kept = match c {
            '\\' => {
                // An escaped character is prose.
                i += 1 + rest[1..].chars().next().map_or(0, char::len_utf8);
                continue;
            }
            '`' => code_span(rest),
            '<' => tag_len(rest),
            '|' => Some(1),
            'h' | 'w' if !s[..i].ends_with(char::is_alphanumeric) => bare_url(rest),
            '[' | '!' => {
                if let Some(link) = link(rest) {
                    out.text(&s[text_start..i]);
                    out.verbatim(&rest[..link.open]);
                    inline(&rest[link.open..link.open + link.text], out);
                    out.verbatim(&rest[link.open + link.text..link.len]);
                    i += link.len;
                    text_start = i;
                    continue;
                }
                None
            }
            _ => None,
        };
        match kept {
            Some(n) => {
                out.text(&s[text_start..i]);
                out.verbatim(&rest[..n]);
                i += n;
                text_start = i;
            }
            None if c == '`' => i += rest.len() - rest.trim_start_matches('`').len(),
            None => i += c.len_utf8(),
        }
    }
    out.text(&s[text_start..]);
}

/// A code span: a run of backticks up to the next run of the same length.
fn code_span(rest: &str) -> Option<usize> {
    let n = rest.len() - rest.trim_start_matches('`').len();
    let mut at = n;
    while let Some(start) = rest[at..].find('`').map(|p| p + at) {
        let run = rest[start..].len() - rest[start..].trim_start_matches('`').len();
        if run == n {
            return Some(start + run);
        }
        at = start + run;
    }
    None
}

/// An HTML tag, comment or autolink: `<` and a letter, `/`, `!` or `?`, up to the next `>`.
fn tag_len(rest: &str) -> Option<usize> {
    let next = rest[1..].chars().next()?;
    if !(next.is_ascii_alphabetic() || matches!(next, '/' | '!' | '?')) {
        return None;
    }
    rest.find('>').map(|end| end + 1)
}

/// `http://`, `https://` or `www.` up to whitespace, without trailing punctuation (or an unmatched `)`).
fn bare_url(rest: &str) -> Option<usize> {
    if !(rest.starts_with("http://") || rest.starts_with("https://") || rest.starts_with("www.")) {
        return None;
    }
    let mut url = &rest[..rest.find(|c: char| c.is_whitespace() || c == '<').unwrap_or(rest.len())];
    loop {
        let trimmed = url.trim_end_matches(['.', ',', ':', ';', '!', '?', '\'', '"', '*', '_']);
        let trimmed = match trimmed.strip_suffix(')') {
            Some(t) if trimmed.matches('(').count() < trimmed.matches(')').count() => t,
            _ => trimmed,
        };
        if trimmed.len() == url.len() {
            break;
        }
        url = trimmed;
    }
    (url.len() > "www.".len()).then_some(url.len())
}

/// A link or image: the length of its opening (`[` or `![`), of its text, and of the whole.
struct Link {
    open: usize,
    text: usize,
    len: usize,
}

/// `[text](target)`, `[text][label]`, or the same after `!`; brackets and parentheses may nest.
fn link(rest: &str) -> Option<Link> {
    let open = if rest.starts_with("![") {
        2
    } else if rest.starts_with('[') {
        1
    } else {
        return None;
    };
    let text = matching(&rest[open - 1..], '[', ']')? - 1;
    let after = open + text + 1;
    let close = match rest[after..].chars().next()? {
        '(' => matching(&rest[after..], '(', ')')?,
        '[' => matching(&rest[after..], '[', ']')?,
        _ => return None,
    };
    Some(Link { open, text, len: after + close + 1 })
}

/// The offset of the bracket that closes the one `s` starts with (backslash escapes and code spans skipped).
fn matching(s: &str, open: char, close: char) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(c) = s[i..].chars().next() {
        match c {
            '\\' => {
                i += 1 + s[i + 1..].chars().next().map_or(0, char::len_utf8);
                continue;
            }
            '`' => {
                i += code_span(&s[i..]).unwrap_or(s[i..].len() - s[i..].trim_start_matches('`').len());
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += c.len_utf8();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# Harga Beras Naik ##\n\
        \n\
        Harga beras di [pasar induk](https://example.id/pasar?a=1 \"Pasar\") naik lagi.\n\
        Lihat https://example.id/berita, atau <https://example.id>.\n\
        \n\
        - Petani **senang**.\n\
        - [ ] Pedagang `kode_ini` khawatir.\n\
        \x20 1. Menurut ![foto pasar](img/pasar.png) ramai.\n\
        \n\
        > Pemerintah *berjanji* bertindak.\n\
        > > Kutipan dalam.\n\
        \n\
        ```sh\n\
        echo \"jangan diterjemahkan\"\n\
        ```\n\
        \n\
        \x20   kode terindentasi tetap\n\
        \n\
        | Kota | Harga |\n\
        |------|------:|\n\
        | Jakarta | Rp 12.000 |\n\
        \n\
        *Catatan redaksi*\n\
        \n\
        ---\n\
        <div class=\"iklan\">\n\
        Iklan di sini\n\
        </div>\n\
        \n\
        Teks <b>tebal</b> dan [rujukan][1].\n\
        \n\
        [1]: https://example.id/rujukan\n\
        [^2]: Catatan kaki.\n";

    #[test]
    fn only_the_prose_is_translated() {
        let doc = Markdown::parse(DOC);
        let texts: Vec<&str> = doc.texts().collect();
        assert_eq!(
            texts,
            [
                "Harga Beras Naik",
                "Harga beras di",
                "pasar induk",
                "naik lagi.",
                "Lihat",
                ", atau",
                "Petani **senang**.",
                "Pedagang",
                "khawatir.",
                "Menurut",
                "foto pasar",
                "ramai.",
                "Pemerintah *berjanji* bertindak.",
                "Kutipan dalam.",
                "Kota",
                "Harga",
                "Jakarta",
                "Rp 12.000",
                "Catatan redaksi",
                "Teks",
                "tebal",
                "dan",
                "rujukan",
                "Catatan kaki.",
            ]
        );
    }

    #[test]
    fn everything_else_comes_back_as_it_was() {
        let doc = Markdown::parse(DOC);
        let same: Vec<String> = doc.texts().map(str::to_string).collect();
        assert_eq!(doc.render(&same), DOC);
        let upper: Vec<String> = doc.texts().map(str::to_uppercase).collect();
        let expected = "# HARGA BERAS NAIK ##\n\
            \n\
            HARGA BERAS DI [PASAR INDUK](https://example.id/pasar?a=1 \"Pasar\") NAIK LAGI.\n\
            LIHAT https://example.id/berita, ATAU <https://example.id>.\n\
            \n\
            - PETANI **SENANG**.\n\
            - [ ] PEDAGANG `kode_ini` KHAWATIR.\n\
            \x20 1. MENURUT ![FOTO PASAR](img/pasar.png) RAMAI.\n\
            \n\
            > PEMERINTAH *BERJANJI* BERTINDAK.\n\
            > > KUTIPAN DALAM.\n\
            \n\
            ```sh\n\
            echo \"jangan diterjemahkan\"\n\
            ```\n\
            \n\
            \x20   kode terindentasi tetap\n\
            \n\
            | KOTA | HARGA |\n\
            |------|------:|\n\
            | JAKARTA | RP 12.000 |\n\
            \n\
            *CATATAN REDAKSI*\n\
            \n\
            ---\n\
            <div class=\"iklan\">\n\
            Iklan di sini\n\
            </div>\n\
            \n\
            TEKS <b>TEBAL</b> DAN [RUJUKAN][1].\n\
            \n\
            [1]: https://example.id/rujukan\n\
            [^2]: CATATAN KAKI.\n";
        assert_eq!(doc.render(&upper), expected);
    }

    #[test]
    fn indented_lines_in_a_list_are_prose_and_tilde_fences_are_code() {
        let doc = Markdown::parse("- Satu\n\n    Lanjutan butir.\n\nBiasa.\n\n    kode\n~~~\nHarga `x\n~~~~\nAkhir");
        let texts: Vec<&str> = doc.texts().collect();
        assert_eq!(texts, ["Satu", "Lanjutan butir.", "Biasa.", "Akhir"]);
    }

    #[test]
    fn unmatched_markers_are_prose() {
        let doc = Markdown::parse("Harga [naik dan `turun lagi < 5 persen");
        assert_eq!(doc.texts().collect::<Vec<_>>(), ["Harga [naik dan `turun lagi < 5 persen"]);
    }
}
