//! The guides in `docs/`, compiled into the binary and served as pages at `/docs/{name}.md`, so
//! that the pages can link to the passage that helps (`/docs/user-guide.md#conflicts`). They are
//! public: the OAuth setup guide is read before anyone can sign in.

use super::render;
use askama::Template;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;

/// `(file name, title, markdown)`.
const GUIDES: &[(&str, &str, &str)] = &[
    ("user-guide.md", "User guide", include_str!("../../../../docs/user-guide.md")),
    ("admin-guide.md", "Admin guide", include_str!("../../../../docs/admin-guide.md")),
    ("oauth-setup.md", "OAuth app setup", include_str!("../../../../docs/oauth-setup.md")),
    ("troubleshooting.md", "Troubleshooting", include_str!("../../../../docs/troubleshooting.md")),
];

struct Link {
    href: String,
    title: &'static str,
    current: bool,
}

#[derive(Template)]
#[template(path = "docs.html")]
struct DocPage {
    title: &'static str,
    /// HTML rendered from our own markdown (trusted: it is compiled in).
    body: String,
    guides: Vec<Link>,
}

fn to_html(markdown: &str) -> String {
    use pulldown_cmark::{Options, Parser, html};
    let options = Options::ENABLE_TABLES | Options::ENABLE_HEADING_ATTRIBUTES;
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, Parser::new_ext(markdown, options));
    out
}

pub async fn show(Path(name): Path<String>) -> Response {
    let Some((_, title, markdown)) = GUIDES.iter().find(|(n, _, _)| *n == name) else {
        return super::message_page(StatusCode::NOT_FOUND, "Not found", "There is no such guide.");
    };
    let guides =
        GUIDES.iter().map(|(n, t, _)| Link { href: format!("/docs/{n}"), title: t, current: *n == name }).collect();
    render(StatusCode::OK, &DocPage { title, body: to_html(markdown), guides })
}

pub async fn index() -> axum::response::Redirect {
    axum::response::Redirect::to("/docs/user-guide.md")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guides_render_with_anchors_and_tables() {
        let user = to_html(GUIDES[0].2);
        assert!(user.contains("<h2 id=\"conflicts\">Conflicts</h2>"), "anchors the pages link to");
        assert!(user.contains("<h2 id=\"sync-history\">"));
        assert!(user.contains("<table>"));
        for (name, _, md) in GUIDES {
            assert!(md.starts_with("# "), "{name} starts with its title");
        }
    }
}
