//! HTML in, HTML out: the fragment is parsed as a browser parses the content of a `<body>` (html5ever), the prose
//! of each block translated as whole sentences with its inline markup put back around the aligned English words,
//! and the result serialized by html5ever (well-formed, every tag and attribute kept once).
//!
//! A *run* is a maximal sequence of sibling nodes made only of text and inline elements (`b`, `a`, `span`, `br`, …).
//! Its plain text (tags stripped, whitespace collapsed as a browser does) is segmented into sentences exactly as
//! plain text is ([`Document`]), so the model sees the same sentences, and token ids, as for the plain text. Block
//! elements are recursed into; `script`, `style`, `code`, `pre`, `kbd`, `samp`, `var`, `textarea`, comments and
//! elements marked `translate="no"` or `class="notranslate"` are kept as they are (inside a run: as one unit).
//!
//! # Where inline markup goes in the English text
//!
//! Each inline element covers the source words (whitespace-separated words of its run) that its text touches; one
//! covering part of a word covers the whole word. An element with no word at all (`<img>`, `<br>`, a comment, an
//! untranslated unit, `<b> </b>`) is a *point*: it is anchored after the last source word that starts before it.
//!
//! After translation, with one [`WordAlignment`] per sentence:
//! 1. An element goes around the smallest contiguous run of English words that covers every English word aligned
//!    into its source words. With none (or no alignment at all: a default alignment is no information) it goes
//!    around the whole English sentence(s) its source words are in — it is never lost.
//! 2. Nested elements stay nested: a child is clamped inside its parent's run. If that leaves it empty, or it would
//!    cross an element already placed (elements are placed parent first, in document order), it goes around its
//!    parent's run (the whole run of the block for a top-level element).
//! 3. A point goes after the English words aligned to its anchor word (at the start when it has none before it,
//!    at the end of the sentence when that word aligns nowhere), clamped inside its parent's run.
//!
//! Every element and attribute thus comes out exactly once and properly nested. Two elements on the same words
//! nest in document order.

use std::io;

use html5ever::serialize::{serialize, Serialize, SerializeOpts, Serializer, TraversalScope};
use html5ever::QualName;

use super::align::WordAlignment;
use crate::tokenize::segment::{Document, Line};

/// A node of the parsed fragment, owned so that runs can be rebuilt.
#[derive(Debug, Clone)]
enum Node {
    Element { name: QualName, attrs: Vec<(QualName, String)>, children: Vec<Node> },
    Text(String),
    Comment(String),
    Doctype(String),
    Pi { target: String, data: String },
}

/// Elements that do not break a run of prose (HTML's phrasing content, less the embedded and form widgets that
/// carry no prose of their own, which are points).
const INLINE: &[&str] = &[
    "a", "abbr", "b", "bdi", "bdo", "big", "br", "cite", "code", "data", "del", "dfn", "em", "font", "i", "img",
    "input", "ins", "kbd", "label", "mark", "q", "s", "samp", "script", "small", "span", "strike", "strong", "style",
    "sub", "sup", "textarea", "time", "tt", "u", "var", "wbr",
];
/// Elements whose content is code, preformatted or not prose: kept as they are.
const UNTRANSLATED: &[&str] = &[
    "script", "style", "code", "pre", "kbd", "samp", "var", "textarea", "template", "svg", "math", "noscript",
    "iframe", "object",
];

fn local(name: &QualName) -> &str {
    &name.local
}

fn attr<'a>(attrs: &'a [(QualName, String)], name: &str) -> Option<&'a str> {
    attrs.iter().find(|(k, _)| local(k) == name).map(|(_, v)| v.as_str())
}

/// Kept verbatim: code-like elements and those the author marked not to translate.
fn is_untranslated(node: &Node) -> bool {
    match node {
        Node::Element { name, attrs, .. } => {
            UNTRANSLATED.contains(&local(name))
                || attr(attrs, "translate").is_some_and(|v| v.trim().eq_ignore_ascii_case("no"))
                || attr(attrs, "class").is_some_and(|c| c.split_ascii_whitespace().any(|c| c == "notranslate"))
        }
        Node::Comment(_) | Node::Doctype(_) | Node::Pi { .. } => true,
        Node::Text(_) => false,
    }
}

/// Whether `node` can sit inside a run: text, comments, and inline elements holding only such nodes.
fn is_inline(node: &Node) -> bool {
    match node {
        Node::Element { name, children, .. } => {
            INLINE.contains(&local(name)) && (is_untranslated(node) || children.iter().all(is_inline))
        }
        Node::Doctype(_) => false,
        _ => true,
    }
}

fn convert(node: ego_tree::NodeRef<'_, scraper::Node>) -> Option<Node> {
    Some(match node.value() {
        scraper::Node::Element(e) => Node::Element {
            name: e.name.clone(),
            attrs: e.attrs.iter().map(|(k, v)| (k.clone(), v.to_string())).collect(),
            children: node.children().filter_map(convert).collect(),
        },
        scraper::Node::Text(t) => Node::Text(t.text.to_string()),
        scraper::Node::Comment(c) => Node::Comment(c.comment.to_string()),
        scraper::Node::Doctype(d) => Node::Doctype(d.name.to_string()),
        scraper::Node::ProcessingInstruction(p) => Node::Pi { target: p.target.to_string(), data: p.data.to_string() },
        scraper::Node::Document | scraper::Node::Fragment => return None,
    })
}

/// Parses `html` as the content of a `<body>`, as browsers do (entities decoded, misnested tags repaired).
/// A whole document (one that opens with a doctype or `<html>`) is parsed as one, so its head is kept.
fn parse_nodes(html: &str) -> Vec<Node> {
    let start = html.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    let opening = start.get(..9).unwrap_or(start).to_ascii_lowercase();
    if opening.starts_with("<!doctype") || opening.starts_with("<html") {
        return scraper::Html::parse_document(html).tree.root().children().filter_map(convert).collect();
    }
    let parsed = scraper::Html::parse_fragment(html);
    let root = parsed.tree.root();
    // html5ever puts a fragment's nodes under an `<html>` element of its own.
    let top: Vec<_> = root.children().collect();
    match top.as_slice() {
        [only] if matches!(only.value(), scraper::Node::Element(e) if &*e.name.local == "html") => {
            only.children().filter_map(convert).collect()
        }
        _ => top.into_iter().filter_map(convert).collect(),
    }
}

struct Nodes<'a>(&'a [Node]);

impl Serialize for Nodes<'_> {
    fn serialize<S: Serializer>(&self, serializer: &mut S, _: TraversalScope) -> io::Result<()> {
        for node in self.0 {
            match node {
                Node::Element { name, attrs, children } => {
                    serializer.start_elem(name.clone(), attrs.iter().map(|(k, v)| (k, v.as_str())))?;
                    // A parser drops one newline right after <pre>, <textarea> and <listing>: the HTML
                    // serialization algorithm writes one more there, which html5ever's serializer does not.
                    let keeps_newline = matches!(local(name), "pre" | "textarea" | "listing")
                        && matches!(children.first(), Some(Node::Text(t)) if t.starts_with('\n'));
                    if keeps_newline {
                        serializer.write_text("\n")?;
                    }
                    Nodes(children).serialize(serializer, TraversalScope::IncludeNode)?;
                    serializer.end_elem(name.clone())?;
                }
                Node::Text(t) => serializer.write_text(t)?,
                Node::Comment(c) => serializer.write_comment(c)?,
                Node::Doctype(d) => serializer.write_doctype(d)?,
                Node::Pi { target, data } => serializer.write_processing_instruction(target, data)?,
            }
        }
        Ok(())
    }
}

/// html5ever's serialization of `nodes`.
fn to_html(nodes: &[Node]) -> String {
    let mut out = Vec::new();
    let opts = SerializeOpts { traversal_scope: TraversalScope::ChildrenOnly(None), ..Default::default() };
    serialize(&mut out, &Nodes(nodes), opts).expect("writing to a Vec does not fail");
    String::from_utf8(out).expect("html5ever writes UTF-8")
}

/// One inline element of a run, in document order (parents before children).
#[derive(Debug, Clone)]
struct Inline {
    name: QualName,
    attrs: Vec<(QualName, String)>,
    /// The element this one sits in (`None`: the run itself).
    parent: Option<usize>,
    /// Bytes of the run's plain text that its content spans.
    span: (usize, usize),
}

/// A unit kept whole inside a run (see [`Run`]), at a byte offset of the plain text.
#[derive(Debug, Clone)]
struct Point {
    node: Node,
    parent: Option<usize>,
    at: usize,
    /// Whether whitespace came before it, so that the English keeps it apart from the word before.
    space_before: bool,
}

/// Prose between blocks: its plain text, its sentences, and the markup to put back.
#[derive(Debug, Clone)]
struct Run {
    lead: String,
    trail: String,
    plain: String,
    doc: Document,
    elements: Vec<Inline>,
    points: Vec<Point>,
    /// Whether source whitespace came since the last point (a `<br>`'s own space does not count), so that two
    /// points after one space share it rather than each getting one.
    space_since_point: bool,
}

/// A piece of the parsed fragment: nodes kept as they are, a block holding more pieces, or a run of prose.
#[derive(Debug, Clone)]
enum Piece {
    Keep(Node),
    Block { name: QualName, attrs: Vec<(QualName, String)>, children: Vec<Piece> },
    Run(Run),
}

/// Most parse-and-serialize passes [`Html::render`] makes to reach a fragment that comes back from its own
/// serialization (one is enough for every case the fuzzing found).
const MAX_NORMALISE: usize = 3;

/// A parsed HTML fragment, ready to give its sentences and to be rendered with their translations.
#[derive(Debug, Clone)]
pub struct Html {
    pieces: Vec<Piece>,
}

impl Html {
    pub fn parse(html: &str) -> Self {
        Self { pieces: pieces(parse_nodes(html)) }
    }

    /// The sentences to translate, in reading order: those of each run's plain text, as [`Document`] splits them.
    pub fn sentences(&self) -> Vec<String> {
        let mut out = Vec::new();
        visit_runs(&self.pieces, &mut |run| out.extend(run.doc.sentences().map(str::to_string)));
        out
    }

    /// For each sentence of [`Html::sentences`], whether its run has inline markup to put back: only those need a
    /// word alignment (a run without any renders the same whatever the alignment).
    pub fn needs_alignment(&self) -> Vec<bool> {
        let mut out = Vec::new();
        visit_runs(&self.pieces, &mut |run| {
            let marked = !run.elements.is_empty() || !run.points.is_empty();
            out.extend(run.doc.sentences().map(|_| marked));
        });
        out
    }

    /// The number of runs with prose (each is one paragraph).
    pub fn paragraphs(&self) -> usize {
        let mut n = 0;
        visit_runs(&self.pieces, &mut |_| n += 1);
        n
    }

    /// The fragment with each sentence replaced by the next of `translated` and its inline markup placed by the
    /// matching alignment (missing ones are no information), serialized by html5ever.
    ///
    /// Some trees a parser builds from broken markup do not come back from their own serialization (a heading
    /// that the parser nested in another heading through an inline element, once that element is placed
    /// elsewhere, closes the outer heading when parsed again). The result is therefore what a parser makes of it:
    /// parsed and serialized again until it no longer changes (at most [`MAX_NORMALISE`] times), so that what a
    /// browser shows is what was returned, and rendering the result again gives it back.
    pub fn render(&self, translated: &[String], alignments: &[WordAlignment]) -> String {
        let mut next = 0;
        let nodes = render_pieces(&self.pieces, translated, alignments, &mut next);
        let mut html = to_html(&nodes);
        for _ in 0..MAX_NORMALISE {
            let again = to_html(&parse_nodes(&html));
            if again == html {
                break;
            }
            html = again;
        }
        html
    }
}

fn visit_runs<'a>(pieces: &'a [Piece], f: &mut dyn FnMut(&'a Run)) {
    for piece in pieces {
        match piece {
            Piece::Run(run) => f(run),
            Piece::Block { children, .. } => visit_runs(children, f),
            Piece::Keep(_) => {}
        }
    }
}

/// The sentences of `html` that are translated, in order (see [`Html::sentences`]).
pub fn translatable_texts(html: &str) -> Vec<String> {
    Html::parse(html).sentences()
}

/// `html` with its sentences replaced by `translated` (as many as [`translatable_texts`] returns) and inline markup
/// placed by `alignments` (one per sentence; see the module doc).
pub fn render(html: &str, translated: &[String], alignments: &[WordAlignment]) -> String {
    Html::parse(html).render(translated, alignments)
}

fn pieces(nodes: Vec<Node>) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut pending: Vec<Node> = Vec::new();
    for node in nodes {
        if is_inline(&node) {
            pending.push(node);
            continue;
        }
        flush(&mut pending, &mut out);
        match node {
            Node::Element { name, attrs, children } if !is_untranslated_element(&name, &attrs) => {
                out.push(Piece::Block { name, attrs, children: pieces(children) })
            }
            other => out.push(Piece::Keep(other)),
        }
    }
    flush(&mut pending, &mut out);
    out
}

fn is_untranslated_element(name: &QualName, attrs: &[(QualName, String)]) -> bool {
    is_untranslated(&Node::Element { name: name.clone(), attrs: attrs.to_vec(), children: Vec::new() })
}

/// Turns the inline nodes gathered so far into a run, or keeps them as they are when they hold no prose.
fn flush(pending: &mut Vec<Node>, out: &mut Vec<Piece>) {
    if pending.is_empty() {
        return;
    }
    let nodes = std::mem::take(pending);
    let mut run = Run {
        lead: String::new(),
        trail: String::new(),
        plain: String::new(),
        doc: Document { lines: Vec::new() },
        elements: Vec::new(),
        points: Vec::new(),
        space_since_point: false,
    };
    collect(&nodes, None, &mut run);
    run.plain.truncate(run.plain.trim_end_matches(' ').len());
    let end = run.plain.len();
    for e in &mut run.elements {
        e.span = (e.span.0.min(end), e.span.1.min(end));
    }
    for p in &mut run.points {
        p.at = p.at.min(end);
    }
    if run.plain.split_whitespace().next().is_none() {
        out.extend(nodes.into_iter().map(Piece::Keep));
        return;
    }
    if let Some(Node::Text(t)) = nodes.first() {
        run.lead = t[..t.len() - t.trim_start_matches(is_html_space).len()].to_string();
    }
    if let Some(Node::Text(t)) = nodes.last() {
        run.trail = t[t.trim_end_matches(is_html_space).len()..].to_string();
    }
    run.doc = Document::parse(&run.plain);
    out.push(Piece::Run(run));
}

fn is_html_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

/// Byte ranges of the whitespace-separated words of `text`.
fn words(text: &str) -> Vec<(usize, usize)> {
    text.split_whitespace()
        .map(|w| {
            let start = w.as_ptr() as usize - text.as_ptr() as usize;
            (start, start + w.len())
        })
        .collect()
}

/// Appends `nodes` to the run: text to its plain text (whitespace collapsed), elements with prose as [`Inline`]s,
/// everything else as [`Point`]s.
fn collect(nodes: &[Node], parent: Option<usize>, run: &mut Run) {
    for node in nodes {
        match node {
            Node::Text(text) => {
                for c in text.chars() {
                    if is_html_space(c) {
                        run.space_since_point = true;
                        if !run.plain.is_empty() && !run.plain.ends_with(' ') {
                            run.plain.push(' ');
                        }
                    } else {
                        run.plain.push(c);
                    }
                }
            }
            Node::Element { name, attrs, children } if !is_untranslated(node) && has_words(children) => {
                let index = run.elements.len();
                let start = run.plain.len();
                run.elements.push(Inline { name: name.clone(), attrs: attrs.clone(), parent, span: (start, start) });
                collect(children, Some(index), run);
                run.elements[index].span.1 = run.plain.len();
            }
            other => {
                let space_before = run.plain.is_empty() || (run.plain.ends_with(' ') && run.space_since_point);
                run.points.push(Point { node: other.clone(), parent, at: run.plain.len(), space_before });
                run.space_since_point = false;
                // A line break separates words, as in the text a browser shows.
                if matches!(other, Node::Element { name, .. } if local(name) == "br") && !space_before {
                    run.plain.push(' ');
                }
            }
        }
    }
}

fn has_link(node: &Node) -> bool {
    match node {
        Node::Element { name, children, .. } => local(name) == "a" || children.iter().any(has_link),
        _ => false,
    }
}

fn has_words(nodes: &[Node]) -> bool {
    nodes.iter().any(|n| match n {
        Node::Text(t) => t.split_whitespace().next().is_some(),
        Node::Element { children, .. } => !is_untranslated(n) && has_words(children),
        _ => false,
    })
}

fn render_pieces(pieces: &[Piece], translated: &[String], alignments: &[WordAlignment], next: &mut usize) -> Vec<Node> {
    let mut out = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Keep(node) => out.push(node.clone()),
            Piece::Block { name, attrs, children } => out.push(Node::Element {
                name: name.clone(),
                attrs: attrs.clone(),
                children: render_pieces(children, translated, alignments, next),
            }),
            Piece::Run(run) => {
                let n = run.doc.sentences().count();
                let english: Vec<&str> =
                    (*next..*next + n).map(|i| translated.get(i).map_or("", String::as_str)).collect();
                let empty = WordAlignment::default();
                let aligns: Vec<&WordAlignment> =
                    (*next..*next + n).map(|i| alignments.get(i).unwrap_or(&empty)).collect();
                *next += n;
                out.extend(place(run, &english, &aligns));
            }
        }
    }
    out
}

/// The English of a run as words, each with the source word it aligns to, and each sentence's word range.
struct Target {
    words: Vec<String>,
    source: Vec<Option<usize>>,
    /// For each source word, the English range of its sentence.
    sentence_of_source: Vec<(usize, usize)>,
}

fn target(run: &Run, english: &[&str], aligns: &[&WordAlignment]) -> Target {
    let source_words = words(&run.plain).len();
    let mut t = Target { words: Vec::new(), source: Vec::new(), sentence_of_source: Vec::new() };
    let mut next = 0;
    for line in &run.doc.lines {
        let Line::Paragraph { prefix, sentences } = line else { continue };
        // A Markdown-like prefix is not translated: its words are themselves.
        for w in prefix.split_whitespace() {
            t.words.push(w.to_string());
            t.source.push(Some(t.sentence_of_source.len()));
            t.sentence_of_source.push((t.words.len() - 1, t.words.len()));
        }
        for sentence in sentences {
            let offset = t.sentence_of_source.len();
            let count = sentence.split_whitespace().count();
            let eng: Vec<&str> = english.get(next).copied().unwrap_or("").split_whitespace().collect();
            let align = aligns.get(next).map(|a| a.target_to_source.as_slice()).unwrap_or(&[]);
            let informative = align.len() == eng.len();
            let start = t.words.len();
            for (i, w) in eng.iter().enumerate() {
                t.words.push(w.to_string());
                let s = if informative { align[i].filter(|&s| s < count).map(|s| s + offset) } else { None };
                t.source.push(s);
            }
            let range = (start, t.words.len());
            t.sentence_of_source.extend(std::iter::repeat_n(range, count));
            next += 1;
        }
    }
    // Segmentation keeps every word; should it not, the missing ones fall in the last sentence.
    let last = t.sentence_of_source.last().copied().unwrap_or((0, t.words.len()));
    t.sentence_of_source.resize(source_words, last);
    t
}

/// A link may not hold another (a parser would split them): a fallback range that would nest with another link's
/// becomes an empty element just after the links it would nest with. Such a moved link is detached from its
/// source ancestors (`true`), which may themselves sit inside a link.
fn apart_from_links(
    elements: &[Inline],
    placed: &[(usize, usize)],
    e: &Inline,
    range: (usize, usize),
) -> ((usize, usize), bool) {
    if local(&e.name) != "a" {
        return (range, false);
    }
    let links: Vec<(usize, usize)> =
        placed.iter().zip(elements).filter(|(_, o)| local(&o.name) == "a").map(|(r, _)| *r).collect();
    let nests = |q: (usize, usize), r: (usize, usize)| {
        if r.0 == r.1 {
            q.0 < r.0 && r.0 < q.1
        } else if q.0 == q.1 {
            r.0 < q.0 && q.0 < r.1
        } else {
            (q.0 <= r.0 && r.1 <= q.1) || (r.0 <= q.0 && q.1 <= r.1)
        }
    };
    if !links.iter().any(|&q| nests(q, range)) {
        return (range, false);
    }
    let mut at = links.iter().filter(|&&q| nests(q, range)).map(|q| q.1).max().unwrap_or(range.1);
    while let Some(end) = links.iter().filter(|&&q| q.0 < at && at < q.1).map(|q| q.1).max() {
        at = end;
    }
    ((at, at), true)
}

/// Rebuilds a run in English (see the module doc for where the markup goes).
fn place(run: &Run, english: &[&str], aligns: &[&WordAlignment]) -> Vec<Node> {
    let t = target(run, english, aligns);
    let source = words(&run.plain);
    let n = t.words.len();
    let covered = |span: (usize, usize)| -> Vec<usize> {
        source.iter().enumerate().filter(|(_, &(s, e))| s < span.1 && span.0 < e).map(|(i, _)| i).collect()
    };
    // Word ranges of the elements, parents before children.
    let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(run.elements.len());
    let mut detached = vec![false; run.elements.len()];
    for e in &run.elements {
        let parent = e.parent.map_or((0, n), |p| ranges[p]);
        let mine = covered(e.span);
        let aligned: Vec<usize> = (0..n).filter(|&i| t.source[i].is_some_and(|s| mine.contains(&s))).collect();
        let wanted = match (aligned.first(), aligned.last()) {
            (Some(&a), Some(&b)) => (a, b + 1),
            _ => match (mine.first(), mine.last()) {
                (Some(&a), Some(&b)) => (t.sentence_of_source[a].0, t.sentence_of_source[b].1),
                _ => parent,
            },
        };
        let clamped = (wanted.0.max(parent.0), wanted.1.min(parent.1));
        let crosses = |r: (usize, usize)| {
            ranges.iter().any(|&(a, b)| (a < r.0 && r.0 < b && b < r.1) || (r.0 < a && a < r.1 && r.1 < b))
        };
        let range = if clamped.0 >= clamped.1 || crosses(clamped) { parent } else { clamped };
        let (range, moved) = apart_from_links(&run.elements, &ranges, e, range);
        detached[ranges.len()] = moved;
        ranges.push(range);
    }
    // Gaps of the points: after the English words of the source word before them.
    let gaps: Vec<usize> = run
        .points
        .iter()
        .map(|p| {
            let parent = p.parent.map_or((0, n), |e| ranges[e]);
            let gap = match source.iter().rposition(|&(s, _)| s < p.at) {
                None => t.sentence_of_source.first().map_or(0, |r| r.0),
                Some(k) => {
                    (0..n).filter(|&i| t.source[i] == Some(k)).max().map_or(t.sentence_of_source[k].1, |i| i + 1)
                }
            };
            let mut gap = gap.clamp(parent.0, parent.1);
            // A link may not go inside another: after the links around it.
            if has_link(&p.node) {
                while let Some(end) = run
                    .elements
                    .iter()
                    .zip(&ranges)
                    .filter(|(e, r)| local(&e.name) == "a" && r.0 < gap && gap < r.1)
                    .map(|(_, r)| r.1)
                    .max()
                {
                    gap = end;
                }
            }
            gap
        })
        .collect();
    let mut r =
        Renderer { run, t: &t, ranges: &ranges, detached: &detached, gaps: &gaps, after_word: false, any_word: false };
    let mut out = Vec::new();
    if !run.lead.is_empty() {
        out.push(Node::Text(run.lead.clone()));
    }
    r.emit(None, (0, n), &mut out);
    if !run.trail.is_empty() {
        push_text(&mut out, &run.trail);
    }
    out
}

struct Renderer<'a> {
    run: &'a Run,
    t: &'a Target,
    ranges: &'a [(usize, usize)],
    /// Links moved out of their source ancestors by [`apart_from_links`].
    detached: &'a [bool],
    gaps: &'a [usize],
    after_word: bool,
    any_word: bool,
}

fn push_text(out: &mut Vec<Node>, text: &str) {
    if let Some(Node::Text(t)) = out.last_mut() {
        t.push_str(text);
    } else {
        out.push(Node::Text(text.to_string()));
    }
}

impl Renderer<'_> {
    /// Whether output element `e` is inside output element `outer` (ranges nest; equal ones in document order).
    fn inside(&self, e: usize, outer: usize) -> bool {
        let (a, b) = self.ranges[e];
        let (c, d) = self.ranges[outer];
        if a == b {
            // An empty element sits only in elements strictly around it, or in its own ancestors.
            let own = !self.detached[e] && self.is_source_ancestor(outer, self.run.elements[e].parent);
            return e != outer && ((c < a && a < d) || own);
        }
        e != outer && c <= a && b <= d && ((c, d) != (a, b) || outer < e)
    }

    /// The element a child of `parent` in the output: the outermost element inside `parent`.
    fn children(&self, parent: Option<usize>) -> Vec<usize> {
        let within = |e: usize| parent.is_none_or(|p| self.inside(e, p));
        let mut kids: Vec<usize> = (0..self.ranges.len())
            .filter(|&e| within(e) && !(0..self.ranges.len()).any(|o| within(o) && self.inside(e, o)))
            .collect();
        kids.sort_by_key(|&e| (self.ranges[e].0, self.ranges[e].1, e));
        kids
    }

    /// Whether `e` is `of` or one of its source ancestors, up to the first detached link.
    fn is_source_ancestor(&self, e: usize, mut of: Option<usize>) -> bool {
        while let Some(p) = of {
            if p == e {
                return true;
            }
            if self.detached[p] {
                return false;
            }
            of = self.run.elements[p].parent;
        }
        false
    }

    /// The points that go in output element `parent` at gap `g`, in document order.
    fn points_at(&self, parent: Option<usize>, g: usize) -> Vec<usize> {
        (0..self.gaps.len()).filter(|&p| self.gaps[p] == g && self.deepest(p) == parent).collect()
    }

    /// The output element a point goes in: the deepest one around its gap, at an edge only if it is its own.
    fn deepest(&self, p: usize) -> Option<usize> {
        let g = self.gaps[p];
        let mut at = None;
        loop {
            let next = self.children(at).into_iter().find(|&e| {
                let (a, b) = self.ranges[e];
                (a < g && g < b) || ((a == g || b == g) && self.is_source_ancestor(e, self.run.points[p].parent))
            });
            match next {
                Some(e) => at = Some(e),
                None => return at,
            }
        }
    }

    fn emit_points(&mut self, parent: Option<usize>, g: usize, out: &mut Vec<Node>) {
        for p in self.points_at(parent, g) {
            let point = &self.run.points[p];
            if point.space_before && self.after_word {
                push_text(out, " ");
            }
            out.push(point.node.clone());
            self.after_word = self.any_word;
        }
    }

    fn emit(&mut self, parent: Option<usize>, (a, b): (usize, usize), out: &mut Vec<Node>) {
        let kids = self.children(parent);
        let mut k = 0;
        let mut g = a;
        loop {
            self.emit_points(parent, g, out);
            while k < kids.len() && self.ranges[kids[k]].0 == g {
                let e = kids[k];
                let (s, t) = self.ranges[e];
                if s < t && self.after_word {
                    push_text(out, " ");
                    self.after_word = false;
                }
                let mut children = Vec::new();
                self.emit(Some(e), (s, t), &mut children);
                let el = &self.run.elements[e];
                out.push(Node::Element { name: el.name.clone(), attrs: el.attrs.clone(), children });
                k += 1;
                if t > g {
                    g = t;
                    self.emit_points(parent, g, out);
                }
            }
            if g >= b {
                break;
            }
            if self.after_word {
                push_text(out, " ");
            }
            push_text(out, &self.t.words[g]);
            self.after_word = true;
            self.any_word = true;
            g += 1;
        }
    }
}

/// A name in the HTML namespace, for building elements in tests.
#[cfg(test)]
fn html_name(name: &str) -> QualName {
    QualName::new(None, html5ever::ns!(html), html5ever::LocalName::from(name))
}

#[cfg(test)]
mod tests;
