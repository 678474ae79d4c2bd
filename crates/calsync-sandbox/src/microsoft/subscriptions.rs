//! Graph change notifications (D.7): subscriptions with the `validationToken` handshake,
//! renewal, deletion, reauthorization, change notifications queued by event writes, and
//! lifecycle notifications triggered from the control API.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{GraphError, GraphResult};
use super::graph::{READ, respond};
use super::identity::GraphAuth;
use crate::ids;
use crate::state::{Shared, World};
use crate::webhook::{self, Coalesce, Delivery, RetryOn};

/// The sandbox's application id (Graph reports the subscribing app's client id GUID).
const APP_ID: &str = "5bd0f1a6-6d3b-4c1f-9a3e-5a2f0c0d7e11";

#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub(crate) struct Subscription {
    id: String,
    resource: String,
    change_types: Vec<String>,
    notification_url: url::Url,
    lifecycle_url: Option<url::Url>,
    expiration_ms: i64,
    client_state: Option<String>,
    email: String,
    creator_id: String,
    tenant: String,
    cal_id: String,
    /// After a `reauthorizationRequired` lifecycle event notifications pause until the
    /// app reauthorizes (or renews).
    paused: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)] // Some fields are accepted because clients send them, not interpreted.
struct SubscriptionReq {
    #[serde(rename = "@odata.type")]
    _odata_type: Option<String>,
    change_type: Option<String>,
    notification_url: Option<String>,
    lifecycle_notification_url: Option<String>,
    resource: Option<String>,
    expiration_date_time: Option<String>,
    client_state: Option<String>,
    latest_supported_tls_version: Option<String>,
    include_resource_data: Option<bool>,
    encryption_certificate: Option<String>,
    encryption_certificate_id: Option<String>,
    notification_query_options: Option<String>,
    notification_url_app_id: Option<String>,
}

fn invalid(msg: &str) -> GraphError {
    GraphError::new(400, "InvalidRequest", msg)
}

fn stamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn to_json(s: &Subscription) -> Value {
    json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
        "id": s.id,
        "resource": s.resource,
        "applicationId": APP_ID,
        "changeType": s.change_types.join(","),
        "clientState": s.client_state,
        "notificationUrl": s.notification_url.as_str(),
        "notificationQueryOptions": null,
        "lifecycleNotificationUrl": s.lifecycle_url.as_ref().map(|u| u.as_str()),
        "expirationDateTime": stamp(s.expiration_ms),
        "creatorId": s.creator_id,
        "includeResourceData": false,
        "latestSupportedTlsVersion": "v1_2",
        "encryptionCertificate": null,
        "encryptionCertificateId": null,
        "notificationUrlAppId": null,
    })
}

fn parse_expiration(shared: &Shared, v: Option<&str>) -> GraphResult<i64> {
    let v = v.ok_or_else(|| invalid("expirationDateTime is required."))?;
    let t = DateTime::parse_from_rfc3339(v).map_err(|_| invalid("expirationDateTime is not a valid date."))?;
    let ms = t.timestamp_millis();
    let now = shared.clock.now_ms();
    let max = shared.config.graph_subscription_max;
    if ms <= now {
        return Err(invalid("Subscription expiration must be in the future."));
    }
    if ms > now + max.as_millis() as i64 {
        return Err(invalid(&format!(
            "Subscription expiration can only be {} minutes in the future.",
            max.as_secs() / 60
        )));
    }
    Ok(ms)
}

/// `me/events`, `me/calendar/events`, `me/calendars/{id}/events`, `users/{id|upn}/events`.
fn resolve_resource(world: &World, email: &str, resource: &str) -> GraphResult<String> {
    let acc = world.microsoft.accounts.get(email).ok_or_else(GraphError::not_found)?;
    let parts: Vec<&str> = resource.trim_start_matches('/').split('/').collect();
    let me = |who: &str| who.eq_ignore_ascii_case(&acc.id) || who.eq_ignore_ascii_case(email);
    match parts.as_slice() {
        ["me", "events"] | ["me", "calendar", "events"] => Ok(acc.calendars[0].clone()),
        ["users", who, "events"] if me(who) => Ok(acc.calendars[0].clone()),
        ["me", "calendars", id, "events"] if acc.calendars.iter().any(|c| c == id) => Ok((*id).to_owned()),
        _ => Err(invalid(&format!("Resource '{resource}' is not supported for this subscription."))),
    }
}

/// The handshake: POST `<url>?validationToken=…`; a 200 `text/plain` echo within the
/// timeout, else the subscription is refused.
async fn validate(shared: &Shared, url: &url::Url, token: &str) -> GraphResult<()> {
    let mut target = url.clone();
    target.query_pairs_mut().append_pair("validationToken", token);
    let headers = vec![("Content-Type".to_owned(), "text/plain; charset=utf-8".to_owned())];
    let fail = || {
        invalid(
            "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
        )
    };
    let (status, body) =
        webhook::post(&target, &headers, &[], shared.config.graph_validation_timeout).await.map_err(|_| fail())?;
    let (content_type, body) = webhook::split_body(&body);
    if status != 200 || !content_type.starts_with("text/plain") || body != token {
        return Err(fail());
    }
    Ok(())
}

pub(super) async fn create(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    body: Bytes,
) -> Response {
    respond(create_inner(&shared, auth, &body).await)
}

async fn create_inner(shared: &Shared, auth: GraphResult<GraphAuth>, body: &[u8]) -> GraphResult<Response> {
    let auth = auth?;
    auth.require(READ)?;
    let req: SubscriptionReq = serde_json::from_slice(body)
        .map_err(|e| GraphError::new(400, "BadRequest", &format!("Invalid request body: {e}")))?;
    let change_types: Vec<String> = req
        .change_type
        .as_deref()
        .ok_or_else(|| invalid("changeType is required."))?
        .split(',')
        .map(|c| c.trim().to_owned())
        .collect();
    if change_types.is_empty() || change_types.iter().any(|c| !matches!(c.as_str(), "created" | "updated" | "deleted"))
    {
        return Err(invalid("changeType must be a combination of created, updated and deleted."));
    }
    let resource = req.resource.ok_or_else(|| invalid("resource is required."))?;
    let url = req.notification_url.ok_or_else(|| invalid("notificationUrl is required."))?;
    let url = webhook::check_address(&url).map_err(|m| invalid(&m))?;
    let lifecycle =
        req.lifecycle_notification_url.map(|u| webhook::check_address(&u).map_err(|m| invalid(&m))).transpose()?;
    if req.client_state.as_ref().is_some_and(|c| c.chars().count() > 128) {
        return Err(invalid("clientState must be at most 128 characters."));
    }
    if req.include_resource_data == Some(true) {
        return Err(invalid("The sandbox does not support rich notifications (includeResourceData)."));
    }
    let expiration = parse_expiration(shared, req.expiration_date_time.as_deref())?;
    let (cal_id, creator_id, tenant, token) = {
        let mut world = shared.world();
        let cal = resolve_resource(&world, &auth.email, &resource)?;
        let acc = &world.microsoft.accounts[&auth.email];
        let (creator, tenant) = (acc.id.clone(), acc.tenant.clone());
        let token = ids::token(&mut world.rng, "", 24);
        (cal, creator, tenant, token)
    };
    // The world lock is not held while the receiver answers.
    validate(shared, &url, &token).await?;
    if let Some(l) = &lifecycle {
        validate(shared, l, &token).await?;
    }
    let mut world = shared.world();
    let id = ids::uuid(&mut world.rng).to_string();
    let sub = Subscription {
        id: id.clone(),
        resource,
        change_types,
        notification_url: url,
        lifecycle_url: lifecycle,
        expiration_ms: expiration,
        client_state: req.client_state,
        email: auth.email.clone(),
        creator_id,
        tenant,
        cal_id,
        paused: false,
    };
    let out = to_json(&sub);
    world.microsoft.subscriptions.insert(id, sub);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// The caller's live (unexpired) subscription.
fn own<'a>(world: &'a mut World, auth: &GraphAuth, id: &str, now: i64) -> GraphResult<&'a mut Subscription> {
    world
        .microsoft
        .subscriptions
        .get_mut(id)
        .filter(|s| s.email == auth.email && s.expiration_ms > now)
        .ok_or_else(|| GraphError::new(404, "ResourceNotFound", "The object was not found."))
}

pub(super) async fn list(State(shared): State<Arc<Shared>>, auth: Result<GraphAuth, GraphError>) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(READ)?;
        let now = shared.clock.now_ms();
        let world = shared.world();
        let mut subs: Vec<&Subscription> =
            world.microsoft.subscriptions.values().filter(|s| s.email == auth.email && s.expiration_ms > now).collect();
        subs.sort_by(|a, b| a.id.cmp(&b.id));
        let value: Vec<Value> = subs
            .into_iter()
            .map(|s| {
                let mut v = to_json(s);
                v.as_object_mut().map(|m| m.remove("@odata.context"));
                v
            })
            .collect();
        Ok(Json(json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions", "value": value}))
            .into_response())
    })())
}

pub(super) async fn get_one(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    Path(id): Path<String>,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(READ)?;
        let now = shared.clock.now_ms();
        let mut world = shared.world();
        Ok(Json(to_json(own(&mut world, &auth, &id, now)?)).into_response())
    })())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PatchReq {
    expiration_date_time: Option<String>,
    notification_url: Option<String>,
}

pub(super) async fn patch(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(READ)?;
        // Only the expiry (and notification URL) can change; the lifecycle URL only at creation.
        let req: PatchReq = serde_json::from_slice(&body)
            .map_err(|e| GraphError::new(400, "BadRequest", &format!("Invalid request body: {e}")))?;
        let expiration = parse_expiration(&shared, req.expiration_date_time.as_deref())?;
        let url = req.notification_url.map(|u| webhook::check_address(&u).map_err(|m| invalid(&m))).transpose()?;
        let now = shared.clock.now_ms();
        let mut world = shared.world();
        let sub = own(&mut world, &auth, &id, now)?;
        sub.expiration_ms = expiration;
        sub.paused = false;
        if let Some(u) = url {
            sub.notification_url = u;
        }
        Ok(Json(to_json(sub)).into_response())
    })())
}

pub(super) async fn delete(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    Path(id): Path<String>,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(READ)?;
        let now = shared.clock.now_ms();
        let mut world = shared.world();
        own(&mut world, &auth, &id, now)?;
        world.microsoft.subscriptions.remove(&id);
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

pub(super) async fn reauthorize(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    Path(id): Path<String>,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(READ)?;
        let now = shared.clock.now_ms();
        let mut world = shared.world();
        own(&mut world, &auth, &id, now)?.paused = false;
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

fn post_json(url: &url::Url, body: Value, shared_timeout: std::time::Duration) -> Delivery {
    Delivery {
        coalesce: None,
        url: url.clone(),
        headers: vec![("Content-Type".to_owned(), "application/json; charset=utf-8".to_owned())],
        body: body.to_string().into_bytes(),
        timeout: shared_timeout,
        // Graph retries failed or slow deliveries (for up to 4 h); the sandbox a few times.
        retries: 3,
        retry_on: RetryOn::AnyFailure,
    }
}

/// Queues a change notification for every live subscription on `cal_id` that asked for
/// `change` (`created` / `updated` / `deleted`).
pub(crate) fn notify(world: &mut World, cal_id: &str, event_id: &str, etag: &str, change: &str, now: i64) {
    let mut out = Vec::new();
    for s in world.microsoft.subscriptions.values() {
        if s.cal_id != cal_id || s.expiration_ms <= now || s.paused || !s.change_types.iter().any(|c| c == change) {
            continue;
        }
        let resource = format!("Users/{}/Events/{event_id}", s.creator_id);
        let body = json!({"value": [{
            "subscriptionId": s.id,
            "subscriptionExpirationDateTime": stamp(s.expiration_ms),
            "changeType": change,
            "resource": resource,
            "resourceData": {
                "@odata.type": "#Microsoft.Graph.Event",
                "@odata.id": resource,
                "@odata.etag": etag,
                "id": event_id,
            },
            "clientState": s.client_state,
            "tenantId": s.tenant,
        }]});
        let mut d = post_json(&s.notification_url, body, std::time::Duration::from_secs(3));
        // Notifications for one subscription within the window share one `value` array.
        d.coalesce = Some((format!("graph:{}", s.id), Coalesce::AppendValue));
        out.push(d);
    }
    world.outbox.extend(out);
}

/// Control API: sends a lifecycle event to the subscription's lifecycle URL.
/// `subscriptionRemoved` also deletes the subscription; `reauthorizationRequired` pauses
/// notifications until reauthorize/renew.
pub(crate) fn lifecycle(shared: &Arc<Shared>, id: &str, event: &str) -> Result<(), String> {
    if !matches!(event, "reauthorizationRequired" | "subscriptionRemoved" | "missed") {
        return Err("event must be reauthorizationRequired, subscriptionRemoved or missed".into());
    }
    {
        let mut world = shared.world();
        let sub = world.microsoft.subscriptions.get_mut(id).ok_or("no such subscription")?;
        let url = sub.lifecycle_url.clone().ok_or("the subscription has no lifecycleNotificationUrl")?;
        let body = json!({"value": [{
            "lifecycleEvent": event,
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": stamp(sub.expiration_ms),
            "clientState": sub.client_state,
            "tenantId": sub.tenant,
        }]});
        match event {
            "reauthorizationRequired" => sub.paused = true,
            "subscriptionRemoved" => {
                world.microsoft.subscriptions.remove(id);
            }
            _ => {}
        }
        let timeout = shared.config.webhook_timeout;
        world.outbox.push(post_json(&url, body, timeout));
    }
    webhook::flush(shared);
    Ok(())
}
