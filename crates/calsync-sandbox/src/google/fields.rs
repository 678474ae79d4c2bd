//! Google's `fields` partial-response parameter (`items(id,start/dateTime),nextPageToken`),
//! applied to every JSON response of the Calendar API so it is honoured, not ignored.

use std::collections::BTreeMap;

use axum::body::{Body, to_bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::error::ApiError;

/// Selected names, each with an optional sub-selection (`None` = the whole value).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Selection(BTreeMap<String, Option<Selection>>);

impl Selection {
    fn merge(&mut self, name: String, sub: Option<Selection>) {
        match (self.0.get_mut(&name), sub) {
            // A whole-value selection wins over a partial one.
            (Some(None), _) => {}
            (Some(slot @ Some(_)), None) => *slot = None,
            (Some(Some(existing)), Some(sub)) => {
                for (k, v) in sub.0 {
                    existing.merge(k, v);
                }
            }
            (None, sub) => {
                self.0.insert(name, sub);
            }
        }
    }
}

/// Parses a `fields` expression; errors name the problem for a 400.
pub(crate) fn parse(expr: &str) -> Result<Selection, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut pos = 0;
    let sel = parse_list(&chars, &mut pos)?;
    if pos != chars.len() {
        return Err(format!("unexpected '{}'", chars[pos]));
    }
    Ok(sel)
}

fn parse_list(c: &[char], pos: &mut usize) -> Result<Selection, String> {
    let mut sel = Selection::default();
    loop {
        let (name, sub) = parse_item(c, pos)?;
        sel.merge(name, sub);
        if *pos < c.len() && c[*pos] == ',' {
            *pos += 1;
            continue;
        }
        return Ok(sel);
    }
}

/// `name`, `name/rest`, `name(list)`.
fn parse_item(c: &[char], pos: &mut usize) -> Result<(String, Option<Selection>), String> {
    let start = *pos;
    while *pos < c.len() && (c[*pos].is_ascii_alphanumeric() || matches!(c[*pos], '_' | '*' | '@' | '.' | '-')) {
        *pos += 1;
    }
    if *pos == start {
        return Err("empty field name".into());
    }
    let name: String = c[start..*pos].iter().collect();
    if *pos < c.len() && c[*pos] == '/' {
        *pos += 1;
        let (n, s) = parse_item(c, pos)?;
        let mut sub = Selection::default();
        sub.merge(n, s);
        return Ok((name, Some(sub)));
    }
    if *pos < c.len() && c[*pos] == '(' {
        *pos += 1;
        let sub = parse_list(c, pos)?;
        if *pos >= c.len() || c[*pos] != ')' {
            return Err("unbalanced parentheses".into());
        }
        *pos += 1;
        return Ok((name, Some(sub)));
    }
    Ok((name, None))
}

pub(crate) fn apply(v: &Value, sel: &Selection) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(|i| apply(i, sel)).collect()),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, x) in map {
                let chosen = sel.0.get(k).or_else(|| sel.0.get("*"));
                match chosen {
                    Some(None) => {
                        out.insert(k.clone(), x.clone());
                    }
                    Some(Some(sub)) => {
                        out.insert(k.clone(), apply(x, sub));
                    }
                    None => {}
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// The `fields` value of a query string, if any.
pub(crate) fn requested(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == "fields").map(|(_, v)| v.into_owned())
}

/// Validates the expression before the handler runs (a bad one is a 400 and nothing
/// happens).
pub(crate) fn check(expr: &str) -> Result<Selection, Response> {
    parse(expr).map_err(|e| {
        ApiError::invalid(&format!("Invalid field selection {expr}: {e}")).at("parameter", "fields").into_response()
    })
}

/// Filters a successful JSON response down to the selection.
pub(crate) async fn filter(resp: Response, sel: &Selection) -> Response {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !resp.status().is_success() || !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = to_bytes(body, usize::MAX).await else {
        return crate::faults::reset_response();
    };
    let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let out = serde_json::to_vec(&apply(&v, sel)).expect("serializes");
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selects_nested_paths_and_lists() {
        let sel = parse("items(id,start/dateTime),nextPageToken").unwrap();
        let v = json!({"kind": "k", "nextPageToken": "p", "items": [
            {"id": "a", "summary": "s", "start": {"dateTime": "t", "timeZone": "z"}}]});
        assert_eq!(apply(&v, &sel), json!({"nextPageToken": "p", "items": [{"id": "a", "start": {"dateTime": "t"}}]}));
        assert!(parse("items(id").is_err());
        assert!(parse("a,,b").is_err());
    }
}
