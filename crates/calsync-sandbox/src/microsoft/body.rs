//! Event bodies the way Outlook keeps them: a text body is stored as HTML (escaped, line
//! breaks as `<br>`, inside Outlook's `<html><head>…</head><body>…</body></html>` frame) and
//! returned as HTML unless the request carries `Prefer: outlook.body-content-type="text"`,
//! in which case the stored HTML is converted back to text. `bodyPreview` is always text.

use serde_json::{Value, json};

const HEAD: &str =
    "<html><head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\r\n</head>\r\n<body>\r\n";
const TAIL: &str = "\r\n</body>\r\n</html>\r\n";

/// The stored form of a client-sent `body` (`{contentType, content}`): always HTML.
pub(crate) fn stored(body: &Value) -> Value {
    let content = body.get("content").and_then(Value::as_str).unwrap_or_default();
    let kind = body.get("contentType").and_then(Value::as_str).unwrap_or("text");
    let html = if kind.eq_ignore_ascii_case("html") {
        if content.to_ascii_lowercase().contains("<html") { content.to_owned() } else { frame(content) }
    } else {
        let lines: Vec<String> = content.lines().map(escape).collect();
        frame(&format!("<div class=\"PlainText\">{}</div>", lines.join("<br>\r\n")))
    };
    json!({"contentType": "html", "content": html})
}

fn frame(inner: &str) -> String {
    format!("{HEAD}{inner}{TAIL}")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Plain text of stored HTML: `<head>`, `<style>` and `<script>` dropped, block ends and
/// `<br>` as line breaks, other tags removed, entities decoded.
///
/// Linear in the HTML: it is lowercased once (ASCII only, so byte offsets match), and every
/// search starts where the previous one ended.
pub(crate) fn text(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let mut out = String::new();
    let mut at = 0;
    while let Some(i) = html[at..].find('<').map(|i| at + i) {
        out.push_str(&html[at..i]);
        let Some(j) = html[i..].find('>').map(|j| i + j) else {
            at = html.len();
            break;
        };
        let tag = lower[i + 1..j].trim();
        at = j + 1;
        // Source line breaks after a tag are layout, not text.
        if html[at..].starts_with("\r\n") {
            at += 2;
        } else if html[at..].starts_with('\n') {
            at += 1;
        }
        let closing = tag.starts_with('/');
        let name_end = tag.trim_start_matches('/');
        let name = &name_end[..name_end.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(name_end.len())];
        if !closing && matches!(name, "head" | "style" | "script") {
            // Skip the element's content up to its closing tag.
            at = match lower[at..].find(&format!("</{name}")) {
                Some(k) => lower[at + k..].find('>').map_or(html.len(), |g| at + k + g + 1),
                None => html.len(),
            };
            continue;
        }
        if name == "br" || (closing && matches!(name, "p" | "div" | "li" | "tr" | "h1" | "h2")) {
            out.push('\n');
        }
    }
    out.push_str(&html[at..]);
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let lines: Vec<&str> = decoded.lines().map(|l| l.trim_end_matches('\r')).collect();
    let text = lines.join("\n");
    text.trim_matches(|c: char| c == '\n' || c == '\r' || c == ' ').to_owned()
}

/// `bodyPreview`: the first 255 characters of the text, whitespace runs collapsed.
pub(crate) fn preview(html: &str) -> String {
    text(html).split_whitespace().collect::<Vec<_>>().join(" ").chars().take(255).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_bodies_are_stored_as_html_and_convert_back() {
        let v = stored(&json!({"contentType": "text", "content": "Bring <docs> & ID\nRoom 4"}));
        let html = v["content"].as_str().unwrap();
        assert!(html.starts_with("<html><head>") && html.contains("Bring &lt;docs&gt; &amp; ID<br>"), "{html}");
        assert_eq!(text(html), "Bring <docs> & ID\nRoom 4");
        assert_eq!(preview(html), "Bring <docs> & ID Room 4");
        let v = stored(&json!({"contentType": "HTML", "content": "<p>Hi</p><p>there</p>"}));
        assert_eq!(text(v["content"].as_str().unwrap()), "Hi\nthere");
    }

    #[test]
    fn head_style_and_script_are_skipped_whatever_their_case() {
        let html = "<HTML><Head><Title>t</Title></HEAD><body>A<STYLE type=x>p{}</style >B<script>x<y</ScRiPt>C\
            <br/>D</p>É<style>never closed";
        assert_eq!(text(html), "ABC\nD\nÉ");
        assert_eq!(text("a < b"), "a");
        assert_eq!(text("x<style>y"), "x");
    }

    #[test]
    fn many_style_elements_convert_in_one_pass() {
        // Each `<style>` used to lowercase the whole rest of the body: quadratic. Now the
        // body is lowercased once and every search resumes where the last one ended.
        let n = 50_000;
        let html = format!("<div>{}</div>", "<style>.x{}</style>w ".repeat(n));
        let t = text(&html);
        assert_eq!(t.len(), 2 * n - 1);
        assert!(t.starts_with("w w ") && !t.contains("style") && !t.contains(".x"));
        assert_eq!(preview(&html).chars().count(), 255);
    }
}
