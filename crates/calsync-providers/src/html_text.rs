//! Event descriptions between the providers' HTML and the plain text calsync stores.
//!
//! Google Calendar keeps a description as it was written: plain text when it came through the API,
//! a small HTML subset (`<b>`, `<br>`, `<a href>`, lists, entities) once someone edits it in
//! Google's UI. Graph bodies are HTML documents unless text is asked for. calsync stores text, so
//! every description read goes through [`description_text`], and the conversions are built so that
//! a round trip cannot change the text:
//!
//! - text is written as it is unless it would read as HTML, and then as HTML
//!   ([`description_for_html_field`]), so reading it back with [`description_text`] gives the
//!   same text;
//! - [`html_to_text`] of [`text_to_html`] gives back every text [`html_to_text`] produces, so a
//!   provider that is written HTML reads back the same text too.
//!
//! Without both, a difference in formatting alone would look like an edit on one side and bounce
//! between the calendars as updates.
//!
//! The tokenizer is hand-written and small. It follows the HTML parsing rules where they matter
//! for the text (comments, elements whose content is not text such as `<style>`, quoted attribute
//! values containing `>`, character references), and it only takes `<` for markup when a known
//! element name follows, so text such as `a < b` or `Ann <ann@example.org>` stays text. What it
//! looks ahead at it either consumes or bounds, so a hostile description costs linear time.

use std::borrow::Cow;

/// The longest name taken for an element. Known names are shorter; the bound keeps the look at
/// a `<` in text short.
const MAX_NAME: usize = 32;

/// Whether a description is HTML rather than text.
///
/// It is when the tokenizer finds one of the tags Google's editor and Outlook write: `<br>`,
/// `<p>`, `<div>`, `<b>`, `<i>`, `<u>`, `<ul>`, `<ol>`, `<li>`, `<span>`, `<html>`, `<body>`,
/// `<strong>`, `<em>` (start or end tag) or `<a href=…>`. A start tag counts only if every
/// attribute has a value, so `if a<b and c>d` is text; and a `<` without a known element name
/// (`a < b`, `<not a tag>`, `Ann <ann@example.org>`) never counts. Tags inside comments or
/// `<style>` do not count either: the decision is made on exactly the tokens [`html_to_text`]
/// reads, so a tag counted here is one it removes.
pub fn looks_like_html(s: &str) -> bool {
    s.contains('<') && Tokens::new(s).any(|token| matches!(token, Token::Tag(tag) if tag.signals_html()))
}

/// HTML to the plain text calsync stores, close to what a browser shows.
///
/// - Tags are removed; `<script>`, `<style>`, `<head>`, `<title>` (and `<template>`, `<svg>`,
///   `<math>`, `<iframe>`, `<noscript>`, `<noembed>`, `<noframes>`) go with their content, as do
///   comments, `<!DOCTYPE …>` and `<?…?>`. An unterminated comment, tag or `<script>`-like
///   element swallows the rest of the input, as in a browser; a `<head>` that is never closed
///   loses only what a head holds (`<style>`, `<title>`, …).
/// - `<br>` is a newline. Block elements (`p`, `div`, `li`, `tr`, `h1`–`h6`, `table`,
///   `blockquote`, list ends, …) end the current line if it has text, so blocks never pile up
///   blank lines; an empty block holding `<br>` or `&nbsp;` is a blank line, as in Outlook's
///   editor. There is never more than one blank line in a row. `<p>` is a line break like
///   `<div>`, not a paragraph gap: Outlook writes every line as a `<p class=MsoNormal>` with
///   zero margins, and a gap there would invent blank lines no one sees.
/// - `<li>` starts a line with `- `, or with `1. `, `2. `, … in an `<ol>` (honouring `start`),
///   indented by two spaces per level of nesting. Table cells are separated by a space.
/// - `<a href="u">t</a>` is `t (u)` when `u` is `http:`, `https:` or `mailto:` and the text
///   does not already show it (the text contains the address, or the URL without its scheme
///   and trailing `/`, ignoring case), else just `t`; a link without text is `u` (for `mailto:`
///   the address). Other schemes (`javascript:`, `data:`, relative links) keep their text and
///   lose the target. In the URL, whitespace, control characters, `<`, `>` and `"` are
///   percent-encoded, so it stays one word of text.
/// - Character references are decoded: numeric (decimal and hex, with the Windows-1252 meaning
///   of 128–159 that browsers give them) and the named ones `amp lt gt quot apos nbsp` plus a
///   few typographic ones (`ndash mdash hellip lsquo rsquo ldquo rdquo laquo raquo bull middot
///   copy reg trade euro shy times deg`); others stay as written. A named reference needs its
///   `;`.
/// - Runs of spaces, tabs and newlines in the text collapse to one space and vanish at the
///   start and end of a line, as in a browser; a no-break space becomes a plain space that does
///   not collapse (`a&nbsp;&nbsp;b` shows two spaces, so it gives two). Trailing whitespace is
///   trimmed from every line and the result is trimmed.
///
/// `<pre>` is treated as a block; its whitespace is collapsed like any other.
pub fn html_to_text(html: &str) -> String {
    let mut writer = Writer::default();
    for token in Tokens::new(html) {
        match token {
            Token::Text(text) => decode_entities(text).chars().for_each(|c| writer.text_char(c)),
            Token::Tag(tag) => writer.tag(&tag),
        }
    }
    writer.finish()
}

/// Text as a description for a provider that stores HTML: `&`, `<`, `>` and `"` are escaped,
/// each line break (`\n`, `\r\n` or `\r`) becomes `<br>`, and a space at the start of a line or
/// after another space becomes `&nbsp;` so indentation and runs of spaces survive. A result that
/// differs from the text but has no `<br>` (one line with an escape in it) is wrapped in `<span>`,
/// so that a reader who has to guess (Google has no content type; [`looks_like_html`]) still
/// takes it for HTML.
///
/// `html_to_text(&text_to_html(t)) == t` holds exactly when all of these hold:
///
/// 1. `t` contains no tab, carriage return, form feed or no-break space (U+00A0): the first
///    three are whitespace that HTML collapses, and a no-break space reads back as a plain space;
/// 2. no line of `t` ends with whitespace ([`char::is_whitespace`]), and `t` neither starts nor
///    ends with whitespace (which covers leading and trailing newlines);
/// 3. `t` has no more than one blank line in a row (no `"\n\n\n"`).
///
/// Every text [`html_to_text`] returns meets them, so HTML written from stored text reads back as
/// the same text. When `t` also does not itself look like HTML (true of everything
/// [`description_text`] returns), `description_text(&text_to_html(t)) == t` as well. Used only
/// where a caller must write HTML.
pub fn text_to_html(text: &str) -> String {
    let html = whitespace_as_html(text, true);
    if html != text && !html.contains("<br>") { format!("<span>{html}</span>") } else { html }
}

/// [`text_to_html`] without the `<span>` (with `escape` false, only its line breaks and spaces).
fn whitespace_as_html(text: &str, escape: bool) -> String {
    let mut html = String::with_capacity(text.len() + text.len() / 8);
    let mut line_start = true;
    let mut after_space = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '&' if escape => html.push_str("&amp;"),
            '<' if escape => html.push_str("&lt;"),
            '>' if escape => html.push_str("&gt;"),
            '"' if escape => html.push_str("&quot;"),
            '\n' | '\r' => {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                html.push_str("<br>");
            }
            ' ' if line_start || after_space => html.push_str("&nbsp;"),
            _ => html.push(c),
        }
        line_start = matches!(c, '\n' | '\r');
        after_space = c == ' ';
    }
    html
}

/// What calsync stores for a description read from a provider: the text of it when it looks like
/// HTML ([`looks_like_html`], [`html_to_text`]), else the text itself, in both cases with line
/// breaks normalised to `\n` (`\r\n` and a lone `\r` alike) and trimmed. One conversion only:
/// escaped markup (`&lt;b&gt;`) is text that shows `<b>`, and stays `<b>`.
pub fn description_text(raw: &str) -> String {
    let text = raw.replace("\r\n", "\n").replace('\r', "\n");
    let text = if looks_like_html(&text) { html_to_text(&text) } else { text };
    text.trim().to_owned()
}

/// A stored description for a field that may hold HTML (Google's `description`): as it is, unless
/// it would read as HTML, then as HTML showing that text. So
/// `description_text(&description_for_html_field(t)) == t` for every `t` [`description_text`]
/// returns that meets [`text_to_html`]'s conditions, and for every `t` that does not look like
/// HTML.
pub fn description_for_html_field(text: &str) -> String {
    if looks_like_html(text) { text_to_html(text) } else { text.to_owned() }
}

/// A piece of the input: text between markup (character references not yet decoded) or a tag.
/// Comments, declarations and the content of elements that hold no text are skipped.
enum Token<'a> {
    Text(&'a str),
    Tag(Tag<'a>),
}

struct Tag<'a> {
    /// Lowercase.
    name: String,
    closing: bool,
    attrs: Attrs<'a>,
}

/// Names as written and raw values (references not decoded); `None` for an attribute written
/// without `=`.
type Attrs<'a> = Vec<(&'a str, Option<&'a str>)>;

impl Tag<'_> {
    /// The first attribute of that name, as HTML resolves duplicates.
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).and_then(|(_, v)| *v)
    }

    fn signals_html(&self) -> bool {
        let plausible = self.closing || self.attrs.iter().all(|(_, v)| v.is_some());
        match self.name.as_str() {
            "br" | "p" | "div" | "b" | "i" | "u" | "ul" | "ol" | "li" | "span" | "html" | "body" | "strong" | "em" => {
                plausible
            }
            "a" => !self.closing && plausible && self.attr("href").is_some(),
            _ => false,
        }
    }
}

struct Tokens<'a> {
    src: &'a str,
    pos: usize,
    /// Markup found after the text returned last: the tag, if it is one, and where it ends.
    pending: Option<(Option<Tag<'a>>, usize)>,
    /// A search for `</head` from some point failed, so every later one would too.
    head_unclosed: bool,
}

impl<'a> Tokens<'a> {
    fn new(src: &'a str) -> Self {
        Tokens { src, pos: 0, pending: None, head_unclosed: false }
    }

    /// The markup starting at the `<` at `lt`: `None` if that `<` is text, else the tag (`None`
    /// for a comment or declaration) and the end of everything it covers.
    fn markup_at(&mut self, lt: usize) -> Option<(Option<Tag<'a>>, usize)> {
        let src = self.src;
        let b = src.as_bytes();
        let rest = &src[lt..];
        if let Some(body) = rest.strip_prefix("<!--") {
            let end = if body.starts_with('>') {
                lt + 5
            } else if body.starts_with("->") {
                lt + 6
            } else {
                body.find("-->").map_or(src.len(), |i| lt + 4 + i + 3)
            };
            return Some((None, end));
        }
        if rest.starts_with("<!") || rest.starts_with("<?") {
            return Some((None, src[lt + 2..].find('>').map_or(src.len(), |i| lt + 2 + i + 1)));
        }
        let closing = rest.starts_with("</");
        let name_start = lt + 1 + usize::from(closing);
        if !b.get(name_start).is_some_and(u8::is_ascii_alphabetic) {
            return None;
        }
        let mut j = name_start;
        while j < b.len() && j - name_start <= MAX_NAME && !is_space(b[j]) && !matches!(b[j], b'/' | b'>' | b'<') {
            j += 1;
        }
        if j - name_start > MAX_NAME {
            return None;
        }
        let name = src[name_start..j].to_ascii_lowercase();
        if !is_element(&name) {
            return None;
        }
        let Some((attrs, self_closing, tag_end)) = parse_attrs(src, j) else {
            return Some((None, src.len()));
        };
        let mut end = tag_end;
        if !closing && !self_closing {
            if drops_content(&name) {
                end = find_end_tag(src, tag_end, &name).unwrap_or(src.len());
            } else if name == "head" && !self.head_unclosed {
                match find_end_tag(src, tag_end, "head") {
                    Some(e) => end = e,
                    None => self.head_unclosed = true,
                }
            }
        }
        Some((Some(Tag { name, closing, attrs }), end))
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            if let Some((tag, end)) = self.pending.take() {
                self.pos = end;
                if let Some(tag) = tag {
                    return Some(Token::Tag(tag));
                }
                continue;
            }
            if self.pos >= self.src.len() {
                return None;
            }
            let mut search = self.pos;
            loop {
                let Some(offset) = self.src[search..].find('<') else {
                    let text = &self.src[self.pos..];
                    self.pos = self.src.len();
                    return Some(Token::Text(text));
                };
                let lt = search + offset;
                match self.markup_at(lt) {
                    None => search = lt + 1,
                    Some(markup) => {
                        self.pending = Some(markup);
                        if lt > self.pos {
                            let text = &self.src[self.pos..lt];
                            self.pos = lt;
                            return Some(Token::Text(text));
                        }
                        break;
                    }
                }
            }
        }
    }
}

/// HTML's whitespace; other Unicode spaces are text.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c)
}

/// The attributes of a tag whose name ends at `j`: the attributes, whether the tag ends in `/>`,
/// and the position after its `>`; `None` if the input ends first. A quoted value runs to its
/// closing quote (so it may contain `>`); one whose quote never closes runs to the next `>`.
fn parse_attrs(src: &str, mut j: usize) -> Option<(Attrs<'_>, bool, usize)> {
    let b = src.as_bytes();
    let mut attrs = Vec::new();
    loop {
        let mut slash = false;
        while j < b.len() && (is_space(b[j]) || b[j] == b'/') {
            slash = b[j] == b'/';
            j += 1;
        }
        if *b.get(j)? == b'>' {
            return Some((attrs, slash, j + 1));
        }
        let name_start = j;
        j += 1;
        while j < b.len() && !is_space(b[j]) && !matches!(b[j], b'/' | b'>' | b'=') {
            j += 1;
        }
        let name = &src[name_start..j];
        let mut k = j;
        while k < b.len() && is_space(b[k]) {
            k += 1;
        }
        let mut value = None;
        if b.get(k) == Some(&b'=') {
            j = k + 1;
            while j < b.len() && is_space(b[j]) {
                j += 1;
            }
            match b.get(j) {
                Some(&quote @ (b'"' | b'\'')) => {
                    let open = j + 1;
                    if let Some(i) = src[open..].find(char::from(quote)) {
                        value = Some(&src[open..open + i]);
                        j = open + i + 1;
                    } else {
                        let i = src[open..].find('>')?;
                        value = Some(&src[open..open + i]);
                        j = open + i;
                    }
                }
                _ => {
                    let start = j;
                    while j < b.len() && !is_space(b[j]) && b[j] != b'>' {
                        j += 1;
                    }
                    value = Some(&src[start..j]);
                }
            }
        }
        attrs.push((name, value));
    }
}

/// The position after the end tag `</name …>` at or after `from`, matched ignoring case.
fn find_end_tag(src: &str, from: usize, name: &str) -> Option<usize> {
    let b = src.as_bytes();
    let mut k = from;
    while let Some(i) = src[k..].find("</") {
        let p = k + i + 2;
        let after = p + name.len();
        if after <= b.len()
            && b[p..after].eq_ignore_ascii_case(name.as_bytes())
            && b.get(after).is_none_or(|&c| is_space(c) || c == b'/' || c == b'>')
        {
            return Some(src[after..].find('>').map_or(src.len(), |g| after + g + 1));
        }
        k = p;
    }
    None
}

/// HTML elements, and Office's namespaced ones (`o:p`, `v:shape`, `st1:place`) that Outlook and
/// Word put in bodies. Anything else after `<` is text.
fn is_element(name: &str) -> bool {
    let html = matches!(
        name,
        "a" | "abbr"
            | "acronym"
            | "address"
            | "area"
            | "article"
            | "aside"
            | "audio"
            | "b"
            | "base"
            | "basefont"
            | "bdi"
            | "bdo"
            | "big"
            | "blockquote"
            | "body"
            | "br"
            | "button"
            | "canvas"
            | "caption"
            | "center"
            | "cite"
            | "code"
            | "col"
            | "colgroup"
            | "data"
            | "datalist"
            | "dd"
            | "del"
            | "details"
            | "dfn"
            | "dialog"
            | "dir"
            | "div"
            | "dl"
            | "dt"
            | "em"
            | "embed"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "font"
            | "footer"
            | "form"
            | "frame"
            | "frameset"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "head"
            | "header"
            | "hgroup"
            | "hr"
            | "html"
            | "i"
            | "iframe"
            | "img"
            | "input"
            | "ins"
            | "kbd"
            | "label"
            | "legend"
            | "li"
            | "link"
            | "main"
            | "map"
            | "mark"
            | "math"
            | "menu"
            | "meta"
            | "meter"
            | "nav"
            | "nobr"
            | "noembed"
            | "noframes"
            | "noscript"
            | "object"
            | "ol"
            | "optgroup"
            | "option"
            | "output"
            | "p"
            | "param"
            | "picture"
            | "pre"
            | "progress"
            | "q"
            | "rp"
            | "rt"
            | "ruby"
            | "s"
            | "samp"
            | "script"
            | "search"
            | "section"
            | "select"
            | "small"
            | "source"
            | "span"
            | "strike"
            | "strong"
            | "style"
            | "sub"
            | "summary"
            | "sup"
            | "svg"
            | "table"
            | "tbody"
            | "td"
            | "template"
            | "textarea"
            | "tfoot"
            | "th"
            | "thead"
            | "time"
            | "title"
            | "tr"
            | "track"
            | "tt"
            | "u"
            | "ul"
            | "var"
            | "video"
            | "wbr"
    );
    html || is_office_element(name)
}

/// `prefix:local` with both parts alphanumeric (the local part may hold `-` and `_`), so that
/// `<https://…>`, `<tel:+1…>` and `<mailto:ann@…>` in text are not taken for elements.
fn is_office_element(name: &str) -> bool {
    let Some((prefix, local)) = name.split_once(':') else {
        return false;
    };
    !prefix.is_empty()
        && prefix.bytes().all(|c| c.is_ascii_alphanumeric())
        && local.bytes().next().is_some_and(|c| c.is_ascii_alphabetic())
        && local.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// Elements whose content is not text a reader sees.
fn drops_content(name: &str) -> bool {
    matches!(
        name,
        "script" | "style" | "title" | "template" | "svg" | "math" | "iframe" | "noscript" | "noembed" | "noframes"
    )
}

/// Elements that start and end their own lines (`li`, `ul`, `ol` and `br` are handled apart).
fn is_block(name: &str) -> bool {
    matches!(
        name,
        "address"
            | "article"
            | "aside"
            | "blockquote"
            | "body"
            | "caption"
            | "center"
            | "dd"
            | "details"
            | "dialog"
            | "dir"
            | "div"
            | "dl"
            | "dt"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "footer"
            | "form"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "header"
            | "hgroup"
            | "hr"
            | "html"
            | "legend"
            | "main"
            | "menu"
            | "nav"
            | "p"
            | "pre"
            | "search"
            | "section"
            | "summary"
            | "table"
            | "tbody"
            | "tfoot"
            | "thead"
            | "tr"
    )
}

fn decode_entities(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match entity(rest) {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The character reference at the start of `s` (which starts with `&`) and its length.
fn entity(s: &str) -> Option<(char, usize)> {
    let b = s.as_bytes();
    if b.get(1) == Some(&b'#') {
        let (radix, digits) = if matches!(b.get(2), Some(b'x' | b'X')) { (16, 3) } else { (10, 2) };
        let mut j = digits;
        let mut value: u32 = 0;
        while let Some(d) = b.get(j).and_then(|&c| char::from(c).to_digit(radix)) {
            value = value.saturating_mul(radix).saturating_add(d);
            j += 1;
        }
        if j == digits {
            return None;
        }
        if b.get(j) == Some(&b';') {
            j += 1;
        }
        return Some((numeric_char(value), j));
    }
    let semicolon = b.iter().skip(1).take(10).position(|&c| c == b';')? + 1;
    Some((named_entity(&s[1..semicolon])?, semicolon + 1))
}

/// What a numeric reference means to a browser: NUL, surrogates and values past Unicode are
/// U+FFFD, and 128–159 are read as Windows-1252 (old Outlook and Word HTML rely on it).
fn numeric_char(value: u32) -> char {
    let mapped = match value {
        0 => 0xFFFD,
        0x80 => 0x20AC,
        0x82 => 0x201A,
        0x83 => 0x0192,
        0x84 => 0x201E,
        0x85 => 0x2026,
        0x86 => 0x2020,
        0x87 => 0x2021,
        0x88 => 0x02C6,
        0x89 => 0x2030,
        0x8A => 0x0160,
        0x8B => 0x2039,
        0x8C => 0x0152,
        0x8E => 0x017D,
        0x91 => 0x2018,
        0x92 => 0x2019,
        0x93 => 0x201C,
        0x94 => 0x201D,
        0x95 => 0x2022,
        0x96 => 0x2013,
        0x97 => 0x2014,
        0x98 => 0x02DC,
        0x99 => 0x2122,
        0x9A => 0x0161,
        0x9B => 0x203A,
        0x9C => 0x0153,
        0x9E => 0x017E,
        0x9F => 0x0178,
        v => v,
    };
    char::from_u32(mapped).unwrap_or('\u{FFFD}')
}

fn named_entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" | "AMP" => '&',
        "lt" | "LT" => '<',
        "gt" | "GT" => '>',
        "quot" | "QUOT" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "bull" => '•',
        "middot" => '·',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "euro" => '€',
        "shy" => '\u{ad}',
        "times" => '×',
        "deg" => '°',
        _ => return None,
    })
}

/// What the current output line holds, which decides what a block boundary does.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Line {
    #[default]
    Empty,
    /// Only a list marker: a block inside the item continues on this line.
    Marker,
    Text,
}

enum List {
    Bullets,
    Numbers(u64),
}

struct Link {
    /// Where the link's text starts in the output.
    start: usize,
    /// Sanitised, scheme checked.
    href: String,
}

/// Builds the text from tokens, applying the whitespace and line rules of [`html_to_text`].
#[derive(Default)]
struct Writer {
    out: String,
    line: Line,
    /// Collapsible whitespace seen after text on this line, written only if more text follows.
    space: bool,
    lists: Vec<List>,
    link: Option<Link>,
}

impl Writer {
    fn text_char(&mut self, c: char) {
        match c {
            ' ' | '\t' | '\n' | '\r' | '\u{c}' => self.space |= self.line == Line::Text,
            '\u{a0}' => self.literal(' '),
            _ => self.literal(c),
        }
    }

    fn literal(&mut self, c: char) {
        if std::mem::take(&mut self.space) {
            self.out.push(' ');
        }
        self.out.push(c);
        self.line = Line::Text;
    }

    fn tag(&mut self, tag: &Tag<'_>) {
        match (tag.name.as_str(), tag.closing) {
            // `</br>` is a line break to browsers as well.
            ("br", _) => self.line_break(),
            ("a", false) => {
                // Links do not nest: a new one ends the open one.
                self.close_link();
                let start = self.out.len();
                self.link = tag.attr("href").and_then(link_target).map(|href| Link { start, href });
            }
            ("a", true) => self.close_link(),
            ("li", false) => self.list_item(),
            ("li", true) => self.end_item(),
            ("ul" | "ol", false) => {
                self.block_boundary();
                self.lists.push(if tag.name == "ol" {
                    List::Numbers(tag.attr("start").and_then(|s| s.trim().parse().ok()).unwrap_or(1))
                } else {
                    List::Bullets
                });
            }
            ("ul" | "ol", true) => {
                self.end_item();
                self.lists.pop();
            }
            ("td" | "th", false) => self.space |= self.line == Line::Text,
            (name, _) if is_block(name) => self.block_boundary(),
            _ => {}
        }
    }

    /// Ends the line: trailing whitespace goes, and a newline is added unless the output is
    /// empty or already ends in a blank line.
    fn line_break(&mut self) {
        let kept = self.out.trim_end_matches(|c: char| c != '\n' && c.is_whitespace()).len();
        self.out.truncate(kept);
        if let Some(link) = &mut self.link {
            link.start = link.start.min(kept);
        }
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
        self.line = Line::Empty;
        self.space = false;
    }

    fn block_boundary(&mut self) {
        if self.line == Line::Text {
            self.line_break();
        }
    }

    /// The end of a list item: even one with nothing but its marker keeps its own line.
    fn end_item(&mut self) {
        if self.line != Line::Empty {
            self.line_break();
        }
    }

    fn list_item(&mut self) {
        self.end_item();
        for _ in 1..self.lists.len() {
            self.out.push_str("  ");
        }
        match self.lists.last_mut() {
            Some(List::Numbers(n)) => {
                self.out.push_str(&n.to_string());
                self.out.push_str(". ");
                *n = n.saturating_add(1);
            }
            Some(List::Bullets) | None => self.out.push_str("- "),
        }
        self.line = Line::Marker;
    }

    fn close_link(&mut self) {
        let Some(Link { start, href }) = self.link.take() else {
            return;
        };
        let text = self.out[start..].trim();
        if text.is_empty() {
            let shown = strip_prefix_ignore_case(&href, "mailto:").map_or(href.as_str(), mail_address);
            shown.chars().for_each(|c| self.literal(c));
        } else if !shows_link(text, &href) {
            // After the text, before whitespace or line breaks that followed it inside the link.
            let end = start + self.out[start..].trim_end().len();
            let tail = self.out.split_off(end);
            self.out.push_str(" (");
            self.out.push_str(&href);
            self.out.push(')');
            self.out.push_str(&tail);
        }
    }

    fn finish(mut self) -> String {
        self.close_link();
        self.out.trim().to_owned()
    }
}

/// A link target worth showing: `http:`, `https:` or `mailto:` with something after the scheme.
/// Tabs and newlines are removed and the ends trimmed, as browsers do, before the scheme is
/// checked, so `java\nscript:` is not mistaken for anything; the rest of the whitespace, control
/// characters, `<`, `>` and `"` are percent-encoded.
fn link_target(raw: &str) -> Option<String> {
    let decoded = decode_entities(raw);
    let joined: String = decoded.chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect();
    let url = joined.trim_matches(|c: char| c <= ' ');
    let (scheme, rest) = url.split_once(':')?;
    let allowed = ["http", "https", "mailto"].iter().any(|s| scheme.eq_ignore_ascii_case(s));
    if !allowed || rest.trim_start_matches('/').is_empty() {
        return None;
    }
    let mut href = String::with_capacity(url.len());
    for c in url.chars() {
        if c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"') {
            let mut buf = [0; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                href.push_str(&format!("%{byte:02X}"));
            }
        } else {
            href.push(c);
        }
    }
    Some(href)
}

/// Whether a link's text already shows where it goes: it contains the address of a `mailto:`
/// link, or the URL without its scheme and trailing `/`, ignoring case (Google's editor links
/// `www.example.org` to `http://www.example.org`).
fn shows_link(text: &str, href: &str) -> bool {
    let text = text.to_lowercase();
    let href = href.to_lowercase();
    let core = match href.strip_prefix("mailto:") {
        Some(mail) => mail_address(mail),
        None => href.strip_prefix("https://").or_else(|| href.strip_prefix("http://")).unwrap_or(&href),
    }
    .trim_end_matches('/');
    !core.is_empty() && text.contains(core)
}

/// The address of a `mailto:` target, without `?subject=…`.
fn mail_address(target: &str) -> &str {
    target.split('?').next().unwrap_or(target)
}

fn strip_prefix_ignore_case<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_snippet() {
        assert_eq!(
            html_to_text(r#"Call <b>Ann</b><br>Room 4<br><a href="https://meet.example/x">join</a>"#),
            "Call Ann\nRoom 4\njoin (https://meet.example/x)"
        );
    }

    #[test]
    fn google_entities_and_lists() {
        let html = "Bring &amp; share &lt;notes&gt;&nbsp;&#39;now&#39; &#x2013; ok&#8230; &quot;Q&A&quot; \
                    &unknown; &ampx<ul><li>one</li><li><b>two</b></li></ul><ol><li>first</li><li>second</li></ol>\
                    Done &rsquo;&#146;";
        assert_eq!(
            html_to_text(html),
            "Bring & share <notes> 'now' – ok… \"Q&A\" &unknown; &ampx\n- one\n- two\n1. first\n2. second\nDone ’’"
        );
    }

    #[test]
    fn outlook_document() {
        let html = "<html><head>\r\n\
            <meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\r\n\
            <style type=\"text/css\" style=\"display:none\">\r\n<!--\r\np\r\n\t{margin-top:0;\r\n\tmargin-bottom:0}\r\n--></style>\r\n\
            <title>ignored title</title>\r\n\
            </head>\r\n\
            <body dir=\"ltr\">\r\n\
            <div class=\"elementToProof\" style=\"font-family: Aptos, Calibri, sans-serif; font-size: 12pt; color: rgb(0, 0, 0);\">\r\n\
            Quarterly review &amp; planning</div>\r\n\
            <div class=\"elementToProof\" style=\"font-size: 12pt;\"><br>\r\n\
            </div>\r\n\
            <div class=\"elementToProof\">\r\nAgenda:</div>\r\n\
            <ul data-editing-info=\"{&quot;orderedStyleType&quot;:1}\">\r\n\
            <li style=\"list-style-type: disc;\"><div role=\"presentation\" class=\"elementToProof\">Numbers &gt; plan</div></li>\r\n\
            <li><div role=\"presentation\" class=\"elementToProof\">Hiring   and\r\n   onboarding</div></li>\r\n\
            </ul>\r\n\
            <div class=\"elementToProof\">&nbsp;</div>\r\n\
            <div class=\"elementToProof\">Docs: <a href=\"https://contoso.sharepoint.com/x?a=1&amp;b=2\" id=\"LPlnk\">the deck</a>\
            &nbsp;and <a href=\"mailto:ann@contoso.com\">ann@contoso.com</a></div>\r\n\
            </body>\r\n\
            </html>\r\n";
        assert!(looks_like_html(html));
        assert_eq!(
            description_text(html),
            "Quarterly review & planning\n\nAgenda:\n- Numbers > plan\n- Hiring and onboarding\n\n\
             Docs: the deck (https://contoso.sharepoint.com/x?a=1&b=2) and ann@contoso.com"
        );
    }

    #[test]
    fn word_paragraphs_are_lines() {
        let html = "<p class=MsoNormal>Hello<o:p></o:p></p>\n<p class=MsoNormal><o:p>&nbsp;</o:p></p>\n\
                    <p class=MsoNormal><st1:place w:st=\"on\">World</st1:place><o:p></o:p></p>\n\
                    <!--[if gte mso 9]><xml><o:shapedefaults v:ext=\"edit\"/></xml><![endif]-->";
        assert_eq!(html_to_text(html), "Hello\n\nWorld");
    }

    #[test]
    fn nested_tags_and_lists() {
        let html = "<div><b><i>Bold <u>and</u> italic</i></b></div>\
                    <ul><li>a<ul><li>b</li><li></li></ul></li><li>c</ul>\
                    <ol start=\"3\"><li>x<li><p>y</p></ol>\
                    <table><tr><td>Date</td><td>Room</td></tr><tr><th>1 May</th><td>4</td></tr></table>\
                    <h1>Title</h1>after";
        assert_eq!(
            html_to_text(html),
            "Bold and italic\n- a\n  - b\n  -\n- c\n3. x\n4. y\nDate Room\n1 May 4\nTitle\nafter"
        );
    }

    #[test]
    fn line_breaks_and_whitespace() {
        assert_eq!(html_to_text("a<br><br><br><br>b"), "a\n\nb");
        assert_eq!(html_to_text("<br>a<br/><BR >b<br></br>"), "a\n\nb");
        assert_eq!(html_to_text("<div>a<br></div><div>b</div>"), "a\nb");
        assert_eq!(html_to_text("<div>a</div><div><br></div><div><br></div><div>b</div>"), "a\n\nb");
        assert_eq!(html_to_text("<div>a</div><div>&nbsp;</div><div>b</div>"), "a\n\nb");
        assert_eq!(html_to_text("  a \n\t b  <b> c </b> d  "), "a b c d");
        assert_eq!(html_to_text("a&nbsp;&nbsp;b&#160; c \u{a0}<br>"), "a  b  c");
        assert_eq!(html_to_text("<p>x&nbsp;&nbsp;</p>   <p>  y</p>"), "x\ny");
        assert_eq!(html_to_text("a&#10;b&#13;&#x9;c"), "a b c");
    }

    #[test]
    fn dropped_content() {
        let html = "<!DOCTYPE html><?xml version=\"1.0\"?>a<script>if (x < 1) { y('<b>'); }</script>b\
                    <style>p { color: red }</style>c<!-- <b>hidden</b> -->d<!---->e<!-->f\
                    <SCRIPT type=x>no</Script >g<title>t</title>h<svg><text>s</text></svg>i";
        assert_eq!(html_to_text(html), "abcdefghi");
        assert_eq!(html_to_text("<head><meta charset=utf-8><title>x</title></head><body>text</body>"), "text");
        // A head that is never closed holds only what a head can hold.
        assert_eq!(html_to_text("<head><style>s</style><div>text</div>"), "text");
        // Unterminated comments and raw-text elements swallow the rest, as in a browser.
        assert_eq!(html_to_text("a<!-- b <br> c"), "a");
        assert_eq!(html_to_text("a<style>b<br>c"), "a");
    }

    #[test]
    fn links() {
        let t = |html: &str| html_to_text(html);
        assert_eq!(t(r#"<a href="https://x.test/a">https://x.test/a</a>"#), "https://x.test/a");
        assert_eq!(t(r#"<a href="https://x.test/">https://x.test</a>"#), "https://x.test");
        assert_eq!(t(r#"<a href="http://www.x.test">www.x.test</a>"#), "www.x.test");
        assert_eq!(t(r#"see <a href="https://x.test/a">at https://x.test/a now</a>"#), "see at https://x.test/a now");
        assert_eq!(t(r#"<a href="mailto:Ann@X.test">ann@x.test</a>"#), "ann@x.test");
        assert_eq!(t(r#"<a href="mailto:ann@x.test?subject=Hi">Ann</a>"#), "Ann (mailto:ann@x.test?subject=Hi)");
        assert_eq!(t(r#"x <a href="https://x.test/i"><img src="i.png"></a> y"#), "x https://x.test/i y");
        assert_eq!(t(r#"<a href="mailto:ann@x.test"></a>"#), "ann@x.test");
        assert_eq!(t(r#"<a href="https://x.test/?q=1&amp;r=2">q</a>"#), "q (https://x.test/?q=1&r=2)");
        assert_eq!(t(r#"<a href=" https://x.test/a b ">sp</a>"#), "sp (https://x.test/a%20b)");
        assert_eq!(t(r#"<a href="https://x.test/&lt;b&gt;">lt</a>"#), "lt (https://x.test/%3Cb%3E)");
        // Text and whitespace after the link text stay after the URL.
        assert_eq!(t(r#"<a href="https://x.test/">join </a>now"#), "join (https://x.test/) now");
        assert_eq!(t(r#"<a href="https://x.test/"><div>block</div></a>next"#), "block (https://x.test/)\nnext");
        // An unclosed link ends where the next begins, or at the end.
        assert_eq!(
            t(r#"<a href="https://a.test/">a <a href="https://b.test/">b"#),
            "a (https://a.test/) b (https://b.test/)"
        );
        // Anchors without a target are text.
        assert_eq!(t(r#"<a name="top">top</a>"#), "top");
    }

    #[test]
    fn unsafe_links_keep_their_text_only() {
        let t = |html: &str| html_to_text(html);
        assert_eq!(t(r#"<a href="javascript:alert(1)">click</a> me"#), "click me");
        assert_eq!(t(r#"<a href=" JaVa&#x53;cript:alert(1)">c</a>"#), "c");
        assert_eq!(t("<a href=\"java\nscript:alert(1)\">c</a>"), "c");
        assert_eq!(t(r#"<a href="data:text/html,<b>x</b>">d</a>"#), "d");
        assert_eq!(t(r#"<a href="/relative/path">r</a>"#), "r");
        assert_eq!(t(r#"<a href="vbscript:x">v</a><a href="file:///etc/passwd">f</a>"#), "vf");
        assert_eq!(t(r#"<a href="https://">empty</a>"#), "empty");
        assert_eq!(t(r#"<a href="javascript:x"></a>"#), "");
    }

    #[test]
    fn malformed_html() {
        let t = |html: &str| html_to_text(html);
        // Unclosed tags.
        assert_eq!(t("<b>bold <i>both<div>block"), "bold both\nblock");
        assert_eq!(t("<ul><li>a<li>b"), "- a\n- b");
        // Stray '<' and '>' are text.
        assert_eq!(t("1 < 2 and 3 <4 > 2<br>x<y"), "1 < 2 and 3 <4 > 2\nx<y");
        assert_eq!(
            t("Ann <ann@x.test><br><not a tag> <https://x.test/>"),
            "Ann <ann@x.test>\n<not a tag> <https://x.test/>"
        );
        // '>' inside quoted attribute values does not end the tag.
        assert_eq!(t(r#"<a href="https://x.test/?q=a>b" title='>'>t</a>"#), "t (https://x.test/?q=a%3Eb)");
        assert_eq!(t(r#"<span title="a > b">in</span>out"#), "inout");
        // Unquoted values, duplicate attributes, a quote that never closes.
        assert_eq!(t("<a href=https://x.test/y>y</a>"), "y (https://x.test/y)");
        assert_eq!(t(r#"<a href="https://one.test/" href="https://two.test/">d</a>"#), "d (https://one.test/)");
        assert_eq!(t(r#"<span title="open>text"#), "text");
        // Stray end tags and a tag cut off at the end.
        assert_eq!(t("</p></li></ul></ol></a>text</div><b"), "text");
        assert_eq!(t("a <b x=\"y"), "a");
    }

    #[test]
    fn detects_html() {
        for html in [
            "a<br>b",
            "<b>x</b>",
            "x</div>",
            "<P>x",
            r#"<a href="https://x.test/">x</a>"#,
            "<span class=\"c\">x</span>",
            "<html><body>x</body></html>",
            "<ul><li>x",
            "<STRONG>x</STRONG> <em>y</em>",
        ] {
            assert!(looks_like_html(html), "{html:?}");
        }
        for text in [
            "",
            "plain",
            "a < b",
            "a<b",
            "if a<b and c>d then",
            "<not a tag>",
            "Ann <ann@x.org>",
            "<https://x.test/>",
            "I <3 it",
            "x <a name=y>",
            "<!-- <b>x</b> -->",
            "<style><b>x</b></style>",
            "<br",
            "<table><td>x</td></table>",
            "&lt;b&gt;",
        ] {
            assert!(!looks_like_html(text), "{text:?}");
        }
    }

    #[test]
    fn text_descriptions() {
        assert_eq!(description_text("  line 1\r\nline 2\rline 3 < 4 & 5  \r\n"), "line 1\nline 2\nline 3 < 4 & 5");
        assert_eq!(description_text("Ann <ann@x.org> & a  b"), "Ann <ann@x.org> & a  b");
        assert_eq!(description_text("Call <b>Ann</b>"), "Call Ann");
        // Escaped markup is text that shows markup.
        assert_eq!(description_text("Use &lt;b&gt;bold&lt;/b&gt;<br>x"), "Use <b>bold</b>\nx");
        // Written back, it reads back the same.
        let shown = "Use <b>bold</b>\nx";
        assert_eq!(description_text(&description_for_html_field(shown)), shown);
        assert_eq!(description_for_html_field("a < b"), "a < b");
        assert_eq!(
            description_text("&lt;b&gt; as text stays, in text: &lt;b&gt;"),
            "&lt;b&gt; as text stays, in text: &lt;b&gt;"
        );
    }

    #[test]
    fn text_to_html_examples() {
        assert_eq!(
            text_to_html("a & b <c> \"d\"\n\n  e  f"),
            "a &amp; b &lt;c&gt; &quot;d&quot;<br><br>&nbsp;&nbsp;e &nbsp;f"
        );
        assert_eq!(text_to_html("x\r\ny\rz"), "x<br>y<br>z");
        assert_eq!(text_to_html("plain text"), "plain text");
        assert_eq!(text_to_html("a & b"), "<span>a &amp; b</span>");
        assert_eq!(text_to_html("a  b"), "<span>a &nbsp;b</span>");
        for t in ["a & b <c> \"d\"\n\n  e  f", "- a\n  - b\n1. c", "join (https://x.test/?a=1&b=2)"] {
            assert_eq!(html_to_text(&text_to_html(t)), t);
            assert_eq!(description_text(&text_to_html(t)), t, "{t:?}");
        }
    }

    /// A small deterministic generator (xorshift64*), enough to explore short strings.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn string(&mut self, pieces: &[&str], max: usize) -> String {
            (0..self.below(max + 1)).map(|_| pieces[self.below(pieces.len())]).collect()
        }
    }

    /// The condition documented on [`text_to_html`].
    fn round_trips(t: &str) -> bool {
        !t.contains(['\t', '\r', '\u{c}', '\u{a0}'])
            && t.split('\n').all(|line| !line.ends_with(char::is_whitespace))
            && !t.starts_with(char::is_whitespace)
            && !t.ends_with(char::is_whitespace)
            && !t.contains("\n\n\n")
    }

    #[test]
    fn text_to_html_round_trips_exactly_under_the_documented_condition() {
        let pieces = [
            "a", "b", "é", "-", "1", ".", ";", "#", " ", " ", " ", "\n", "\n", "\t", "\r", "\u{c}", "\u{b}", "\u{a0}",
            "\u{2003}", "<", ">", "&", "\"", "'", "&amp;", "<br>", "&nbsp;", "<b>", "&#60;",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut held, mut failed) = (0, 0);
        for _ in 0..50_000 {
            let t = rng.string(&pieces, 10);
            let html = text_to_html(&t);
            let back = html_to_text(&html);
            let expected = round_trips(&t);
            assert_eq!(back == t, expected, "text {t:?} came back as {back:?}");
            if expected && !looks_like_html(&t) {
                assert_eq!(description_text(&html), t, "{html:?}");
            }
            if expected { held += 1 } else { failed += 1 }
        }
        assert!(held > 5_000 && failed > 5_000, "both sides explored: {held} held, {failed} failed");
    }

    #[test]
    fn conversions_are_stable_on_generated_html() {
        let pieces = [
            "<b>",
            "</b>",
            "<i",
            "</i>",
            "<br>",
            "<br/>",
            "<div>",
            "</div>",
            "<p>",
            "</p>",
            "<ul>",
            "</ul>",
            "<ol>",
            "</ol>",
            "<li>",
            "</li>",
            "<td>",
            "<tr>",
            "<a href=\"https://e.test/x\">",
            "<a href='javascript:x'>",
            "<a href=mailto:a@e.test>",
            "</a>",
            "<span class=\"c\">",
            "</span>",
            "<!--",
            "-->",
            "<style>",
            "</style>",
            "<script>",
            "</script>",
            "<head>",
            "</head>",
            "<o:p>",
            "&amp;",
            "&lt;",
            "&gt;",
            "&nbsp;",
            "&#39;",
            "&#x3c;",
            "&amp;lt;",
            "&",
            "<",
            ">",
            "\"",
            "'",
            "=",
            " ",
            "  ",
            "\n",
            "\r\n",
            "\t",
            "x",
            "Ann",
            "é",
            "b>",
            "lt;",
            "a@e.test",
            "https://e.test/x",
        ];
        let mut rng = Rng(0xD1B5_4A32_D192_ED03);
        for _ in 0..30_000 {
            let raw = rng.string(&pieces, 16);
            let stored = description_text(&raw);
            if round_trips(&stored) || !looks_like_html(&stored) {
                let written = description_for_html_field(&stored);
                assert_eq!(description_text(&written), stored, "written back: {raw:?}");
            }
            let text = html_to_text(&raw);
            assert!(round_trips(&text), "{raw:?} gave {text:?}");
            assert_eq!(html_to_text(&text_to_html(&text)), text, "{raw:?}");
        }
    }

    #[test]
    fn corpus_reads_back_as_written() {
        for raw in [
            r#"Call <b>Ann</b><br>Room 4<br><a href="https://meet.example/x">join</a>"#,
            "<div>Use &lt;b&gt; &amp;amp;lt;i&amp;amp;gt; here</div>",
            "<ol><li>a</li></ol>&lt;br&gt;",
            "plain\r\ntext  with   spaces\t",
            "a <<!---->b> c<br>",
            "&lt;<b></b>br&gt;<br>",
        ] {
            let once = description_text(raw);
            assert_eq!(description_text(&description_for_html_field(&once)), once, "{raw:?}");
        }
    }

    #[test]
    fn hostile_input_costs_linear_time() {
        let n = 50_000;
        for raw in [
            "<b x=\">\"".repeat(n),
            "<a".repeat(n),
            "<x".repeat(n),
            "<!".repeat(n),
            "<head>".repeat(n),
            format!("<style>{}", "</".repeat(n)),
            format!("<b title=\"{}", "<i title='".repeat(n)),
            format!("&{}lt;b&gt;<br>", "amp;".repeat(n)),
            "&#99999999999999999999;".repeat(n / 4),
        ] {
            let text = description_text(&raw);
            assert!(text.len() <= raw.len(), "{}", &raw[..20]);
        }
    }
}
