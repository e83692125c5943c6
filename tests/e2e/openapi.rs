//! The OpenAPI document at `/openapi.json`: it lists every route of the
//! router, and the server keeps to it under schemathesis's generated
//! requests (valid and invalid ones).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;

use crate::support::{ADMIN_TOKEN, Harness};

/// Every route of `spool::api::router`, as (method, path).
const ROUTES: &[(&str, &str)] = &[
    ("put", "/v1/modules/{kind}"),
    ("get", "/v1/modules"),
    ("post", "/v1/jobs"),
    ("post", "/v1/job-batches"),
    ("get", "/v1/jobs"),
    ("delete", "/v1/jobs"),
    ("get", "/v1/jobs/{id}"),
    ("post", "/v1/jobs/{id}/cancel"),
    ("post", "/v1/jobs/{id}/retry"),
    ("put", "/v1/config/{name}"),
    ("get", "/v1/config"),
    ("delete", "/v1/config/{name}"),
    ("post", "/v1/tokens"),
    ("get", "/v1/tokens"),
    ("delete", "/v1/tokens/{id}"),
    ("post", "/admin/v1/tenants"),
    ("get", "/admin/v1/tenants"),
    ("patch", "/admin/v1/tenants/{name}"),
    ("post", "/admin/v1/tenants/{name}/tokens"),
    ("get", "/healthz"),
    ("get", "/openapi.json"),
];

/// What schemathesis checks: no 5xx; status, content type, headers and
/// body as documented; requests the document calls invalid, and requests
/// without the token, refused; undocumented methods answered with 405.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance,\
                      negative_data_rejection,ignored_auth,unsupported_method";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_every_route() {
    let spool = Harness::start().await;
    // No token: the document is public.
    let response = reqwest::get(format!("{}/openapi.json", spool.client.base()))
        .await
        .expect("GET /openapi.json");
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.expect("the document is JSON");

    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "openapi is {version:?}");
    let methods = ["get", "put", "post", "delete", "patch"];
    let listed: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths is an object")
        .iter()
        .flat_map(|(path, item)| {
            methods
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(|method| (method.to_string(), path.clone()))
        })
        .collect();
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(listed, routes);

    let schemes = &doc["components"]["securitySchemes"];
    for (path, scheme) in [
        ("/v1/jobs", Some("tenant_token")),
        ("/admin/v1/tenants", Some("admin_token")),
        ("/healthz", None),
        ("/openapi.json", None),
    ] {
        let security = &doc["paths"][path]["get"]["security"];
        match scheme {
            Some(scheme) => {
                assert_eq!(security[0][scheme], serde_json::json!([]), "{path}");
                assert_eq!(schemes[scheme]["scheme"], "bearer");
            }
            None => assert!(security.is_null(), "{path} needs no token"),
        }
    }
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_keeps_to_its_document() {
    let schemathesis = tokio::task::spawn_blocking(schemathesis)
        .await
        .expect("install schemathesis");
    let spool = Harness::start().await;
    // Jobs of a deployed kind are accepted, run and listed with results.
    spool.deploy_probe(&[]).await;
    let base = spool.client.base();

    // The tenant's operations first: the admin run may disable the tenant.
    fuzz(&schemathesis, base, &spool.token, "--exclude-path-regex").await;
    fuzz(&schemathesis, base, ADMIN_TOKEN, "--include-path-regex").await;
    spool.stop().await;
}

/// Runs schemathesis on the operations under `/admin/` picked by `filter`
/// (an include or exclude option), sending `token`.
async fn fuzz(schemathesis: &Path, base: &str, token: &str, filter: &str) {
    let output = tokio::process::Command::new(schemathesis)
        .current_dir(schemathesis.parent().expect("a folder"))
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--url", base])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([filter, "^/admin/"])
        .args(["--checks", CHECKS])
        // One worker: a fixed seed then gives the same requests each run,
        // and hypothesis 6.170 is not thread-safe (two workers at times
        // fail with a KeyError from its lambda-source cache).
        .args(["--max-examples", "40", "--seed", "1", "--workers", "1"])
        .args(["--generation-database", "none", "--no-color"])
        .env(
            "SCHEMATHESIS_HOOKS",
            spool::guests::workspace_root().join("tests/openapi/hooks.py"),
        )
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run schemathesis");
    assert!(
        output.status.success(),
        "schemathesis {filter} ^/admin/ failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

/// The schemathesis of `tests/openapi/requirements.txt`, installed once in
/// a virtualenv at `target/schemathesis`.
fn schemathesis() -> PathBuf {
    let root = spool::guests::workspace_root();
    let requirements = root.join("tests/openapi/requirements.txt");
    let venv = root.join("target/schemathesis");
    let installed = venv.join("requirements.txt");
    let bin = venv.join("bin/schemathesis");
    let wanted = std::fs::read(&requirements).expect("read requirements.txt");
    if bin.exists() && std::fs::read(&installed).ok() == Some(wanted.clone()) {
        return bin;
    }
    run(std::process::Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv));
    run(std::process::Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements));
    std::fs::write(&installed, wanted).expect("note the installed requirements");
    bin
}

fn run(command: &mut std::process::Command) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
