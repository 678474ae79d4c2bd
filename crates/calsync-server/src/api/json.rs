//! A JSON body extractor whose every failure is a proper API error naming the field: malformed
//! JSON and unknown fields are 400, wrong types 422, oversized bodies 413, other media types 415.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

pub struct ApiJson<T>(pub T);

/// The body limit, mirrored here so the 413 message can state it.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(limit)
            } else {
                ApiError::BadRequest { code: "unreadable_body", field: None, message: rejection.body_text() }
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Parses a request body, which must be one JSON object (serde would also read a struct from an
/// array, positionally, which no client means).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        None => {
            return Err(ApiError::BadRequest {
                code: "malformed_json",
                field: None,
                message: "request body is empty".into(),
            });
        }
        Some(_) => {
            return Err(ApiError::Validation(calsync_domain::ValidationError::new("body", "must be a JSON object")));
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(classify)?;
    de.end().map_err(|e| ApiError::BadRequest {
        code: "malformed_json",
        field: None,
        message: format!("request body is not valid JSON: {e}"),
    })?;
    Ok(value)
}

fn classify(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let message = inner.to_string();
    let at = |name: &str| -> String {
        // For an unknown or missing field the path ends at the object holding it.
        let parent = path.rsplit_once('.').map(|(p, _)| p).unwrap_or("");
        let parent = if path.ends_with(name) { parent } else { path.as_str() };
        match parent {
            "" | "." | "?" => name.to_owned(),
            p => format!("{p}.{name}"),
        }
    };
    let field_named =
        |marker: &str| message.strip_prefix(marker).and_then(|rest| rest.split('`').next()).map(str::to_owned);
    match inner.classify() {
        serde_json::error::Category::Data => {
            if let Some(name) = field_named("unknown field `") {
                let message = message.split(" at line").next().unwrap_or(&message).to_owned();
                return ApiError::bad_request("unknown_field", at(&name), message);
            }
            if let Some(name) = field_named("missing field `") {
                return ApiError::Validation(calsync_domain::ValidationError::new(at(&name), "is required"));
            }
            let field = match path.as_str() {
                "" | "." => "body".to_owned(),
                p => p.to_owned(),
            };
            let message = message.split(" at line").next().unwrap_or(&message).to_owned();
            ApiError::Validation(calsync_domain::ValidationError::new(field, message))
        }
        _ => ApiError::BadRequest {
            code: "malformed_json",
            field: None,
            message: format!("request body is not valid JSON: {message}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[allow(dead_code)]
        title: Option<String>,
        #[allow(dead_code)]
        people: Option<Vec<Inner>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        email: String,
    }

    fn field_of(e: ApiError) -> (String, Option<String>) {
        match e {
            ApiError::BadRequest { code, field, .. } => (code.to_owned(), field),
            ApiError::Validation(v) => ("validation_failed".into(), Some(v.field)),
            other => (format!("{other:?}"), None),
        }
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse::<Outer>(br#"{"title": "x", "colour": 1}"#).unwrap_err();
        assert_eq!(field_of(e), ("unknown_field".into(), Some("colour".into())));
        let e = parse::<Outer>(br#"{"people": [{"email": "a@b.c"}, {"email": "a@b.c", "age": 3}]}"#).unwrap_err();
        assert_eq!(field_of(e), ("unknown_field".into(), Some("people[1].age".into())));
        let e = parse::<Outer>(br#"{"people": [{}]}"#).unwrap_err();
        assert_eq!(field_of(e), ("validation_failed".into(), Some("people[0].email".into())));
        let e = parse::<Outer>(br#"{"title": 5}"#).unwrap_err();
        assert_eq!(field_of(e), ("validation_failed".into(), Some("title".into())));
        let e = parse::<Outer>(br#"{"title": "x""#).unwrap_err();
        assert_eq!(field_of(e).0, "malformed_json");
        let e = parse::<Outer>(br#"{"title": "x"} {}"#).unwrap_err();
        assert_eq!(field_of(e).0, "malformed_json");
        let e = parse::<Outer>(b"[1]").unwrap_err();
        assert_eq!(field_of(e), ("validation_failed".into(), Some("body".into())));
        assert_eq!(field_of(parse::<Outer>(b"  ").unwrap_err()).0, "malformed_json");
        assert!(parse::<Outer>(br#"{"title": "x"}"#).is_ok());
    }
}
