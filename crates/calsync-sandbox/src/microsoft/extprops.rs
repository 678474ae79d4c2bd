//! Single-value extended properties: ids parsed and normalized the way Exchange reads them
//! (property type and GUID case-insensitive, the name as written), upserted one by one on
//! PATCH, returned only through `$expand=singleValueExtendedProperties($filter=id eq '…')`,
//! and matched by `$filter=singleValueExtendedProperties/any(ep: ep/id eq '…' and ep/value
//! eq '…')` on `/events`. Other `$expand` and `$filter` forms are refused with 400.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value, json};

use super::error::{GraphError, GraphResult};

const KEY: &str = "singleValueExtendedProperties";

const TYPES: &[&str] = &[
    "Binary",
    "Boolean",
    "CLSID",
    "Currency",
    "Double",
    "Float",
    "Integer",
    "Long",
    "Object",
    "Short",
    "String",
    "SystemTime",
];

/// The normalized id: `String {guid} Name x`, `String {guid} Id 0x8005` or `String 0x0037`.
pub(crate) fn canonical(id: &str) -> Option<String> {
    let parts: Vec<&str> = id.split_whitespace().collect();
    let ty = TYPES.iter().find(|t| parts.first().is_some_and(|p| p.eq_ignore_ascii_case(t)))?;
    let hex = |s: &str| {
        let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
        (!h.is_empty() && h.len() <= 8 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| format!("0x{}", h.to_ascii_lowercase()))
    };
    match parts.as_slice() {
        [_, tag] => Some(format!("{ty} {}", hex(tag)?)),
        [_, guid, kind, rest @ ..] if !rest.is_empty() => {
            let g = guid.strip_prefix('{')?.strip_suffix('}')?;
            uuid::Uuid::parse_str(g).ok()?;
            let g = g.to_ascii_lowercase();
            if kind.eq_ignore_ascii_case("name") {
                // The name is everything after the keyword, spaces included.
                let name = id.splitn(4, char::is_whitespace).nth(3)?.trim();
                Some(format!("{ty} {{{g}}} Name {name}"))
            } else if kind.eq_ignore_ascii_case("id") && rest.len() == 1 {
                Some(format!("{ty} {{{g}}} Id {}", hex(rest[0])?))
            } else {
                None
            }
        }
        _ => None,
    }
}

fn invalid_id(id: &str) -> GraphError {
    GraphError::new(400, "ErrorInvalidProperty", &format!("The extended property id '{id}' is not valid."))
}

/// Normalizes the ids of a written `singleValueExtendedProperties` array in place; with
/// `prior` (PATCH), properties merge by id into the stored ones instead of replacing them.
pub(crate) fn write(props: &mut Map<String, Value>, prior: Option<&Map<String, Value>>) -> GraphResult<()> {
    let Some(given) = props.get(KEY) else { return Ok(()) };
    let Some(list) = given.as_array() else {
        return Err(GraphError::new(400, "RequestBodyRead", "singleValueExtendedProperties must be an array."));
    };
    let mut merged: Vec<Value> = prior.and_then(|p| p.get(KEY)).and_then(Value::as_array).cloned().unwrap_or_default();
    for p in list {
        let id = p.get("id").and_then(Value::as_str).unwrap_or_default();
        let canon = canonical(id).ok_or_else(|| invalid_id(id))?;
        let Some(value) = p.get("value").and_then(Value::as_str) else {
            return Err(GraphError::new(400, "RequestBodyRead", "An extended property needs a string value."));
        };
        merged.retain(|m| m["id"] != canon.as_str());
        merged.push(json!({"id": canon, "value": value}));
    }
    props.insert(KEY.into(), Value::Array(merged));
    Ok(())
}

/// The stored value of property `canon`, if set.
pub(crate) fn value<'a>(props: &'a Map<String, Value>, canon: &str) -> Option<&'a str> {
    props.get(KEY)?.as_array()?.iter().find(|p| p["id"] == canon)?.get("value")?.as_str()
}

/// What `$expand` adds to a rendered event: the one property asked for, when set.
pub(crate) fn expanded(props: &Map<String, Value>, canon: &str) -> Option<Value> {
    value(props, canon).map(|v| json!([{"id": canon, "value": v}]))
}

/// OData string literal: `''` stands for one quote.
const LIT: &str = r"'((?:[^']|'')*)'";

static EXPAND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)^\s*singleValueExtendedProperties\s*\(\s*\$filter\s*=\s*id\s+eq\s+{LIT}\s*\)\s*$"))
        .expect("valid")
});

static FILTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)^\s*singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*(\w+)/id\s+eq\s+{LIT}\s+and\s+(\w+)/value\s+eq\s+{LIT}\s*\)\s*$"
    ))
    .expect("valid")
});

fn unquote(s: &str) -> String {
    s.replace("''", "'")
}

/// `$expand`: the canonical id of the one property asked for.
pub(crate) fn parse_expand(v: &str) -> GraphResult<String> {
    let c = EXPAND.captures(v).ok_or_else(|| {
        GraphError::bad_request(&format!(
            "The sandbox supports only $expand=singleValueExtendedProperties($filter=id eq '…'), not '{v}'."
        ))
    })?;
    let id = unquote(&c[1]);
    canonical(&id).ok_or_else(|| invalid_id(&id))
}

/// `$filter` on `/events`: `(canonical id, value)` of the `any` lambda.
pub(crate) fn parse_filter(v: &str) -> GraphResult<(String, String)> {
    let refuse = || {
        GraphError::new(
            400,
            "ErrorInvalidUrlQueryFilter",
            "The sandbox evaluates only $filter=singleValueExtendedProperties/any(ep: ep/id eq '…' and ep/value eq '…').",
        )
    };
    let c = FILTER.captures(v).ok_or_else(refuse)?;
    if c[1] != c[2] || c[1] != c[4] {
        return Err(refuse());
    }
    let id = unquote(&c[3]);
    Ok((canonical(&id).ok_or_else(|| invalid_id(&id))?, unquote(&c[5])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_normalize_type_and_guid_but_keep_the_name() {
        let want = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name calsyncId";
        assert_eq!(canonical("string {66F5A359-4659-4830-9070-00047EC6AC6E} name calsyncId").as_deref(), Some(want));
        assert_ne!(canonical("String {66f5a359-4659-4830-9070-00047ec6ac6e} Name CALSYNCID").as_deref(), Some(want));
        assert_eq!(canonical("Integer 0x0E08").as_deref(), Some("Integer 0x0e08"));
        assert!(canonical("String {nope} Name x").is_none());
        assert!(canonical("Text 0x1").is_none());
        let (id, v) =
            parse_filter(&format!("singleValueExtendedProperties/Any(ep: ep/id eq '{want}' and ep/value eq 'it''s')"))
                .unwrap();
        assert_eq!((id.as_str(), v.as_str()), (want, "it's"));
        assert!(parse_filter("subject eq 'x'").is_err());
        assert_eq!(parse_expand(&format!("singleValueExtendedProperties($filter=id eq '{want}')")).unwrap(), want);
    }
}
