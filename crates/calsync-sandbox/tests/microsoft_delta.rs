//! Graph series and calendarView delta, round 2: windows far from the series start, delta
//! occurrences reduced to identity and times, silent occurrence deletes, and ragged pages.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const G: &str = "/microsoft/graph/v1.0";
const NOV: &str = "startDateTime=2026-11-01T00:00:00Z&endDateTime=2026-12-01T00:00:00Z";

fn daily_from_2020(range: Value) -> Value {
    json!({
        "subject": "Standup",
        "start": {"dateTime": "2020-01-01T09:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2020-01-01T09:15:00", "timeZone": "W. Europe Standard Time"},
        "recurrence": {"pattern": {"type": "daily", "interval": 1}, "range": range},
    })
}

async fn post(h: &Harness, t: &str, body: Value) -> Value {
    json_of(h.send(Method::POST, t, &format!("{G}/me/events"), Some(body)).await, StatusCode::CREATED).await
}

/// Follows nextLinks to the deltaLink: every item in order, each page's length.
async fn round(h: &Harness, t: &str, mut url: String, page: u32) -> (Vec<Value>, Vec<usize>, String) {
    let (mut items, mut lens) = (Vec::new(), Vec::new());
    for _ in 0..500 {
        let resp =
            h.http.get(&url).bearer_auth(t).header("Prefer", format!("odata.maxpagesize={page}")).send().await.unwrap();
        let body = json_of(resp, StatusCode::OK).await;
        let v = body["value"].as_array().unwrap();
        lens.push(v.len());
        items.extend(v.iter().cloned());
        match (body["@odata.nextLink"].as_str(), body["@odata.deltaLink"].as_str()) {
            (Some(next), None) => url = next.to_owned(),
            (None, Some(delta)) => return (items, lens, delta.to_owned()),
            other => panic!("a page ends with exactly one link: {other:?}"),
        }
    }
    panic!("no deltaLink after 500 pages");
}

#[tokio::test]
async fn an_endless_daily_series_from_2020_has_its_november_2026_occurrences_everywhere() {
    let h = start().await;
    let t = h.ms_account("long@example.com").await;
    let m = post(&h, &t, daily_from_2020(json!({"type": "noEnd", "startDate": "2020-01-01"}))).await;
    let mid = m["id"].as_str().unwrap().to_owned();

    let view = json_of(h.get(&t, &format!("{G}/me/calendarView?{NOV}&$top=100")).await, StatusCode::OK).await;
    let view = view["value"].as_array().unwrap();
    assert_eq!(view.len(), 30, "one per day of November 2026");
    assert_eq!(view[0]["start"]["dateTime"], "2026-11-01T08:00:00.0000000");
    let inst = json_of(h.get(&t, &format!("{G}/me/events/{mid}/instances?{NOV}&$top=100")).await, StatusCode::OK).await;
    assert_eq!(inst["value"].as_array().unwrap().len(), 30);

    // Paged: five pages of six, each page only expanding what it returns.
    let (items, lens, delta) = round(&h, &t, h.url(&format!("{G}/me/calendarView/delta?{NOV}")), 6).await;
    assert_eq!(items.len(), 30);
    assert!(lens.iter().all(|&n| n <= 6), "{lens:?}");
    let ids: BTreeSet<&str> = items.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 30);

    // A master edit resends every occurrence in the window, however far from the start.
    json_of(
        h.send(Method::PATCH, &t, &format!("{G}/me/events/{mid}"), Some(json!({"subject": "Daily"}))).await,
        StatusCode::OK,
    )
    .await;
    let (again, _, _) = round(&h, &t, delta, 100).await;
    let again_ids: BTreeSet<&str> = again.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(again_ids, ids);
}

#[tokio::test]
async fn a_numbered_series_beyond_a_thousand_instances_and_a_cut_that_removes_the_window() {
    let h = start().await;
    let t = h.ms_account("numbered@example.com").await;
    let m = post(
        &h,
        &t,
        daily_from_2020(json!({"type": "numbered", "startDate": "2020-01-01", "numberOfOccurrences": 3000})),
    )
    .await;
    let mid = m["id"].as_str().unwrap().to_owned();
    let (items, _, delta) = round(&h, &t, h.url(&format!("{G}/me/calendarView/delta?{NOV}")), 50).await;
    assert_eq!(items.len(), 30);

    // The series now ends in 2025: every November 2026 occurrence the client has is gone.
    let cut = json!({"pattern": {"type": "daily", "interval": 1},
        "range": {"type": "endDate", "startDate": "2020-01-01", "endDate": "2025-12-31"}});
    json_of(
        h.send(Method::PATCH, &t, &format!("{G}/me/events/{mid}"), Some(json!({"recurrence": cut}))).await,
        StatusCode::OK,
    )
    .await;
    let (changes, _, _) = round(&h, &t, delta, 100).await;
    let removed: BTreeSet<&str> =
        changes.iter().filter(|e| e.get("@removed").is_some()).map(|e| e["id"].as_str().unwrap()).collect();
    let had: BTreeSet<&str> = items.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(removed, had);
    assert!(changes.iter().all(|e| e.get("@removed").is_some()), "{changes:?}");
}

#[tokio::test]
async fn delta_occurrences_are_skeletons_and_exceptions_come_whole() {
    let h = start().await;
    let t = h.ms_account("skel@example.com").await;
    let m =
        post(&h, &t, daily_from_2020(json!({"type": "numbered", "startDate": "2020-01-01", "numberOfOccurrences": 5})))
            .await;
    let w = "startDateTime=2020-01-01T00:00:00Z&endDateTime=2020-02-01T00:00:00Z";
    let view = json_of(h.get(&t, &format!("{G}/me/calendarView?{w}")).await, StatusCode::OK).await;
    let view = view["value"].as_array().unwrap().clone();
    // calendarView keeps full occurrences.
    assert!(view.iter().all(|e| e["subject"] == "Standup" && e["body"].is_object()));
    let ex_id = view[1]["id"].as_str().unwrap();
    json_of(
        h.send(Method::PATCH, &t, &format!("{G}/me/events/{ex_id}"), Some(json!({"subject": "Late"}))).await,
        StatusCode::OK,
    )
    .await;
    let (items, _, _) = round(&h, &t, h.url(&format!("{G}/me/calendarView/delta?{w}")), 10).await;
    assert_eq!(items.len(), 5);
    for e in &items {
        if e["type"] == "occurrence" {
            let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
            keys.sort();
            assert_eq!(keys, ["@odata.etag", "@odata.type", "end", "id", "seriesMasterId", "start", "type"]);
            assert_eq!(e["seriesMasterId"], m["id"]);
        } else {
            assert_eq!(e["type"], "exception");
            assert_eq!(e["subject"], "Late");
        }
    }
    // What the skeletons leave out is read from the master.
    let master =
        json_of(h.get(&t, &format!("{G}/me/events/{}", m["id"].as_str().unwrap())).await, StatusCode::OK).await;
    assert_eq!(master["subject"], "Standup");
}

#[tokio::test]
async fn a_deleted_occurrence_is_silent_in_delta_and_leaves_instances() {
    let h = start().await;
    let t = h.ms_account("silent@example.com").await;
    let m =
        post(&h, &t, daily_from_2020(json!({"type": "numbered", "startDate": "2020-01-01", "numberOfOccurrences": 4})))
            .await;
    let mid = m["id"].as_str().unwrap();
    let w = "startDateTime=2020-01-01T00:00:00Z&endDateTime=2020-02-01T00:00:00Z";
    let single = post(
        &h,
        &t,
        json!({"subject": "One", "start": {"dateTime": "2020-01-10T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2020-01-10T11:00:00", "timeZone": "UTC"}}),
    )
    .await;
    let (items, _, delta) = round(&h, &t, h.url(&format!("{G}/me/calendarView/delta?{w}")), 10).await;
    assert_eq!(items.len(), 5);
    let occ = items.iter().find(|e| e["type"] == "occurrence").unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        h.send(Method::DELETE, &t, &format!("{G}/me/events/{occ}"), None).await.status(),
        StatusCode::NO_CONTENT
    );
    let inst = json_of(h.get(&t, &format!("{G}/me/events/{mid}/instances?{w}")).await, StatusCode::OK).await;
    let inst: Vec<&str> = inst["value"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(inst.len(), 3);
    assert!(!inst.contains(&occ.as_str()));

    let (changes, _, delta) = round(&h, &t, delta, 10).await;
    assert!(changes.is_empty(), "no @removed for a deleted occurrence: {changes:?}");

    // Whole events deleted, and events created outside the window, do come as removals.
    let sid = single["id"].as_str().unwrap();
    assert_eq!(
        h.send(Method::DELETE, &t, &format!("{G}/me/events/{sid}"), None).await.status(),
        StatusCode::NO_CONTENT
    );
    let outside = post(
        &h,
        &t,
        json!({"subject": "Later", "start": {"dateTime": "2020-03-10T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2020-03-10T11:00:00", "timeZone": "UTC"}}),
    )
    .await;
    let (changes, _, _) = round(&h, &t, delta, 10).await;
    let removed: BTreeSet<&str> = changes
        .iter()
        .filter(|e| e["@removed"] == json!({"reason": "deleted"}))
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(removed, BTreeSet::from([sid, outside["id"].as_str().unwrap()]));
}

#[tokio::test]
async fn ragged_delta_pages_are_short_or_empty_repeat_ids_and_still_add_up() {
    let h = start().await;
    let t = h.ms_account("ragged@example.com").await;
    for i in 0..24 {
        post(
            &h,
            &t,
            json!({"subject": format!("E{i}"),
                "start": {"dateTime": format!("2020-01-{:02}T10:00:00", i + 1), "timeZone": "UTC"},
                "end": {"dateTime": format!("2020-01-{:02}T11:00:00", i + 1), "timeZone": "UTC"}}),
        )
        .await;
    }
    post(&h, &t, daily_from_2020(json!({"type": "numbered", "startDate": "2020-01-01", "numberOfOccurrences": 6})))
        .await;
    let w = "startDateTime=2020-01-01T00:00:00Z&endDateTime=2020-02-01T00:00:00Z";
    let (expected, _, _) = round(&h, &t, h.url(&format!("{G}/me/calendarView/delta?{w}")), 1000).await;
    assert_eq!(expected.len(), 30);
    let expected: BTreeSet<String> = expected.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();

    h.control("/_sandbox/paging", json!({"provider": "microsoft", "mode": "ragged"})).await;
    let (mut saw_empty, mut saw_repeat, mut saw_short) = (false, false, false);
    for _ in 0..4 {
        let (items, lens, _) = round(&h, &t, h.url(&format!("{G}/me/calendarView/delta?{w}")), 5).await;
        saw_empty |= lens[..lens.len() - 1].contains(&0);
        saw_short |= lens[..lens.len() - 1].iter().any(|&n| n > 0 && n < 5);
        // The later copy wins.
        let mut last: BTreeMap<String, Value> = BTreeMap::new();
        for e in &items {
            saw_repeat |= last.insert(e["id"].as_str().unwrap().to_owned(), e.clone()).is_some();
        }
        let got: BTreeSet<String> =
            last.iter().filter(|(_, e)| e.get("@removed").is_none()).map(|(id, _)| id.clone()).collect();
        assert_eq!(got, expected);
    }
    assert!(saw_empty && saw_repeat && saw_short, "empty {saw_empty}, repeat {saw_repeat}, short {saw_short}");

    // calendarView and /events pages are short too, never longer than asked.
    let resp = h.http.get(h.url(&format!("{G}/me/events?$top=10"))).bearer_auth(&t).send().await.unwrap();
    let body = json_of(resp, StatusCode::OK).await;
    assert!(body["value"].as_array().unwrap().len() <= 10);
    let mut url = h.url(&format!("{G}/me/calendarView?{w}&$top=8"));
    let mut total = BTreeSet::new();
    let mut short = false;
    loop {
        let body = json_of(h.http.get(&url).bearer_auth(&t).send().await.unwrap(), StatusCode::OK).await;
        let v = body["value"].as_array().unwrap();
        assert!(!v.is_empty() && v.len() <= 8);
        total.extend(v.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        match body["@odata.nextLink"].as_str() {
            Some(n) => {
                short |= v.len() < 8;
                url = n.to_owned();
            }
            None => break,
        }
    }
    assert!(short);
    assert_eq!(total, expected);
}
