//! The OpenAPI 3 document: every `/api/` route, generated from the handlers' annotations.

use super::error::{ErrorBody, ErrorDetail};
use super::{admin, appointments, connections, sync};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "calsync API", description = "Appointments and calendar sync for professional-services firms. \
        Authenticate with `Authorization: Bearer <token>` (create one with `calsync admin create-token`). \
        Errors are `{\"error\": {\"code\", \"message\", \"field\"}}`."),
    paths(
        appointments::list,
        appointments::create,
        appointments::show,
        appointments::update,
        appointments::remove,
        appointments::edit_occurrence,
        appointments::cancel_occurrence,
        appointments::split,
        connections::list,
        connections::initiate_google,
        connections::initiate_microsoft,
        connections::callback,
        connections::connect_caldav,
        connections::show,
        connections::update,
        connections::disconnect,
        connections::calendars,
        sync::sync_now,
        sync::sync_status,
        sync::resync,
        sync::confirm_deletes,
        sync::reject_deletes,
        sync::attempts,
        sync::replay,
        sync::conflicts,
        sync::resolve,
        admin::connections,
        admin::stats,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        appointments::AppointmentBody,
        appointments::AppointmentView,
        appointments::AppointmentList,
        appointments::AttendeeBody,
        appointments::StatusSchema,
        appointments::SplitBody,
        appointments::SplitView,
        connections::ConnectionView,
        connections::CalendarView,
        connections::CalDavBody,
        connections::InitiateResponse,
        connections::InitiateBody,
        connections::CallbackBody,
        connections::SettingsBody,
        appointments::SyncLinkView,
        sync::Counts,
        sync::ProgressView,
        sync::AttemptView,
        sync::AttemptPage,
        sync::PendingDeletes,
        sync::SyncStatusView,
        sync::VersionView,
        sync::ConflictView,
        sync::ResolveBody,
        admin::OwnerView,
        admin::AdminConnectionView,
        admin::AdminConnectionList,
        admin::ConnectionCounts,
        admin::WindowStats,
        admin::StatsView,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "appointments", description = "The firm's appointments, which sync carries to external calendars"),
        (name = "calendar connections", description = "Staff members' Google and Microsoft calendars (OAuth 2.0 with PKCE)"),
        (name = "sync", description = "Two-way sync of appointments with the connected calendars: sync now, status, the attempt log, conflicts and held deletions"),
        (name = "admin", description = "For the firm's admins: every connection, failing first, and the sync statistics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
