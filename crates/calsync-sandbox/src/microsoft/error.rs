//! Microsoft error bodies: AADSTS token errors and Graph's `{"error":{"code","message",…}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

/// Identity-platform error with its AADSTS code.
#[derive(Debug, Clone)]
pub(crate) struct AadError {
    pub status: u16,
    pub error: &'static str,
    pub code: u32,
    pub text: String,
}

impl AadError {
    pub(crate) fn new(status: u16, error: &'static str, code: u32, text: &str) -> Self {
        Self { status, error, code, text: text.to_owned() }
    }

    pub(crate) fn for_code(code: u32) -> Self {
        match code {
            54005 => Self::new(
                400,
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
            ),
            501481 => Self::new(
                400,
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            ),
            50011 => Self::new(
                400,
                "invalid_grant",
                50011,
                "The redirect URI specified in the request does not match the redirect URI used in the authorization request.",
            ),
            50173 => Self::new(
                400,
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.",
            ),
            70008 => Self::new(
                400,
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
            ),
            700082 => Self::new(
                400,
                "invalid_grant",
                700082,
                "The refresh token has expired due to inactivity. The token was issued on a date and was inactive for 90.00:00:00.",
            ),
            7000215 => Self::new(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            ),
            7000222 => Self::new(
                401,
                "invalid_client",
                7000222,
                "The provided client secret keys for app are expired. Visit the Azure portal to create new keys for your app.",
            ),
            7000218 => Self::new(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ),
            700016 => Self::new(400, "unauthorized_client", 700016, "Application was not found in the directory."),
            53003 => {
                Self::new(400, "interaction_required", 53003, "Access has been blocked by Conditional Access policies.")
            }
            70011 => Self::new(
                400,
                "invalid_scope",
                70011,
                "The provided value for the input parameter 'scope' is not valid.",
            ),
            9002313 => Self::new(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."),
            900144 => {
                Self::new(400, "invalid_request", 900144, "The request body must contain the following parameter.")
            }
            70000 => Self::new(400, "invalid_grant", 70000, "Provided grant is invalid or malformed."),
            50058 | 50076 | 50079 => Self::new(
                400,
                "interaction_required",
                code,
                "Due to a configuration change made by your administrator, you must use multi-factor authentication.",
            ),
            c => Self::new(400, "invalid_request", c, "The request is invalid."),
        }
    }

    pub(crate) fn missing(param: &str) -> Self {
        let mut e = Self::for_code(900144);
        e.text = format!("The request body must contain the following parameter: '{param}'.");
        e
    }
}

impl IntoResponse for AadError {
    fn into_response(self) -> Response {
        let trace = uuid::Uuid::now_v7();
        let correlation = uuid::Uuid::now_v7();
        let ts = Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
        let body = json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {ts}",
                self.code, self.text
            ),
            "error_codes": [self.code],
            "timestamp": ts,
            "trace_id": trace.to_string(),
            "correlation_id": correlation.to_string(),
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(body)).into_response()
    }
}

/// Graph API error.
#[derive(Debug, Clone)]
pub(crate) struct GraphError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub retry_after: Option<u64>,
    /// `Location` header (410 on a dead delta token points at a fresh initial round).
    pub location: Option<String>,
}

pub(crate) type GraphResult<T> = Result<T, GraphError>;

impl GraphError {
    pub(crate) fn new(status: u16, code: &str, message: &str) -> Self {
        Self { status, code: code.to_owned(), message: message.to_owned(), retry_after: None, location: None }
    }

    pub(crate) fn bad_request(message: &str) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub(crate) fn invalid_param(message: &str) -> Self {
        Self::new(400, "ErrorInvalidParameter", message)
    }

    pub(crate) fn not_found() -> Self {
        Self::new(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    }

    pub(crate) fn unauthorized(message: &str) -> Self {
        Self::new(401, "InvalidAuthenticationToken", message)
    }

    pub(crate) fn access_denied() -> Self {
        Self::new(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
    }

    pub(crate) fn conflict() -> Self {
        Self::new(
            412,
            "ErrorIrresolvableConflict",
            "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
        )
    }

    pub(crate) fn sync_state_not_found() -> Self {
        Self::new(
            410,
            "SyncStateNotFound",
            "The sync state generation is not found; the delta token is no longer valid. Start a new round.",
        )
    }

    pub(crate) fn for_status(status: u16, code: Option<&str>) -> Self {
        let mut e = match status {
            400 => Self::bad_request("Bad request."),
            401 => Self::unauthorized("Lifetime validation failed, the token is expired."),
            403 => Self::access_denied(),
            404 => Self::not_found(),
            410 => Self::sync_state_not_found(),
            412 => Self::conflict(),
            429 => Self::new(429, "TooManyRequests", "Please retry again later."),
            503 => Self::new(503, "ServiceNotAvailable", "Service unavailable. Please retry again later."),
            504 => Self::new(504, "GatewayTimeout", "The gateway did not receive a timely response."),
            s => Self::new(s, "InternalServerError", "An internal server error occurred."),
        };
        if let Some(c) = code {
            e.code = c.to_owned();
            if c == "ApplicationThrottled" {
                e.message = "Application is over its MailboxConcurrency limit.".into();
            }
        }
        e
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let mut error = json!({
            "code": self.code,
            "message": self.message,
            "innerError": {
                "date": Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                "request-id": uuid::Uuid::now_v7().to_string(),
                "client-request-id": uuid::Uuid::now_v7().to_string(),
            },
        });
        if self.status == 429 && self.code == "TooManyRequests" {
            error["innerError"]["code"] = json!("429");
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, Json(json!({ "error": error }))).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if let Some(l) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            resp.headers_mut().insert(header::LOCATION, l);
        }
        resp
    }
}
