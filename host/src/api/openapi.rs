//! The API described as an OpenAPI document, served at `GET /openapi.json`.
//!
//! Each handler carries its own `#[utoipa::path]`; [`Auth`] adds what
//! follows from a path's prefix: the token it takes and the errors every
//! call with a token can give.

use axum::Json;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::error::ErrorBody;
use super::{config, jobs, modules, tenants};

/// Security scheme of a tenant's token, taken by `/v1`.
const TENANT_TOKEN: &str = "tenant_token";
/// Security scheme of the operator's token, taken by `/admin/v1`.
const ADMIN_TOKEN: &str = "admin_token";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Spool",
        description = "A job queue whose jobs are sandboxed WebAssembly components."
    ),
    paths(
        modules::module_deploy,
        modules::module_list,
        jobs::job_create,
        jobs::job_batch,
        jobs::job_list,
        jobs::job_prune,
        jobs::job_get,
        jobs::job_cancel,
        jobs::job_retry,
        config::config_set,
        config::config_list,
        config::config_delete,
        tenants::token_create,
        tenants::token_list,
        tenants::token_revoke,
        tenants::tenant_create,
        tenants::tenant_list,
        tenants::tenant_update,
        tenants::tenant_token_create,
        super::healthz,
        openapi_json,
    ),
    modifiers(&Auth)
)]
struct ApiDoc;

/// `GET /openapi.json`: this API as an OpenAPI document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "the OpenAPI document", body = Object))
)]
pub async fn openapi_json() -> Json<Document> {
    Json(ApiDoc::openapi())
}

/// Declares the two bearer tokens and, by path prefix, which one each
/// operation takes, with the 401, 403 and 503 answers of a checked token.
struct Auth;

impl Modify for Auth {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, description) in [
            (TENANT_TOKEN, "a tenant's API token (sp_...)"),
            (
                ADMIN_TOKEN,
                "the operator's admin token (SPOOL_ADMIN_TOKEN)",
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(description))
                        .build(),
                ),
            );
        }
        components
            .schemas
            .insert(ErrorBody::name().into_owned(), ErrorBody::schema());
        let error = |description: &str| {
            ResponseBuilder::new().description(description).content(
                "application/json",
                Content::new(Some(Ref::from_schema_name(ErrorBody::name()))),
            )
        };
        let challenge = Header::new(ObjectBuilder::new().schema_type(Type::String));
        components.responses.extend([
            (
                "Unauthorized".to_string(),
                error("no token, or one that is not valid")
                    .header("WWW-Authenticate", challenge)
                    .build()
                    .into(),
            ),
            (
                "Forbidden".to_string(),
                error("the tenant is disabled, or the admin API is off")
                    .build()
                    .into(),
            ),
            (
                "Unavailable".to_string(),
                error("the database is unreachable; try again")
                    .build()
                    .into(),
            ),
        ]);

        for (path, item) in doc.paths.paths.iter_mut() {
            let scheme = if path.starts_with("/v1/") {
                TENANT_TOKEN
            } else if path.starts_with("/admin/v1/") {
                ADMIN_TOKEN
            } else {
                continue;
            };
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                guard(operation, scheme);
            }
        }
    }
}

fn guard(operation: &mut Operation, scheme: &str) {
    operation.security = Some(vec![SecurityRequirement::new::<_, _, &str>(scheme, [])]);
    for (status, response) in [
        ("401", "Unauthorized"),
        ("403", "Forbidden"),
        ("503", "Unavailable"),
    ] {
        operation.responses.responses.insert(
            status.to_string(),
            RefOr::Ref(Ref::from_response_name(response)),
        );
    }
}
