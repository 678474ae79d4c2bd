//! Wire conformance with Google's own published artifacts:
//!
//! 1. Sandbox responses (event, events list incl. instances and cancelled stubs,
//!    calendarList entry and list, calendar, channel, freeBusy) validated strictly against
//!    the Calendar v3 discovery document shipped in the PyPI package
//!    `google-api-python-client` (`googleapiclient/discovery_cache/documents/calendar.v3.json`):
//!    every property declared, JSON types and formats (`int64` as strings, `date-time`,
//!    `date`) matching, nested `$ref`s followed.
//! 2. The real `googleapiclient` Python client driving the sandbox (list, insert, patch,
//!    delete, batch).
//!
//! The document is found through `CALSYNC_GOOGLE_DISCOVERY` (a path), else through the
//! `googleapiclient` package importable by `CALSYNC_PYTHON` (default `python3`). Without
//! either the tests fail: run `scripts/test.sh`, which provides them.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

const V3: &str = "/google/calendar/v3";
const HINT: &str = "Google's discovery document was not found: set CALSYNC_GOOGLE_DISCOVERY to \
    googleapiclient/discovery_cache/documents/calendar.v3.json, or make `google-api-python-client` \
    importable by CALSYNC_PYTHON (default python3). Run scripts/test.sh, which installs it into a venv.";

fn python() -> String {
    std::env::var("CALSYNC_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn discovery_path() -> PathBuf {
    if let Ok(p) = std::env::var("CALSYNC_GOOGLE_DISCOVERY") {
        return PathBuf::from(p);
    }
    let out = Command::new(python())
        .args(["-c", "import googleapiclient, os; print(os.path.dirname(googleapiclient.__file__))"])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("discovery_cache/documents/calendar.v3.json")
        }
        _ => panic!("{HINT}"),
    }
}

fn discovery() -> Value {
    let path = discovery_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{HINT} ({}: {e})", path.display()));
    serde_json::from_str(&text).expect("discovery document is JSON")
}

/// Strict structural validation of `v` against a discovery schema.
struct Validator<'a> {
    schemas: &'a Map<String, Value>,
    errors: Vec<String>,
}

impl Validator<'_> {
    fn check(&mut self, v: &Value, schema: &Value, path: &str) {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let target = self.schemas.get(r).unwrap_or_else(|| panic!("unknown $ref {r}"));
            return self.check(v, target, path);
        }
        let ty = schema.get("type").and_then(Value::as_str).unwrap_or("any");
        let format = schema.get("format").and_then(Value::as_str);
        match (ty, v) {
            ("any", _) => {}
            ("object", Value::Object(map)) => {
                let props = schema.get("properties").and_then(Value::as_object);
                let additional = schema.get("additionalProperties");
                for (k, x) in map {
                    match (props.and_then(|p| p.get(k)), additional) {
                        (Some(s), _) => self.check(x, s, &format!("{path}.{k}")),
                        (None, Some(s)) => self.check(x, s, &format!("{path}.{k}")),
                        (None, None) => self.errors.push(format!("{path}.{k}: property not declared in the schema")),
                    }
                }
            }
            ("array", Value::Array(items)) => {
                let s = schema.get("items").unwrap_or(&Value::Null);
                for (i, x) in items.iter().enumerate() {
                    self.check(x, s, &format!("{path}[{i}]"));
                }
            }
            ("string", Value::String(s)) => {
                let ok = match format {
                    Some("int64") | Some("uint64") => s.parse::<i128>().is_ok(),
                    Some("date-time") => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
                    Some("date") => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
                    Some("byte") => !s.is_empty(),
                    _ => true,
                };
                if !ok {
                    self.errors.push(format!("{path}: {s:?} is not a valid {}", format.unwrap_or("string")));
                }
            }
            ("integer", Value::Number(n)) if n.is_i64() || n.is_u64() => {}
            ("number", Value::Number(_)) | ("boolean", Value::Bool(_)) => {}
            (t, x) => self.errors.push(format!("{path}: expected {t}, got {x}")),
        }
    }
}

fn validate(doc: &Value, schema: &str, v: &Value) {
    let schemas = doc["schemas"].as_object().unwrap();
    let mut val = Validator { schemas, errors: Vec::new() };
    val.check(v, &schemas[schema], schema);
    assert!(val.errors.is_empty(), "{schema} violations:\n{}\nin {v:#}", val.errors.join("\n"));
}

/// Google error envelope (not part of the discovery document).
fn validate_error(v: &Value) {
    let e = v["error"].as_object().expect("error object");
    let keys: Vec<&str> = e.keys().map(String::as_str).collect();
    assert!(keys.iter().all(|k| ["errors", "code", "message", "status", "details"].contains(k)), "{v}");
    assert!(e["code"].is_u64() && e["message"].is_string());
    for item in e["errors"].as_array().unwrap() {
        let ok = item.as_object().unwrap().iter().all(|(k, x)| {
            ["domain", "reason", "message", "locationType", "location"].contains(&k.as_str()) && x.is_string()
        });
        assert!(ok && item["reason"].is_string() && item["domain"].is_string(), "{item}");
    }
}

#[tokio::test]
async fn responses_conform_to_the_discovery_document() {
    let doc = discovery();
    let h = start().await;
    let t = h.google_account("schema@example.com").await;
    let events = format!("{V3}/calendars/primary/events");
    let full = json!({
        "summary": "Full", "description": "d", "location": "here", "colorId": "3",
        "start": {"dateTime": "2024-03-18T10:00:00+01:00", "timeZone": "Europe/Zurich"},
        "end": {"dateTime": "2024-03-18T11:00:00+01:00", "timeZone": "Europe/Zurich"},
        "attendees": [{"email": "a@example.com", "optional": true, "responseStatus": "accepted"}],
        "reminders": {"useDefault": false, "overrides": [{"method": "popup", "minutes": 5}]},
        "extendedProperties": {"private": {"k": "v"}, "shared": {"s": "t"}},
        "transparency": "opaque", "visibility": "private", "source": {"url": "https://x", "title": "x"},
        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"],
    });
    let ev = json_of(h.send(Method::POST, &t, &events, Some(full)).await, StatusCode::OK).await;
    validate(&doc, "Event", &ev);
    for k in ["kind", "etag", "id", "status", "created", "updated", "start", "end", "iCalUID", "sequence"] {
        assert!(ev.get(k).is_some(), "event lacks {k}");
    }
    let id = ev["id"].as_str().unwrap().to_owned();
    let single = json_of(
        h.send(
            Method::POST,
            &t,
            &events,
            Some(json!({"summary": "all day", "start": {"date": "2024-03-20"}, "end": {"date": "2024-03-21"}})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    validate(&doc, "Event", &single);
    h.send(Method::DELETE, &t, &format!("{events}/{}_20240325T090000Z", id), None).await;
    h.send(Method::DELETE, &t, &format!("{events}/{}", single["id"].as_str().unwrap()), None).await;

    for q in ["", "?showDeleted=true", "?singleEvents=true&showDeleted=true&orderBy=startTime", "?maxResults=1"] {
        let list = json_of(h.get(&t, &format!("{events}{q}")).await, StatusCode::OK).await;
        validate(&doc, "Events", &list);
    }
    let inst = json_of(h.get(&t, &format!("{events}/{id}/instances")).await, StatusCode::OK).await;
    validate(&doc, "Events", &inst);
    assert_eq!(inst["items"].as_array().unwrap().len(), 2);

    let cl = json_of(h.get(&t, &format!("{V3}/users/me/calendarList")).await, StatusCode::OK).await;
    validate(&doc, "CalendarList", &cl);
    let entry = json_of(h.get(&t, &format!("{V3}/users/me/calendarList/primary")).await, StatusCode::OK).await;
    validate(&doc, "CalendarListEntry", &entry);
    let cal = json_of(h.get(&t, &format!("{V3}/calendars/primary")).await, StatusCode::OK).await;
    validate(&doc, "Calendar", &cal);
    let (base, _rx) = receiver().await;
    let ch = json_of(
        h.send(
            Method::POST,
            &t,
            &format!("{events}/watch"),
            Some(json!({"id": "schema-1", "type": "web_hook", "address": format!("{base}/ok"), "token": "x"})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    validate(&doc, "Channel", &ch);
    let fb = json_of(
        h.send(
            Method::POST,
            &t,
            &format!("{V3}/freeBusy"),
            Some(json!({"timeMin": "2024-03-01T00:00:00Z", "timeMax": "2024-04-01T00:00:00Z",
                "items": [{"id": "primary"}, {"id": "x@example.com"}]})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    validate(&doc, "FreeBusyResponse", &fb);

    let err = json_of(h.get(&t, &format!("{events}/nosuchevent")).await, StatusCode::NOT_FOUND).await;
    validate_error(&err);
    let err = json_of(h.get(&t, &format!("{events}?bogus=1")).await, StatusCode::BAD_REQUEST).await;
    validate_error(&err);
}

const CLIENT_SCRIPT: &str = r#"
import json, sys
from googleapiclient.discovery import build
from googleapiclient.http import BatchHttpRequest
from google.oauth2.credentials import Credentials

base, token = sys.argv[1], sys.argv[2]
svc = build("calendar", "v3", credentials=Credentials(token), static_discovery=True,
            client_options={"api_endpoint": base + "/google/calendar/v3/"})
ev = svc.events().insert(calendarId="primary", body={
    "summary": "py", "start": {"dateTime": "2024-01-05T09:00:00Z"},
    "end": {"dateTime": "2024-01-05T10:00:00Z"}}).execute()
patched = svc.events().patch(calendarId="primary", eventId=ev["id"], body={"summary": "py2"}).execute()
listed = svc.events().list(calendarId="primary", maxResults=10).execute()
results = {}
def cb(rid, resp, exc):
    results[rid] = "error %s" % exc.resp.status if exc else resp["summary"]
# new_batch_http_request() takes the batch URL from the document's rootUrl (googleapis.com).
batch = BatchHttpRequest(callback=cb, batch_uri=base + "/google/batch/calendar/v3")
batch.add(svc.events().get(calendarId="primary", eventId=ev["id"]), request_id="get")
batch.add(svc.events().get(calendarId="primary", eventId="missingevent"), request_id="missing")
batch.execute()
svc.events().delete(calendarId="primary", eventId=ev["id"]).execute()
try:
    svc.events().delete(calendarId="primary", eventId=ev["id"]).execute()
    gone = None
except Exception as e:
    gone = e.resp.status
print(json.dumps({"summary": patched["summary"], "listed": [i["id"] for i in listed["items"]],
                  "id": ev["id"], "batch": results, "second_delete": gone}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_drives_the_sandbox() {
    let importable = Command::new(python()).args(["-c", "import googleapiclient"]).output();
    assert!(importable.is_ok_and(|o| o.status.success()), "{HINT}");
    let h = start().await;
    let t = h.google_account("python@example.com").await;
    let base = h.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python()).args(["-c", CLIENT_SCRIPT, &base, &t]).output().expect("python runs")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "python client failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("script prints JSON");
    assert_eq!(v["summary"], "py2");
    assert_eq!(v["listed"], json!([v["id"].clone()]));
    assert_eq!(v["batch"]["get"], "py2");
    assert_eq!(v["batch"]["missing"], "error 404");
    assert_eq!(v["second_delete"], 410);
}
