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
pub(crate) fn text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[i + 1..i + j].trim().to_ascii_lowercase();
        rest = &rest[i + j + 1..];
        // Source line breaks after a tag are layout, not text.
        rest = rest.strip_prefix("\r\n").or_else(|| rest.strip_prefix('\n')).unwrap_or(rest);
        let name: String = tag.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        if !tag.starts_with('/') && matches!(name.as_str(), "head" | "style" | "script") {
            // Skip the element's content up to its closing tag.
            let close = format!("</{name}");
            match rest.to_ascii_lowercase().find(&close) {
                Some(k) => rest = rest[k..].split_once('>').map_or("", |(_, r)| r),
                None => rest = "",
            }
            continue;
        }
        if name == "br" || (tag.starts_with('/') && matches!(name.as_str(), "p" | "div" | "li" | "tr" | "h1" | "h2")) {
            out.push('\n');
        }
    }
    out.push_str(rest);
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
}
