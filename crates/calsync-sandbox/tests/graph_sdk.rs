//! Conformance with Microsoft's own Graph SDK for Python (`msgraph-sdk`, on Kiota): the SDK
//! drives the sandbox's Graph through a custom `AccessTokenProvider` that hands out a
//! sandbox token, with the request adapter's `base_url` at the sandbox Graph root. It
//! creates, reads, updates (also with a stale `If-Match`) and deletes events, lists
//! calendarView, runs a full `calendarView.delta()` round through `odata_next_link` to
//! `odata_delta_link` and a later round from it, lists `instances` of a series, reads an
//! extended property with `$expand`, manages a subscription, and parses errors as
//! `ODataError` with the right status and code.
//!
//! The SDK must be importable by `CALSYNC_PYTHON` (default `python3`); `scripts/test.sh`
//! installs it into its virtualenv. Without it the test fails.

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};

const HINT: &str = "The `msgraph` package (PyPI `msgraph-sdk`) is not importable by CALSYNC_PYTHON \
    (default python3). Run scripts/test.sh, which installs it into its virtualenv.";

fn python() -> String {
    std::env::var("CALSYNC_PYTHON").unwrap_or_else(|_| "python3".into())
}

const SCRIPT: &str = r#"
import asyncio, datetime, json, sys
from kiota_abstractions.authentication import AccessTokenProvider, AllowedHostsValidator, BaseBearerTokenAuthenticationProvider
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.event import Event
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.patterned_recurrence import PatternedRecurrence
from msgraph.generated.models.recurrence_pattern import RecurrencePattern
from msgraph.generated.models.recurrence_pattern_type import RecurrencePatternType
from msgraph.generated.models.recurrence_range import RecurrenceRange
from msgraph.generated.models.recurrence_range_type import RecurrenceRangeType
from msgraph.generated.models.day_of_week import DayOfWeek
from msgraph.generated.models.single_value_legacy_extended_property import SingleValueLegacyExtendedProperty
from msgraph.generated.models.subscription import Subscription
from msgraph.generated.users.item.calendar_view.calendar_view_request_builder import CalendarViewRequestBuilder
from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import DeltaRequestBuilder
from msgraph.generated.users.item.events.item.event_item_request_builder import EventItemRequestBuilder
from msgraph.generated.users.item.events.item.instances.instances_request_builder import InstancesRequestBuilder

base, token, hook = sys.argv[1], sys.argv[2], sys.argv[3]
host = base.split("//", 1)[1].split("/", 1)[0].split(":")[0]
PROP = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name calsyncId"
START, END = "2024-03-01T00:00:00Z", "2024-05-01T00:00:00Z"

class SandboxToken(AccessTokenProvider):
    async def get_authorization_token(self, uri, additional_authentication_context={}):
        return token
    def get_allowed_hosts_validator(self):
        return AllowedHostsValidator([host])

adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(SandboxToken()))
adapter.base_url = base + "/microsoft/graph/v1.0"
client = GraphServiceClient(request_adapter=adapter)

def when(s):
    return DateTimeTimeZone(date_time=s, time_zone="UTC")

async def error_of(coro):
    try:
        await coro
    except ODataError as e:
        return [e.response_status_code, e.error.code if e.error else None]
    return None

async def main():
    out = {}
    created = await client.me.events.post(Event(
        subject="sdk", start=when("2024-03-05T10:00:00"), end=when("2024-03-05T11:00:00"),
        body=ItemBody(content_type=BodyType.Text, content="hello"),
        single_value_extended_properties=[SingleValueLegacyExtendedProperty(id=PROP, value="a1")]))
    out["created_type"] = created.type.value
    got = await client.me.events.by_event_id(created.id).get()
    out["got_subject"] = got.subject
    out["got_body_type"] = got.body.content_type.value
    stale = got.additional_data.get("@odata.etag")
    patched = await client.me.events.by_event_id(created.id).patch(Event(subject="sdk2"))
    out["patched_subject"] = patched.subject
    cfg = RequestConfiguration()
    cfg.headers.add("If-Match", stale)
    out["stale"] = await error_of(client.me.events.by_event_id(created.id).patch(Event(subject="sdk3"), request_configuration=cfg))
    cfg = RequestConfiguration()
    cfg.headers.add("If-Match", patched.additional_data.get("@odata.etag"))
    fresh = await client.me.events.by_event_id(created.id).patch(Event(subject="sdk4"), request_configuration=cfg)
    out["fresh_subject"] = fresh.subject

    q = EventItemRequestBuilder.EventItemRequestBuilderGetQueryParameters(
        expand=["singleValueExtendedProperties($filter=id eq '%s')" % PROP])
    ext = await client.me.events.by_event_id(created.id).get(request_configuration=RequestConfiguration(query_parameters=q))
    out["ext"] = [[p.id, p.value] for p in (ext.single_value_extended_properties or [])]

    master = await client.me.events.post(Event(
        subject="series", start=when("2024-03-18T10:00:00"), end=when("2024-03-18T10:30:00"),
        recurrence=PatternedRecurrence(
            pattern=RecurrencePattern(type=RecurrencePatternType.Weekly, interval=1, days_of_week=[DayOfWeek.Monday]),
            range=RecurrenceRange(type=RecurrenceRangeType.Numbered, start_date=datetime.date(2024, 3, 18), number_of_occurrences=3))))
    q = InstancesRequestBuilder.InstancesRequestBuilderGetQueryParameters(start_date_time=START, end_date_time=END)
    inst = await client.me.events.by_event_id(master.id).instances.get(request_configuration=RequestConfiguration(query_parameters=q))
    out["instances"] = [[i.type.value, i.series_master_id == master.id] for i in inst.value]

    q = CalendarViewRequestBuilder.CalendarViewRequestBuilderGetQueryParameters(start_date_time=START, end_date_time=END, top=50)
    view = await client.me.calendar_view.get(request_configuration=RequestConfiguration(query_parameters=q))
    out["view"] = sorted(e.subject for e in view.value)

    cfg = RequestConfiguration(query_parameters=DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(start_date_time=START, end_date_time=END))
    cfg.headers.add("Prefer", "odata.maxpagesize=2")
    page = await client.me.calendar_view.delta.get(request_configuration=cfg)
    pages, first = 1, list(page.value)
    while page.odata_next_link:
        page = await client.me.calendar_view.delta.with_url(page.odata_next_link).get()
        pages += 1
        first.extend(page.value)
    out["delta_pages"] = pages
    out["delta_first"] = sorted(e.type.value for e in first)
    await client.me.events.by_event_id(created.id).patch(Event(subject="sdk5"))
    later = await client.me.calendar_view.delta.with_url(page.odata_delta_link).get()
    out["delta_later"] = [[e.id == created.id, e.subject] for e in later.value]
    out["delta_link_again"] = bool(later.odata_delta_link)

    expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    sub = await client.subscriptions.post(Subscription(
        change_type="created,updated,deleted", notification_url=hook, resource="me/events",
        expiration_date_time=expiry, client_state="sdk-state"))
    out["subscription"] = [sub.resource, sub.client_state]
    listed = await client.subscriptions.get()
    out["subscriptions_listed"] = len(listed.value)
    await client.subscriptions.by_subscription_id(sub.id).delete()
    out["subscription_gone"] = await error_of(client.subscriptions.by_subscription_id(sub.id).get())

    await client.me.events.by_event_id(created.id).delete()
    out["deleted_get"] = await error_of(client.me.events.by_event_id(created.id).get())
    q = CalendarViewRequestBuilder.CalendarViewRequestBuilderGetQueryParameters(start_date_time="not a date", end_date_time=END)
    out["bad_window"] = await error_of(client.me.calendar_view.get(request_configuration=RequestConfiguration(query_parameters=q)))
    print(json.dumps(out))

asyncio.run(main())
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_graph_sdk_drives_the_sandbox() {
    let importable = Command::new(python()).args(["-c", "import msgraph"]).output();
    assert!(importable.is_ok_and(|o| o.status.success()), "{HINT}");
    let h = start().await;
    let t = h.ms_account("sdk@example.com").await;
    let (hook, _rx) = receiver().await;
    let base = h.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python()).args(["-c", SCRIPT, &base, &t, &format!("{hook}/ok")]).output().expect("python runs")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "the Graph SDK failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("script prints JSON");
    assert_eq!(v["created_type"], "singleInstance");
    assert_eq!(v["got_subject"], "sdk");
    assert_eq!(v["got_body_type"], "html");
    assert_eq!(v["patched_subject"], "sdk2");
    assert_eq!(v["stale"], json!([412, "ErrorIrresolvableConflict"]));
    assert_eq!(v["fresh_subject"], "sdk4");
    assert_eq!(v["ext"], json!([["String {66f5a359-4659-4830-9070-00047ec6ac6e} Name calsyncId", "a1"]]));
    assert_eq!(v["instances"], json!([["occurrence", true], ["occurrence", true], ["occurrence", true]]));
    assert_eq!(v["view"], json!(["sdk4", "series", "series", "series"]));
    assert!(v["delta_pages"].as_u64().unwrap() >= 2);
    assert_eq!(v["delta_first"], json!(["occurrence", "occurrence", "occurrence", "singleInstance"]));
    assert_eq!(v["delta_later"], json!([[true, "sdk5"]]));
    assert_eq!(v["delta_link_again"], true);
    assert_eq!(v["subscription"], json!(["me/events", "sdk-state"]));
    assert_eq!(v["subscriptions_listed"], 1);
    assert_eq!(v["subscription_gone"], json!([404, "ResourceNotFound"]));
    assert_eq!(v["deleted_get"], json!([404, "ErrorItemNotFound"]));
    assert_eq!(v["bad_window"], json!([400, "ErrorInvalidParameter"]));
}
