//! Fidelity, as a property: any appointment calsync writes to Google or Graph and reads back is
//! the same appointment (title, description, location, times and zone, all-day dates, status,
//! attendees with their answers, privacy, free/busy), and nobody was e-mailed unless the
//! appointment asked for invitations. Random appointments through the sandbox, both providers.

use calsync_domain::appointment::{
    AppointmentData, AppointmentStatus, Attendee, ResponseStatus, ShowAs, Visibility, When,
};
use calsync_domain::merge::differing;
use calsync_providers::calendar::CalendarProvider;
use calsync_providers::google::GoogleApi;
use calsync_providers::google_events::GoogleCalendar;
use calsync_providers::graph_events::GraphCalendar;
use calsync_providers::microsoft::GraphApi;
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

/// DST in both hemispheres, a half-hour offset, and the day's two extremes: all-day events seen
/// from UTC−10 (Honolulu) and UTC+14 (Kiritimati) must stay on their dates.
const ZONES: [&str; 8] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Pacific/Apia",
    "Pacific/Honolulu",
    "Pacific/Kiritimati",
];

/// A rule whose first occurrence is the appointment's start, in the canonical form both Google
/// (verbatim) and Graph (`patternedRecurrence` read back) return: `kind` picks daily, every
/// other day, weekly on the start's weekday, monthly on its day of month or on its nth
/// weekday, or yearly.
fn rule_for(data: &AppointmentData, kind: usize, count: u32, until: bool, exdate: bool) -> Vec<String> {
    use chrono::Datelike;
    let local = match data.when {
        When::Timed { start, .. } => start.with_timezone(&data.time_zone).date_naive(),
        When::AllDay { start, .. } => start,
    };
    let day = local.day().min(28);
    let wd = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"][local.weekday().num_days_from_monday() as usize];
    let nth = (local.day() - 1) / 7 + 1;
    let (freq, by, step) = match kind {
        0 => ("DAILY", String::new(), Duration::days(1)),
        1 => ("DAILY;INTERVAL=2", String::new(), Duration::days(2)),
        2 => ("WEEKLY", format!(";BYDAY={wd}"), Duration::days(7)),
        3 if local.day() <= 28 => ("MONTHLY", format!(";BYMONTHDAY={day}"), Duration::days(31)),
        4 if nth <= 4 => ("MONTHLY", format!(";BYDAY={nth}{wd}"), Duration::days(35)),
        _ if local.day() <= 28 => {
            ("YEARLY", format!(";BYMONTH={};BYMONTHDAY={day}", local.month()), Duration::days(366))
        }
        _ => ("DAILY", String::new(), Duration::days(1)),
    };
    let end = if until {
        // The last local day of the series, as Graph's endDate holds it.
        let last = local + step * (count as i32 - 1);
        match data.when {
            When::AllDay { .. } => format!(";UNTIL={}", last.format("%Y%m%d")),
            When::Timed { start, .. } => {
                let t = start.with_timezone(&data.time_zone).time();
                let at = last.and_time(t).and_local_timezone(data.time_zone).earliest().unwrap().with_timezone(&Utc);
                format!(";UNTIL={}", at.format("%Y%m%dT%H%M%SZ"))
            }
        }
    } else {
        format!(";COUNT={count}")
    };
    let mut lines = vec![format!("RRULE:FREQ={freq}{end}{by}")];
    if exdate {
        lines.push(calsync_domain::recurrence::exdate_line(
            calsync_domain::recurrence::Series::parse(&lines, &data.when, data.time_zone)
                .unwrap()
                .occurrences()
                .nth(1)
                .unwrap(),
            data.time_zone,
        ));
    }
    lines
}

/// `graph`: Graph's one `showAs` says tentative or free, not both: a tentative appointment is
/// busy there; and the people Graph invites have not answered yet.
fn appointment(graph: bool) -> impl Strategy<Value = AppointmentData> {
    let text = "[A-Za-z0-9äöüßé€ ,.:;!?&'\"<>()/-]{0,40}";
    let description = "([A-Za-z0-9äöü€ ,.:&'<>-]{0,30}\n){0,3}[A-Za-z0-9äöü€,.:&'<>-]{0,30}";
    let title = "[A-Za-z0-9äöüé€:&'<>-][A-Za-z0-9äöüé€ :&'<>-]{0,30}[A-Za-z0-9)!]";
    let when = prop_oneof![
        // Timed, on the minute, some across the DST changes of 2027.
        (0..ZONES.len(), 0i64..(24 * 400), 1i64..(12 * 4)).prop_map(|(z, hours, quarter)| {
            let base = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap() + Duration::hours(hours);
            (z, When::Timed { start: base, end: base + Duration::minutes(15 * quarter) })
        }),
        (0..ZONES.len(), 0i64..400, 1i64..6).prop_map(|(z, day, len)| {
            let start = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap() + Duration::days(day);
            (z, When::AllDay { start, end: start + Duration::days(len) })
        }),
    ];
    const ANSWERS: [ResponseStatus; 4] =
        [ResponseStatus::NeedsAction, ResponseStatus::Accepted, ResponseStatus::Declined, ResponseStatus::Tentative];
    let people = proptest::collection::vec(
        (0..4usize, "[A-Z][a-z]{0,8}( [A-Z][a-z]{1,8})?", proptest::sample::select(&ANSWERS[..])),
        0..3,
    );
    (
        title,
        description,
        text,
        when,
        (
            prop_oneof![Just(AppointmentStatus::Confirmed), Just(AppointmentStatus::Tentative)],
            prop_oneof![Just(Visibility::Default), Just(Visibility::Private)],
            prop_oneof![Just(ShowAs::Busy), Just(ShowAs::Free)],
        ),
        (people, any::<bool>(), proptest::option::weighted(0.4, (0..6usize, 2u32..6, any::<bool>(), any::<bool>()))),
    )
        .prop_map(
            move |(title, description, location, (z, when), (status, visibility, show_as), (people, invite, rule))| {
                let mut seen = std::collections::HashSet::new();
                let mut data = AppointmentData {
                    title: title.trim().to_owned(),
                    description: calsync_domain::appointment::normalize_description(&description),
                    location: location.trim().to_owned(),
                    when,
                    time_zone: ZONES[z].parse().unwrap(),
                    attendees: people
                        .into_iter()
                        .filter(|(i, _, _)| seen.insert(*i))
                        .map(|(i, name, response)| Attendee {
                            email: format!("guest{i}@example.com"),
                            name,
                            response: if graph && invite { ResponseStatus::NeedsAction } else { response },
                        })
                        .collect(),
                    status,
                    visibility,
                    show_as: if graph && status == AppointmentStatus::Tentative { ShowAs::Busy } else { show_as },
                    send_invitations: invite,
                    organizer: None,
                    recurrence: Vec::new(),
                    series: None,
                };
                if let Some((kind, count, until, exdate)) = rule {
                    // Graph's rule has no exclusions (its EXDATEs are deleted occurrences).
                    data.recurrence = rule_for(&data, kind, count, until, exdate && !graph);
                }
                data
            },
        )
        .prop_filter("a title", |a| !a.title.is_empty())
}

async fn sandbox() -> (String, reqwest::Client) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = calsync_sandbox::SandboxConfig {
        seed: Some(5),
        google_user_quota_per_minute: 1_000_000,
        google_project_quota_per_minute: 1_000_000,
        ..Default::default()
    };
    tokio::spawn(calsync_sandbox::serve(listener, config));
    (base, calsync_providers::http_client(std::time::Duration::from_secs(10)))
}

async fn token(base: &str, http: &reqwest::Client, provider: &str) -> String {
    let v: Value = http
        .post(format!("{base}/_sandbox/accounts"))
        .json(&json!({"provider": provider, "email": format!("round@{provider}.test")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

fn round_trips(provider: &'static str) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (base, http) = rt.block_on(sandbox());
    let p: Box<dyn CalendarProvider> = if provider == "google" {
        Box::new(GoogleCalendar {
            api: GoogleApi {
                calendar_base: format!("{base}/google/calendar/v3").parse().unwrap(),
                userinfo_url: format!("{base}/google/oauth2/v3/userinfo").parse().unwrap(),
            },
            http: http.clone(),
        })
    } else {
        Box::new(GraphCalendar {
            api: GraphApi { base: format!("{base}/microsoft/graph/v1.0").parse().unwrap() },
            http: http.clone(),
        })
    };
    let token = rt.block_on(token(&base, &http, provider));
    let cal = rt.block_on(p.list_calendars(&token)).unwrap().into_iter().find(|c| c.primary).unwrap().remote_id;
    let cases = std::env::var("CALSYNC_ROUND_TRIP_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48);
    let mut runner = TestRunner::new(Config { cases, max_shrink_iters: 256, ..Config::default() });
    let result = runner.run(&appointment(provider == "microsoft"), |data| {
        rt.block_on(async {
            let key = uuid_like();
            let created =
                p.create(&token, &cal, &key, &key, &data).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let read = p.get(&token, &cal, &created.id).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back = read.and_then(|e| e.data).ok_or_else(|| TestCaseError::fail("not read back"))?;
            let off = differing(&data, &back);
            prop_assert!(off.is_empty(), "{provider}: {off:?} changed\nsent: {data:?}\nread: {back:?}");
            let mail: Value = http
                .get(format!("{base}/_sandbox/mail"))
                .send()
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .json()
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let items = mail["mail"].as_array().cloned().unwrap_or_default();
            let mailed = items.iter().any(|m| m["event_id"] == created.id.as_str());
            let invited = data.send_invitations && !data.attendees.is_empty();
            prop_assert_eq!(mailed, invited, "{}: mail for {:?}: {:?}", provider, data, items);
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn uuid_like() -> String {
    calsync_domain::ids::AppointmentId::new().to_string()
}

#[test]
fn google_round_trips() {
    round_trips("google");
}

#[test]
fn graph_round_trips() {
    round_trips("microsoft");
}
